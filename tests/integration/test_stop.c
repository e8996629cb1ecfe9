/*
 * Stopping: SIGTERM (and SIGINT, a terminal's Ctrl-C) lets every request
 * already in a worker finish, then exits 0 with no worker left; a second
 * SIGTERM during the grace period and SIGQUIT kill the workers at once;
 * `clusterize stop` stops like SIGTERM; --stop-signal is what the workers
 * get.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "czt.h"
#include "czt_ops.h"

#define WORKERS 4
#define IN_FLIGHT 8

TestSuite(stop, .init = czt_setup, .fini = czt_teardown, .timeout = 120);

/* clusterize -w 4 LARGS -- cz-server SRV... */
static void start(struct czt_cluster *c, const char *const largs[], const char *const srv[])
{
	czt_cluster_start_server(c, WORKERS, largs, srv);
}

static void worker_pids(const struct czt_cluster *c, pid_t pids[WORKERS])
{
	for (int i = 0; i < WORKERS; i++) {
		pids[i] = c->w[i].pid;
	}
}

/* How many of the connections have something to read (an answer or EOF). */
static int readable(const int fds[IN_FLIGHT])
{
	struct pollfd p[IN_FLIGHT];
	int n = 0;

	for (int i = 0; i < IN_FLIGHT; i++) {
		p[i].fd = fds[i];
		p[i].events = POLLIN;
	}
	if (poll(p, IN_FLIGHT, 0) > 0) {
		for (int i = 0; i < IN_FLIGHT; i++) {
			n += (p[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
		}
	}
	return n;
}

/* The launcher exited 0 and took every worker with it. */
static void expect_stopped(struct czt_proc *p, const pid_t pids[WORKERS], const char *what)
{
	czt_expect_exit(p, CZT_EXITED(0), 20000);
	cr_expect(czt_wait_gone(pids, WORKERS, 5000), "%s: no worker is left", what);
}

static void stop_finishes_in_flight(const char *sched, int sig)
{
	const char *largs[] = { "-s", sched, NULL };
	const char *srv[] = { "--graceful", "--delay-ms", "1000", "--log-accepts", NULL };
	struct czt_cluster c;
	struct czt_addr a;
	int fds[IN_FLIGHT];
	pid_t pids[WORKERS];

	start(&c, largs, srv);
	worker_pids(&c, pids);
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	for (int i = 0; i < IN_FLIGHT; i++) {
		fds[i] = czt_connect(&a, 10000);
		cr_assert_geq(fds[i], 0, "connect %d: %s", i, strerror(-fds[i]));
	}
	/* Every request is inside a worker, none answered yet. */
	cr_assert_eq(czt_wait_line(c.proc, CZT_OUT, "accepted ", IN_FLIGHT, 10000), IN_FLIGHT,
		"%s: the workers accepted all %d connections", sched, IN_FLIGHT);
	cr_assert_eq(readable(fds), 0, "%s: no request was answered before the stop", sched);
	cr_assert_eq(czt_signal(c.proc, sig), 0);
	for (int i = 0; i < IN_FLIGHT; i++) {
		pid_t pid = czt_read_pid(fds[i], 10000);

		close(fds[i]);
		cr_expect(pid > 0 && czt_cluster_owns(&c, pid), "%s: in-flight request %d answered "
			"by %d (%s)", sched, i, (int)pid, pid < 0 ? strerror(-pid) : czt_last_bad());
	}
	expect_stopped(c.proc, pids, sched);
	cr_expect_eq(czt_count(c.proc, CZT_ERR, sig == SIGINT ? "clusterize: stopping (SIGINT)" :
		"clusterize: stopping (SIGTERM)"), 1);
	cr_expect_eq(czt_count(c.proc, CZT_ERR, ") exited with code 0"), WORKERS,
		"%s: every worker finished and exited 0", sched);
	cr_expect_eq(czt_count(c.proc, CZT_ERR, "killed by signal"), 0, "%s: none was killed",
		sched);
}

Test(stop, rr_sigterm_answers_every_request_in_flight)
{
	stop_finishes_in_flight("rr", SIGTERM);
}

Test(stop, none_sigterm_answers_every_request_in_flight)
{
	stop_finishes_in_flight("none", SIGTERM);
}

/* SIGINT is a graceful stop too, not the fast one. */
Test(stop, rr_sigint_answers_every_request_in_flight)
{
	stop_finishes_in_flight("rr", SIGINT);
}

/* --stop-signal USR1: the workers get SIGUSR1, on which they exit with 7. */
Test(stop, stop_signal_is_what_workers_get)
{
	const char *largs[] = { "-s", "rr", "--stop-signal", "USR1", "--grace", "2", NULL };
	const char *srv[] = { "--usr1-exits", "7", "--ignore-term", NULL };
	struct czt_cluster c;
	pid_t pids[WORKERS];

	start(&c, largs, srv);
	worker_pids(&c, pids);
	cr_assert_eq(czt_signal(c.proc, SIGTERM), 0);
	expect_stopped(c.proc, pids, "--stop-signal USR1");
	cr_expect_eq(czt_count(c.proc, CZT_ERR, ") exited with code 7"), WORKERS,
		"every worker got SIGUSR1");
	cr_expect_eq(czt_count(c.proc, CZT_ERR, "killed by signal"), 0, "none had to be killed");
}

/* Each worker was killed by SIGKILL (it ignores SIGTERM). */
static void expect_all_killed(const struct czt_cluster *c)
{
	for (int i = 0; i < WORKERS; i++) {
		char line[96];

		snprintf(line, sizeof(line), "(pid %d) killed by signal SIGKILL", (int)c->w[i].pid);
		cr_expect_eq(czt_count(c->proc, CZT_ERR, line), 1, "worker %d: '%s'", c->w[i].id,
			line);
	}
}

/*
 * Workers that ignore SIGTERM, a long grace period, and `sigs` sent in
 * turn: all but the last are SIGTERMs that start a graceful stop; the last
 * must stop everything at once ("stopping now").
 */
static void expect_fast_stop(const int *sigs, int n, const char *line, const char *what)
{
	const char *largs[] = { "-s", "rr", "--grace", "30", NULL };
	const char *srv[] = { "--ignore-term", NULL };
	struct czt_cluster c;
	pid_t pids[WORKERS];

	start(&c, largs, srv);
	worker_pids(&c, pids);
	for (int i = 0; i < n - 1; i++) {
		cr_assert_eq(czt_signal(c.proc, sigs[i]), 0);
		cr_assert_eq(sigs[i], SIGTERM);
		cr_assert_eq(czt_wait_line(c.proc, CZT_ERR, "clusterize: stopping (SIGTERM)", 1,
			10000), 1);
		cr_expect(!czt_exited(c.proc), "workers ignoring SIGTERM keep the launcher waiting");
	}
	cr_assert_eq(czt_signal(c.proc, sigs[n - 1]), 0);
	cr_expect_eq(czt_wait_line(c.proc, CZT_ERR, line, 1, 10000), 1, "'%s'", line);
	/* At once: long before the 30 s of --grace. */
	cr_assert(czt_wait_gone(pids, WORKERS, 5000), "%s: the workers are killed at once", what);
	expect_stopped(c.proc, pids, what);
	expect_all_killed(&c);
}

Test(stop, second_sigterm_kills_at_once)
{
	const int sigs[] = { SIGTERM, SIGTERM };

	expect_fast_stop(sigs, 2, "clusterize: stopping now (SIGTERM)", "second SIGTERM");
}

Test(stop, sigquit_kills_at_once)
{
	const int sigs[] = { SIGQUIT };

	expect_fast_stop(sigs, 1, "clusterize: stopping now (SIGQUIT)", "SIGQUIT");
}

Test(stop, stop_subcommand_stops_gracefully)
{
	const char *largs[] = { "-s", "rr", "--control", czt_ctl_path(), NULL };
	const char *srv[] = { "--graceful", NULL };
	struct czt_cluster c;
	struct czt_ops_run run;
	pid_t pids[WORKERS];

	start(&c, largs, srv);
	worker_pids(&c, pids);
	int rc = czt_ops_client(&run, -1, NULL, "stop", "--control", czt_ctl_path(), NULL);

	cr_expect_eq(rc, 0, "clusterize stop exits 0, got %d: %s", rc, run.err);
	czt_ops_run_free(&run);
	expect_stopped(c.proc, pids, "clusterize stop");
	cr_expect_eq(czt_count(c.proc, CZT_ERR, "clusterize: stopping (stop request)"), 1);
	cr_expect_eq(czt_count(c.proc, CZT_ERR, ") exited with code 0"), WORKERS,
		"every worker exited 0 after its SIGTERM");
}

/*
 * A worker that forked the server instead of exec'ing it (a shell wrapper
 * without exec): stopping the launcher stops the server too, nothing of a
 * worker outlives it.
 */
Test(stop, what_a_worker_started_does_not_outlive_it)
{
	static char script[512];
	const char *largs[] = { "-s", "rr", NULL };
	struct czt_cluster c;

	snprintf(script, sizeof(script), "%s --style poll & wait", czt_server());
	const char *cmd[] = { "/bin/sh", "-c", script, NULL };

	czt_cluster_start_argv(&c, 2, largs, cmd, NULL);
	/* The "listening" lines name the servers, the shells' children. */
	pid_t servers[2] = { c.w[0].pid, c.w[1].pid };

	for (int i = 0; i < 2; i++) {
		cr_assert(czt_ppid(servers[i]) > 0 && czt_ppid(servers[i]) != c.proc->pid,
			"server %d is a grandchild of the launcher", (int)servers[i]);
	}
	/* Not czt_stop: its own clean-up must not be what kills them. */
	cr_assert_eq(czt_signal(c.proc, SIGTERM), 0);
	czt_expect_exit(c.proc, CZT_EXITED(0), 15000);
	cr_expect(czt_wait_gone(servers, 2, 5000), "the servers %d and %d are gone too",
		(int)servers[0], (int)servers[1]);
}
