/*
 * clusterize: run N copies of a network server that share its listening
 * sockets, like Node.js cluster.  This file checks the request (options,
 * shim, command) and hands over to the supervisor (workers.c).
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "cli.h"
#include "config.h"
#include "detect.h"
#include "log.h"
#include "workers.h"

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

static int resolve_command(const char *cmd, char *out, size_t len)
{
	int rc = cz_detect_resolve(cmd, getenv("PATH"), out, len);

	if (rc == 0) {
		return 0;
	}
	cz_log(CZ_LOG_ERROR, "cannot execute '%s': %s", cmd, strerror(-rc));
	return rc == -ENOENT ? 127 : 126;
}

static int run(const struct cz_opts *opts, const struct rlimit *nofile)
{
	struct cz_workers_config cfg = { .opts = opts, .nofile = *nofile };
	char shim[PATH_MAX], exe[PATH_MAX];
	uv_loop_t loop;
	int status, rc;

	if (find_shim(shim, sizeof(shim)) < 0) {
		return 1;
	}
	status = resolve_command(opts->cmd_argv[0], exe, sizeof(exe));
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
	struct rlimit nofile;
	struct cz_opts opts;
	char err[512];

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
		cz_log(CZ_LOG_ERROR, "subcommands are not implemented yet");
		return 1;
	case CZ_CLI_RUN:
		break;
	}
	cz_log_set_level(opts.log_level);
	return run(&opts, &nofile);
}
