/*
 * What a peer of the primary can do (issue 12, findings 4-11): only the
 * launcher's own workers may talk to it, what a process acquired goes
 * with it, and nothing a worker sends makes the primary spin, fill a disk
 * or print what the worker chose unescaped.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "czt.h"
#include "czt_ops.h"

TestSuite(security_peers, .init = czt_setup, .fini = czt_ops_teardown, .timeout = 120);

static const char *ctl_path(void)
{
	static char path[300];

	snprintf(path, sizeof(path), "%s/c.sock", czt_tmpdir());
	return path;
}

/* Whether text holds a byte a terminal acts on (ESC, or another control but \n). */
static bool has_controls(const char *text)
{
	for (const unsigned char *p = (const void *)text; *p != '\0'; p++) {
		if ((*p < 0x20 && *p != '\n') || *p == 0x7f) {
			return true;
		}
	}
	return false;
}

/*
 * A worker binds a unix path made to forge an "exited" event line and
 * colour the terminal: the log and `status` show it escaped.
 */
Test(security_peers, a_unix_path_a_worker_chose_is_printed_escaped)
{
	static const char forged[] = "clusterize: worker 9 (pid 1) exited with code 0";
	char path[200], escaped[300];
	struct czt_cluster c;
	struct czt_ops_run r;

	snprintf(path, sizeof(path), "%s/a\n%s\x1b[31m.sock", czt_tmpdir(), forged);
	snprintf(escaped, sizeof(escaped), "unix %s/a\\n%s\\x1b[31m.sock", czt_tmpdir(),
		forged);
	const char *largs[] = { "--control", ctl_path(), NULL };
	const char *cmd[] = { czt_server(), "--unix", path, NULL };

	czt_cluster_start_argv(&c, 1, largs, cmd, NULL);
	char *err = czt_read(c.proc, CZT_ERR);

	cr_expect(strstr(err, escaped) != NULL, "the listening line shows '%s':\n%s", escaped,
		err);
	cr_expect_eq(czt_count(c.proc, CZT_ERR, forged), 1, "the forged text is in one line, "
		"the listening line:\n%s", err);
	cr_expect_eq(czt_count_re(c.proc, CZT_ERR, "^clusterize: worker 9 "), 0,
		"no line starts as the forged event");
	cr_expect_not(has_controls(err), "no control byte in the log");
	free(err);
	cr_assert_eq(czt_ops_client(&r, -1, NULL, "status", "--control", ctl_path(), NULL), 0,
		"status: %s", r.err);
	cr_expect(strstr(r.out, escaped + 5) != NULL, "status shows the path escaped:\n%s",
		r.out);
	cr_expect_not(has_controls(r.out), "no control byte in status:\n%s", r.out);
	cr_expect_eq(czt_ops_lines(r.out), 3, "a header, the titles, one worker:\n%s", r.out);
	czt_ops_run_free(&r);
	cr_assert_eq(czt_ops_client(&r, -1, NULL, "status", "--json", "--control", ctl_path(),
		NULL), 0);
	json_t *j = json_loads(r.out, 0, NULL);

	cr_expect_not_null(j, "status --json is still valid JSON: %s", r.out);
	json_decref(j);
	czt_ops_run_free(&r);
	czt_stop(c.proc);
}

/* --- helpers ---------------------------------------------------------------- */

static const char *peer_path(void)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/cz-peer", getenv("CZ_SERVERS"));
	return path;
}

static const struct passwd *need_root_and_nobody(void)
{
	const struct passwd *pw;

	if (geteuid() != 0) {
		cr_skip_test("strangers of another uid need the tests to run as root");
	}
	pw = getpwnam("nobody");
	if (pw == NULL) {
		cr_skip_test("there is no user 'nobody'");
	}
	return pw;
}

/* The launcher's open fds. */
static int fd_count(pid_t pid)
{
	char path[64];
	struct dirent *e;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);

	cr_assert_not_null(d, "%s: %s", path, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		n += e->d_name[0] != '.';
	}
	closedir(d);
	return n;
}

struct fds_at_most {
	pid_t pid;
	int max;
};

static bool fds_at_most(void *arg)
{
	const struct fds_at_most *f = arg;

	return fd_count(f->pid) <= f->max;
}

/* The whole environment of `pid`, as "NAME=value" strings (static). */
static const char *const *environ_of(pid_t pid)
{
	static char buf[65536];
	static const char *vars[512];
	char path[64];
	int fd, n = 0;
	ssize_t len;

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	cr_assert_gt(len, 0);
	buf[len] = '\0';
	for (ssize_t i = 0; i < len && n < 510; i += (ssize_t)strlen(buf + i) + 1) {
		vars[n++] = buf + i;
	}
	vars[n++] = czt_asan_options();
	vars[n] = NULL;
	return vars;
}

/* Every one of n connections is answered by one of the cluster's workers. */
static void expect_served_by(const struct czt_cluster *c, int n)
{
	struct czt_addr a;
	pid_t pids[64];

	czt_addr_tcp(&a, "127.0.0.1", c->port);
	cr_expect_eq(czt_ask_many(&a, n, 4, pids, 10000), n, "all %d answered (%s)", n,
		czt_last_bad());
	for (int i = 0; i < n; i++) {
		cr_expect(czt_cluster_owns(c, pids[i]), "connection %d answered by a worker of "
			"the cluster, not %d", i, (int)pids[i]);
	}
}

/* --- finding 4: only the workers' own processes ------------------------------ */

/*
 * Processes of the workers' user that the launcher did not start: one that
 * speaks the protocol itself (the control socket's old abstract name, a
 * worker's copied environment) and a server with the shim preloaded and a
 * worker's whole environment.  Neither gets in: the cluster keeps every
 * connection and its listening socket.
 */
Test(security_peers, a_stranger_of_the_workers_uid_gets_nothing)
{
	const struct passwd *pw = need_root_and_nobody();
	struct czt_cluster c;
	char port[16], wpid[16], lpid[16];
	const char *largs[] = { "--user", "nobody", NULL };
	const char *cmd[] = { czt_server(), "--style", "epoll-lt", NULL };

	czt_cluster_start_argv(&c, 2, largs, cmd, NULL);
	snprintf(port, sizeof(port), "%d", c.port);
	snprintf(wpid, sizeof(wpid), "%d", (int)c.w[0].pid);
	snprintf(lpid, sizeof(lpid), "%d", (int)c.proc->pid);
	const char *raw[] = { peer_path(), "stranger", port, wpid, lpid, NULL };
	struct czt_proc *s = czt_spawn_as(raw, NULL, (int)pw->pw_uid, (int)pw->pw_gid);

	cr_assert_eq(czt_wait_exit(s, 20000), 0, "the raw stranger finishes");
	char *out = czt_read(s, CZT_OUT);

	cr_expect_str_eq(out, "stranger: connected 0 attached 0 bound 0 released 0\n",
		"it reached nothing: %s", out);
	free(out);

	/* The shim and a worker's whole environment, copied. */
	const char *srv[] = { czt_server(), "--style", "poll", "--port", port, NULL };
	struct czt_proc *t = czt_spawn_as(srv, environ_of(c.w[0].pid), (int)pw->pw_uid,
		(int)pw->pw_gid);

	cr_expect_neq(czt_wait_exit(t, 20000), 0, "the copycat server cannot bind the "
		"cluster's port for itself and exits");
	cr_expect_eq(czt_count(t, CZT_OUT, "port "), 0, "it never listened");
	expect_served_by(&c, 20);
	czt_stop(c.proc);
}

/* --- findings 6 and 7: what a process acquired goes with it ----------------- */

/*
 * A worker's process listens 40 times on the port (40 channels: 80 fds in
 * the launcher) and exits without closing them, as a crashing server
 * would; the worker then serves on the same port.  The launcher frees the
 * 40 channels at once: its fds drop back, and no connection is sent to a
 * channel nobody reads (that would show as "nothing taken" stalls).
 */
Test(security_peers, a_process_that_exits_takes_its_channels_along)
{
	int port = czt_free_port(AF_INET);
	char script[1024], line[64];
	struct czt_worker w[CZT_MAX_WORKERS];
	struct czt_addr a;
	pid_t pids[20];
	int peer = 0;

	snprintf(script, sizeof(script), "%s listen-many %d 40 && exec %s --port %d",
		peer_path(), port, czt_server(), port);
	const char *argv[] = { czt_launcher(), "-v", "-w", "1", "--", "/bin/sh", "-c", script,
		NULL };
	const char *env[] = { czt_asan_options(), NULL };
	struct czt_proc *p = czt_spawn(argv, env);

	cr_assert_eq(czt_wait_line(p, CZT_OUT, "listened 40 pid ", 1, 20000), 1);
	char *out = czt_read(p, CZT_OUT);

	cr_assert_eq(sscanf(strstr(out, "listened 40 pid "), "listened 40 pid %d", &peer), 1);
	free(out);
	cr_assert_eq(czt_wait_listening(p, 40, w, 20000), 40);
	int peak = fd_count(p->pid);

	cr_assert_eq(kill(peer, SIGUSR1), 0);
	snprintf(line, sizeof(line), "port %d", port);
	cr_assert_eq(czt_wait_line(p, CZT_OUT, line, 1, 20000), 1, "the server listens");
	cr_assert_eq(czt_wait_listening(p, 41, w, 20000), 41);
	struct fds_at_most f = { p->pid, peak - 70 };

	cr_expect(czt_wait_until(fds_at_most, &f, czt_ms(10000)), "the launcher's fds drop from "
		"%d to at most %d (now %d)", peak, f.max, fd_count(p->pid));
	czt_addr_tcp(&a, "127.0.0.1", port);
	cr_expect_eq(czt_ask_many(&a, 20, 4, pids, 10000), 20, "all answered (%s)",
		czt_last_bad());
	for (int i = 0; i < 20; i++) {
		cr_expect_eq(pids[i], w[40].pid, "answered by the server");
	}
	cr_expect_eq(czt_count(p, CZT_ERR, "nothing taken for"), 0, "no connection went to a channel "
		"of the exited process");
	czt_stop(p);
}

/* --- finding 9: no peer fills a disk ---------------------------------------- */

/* Bytes in the launcher's log. */
static size_t log_size(const struct czt_proc *p)
{
	char *err = czt_read(p, CZT_ERR);
	size_t n = strlen(err);

	free(err);
	return n;
}

/*
 * A worker that sends junk for 1.5 s on its connection (reattaching each
 * time the launcher drops it) and on its attach socket gets a few warnings
 * and a count of the rest, not a line per message.
 */
Test(security_peers, junk_from_a_worker_leaves_the_log_small)
{
	const char *argv[] = { czt_launcher(), "-w", "1", "--", peer_path(), "junk", "1500",
		NULL };
	const char *env[] = { czt_asan_options(), NULL };
	struct czt_proc *p = czt_spawn(argv, env);
	unsigned long sent = 0, reopened = 0;

	cr_assert_eq(czt_wait_line(p, CZT_OUT, "junk sent ", 1, 30000), 1);
	char *out = czt_read(p, CZT_OUT);

	cr_assert_eq(sscanf(strstr(out, "junk sent "), "junk sent %lu reopened %lu", &sent,
		&reopened), 2);
	free(out);
	cr_expect_gt(sent, 1000, "a flood: %lu messages", sent);
	cr_expect_lt(log_size(p), 4096, "the log stays small: %zu bytes after %lu junk "
		"messages", log_size(p), sent);
	cr_expect_geq(czt_count(p, CZT_ERR, "similar messages suppressed)"), 0);
	czt_stop(p);
}

/*
 * A user the operator's control socket refuses, connecting 200 times, is
 * named a few times, then counted.
 */
Test(security_peers, refused_connects_leave_the_log_small)
{
	const struct passwd *pw = need_root_and_nobody();
	struct czt_cluster c;
	const char *largs[] = { "--control", ctl_path(), NULL };
	const char *cmd[] = { czt_server(), NULL };

	czt_cluster_start_argv(&c, 1, largs, cmd, NULL);
	size_t before = log_size(c.proc);

	/* Let it in as far as the launcher's own check. */
	cr_assert_eq(chmod(ctl_path(), 0777), 0);
	const char *argv[] = { peer_path(), "connect-unix", ctl_path(), "200", NULL };
	struct czt_proc *s = czt_spawn_as(argv, NULL, (int)pw->pw_uid, (int)pw->pw_gid);

	cr_assert_eq(czt_wait_exit(s, 30000), 0);
	cr_expect_eq(czt_count(s, CZT_OUT, "connected 200"), 1, "it got as far as the check");
	cr_expect_leq(czt_count(c.proc, CZT_ERR, "refused pid"), 6, "a few refusals named");
	cr_expect_lt(log_size(c.proc) - before, 1024, "the log grew by %zu bytes",
		log_size(c.proc) - before);
	czt_stop(c.proc);
}

/* --- finding 5: no worker breaks the listener of others ---------------------- */

/* clusterize ARGS -- sh -c SCRIPT, SCRIPT printf-formatted. */
static struct czt_proc *launch_sh(const char *const largs[], const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static struct czt_proc *launch_sh(const char *const largs[], const char *fmt, ...)
{
	static char script[2048];
	const char *argv[24];
	const char *env[] = { czt_asan_options(), NULL };
	va_list ap;
	int n = 0;

	va_start(ap, fmt);
	vsnprintf(script, sizeof(script), fmt, ap);
	va_end(ap);
	argv[n++] = czt_launcher();
	for (int i = 0; largs[i] != NULL && n < 18; i++) {
		argv[n++] = largs[i];
	}
	argv[n++] = "--";
	argv[n++] = "/bin/sh";
	argv[n++] = "-c";
	argv[n++] = script;
	argv[n] = NULL;
	return czt_spawn(argv, env);
}

/*
 * In rr, a worker asks for the listening socket itself, as Node's own
 * cluster does before sending it to its workers, and would shut it down:
 * the primary accepts on that socket, so it gets EADDRINUSE instead, and
 * the other worker goes on serving.
 */
Test(security_peers, rr_never_hands_out_the_socket_it_accepts_on)
{
	int port = czt_free_port(AF_INET);
	const char *largs[] = { "-w", "1", "-s", "rr", NULL };
	struct czt_worker w[CZT_MAX_WORKERS];
	struct czt_proc *p = launch_sh(largs, "if [ \"$CLUSTERIZE_WORKER_ID\" = 2 ]; then "
		"exec %s grab-shared %d; fi; exec %s --port %d", peer_path(), port, czt_server(),
		port);
	struct czt_addr a;
	pid_t pids[20];

	cr_assert_eq(czt_wait_listening(p, 1, w, 20000), 1);
	cr_assert_eq(czt_signal(p, SIGTTIN), 0);
	cr_assert_eq(czt_wait_line(p, CZT_OUT, "grab: ", 1, 20000), 1);
	cr_expect_eq(czt_count(p, CZT_OUT, "grab: err -98 mode 0 fd no shutdown no"), 1,
		"EADDRINUSE, no socket");
	czt_addr_tcp(&a, "127.0.0.1", port);
	cr_expect_eq(czt_ask_many(&a, 20, 4, pids, 10000), 20, "all answered (%s)",
		czt_last_bad());
	for (int i = 0; i < 20; i++) {
		cr_expect_eq(pids[i], w[0].pid, "by the server");
	}
	czt_stop(p);
}

/* In the child: the socket at fd 3 and LISTEN_* naming our pid. */
static int activate(void *arg)
{
	char pid[32];

	if (dup2(*(int *)arg, 3) < 0) {
		return -1;
	}
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	return setenv("LISTEN_PID", pid, 1) | setenv("LISTEN_FDS", "1", 1);
}

/*
 * The service manager's copy of an adopted socket is the primary's own:
 * shut down through it, the socket stops accepting.  The primary makes a
 * new one on the same address, says so once, and serves again.
 */
Test(security_peers, a_listening_socket_shut_down_is_made_again)
{
	struct czt_worker w[CZT_MAX_WORKERS];
	struct czt_addr a;
	char portarg[16];
	int port, lfd = czt_hold_port("127.0.0.1", &port);
	pid_t pids[10];

	cr_assert_geq(lfd, 0);
	snprintf(portarg, sizeof(portarg), "%d", port);
	const char *argv[] = { czt_launcher(), "-w", "1", "-s", "rr", "--", czt_server(),
		"--port", portarg, NULL };
	const char *env[] = { czt_asan_options(), NULL };
	struct czt_proc *p = czt_ops_spawn_hook(argv, env, activate, &lfd);

	cr_assert_eq(czt_wait_listening(p, 1, w, 20000), 1);
	czt_addr_tcp(&a, "127.0.0.1", port);
	cr_assert_eq(czt_ask(&a, 10000), w[0].pid, "served before");
	cr_assert_eq(shutdown(lfd, SHUT_RDWR), 0);
	cr_assert_eq(czt_wait_line(p, CZT_ERR, "listening on a new one", 1, 10000), 1,
		"the launcher makes the socket again and says so");
	cr_expect_eq(czt_ask_many(&a, 10, 2, pids, 10000), 10, "all answered after (%s)",
		czt_last_bad());
	for (int i = 0; i < 10; i++) {
		cr_expect_eq(pids[i], w[0].pid);
	}
	cr_expect_eq(czt_count(p, CZT_ERR, "shut it down"), 1, "said once");
	close(lfd);
	czt_stop(p);
}

/*
 * In none every worker holds the listening socket, so one can shut it
 * down for all: the primary notices within its check period, listens on a
 * new socket, and a worker that listens from then on serves.
 */
Test(security_peers, in_none_a_shared_socket_shut_down_is_made_again)
{
	int port = czt_free_port(AF_INET);
	const char *largs[] = { "-w", "1", "-s", "none", NULL };
	struct czt_worker w[CZT_MAX_WORKERS];
	struct czt_proc *p = launch_sh(largs, "if [ \"$CLUSTERIZE_WORKER_ID\" = 1 ]; then "
		"exec %s grab-shared %d; fi; exec %s --port %d", peer_path(), port, czt_server(),
		port);
	struct czt_addr a;
	pid_t pids[10];

	cr_assert_eq(czt_wait_line(p, CZT_OUT, "grab: ", 1, 20000), 1);
	cr_assert_eq(czt_count(p, CZT_OUT, "shutdown done"), 1, "in none the worker holds "
		"the socket itself, and shut it down");
	cr_assert_eq(czt_wait_line(p, CZT_ERR, "listening on a new one", 1, 10000), 1);
	cr_assert_eq(czt_signal(p, SIGTTIN), 0);
	cr_assert_eq(czt_wait_listening(p, 2, w, 20000), 2);
	czt_addr_tcp(&a, "127.0.0.1", port);
	cr_expect_eq(czt_ask_many(&a, 10, 2, pids, 10000), 10, "the new worker serves (%s)",
		czt_last_bad());
	for (int i = 0; i < 10; i++) {
		cr_expect_eq(pids[i], w[1].pid);
	}
	czt_stop(p);
}

/* --- finding 8: nothing waits for ever, nothing spins ------------------------- */

/*
 * The primary does not answer (stopped): a worker's bind() fails with
 * ETIMEDOUT after the request timeout and says why on stderr.
 */
Test(security_peers, a_call_the_primary_does_not_answer_fails_in_time)
{
	int port = czt_free_port(AF_INET), peer = 0;
	char portarg[16];

	snprintf(portarg, sizeof(portarg), "%d", port);
	const char *argv[] = { czt_launcher(), "-w", "1", "--", peer_path(), "bind-late",
		portarg, NULL };
	const char *env[] = { czt_asan_options(), "CLUSTERIZE_REQUEST_TIMEOUT_MS=500", NULL };
	struct czt_proc *p = czt_spawn(argv, env);

	cr_assert_eq(czt_wait_line(p, CZT_ERR, " online", 1, 20000), 1);
	cr_assert_eq(czt_wait_line(p, CZT_OUT, "waiting pid ", 1, 20000), 1);
	char *out = czt_read(p, CZT_OUT);

	cr_assert_eq(sscanf(strstr(out, "waiting pid "), "waiting pid %d", &peer), 1);
	free(out);
	cr_assert_eq(kill(p->pid, SIGSTOP), 0);
	kill(peer, SIGUSR1);
	cr_expect_eq(czt_wait_line(p, CZT_OUT, "bind: Connection timed out", 1, 10000), 1,
		"bind() fails with ETIMEDOUT");
	cr_expect_eq(czt_count(p, CZT_ERR, "no answer from the primary in 500 ms"), 1,
		"and says why");
	kill(p->pid, SIGCONT);
	czt_stop(p);
}

/* The process's CPU time (user + system), in clock ticks. */
static long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	cr_assert_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		&ut, &st), 2);
	return (long)(ut + st);
}

static int limit_fds(void *arg)
{
	struct rlimit rl = { 64, 64 };

	(void)arg;
	return setrlimit(RLIMIT_NOFILE, &rl);
}

static long long wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A launcher with 64 fds, and a worker that attaches 100 connections: the
 * launcher runs out of fds, refuses what it cannot take, and while the
 * worker holds them (1.5 s) it stays idle with a short log.
 */
Test(security_peers, at_its_fd_limit_the_primary_idles)
{
	const char *argv[] = { czt_launcher(), "-w", "1", "--", peer_path(), "attach-flood",
		"100", "1500", NULL };
	const char *env[] = { czt_asan_options(), NULL };
	struct czt_proc *p = czt_ops_spawn_hook(argv, env, limit_fds, NULL);
	int ok = 0, refused = 0;

	cr_assert_eq(czt_wait_line(p, CZT_OUT, "flood ok ", 1, 30000), 1);
	long t0 = cpu_ticks(p->pid);
	long long w0 = wall_ms();
	char *out = czt_read(p, CZT_OUT);

	cr_assert_eq(sscanf(strstr(out, "flood ok "), "flood ok %d refused %d", &ok,
		&refused), 2);
	free(out);
	cr_expect_gt(refused, 0, "the launcher ran out of fds (%d attached)", ok);
	cr_assert_eq(czt_wait_line(p, CZT_OUT, "flood done", 1, 30000), 1);
	long ticks = cpu_ticks(p->pid) - t0;
	long long wall = wall_ms() - w0;

	cr_expect_lt(ticks * 1000 / sysconf(_SC_CLK_TCK), wall / 4 + 100, "the launcher used "
		"%ld ticks of CPU in %lld ms at its fd limit", ticks, wall);
	cr_expect_lt(log_size(p), 8192, "its log stays small: %zu bytes", log_size(p));
	czt_stop(p);
}

/* --- the attach socket survives what apps do to fds ------------------------- */

/*
 * A worker marks every fd close-on-exec (fcntl, close_range), dup2()s
 * over the attach socket's number, closes every fd from 3 and execs the
 * server: the attach socket, which the shim keeps out of the app's reach
 * and inheritable, still brings the server into the cluster.
 */
static void survives_fd_games(const char *how)
{
	int port = czt_free_port(AF_INET);
	char portarg[16];
	struct czt_worker w[CZT_MAX_WORKERS];
	struct czt_addr a;
	pid_t pids[10];

	snprintf(portarg, sizeof(portarg), "%d", port);
	const char *argv[] = { czt_launcher(), "-w", "1", "--", peer_path(), "fd-abuse",
		czt_server(), "--port", portarg, NULL };
	const char *env[] = { czt_asan_options(), how, NULL };
	struct czt_proc *p = czt_spawn(argv, env);

	cr_assert_eq(czt_wait_listening(p, 1, w, 20000), 1, "the exec'd server listens "
		"through the primary");
	czt_addr_tcp(&a, "127.0.0.1", port);
	cr_expect_eq(czt_ask_many(&a, 10, 2, pids, 10000), 10, "and serves (%s)",
		czt_last_bad());
	for (int i = 0; i < 10; i++) {
		cr_expect_eq(pids[i], w[0].pid);
	}
	cr_expect_eq(czt_count(p, CZT_ERR, "not the launcher's socket"), 0);
	czt_stop(p);
}

Test(security_peers, the_attach_socket_survives_close_range_cloexec_and_exec)
{
	survives_fd_games(NULL);
}

Test(security_peers, the_attach_socket_survives_fcntl_cloexec_and_exec)
{
	survives_fd_games("CZ_PEER_FCNTL=1");
}
