/*
 * Ports: port 0 gives every worker the same port (and getsockname says so);
 * a fixed port and IPv6 loopback work; bind errors come back from the primary
 * with their errno (EADDRINUSE, EACCES) and end in a give-up, not a spin.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "czt.h"

#define NOBODY 65534

TestSuite(ports, .init = czt_setup, .fini = czt_teardown, .timeout = 90);

static void check_port0(const char *sched)
{
	struct czt_cluster c;
	struct czt_addr a;
	int ports[8];
	pid_t pids[16], uniq[16];
	int counts[16];

	czt_cluster_start(&c, 4, sched, "--port", "0", NULL);
	cr_assert_gt(c.port, 0, "the launcher logs a real port for port 0: %s", c.w[0].what);
	for (int i = 1; i < c.nw; i++) {
		cr_expect_eq(c.w[i].port, c.port, "worker %d listens on %d, worker %d on %d",
			c.w[i].id, c.w[i].port, c.w[0].id, c.port);
	}
	cr_assert_eq(czt_wait_line(c.proc, CZT_OUT, "port ", 4, 10000), 4,
		"each worker printed its getsockname port");
	int n = czt_reported_ports(c.proc, ports, 8);

	for (int i = 0; i < n; i++) {
		cr_expect_eq(ports[i], c.port, "getsockname in a worker says %d, the launcher %d",
			ports[i], c.port);
	}
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	cr_expect_eq(czt_ask_many(&a, 16, 4, pids, 20000), 16, "the port answers");
	if (strcmp(sched, "rr") == 0) {
		cr_expect_eq(czt_tally(pids, 16, uniq, counts, 16), 4, "all 4 workers serve it");
	}
	czt_stop(c.proc);
}

Test(ports, port0_is_one_port_for_all_workers_rr)
{
	check_port0("rr");
}

Test(ports, port0_is_one_port_for_all_workers_none)
{
	check_port0("none");
}

Test(ports, fixed_port_is_used)
{
	struct czt_cluster c;
	struct czt_addr a;
	char port[16];
	int want = czt_free_port(AF_INET);

	snprintf(port, sizeof(port), "%d", want);
	czt_cluster_start(&c, 2, "rr", "--port", port, NULL);
	cr_expect_eq(c.port, want, "launcher listens on the asked port %d (%s)", want,
		c.w[0].what);
	czt_addr_tcp(&a, "127.0.0.1", want);
	cr_expect_gt(czt_ask(&a, 10000), 0, "port %d answers", want);
	czt_stop(c.proc);
}

static void check_ipv6(const char *sched)
{
	struct czt_cluster c;
	struct czt_addr a;
	pid_t pids[10];

	czt_cluster_start(&c, 2, sched, "--addr", "::1", "--v6only", "--style", "epoll-lt",
		NULL);
	cr_expect(strncmp(c.w[0].what, "[::1]:", 6) == 0, "IPv6 listening line: %s",
		c.w[0].what);
	czt_addr_tcp(&a, "::1", c.port);
	cr_expect_eq(czt_ask_many(&a, 10, 2, pids, 20000), 10, "[::1]:%d answers", c.port);
	czt_stop(c.proc);
}

Test(ports, ipv6_loopback_rr)
{
	check_ipv6("rr");
}

Test(ports, ipv6_loopback_none)
{
	check_ipv6("none");
}

/* The run must end by itself, non-zero, with the server's bind error. */
static void expect_bind_error(struct czt_proc *p, int err)
{
	char line[128];

	snprintf(line, sizeof(line), "bind: %s", strerror(err));
	cr_expect_geq(czt_wait_line(p, CZT_ERR, line, 1, 20000), 1, "the server saw '%s'", line);
	/* The server's `die("bind")` exits 1: the crash loop ends with it. */
	czt_expect_exit(p, CZT_EXITED(1), 60000);
	cr_expect_eq(czt_count(p, CZT_ERR, ") listening on "), 0, "nothing listened");
}

static void check_in_use(const char *sched)
{
	int port;
	char arg[16];
	int held = czt_hold_port("127.0.0.1", &port);

	snprintf(arg, sizeof(arg), "%d", port);
	const char *argv[] = { czt_launcher(), "-w", "2", "-s", sched, "--max-restarts", "2",
		"--", czt_server(), "--port", arg, NULL };

	expect_bind_error(czt_spawn(argv, (const char *[]){ czt_asan_options(), NULL }),
		EADDRINUSE);
	close(held);
}

Test(ports, eaddrinuse_when_another_process_holds_the_port_rr)
{
	check_in_use("rr");
}

Test(ports, eaddrinuse_when_another_process_holds_the_port_none)
{
	check_in_use("none");
}

/* A privileged port nobody else uses, so only the privilege can fail. */
static int free_privileged_port(void)
{
	for (int port = 1000; port > 500; port--) {
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		int r = bind(fd, (struct sockaddr *)&sin, sizeof(sin));

		close(fd);
		if (r == 0) {
			return port;
		}
	}
	cr_skip_test("no free port below 1000 to try EACCES on");
	return -1;
}

Test(ports, eacces_for_privileged_port_as_nobody)
{
	char arg[16];

	if (geteuid() != 0) {
		cr_skip_test("needs root to drop to nobody");
	}
	snprintf(arg, sizeof(arg), "%d", free_privileged_port());
	const char *argv[] = { czt_launcher(), "-w", "2", "--max-restarts", "2", "--",
		czt_server(), "--port", arg, NULL };

	expect_bind_error(czt_spawn_as(argv, (const char *[]){ czt_asan_options(), NULL },
		NOBODY, NOBODY), EACCES);
}
