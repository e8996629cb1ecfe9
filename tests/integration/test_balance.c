/*
 * --balance with real clients and a real server (tests/servers/slow_http.py,
 * answering with its pid): least-conn keeps long-lived connections even
 * where rr piles them up, and sticky keeps each client address on one
 * worker slot through a rolling restart and moves few when scaling up.
 * Client addresses are loopback ones (127.0.0.2, ...) the test binds.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "czt.h"
#include "czt_http.h"
#include "czt_ops.h"

TestSuite(balance, .init = czt_setup, .fini = czt_ops_teardown, .timeout = 240);

static const char *python(void)
{
	const char *p = czt_which("python3");

	if (p == NULL) {
		cr_skip_test("python3 is not installed");
	}
	return p;
}

/* clusterize -w N --control CTL --balance B -- slow_http.py PORT 0 [keepalive]. */
static int start(struct czt_cluster *c, int workers, const char *balance, bool keepalive)
{
	static char port[16];
	const char *largs[] = { "--control", czt_ctl_path(), "--balance", balance, NULL };
	const char *cmd[] = { python(), czt_source("tests/servers/slow_http.py"), port, "0",
		keepalive ? "keepalive" : NULL, NULL };

	snprintf(port, sizeof(port), "%d", czt_free_port(AF_INET));
	czt_cluster_start_argv(c, workers, largs, cmd, NULL);
	cr_assert_eq(c->port, atoi(port));
	return c->port;
}

/* Each worker's open connections (status json, on the control socket), by pid. */
static int active_by_pid(pid_t *pids, unsigned *per, int max)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	static char buf[65536];
	size_t len = 0, i;
	ssize_t n;
	json_error_t e;
	json_t *doc, *w;
	int k = 0, fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", czt_ctl_path());
	cr_assert(fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	cr_assert_eq(write(fd, "status json\n", 12), 12);
	while ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0) {
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	doc = json_loads(buf + 3, 0, &e);
	cr_assert_not_null(doc, "status json: %s", buf);
	json_array_foreach(json_object_get(doc, "workers"), i, w) {
		if (k < max) {
			pids[k] = (pid_t)json_integer_value(json_object_get(w, "pid"));
			per[k++] = (unsigned)json_integer_value(json_object_get(w, "active"));
		}
	}
	json_decref(doc);
	return k;
}

struct want_sum {
	unsigned sum;
};

static bool sum_is(void *arg)
{
	pid_t pids[8];
	unsigned per[8], sum = 0;
	int n = active_by_pid(pids, per, 8);

	for (int i = 0; i < n; i++) {
		sum += per[i];
	}
	return sum == ((struct want_sum *)arg)->sum;
}

/* Waits until `sum` connections are open in all (the shim counted them). */
static void settle(unsigned sum)
{
	struct want_sum w = { sum };

	cr_assert(czt_wait_until(sum_is, &w, 10000), "%u connections open", sum);
}

struct spread {
	int longs[2];   /* long-lived connections per worker (by c->w order) */
	int max_diff;   /* the most one worker had over the other, ever seen */
};

/*
 * Long-lived connections arrive among short requests, as websockets do
 * among page loads: 10 times a short request, then a connection kept
 * open.  Then 100 short requests, each seen open before it is made: the
 * open connections per worker are sampled while it is.
 */
static void run_sequence(const char *balance, struct spread *s)
{
	struct czt_cluster c;
	int port = start(&c, 2, balance, true), fds[10];
	pid_t pids[2];
	unsigned per[2];

	memset(s, 0, sizeof(*s));
	for (int i = 0; i < 10; i++) {
		cr_assert_gt(czt_http_once(port, NULL, 10000), 0, "short %d", i);
		settle((unsigned)i);
		pid_t pid = czt_http_hold(port, &fds[i], 10000);
		int w = czt_cluster_worker_of(&c, pid);

		cr_assert_geq(w, 0, "long-lived %d answered by a worker: %d", i, (int)pid);
		s->longs[w]++;
		settle((unsigned)i + 1);
	}
	for (int i = 0; i < 100; i++) {
		int fd = czt_http_connect(port, NULL, 10000);

		cr_assert_geq(fd, 0);
		settle(11);
		cr_assert_eq(active_by_pid(pids, per, 2), 2);
		int diff = (int)per[0] - (int)per[1];

		diff = diff < 0 ? -diff : diff;
		s->max_diff = diff > s->max_diff ? diff : s->max_diff;
		cr_assert_gt(czt_http_request(fd, false, 10000), 0, "short %d", i);
		close(fd);
		settle(10);
	}
	for (int i = 0; i < 10; i++) {
		close(fds[i]);
	}
	czt_stop(c.proc);
}

Test(balance, least_conn_spreads_long_lived_connections_where_rr_piles_them)
{
	struct spread lc, rr;

	run_sequence("least-conn", &lc);
	run_sequence("rr", &rr);
	cr_expect(lc.longs[0] == 5 && lc.longs[1] == 5,
		"least-conn: the long-lived split 5/5, got %d/%d", lc.longs[0], lc.longs[1]);
	cr_expect_leq(lc.max_diff, 1, "least-conn: never more than one more open on a "
		"worker, saw %d", lc.max_diff);
	/* The difference: rr's turns put every long-lived one on one worker. */
	cr_expect(rr.longs[0] == 10 || rr.longs[1] == 10,
		"rr: all 10 long-lived on one worker, got %d/%d", rr.longs[0], rr.longs[1]);
	cr_expect_geq(rr.max_diff, 9, "rr: one worker had 9 more open, saw %d", rr.max_diff);
}

/* 127.0.0.2 ... 127.0.0.21, then 127.0.1.1 ... 127.0.1.200. */
#define FEW 20
#define MANY 200
static void addr_of(int i, char *buf, size_t len)
{
	if (i < FEW) {
		snprintf(buf, len, "127.0.0.%d", i + 2);
	} else {
		snprintf(buf, len, "127.0.1.%d", i - FEW + 1);
	}
}

/* The pid that serves client `i` (every one of `times` requests: the same). */
static pid_t served_by(int port, int i, int times)
{
	char ip[32];
	pid_t first = 0;

	addr_of(i, ip, sizeof(ip));
	for (int r = 0; r < times; r++) {
		pid_t pid = czt_http_once(port, ip, 10000);

		cr_assert_gt(pid, 0, "%s request %d: %s", ip, r, czt_http_last_bad());
		cr_expect(first == 0 || pid == first, "%s: served by %d, then by %d", ip,
			(int)first, (int)pid);
		first = first == 0 ? pid : first;
	}
	return first;
}

static int distinct(const pid_t *p, int n)
{
	pid_t uniq[FEW + MANY];
	int counts[FEW + MANY];

	return czt_tally(p, n, uniq, counts, FEW + MANY);
}

Test(balance, sticky_keeps_clients_through_a_reload_and_moves_few_on_scale_up)
{
	static pid_t before[FEW + MANY], after[FEW + MANY], scaled[FEW + MANY];
	struct czt_cluster c;
	struct czt_worker live[CZT_MAX_WORKERS];
	struct czt_ops_run r;
	int port = start(&c, 4, "sticky", false), moved = 0, to_new = 0;
	pid_t newest;

	for (int i = 0; i < FEW + MANY; i++) {
		before[i] = served_by(port, i, i < FEW ? 20 : 1);
		cr_assert(czt_cluster_owns(&c, before[i]));
	}
	cr_expect_geq(distinct(before, FEW), 2, "20 addresses spread over the workers");
	/* With a random key, 20 addresses miss one of 4 workers 1.3% of the
	 * time; 220 of them, never in practice. */
	cr_expect_eq(distinct(before, FEW + MANY), 4, "all 4 workers are used");

	czt_signal(c.proc, SIGHUP);
	cr_assert_eq(czt_wait_line(c.proc, CZT_ERR, "reload done: 4 workers replaced", 1,
		60000), 1);
	cr_assert_eq(czt_wait_live(c.proc, 4, live, 60000), 4, "only the new workers left");
	for (int i = 0; i < FEW + MANY; i++) {
		after[i] = served_by(port, i, i < FEW ? 5 : 1);
	}
	cr_expect_eq(distinct(after, FEW + MANY), 4);
	/* Each slot's new worker took over its predecessor's clients, all of them. */
	for (int i = 0; i < FEW + MANY; i++) {
		for (int j = 0; j < i; j++) {
			cr_expect_eq(before[i] == before[j], after[i] == after[j],
				"clients %d and %d were %s before the reload, %s after", i, j,
				before[i] == before[j] ? "together" : "apart",
				after[i] == after[j] ? "together" : "apart");
			if ((before[i] == before[j]) != (after[i] == after[j])) {
				i = j = FEW + MANY; /* one message is enough */
			}
		}
	}

	cr_assert_eq(czt_ops_client(&r, -1, NULL, "scale", "5", "--control", czt_ctl_path(),
		NULL), 0, "scale 5: %s", r.err);
	czt_ops_run_free(&r);
	cr_assert_eq(czt_wait_live(c.proc, 5, live, 60000), 5);
	newest = live[4].pid; /* by id: the last is the one just started */
	for (int i = 0; i < FEW + MANY; i++) {
		scaled[i] = served_by(port, i, 1);
		moved += scaled[i] != after[i];
		to_new += scaled[i] != after[i] && scaled[i] == newest;
	}
	/* Expected: 1 in 5; about a third at most. */
	cr_expect(moved > 0 && moved <= (FEW + MANY) / 3, "%d of %d clients moved", moved,
		FEW + MANY);
	cr_expect_eq(to_new, moved, "the clients that moved all went to the new worker");
	czt_stop(c.proc);
}

Test(balance, sticky_with_the_none_policy_is_a_usage_error)
{
	const char *const env[] = { "NODE_CLUSTER_SCHED_POLICY=none", NULL };
	struct czt_proc *p = czt_launch(env, "--balance", "sticky", "--", "true", NULL);

	czt_expect_exit(p, CZT_EXITED(2), 10000);
	cr_expect_eq(czt_count(p, CZT_ERR, "clusterize: balance 'sticky' needs the rr "
		"scheduling policy, not none"), 1);
}
