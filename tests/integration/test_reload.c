/*
 * Rolling restart (SIGHUP, `clusterize reload`): every worker is replaced
 * in turn while new connections keep coming, and not one of them fails; a
 * replacement that exits or never listens aborts the reload and the old
 * workers keep serving; a HUP during a reload is ignored; --max-surge
 * starts several replacements at once.
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

#define WORKERS 4
#define RELOADS 3
#define LOAD_CONCURRENCY 8
#define LOAD_MAX 20000
#define LOAD_MS 60000

TestSuite(reload, .init = czt_setup, .fini = czt_teardown, .timeout = 120);

static const char *const graceful[] = { "--graceful", "--delay-ms", "20", NULL };

/* clusterize -w 4 LARGS -- cz-server SRV... */
static void start(struct czt_cluster *c, const char *const largs[], const char *const srv[])
{
	czt_cluster_start_server(c, WORKERS, largs, srv);
}

static bool has_pid(const struct czt_worker *w, int n, pid_t pid)
{
	for (int i = 0; i < n; i++) {
		if (w[i].pid == pid) {
			return true;
		}
	}
	return false;
}

/*
 * After reload number r: "reload done", the old workers drained and exited
 * with 0 (not killed), and WORKERS new ones, with new pids and ids, are all
 * that is left.  old[] becomes the new set.
 */
static void expect_replaced(struct czt_proc *p, int r, struct czt_worker old[WORKERS])
{
	struct czt_worker now[CZT_MAX_WORKERS];
	int max_old_id = 0;

	cr_assert_eq(czt_wait_line(p, CZT_ERR, "reload done: 4 workers replaced", r, 30000), r,
		"reload %d is done", r);
	cr_assert_eq(czt_wait_live(p, WORKERS, now, 20000), WORKERS,
		"reload %d: the old workers are gone, %d new ones live", r, WORKERS);
	for (int i = 0; i < WORKERS; i++) {
		char line[96];

		max_old_id = old[i].id > max_old_id ? old[i].id : max_old_id;
		snprintf(line, sizeof(line), "(pid %d) exited with code 0", (int)old[i].pid);
		cr_expect_eq(czt_count(p, CZT_ERR, line), 1, "reload %d: old worker %d (pid %d) "
			"stopped gracefully with 0", r, old[i].id, (int)old[i].pid);
	}
	for (int i = 0; i < WORKERS; i++) {
		cr_expect(!has_pid(old, WORKERS, now[i].pid) && now[i].id > max_old_id,
			"reload %d: worker %d (pid %d) is new", r, now[i].id, (int)now[i].pid);
	}
	memcpy(old, now, sizeof(*old) * WORKERS);
}

/* Index of the first stderr line containing substr, or -1. */
static int line_index(const struct czt_proc *p, const char *substr)
{
	char *text = czt_read(p, CZT_ERR);
	char *save = NULL;
	int i = 0, found = -1;

	for (char *line = strtok_r(text, "\n", &save); line != NULL && found < 0;
		line = strtok_r(NULL, "\n", &save), i++) {
		if (strstr(line, substr) != NULL) {
			found = i;
		}
	}
	free(text);
	return found;
}

/* Every one of n connections is answered by one of the workers in w. */
static void expect_served_by(const struct czt_cluster *c, const struct czt_worker *w, int nw,
	const char *what)
{
	struct czt_addr a;
	pid_t pids[20];

	czt_addr_tcp(&a, "127.0.0.1", c->port);
	int answered = czt_ask_many(&a, 20, 4, pids, 20000);

	cr_expect_eq(answered, 20, "%s: %d of 20 connections answered (%s)", what, answered,
		czt_last_bad());
	for (int i = 0; i < 20; i++) {
		cr_expect(pids[i] <= 0 || has_pid(w, nw, pids[i]), "%s: connection %d answered "
			"by pid %d", what, i, (int)pids[i]);
	}
}

static void expect_no_failure(const struct czt_load_result *r, const char *what)
{
	cr_expect_eq(r->failed, 0, "%s: %d of %d connections failed; the first (#%d): %s",
		what, r->failed, r->asked, r->first_failed, r->first_bad);
	cr_expect_geq(r->answered, 40, "%s: the load ran (%d answered)", what, r->answered);
}

/* Three reloads in a row while new connections keep coming: none fails. */
static void reloads_under_load(const char *sched)
{
	const char *largs[] = { "-s", sched, NULL };
	struct czt_cluster c;
	struct czt_worker cur[WORKERS];
	struct czt_load_result r;
	struct czt_addr a;

	start(&c, largs, graceful);
	memcpy(cur, c.w, sizeof(cur));
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	struct czt_load *l = czt_load_start(&a, LOAD_CONCURRENCY, LOAD_MAX, LOAD_MS);

	cr_assert(czt_load_wait_more(l, 20, 10000), "%s: the load gets answers", sched);
	for (int i = 1; i <= RELOADS; i++) {
		cr_assert_eq(czt_signal(c.proc, SIGHUP), 0);
		expect_replaced(c.proc, i, cur);
		cr_assert(czt_load_wait_more(l, 20, 10000), "%s: answers after reload %d", sched, i);
	}
	czt_load_stop(l, &r, 10000);
	expect_no_failure(&r, sched);
	/* One replacement at a time by default: worker 6 starts once 5 is ready. */
	cr_expect_gt(line_index(c.proc, "worker 6 (pid"), line_index(c.proc, "reload: worker 5 "),
		"%s: --max-surge 1 starts one replacement at a time", sched);
	expect_served_by(&c, cur, WORKERS, sched);
	czt_stop(c.proc);
}

Test(reload, rr_three_reloads_under_load_lose_no_connection)
{
	reloads_under_load("rr");
}

Test(reload, none_three_reloads_under_load_lose_no_connection)
{
	reloads_under_load("none");
}

Test(reload, reload_subcommand_replaces_every_worker)
{
	const char *largs[] = { "--control", czt_ctl_path(), NULL };
	struct czt_cluster c;
	struct czt_worker cur[WORKERS];
	struct czt_ops_run run;

	start(&c, largs, graceful);
	memcpy(cur, c.w, sizeof(cur));
	int rc = czt_ops_client(&run, -1, NULL, "reload", "--control", czt_ctl_path(), NULL);

	cr_expect_eq(rc, 0, "clusterize reload exits 0, got %d: %s", rc, run.err);
	czt_ops_run_free(&run);
	cr_expect_eq(czt_count(c.proc, CZT_ERR, "clusterize: reload: replacing 4 workers"), 1);
	expect_replaced(c.proc, 1, cur);
	expect_served_by(&c, cur, WORKERS, "after clusterize reload");
	czt_stop(c.proc);
}

/* The reload was aborted; the original workers are all there and serve. */
static void expect_old_workers_serve(struct czt_cluster *c)
{
	struct czt_worker now[CZT_MAX_WORKERS];

	cr_expect_eq(czt_wait_live(c->proc, WORKERS, now, 20000), WORKERS,
		"the %d old workers are live", WORKERS);
	for (int i = 0; i < WORKERS; i++) {
		cr_expect(has_pid(c->w, WORKERS, now[i].pid), "live worker %d (pid %d) is an old one",
			now[i].id, (int)now[i].pid);
	}
	expect_served_by(c, c->w, WORKERS, "after the aborted reload");
	cr_expect(!czt_exited(c->proc), "the launcher keeps running");
	cr_expect_eq(czt_count(c->proc, CZT_ERR, "reload done"), 0, "no reload is done");
}

Test(reload, new_workers_exiting_at_start_abort_the_reload)
{
	const char *largs[] = { "-s", "rr", NULL };
	const char *srv[] = { "--fail-if-id-gt", "4", NULL };
	struct czt_cluster c;

	start(&c, largs, srv);
	cr_assert_eq(czt_signal(c.proc, SIGHUP), 0);
	cr_assert_eq(czt_wait_re(c.proc, CZT_ERR, "^clusterize: reload aborted: worker 5 "
		"\\(pid [0-9]+\\) exited with code 1$", 1, 20000), 1, "the reload is aborted");
	expect_old_workers_serve(&c);
	/* Only the one replacement was tried. */
	cr_expect_eq(czt_count(c.proc, CZT_ERR, ") forked"), WORKERS + 1);
	/* And the launcher still takes reloads (which fail the same way). */
	cr_assert_eq(czt_signal(c.proc, SIGHUP), 0);
	cr_expect_eq(czt_wait_re(c.proc, CZT_ERR, "reload aborted: worker 6 \\(pid [0-9]+\\) "
		"exited with code 1", 1, 20000), 1, "a second reload is aborted too");
	expect_old_workers_serve(&c);
	czt_stop(c.proc);
}

Test(reload, new_worker_not_listening_by_ready_timeout_aborts_the_reload)
{
	const char *largs[] = { "-s", "rr", "--ready-timeout", "1", NULL };
	const char *srv[] = { "--no-listen-if-id-gt", "4", NULL };
	struct czt_cluster c;
	char re[160];
	pid_t forked[8];

	start(&c, largs, srv);
	cr_assert_eq(czt_signal(c.proc, SIGHUP), 0);
	snprintf(re, sizeof(re), "^clusterize: reload aborted: worker 5 \\(pid [0-9]+\\) did not "
		"listen on 127\\.0\\.0\\.1:%d within 1s$", c.port);
	cr_assert_eq(czt_wait_re(c.proc, CZT_ERR, re, 1, 20000), 1, "the reload is aborted");
	int n = czt_forked_pids(c.proc, forked, 8);

	cr_assert_eq(n, WORKERS + 1, "one replacement was started (%d forks)", n);
	cr_expect(czt_wait_gone(&forked[WORKERS], 1, 20000),
		"the replacement that never listened (pid %d) is stopped", (int)forked[WORKERS]);
	expect_old_workers_serve(&c);
	czt_stop(c.proc);
}

Test(reload, sighup_during_a_reload_is_ignored)
{
	/* Replacements that never listen keep the reload going for 30 s. */
	const char *largs[] = { "-s", "rr", "--ready-timeout", "30", NULL };
	const char *srv[] = { "--no-listen-if-id-gt", "4", NULL };
	struct czt_cluster c;

	start(&c, largs, srv);
	cr_assert_eq(czt_signal(c.proc, SIGHUP), 0);
	cr_assert_eq(czt_wait_line(c.proc, CZT_ERR, "clusterize: reload: replacing 4 workers", 1,
		10000), 1);
	cr_assert_eq(czt_signal(c.proc, SIGHUP), 0);
	cr_expect_eq(czt_wait_line(c.proc, CZT_ERR,
		"clusterize: warning: SIGHUP ignored: reload already in progress", 1, 10000), 1,
		"the second SIGHUP is ignored with a warning");
	cr_expect_eq(czt_count(c.proc, CZT_ERR, "reload: replacing"), 1, "one reload started");
	cr_expect_eq(czt_count(c.proc, CZT_ERR, ") forked"), WORKERS + 1,
		"one replacement at a time");
	czt_stop(c.proc);
}

Test(reload, max_surge_2_replaces_two_at_a_time_under_load)
{
	const char *largs[] = { "-s", "rr", "--max-surge", "2", NULL };
	struct czt_cluster c;
	struct czt_worker cur[WORKERS];
	struct czt_load_result r;
	struct czt_addr a;

	start(&c, largs, graceful);
	memcpy(cur, c.w, sizeof(cur));
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	struct czt_load *l = czt_load_start(&a, LOAD_CONCURRENCY, LOAD_MAX, LOAD_MS);

	cr_assert(czt_load_wait_more(l, 20, 10000), "the load gets answers");
	cr_assert_eq(czt_signal(c.proc, SIGHUP), 0);
	expect_replaced(c.proc, 1, cur);
	cr_assert(czt_load_wait_more(l, 20, 10000), "answers after the reload");
	czt_load_stop(l, &r, 10000);
	expect_no_failure(&r, "--max-surge 2");
	/* Workers 5 and 6 start together, before either is ready. */
	int forked6 = line_index(c.proc, "worker 6 (pid"), ready5 = line_index(c.proc,
		"reload: worker 5 ");

	cr_expect(forked6 >= 0 && forked6 < ready5, "worker 6 forked (line %d) before worker 5 "
		"was ready (line %d)", forked6, ready5);
	czt_stop(c.proc);
}
