/*
 * --metrics: the primary's Prometheus endpoint.  Its output passes
 * `promtool check metrics`; its counters move with what the cluster does
 * (connections, a killed worker, a rolling restart); bad, slow, oversized
 * and too many requests get an answer or are cut off, and the cluster keeps
 * serving; a bad address is a usage error.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "czt.h"

TestSuite(metrics, .init = czt_setup, .fini = czt_teardown, .timeout = 120);

#define BODY_MAX (256 * 1024)

struct cz {
	struct czt_cluster c;
	int mport;  /* the metrics endpoint's */
};

/* clusterize -w N -s rr --metrics 127.0.0.1:0 -- cz-server; reads the port. */
static void start(struct cz *z, int workers)
{
	const char *largs[] = { "-s", "rr", "--metrics", "127.0.0.1:0", NULL };
	const char *srv[] = { NULL };
	char *err, *p;

	czt_cluster_start_server(&z->c, workers, largs, srv);
	cr_assert_eq(czt_wait_line(z->c.proc, CZT_ERR, "metrics on http://", 1, 10000), 1);
	err = czt_read(z->c.proc, CZT_ERR);
	p = strstr(err, "metrics on http://127.0.0.1:");
	cr_assert_not_null(p, "the launcher says where: %s", err);
	z->mport = atoi(p + strlen("metrics on http://127.0.0.1:"));
	free(err);
	cr_assert_gt(z->mport, 0);
}

static void stop(struct cz *z)
{
	czt_stop(z->c.proc);
}

/* Sends `req` (len bytes) and reads until EOF: the status, or -errno. */
static int exchange(int port, const char *req, size_t len, char *resp, size_t cap)
{
	struct czt_addr a;
	struct pollfd pfd;
	size_t got = 0;
	int fd, status = -EBADMSG;

	czt_addr_tcp(&a, "127.0.0.1", port);
	fd = czt_connect(&a, 5000);
	if (fd < 0) {
		return fd;
	}
	if (len > 0 && send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len) {
		status = -errno;
		close(fd);
		return status;
	}
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	while (got + 1 < cap && poll(&pfd, 1, czt_ms(10000)) == 1) {
		ssize_t n = recv(fd, resp + got, cap - 1 - got, 0);

		if (n <= 0) {
			if (n < 0 && got == 0) {
				status = -errno;
			}
			break;
		}
		got += (size_t)n;
	}
	resp[got] = '\0';
	close(fd);
	if (got > 0) {
		sscanf(resp, "HTTP/1.1 %d", &status);
	} else if (status == -EBADMSG) {
		status = -ECONNRESET;  /* closed without an answer */
	}
	return status;
}

static char *scrape(const struct cz *z)
{
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	char *resp = malloc(BODY_MAX), *body;
	int status = exchange(z->mport, req, sizeof(req) - 1, resp, BODY_MAX);

	cr_assert_eq(status, 200, "GET /metrics: %d: %.200s", status, resp);
	cr_assert(strstr(resp, "\r\nContent-Type: text/plain; version=0.0.4; "
		"charset=utf-8\r\n") != NULL, "content type: %.300s", resp);
	body = strstr(resp, "\r\n\r\n");
	cr_assert_not_null(body);
	memmove(resp, body + 4, strlen(body + 4) + 1);
	return resp;
}

/* The value of the sample whose line starts with `prefix`; -1 if none. */
static double value(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);

	for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p) {
		if (strncmp(p, prefix, n) == 0 && *p != '#') {
			const char *eol = strchr(p, '\n');
			const char *sp = eol != NULL ? eol : p + strlen(p);

			while (sp > p && sp[-1] != ' ') {
				sp--;
			}
			return strtod(sp, NULL);
		}
	}
	return -1;
}

static double listener_value(const struct cz *z, const char *text, const char *name)
{
	char prefix[160];

	snprintf(prefix, sizeof(prefix), "%s{address=\"127.0.0.1:%d\",policy=\"rr\"} ", name,
		z->c.port);
	return value(text, prefix);
}

static double worker_value(const char *text, const char *name, int id)
{
	char prefix[160];

	snprintf(prefix, sizeof(prefix), "%s{id=\"%d\",", name, id);
	return value(text, prefix);
}

static void ask(const struct cz *z, int n)
{
	struct czt_addr a;
	pid_t pids[100];

	cr_assert_leq(n, 100);
	czt_addr_tcp(&a, "127.0.0.1", z->c.port);
	cr_assert_eq(czt_ask_many(&a, n, 1, pids, 10000), n, "%d connections answered (%s)",
		n, czt_last_bad());
}

struct wait_count {
	const struct cz *z;
	double want;
};

/* The wait histogram counts a connection when it is first sent to a worker. */
static bool histogram_reached(void *arg)
{
	struct wait_count *w = arg;
	char *text = scrape(w->z);
	double got = listener_value(w->z, text, "clusterize_connection_wait_seconds_count");

	free(text);
	return got >= w->want;
}

Test(metrics, counters_follow_the_connections)
{
	struct cz z;
	char *before, *after;

	start(&z, 2);
	before = scrape(&z);
	ask(&z, 100);
	struct wait_count w = { &z, listener_value(&z, before,
		"clusterize_connection_wait_seconds_count") + 100 };
	cr_assert(czt_wait_until(histogram_reached, &w, 10000), "100 waits observed");
	after = scrape(&z);
	cr_expect_eq(listener_value(&z, after, "clusterize_listener_connections_accepted_total") -
		listener_value(&z, before, "clusterize_listener_connections_accepted_total"), 100);
	for (int i = 0; i < 2; i++) {
		int id = z.c.w[i].id;
		double d = worker_value(after, "clusterize_worker_connections_total", id) -
			worker_value(before, "clusterize_worker_connections_total", id);

		cr_expect_eq(d, 50, "worker %d was handed 50 connections, not %g", id, d);
	}
	cr_expect_eq(listener_value(&z, after, "clusterize_connection_wait_seconds_count"),
		listener_value(&z, after, "clusterize_listener_connections_accepted_total"),
		"every accepted connection's wait was observed");
	char inf[160];
	snprintf(inf, sizeof(inf), "clusterize_connection_wait_seconds_bucket{address="
		"\"127.0.0.1:%d\",policy=\"rr\",le=\"+Inf\"} ", z.c.port);
	cr_expect_eq(value(after, inf), listener_value(&z, after,
		"clusterize_connection_wait_seconds_count"), "the +Inf bucket holds them all");
	cr_expect_eq(value(after, "clusterize_workers{state=\"listening\"} "), 2);
	cr_expect_eq(value(after, "clusterize_workers_wanted "), 2);
	cr_expect_gt(value(after, "process_resident_memory_bytes "), 0);
	free(before);
	free(after);
	stop(&z);
}

Test(metrics, a_killed_worker_counts_as_a_restart)
{
	struct czt_worker live[4];
	struct cz z;
	char *text;

	start(&z, 2);
	text = scrape(&z);
	cr_expect_eq(value(text, "clusterize_worker_restarts_total "), 0);
	free(text);
	cr_assert_eq(kill(z.c.w[0].pid, SIGKILL), 0);
	cr_assert_eq(czt_wait_line(z.c.proc, CZT_ERR, "killed by signal SIGKILL", 1, 10000), 1);
	cr_assert_eq(czt_wait_live(z.c.proc, 2, live, 10000), 2, "a replacement listens");
	text = scrape(&z);
	cr_expect_eq(value(text, "clusterize_worker_restarts_total "), 1);
	for (int i = 0; i < 2; i++) {
		if (live[i].pid != z.c.w[1].pid) {
			cr_expect_eq(worker_value(text, "clusterize_worker_restarts", live[i].id), 1,
				"the replacement (worker %d) shows its slot's restart", live[i].id);
		}
	}
	free(text);
	stop(&z);
}

Test(metrics, a_rolling_restart_counts_started_and_finished)
{
	struct cz z;
	char *text;

	start(&z, 2);
	cr_assert_eq(czt_signal(z.c.proc, SIGHUP), 0);
	cr_assert_eq(czt_wait_line(z.c.proc, CZT_ERR, "reload done", 1, 30000), 1);
	text = scrape(&z);
	cr_expect_eq(value(text, "clusterize_reloads_started_total "), 1);
	cr_expect_eq(value(text, "clusterize_reloads_finished_total "), 1);
	cr_expect_eq(value(text, "clusterize_reloads_aborted_total "), 0);
	free(text);
	stop(&z);
}

Test(metrics, promtool_accepts_the_output)
{
	const char *promtool = czt_which("promtool");
	char path[512], *text;
	struct cz z;
	FILE *f;

	if (promtool == NULL) {
		cr_skip_test("promtool is not installed (Debian package prometheus)");
	}
	start(&z, 2);
	ask(&z, 10);
	text = scrape(&z);
	snprintf(path, sizeof(path), "%s/metrics.txt", czt_tmpdir());
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	free(text);

	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "exec '%s' check metrics < '%s'", promtool, path);
	const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	struct czt_proc *p = czt_spawn(argv, NULL);
	/* Lint problems make it exit 3 (its logs are printed then). */
	czt_expect_exit(p, CZT_EXITED(0), 20000);
	char *out = czt_read(p, CZT_OUT), *err = czt_read(p, CZT_ERR);

	cr_expect(out[0] == '\0' && err[0] == '\0', "promtool check metrics: %s%s", out, err);
	free(out);
	free(err);
	stop(&z);
}

struct bad_case {
	const char *req;
	int status;
};

Test(metrics, bad_requests_get_an_answer_and_the_cluster_serves)
{
	static const struct bad_case cases[] = {
		{ "garbage\r\n\r\n", 400 },
		{ "GET /metrics HTTP/2.0\r\n\r\n", 400 },
		{ "GET metrics HTTP/1.1\r\n\r\n", 400 },
		{ "GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", 400 },
		{ "GET /metrics HTTP/1.1\r\nHost: a\001b\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\n\r\n", 404 },
		{ "GET /metricsx HTTP/1.1\r\n\r\n", 404 },
		{ "POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", 405 },
		{ "DELETE /metrics HTTP/1.0\r\n\r\n", 405 },
		{ "GET /metrics?x=1 HTTP/1.0\r\n\r\n", 200 },
	};
	static char resp[BODY_MAX], big[20000];
	struct czt_addr a;
	struct cz z;

	start(&z, 2);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = exchange(z.mport, cases[i].req, strlen(cases[i].req), resp,
			sizeof(resp));

		cr_expect_eq(got, cases[i].status, "'%s' gets %d, expected %d", cases[i].req,
			got, cases[i].status);
	}
	cr_expect_eq(exchange(z.mport, "HEAD /metrics HTTP/1.1\r\n\r\n", 26, resp,
		sizeof(resp)), 200);
	cr_expect_null(strstr(resp, "# TYPE"), "HEAD has no body: %.300s", resp);
	/* Headers that never end, and that go on past the limit. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
	cr_expect_eq(exchange(z.mport, big, sizeof(big), resp, sizeof(resp)), 431);
	/* Clients that send nothing take the endpoint's slots, never the cluster. */
	int idle[CZT_MAX_PROCS];
	czt_addr_tcp(&a, "127.0.0.1", z.mport);
	for (int i = 0; i < 9; i++) {
		idle[i] = czt_connect(&a, 5000);
		cr_assert_geq(idle[i], 0);
	}
	cr_expect_eq(exchange(z.mport, "GET /metrics HTTP/1.0\r\n\r\n", 26, resp,
		sizeof(resp)), -ECONNRESET, "past 8 clients, one is closed unanswered");
	ask(&z, 4);
	/* The idle ones are cut off after the header timeout. */
	struct pollfd pfd = { .fd = idle[0], .events = POLLIN };
	cr_expect_eq(poll(&pfd, 1, czt_ms(15000)), 1, "an idle client is cut off");
	cr_expect_eq(recv(idle[0], resp, sizeof(resp), MSG_DONTWAIT), 0);
	for (int i = 0; i < 9; i++) {
		close(idle[i]);
	}
	free(scrape(&z));
	ask(&z, 4);
	stop(&z);
}

struct usage_case {
	const char *arg;
	const char *env;
	const char *mention;
};

Test(metrics, a_bad_address_is_a_usage_error)
{
	static const struct usage_case cases[] = {
		{ "9464", NULL, "'9464'" },
		{ "example.com:9464", NULL, "example.com" },
		{ "127.0.0.1:65536", NULL, "65536" },
		{ "127.0.0.1:", NULL, "port" },
		{ "[::1:9464", NULL, "[::1" },
		{ NULL, "CLUSTERIZE_METRICS=nowhere", "nowhere" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *env[] = { cases[i].env, NULL };
		struct czt_proc *p = cases[i].arg != NULL ?
			czt_launch(NULL, "--metrics", cases[i].arg, "--", "true", NULL) :
			czt_launch(env, "--", "true", NULL);
		czt_expect_exit(p, CZT_EXITED(2), 10000);
		char *err = czt_read(p, CZT_ERR);

		cr_expect(strncmp(err, "clusterize: ", 12) == 0 && strstr(err, cases[i].mention) &&
			strchr(err, '\n') == err + strlen(err) - 1, "one line naming %s: %s",
			cases[i].mention, err);
		free(err);
	}
}

Test(metrics, an_address_in_use_fails_at_start)
{
	int port, fd = czt_hold_port("127.0.0.1", &port);
	char addr[32];

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	struct czt_proc *p = czt_launch(NULL, "--metrics", addr, "--", czt_server(), NULL);
	czt_expect_exit(p, CZT_EXITED(1), 10000);
	char *err = czt_read(p, CZT_ERR);

	cr_expect(strstr(err, "clusterize: metrics endpoint") != NULL &&
		strstr(err, "address already in use") != NULL, "names the cause: %s", err);
	cr_expect_null(strstr(err, "forked"), "no worker was started: %s", err);
	free(err);
	close(fd);
}

Test(metrics, binds_only_the_address_given)
{
	struct czt_addr a;
	struct cz z;
	int fd;

	start(&z, 1);
	/* 127.0.0.2 is loopback too: only a socket bound to any address
	 * would answer there. */
	czt_addr_tcp(&a, "127.0.0.2", z.mport);
	fd = czt_connect(&a, 5000);
	cr_expect_eq(fd, -ECONNREFUSED, "nothing listens on 127.0.0.2:%d (got %d)", z.mport, fd);
	if (fd >= 0) {
		close(fd);
	}
	free(scrape(&z));
	stop(&z);
}
