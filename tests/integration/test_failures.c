/*
 * Failures: a worker SIGSTOPped or SIGKILLed while connections are queued for
 * it loses none of them, nor does one at its open-files limit (it cannot
 * receive the connection's fd: the primary gives it to another); dead
 * workers are replaced under a new id while the port stays up; crash loops
 * give up by themselves, with the worker's status (1 for a worker that
 * exited 0), and only exits within --min-uptime count; SIGTERM stops
 * everything with 0; a SIGKILLed launcher takes its workers with it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "czt.h"

#define QUEUED 24

TestSuite(failures, .init = czt_setup, .fini = czt_teardown, .timeout = 120);

struct state_arg {
	pid_t pid;
	char want;
};

static bool in_state(void *v)
{
	const struct state_arg *s = v;
	char path[64], buf[512];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)s->pid);
	f = fopen(path, "re");
	if (f == NULL) {
		return false;
	}
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);

	fclose(f);
	buf[n] = '\0';
	char *rp = strrchr(buf, ')');

	return rp != NULL && rp[1] == ' ' && rp[2] == s->want;
}

static void stop_worker(pid_t pid)
{
	struct state_arg s = { pid, 'T' };

	cr_assert_eq(kill(pid, SIGSTOP), 0, "SIGSTOP %d", (int)pid);
	cr_assert(czt_wait_until(in_state, &s, 5000), "worker %d shows as stopped", (int)pid);
}

struct ready_arg {
	const int *fds;
	int n;
	int want;
};

/* At least `want` of the connections have their answer waiting. */
static bool some_answered(void *v)
{
	const struct ready_arg *r = v;
	struct pollfd p[QUEUED];
	int ready = 0;

	for (int i = 0; i < r->n; i++) {
		p[i].fd = r->fds[i];
		p[i].events = POLLIN;
	}
	if (poll(p, (nfds_t)r->n, 0) > 0) {
		for (int i = 0; i < r->n; i++) {
			ready += (p[i].revents & POLLIN) != 0;
		}
	}
	return ready >= r->want;
}

struct ask_arg {
	const struct czt_addr *a;
	pid_t want;
	int asked;
	int failed;
};

/* One more connection: was it answered by `want`? */
static bool answered_by(void *v)
{
	struct ask_arg *k = v;
	pid_t pid = czt_ask(k->a, 10000);

	k->asked++;
	k->failed += pid <= 0;
	return pid == k->want;
}

Test(failures, sigstopped_worker_loses_no_connection)
{
	struct czt_cluster c;
	struct czt_addr a;
	pid_t pids[QUEUED];

	czt_cluster_start(&c, 2, "rr", "--style", "blocking", NULL);
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	stop_worker(c.w[0].pid);
	/* The primary takes back what waits for the stopped worker after 0.5 s. */
	int answered = czt_ask_many(&a, QUEUED, QUEUED, pids, 10000);

	cr_expect_eq(answered, QUEUED, "%d of %d connections answered while worker %d is "
		"stopped", answered, QUEUED, (int)c.w[0].pid);
	for (int i = 0; i < QUEUED; i++) {
		cr_expect(pids[i] == c.w[1].pid, "connection %d answered by %d, expected the running "
			"worker %d", i, (int)pids[i], (int)c.w[1].pid);
	}
	kill(c.w[0].pid, SIGCONT);
	/* Once it runs again, the stopped worker gets connections again. */
	struct ask_arg ask = { &a, c.w[0].pid, 0, 0 };

	cr_expect(czt_wait_until(answered_by, &ask, 10000),
		"worker %d serves again after SIGCONT (%d asked, %d unanswered)",
		(int)c.w[0].pid, ask.asked, ask.failed);
	cr_expect_eq(ask.failed, 0, "every connection after SIGCONT answered");
	czt_stop(c.proc);
}

Test(failures, worker_at_fd_limit_loses_no_connection)
{
	struct czt_cluster c;
	struct czt_addr a;
	pid_t pids[QUEUED];
	const struct czt_worker *full, *other;

	czt_cluster_start(&c, 2, "rr", "--style", "blocking", "--emfile-id", "1", NULL);
	full = c.w[0].id == 1 ? &c.w[0] : &c.w[1];
	other = full == &c.w[0] ? &c.w[1] : &c.w[0];
	cr_assert_eq(czt_wait_line(c.proc, CZT_OUT, "fds exhausted", 1, 10000), 1,
		"worker 1 runs at its fd limit");
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	int answered = czt_ask_many(&a, QUEUED, 4, pids, 10000);

	cr_expect_eq(answered, QUEUED, "%d of %d connections answered (%s)", answered, QUEUED,
		czt_last_bad());
	for (int i = 0; i < QUEUED; i++) {
		cr_expect(pids[i] == other->pid, "connection %d answered by %d, expected worker "
			"%d (pid %d)", i, (int)pids[i], other->id, (int)other->pid);
	}
	/* It did try, and its accept() said EMFILE, as the kernel's would. */
	cr_expect_eq(czt_wait_line(c.proc, CZT_OUT, "emfile", 1, 10000), 1,
		"worker %d (pid %d) saw EMFILE", full->id, (int)full->pid);
	czt_stop(c.proc);
}

Test(failures, sigkilled_worker_loses_no_queued_connection)
{
	struct czt_cluster c;
	struct czt_addr a;
	int fds[QUEUED];
	pid_t victim;

	czt_cluster_start(&c, 2, "rr", "--style", "blocking", NULL);
	victim = c.w[0].pid;
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	/* Stopped first, so that connections pile up for it before it dies. */
	stop_worker(victim);
	for (int i = 0; i < QUEUED; i++) {
		fds[i] = czt_connect(&a, 10000);
		cr_assert_geq(fds[i], 0, "connect %d: %s", i, strerror(-fds[i]));
	}
	struct ready_arg r = { fds, QUEUED, 2 };

	cr_assert(czt_wait_until(some_answered, &r, 20000), "the running worker answers");
	cr_assert_eq(kill(victim, SIGKILL), 0);
	int answered = 0;

	for (int i = 0; i < QUEUED; i++) {
		pid_t pid = czt_read_pid(fds[i], 30000);

		close(fds[i]);
		answered += pid > 0 && pid != victim;
		cr_expect(pid > 0 && pid != victim, "queued connection %d answered by %d (victim %d) "
			"%s", i, (int)pid, (int)victim, pid < 0 ? strerror(-pid) : "");
	}
	cr_expect_eq(answered, QUEUED, "%d of %d queued connections answered", answered, QUEUED);

	char line[128];

	snprintf(line, sizeof(line), "(pid %d) killed by signal SIGKILL", (int)victim);
	cr_expect_eq(czt_wait_line(c.proc, CZT_ERR, line, 1, 10000), 1, "log says '%s'", line);
	czt_stop(c.proc);
}

/*
 * Deterministic: worker 1 kills itself (SIGKILL) the moment a connection
 * is queued for it, without taking it.  The primary must give that
 * connection to another worker at once (the worker is gone: no stall to
 * wait for).
 */
Test(failures, connection_queued_for_a_dying_worker_goes_to_another)
{
	struct czt_cluster c;
	struct czt_addr a;
	pid_t pids[8], dying;
	char line[64];

	czt_cluster_start(&c, 2, "rr", "--style", "blocking", "--die-when-queued-id", "1", NULL);
	dying = c.w[0].id == 1 ? c.w[0].pid : c.w[1].pid;
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	/* One at a time: rr queues one of the first two for worker 1. */
	int answered = czt_ask_many(&a, 8, 1, pids, 30000);

	snprintf(line, sizeof(line), "dying %d", (int)dying);
	cr_expect_eq(czt_count(c.proc, CZT_OUT, line), 1, "worker 1 died with a connection queued");
	cr_expect_eq(answered, 8, "%d of 8 connections answered (%s)", answered, czt_last_bad());
	for (int i = 0; i < 8; i++) {
		cr_expect(pids[i] > 0 && pids[i] != dying, "connection %d answered by %d (worker 1 "
			"was %d)", i, (int)pids[i], (int)dying);
	}
	snprintf(line, sizeof(line), "(pid %d) killed by signal SIGKILL", (int)dying);
	cr_expect_eq(czt_wait_line(c.proc, CZT_ERR, line, 1, 10000), 1, "'%s'", line);
	czt_stop(c.proc);
}

Test(failures, dead_worker_is_replaced_and_port_stays_up)
{
	struct czt_cluster c;
	struct czt_addr a;
	struct czt_worker w[CZT_MAX_WORKERS];
	pid_t pids[20];

	czt_cluster_start(&c, 2, "rr", "--style", "epoll-et", NULL);
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	cr_assert_eq(kill(c.w[0].pid, SIGKILL), 0);
	/* While the replacement starts, the port keeps answering. */
	int answered = czt_ask_many(&a, 20, 2, pids, 30000);

	cr_expect_eq(answered, 20, "%d of 20 connections answered across the restart", answered);
	int n = czt_wait_listening(c.proc, 3, w, 20000);

	cr_assert_geq(n, 3, "a replacement worker listens");
	cr_expect_gt(w[2].id, 2, "the replacement gets a new id (%d), ids are never reused",
		w[2].id);
	cr_expect_eq(w[2].port, c.port, "the replacement listens on the same port");
	cr_expect_gt(czt_ask(&a, 10000), 0, "the port answers after the restart");
	czt_stop(c.proc);
}

static void expect_give_up(const char *const cmd[], int code, const char *what)
{
	const char *largs[] = { czt_launcher(), "-w", "2", "--", NULL };
	const char *argv[16];
	int n = 0;

	for (int i = 0; largs[i] != NULL; i++) {
		argv[n++] = largs[i];
	}
	for (int i = 0; cmd[i] != NULL; i++) {
		argv[n++] = cmd[i];
	}
	argv[n] = NULL;
	struct czt_proc *p = czt_spawn(argv, NULL);

	czt_expect_exit(p, CZT_EXITED(code), 60000);
	cr_expect_geq(czt_count(p, CZT_ERR, "clusterize: giving up: "), 1,
		"the 'giving up' line is there");
	cr_expect_geq(czt_count(p, CZT_ERR, what), 1, "the message names %s", what);
	int forks = czt_count(p, CZT_ERR, " forked");

	cr_expect(forks >= 2 && forks <= 40, "it retried a few times, not forever (%d forks)",
		forks);
}

Test(failures, crash_loop_of_false_gives_up)
{
	const char *cmd[] = { "false", NULL };

	expect_give_up(cmd, 1, "'false' exited with code 1");
}

/* A crash loop is a failure even when the worker's status was 0. */
Test(failures, crash_loop_of_true_gives_up_with_1)
{
	const char *cmd[] = { "true", NULL };

	expect_give_up(cmd, 1, "'true' exited with code 0");
}

Test(failures, crash_loop_by_signal_gives_up_with_128_plus_signal)
{
	const char *cmd[] = { "/bin/sh", "-c", "kill -SEGV $$", NULL };

	expect_give_up(cmd, 128 + SIGSEGV, "SIGSEGV");
}

Test(failures, sigterm_stops_with_0_and_no_worker_left)
{
	struct czt_cluster c;
	pid_t pids[3];

	czt_cluster_start(&c, 3, "rr", "--style", "threads", NULL);
	for (int i = 0; i < 3; i++) {
		pids[i] = c.w[i].pid;
	}
	cr_assert_eq(czt_signal(c.proc, SIGTERM), 0);
	czt_expect_exit(c.proc, CZT_EXITED(0), 20000);
	cr_expect(czt_wait_gone(pids, 3, 5000), "every worker is gone after SIGTERM");
}

Test(failures, grace_ends_with_sigkill_for_workers_ignoring_sigterm)
{
	struct czt_cluster c;
	pid_t pids[2];
	char script[512];
	const char *largs[] = { "--grace", "1", NULL };

	/* An ignored SIGTERM stays ignored across exec. */
	snprintf(script, sizeof(script), "trap '' TERM; exec %s --style poll", czt_server());
	const char *cmd[] = { "/bin/sh", "-c", script, NULL };

	czt_cluster_start_argv(&c, 2, largs, cmd, NULL);
	pids[0] = c.w[0].pid;
	pids[1] = c.w[1].pid;
	cr_assert_eq(czt_signal(c.proc, SIGTERM), 0);
	czt_expect_exit(c.proc, CZT_EXITED(0), 20000);
	cr_expect(czt_wait_gone(pids, 2, 5000), "workers ignoring SIGTERM were killed");
}

Test(failures, sigkilled_launcher_takes_workers_along)
{
	struct czt_cluster c;
	struct czt_addr a;
	pid_t pids[2];

	czt_cluster_start(&c, 2, "none", "--style", "blocking", NULL);
	pids[0] = c.w[0].pid;
	pids[1] = c.w[1].pid;
	cr_assert_eq(czt_signal(c.proc, SIGKILL), 0);
	czt_expect_exit(c.proc, CZT_KILLED(SIGKILL), 5000);
	cr_expect(czt_wait_gone(pids, 2, 10000), "workers exit when the launcher is SIGKILLed");
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	pid_t after = czt_ask(&a, 5000);

	cr_expect_eq(after, -ECONNREFUSED, "nothing listens on the port afterwards (%d: %s)",
		(int)after, after < 0 ? strerror(-after) : czt_last_bad());
}

struct keeper_wait {
	pid_t launcher, not, found;
};

static bool new_keeper(void *v)
{
	struct keeper_wait *k = v;

	k->found = czt_child_named(k->launcher, "clusterize-keep", k->not);
	return k->found > 0;
}

/*
 * Without its keeper (killed three times in a row at once, the launcher
 * gives up on it), a SIGKILLed launcher still takes its workers along:
 * each was started with PR_SET_PDEATHSIG.
 */
Test(failures, sigkilled_launcher_without_keeper_takes_workers_along)
{
	struct czt_cluster c;
	struct keeper_wait k = { 0, -1, -1 };
	pid_t pids[2];
	char line[128];

	czt_cluster_start(&c, 2, "rr", "--style", "blocking", NULL);
	pids[0] = c.w[0].pid;
	pids[1] = c.w[1].pid;
	k.launcher = c.proc->pid;
	for (int i = 1; i <= 3; i++) {
		cr_assert(czt_wait_until(new_keeper, &k, 10000), "keeper %d runs", i);
		cr_assert_eq(kill(k.found, SIGKILL), 0);
		snprintf(line, sizeof(line), "keeper (pid %d) killed by signal SIGKILL", (int)k.found);
		cr_assert_eq(czt_wait_line(c.proc, CZT_ERR, line, 1, 10000), 1, "'%s'", line);
		k.not = k.found;
	}
	cr_assert_eq(czt_count(c.proc, CZT_ERR, "not restarted: workers may outlive a killed "
		"launcher"), 1, "the launcher gives up on its keeper");
	cr_assert_eq(czt_signal(c.proc, SIGKILL), 0);
	czt_expect_exit(c.proc, CZT_KILLED(SIGKILL), 5000);
	cr_expect(czt_wait_gone(pids, 2, 10000), "the workers die with the launcher anyway");
}

static bool exited_or_forked_more(void *v)
{
	struct czt_proc *p = v;

	return czt_exited(p) || czt_count(p, CZT_ERR, " forked") > 2;
}

/*
 * --max-restarts sets how many quick exits in a row of one worker end the
 * cluster, and --min-uptime what counts as quick: with one worker and a
 * limit of 2, `false` is started exactly twice.
 */
Test(failures, max_restarts_sets_the_crash_loop_limit)
{
	const char *argv[] = { czt_launcher(), "-w", "1", "--max-restarts", "2",
		"--min-uptime", "5", "--", "false", NULL };
	struct czt_proc *p = czt_spawn(argv, NULL);

	/* A third fork is a failure already: no need to wait for more. */
	czt_wait_until(exited_or_forked_more, p, 30000);
	czt_expect_exit(p, CZT_EXITED(1), 1000);
	cr_expect_eq(czt_count(p, CZT_ERR, " forked"), 2, "started exactly twice");
	cr_expect_eq(czt_count(p, CZT_ERR, "2 times in a row within 5s of starting"), 1,
		"the give-up line names the limit and the window");
}

/*
 * A worker that ran longer than --min-uptime (0.1 s here, below the
 * default 1 s) is not a crash: with --max-restarts 1 it is still replaced,
 * where a quicker exit would end the launcher.
 */
Test(failures, exit_after_min_uptime_is_not_a_crash)
{
	const char *largs[] = { "-s", "rr", "--min-uptime", "0.1", "--max-restarts", "1", NULL };
	const char *cmd[] = { czt_server(), "--usr1-exits", "3", NULL };
	struct czt_worker w[CZT_MAX_WORKERS];
	struct czt_cluster c;
	char line[96];

	czt_cluster_start_argv(&c, 1, largs, cmd, NULL);
	cr_assert(czt_wait_age(c.w[0].pid, 300), "worker 1 has run 0.3 s");
	cr_assert_eq(kill(c.w[0].pid, SIGUSR1), 0);
	snprintf(line, sizeof(line), "worker 1 (pid %d) exited with code 3", (int)c.w[0].pid);
	cr_assert_eq(czt_wait_line(c.proc, CZT_ERR, line, 1, 10000), 1, "'%s'", line);
	cr_assert_eq(czt_wait_live(c.proc, 1, w, 10000), 1, "a replacement listens");
	cr_expect_eq(w[0].id, 2, "worker 2 replaces it");
	cr_expect_eq(czt_count(c.proc, CZT_ERR, "giving up"), 0, "no crash loop");
	czt_stop(c.proc);
}
