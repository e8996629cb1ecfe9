/*
 * shutdown(listen_fd, SHUT_RDWR), close(listen_fd) or fclose() of it
 * (fdopen()ed: libc closes it without close()) by one worker only
 * stops that worker: in none the shared socket must stay listening for the
 * others, in rr the primary must stop handing that worker connections.
 * The shim tells the primary before the call returns (rr's shutdown and
 * every close give the worker's hold back), so `clusterize status` shows
 * the worker without the address at once: that, not the 0.5 s after which
 * the primary would notice a worker that stopped taking connections, is
 * what the tests check.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "czt.h"
#include "czt_ops.h"

TestSuite(shutdown, .init = czt_setup, .fini = czt_ops_teardown, .timeout = 90);

struct first_ask {
	const struct czt_addr *a;
	pid_t want, got;
};

/* One connection: true once `want` answered it; stops at a failed ask. */
static bool asked_until(void *arg)
{
	struct first_ask *f = arg;

	f->got = czt_ask(f->a, 10000);
	return f->got == f->want || f->got <= 0;
}

/*
 * Worker 1 stops listening (`how`: "shutdown" or "closed") after its first
 * connection; `released`: the primary must have dropped its hold by then.
 */
static void check_quit(const char *sched, const char *how, bool released)
{
	const char *largs[] = { "-s", sched, "--control", czt_ctl_path(), NULL };
	const char *srv[] = { "--shutdown-after", "1", "--shutdown-id", "1",
		strcmp(how, "closed") == 0 ? "--close-instead" :
		strcmp(how, "fclosed") == 0 ? "--fclose-instead" : NULL, NULL };
	struct czt_status_row rows[4];
	struct czt_cluster c;
	struct czt_addr a;
	pid_t quitter, other;
	char line[64], addr[64];

	czt_cluster_start_server(&c, 2, largs, srv);
	cr_assert(c.w[0].id == 1 || c.w[1].id == 1, "worker 1 is one of the two");
	quitter = c.w[0].id == 1 ? c.w[0].pid : c.w[1].pid;
	other = c.w[0].id == 1 ? c.w[1].pid : c.w[0].pid;
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	/* In none the kernel picks: a worker 1 that is slow to reach accept()
	 * (a loaded machine) leaves every early one to worker 2, so ask until
	 * worker 1 has served one, by a deadline, not a number of tries. */
	struct first_ask f = { .a = &a, .want = quitter, .got = -1 };

	czt_wait_until(asked_until, &f, 10000);
	cr_assert_gt(f.got, 0, "a connection before the %s answered", how);
	cr_assert_eq(f.got, quitter, "worker 1 served a connection");
	snprintf(line, sizeof(line), "%s %d", how, (int)quitter);
	cr_assert_eq(czt_wait_line(c.proc, CZT_OUT, line, 1, 10000), 1, "worker 1 %s", how);
	cr_expect_eq(czt_count(c.proc, CZT_OUT, "-error"), 0, "the call succeeded");
	/* The worker printed its line after the call returned. */
	int n = czt_ops_status(czt_ctl_path(), rows, 4);
	const struct czt_status_row *w1 = czt_ops_status_row(rows, n, 1);
	const struct czt_status_row *w2 = czt_ops_status_row(rows, n, 2);

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", c.port);
	cr_assert(w1 != NULL && w2 != NULL, "status lists both workers");
	if (released) {
		cr_expect_str_eq(w1->addrs, "-", "%s/%s: the primary knows at once that worker 1 "
			"no longer listens", sched, how);
	}
	cr_expect_str_eq(w2->addrs, addr, "%s/%s: worker 2 still listens", sched, how);
	for (int i = 0; i < 10; i++) {
		pid_t pid = czt_ask(&a, 10000);

		cr_expect_eq(pid, other, "%s: connection %d after worker 1's %s answered by %d, "
			"expected the other worker %d", sched, i, how, (int)pid, (int)other);
	}
	czt_stop(c.proc);
}

/* In none, shutdown() keeps the shared socket (and the hold) for a later listen(). */
Test(shutdown, one_worker_shutdown_leaves_others_serving_none)
{
	check_quit("none", "shutdown", false);
}

Test(shutdown, one_worker_shutdown_leaves_others_serving_rr)
{
	check_quit("rr", "shutdown", true);
}

Test(shutdown, one_worker_close_leaves_others_serving_none)
{
	check_quit("none", "closed", true);
}

Test(shutdown, one_worker_close_leaves_others_serving_rr)
{
	check_quit("rr", "closed", true);
}

/* libc's fclose() closes without calling close(): the shim wraps fclose. */
Test(shutdown, one_worker_fclose_leaves_others_serving_none)
{
	check_quit("none", "fclosed", true);
}

Test(shutdown, one_worker_fclose_leaves_others_serving_rr)
{
	check_quit("rr", "fclosed", true);
}

/*
 * After shutdown(), listen() again: the worker binds through the primary
 * anew and serves again (rr gives it its turns again).
 */
Test(shutdown, listen_again_after_shutdown_serves_again_rr)
{
	const char *largs[] = { "-s", "rr", "--control", czt_ctl_path(), NULL };
	const char *srv[] = { "--shutdown-after", "1", "--shutdown-id", "1", "--relisten", NULL };
	struct czt_status_row rows[4];
	struct czt_cluster c;
	struct czt_addr a;
	pid_t pids[8], uniq[8], quitter;
	int counts[8];
	char line[64], addr[64];

	czt_cluster_start_server(&c, 2, largs, srv);
	quitter = c.w[0].id == 1 ? c.w[0].pid : c.w[1].pid;
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	/* One at a time, so worker 1 gets one of the first two. */
	cr_assert_eq(czt_ask_many(&a, 2, 1, pids, 10000), 2, "answered (%s)", czt_last_bad());
	snprintf(line, sizeof(line), "relistened %d", (int)quitter);
	cr_assert_eq(czt_wait_line(c.proc, CZT_OUT, line, 1, 10000), 1, "worker 1 listens again");
	int n = czt_ops_status(czt_ctl_path(), rows, 4);
	const struct czt_status_row *w1 = czt_ops_status_row(rows, n, 1);

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", c.port);
	cr_assert_not_null(w1);
	cr_expect_str_eq(w1->addrs, addr, "worker 1 holds the address again");
	cr_expect_eq(czt_ask_many(&a, 8, 1, pids, 10000), 8, "answered (%s)", czt_last_bad());
	cr_expect_eq(czt_tally(pids, 8, uniq, counts, 8), 2, "both workers serve again");
	czt_stop(c.proc);
}
