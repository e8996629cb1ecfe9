/*
 * Scaling: SIGTTIN adds a worker under a new id, SIGTTOU drains and removes
 * one while clients keep being answered, never below one worker;
 * `clusterize scale N` sets the count either way.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "czt.h"
#include "czt_ops.h"

#define CONNS 60

TestSuite(scale, .init = czt_setup, .fini = czt_teardown, .timeout = 120);

/* rr hands connections out in turn: CONNS of them reach every live worker. */
static void expect_all_serve(const struct czt_cluster *c, const struct czt_worker *w, int n)
{
	pid_t pids[CONNS], uniq[CZT_MAX_WORKERS];
	int counts[CZT_MAX_WORKERS];
	struct czt_addr a;

	czt_addr_tcp(&a, "127.0.0.1", c->port);
	int answered = czt_ask_many(&a, CONNS, 4, pids, 20000);

	cr_expect_eq(answered, CONNS, "%d of %d connections answered (%s)", answered, CONNS,
		czt_last_bad());
	int k = czt_tally(pids, CONNS, uniq, counts, CZT_MAX_WORKERS);

	cr_expect_eq(k, n, "%d workers answered, %d live", k, n);
	for (int i = 0; i < n; i++) {
		bool seen = false;

		for (int j = 0; j < k; j++) {
			seen |= uniq[j] == w[i].pid;
		}
		cr_expect(seen, "worker %d (pid %d) answers", w[i].id, (int)w[i].pid);
	}
}

Test(scale, sigttin_adds_a_worker_with_a_new_id)
{
	struct czt_cluster c;
	struct czt_worker w[CZT_MAX_WORKERS];

	czt_cluster_start(&c, 4, "rr", "--style", "epoll-et", NULL);
	cr_assert_eq(czt_signal(c.proc, SIGTTIN), 0);
	cr_expect_eq(czt_wait_line(c.proc, CZT_ERR,
		"clusterize: scaling from 4 to 5 workers (SIGTTIN)", 1, 10000), 1);
	cr_assert_eq(czt_wait_live(c.proc, 5, w, 20000), 5, "5 workers listen");
	cr_expect_eq(w[4].id, 5, "the new worker is worker 5");
	cr_expect_eq(w[4].port, c.port, "it listens on the same port");
	expect_all_serve(&c, w, 5);
	czt_stop(c.proc);
}

Test(scale, sigttou_drains_the_removed_worker_under_load)
{
	const char *cmd[] = { czt_server(), "--graceful", "--delay-ms", "20", NULL };
	const char *largs[] = { "-s", "rr", NULL };
	struct czt_cluster c;
	struct czt_worker w[CZT_MAX_WORKERS];
	struct czt_load_result r;
	struct czt_addr a;

	czt_cluster_start_argv(&c, 4, largs, cmd, NULL);
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	struct czt_load *l = czt_load_start(&a, 8, 20000, 60000);

	cr_assert(czt_load_wait_more(l, 20, 10000), "the load gets answers");
	cr_assert_eq(czt_signal(c.proc, SIGTTOU), 0);
	cr_expect_eq(czt_wait_line(c.proc, CZT_ERR,
		"clusterize: scaling from 4 to 3 workers (SIGTTOU)", 1, 10000), 1);
	cr_assert_eq(czt_wait_live(c.proc, 3, w, 20000), 3, "3 workers are left");
	cr_expect_eq(czt_count(c.proc, CZT_ERR, ") exited with code 0"), 1,
		"the removed worker finished its requests and exited 0");
	cr_assert(czt_load_wait_more(l, 20, 10000), "answers after the removal");
	czt_load_stop(l, &r, 10000);
	cr_expect_eq(r.failed, 0, "%d of %d connections failed; the first (#%d): %s", r.failed,
		r.asked, r.first_failed, r.first_bad);
	expect_all_serve(&c, w, 3);
	czt_stop(c.proc);
}

Test(scale, sigttou_never_goes_below_one_worker)
{
	struct czt_cluster c;
	struct czt_worker w[CZT_MAX_WORKERS];

	czt_cluster_start(&c, 2, "rr", "--style", "blocking", NULL);
	cr_assert_eq(czt_signal(c.proc, SIGTTOU), 0);
	cr_assert_eq(czt_wait_line(c.proc, CZT_ERR,
		"clusterize: scaling from 2 to 1 workers (SIGTTOU)", 1, 10000), 1);
	cr_assert_eq(czt_signal(c.proc, SIGTTOU), 0);
	cr_expect_eq(czt_wait_line(c.proc, CZT_ERR,
		"clusterize: warning: SIGTTOU ignored: only one worker left", 1, 10000), 1);
	cr_assert_eq(czt_wait_live(c.proc, 1, w, 20000), 1, "one worker is left");
	expect_all_serve(&c, w, 1);
	cr_expect_eq(czt_count(c.proc, CZT_ERR, "scaling from"), 1, "scaled once only");
	czt_stop(c.proc);
}

/*
 * A worker being removed gets no new connection, even while it still runs:
 * this one ignores its SIGTERM, and --grace keeps it alive for 30 s.
 */
Test(scale, removed_worker_gets_no_new_connection)
{
	const char *largs[] = { "-s", "rr", "-v", "--grace", "30", NULL };
	const char *srv[] = { "--ignore-term", "--style", "poll", NULL };
	struct czt_cluster c;
	struct czt_addr a;
	char *log, *at;
	int id, pid = -1;

	czt_cluster_start_server(&c, 2, largs, srv);
	cr_assert_eq(czt_signal(c.proc, SIGTTOU), 0);
	cr_assert_eq(czt_wait_re(c.proc, CZT_ERR, "worker [0-9]+ \\(pid [0-9]+\\) drained: SIGTERM",
		1, 10000), 1, "the removed worker is drained and told to stop");
	log = czt_read(c.proc, CZT_ERR);
	at = strstr(log, ") drained: SIGTERM");
	while (at > log && at[-1] != '\n') {
		at--;
	}
	at = strstr(at, "worker ");
	cr_assert_eq(sscanf(at, "worker %d (pid %d)", &id, &pid), 2, "%s", at);
	free(log);
	pid_t keeper = c.w[0].pid == pid ? c.w[1].pid : c.w[0].pid;

	cr_assert(czt_pid_alive(pid), "worker %d (pid %d) ignores SIGTERM and runs on", id, pid);
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	for (int i = 0; i < 20; i++) {
		pid_t got = czt_ask(&a, 10000);

		cr_expect_eq(got, keeper, "connection %d answered by %d: expected the worker that "
			"stays (%d), not the one being removed (%d)", i, (int)got, (int)keeper, pid);
	}
	cr_expect(czt_pid_alive(pid), "worker %d was still running all along", id);
	/* Both ignore SIGTERM: stop at once. */
	cr_assert_eq(czt_signal(c.proc, SIGQUIT), 0);
	czt_expect_exit(c.proc, CZT_EXITED(0), 10000);
}

/* -w 256: every worker listens, on the one port, and each takes its turn. */
Test(scale, many_workers_all_listen_and_serve)
{
	enum { MANY = 256 };
	static pid_t pids[MANY * 2], uniq[MANY];
	static int counts[MANY];
	struct czt_cluster c;
	struct czt_addr a;

	czt_cluster_start(&c, MANY, "rr", "--style", "poll", NULL);
	cr_assert_eq(c.nw, MANY, "%d workers listen", MANY);
	for (int i = 0; i < MANY; i++) {
		cr_expect_eq(c.w[i].port, c.port, "worker %d listens on port %d", c.w[i].id, c.port);
	}
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	int answered = czt_ask_many(&a, MANY * 2, 16, pids, 60000);

	cr_expect_eq(answered, MANY * 2, "%d of %d connections answered (%s)", answered,
		MANY * 2, czt_last_bad());
	cr_expect_eq(czt_tally(pids, MANY * 2, uniq, counts, MANY), MANY,
		"every one of the %d workers answered", MANY);
	czt_stop(c.proc);
}

/* `clusterize scale N --control PATH` exits 0. */
static void scale_to(const char *n)
{
	struct czt_ops_run run;
	int rc = czt_ops_client(&run, -1, NULL, "scale", n, "--control", czt_ctl_path(), NULL);

	cr_expect_eq(rc, 0, "clusterize scale %s exits 0, got %d: %s", n, rc, run.err);
	czt_ops_run_free(&run);
}

Test(scale, scale_subcommand_sets_the_worker_count)
{
	const char *cmd[] = { czt_server(), "--graceful", NULL };
	const char *largs[] = { "-s", "rr", "--control", czt_ctl_path(), NULL };
	struct czt_cluster c;
	struct czt_worker w[CZT_MAX_WORKERS];

	czt_cluster_start_argv(&c, 1, largs, cmd, NULL);
	scale_to("3");
	cr_expect_eq(czt_wait_line(c.proc, CZT_ERR,
		"clusterize: scaling from 1 to 3 workers (scale request)", 1, 10000), 1);
	cr_assert_eq(czt_wait_live(c.proc, 3, w, 20000), 3, "3 workers listen");
	expect_all_serve(&c, w, 3);
	scale_to("2");
	cr_assert_eq(czt_wait_live(c.proc, 2, w, 20000), 2, "2 workers are left");
	cr_expect_eq(czt_count(c.proc, CZT_ERR, ") exited with code 0"), 1,
		"the removed worker stopped gracefully");
	expect_all_serve(&c, w, 2);
	czt_stop(c.proc);
}
