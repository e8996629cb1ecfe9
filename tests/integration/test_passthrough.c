/*
 * The shim preloaded without a launcher changes nothing: servers bind their
 * own sockets and answer as usual, nothing is printed, and real kernel
 * semantics (like shutdown() ending a listener) are kept.  cz-server exits
 * 0 on SIGTERM, python dies of it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "czt.h"

TestSuite(passthrough, .init = czt_setup, .fini = czt_teardown, .timeout = 60);

/* cz-server ARGS with only the shim preloaded; returns it once it reported a port. */
static struct czt_proc *start_plain(const char *const args[], const char *extra_env)
{
	static char preload[1100];
	const char *argv[16];
	int n = 0;

	snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", czt_shim());
	const char *env[] = { preload, czt_asan_options(), "CLUSTERIZE_CONTROL_FD",
		"CLUSTERIZE_WORKER_ID", "NODE_UNIQUE_ID", extra_env, NULL };

	argv[n++] = czt_server();
	for (int i = 0; args[i] != NULL; i++) {
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	struct czt_proc *p = czt_spawn(argv, env);
	int got = czt_wait_re(p, CZT_OUT, "^(port|unix) ", 1, 10000);

	cr_assert_eq(got, 1, "the server started under the bare shim");
	return p;
}

static int port_of(const struct czt_proc *p)
{
	int port;

	cr_assert_eq(czt_reported_ports(p, &port, 1), 1);
	cr_assert_gt(port, 0);
	return port;
}

static void expect_silent(const struct czt_proc *p)
{
	char *err = czt_read(p, CZT_ERR);

	cr_expect_str_empty(err, "nothing on stderr without a launcher: %s", err);
	free(err);
}

static void check_tcp(const char *style, bool children)
{
	struct czt_addr a;
	const char *args[] = { "--style", style, NULL };
	struct czt_proc *p = start_plain(args, NULL);

	czt_addr_tcp(&a, "127.0.0.1", port_of(p));
	for (int i = 0; i < 5; i++) {
		pid_t pid = czt_ask(&a, 10000);

		cr_expect(pid > 0 && (children ? czt_ppid(pid) == p->pid : pid == p->pid),
			"%s: answered by the server itself (%d, server %d) %s", style, (int)pid,
			(int)p->pid, czt_last_bad());
	}
	expect_silent(p);
	czt_stop_as(p, CZT_EXITED(0));
}

Test(passthrough, blocking_server_unchanged)
{
	check_tcp("blocking", false);
}

Test(passthrough, epoll_server_unchanged)
{
	check_tcp("epoll-et", false);
}

Test(passthrough, prefork_server_unchanged)
{
	check_tcp("prefork", true);
}

Test(passthrough, fd_juggling_server_unchanged)
{
	struct czt_addr a;
	const char *args[] = { "--fd-games", "--close-fds", NULL };
	struct czt_proc *p = start_plain(args, NULL);

	czt_addr_tcp(&a, "127.0.0.1", port_of(p));
	cr_expect_eq(czt_ask(&a, 10000), p->pid, "answered by the server (%s)", czt_last_bad());
	czt_stop_as(p, CZT_EXITED(0));
}

Test(passthrough, udp_and_unix_unchanged)
{
	struct czt_addr a;
	char path[256];
	const char *udp[] = { "--udp", NULL };
	struct czt_proc *p = start_plain(udp, NULL);

	czt_addr_udp(&a, "127.0.0.1", port_of(p));
	cr_expect_eq(czt_ask(&a, 10000), p->pid, "UDP answered by the server");
	snprintf(path, sizeof(path), "%s/plain.sock", czt_tmpdir());
	const char *un[] = { "--unix", path, NULL };
	struct czt_proc *q = start_plain(un, NULL);

	czt_addr_unix(&a, path);
	cr_expect_eq(czt_ask(&a, 10000), q->pid, "unix socket answered by the server");
	czt_stop_as(p, CZT_EXITED(0));
	czt_stop_as(q, CZT_EXITED(0));
}

Test(passthrough, shutdown_keeps_kernel_semantics)
{
	struct czt_addr a;
	const char *args[] = { "--shutdown-after", "1", NULL };
	struct czt_proc *p = start_plain(args, NULL);

	czt_addr_tcp(&a, "127.0.0.1", port_of(p));
	cr_assert_eq(czt_ask(&a, 10000), p->pid, "first connection answered");
	cr_assert_eq(czt_wait_line(p, CZT_OUT, "shutdown ", 1, 10000), 1);
	/* Without a launcher, shutdown() of a listener stops it, as without the shim. */
	cr_expect_eq(czt_ask(&a, 5000), -ECONNREFUSED, "connections refused after shutdown()");
	czt_stop_as(p, CZT_EXITED(0));
}

Test(passthrough, unusable_control_socket_falls_back)
{
	struct czt_addr a;
	static char id[] = "CLUSTERIZE_WORKER_ID=1";
	static char ctl[] = "CLUSTERIZE_CONTROL_FD=987"; /* not open here */
	char preload[1100];

	snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", czt_shim());
	const char *argv[] = { czt_server(), "--style", "poll", NULL };
	const char *env[] = { preload, czt_asan_options(), id, ctl, NULL };
	struct czt_proc *p = czt_spawn(argv, env);

	cr_assert_eq(czt_wait_line(p, CZT_OUT, "port ", 1, 10000), 1, "the server starts");
	czt_addr_tcp(&a, "127.0.0.1", port_of(p));
	cr_expect_eq(czt_ask(&a, 10000), p->pid, "it serves on its own");
	cr_expect_leq(czt_count(p, CZT_ERR, "clusterize"), 1, "at most one warning");
	czt_stop_as(p, CZT_EXITED(0));
}

Test(passthrough, python_http_server_unchanged)
{
	const char *python = czt_which("python3");
	char preload[1100];

	if (python == NULL) {
		cr_skip_test("python3 is not installed");
	}
	snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", czt_shim());
	const char *argv[] = { python, "-m", "http.server", "0", "--bind", "127.0.0.1",
		"--directory", czt_tmpdir(), NULL };
	const char *env[] = { preload, "PYTHONUNBUFFERED=1", "CLUSTERIZE_CONTROL_FD",
		"NODE_UNIQUE_ID", NULL };
	struct czt_proc *p = czt_spawn(argv, env);
	int port = 0;

	cr_assert_eq(czt_wait_line(p, CZT_OUT, "Serving HTTP on 127.0.0.1 port ", 1, 20000), 1);
	char *out = czt_read(p, CZT_OUT);

	cr_assert_eq(sscanf(strstr(out, " port ") + 6, "%d", &port), 1, "port in: %s", out);
	free(out);
	int status = czt_http_get("127.0.0.1", port, "/", NULL, 0, 10000);

	cr_expect_eq(status, 200, "GET / under the bare shim: %d", status);
	czt_stop_as(p, CZT_KILLED(SIGTERM));
}
