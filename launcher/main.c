/*
 * clusterize: run N copies of a network server that share its listening
 * sockets, like Node.js cluster.  This file checks the request (options,
 * shim, command, --user), takes what the process inherited (systemd's
 * sockets, the subreaper role) and hands over to the supervisor
 * (workers.c); a subcommand goes to the client (admin.h).
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "admin.h"
#include "asuser.h"
#include "cli.h"
#include "config.h"
#include "detect.h"
#include "log.h"
#include "spawn.h"
#include "workers.h"

/* Sockets taken from systemd (LISTEN_FDS) at most. */
#define MAX_INHERITED 64

/*
 * The launcher holds many fds in flight (listeners, channels, connections
 * being handed over): raise our soft limit to the hard one, and remember
 * the original for the workers.
 */
static void raise_nofile(struct rlimit *orig)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, orig) != 0) {
		orig->rlim_cur = orig->rlim_max = RLIM_INFINITY;
		return;
	}
	rl = *orig;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

/* LD_PRELOAD splits on ':' and ' ': a path with either cannot be carried. */
static int accept_shim(const char *path, char *out, size_t len)
{
	char abs[PATH_MAX];

	if (realpath(path, abs) == NULL) {
		return -errno;
	}
	if (strpbrk(abs, ": ") != NULL) {
		cz_log(CZ_LOG_ERROR, "shim path '%s' contains ':' or a space, "
			"which LD_PRELOAD cannot carry", abs);
		return -EINVAL;
	}
	if (strlen(abs) >= len) {
		return -ENAMETOOLONG;
	}
	strcpy(out, abs);
	return 0;
}

/* $CLUSTERIZE_SHIM, else the build tree next to us, else the install path. */
static int find_shim(char *out, size_t len)
{
	const char *env = getenv(CZ_ENV_SHIM);
	char exe[PATH_MAX], cand[PATH_MAX + 64];
	ssize_t n;
	int rc;

	if (env != NULL && *env != '\0') {
		rc = accept_shim(env, out, len);
		if (rc < 0 && rc != -EINVAL) {
			cz_log(CZ_LOG_ERROR, "%s=%s: %s", CZ_ENV_SHIM, env,
				strerror(-rc));
		}
		return rc;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		snprintf(cand, sizeof(cand), "%s/../shim/libclusterize.so",
			dirname(exe));
		if (access(cand, R_OK) == 0) {
			return accept_shim(cand, out, len);
		}
	}
	if (access(CZ_SHIM_INSTALL_PATH, R_OK) == 0) {
		return accept_shim(CZ_SHIM_INSTALL_PATH, out, len);
	}
	cz_log(CZ_LOG_ERROR, "cannot find libclusterize.so (not in %s); set %s "
		"to its path", CZ_SHIM_INSTALL_PATH, CZ_ENV_SHIM);
	return -ENOENT;
}

struct resolve_arg {
	const char *cmd;
	const char *path_env;
};

static int resolve_step(void *arg, struct cz_asuser_out *out)
{
	const struct resolve_arg *ra = arg;
	int rc = cz_detect_resolve(ra->cmd, ra->path_env, out->data,
		sizeof(out->data));

	out->len = rc == 0 ? strlen(out->data) + 1 : 0;
	return rc;
}

/*
 * Finds the command as execvp would, and as the workers will run it: with
 * --user, in a child that has their identity, so a PATH entry they cannot
 * search or a file they cannot execute is skipped (root could use both).
 */
static int resolve_command(const char *cmd, const struct cz_spawn_ids *ids,
	char *out, size_t len)
{
	struct resolve_arg ra = { cmd, getenv("PATH") };
	struct cz_asuser_out o;
	int rc = cz_asuser_run(ids, resolve_step, &ra, &o);

	if (rc == 0 && (o.len == 0 || o.len > len ||
		o.data[o.len - 1] != '\0')) {
		rc = -ENAMETOOLONG;
	}
	if (rc == 0) {
		memcpy(out, o.data, o.len);
		return 0;
	}
	cz_log(CZ_LOG_ERROR, "cannot execute '%s': %s", cmd, strerror(-rc));
	return rc == -ENOENT ? 127 : 126;
}

static int read_step(void *arg, struct cz_asuser_out *out)
{
	(void)out;
	return faccessat(AT_FDCWD, arg, R_OK, AT_EACCESS) != 0 ? -errno : 0;
}

/* The workers load the shim as --user: they must reach and read it. */
static void check_shim_access(const char *shim, const struct cz_spawn_ids *ids)
{
	struct cz_asuser_out o;
	int rc = cz_asuser_run(ids, read_step, (void *)shim, &o);

	if (rc < 0) {
		cz_log(CZ_LOG_WARN, "%s is not readable by uid %u (%s): the "
			"workers will run without the shim", shim,
			(unsigned)ids->uid, strerror(-rc));
	}
}

/*
 * systemd socket activation: fds 3.. when LISTEN_PID is ours.  The
 * variables are removed in any case so that no worker takes the sockets
 * for its own.
 */
static unsigned inherited_sockets(int *fds, unsigned max)
{
	const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
	unsigned count = 0;

	if (pid != NULL && n != NULL && atol(pid) == (long)getpid()) {
		long want = atol(n);

		for (long i = 0; i < want && count < max; i++) {
			int fd = 3 + (int)i;

			fcntl(fd, F_SETFD, FD_CLOEXEC);
			fds[count++] = fd;
		}
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return count;
}

/* Orphaned descendants are reparented to us, and reaped with the workers. */
static void become_subreaper(const struct cz_opts *opts)
{
	if (!opts->subreaper && getpid() != 1) {
		return;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
		cz_log(CZ_LOG_WARN, "prctl PR_SET_CHILD_SUBREAPER: %s",
			strerror(errno));
	}
}

static int run(const struct cz_opts *opts, const struct rlimit *nofile,
	const struct cz_spawn_ids *ids)
{
	struct cz_workers_config cfg = {
		.opts = opts, .nofile = *nofile, .ids = ids,
	};
	char shim[PATH_MAX], exe[PATH_MAX];
	int adopt[MAX_INHERITED];
	uv_loop_t loop;
	int status, rc;

	cfg.n_adopt = inherited_sockets(adopt, MAX_INHERITED);
	cfg.adopt_fds = adopt;
	if (find_shim(shim, sizeof(shim)) < 0) {
		return 1;
	}
	if (ids->set) {
		check_shim_access(shim, ids);
	}
	become_subreaper(opts);
	status = resolve_command(opts->cmd_argv[0], ids, exe, sizeof(exe));
	if (status != 0) {
		return status;
	}
	cz_detect_warn(opts->cmd_argv[0], cz_detect_inspect(exe));
	cfg.shim_path = shim;
	cfg.exe_path = exe;
	rc = uv_loop_init(&loop);
	if (rc < 0) {
		cz_log(CZ_LOG_ERROR, "event loop: %s", uv_strerror(rc));
		return 1;
	}
	status = cz_workers_run(&loop, &cfg);
	rc = uv_loop_close(&loop);
	if (rc < 0) {
		cz_log(CZ_LOG_ERROR, "internal error: event loop: %s",
			uv_strerror(rc));
		return status != 0 ? status : 1;
	}
	return status;
}

int main(int argc, char **argv)
{
	struct cz_spawn_ids ids;
	struct rlimit nofile;
	struct cz_opts opts;
	char err[512];
	int status;

	raise_nofile(&nofile);
	/* A worker gone mid-handover must not kill the launcher. */
	signal(SIGPIPE, SIG_IGN);
	if (cz_cli_parse(argc, argv, getenv(CZ_ENV_SCHED), getenv(CZ_ENV_LOG),
		&opts, err, sizeof(err)) != 0) {
		cz_log(CZ_LOG_ERROR, "%s", err);
		return 2;
	}
	switch (opts.action) {
	case CZ_CLI_HELP:
		fputs(cz_cli_usage(), stdout);
		return fflush(stdout) == 0 ? 0 : 1;
	case CZ_CLI_VERSION:
		printf("clusterize %s\n", CZ_VERSION);
		return fflush(stdout) == 0 ? 0 : 1;
	case CZ_CLI_STATUS:
	case CZ_CLI_RELOAD:
	case CZ_CLI_SCALE:
	case CZ_CLI_STOP:
	case CZ_CLI_SEND:
	case CZ_CLI_MESSAGES:
		return cz_admin_client(&opts);
	case CZ_CLI_RUN:
		break;
	}
	if (cz_cli_apply_env(&opts, getenv, err, sizeof(err)) != 0) {
		cz_log(CZ_LOG_ERROR, "%s", err);
		return 2;
	}
	cz_log_set_level(opts.log_level);
	cz_log_set_format(opts.log_format);
	if (cz_spawn_resolve_ids(opts.user, opts.group, &ids, err,
		sizeof(err)) != 0) {
		cz_log(CZ_LOG_ERROR, "%s", err);
		cz_spawn_free_ids(&ids);
		return 2;
	}
	status = run(&opts, &nofile, &ids);
	cz_spawn_free_ids(&ids);
	return status;
}
