/*
 * rr hands new connections out round-robin: one at a time, strictly in
 * turn; 400 at 8 at once still give each of 4 workers at least 5% and at
 * most 50% (a worker the scheduler leaves waiting gets fewer: rr sends to
 * the workers that keep up, which is the point).
 * none: the kernel picks, and every request is still served by a worker.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "czt.h"

#define WORKERS 4
#define CONNS 400

TestSuite(spread, .init = czt_setup, .fini = czt_teardown, .timeout = 120);

/* Runs CONNS connections; fills counts[] per worker index; returns answered. */
static int run_clients(const struct czt_cluster *c, int counts[WORKERS])
{
	static pid_t pids[CONNS];
	struct czt_addr a;

	czt_addr_tcp(&a, "127.0.0.1", c->port);
	int answered = czt_ask_many(&a, CONNS, 8, pids, 60000);

	memset(counts, 0, sizeof(int) * WORKERS);
	for (int i = 0; i < CONNS; i++) {
		int w = pids[i] > 0 ? czt_cluster_worker_of(c, pids[i]) : -1;

		cr_expect(pids[i] <= 0 || w >= 0, "connection %d answered by pid %d, not a worker",
			i, (int)pids[i]);
		if (w >= 0 && w < WORKERS) {
			counts[w]++;
		}
	}
	return answered;
}

/*
 * One connection at a time (each is answered before the next), nothing
 * keeps a worker from taking its turn: any WORKERS consecutive connections
 * are answered by WORKERS different workers, in the same order each round.
 */
Test(spread, rr_takes_turns_strictly)
{
	struct czt_cluster c;
	struct czt_addr a;
	pid_t pids[40];

	czt_cluster_start(&c, WORKERS, "rr", "--style", "blocking", NULL);
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	int answered = czt_ask_many(&a, 40, 1, pids, 30000);

	cr_assert_eq(answered, 40, "%d of 40 connections answered (%s)", answered, czt_last_bad());
	for (int i = 0; i < 40; i++) {
		cr_expect(czt_cluster_owns(&c, pids[i]), "connection %d answered by %d, a worker", i,
			(int)pids[i]);
		for (int j = i + 1; j < i + WORKERS && j < 40; j++) {
			cr_expect_neq(pids[i], pids[j], "connections %d and %d both answered by %d: "
				"not in turn", i, j, (int)pids[i]);
		}
		if (i >= WORKERS) {
			cr_expect_eq(pids[i], pids[i - WORKERS], "connection %d answered by %d, "
				"connection %d by %d: the order changed", i, (int)pids[i],
				i - WORKERS, (int)pids[i - WORKERS]);
		}
	}
	czt_stop(c.proc);
}

Test(spread, rr_each_worker_gets_5_to_50_percent)
{
	struct czt_cluster c;
	int counts[WORKERS];

	czt_cluster_start(&c, WORKERS, "rr", "--style", "blocking", NULL);
	int answered = run_clients(&c, counts);

	cr_assert_eq(answered, CONNS, "rr: %d of %d connections answered (%s)", answered,
		CONNS, czt_last_bad());
	for (int w = 0; w < WORKERS; w++) {
		cr_expect(counts[w] >= CONNS * 5 / 100 && counts[w] <= CONNS * 50 / 100,
			"rr: worker %d (pid %d) served %d of %d connections, expected 5%%..50%%",
			c.w[w].id, (int)c.w[w].pid, counts[w], CONNS);
	}
	czt_stop(c.proc);
}

Test(spread, rr_spreads_for_epoll_servers_too)
{
	struct czt_cluster c;
	int counts[WORKERS];

	czt_cluster_start(&c, WORKERS, "rr", "--style", "epoll-et", NULL);
	int answered = run_clients(&c, counts);

	cr_assert_eq(answered, CONNS, "rr/epoll-et: %d of %d connections answered (%s)",
		answered, CONNS, czt_last_bad());
	for (int w = 0; w < WORKERS; w++) {
		cr_expect(counts[w] >= CONNS * 5 / 100 && counts[w] <= CONNS * 50 / 100,
			"rr/epoll-et: worker %d served %d of %d connections, expected 5%%..50%%",
			c.w[w].id, counts[w], CONNS);
	}
	czt_stop(c.proc);
}

Test(spread, none_serves_every_request)
{
	struct czt_cluster c;
	int counts[WORKERS];

	czt_cluster_start(&c, WORKERS, "none", "--style", "blocking", NULL);
	int answered = run_clients(&c, counts);
	int total = 0;

	for (int w = 0; w < WORKERS; w++) {
		total += counts[w];
	}
	cr_expect_eq(answered, CONNS, "none: %d of %d connections answered (%s)", answered,
		CONNS, czt_last_bad());
	cr_expect_eq(total, CONNS, "none: %d of %d answers came from the workers", total, CONNS);
	czt_stop(c.proc);
}
