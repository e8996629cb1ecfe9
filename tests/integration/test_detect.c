/*
 * Servers the shim cannot see are named, not left to fail silently: a
 * statically linked command is recognised before it starts, and a worker
 * whose shim never says hello is reported once --hello-timeout has passed.
 * A dynamically linked one gets neither warning.
 */
#include <criterion/criterion.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "czt.h"

TestSuite(detect, .init = czt_setup, .fini = czt_teardown, .timeout = 60);

static const char *static_sleeper(void)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/static-sleeper", getenv("CZ_SERVERS"));
	return path;
}

Test(detect, static_binary_is_named_and_its_silence_reported)
{
	const char *argv[] = { czt_launcher(), "-w", "1", "--hello-timeout", "0.2", "--",
		static_sleeper(), NULL };
	struct czt_proc *p = czt_spawn(argv, NULL);

	cr_expect_eq(czt_wait_line(p, CZT_ERR, "is statically linked: the shim cannot be "
		"preloaded into it", 1, 10000), 1, "the launcher names the static binary");
	cr_expect_eq(czt_wait_line(p, CZT_ERR, "has not loaded the shim after 0.2s", 1,
		10000), 1, "and reports the worker that never said hello");
	cr_expect_eq(czt_count(p, CZT_ERR, " online"), 0, "the static worker is never online");
	czt_stop(p);
}

/*
 * A worker whose shim said hello gets no warning, not even once its
 * --hello-timeout has passed.  Worker 1 execs cz-server (which says hello);
 * worker 2 stays static and never does.  Both timeouts run from their
 * fork, worker 1's first: once worker 2's warning is out, worker 1's
 * deadline has passed too, and the launcher looked at both at once.
 */
Test(detect, dynamic_server_gets_no_warning)
{
	const char *argv[] = { czt_launcher(), "-w", "2", "--hello-timeout", "0.2", "--",
		static_sleeper(), "--exec-if-id", "1", czt_server(), NULL };
	struct czt_proc *p = czt_spawn(argv, (const char *[]){ czt_asan_options(), NULL });

	cr_assert_eq(czt_wait_re(p, CZT_ERR, "worker 1 \\(pid [0-9]+\\) listening on ", 1, 20000),
		1, "worker 1 runs cz-server");
	cr_expect_eq(czt_count(p, CZT_ERR, "worker 1 (pid "), 3,
		"worker 1: forked, online, listening");
	cr_assert_eq(czt_wait_re(p, CZT_ERR, "worker 2 \\(pid [0-9]+\\) has not loaded the shim "
		"after 0.2s", 1, 10000), 1, "the timeout has passed for worker 2");
	/* Stopped, so that whatever that pass logged is all in. */
	czt_stop(p);
	cr_expect_eq(czt_count_re(p, CZT_ERR, "worker 1 \\(pid [0-9]+\\) has not loaded"), 0,
		"no warning for worker 1, whose shim said hello");
	cr_expect_eq(czt_count(p, CZT_ERR, " online"), 1, "only worker 1 is online");
}

/* A Go program (here a static binary with Go's .go.buildinfo section). */
Test(detect, go_program_is_named)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/fake-go", getenv("CZ_SERVERS"));
	const char *argv[] = { czt_launcher(), "-w", "1", "--hello-timeout", "0.2", "--", path,
		NULL };
	struct czt_proc *p = czt_spawn(argv, NULL);

	cr_expect_eq(czt_wait_line(p, CZT_ERR, "is a Go program: Go makes socket calls without "
		"libc", 1, 10000), 1, "the launcher names the Go program");
	cr_expect_eq(czt_wait_line(p, CZT_ERR, "has not loaded the shim after 0.2s", 1, 10000),
		1, "and reports the worker that never said hello");
	czt_stop(p);
	cr_expect_eq(czt_count(p, CZT_ERR, "is statically linked"), 0, "named once, as Go");
}

/*
 * A set-user-ID (set-group-ID) server owned by another user (group): the
 * dynamic loader ignores LD_PRELOAD for it, and the launcher says so.
 */
static void check_set_id(bool group)
{
	const struct passwd *pw = getpwnam("nobody");
	const struct group *gr = getgrnam("nogroup");
	char path[512], cmd[1200];

	if (geteuid() != 0 || pw == NULL || gr == NULL) {
		cr_skip_test("needs root, user nobody and group nogroup");
	}
	/* A directory all may enter: nobody runs the server. */
	snprintf(path, sizeof(path), "%s/cz-server-setid", czt_tmpdir());
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", czt_server(), path);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	if (group) {
		cr_assert_eq(chown(path, 0, gr->gr_gid), 0);
		cr_assert_eq(chmod(path, 02755), 0);
	} else {
		cr_assert_eq(chown(path, pw->pw_uid, 0), 0);
		cr_assert_eq(chmod(path, 04755), 0);
	}
	const char *argv[] = { czt_launcher(), "-w", "1", "--hello-timeout", "0.2", "--", path,
		NULL };
	struct czt_proc *p = czt_spawn(argv, (const char *[]){ czt_asan_options(), NULL });

	cr_expect_eq(czt_wait_line(p, CZT_ERR, group ? "is set-group-ID: the dynamic loader "
		"ignores LD_PRELOAD" : "is set-user-ID: the dynamic loader ignores LD_PRELOAD", 1,
		10000), 1, "the launcher names the set-ID bit");
	cr_expect_eq(czt_wait_line(p, CZT_ERR, "has not loaded the shim after 0.2s", 1, 10000),
		1, "and the worker never says hello");
	czt_stop(p);
}

Test(detect, setuid_server_is_named)
{
	check_set_id(false);
}

Test(detect, setgid_server_is_named)
{
	check_set_id(true);
}
