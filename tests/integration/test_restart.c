/*
 * Restart policy: --restart never replaces no worker and exits with the last
 * failure's code once all are gone; on-failure replaces only workers that
 * failed; always (the default) replaces even a clean exit, under a new id.
 * With every worker killed at once in rr, new connections wait in the
 * backlog until the replacements take them: none is refused.  Quick exits
 * back off 0.1 s, doubling; `status` counts each slot's restarts.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "czt.h"
#include "czt_ops.h"

#define CONNS 12

TestSuite(restart, .init = czt_setup, .fini = czt_ops_teardown, .timeout = 120);

/* clusterize -w 2 -s rr [--restart POLICY] -- cz-server --usr1-exits CODE */
static void start(struct czt_cluster *c, const char *policy, const char *code)
{
	const char *largs[] = { "-s", "rr", policy != NULL ? "--restart" : NULL, policy, NULL };
	const char *cmd[] = { czt_server(), "--usr1-exits", code, NULL };

	czt_cluster_start_argv(c, 2, largs, cmd, NULL);
}

/* Makes worker i exit with the code given to --usr1-exits; waits for the line. */
static void make_exit(struct czt_cluster *c, int i, const char *code)
{
	char line[96];

	cr_assert_eq(kill(c->w[i].pid, SIGUSR1), 0, "SIGUSR1 %d", (int)c->w[i].pid);
	snprintf(line, sizeof(line), "worker %d (pid %d) exited with code %s", c->w[i].id,
		(int)c->w[i].pid, code);
	cr_assert_eq(czt_wait_line(c->proc, CZT_ERR, line, 1, 10000), 1, "'%s'", line);
}

struct said_or_forked {
	struct czt_proc *p;
	const char *line;
};

static bool said_or_forked(void *v)
{
	const struct said_or_forked *a = v;

	return czt_count(a->p, CZT_ERR, a->line) > 0 || czt_count(a->p, CZT_ERR, ") forked") > 2;
}

/*
 * "worker ID not restarted (--restart POLICY): N worker(s) left", and no
 * replacement: a third fork fails the test at once.
 */
static void expect_not_restarted(struct czt_cluster *c, int i, const char *policy, int left)
{
	char line[128];
	struct said_or_forked a = { c->proc, line };

	snprintf(line, sizeof(line), "clusterize: worker %d not restarted (--restart %s): %d "
		"worker%s left", c->w[i].id, policy, left, left == 1 ? "" : "s");
	czt_wait_until(said_or_forked, &a, 10000);
	cr_assert_eq(czt_count(c->proc, CZT_ERR, ") forked"), 2, "no replacement was started");
	cr_assert_eq(czt_count(c->proc, CZT_ERR, line), 1, "'%s'", line);
}

static void expect_answered_by(const struct czt_cluster *c, pid_t pid, const char *what)
{
	struct czt_addr a;

	czt_addr_tcp(&a, "127.0.0.1", c->port);
	for (int i = 0; i < 4; i++) {
		pid_t got = czt_ask(&a, 10000);

		cr_expect_eq(got, pid, "%s: connection %d answered by %d, expected %d (%s)", what, i,
			(int)got, (int)pid, got < 0 ? strerror(-got) : czt_last_bad());
	}
}

/* The launcher exits by itself with `code`, having forked only `forks` workers. */
static void expect_exit(struct czt_cluster *c, int code, int forks)
{
	czt_expect_exit(c->proc, CZT_EXITED(code), 20000);
	cr_expect_eq(czt_count(c->proc, CZT_ERR, ") forked"), forks, "no worker was replaced");
}

Test(restart, never_replaces_no_worker_and_exits_with_the_failure)
{
	struct czt_cluster c;

	start(&c, "never", "5");
	make_exit(&c, 0, "5");
	expect_not_restarted(&c, 0, "never", 1);
	expect_answered_by(&c, c.w[1].pid, "the one worker left");
	make_exit(&c, 1, "5");
	expect_not_restarted(&c, 1, "never", 0);
	cr_expect_eq(czt_wait_line(c.proc, CZT_ERR,
		"clusterize: no workers left: exiting with status 5", 1, 10000), 1);
	expect_exit(&c, 5, 2);
}

Test(restart, on_failure_does_not_replace_clean_exits)
{
	struct czt_cluster c;

	start(&c, "on-failure", "0");
	make_exit(&c, 0, "0");
	expect_not_restarted(&c, 0, "on-failure", 1);
	expect_answered_by(&c, c.w[1].pid, "the one worker left");
	make_exit(&c, 1, "0");
	expect_not_restarted(&c, 1, "on-failure", 0);
	cr_expect_eq(czt_wait_line(c.proc, CZT_ERR,
		"clusterize: no workers left: exiting with status 0", 1, 10000), 1);
	expect_exit(&c, 0, 2);
}

/* A replacement for worker i listens, with a new id and pid; returns it. */
static struct czt_worker expect_replaced(struct czt_cluster *c, int i)
{
	struct czt_worker w[CZT_MAX_WORKERS];
	int n = czt_wait_live(c->proc, 2, w, 20000);

	cr_assert_eq(n, 2, "two workers live again");
	const struct czt_worker *other = &c->w[1 - i];
	struct czt_worker *r = w[0].id == other->id ? &w[1] : &w[0];

	cr_expect(w[0].id == other->id || w[1].id == other->id, "worker %d still runs",
		other->id);
	cr_expect_gt(r->id, 2, "the replacement has a new id (%d)", r->id);
	cr_expect_neq(r->pid, c->w[i].pid, "the replacement is a new process");
	cr_expect_eq(r->port, c->port, "the replacement listens on the same port");
	return *r;
}

Test(restart, on_failure_replaces_a_sigkilled_worker)
{
	struct czt_cluster c;

	char line[96];

	start(&c, "on-failure", "0");
	cr_assert_eq(kill(c.w[0].pid, SIGKILL), 0);
	snprintf(line, sizeof(line), "(pid %d) killed by signal SIGKILL", (int)c.w[0].pid);
	cr_assert_eq(czt_wait_line(c.proc, CZT_ERR, line, 1, 10000), 1, "'%s'", line);
	expect_replaced(&c, 0);
	cr_expect_eq(czt_count(c.proc, CZT_ERR, "not restarted"), 0);
	czt_stop(c.proc);
}

Test(restart, always_replaces_a_clean_exit_with_a_new_id)
{
	struct czt_cluster c;

	start(&c, NULL, "0");
	make_exit(&c, 0, "0");
	struct czt_worker r = expect_replaced(&c, 0);

	cr_expect_eq(r.id, 3, "ids are never reused: the replacement is worker 3");
	cr_expect_eq(czt_count(c.proc, CZT_ERR, "not restarted"), 0);
	czt_stop(c.proc);
}

Test(restart, rr_connections_wait_while_every_worker_restarts)
{
	struct czt_cluster c;
	struct czt_addr a;
	pid_t pids[CONNS], dead[2];

	czt_cluster_start(&c, 2, "rr", "--style", "blocking", NULL);
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	dead[0] = c.w[0].pid;
	dead[1] = c.w[1].pid;
	cr_assert_eq(kill(dead[0], SIGKILL), 0);
	cr_assert_eq(kill(dead[1], SIGKILL), 0);
	/* Connect right away, before any replacement can be listening. */
	int answered = czt_ask_many(&a, CONNS, CONNS, pids, 30000);

	cr_expect_eq(answered, CONNS, "%d of %d connections answered across the restart",
		answered, CONNS);
	for (int i = 0; i < CONNS; i++) {
		cr_expect(pids[i] > 0 && pids[i] != dead[0] && pids[i] != dead[1],
			"connection %d answered by %d, a replacement (%s)", i, (int)pids[i],
			pids[i] == -EBADMSG ? "closed without the answer" : strerror(-pids[i]));
	}
	cr_expect_eq(czt_wait_live(c.proc, 2, NULL, 20000), 2, "two replacements listen");
	czt_stop(c.proc);
}

/* Start times (ms, CLOCK_REALTIME) the workers wrote, one a line; returns how many. */
static int read_stamps(const char *path, long long *ms, int max)
{
	FILE *f = fopen(path, "re");
	long long ns;
	int n = 0;

	cr_assert_not_null(f, "%s", path);
	while (n < max && fscanf(f, "%lld", &ns) == 1) {
		ms[n++] = ns / 1000000;
	}
	fclose(f);
	return n;
}

/*
 * A worker that exits at once is restarted after 0.1 s, then 0.2 s, then
 * 0.4 s (the launcher says so with -v, and the starts are at least that far
 * apart); with --max-restarts 4 the fourth quick exit ends it.  The cap
 * (5 s) is the unit test's (test_workers).
 */
Test(restart, quick_exits_back_off_doubling)
{
	static char script[512];
	char stamps[300];
	long long at[8];
	const long delays[] = { 100, 200, 400 };

	snprintf(stamps, sizeof(stamps), "%s/starts", czt_tmpdir());
	snprintf(script, sizeof(script), "date +%%s%%N >> '%s'; exit 3", stamps);
	const char *argv[] = { czt_launcher(), "-v", "-w", "1", "--max-restarts", "4", "--",
		"/bin/sh", "-c", script, NULL };
	struct czt_proc *p = czt_spawn(argv, (const char *[]){ czt_asan_options(), NULL });

	czt_expect_exit(p, CZT_EXITED(3), 20000);
	cr_assert_eq(read_stamps(stamps, at, 8), 4, "4 starts");
	for (int i = 0; i < 3; i++) {
		char line[96];

		snprintf(line, sizeof(line), "restarting worker slot 0 in %ld ms", delays[i]);
		cr_expect_eq(czt_count(p, CZT_ERR, line), 1, "the launcher says '%s'", line);
		cr_expect_geq(at[i + 1] - at[i], delays[i], "start %d came %lld ms after start %d, "
			"less than %ld ms", i + 2, at[i + 1] - at[i], i + 1, delays[i]);
	}
}

/* The restarts column counts the replacements of each worker's slot. */
Test(restart, status_counts_restarts_per_slot)
{
	const char *largs[] = { "-s", "rr", "--control", czt_ctl_path(), NULL };
	const char *cmd[] = { czt_server(), "--usr1-exits", "0", NULL };
	struct czt_status_row rows[4];
	struct czt_worker w[CZT_MAX_WORKERS];
	struct czt_cluster c;
	char line[96];
	int n;

	czt_cluster_start_argv(&c, 2, largs, cmd, NULL);
	n = czt_ops_status(czt_ctl_path(), rows, 4);
	cr_assert_eq(n, 2, "two rows");
	cr_expect(rows[0].restarts == 0 && rows[1].restarts == 0, "no restart yet (%u, %u)",
		rows[0].restarts, rows[1].restarts);
	/* Worker 1 exits twice (itself, then its replacement); worker 2 stays. */
	for (int round = 1; round <= 2; round++) {
		struct czt_worker cur[CZT_MAX_WORKERS];
		int k = czt_live_workers(c.proc, cur, CZT_MAX_WORKERS);
		const struct czt_worker *victim = NULL;

		for (int i = 0; i < k; i++) {
			victim = cur[i].id != 2 ? &cur[i] : victim;
		}
		cr_assert_not_null(victim);
		cr_assert_eq(kill(victim->pid, SIGUSR1), 0);
		snprintf(line, sizeof(line), "worker %d (pid %d) exited with code 0", victim->id,
			(int)victim->pid);
		cr_assert_eq(czt_wait_line(c.proc, CZT_ERR, line, 1, 10000), 1, "'%s'", line);
		cr_assert_eq(czt_wait_live(c.proc, 2, w, 20000), 2, "round %d: replaced", round);
		cr_assert(w[0].id != victim->id && w[1].id != victim->id, "round %d: worker %d is "
			"gone", round, victim->id);
		n = czt_ops_status(czt_ctl_path(), rows, 4);
		const struct czt_status_row *stays = czt_ops_status_row(rows, n, 2);
		const struct czt_status_row *fresh = czt_ops_status_row(rows, n,
			(unsigned)(w[0].id == 2 ? w[1].id : w[0].id));

		cr_assert(stays != NULL && fresh != NULL, "round %d: both in status", round);
		cr_expect_eq(fresh->restarts, (unsigned)round, "round %d: the replacement's slot "
			"was restarted %d times, status says %u", round, round, fresh->restarts);
		cr_expect_eq(stays->restarts, 0, "round %d: worker 2's slot never was (%u)", round,
			stays->restarts);
	}
	czt_stop(c.proc);
}
