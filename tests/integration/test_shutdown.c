/*
 * shutdown(listen_fd, SHUT_RDWR) by one worker only stops that worker: in
 * none the shared socket must stay listening for the others, in rr the
 * primary must stop handing that worker connections.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "czt.h"

TestSuite(shutdown, .init = czt_setup, .fini = czt_teardown, .timeout = 90);

static void check_shutdown(const char *sched)
{
	struct czt_cluster c;
	struct czt_addr a;
	pid_t first = -1, quitter, other;
	char line[64];

	/* Only worker 1 shuts its listener down, after its first connection. */
	czt_cluster_start(&c, 2, sched, "--shutdown-after", "1", "--shutdown-id", "1", NULL);
	cr_assert(c.w[0].id == 1 || c.w[1].id == 1, "worker 1 is one of the two");
	quitter = c.w[0].id == 1 ? c.w[0].pid : c.w[1].pid;
	other = c.w[0].id == 1 ? c.w[1].pid : c.w[0].pid;
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	for (int i = 0; i < 100 && first != quitter; i++) {
		first = czt_ask(&a, 10000);
		cr_assert_gt(first, 0, "connection %d before the shutdown answered", i);
	}
	cr_assert_eq(first, quitter, "worker 1 served a connection");
	snprintf(line, sizeof(line), "shutdown %d", (int)quitter);
	cr_assert_eq(czt_wait_line(c.proc, CZT_OUT, line, 1, 10000), 1, "worker 1 shut down");
	cr_expect_eq(czt_count(c.proc, CZT_OUT, "shutdown-error"), 0, "shutdown() succeeded");
	for (int i = 0; i < 10; i++) {
		pid_t pid = czt_ask(&a, 10000);

		cr_expect_eq(pid, other, "%s: connection %d after worker 1's shutdown answered by %d, "
			"expected the other worker %d", sched, i, (int)pid, (int)other);
	}
	czt_stop(c.proc);
}

Test(shutdown, one_worker_shutdown_leaves_others_serving_none)
{
	check_shutdown("none");
}

Test(shutdown, one_worker_shutdown_leaves_others_serving_rr)
{
	check_shutdown("rr");
}
