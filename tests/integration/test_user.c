/*
 * --user / --group / --allow-bind (root only): the workers run as the user
 * (and group) given and serve; a privileged port is refused with EACCES in
 * the worker's own bind() unless --allow-bind lets it (by port, or by host
 * and port); naming a user that does not exist, --group without --user, or
 * --user without being root are usage errors (exit 2, one line).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "czt.h"
#include "czt_ops.h"

TestSuite(user, .init = czt_setup, .fini = czt_ops_teardown, .timeout = 120);

static const struct passwd *need_root_and_nobody(void)
{
	if (geteuid() != 0) {
		cr_skip_test("--user needs the tests to run as root");
	}
	const struct passwd *pw = getpwnam("nobody");

	if (pw == NULL) {
		cr_skip_test("there is no user 'nobody' to run the workers as");
	}
	return pw;
}

/* Uid: and Gid: of /proc/PID/status must be all (real, effective, saved, fs) uid/gid. */
static void expect_ids(pid_t pid, uid_t uid, gid_t gid)
{
	char path[64], line[256];
	unsigned u[4] = { 1, 1, 1, 1 }, g[4] = { 1, 1, 1, 1 };
	bool seen_u = false, seen_g = false;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		seen_u |= sscanf(line, "Uid: %u %u %u %u", &u[0], &u[1], &u[2], &u[3]) == 4;
		seen_g |= sscanf(line, "Gid: %u %u %u %u", &g[0], &g[1], &g[2], &g[3]) == 4;
	}
	fclose(f);
	cr_assert(seen_u && seen_g, "%s has Uid: and Gid:", path);
	for (int i = 0; i < 4; i++) {
		cr_expect_eq(u[i], uid, "worker %d: uid #%d is %u, expected %u", (int)pid, i, u[i],
			(unsigned)uid);
		cr_expect_eq(g[i], gid, "worker %d: gid #%d is %u, expected %u", (int)pid, i, g[i],
			(unsigned)gid);
	}
}

/*
 * A port below 1024 that nothing holds on 127.0.0.1 right now.  The
 * search starts at a place of this test's own: runs from other checkouts
 * on the same machine all starting at 80 took each other's port between
 * this check and the worker's bind.
 */
static int free_privileged_port(void)
{
	for (int i = 0; i < 1024 - 80; i++) {
		int port = 80 + (int)(((unsigned)getpid() * 7919u + (unsigned)i) % (1024 - 80));
		struct sockaddr_in sin = {
			.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
		};
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		cr_assert_geq(fd, 0);
		inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
		int rc = bind(fd, (struct sockaddr *)&sin, sizeof(sin));

		close(fd);
		if (rc == 0) {
			return port;
		}
	}
	cr_skip_test("no free port below 1024 on 127.0.0.1");
	return -1;
}

/*
 * One cz-server worker as nobody on `port`, with --allow-bind `allow` unless
 * NULL.  A worker whose bind fails exits 1, and the launcher with it.
 */
static struct czt_proc *launch_as_nobody(int port, const char *allow)
{
	static char portarg[16];
	const char *largs[8] = { 0 };
	int n = 0;

	snprintf(portarg, sizeof(portarg), "%d", port);
	largs[n++] = "--max-restarts";
	largs[n++] = "1";
	largs[n++] = "--user";
	largs[n++] = "nobody";
	if (allow != NULL) {
		largs[n++] = "--allow-bind";
		largs[n++] = allow;
	}
	largs[n] = NULL;
	const char *cmd[] = { czt_server(), "--port", portarg, NULL };
	const char *argv[16];
	int k = 0;

	argv[k++] = czt_launcher();
	argv[k++] = "-w";
	argv[k++] = "1";
	for (int i = 0; largs[i] != NULL; i++) {
		argv[k++] = largs[i];
	}
	argv[k++] = "--";
	for (int i = 0; cmd[i] != NULL; i++) {
		argv[k++] = cmd[i];
	}
	argv[k] = NULL;
	const char *env[] = { czt_asan_options(), NULL };

	return czt_spawn(argv, env);
}

Test(user, workers_run_as_the_user_and_serve)
{
	const struct passwd *pw = need_root_and_nobody();
	uid_t uid = pw->pw_uid;
	gid_t gid = pw->pw_gid;
	struct czt_cluster c;
	struct czt_addr a;
	pid_t pids[8];
	const char *largs[] = { "--user", "nobody", NULL };
	const char *cmd[] = { czt_server(), "--style", "epoll-lt", NULL };

	czt_cluster_start_argv(&c, 2, largs, cmd, NULL);
	cr_expect_gt(c.port, 1023, "port 0 gives an unprivileged port (%d)", c.port);
	for (int i = 0; i < c.nw; i++) {
		expect_ids(c.w[i].pid, uid, gid);
	}
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	cr_expect_eq(czt_ask_many(&a, 8, 2, pids, 10000), 8, "the workers serve");
	for (int i = 0; i < 8; i++) {
		cr_expect(czt_cluster_owns(&c, pids[i]), "answered by a worker: %d", (int)pids[i]);
	}
	cr_expect_eq(czt_count(c.proc, CZT_ERR, "not readable by uid"), 0,
		"the shim is readable by the user (no warning)");
	czt_stop(c.proc);
}

Test(user, group_sets_the_workers_group)
{
	const struct passwd *pw = need_root_and_nobody();
	uid_t uid = pw->pw_uid;
	const struct group *gr = getgrnam("daemon");

	if (gr == NULL) {
		cr_skip_test("there is no group 'daemon'");
	}
	gid_t gid = gr->gr_gid;
	struct czt_cluster c;
	const char *largs[] = { "--user", "nobody", "--group", "daemon", NULL };
	const char *cmd[] = { czt_server(), NULL };

	czt_cluster_start_argv(&c, 1, largs, cmd, NULL);
	expect_ids(c.w[0].pid, uid, gid);
	czt_stop(c.proc);
}

Test(user, privileged_port_is_denied_with_eacces)
{
	need_root_and_nobody();
	int port = free_privileged_port();
	struct czt_proc *p = launch_as_nobody(port, NULL);
	char warn[200];

	cr_expect_geq(czt_wait_line(p, CZT_ERR, "bind: Permission denied", 1, 10000), 1,
		"the worker's own bind() fails with EACCES");
	snprintf(warn, sizeof(warn), "clusterize: warning: worker 1: bind 127.0.0.1:%d denied: "
		"port %d is privileged", port, port);
	cr_expect_eq(czt_count(p, CZT_ERR, warn), 1, "the launcher explains: '%s'", warn);
	snprintf(warn, sizeof(warn), "(allow it with --allow-bind :%d)", port);
	cr_expect_geq(czt_count(p, CZT_ERR, warn), 1, "and says how to allow it");
	czt_expect_exit(p, CZT_EXITED(1), 20000);
	cr_expect_eq(czt_count(p, CZT_ERR, " listening on "), 0, "nothing listens");
}

/* With `allow`, the worker binds the privileged port as nobody and serves. */
static void expect_allowed(const struct passwd *pw, int port, const char *allow)
{
	struct czt_worker w[CZT_MAX_WORKERS];
	struct czt_addr a;
	struct czt_proc *p = launch_as_nobody(port, allow);

	cr_assert_eq(czt_wait_listening(p, 1, w, 20000), 1, "--allow-bind %s: the worker "
		"listens", allow);
	cr_expect_eq(w[0].port, port, "on port %d", port);
	expect_ids(w[0].pid, pw->pw_uid, pw->pw_gid);
	czt_addr_tcp(&a, "127.0.0.1", port);
	cr_expect_eq(czt_ask(&a, 5000), w[0].pid, "and serves on 127.0.0.1:%d", port);
	cr_expect_eq(czt_count(p, CZT_ERR, "denied"), 0, "no denial");
	czt_stop(p);
}

Test(user, allow_bind_port_lets_the_worker_bind_it)
{
	const struct passwd *pw = need_root_and_nobody();
	int port = free_privileged_port();
	char allow[32];

	snprintf(allow, sizeof(allow), ":%d", port);
	expect_allowed(pw, port, allow);
}

Test(user, allow_bind_host_and_port_must_match_the_host)
{
	const struct passwd *pw = need_root_and_nobody();
	int port = free_privileged_port();
	char allow[64];

	snprintf(allow, sizeof(allow), "127.0.0.1:%d", port);
	expect_allowed(pw, port, allow);
	/* Another host's permission does not cover 127.0.0.1. */
	snprintf(allow, sizeof(allow), "127.0.0.2:%d", port);
	struct czt_proc *p = launch_as_nobody(port, allow);

	cr_expect_geq(czt_wait_line(p, CZT_ERR, "bind: Permission denied", 1, 10000), 1,
		"--allow-bind %s does not allow 127.0.0.1:%d", allow, port);
	czt_expect_exit(p, CZT_EXITED(1), 20000);
}

/* A usage error: exit 2 and one line `want` on stderr. */
static void expect_usage_error(int uid, const char *want, const char *a1, const char *a2,
	const char *a3, const char *a4)
{
	struct czt_ops_run r;
	int rc = czt_ops_client(&r, uid, NULL, a1, a2, a3, a4, "--", czt_server(), NULL);

	cr_expect_eq(rc, 2, "%s %s %s %s: exit 2, got %d", a1, a2, a3, a4, rc);
	cr_expect_eq(czt_ops_lines(r.err), 1, "one line on stderr:\n%s", r.err);
	cr_expect(strstr(r.err, want) != NULL && strncmp(r.err, "clusterize: ", 12) == 0,
		"'clusterize: ...%s...', got: %s", want, r.err);
	cr_expect_eq(czt_ops_lines(r.out), 0, "nothing on stdout: %s", r.out);
	czt_ops_run_free(&r);
}

Test(user, unknown_user_or_group_alone_is_a_usage_error)
{
	expect_usage_error(-1, "unknown user 'czt-no-such-user' for --user", "-w", "1", "--user",
		"czt-no-such-user");
	expect_usage_error(-1, "--group needs --user", "-w", "1", "--group", "daemon");
	expect_usage_error(-1, "--allow-bind needs --user", "-w", "1", "--allow-bind", ":80");
	if (geteuid() == 0 && getpwnam("nobody") != NULL) {
		expect_usage_error((int)getpwnam("nobody")->pw_uid, "--user needs root", "-w", "1",
			"--user", "nobody");
		expect_usage_error(-1, "unknown group 'czt-no-such-group' for --group", "--user",
			"nobody", "--group", "czt-no-such-group");
	}
}
