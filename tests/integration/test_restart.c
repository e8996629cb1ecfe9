/*
 * Restart policy: --restart never replaces no worker and exits with the last
 * failure's code once all are gone; on-failure replaces only workers that
 * failed; always (the default) replaces even a clean exit, under a new id.
 * With every worker killed at once in rr, new connections wait in the
 * backlog until the replacements take them: none is refused.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "czt.h"

#define CONNS 12

TestSuite(restart, .init = czt_setup, .fini = czt_teardown, .timeout = 120);

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

/* "worker ID not restarted (--restart POLICY): N worker(s) left" */
static void expect_not_restarted(struct czt_cluster *c, int i, const char *policy, int left)
{
	char line[128];

	snprintf(line, sizeof(line), "clusterize: worker %d not restarted (--restart %s): %d "
		"worker%s left", c->w[i].id, policy, left, left == 1 ? "" : "s");
	cr_expect_eq(czt_wait_line(c->proc, CZT_ERR, line, 1, 10000), 1, "'%s'", line);
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
