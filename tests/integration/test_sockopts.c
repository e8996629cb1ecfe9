/*
 * Socket options set before listen() apply to the socket the primary owns:
 * connections the kernel hands out inherit SO_KEEPALIVE, TCP_NODELAY and
 * SO_RCVBUF from it (the server answers "bad-opts" otherwise), and
 * TCP_DEFER_ACCEPT holds back a connection until it sends data.
 * getsockopt on the listener reports what a real listener would.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "czt.h"

TestSuite(sockopts, .init = czt_setup, .fini = czt_teardown, .timeout = 90);

/* A client that sends a byte (TCP_DEFER_ACCEPT waits for one). */
static pid_t ask_with_data(const struct czt_addr *a)
{
	int fd = czt_connect(a, 10000);

	if (fd < 0) {
		return fd;
	}
	pid_t pid = send(fd, "x", 1, MSG_NOSIGNAL) == 1 ? czt_read_pid(fd, 10000) : -errno;

	close(fd);
	return pid;
}

static void check_listener_opts(const char *sched)
{
	struct czt_cluster c;
	struct czt_addr a;
	char want[128];

	czt_cluster_start(&c, 2, sched, "--sockopts", NULL);
	cr_assert_eq(czt_wait_line(c.proc, CZT_OUT, "sockopt ", 2, 10000), 2,
		"both workers report their listener's options");
	snprintf(want, sizeof(want), "sockopt acceptconn=1 type=%d domain=%d protocol=%d "
		"reuseaddr=1 keepalive=1", SOCK_STREAM, AF_INET, IPPROTO_TCP);
	cr_expect_eq(czt_count(c.proc, CZT_OUT, want), 2,
		"getsockopt on the listener gives \"%s\" in each worker", want);
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	for (int i = 0; i < 6; i++) {
		pid_t pid = ask_with_data(&a);

		cr_expect_gt(pid, 0, "%s: connection %d answered with inherited options (%s)", sched,
			i, czt_last_bad());
	}
	czt_stop(c.proc);
}

Test(sockopts, listener_options_apply_rr)
{
	check_listener_opts("rr");
}

Test(sockopts, listener_options_apply_none)
{
	check_listener_opts("none");
}

static void check_defer_accept(const char *sched)
{
	struct czt_cluster c;
	struct czt_addr a;

	czt_cluster_start(&c, 1, sched, "--sockopts", NULL);
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	int silent = czt_connect(&a, 10000);

	cr_assert_geq(silent, 0, "connect: %s", strerror(-silent));
	/* Connected after `silent`, but it talks, so it is accepted first. */
	cr_assert_gt(ask_with_data(&a), 0, "a client that sends data is answered");
	struct pollfd p = { .fd = silent, .events = POLLIN };

	cr_expect_eq(poll(&p, 1, 0), 0, "%s: the silent connection was not accepted yet "
		"(TCP_DEFER_ACCEPT on the primary's socket)", sched);
	cr_assert_eq(send(silent, "x", 1, MSG_NOSIGNAL), 1);
	cr_expect_gt(czt_read_pid(silent, 10000), 0, "once it sends, it is answered");
	close(silent);
	czt_stop(c.proc);
}

Test(sockopts, defer_accept_applies_rr)
{
	check_defer_accept("rr");
}

Test(sockopts, defer_accept_applies_none)
{
	check_defer_accept("none");
}

/*
 * Options set on an rr listener after listen() are the primary's business:
 * the shim accepts them and reads them back as set; SO_LINGER (not an int)
 * is the channel's own.
 */
static void check_opts_after_listen(const char *sched)
{
	struct czt_cluster c;

	czt_cluster_start(&c, 2, sched, "--opts-after-listen", NULL);
	cr_assert_eq(czt_wait_line(c.proc, CZT_OUT, "after-listen ", 2, 10000), 2,
		"both workers report");
	cr_expect_eq(czt_count(c.proc, CZT_OUT, "after-listen acceptconn=1 keepalive=1 nodelay=1 "
		"rcvbuf-ok=1 linger=0"), 2, "%s: each worker reads back what it set", sched);
	czt_stop(c.proc);
}

Test(sockopts, options_set_after_listen_read_back_rr)
{
	check_opts_after_listen("rr");
}

Test(sockopts, options_set_after_listen_read_back_none)
{
	check_opts_after_listen("none");
}
