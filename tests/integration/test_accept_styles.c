/*
 * Every accept style a server may use works under both policies: each
 * connection is answered exactly once ("<pid>\n" then EOF, with the right
 * peer address and accept4 flags), by one of the launcher's workers.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "czt.h"

#define WORKERS 2
#define CONNS 40

TestSuite(accept_styles, .init = czt_setup, .fini = czt_teardown, .timeout = 90);

static void check_style(const char *style, const char *sched)
{
	struct czt_cluster c;
	struct czt_addr a;
	pid_t pids[CONNS], uniq[CONNS];
	int counts[CONNS];
	bool rr = strcmp(sched, "rr") == 0;

	czt_cluster_start(&c, WORKERS, sched, "--style", style, "--count", "3", NULL);
	cr_assert_gt(c.port, 0, "listening line names a TCP port: %s", c.w[0].what);
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	int answered = czt_ask_many(&a, CONNS, 8, pids, 20000);

	for (int i = 0; i < CONNS; i++) {
		cr_expect_gt(pids[i], 0, "%s/%s: connection %d got no pid (%s) [%s]", style, sched,
			i, strerror(pids[i] < 0 ? -pids[i] : 0), czt_last_bad());
	}
	cr_assert_eq(answered, CONNS, "%s/%s: %d of %d connections answered", style, sched,
		answered, CONNS);
	int distinct = czt_tally(pids, CONNS, uniq, counts, CONNS);
	bool used[WORKERS] = { false };

	for (int i = 0; i < distinct; i++) {
		int w = czt_cluster_worker_of(&c, uniq[i]);

		cr_expect_geq(w, 0, "%s/%s: pid %d that answered is not a worker (or its child)",
			style, sched, (int)uniq[i]);
		if (w >= 0 && w < WORKERS) {
			used[w] = true;
		}
	}
	if (rr) {
		for (int w = 0; w < WORKERS; w++) {
			cr_expect(used[w], "%s/rr: worker %d (pid %d) got none of %d connections",
				style, c.w[w].id, (int)c.w[w].pid, CONNS);
		}
	}
	czt_stop(c.proc);
}

#define STYLE_TESTS(name, style) \
	Test(accept_styles, name##_rr) { check_style(style, "rr"); } \
	Test(accept_styles, name##_none) { check_style(style, "none"); }

STYLE_TESTS(blocking, "blocking")
STYLE_TESTS(epoll_et, "epoll-et")
STYLE_TESTS(epoll_lt, "epoll-lt")
STYLE_TESTS(poll, "poll")
STYLE_TESTS(select, "select")
STYLE_TESTS(threads, "threads")
STYLE_TESTS(prefork, "prefork")
