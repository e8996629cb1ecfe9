/*
 * UDP and unix datagram sockets (always one shared socket, whatever the
 * policy) and unix stream sockets (the primary binds the path; every worker
 * serves it).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "czt.h"

#define DATAGRAMS 20
#define CONNS 30

TestSuite(udp_unix, .init = czt_setup, .fini = czt_teardown, .timeout = 90);

static void check_udp(const char *sched)
{
	struct czt_cluster c;
	struct czt_addr a;
	int ports[4];

	czt_cluster_start(&c, 2, sched, "--udp", "--port", "0", NULL);
	cr_expect(strncmp(c.w[0].what, "udp 127.0.0.1:", 14) == 0, "UDP listening line: %s",
		c.w[0].what);
	cr_assert_gt(c.port, 0, "a UDP port in %s", c.w[0].what);
	cr_expect_eq(c.w[1].port, c.port, "both workers share one UDP port");
	cr_assert_eq(czt_wait_line(c.proc, CZT_OUT, "port ", 2, 10000), 2);
	cr_assert_eq(czt_reported_ports(c.proc, ports, 4), 2);
	cr_expect(ports[0] == c.port && ports[1] == c.port,
		"getsockname in the workers (%d, %d) matches the launcher's %d", ports[0],
		ports[1], c.port);
	czt_addr_udp(&a, "127.0.0.1", c.port);
	for (int i = 0; i < DATAGRAMS; i++) {
		pid_t pid = czt_ask(&a, 5000);

		cr_expect(pid > 0 && czt_cluster_owns(&c, pid),
			"datagram %d answered by a worker (got %d)", i, (int)pid);
	}
	czt_stop(c.proc);
}

Test(udp_unix, udp_echo_rr)
{
	check_udp("rr");
}

Test(udp_unix, udp_echo_none)
{
	check_udp("none");
}

static void check_unix(const char *sched, const char *style)
{
	struct czt_cluster c;
	struct czt_addr a;
	char path[256], want[300];
	pid_t pids[CONNS], uniq[CONNS];
	int counts[CONNS];

	snprintf(path, sizeof(path), "%s/cz.sock", czt_tmpdir());
	czt_cluster_start(&c, 2, sched, "--unix", path, "--style", style, NULL);
	snprintf(want, sizeof(want), "unix %s", path);
	cr_expect_str_eq(c.w[0].what, want, "unix listening line");
	czt_addr_unix(&a, path);
	int answered = czt_ask_many(&a, CONNS, 4, pids, 20000);

	cr_expect_eq(answered, CONNS, "%d of %d unix connections answered (%s)", answered, CONNS,
		czt_last_bad());
	int distinct = czt_tally(pids, CONNS, uniq, counts, CONNS);

	for (int i = 0; i < distinct; i++) {
		cr_expect(czt_cluster_owns(&c, uniq[i]), "pid %d is a worker", (int)uniq[i]);
	}
	if (strcmp(sched, "rr") == 0) {
		cr_expect_eq(distinct, 2, "rr: both workers serve the unix socket");
	}
	czt_stop(c.proc);
}

Test(udp_unix, unix_stream_rr)
{
	check_unix("rr", "blocking");
}

Test(udp_unix, unix_stream_none)
{
	check_unix("none", "blocking");
}

Test(udp_unix, unix_stream_epoll_rr)
{
	check_unix("rr", "epoll-et");
}

/*
 * Unix datagram: the primary binds the path once and every worker shares
 * that socket (a second bind() of a path fails with EADDRINUSE, so a
 * worker left to bind for itself would exit).
 */
static void check_unix_dgram(const char *sched)
{
	struct czt_cluster c;
	struct czt_addr a;
	char path[256], want[300];

	snprintf(path, sizeof(path), "%s/dg.sock", czt_tmpdir());
	czt_cluster_start(&c, 2, sched, "--unix", path, "--udp", NULL);
	snprintf(want, sizeof(want), "unixgram %s", path);
	for (int i = 0; i < c.nw; i++) {
		cr_expect_str_eq(c.w[i].what, want, "worker %d's listening line", c.w[i].id);
	}
	czt_addr_unix_dgram(&a, path);
	for (int i = 0; i < DATAGRAMS; i++) {
		pid_t pid = czt_ask(&a, 5000);

		cr_expect(pid > 0 && czt_cluster_owns(&c, pid),
			"datagram %d answered by a worker (got %d)", i, (int)pid);
	}
	cr_expect_eq(czt_count(c.proc, CZT_ERR, " exited with"), 0, "no worker failed");
	czt_stop(c.proc);
}

Test(udp_unix, unix_dgram_rr)
{
	check_unix_dgram("rr");
}

Test(udp_unix, unix_dgram_none)
{
	check_unix_dgram("none");
}
