/*
 * Draining waits for a worker's open connections (drain.h), with servers
 * as new users write them: a Python ThreadingHTTPServer and a plain node
 * http server, no signal handling (SIGTERM kills them mid-request), 50 ms
 * per answer.  Rolling restarts, scaling down and stopping under load lose
 * no request; a keep-alive load loses none within --drain-timeout; what
 * stays open past it is cut, and the log says how much.  And the count
 * itself: status ACTIVE follows the connections open, in every accept
 * style the shim handles, rr and none.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
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

#define LOAD_THREADS 8

TestSuite(drain, .init = czt_setup, .fini = czt_ops_teardown, .timeout = 240);

/* name's path, or skip the test. */
static const char *need(const char *name)
{
	const char *path = czt_which(name);

	if (path == NULL) {
		cr_skip_test("%s is not installed", name);
	}
	return path;
}

/*
 * clusterize -w N --control CTL LARGS -- the slow HTTP server ("py" or
 * "node") on a free port, with `delay` ms per answer; `keepalive` (py):
 * HTTP/1.1 connections stay open.  Returns the port.
 */
static int start_http(struct czt_cluster *c, int workers, const char *server,
	const char *const largs[], const char *delay, bool keepalive)
{
	static char port[16];
	const char *args[24];
	const char *cmd[8];
	int n = 0, k = 0;

	snprintf(port, sizeof(port), "%d", czt_free_port(AF_INET));
	args[n++] = "--control";
	args[n++] = czt_ctl_path();
	for (int i = 0; largs != NULL && largs[i] != NULL; i++) {
		args[n++] = largs[i];
	}
	args[n] = NULL;
	if (strcmp(server, "node") == 0) {
		cmd[k++] = need("node");
		cmd[k++] = czt_source("tests/servers/slow_http.js");
	} else {
		cmd[k++] = need("python3");
		cmd[k++] = czt_source("tests/servers/slow_http.py");
	}
	cmd[k++] = port;
	cmd[k++] = delay;
	if (keepalive) {
		cmd[k++] = "keepalive";
	}
	cmd[k] = NULL;
	czt_cluster_start_argv(c, workers, args, cmd, NULL);
	cr_assert_eq(c->port, atoi(port), "listening on %s: %s", port, c->w[0].what);
	return c->port;
}

/*
 * status --json, asked on the control socket itself (the subcommand would
 * be one more process per poll): the sum of "active", and each worker's
 * id and count in ids[] and per[].
 */
static int active_now(unsigned *ids, unsigned *per, int max)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	static char buf[65536];
	size_t len = 0;
	json_error_t e;
	json_t *doc, *ws, *w;
	size_t i;
	int sum = 0, fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ssize_t n;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", czt_ctl_path());
	cr_assert(fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0,
		"connect %s: %s", sun.sun_path, strerror(errno));
	cr_assert_eq(write(fd, "status json\n", 12), 12);
	while ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0) {
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	cr_assert(strncmp(buf, "ok\n", 3) == 0, "status answers ok: %s", buf);
	doc = json_loads(buf + 3, 0, &e);
	cr_assert_not_null(doc, "status json is JSON: %s", buf);
	ws = json_object_get(doc, "workers");
	json_array_foreach(ws, i, w) {
		json_t *a = json_object_get(w, "active");

		cr_assert(json_is_integer(a), "every worker has an active count: %s", buf);
		sum += (int)json_integer_value(a);
		if ((int)i < max && ids != NULL) {
			ids[i] = (unsigned)json_integer_value(json_object_get(w, "id"));
			per[i] = (unsigned)json_integer_value(a);
		}
	}
	json_decref(doc);
	return sum;
}

static bool active_is(void *arg)
{
	return active_now(NULL, NULL, 0) == *(int *)arg;
}

/* Waits until status says `want` connections are open in all. */
static void expect_active(int want, int ms, const char *why)
{
	bool ok = czt_wait_until(active_is, &want, ms);

	cr_expect(ok, "%s: %d open expected, status says %d", why, want,
		active_now(NULL, NULL, 0));
}

/* After reload number r: done, and only the new workers are left. */
static void wait_reloaded(struct czt_proc *p, int r, int workers)
{
	struct czt_worker live[CZT_MAX_WORKERS];
	char done[64];

	snprintf(done, sizeof(done), "reload done: %d workers replaced", workers);
	cr_assert_eq(czt_wait_line(p, CZT_ERR, done, r, 60000), r, "reload %d is done", r);
	cr_assert_eq(czt_wait_live(p, workers, live, 60000), workers,
		"reload %d: the old workers drained and exited", r);
}

static void expect_no_failure(const struct czt_http_load_result *res, const char *what)
{
	cr_expect_gt(res->ok, 0, "%s: requests were answered", what);
	cr_expect_eq(res->failed, 0, "%s: %d of %d requests failed; the first: %s", what,
		res->failed, res->requests, res->first_bad);
}

/*
 * Three SIGHUPs under a new-connection-per-request load.  node_ipc: node
 * as a worker of Node's cluster (told to disconnect), or not ("off": a
 * plain process, drained by its connections alone).
 */
static void reload_under_load(const char *server, const char *node_ipc)
{
	struct czt_cluster c;
	struct czt_http_load_result res;
	const char *largs[] = { "--node-ipc", node_ipc, NULL };
	int port = start_http(&c, 2, server, largs, "50", false);
	struct czt_http_load *l = czt_http_load_start(port, LOAD_THREADS, 1);

	cr_assert(czt_http_load_wait_more(l, 40, 30000), "the load is answered");
	for (int r = 1; r <= 3; r++) {
		czt_signal(c.proc, SIGHUP);
		wait_reloaded(c.proc, r, 2);
		cr_assert(czt_http_load_wait_more(l, 40, 30000), "reload %d: still answered", r);
	}
	czt_http_load_stop(l, &res);
	expect_no_failure(&res, server);
	if (strcmp(server, "node") == 0 && strcmp(node_ipc, "on") == 0) {
		/* Told to disconnect, node exits once its connections are done. */
		cr_expect_eq(czt_count(c.proc, CZT_ERR, ") exited with code 0"), 6,
			"the 6 old node workers left by their disconnect");
	} else {
		/* Python dies on SIGTERM, but only got it holding nothing. */
		cr_expect_eq(czt_count(c.proc, CZT_ERR, "killed by signal SIGTERM"), 6,
			"the 6 old workers were stopped by their stop signal");
	}
	czt_stop(c.proc);
}

Test(drain, python_reload_under_load_loses_nothing)
{
	reload_under_load("py", "on");
}

Test(drain, node_reload_under_load_loses_nothing)
{
	reload_under_load("node", "on");
}

Test(drain, plain_node_process_reload_under_load_loses_nothing)
{
	reload_under_load("node", "off");
}

Test(drain, python_scale_down_under_load_loses_nothing)
{
	struct czt_cluster c;
	struct czt_http_load_result res;
	struct czt_worker live[CZT_MAX_WORKERS];
	struct czt_ops_run r;
	int port = start_http(&c, 3, "py", NULL, "50", false);
	struct czt_http_load *l = czt_http_load_start(port, LOAD_THREADS, 1);

	cr_assert(czt_http_load_wait_more(l, 40, 30000), "the load is answered");
	cr_assert_eq(czt_ops_client(&r, -1, NULL, "scale", "1", "--control", czt_ctl_path(),
		NULL), 0, "scale 1: %s", r.err);
	czt_ops_run_free(&r);
	cr_assert_eq(czt_wait_live(c.proc, 1, live, 60000), 1, "two workers drained and gone");
	cr_assert(czt_http_load_wait_more(l, 40, 30000), "the last worker answers");
	czt_http_load_stop(l, &res);
	expect_no_failure(&res, "scale 3 -> 1");
	czt_stop(c.proc);
}

/* Keep-alive clients (20 requests per connection, then they close it). */
Test(drain, keepalive_load_loses_nothing_within_the_drain_timeout)
{
	struct czt_cluster c;
	struct czt_http_load_result res;
	const char *largs[] = { "--drain-timeout", "60", NULL };
	int port = start_http(&c, 2, "py", largs, "50", true);
	struct czt_http_load *l = czt_http_load_start(port, LOAD_THREADS, 20);

	cr_assert(czt_http_load_wait_more(l, 40, 30000), "the load is answered");
	czt_signal(c.proc, SIGHUP);
	wait_reloaded(c.proc, 1, 2);
	cr_assert(czt_http_load_wait_more(l, 40, 30000), "answered after the reload");
	czt_http_load_stop(l, &res);
	expect_no_failure(&res, "keep-alive");
	cr_expect_eq(czt_count(c.proc, CZT_ERR, "--drain-timeout"), 0,
		"every old connection closed before the timeout");
	czt_stop(c.proc);
}

/* Sums the N of every line "... still has N connection(s) open after". */
static int cut_in_log(const struct czt_proc *p)
{
	char *text = czt_read(p, CZT_ERR);
	int sum = 0;

	for (const char *at = text; (at = strstr(at, "still has ")) != NULL; at++) {
		sum += atoi(at + strlen("still has "));
	}
	free(text);
	return sum;
}

static bool closed_by_server(int fd)
{
	char b;
	ssize_t n = recv(fd, &b, 1, MSG_DONTWAIT);

	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

struct held {
	int fd[4];
};

static bool all_closed(void *arg)
{
	struct held *h = arg;

	for (int i = 0; i < 4; i++) {
		if (!closed_by_server(h->fd[i])) {
			return false;
		}
	}
	return true;
}

Test(drain, connections_past_the_drain_timeout_are_cut_and_counted)
{
	struct czt_cluster c;
	struct held h;
	const char *largs[] = { "--drain-timeout", "1", NULL };
	int port = start_http(&c, 2, "py", largs, "0", true);

	for (int i = 0; i < 4; i++) {
		pid_t pid = czt_http_hold(port, &h.fd[i], 10000);

		cr_assert_gt(pid, 0, "connection %d answered: %s", i, czt_http_last_bad());
	}
	expect_active(4, 10000, "4 kept open");
	czt_signal(c.proc, SIGHUP);
	wait_reloaded(c.proc, 1, 2);
	cr_expect_eq(czt_count_re(c.proc, CZT_ERR,
		"reload: worker [0-9]+ \\(pid [0-9]+\\) draining, [0-9]+ connections? open"), 2,
		"each old worker said what it waited for");
	cr_expect_eq(czt_count_re(c.proc, CZT_ERR, "warning: reload: worker [0-9]+ \\(pid "
		"[0-9]+\\) still has [0-9]+ connections? open after 1s \\(--drain-timeout\\): "
		"sending SIGTERM"), 2, "each old worker was cut after the timeout");
	cr_expect_eq(cut_in_log(c.proc), 4, "the log counts the 4 connections cut");
	cr_expect(czt_wait_until(all_closed, &h, 10000), "the cut connections are closed");
	for (int i = 0; i < 4; i++) {
		close(h.fd[i]);
	}
	czt_stop(c.proc);
}

/* A stop waits for the requests in flight, then exits 0. */
struct once {
	int port;
	pid_t pid;
	pthread_t t;
};

static void *ask_once(void *arg)
{
	struct once *o = arg;

	o->pid = czt_http_once(o->port, NULL, 30000);
	return NULL;
}

Test(drain, stop_waits_for_requests_in_flight)
{
	struct czt_cluster c;
	struct once o[6];
	int port = start_http(&c, 2, "py", NULL, "1500", false);

	for (int i = 0; i < 6; i++) {
		o[i].port = port;
		cr_assert_eq(pthread_create(&o[i].t, NULL, ask_once, &o[i]), 0);
	}
	expect_active(6, 10000, "6 requests in flight");
	czt_signal(c.proc, SIGTERM);
	for (int i = 0; i < 6; i++) {
		pthread_join(o[i].t, NULL);
		cr_expect(czt_cluster_owns(&c, o[i].pid), "request %d answered (%d): %s", i,
			(int)o[i].pid, czt_http_last_bad());
	}
	czt_expect_exit(c.proc, CZT_EXITED(0), 30000);
	cr_expect_eq(czt_count_re(c.proc, CZT_ERR,
		"stop: worker [0-9]+ \\(pid [0-9]+\\) draining, 3 connections open"), 2,
		"each worker said it waited for its 3");
}

Test(drain, active_counts_idle_connections_and_drops_to_zero)
{
	struct czt_cluster c;
	unsigned ids[2], per[2];
	int fds[20];
	int port = start_http(&c, 2, "py", NULL, "0", true);

	for (int i = 0; i < 20; i++) {
		fds[i] = czt_http_connect(port, NULL, 10000);
		cr_assert_geq(fds[i], 0, "connection %d: %s", i, strerror(-fds[i]));
	}
	expect_active(20, 10000, "20 idle connections");
	cr_assert_eq(active_now(ids, per, 2), 20);
	cr_expect_eq(per[0] + per[1], 20, "counted per worker: %u and %u", per[0], per[1]);
	for (int i = 0; i < 20; i++) {
		close(fds[i]);
	}
	expect_active(0, 1000, "all 20 closed, within a second");
	czt_stop(c.proc);
}

/* Reads "<pid>\n" from a connection that stays open: the pid, or -1. */
static pid_t read_pid_line(int fd, int ms)
{
	char line[32] = "";
	size_t got = 0;

	while (strchr(line, '\n') == NULL && got < sizeof(line) - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t k;

		if (poll(&p, 1, czt_ms(ms)) <= 0) {
			return -1;
		}
		k = recv(fd, line + got, sizeof(line) - 1 - got, MSG_DONTWAIT);
		if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
			return -1;
		}
		got += k > 0 ? (size_t)k : 0;
	}
	return (pid_t)atoi(line);
}

/*
 * cz-server --hold in an accept style: `n` connections, each kept until
 * the test closes it, are counted; and none once closed.
 */
static void active_in_style(const char *sched, const char *style, int n)
{
	struct czt_cluster c;
	struct czt_addr a;
	const char *largs[] = { "-s", sched, "--control", czt_ctl_path(), NULL };
	bool by_fclose = strcmp(style, "fclose") == 0;
	const char *srv[] = { "--style", by_fclose ? "threads" : style, "--count", "4",
		"--hold", by_fclose ? "--fclose-conns" : NULL, NULL };
	int fds[8];

	czt_cluster_start_server(&c, 2, largs, srv);
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	for (int i = 0; i < n; i++) {
		fds[i] = czt_connect(&a, 10000);
		cr_assert_geq(fds[i], 0);
		/* The pid line says it was accepted and is held. */
		pid_t pid = read_pid_line(fds[i], 10000);

		cr_assert(czt_cluster_owns(&c, pid), "%s/%s: connection %d answered by %d",
			sched, style, i, (int)pid);
	}
	/* Each was counted before accept() returned it; the short deadline
	 * only lets a forked child's copy settle, and a count that never
	 * comes fails in 2 s, not 10. */
	expect_active(n, 2000, style);
	for (int i = 0; i < n; i++) {
		close(fds[i]);
	}
	expect_active(0, 10000, style);
	czt_stop(c.proc);
}

Test(drain, active_in_a_threads_server_rr)
{
	active_in_style("rr", "threads", 4);
}

Test(drain, active_in_a_threads_server_none)
{
	active_in_style("none", "threads", 4);
}

Test(drain, active_across_fork_in_a_prefork_server_rr)
{
	active_in_style("rr", "prefork", 4);
}

Test(drain, active_across_fork_in_a_prefork_server_none)
{
	active_in_style("none", "prefork", 4);
}

/* The worker accepts, a child serves, the worker closes its copy at once. */
Test(drain, active_follows_a_connection_into_a_forked_child_rr)
{
	active_in_style("rr", "forking", 4);
}

Test(drain, active_follows_a_connection_into_a_forked_child_none)
{
	active_in_style("none", "forking", 4);
}

/* libc closes an fdopen()ed connection inside fclose(), without close(). */
Test(drain, active_drops_when_a_connection_is_closed_by_fclose)
{
	active_in_style("rr", "fclose", 4);
}
