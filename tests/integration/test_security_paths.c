/*
 * A root launcher never acts on a path a worker can swap, nothing outlives
 * the launcher, and the command is found as the worker would find it
 * (issue 12, findings 1, 2, 3, 12, 13, 14).  Root only: the workers run as
 * nobody.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "czt.h"
#include "czt_ops.h"

TestSuite(security_paths, .init = czt_setup, .fini = czt_ops_teardown, .timeout = 180);

static const struct passwd *nobody;

static void need_root_and_nobody(void)
{
	if (geteuid() != 0) {
		cr_skip_test("the workers run as another user: needs root");
	}
	nobody = getpwnam("nobody");
	if (nobody == NULL) {
		cr_skip_test("there is no user 'nobody' to run the workers as");
	}
}

/* czt_tmpdir()/name, made with `mode` and owned by uid:gid. */
static const char *make_dir(const char *name, mode_t mode, uid_t uid, gid_t gid)
{
	static char paths[8][256];
	static int next;
	char *p = paths[next++ % 8];

	snprintf(p, sizeof(paths[0]), "%s/%s", czt_tmpdir(), name);
	cr_assert_eq(mkdir(p, 0700), 0, "mkdir %s: %s", p, strerror(errno));
	cr_assert_eq(chown(p, uid, gid), 0, "chown %s: %s", p, strerror(errno));
	cr_assert_eq(chmod(p, mode), 0, "chmod %s: %s", p, strerror(errno));
	return p;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

/* --- finding 14: the command is found as the worker would find it -------- */

/*
 * Root's PATH starts with a directory only root can read, holding a
 * python3 of its own: a worker running as nobody cannot execute that one,
 * so the launcher must find /usr/bin/python3, as execvp would for nobody.
 */
Test(security_paths, command_is_found_as_the_worker_would)
{
	need_root_and_nobody();
	const char *python = czt_which("python3");

	if (python == NULL) {
		cr_skip_test("no python3 in PATH");
	}
	const char *priv = make_dir("rootbin", 0700, 0, 0);
	char fake[300], pathenv[600], pydir[256], want[64];

	snprintf(fake, sizeof(fake), "%s/python3", priv);
	write_file(fake, "#!/bin/sh\necho root-only python3\n", 0755);
	snprintf(pydir, sizeof(pydir), "%s", python);
	*strrchr(pydir, '/') = '\0';
	snprintf(pathenv, sizeof(pathenv), "PATH=%s:%s:/usr/bin:/bin", priv, pydir);
	const char *env[] = { pathenv, czt_asan_options(), NULL };
	struct czt_proc *p = czt_launch(env, "-w", "1", "--user", "nobody",
		"--restart", "never", "--", "python3", "-c",
		"import os; print('python3 as uid', os.getuid())", NULL);

	/* Once the worker did. */
	czt_expect_exit(p, CZT_EXITED(0), 30000);
	snprintf(want, sizeof(want), "python3 as uid %u", (unsigned)nobody->pw_uid);
	cr_expect_eq(czt_count(p, CZT_OUT, want), 1, "the worker ran python3 as nobody");
	cr_expect_eq(czt_count(p, CZT_OUT, "root-only"), 0, "not root's own python3");
	cr_expect_eq(czt_count(p, CZT_ERR, "cannot execute"), 0);
}

/* Nothing nobody can execute anywhere in PATH: 126, as a shell says. */
Test(security_paths, command_only_root_can_run_is_126)
{
	need_root_and_nobody();
	const char *priv = make_dir("rootbin", 0700, 0, 0);
	char fake[300], pathenv[300];

	snprintf(fake, sizeof(fake), "%s/cz-root-only-cmd", priv);
	write_file(fake, "#!/bin/sh\nexit 0\n", 0755);
	snprintf(pathenv, sizeof(pathenv), "PATH=%s:/usr/bin:/bin", priv);
	const char *env[] = { pathenv, NULL };
	struct czt_proc *p = czt_launch(env, "-w", "1", "--user", "nobody", "--",
		"cz-root-only-cmd", NULL);
	/* 126: found, not executable by nobody. */
	czt_expect_exit(p, CZT_EXITED(126), 30000);
	cr_expect_eq(czt_count(p, CZT_ERR,
		"clusterize: cannot execute 'cz-root-only-cmd': Permission denied"), 1);
	cr_expect_eq(czt_count(p, CZT_ERR, "forked"), 0, "no worker is started");
}

/* --- finding 12: a squatted control directory ---------------------------- */

/* XDG_RUNTIME_DIR=<a private dir of the test's>: the default control dir is in it. */
static const char *xdg_env(const char **dir)
{
	static char env[300];
	const char *d = make_dir("xdg", 0700, 0, 0);

	snprintf(env, sizeof(env), "XDG_RUNTIME_DIR=%s", d);
	*dir = d;
	return env;
}

/*
 * Another user made the default control directory first: the launcher
 * says so, uses a private directory of its own next to it, and the
 * subcommands find it there without --control.
 */
Test(security_paths, squatted_control_dir_falls_back_and_is_found)
{
	need_root_and_nobody();
	const char *xdg;
	const char *env[] = { xdg_env(&xdg), NULL };
	char squat[300], want[400], line[600];
	struct czt_cluster c;
	struct czt_ops_run r;
	struct stat st;

	snprintf(squat, sizeof(squat), "%s/clusterize", xdg);
	cr_assert_eq(mkdir(squat, 0755), 0);
	cr_assert_eq(chown(squat, nobody->pw_uid, nobody->pw_gid), 0);
	const char *largs[] = { NULL };
	const char *cmd[] = { czt_server(), NULL };

	czt_cluster_start_argv(&c, 1, largs, cmd, env);
	snprintf(want, sizeof(want), "clusterize: warning: %s is not a private directory", squat);
	cr_expect_eq(czt_count(c.proc, CZT_ERR, want), 1, "the launcher says why");
	snprintf(want, sizeof(want), "clusterize: control socket %s.", squat);
	cr_assert_eq(czt_count(c.proc, CZT_ERR, want), 1, "and where (%s...)", want);

	/* The fallback directory, from the startup line. */
	char *log = czt_read(c.proc, CZT_ERR), *at = strstr(log, want);

	cr_assert_not_null(at);
	snprintf(line, sizeof(line), "%s", at + strlen("clusterize: control socket "));
	*strchr(line, '\n') = '\0';
	*strrchr(line, '/') = '\0';
	free(log);
	cr_assert_eq(lstat(line, &st), 0, "%s exists", line);
	cr_expect(S_ISDIR(st.st_mode) && st.st_uid == 0 && (st.st_mode & 0777) == 0700,
		"%s is root's, 0700 (owner %u, mode %o)", line, (unsigned)st.st_uid,
		st.st_mode & 0777);

	int rc = czt_ops_client(&r, -1, env, "status", NULL);

	cr_expect_eq(rc, 0, "status finds the launcher without --control: %s", r.err);
	snprintf(want, sizeof(want), "clusterize %d: ", (int)c.proc->pid);
	cr_expect(strncmp(r.out, want, strlen(want)) == 0, "this launcher answers:\n%s", r.out);
	czt_ops_run_free(&r);
	czt_stop(c.proc);
	cr_expect_eq(lstat(line, &st), -1, "%s is removed at the end", line);
}

/* The shim where nobody cannot read it: the launcher warns, as nobody sees it. */
Test(security_paths, shim_nobody_cannot_read_is_named)
{
	need_root_and_nobody();
	const char *priv = make_dir("rootlib", 0700, 0, 0);
	char shim[300], env_shim[320], cmd[700], want[400];

	snprintf(shim, sizeof(shim), "%s/libclusterize.so", priv);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", czt_shim(), shim);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	snprintf(env_shim, sizeof(env_shim), "CLUSTERIZE_SHIM=%s", shim);
	const char *env[] = { env_shim, NULL };
	struct czt_proc *p = czt_launch(env, "-w", "1", "--user", "nobody",
		"--restart", "never", "--", "/bin/true", NULL);

	/* After /bin/true. */
	czt_expect_exit(p, CZT_EXITED(0), 30000);
	snprintf(want, sizeof(want), "clusterize: warning: %s is not readable by uid %u",
		shim, (unsigned)nobody->pw_uid);
	cr_expect_eq(czt_count(p, CZT_ERR, want), 1, "the launcher says: %s", want);
}
