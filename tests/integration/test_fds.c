/*
 * The shim's fd table follows the app: a server that closes every inherited
 * fd at start (close_range(3, ~0U, 0), closefrom(3)) keeps its control
 * connection, and a
 * listener moved through F_DUPFD_CLOEXEC, syscall(SYS_close), dup2 and dup3
 * (as libuv does) is still the shared one.  A listener closed where no
 * wrapper sees it (fclose of an fdopen()ed socket) does not haunt the next
 * socket that gets its fd number.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "czt.h"

#define CONNS 20

TestSuite(fds, .init = czt_setup, .fini = czt_teardown, .timeout = 90);

static void check_serves(const char *sched, const char *flag)
{
	struct czt_cluster c;
	struct czt_addr a;
	pid_t pids[CONNS], uniq[CONNS];
	int counts[CONNS];

	const char *largs[] = { "-s", sched, "-v", NULL };
	const char *srv[] = { flag, "--style", "epoll-et", NULL };

	czt_cluster_start_server(&c, 2, largs, srv);
	cr_expect_eq(c.w[1].port, c.port, "%s: both workers listen on one port", flag);
	/* Its connection to the primary survived: the shim never had to say hello again. */
	for (int i = 0; i < c.nw; i++) {
		char line[96];

		snprintf(line, sizeof(line), "worker %d: hello from pid %d ", c.w[i].id,
			(int)c.w[i].pid);
		cr_expect_eq(czt_count(c.proc, CZT_ERR, line), 1, "%s: one hello from worker %d",
			flag, c.w[i].id);
	}
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	int answered = czt_ask_many(&a, CONNS, 4, pids, 20000);

	cr_expect_eq(answered, CONNS, "%s/%s: %d of %d answered (%s)", flag, sched, answered,
		CONNS, czt_last_bad());
	int distinct = czt_tally(pids, CONNS, uniq, counts, CONNS);

	for (int i = 0; i < distinct; i++) {
		cr_expect(czt_cluster_owns(&c, uniq[i]), "pid %d is a worker", (int)uniq[i]);
	}
	if (strcmp(sched, "rr") == 0) {
		cr_expect_eq(distinct, 2, "%s/rr: both workers serve", flag);
	}
	/* Whatever the app did to its fds, the worker still holds its attach
	 * socket (which its children need to reach the primary). */
	cr_expect_eq(czt_count(c.proc, CZT_ERR, "no process holds its attach socket"), 0,
		"%s: the attach socket survived", flag);
	czt_stop(c.proc);
}

Test(fds, close_range_at_start_rr)
{
	check_serves("rr", "--close-fds");
}

Test(fds, close_range_at_start_none)
{
	check_serves("none", "--close-fds");
}

/* glibc's closefrom(), which the shim must split around its own fds as close_range(). */
Test(fds, closefrom_at_start_rr)
{
	check_serves("rr", "--closefrom");
}

Test(fds, closefrom_at_start_none)
{
	check_serves("none", "--closefrom");
}

/*
 * Every socket and fd call through syscall(2) (bind, listen, accept4,
 * getsockname, setsockopt, close, dup, dup2, dup3, fcntl): the shim routes
 * them as it does libc's.
 */
Test(fds, everything_through_syscall_rr)
{
	check_serves("rr", "--syscalls");
}

Test(fds, everything_through_syscall_none)
{
	check_serves("none", "--syscalls");
}

/* Also setsockopt, getsockopt and plain accept, by syscall(2). */
Test(fds, options_and_accept_through_syscall_rr)
{
	struct czt_cluster c;
	struct czt_addr a;
	pid_t pids[8];

	czt_cluster_start(&c, 2, "rr", "--syscalls", "--sockopts", "--style", "blocking", NULL);
	cr_assert_eq(czt_wait_line(c.proc, CZT_OUT, "sockopt acceptconn=1 ", 2, 10000), 2,
		"getsockopt by syscall answers as a listener would");
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	for (int i = 0; i < 8; i++) {
		int fd = czt_connect(&a, 10000);

		/* TCP_DEFER_ACCEPT (--sockopts) waits for a byte. */
		cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
		cr_assert_eq(send(fd, "x", 1, MSG_NOSIGNAL), 1);
		pids[i] = czt_read_pid(fd, 10000);
		close(fd);
		cr_expect(czt_cluster_owns(&c, pids[i]), "connection %d answered by a worker with "
			"the listener's options (%d %s)", i, (int)pids[i], czt_last_bad());
	}
	czt_stop(c.proc);
}

/* An app that dup2()s over the shim's own fd: the shim moves it away first. */
Test(fds, dup2_over_the_shims_fd_rr)
{
	check_serves("rr", "--onto-shim-fd");
}

Test(fds, dup2_over_the_shims_fd_none)
{
	check_serves("none", "--onto-shim-fd");
}

Test(fds, dup_and_syscall_close_rr)
{
	check_serves("rr", "--fd-games");
}

Test(fds, dup_and_syscall_close_none)
{
	check_serves("none", "--fd-games");
}

Test(fds, fclose_then_new_socket_rr)
{
	check_serves("rr", "--fclose-first");
}

Test(fds, fclose_then_new_socket_none)
{
	check_serves("none", "--fclose-first");
}

/*
 * Node's cluster with SCHED_NONE binds in its primary and sends the socket
 * to its workers, who listen.  The shim's bind is virtual until listen(),
 * so sending the socket must install the real one first, by sendmsg or by
 * sendmmsg.  Here each worker is such a primary, with one child.
 */
static void check_pass_bound(const char *how)
{
	struct czt_cluster c;
	struct czt_addr a;
	pid_t pids[CONNS];
	char port[16];
	int want = czt_free_port(AF_INET);

	snprintf(port, sizeof(port), "%d", want);
	czt_cluster_start(&c, 2, "rr", "--port", port, "--pass-bound", how, NULL);
	/* Sent unbound, the socket would be listened on at a random port. */
	cr_assert_eq(c.port, want, "%s: listening on the port bound", how);
	cr_expect_eq(c.w[1].port, c.port, "%s: both workers listen on one port", how);
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	int answered = czt_ask_many(&a, CONNS, 4, pids, 20000);

	cr_expect_eq(answered, CONNS, "%s: %d of %d answered (%s)", how, answered, CONNS,
		czt_last_bad());
	for (int i = 0; i < CONNS; i++) {
		cr_expect(pids[i] <= 0 || czt_cluster_worker_of(&c, pids[i]) >= 0,
			"%s: pid %d that answered is a worker's child", how, (int)pids[i]);
	}
	czt_stop(c.proc);
}

Test(fds, bound_socket_sent_with_sendmsg)
{
	check_pass_bound("sendmsg");
}

Test(fds, bound_socket_sent_with_sendmmsg)
{
	check_pass_bound("sendmmsg");
}
