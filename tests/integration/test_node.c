/*
 * Node workers are real cluster workers (native mode, the default): real
 * node, no mocks.  The servers are the scripts of tests/servers/node: the example of
 * Node's cluster documentation, a worker that talks to its primary, the
 * listening scenarios of Node's own cluster tests, and a server without
 * any signal handling that takes 50 ms per answer.  Skipped only when node
 * (or, for its test, npm) is not installed.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "czt.h"
#include "czt_ops.h"

#define WORKERS 2
#define REQUESTS 20

TestSuite(node, .init = czt_setup, .fini = czt_ops_teardown, .timeout = 180);

/* A copy of s that lives as long as a test needs it: the helpers below
 * hand out argv strings from a ring of static buffers. */
static const char *keep(const char *s)
{
	static char ring[32][512];
	static unsigned next;
	char *b = ring[next++ % 32];

	snprintf(b, sizeof(ring[0]), "%s", s);
	return b;
}

static const char *need(const char *name)
{
	const char *path = czt_which(name);

	if (path == NULL) {
		cr_skip_test("%s is not installed", name);
	}
	return keep(path);
}

static const char *script(const char *name)
{
	char rel[128];

	snprintf(rel, sizeof(rel), "tests/servers/node/%s", name);
	return keep(czt_source(rel));
}

static const char *num(int n)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%d", n);
	return keep(buf);
}

/* --- processes --------------------------------------------------------------- */

/* Whether pid descends from `root` (by /proc's parent links). */
static bool descends(pid_t pid, pid_t root)
{
	for (int depth = 0; pid > 1 && depth < 64; depth++) {
		pid = czt_ppid(pid);
		if (pid == root) {
			return true;
		}
	}
	return false;
}

static bool is_node(pid_t pid)
{
	char link[64], exe[256];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	n = readlink(link, exe, sizeof(exe) - 1);
	if (n <= 0) {
		return false;
	}
	exe[n] = '\0';
	return strcmp(strrchr(exe, '/') + 1, "node") == 0;
}

/* node processes below the launcher `root`. */
static int node_processes(pid_t root)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL) {
		pid_t pid = (pid_t)atoi(de->d_name);

		n += pid > 0 && is_node(pid) && descends(pid, root);
	}
	closedir(d);
	return n;
}

/* --- answers ----------------------------------------------------------------- */

/* GET path: the body as JSON (asserts a 200 and valid JSON). */
static json_t *get_json(int port, const char *path)
{
	char body[1024] = "";
	int status = czt_http_get("127.0.0.1", port, path, body, sizeof(body), 10000);
	json_error_t e;
	json_t *j;

	cr_assert_eq(status, 200, "GET %s gave %d", path, status);
	j = json_loads(body, JSON_DECODE_ANY, &e);
	cr_assert_not_null(j, "GET %s: not JSON (%s): %s", path, e.text, body);
	return j;
}

static long long member(const json_t *j, const char *key)
{
	const json_t *v = json_object_get(j, key);

	cr_assert(json_is_integer(v), "'%s' is an integer", key);
	return json_integer_value(v);
}

/*
 * The answer of docs-example.js is a cluster worker's: cluster.worker.id
 * is the launcher's id for the process that answered, which listens.
 */
static int check_identity(const struct czt_cluster *c, const json_t *j, const char *sched)
{
	const char *wid = json_string_value(json_object_get(j, "workerId"));
	int id = (int)member(j, "id");
	pid_t pid = (pid_t)member(j, "pid");
	int k;

	cr_expect(json_is_true(json_object_get(j, "isWorker")), "cluster.isWorker");
	cr_expect(json_is_false(json_object_get(j, "isPrimary")), "!cluster.isPrimary");
	cr_expect_eq(member(j, "workerPid"), pid, "cluster.worker.process.pid is its pid");
	cr_expect_str_eq(json_string_value(json_object_get(j, "policy")), sched,
		"NODE_CLUSTER_SCHED_POLICY is the policy in force");
	cr_expect(wid != NULL && atoi(wid) == id, "cluster.worker.id %d is "
		"CLUSTERIZE_WORKER_ID %s", id, wid != NULL ? wid : "(unset)");
	for (k = 0; k < c->nw && c->w[k].pid != pid; k++) {
	}
	cr_expect_lt(k, c->nw, "pid %d is a listening worker", (int)pid);
	if (k < c->nw) {
		cr_expect_eq(c->w[k].id, id, "pid %d is worker %d, says %d", (int)pid,
			c->w[k].id, id);
	}
	return id;
}

/* --- the documentation's example ----------------------------------------------- */

/*
 * clusterize -w 2 -- CMD...: exactly two node processes (no nested
 * primary forking workers of its own), each answering with its own id.
 */
static void docs_example(const char *sched, const char *const cmd[], int port)
{
	const char *largs[] = { "-s", sched, NULL };
	struct czt_cluster c;
	bool seen[WORKERS + 1] = { false };

	czt_cluster_start_argv(&c, WORKERS, largs, cmd, NULL);
	cr_expect_eq(c.port, port, "%s", c.w[0].what);
	cr_expect_eq(czt_wait_line(c.proc, CZT_OUT, " started", WORKERS, 10000), WORKERS,
		"the app's worker branch ran in each worker");
	cr_expect_eq(node_processes(c.proc->pid), WORKERS, "exactly %d node processes",
		WORKERS);
	for (int i = 0; i < REQUESTS; i++) {
		json_t *j = get_json(port, "/");
		int id = check_identity(&c, j, sched);

		cr_expect(id >= 1 && id <= WORKERS, "id %d in 1..%d", id, WORKERS);
		seen[id >= 1 && id <= WORKERS ? id : 0] = true;
		json_decref(j);
	}
	if (strcmp(sched, "rr") == 0) {
		cr_expect(seen[1] && seen[2], "both workers answer in rr");
	}
	cr_expect_eq(czt_count(c.proc, CZT_OUT, "Primary"), 0, "the primary branch never ran");
	czt_stop(c.proc);
	/* Told to disconnect, a node server with no signal handling exits 0. */
	cr_expect_eq(czt_count(c.proc, CZT_ERR, ") exited with code 0"), WORKERS,
		"each worker left by its disconnect, not the stop signal");
}

Test(node, docs_example_rr)
{
	int port = czt_free_port(AF_INET);
	const char *cmd[] = { need("node"), script("docs-example.js"), num(port), NULL };

	docs_example("rr", cmd, port);
}

Test(node, docs_example_none)
{
	int port = czt_free_port(AF_INET);
	const char *cmd[] = { need("node"), script("docs-example.js"), num(port), NULL };

	docs_example("none", cmd, port);
}

/* A shell that forks node instead of exec'ing it. */
Test(node, docs_example_under_sh)
{
	int port = czt_free_port(AF_INET);
	char line[1024];

	snprintf(line, sizeof(line), "'%s' '%s' %d; exit $?", need("node"),
		script("docs-example.js"), port);
	const char *cmd[] = { "/bin/sh", "-c", line, NULL };

	docs_example("rr", cmd, port);
}

/* --- npm start ------------------------------------------------------------------ */

static const char *npm_project(const char *start)
{
	static char dir[512];
	char path[600];
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/app", czt_tmpdir());
	cr_assert_eq(mkdir(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/package.json", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "{\"name\":\"app\",\"version\":\"1.0.0\",\"private\":true,"
		"\"scripts\":{\"start\":\"%s\"}}\n", start);
	cr_assert_eq(fclose(f), 0);
	return dir;
}

/*
 * npm is node too: it must run as it does without clusterize, and the
 * server it starts is the worker.  With --restart never the launcher exits
 * once the worker's process (npm) has: npm exits when its script does.
 */
Test(node, npm_start_makes_the_server_the_worker)
{
	const char *npm = need("npm"), *node = need("node");
	int port = czt_free_port(AF_INET);
	char start[1024], body[64] = "";

	snprintf(start, sizeof(start), "%s %s %d", node, script("messages.js"), port);
	const char *cmd[] = { npm, "--prefix", npm_project(start), "start", NULL };
	const char *largs[] = { "--restart", "never", NULL };
	const char *env[] = { "NPM_CONFIG_UPDATE_NOTIFIER=false", "NPM_CONFIG_FUND=false",
		"NPM_CONFIG_AUDIT=false", NULL };
	struct czt_cluster c;
	pid_t forked;

	czt_cluster_start_argv(&c, 1, largs, cmd, env);
	cr_assert_eq(czt_forked_pids(c.proc, &forked, 1), 1);
	cr_expect_neq(c.w[0].pid, forked, "the server is npm's child's child, not npm");
	cr_expect(descends(c.w[0].pid, forked), "the server %d runs under npm %d",
		(int)c.w[0].pid, (int)forked);
	cr_assert_eq(czt_http_get("127.0.0.1", port, "/", body, sizeof(body), 10000), 200);
	cr_expect_str_eq(body, "1\n", "the server is cluster worker 1");
	cr_assert_eq(czt_http_get("127.0.0.1", port, "/disconnect", body, sizeof(body),
		10000), 200);
	czt_expect_exit(c.proc, CZT_EXITED(0), 20000);
	cr_expect_eq(czt_count(c.proc, CZT_ERR, "exited with code 0 after disconnecting itself"),
		1, "npm exited 0 when its script did");
}

/* --- messages ------------------------------------------------------------------- */

static const char *ctl(void)
{
	return czt_ctl_path();
}

static struct czt_proc *follow(bool json)
{
	const char *argv[] = { czt_launcher(), "messages", "--control", ctl(),
		json ? "--json" : NULL, NULL };
	const char *env[] = { czt_asan_options(), NULL };

	return czt_spawn(argv, env);
}

/* A line of `clusterize messages --json` with this worker and message. */
static bool has_message(const struct czt_proc *p, int worker, const char *msg)
{
	char *out = czt_read(p, CZT_OUT), *save = NULL;
	json_t *want = json_loads(msg, 0, NULL);
	bool found = false;

	cr_assert_not_null(want);
	for (char *l = strtok_r(out, "\n", &save); l != NULL && !found;
		l = strtok_r(NULL, "\n", &save)) {
		json_t *j = json_loads(l, 0, NULL);

		cr_expect_not_null(j, "each line is JSON: %s", l);
		found = j != NULL && json_integer_value(json_object_get(j, "worker")) == worker &&
			json_integer_value(json_object_get(j, "pid")) > 0 &&
			json_equal(json_object_get(j, "message"), want);
		json_decref(j);
	}
	json_decref(want);
	free(out);
	return found;
}

struct seen_arg {
	struct czt_proc *p;
	int worker;
	const char *msg;
};

static bool message_seen(void *v)
{
	struct seen_arg *a = v;

	return has_message(a->p, a->worker, a->msg);
}

static void start_messages(struct czt_cluster *c, int port)
{
	const char *cmd[] = { need("node"), script("messages.js"), num(port), NULL };
	const char *largs[] = { "-v", "--control", ctl(), NULL };

	czt_cluster_start_argv(c, WORKERS, largs, cmd, NULL);
}

/* GET /send?m=... on port: the worker that answers sends `urlmsg`. */
static void worker_sends(int port, const char *urlmsg)
{
	char path[512], body[64];

	snprintf(path, sizeof(path), "/send?m=%s", urlmsg);
	cr_assert_eq(czt_http_get("127.0.0.1", port, path, body, sizeof(body), 10000), 200);
}

struct sync_arg {
	struct czt_proc *text, *json;
	int port;
};

/* A follower is in once it shows a message sent after it started. */
static bool followers_in(void *v)
{
	struct sync_arg *a = v;

	worker_sends(a->port, "%7B%22cmd%22%3A%22sync%22%7D");
	return czt_count(a->text, CZT_OUT, "{\"cmd\":\"sync\"}") > 0 &&
		czt_count(a->json, CZT_OUT, "{\"cmd\":\"sync\"}") > 0;
}

Test(node, process_send_reaches_the_log_and_messages)
{
	int port = czt_free_port(AF_INET);
	struct czt_cluster c;

	start_messages(&c, port);
	/* The worker's own `ready`, at -v. */
	cr_expect_eq(czt_wait_re(c.proc, CZT_ERR, "^clusterize: worker [12] \\(pid [0-9]+\\) "
		"message: \\{\"cmd\":\"ready\",\"id\":[12]\\}$", WORKERS, 10000), WORKERS);
	struct sync_arg s = { follow(false), follow(true), port };

	cr_assert(czt_wait_until(followers_in, &s, 10000), "the followers get messages");
	/* Two, so that rr has both workers send one. */
	for (int i = 0; i < 2; i++) {
		worker_sends(port, "%7B%22cmd%22%3A%22hello%22%2C%22s%22%3A%22%E2%82%AC%5Cn%22%7D");
	}
	struct seen_arg a = { s.json, c.w[0].id, "{\"cmd\":\"hello\",\"s\":\"\\u20ac\\n\"}" };
	struct seen_arg b = { s.json, c.w[1].id, a.msg };

	cr_expect(czt_wait_until(message_seen, &a, 10000) &&
		czt_wait_until(message_seen, &b, 10000),
		"messages --json shows both workers' message");
	cr_expect_eq(czt_wait_re(s.text, CZT_OUT, "^worker [12] \\(pid [0-9]+\\): "
		"\\{\"cmd\":\"hello\",\"s\":\"\\\\u20AC\\\\n\"\\}$", 2, 10000), 2,
		"messages shows them, escaped for a terminal");
	cr_expect_eq(czt_count(c.proc, CZT_ERR, "message: {\"cmd\":\"hello\""), 2,
		"and the log, at -v");
	czt_stop(c.proc);
	/* The launcher's end is the followers' end. */
	czt_expect_exit(s.text, CZT_EXITED(0), 10000);
	czt_expect_exit(s.json, CZT_EXITED(0), 10000);
}

/* What worker `id`'s process.on('message') got last (GET /last until it answers). */
static json_t *last_of(int port, int id)
{
	for (int i = 0; i < REQUESTS; i++) {
		json_t *j = get_json(port, "/last");

		if (member(j, "id") == id) {
			json_t *last = json_incref(json_object_get(j, "last"));

			json_decref(j);
			return last;
		}
		json_decref(j);
	}
	cr_assert_fail("worker %d never answered", id);
	return NULL;
}

struct last_arg {
	int port, id;
	json_t *want;
};

static bool last_is(void *v)
{
	struct last_arg *a = v;
	json_t *j = last_of(a->port, a->id);
	bool eq = json_equal(j, a->want);

	json_decref(j);
	return eq;
}

/* Worker `id` gets `want` (JSON) on process.on('message'). */
static bool expect_gets(int port, int id, const char *want)
{
	struct last_arg a = { port, id, json_loads(want, JSON_DECODE_ANY, NULL) };
	bool ok;

	cr_assert_not_null(a.want);
	ok = czt_wait_until(last_is, &a, 10000);
	json_decref(a.want);
	return ok;
}

Test(node, send_reaches_process_on_message)
{
	int port = czt_free_port(AF_INET);
	struct czt_ops_run r;
	struct czt_cluster c;
	char id[16];

	start_messages(&c, port);
	int rc = czt_ops_client(&r, -1, NULL, "send", "all", "{\"cmd\": \"reload-config\"}",
		"--control", ctl(), NULL);

	cr_expect_eq(rc, 0, "send all: %s", r.err);
	cr_expect_str_eq(r.out, "delivered to 2 workers\n");
	czt_ops_run_free(&r);
	for (int i = 0; i < WORKERS; i++) {
		cr_expect(expect_gets(port, c.w[i].id, "{\"cmd\":\"reload-config\"}"),
			"worker %d got it", c.w[i].id);
	}
	snprintf(id, sizeof(id), "%d", c.w[1].id);
	rc = czt_ops_client(&r, -1, NULL, "send", id, "[1, \"two\", null]", "--control", ctl(),
		NULL);
	cr_expect_eq(rc, 0, "send %s: %s", id, r.err);
	cr_expect_str_eq(r.out, "delivered to 1 worker\n");
	czt_ops_run_free(&r);
	cr_expect(expect_gets(port, c.w[1].id, "[1,\"two\",null]"), "worker %s got it", id);
	cr_expect(expect_gets(port, c.w[0].id, "{\"cmd\":\"reload-config\"}"),
		"the other one did not");
	czt_stop(c.proc);
}

Test(node, send_errors_are_one_line)
{
	int port = czt_free_port(AF_INET);
	struct czt_ops_run r;
	struct czt_cluster c;

	start_messages(&c, port);
	int rc = czt_ops_client(&r, -1, NULL, "send", "all", "{\"cmd\": reload}", "--control",
		ctl(), NULL);

	cr_expect_eq(rc, 2, "bad JSON is a usage error");
	cr_expect_eq(czt_ops_lines(r.err), 1, "%s", r.err);
	cr_expect(strstr(r.err, "clusterize: invalid JSON for 'send' at line 1, column") == r.err,
		"%s", r.err);
	czt_ops_run_free(&r);
	rc = czt_ops_client(&r, -1, NULL, "send", "99", "{}", "--control", ctl(), NULL);
	cr_expect_eq(rc, 1, "no such worker");
	cr_expect_str_eq(r.err, "clusterize: send: no worker 99\n");
	czt_ops_run_free(&r);
	for (int i = 0; i < WORKERS; i++) {
		json_t *last = last_of(port, c.w[i].id);

		cr_expect(json_is_null(last), "worker %d got nothing", c.w[i].id);
		json_decref(last);
	}
	czt_stop(c.proc);
}

/*
 * Bad bytes on a worker's channel are logged and the channel goes on: a
 * shell (bash: dash cannot redirect fds above 9) writes junk on it before
 * it execs the node server, whose messages still arrive.
 */
Test(node, a_bad_line_from_a_worker_is_logged_and_skipped)
{
	int port = czt_free_port(AF_INET);
	char line[1024];

	snprintf(line, sizeof(line), "printf 'not json\\n{\"cmd\":\"early\"}\\n' "
		">&$NODE_CHANNEL_FD; exec '%s' '%s' %d", need("node"), script("messages.js"),
		port);
	const char *cmd[] = { "/bin/bash", "-c", line, NULL };
	const char *largs[] = { "-v", NULL };
	struct czt_cluster c;

	czt_cluster_start_argv(&c, 1, largs, cmd, NULL);
	cr_expect_eq(czt_wait_line(c.proc, CZT_ERR, "Node channel: a line that is not JSON",
		1, 10000), 1);
	cr_expect_eq(czt_wait_line(c.proc, CZT_ERR, "message: {\"cmd\":\"early\"}", 1, 10000), 1,
		"the next line is read");
	cr_expect_eq(czt_wait_line(c.proc, CZT_ERR, "message: {\"cmd\":\"ready\",\"id\":1}", 1,
		10000), 1, "and node's own");
	czt_stop(c.proc);
}

/* --- a worker's own disconnect -------------------------------------------------- */

/*
 * cluster.worker.disconnect() (and .kill()) inside a worker: an exit it
 * asked for, no crash; replaced, however soon, however often (a crash
 * would give up).
 */
Test(node, a_worker_that_disconnects_itself_is_replaced_without_a_crash)
{
	int port = czt_free_port(AF_INET);
	const char *cmd[] = { need("node"), script("messages.js"), num(port), NULL };
	const char *largs[] = { "--min-uptime", "60", "--max-restarts", "1", NULL };
	struct czt_worker w[4];
	struct czt_cluster c;
	char body[64];

	czt_cluster_start_argv(&c, 1, largs, cmd, NULL);
	for (int i = 0; i < 3; i++) {
		char want[64];

		cr_assert_eq(czt_http_get("127.0.0.1", port, i == 1 ? "/kill" : "/disconnect",
			body, sizeof(body), 10000), 200);
		snprintf(want, sizeof(want), "worker %d (pid ", i + 2);
		cr_assert_eq(czt_wait_line(c.proc, CZT_ERR, want, 3, 20000), 3,
			"worker %d replaces worker %d and listens", i + 2, i + 1);
		cr_assert_eq(czt_wait_live(c.proc, 1, w, 10000), 1);
	}
	cr_expect_eq(czt_count(c.proc, CZT_ERR, "exited with code 0 after disconnecting itself"),
		3);
	cr_expect_eq(czt_count(c.proc, CZT_ERR, "giving up"), 0);
	czt_stop(c.proc);
}

/* --- listening as Node's own cluster tests do ----------------------------------- */

/* clusterize -w N LARGS -- node scenarios.js ARGS...: its N result lines. */
static struct czt_proc *scenario(const char *sched, json_t *res[], const char *name,
	const char *arg)
{
	const char *argv[] = { czt_launcher(), "-w", num(WORKERS), "-s", sched, "--", need("node"),
		script("scenarios.js"), name, arg, NULL };
	const char *env[] = { czt_asan_options(), NULL };
	struct czt_proc *p = czt_spawn(argv, env);
	char *out, *save = NULL;
	int n = 0;

	cr_assert_eq(czt_wait_line(p, CZT_OUT, "result ", WORKERS, 20000), WORKERS,
		"%s: each worker has a result", name);
	out = czt_read(p, CZT_OUT);
	for (char *l = strtok_r(out, "\n", &save); l != NULL && n < WORKERS;
		l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, "result ", 7) == 0) {
			res[n] = json_loads(l + 7, 0, NULL);
			cr_assert_not_null(res[n], "%s", l);
			n++;
		}
	}
	free(out);
	return p;
}

static void free_results(json_t *res[])
{
	for (int i = 0; i < WORKERS; i++) {
		json_decref(res[i]);
	}
}

/* Every connection to port is answered, and by both workers in rr. */
static void expect_served(const struct czt_addr *a, const json_t *const res[], bool both)
{
	pid_t pids[REQUESTS], uniq[REQUESTS];
	int counts[REQUESTS];

	cr_expect_eq(czt_ask_many(a, REQUESTS, 2, pids, 10000), REQUESTS, "all answered (%s)",
		czt_last_bad());
	for (int i = 0; i < REQUESTS; i++) {
		cr_expect(pids[i] == member(res[0], "pid") || pids[i] == member(res[1], "pid"),
			"answered by a worker: %d", (int)pids[i]);
	}
	if (both) {
		cr_expect_eq(czt_tally(pids, REQUESTS, uniq, counts, REQUESTS), WORKERS,
			"both workers answer");
	}
}

static void listen_zero(const char *sched)
{
	json_t *res[WORKERS];
	struct czt_proc *p = scenario(sched, res, "port0", NULL);
	int port = (int)member(res[0], "port");
	struct czt_addr a;

	cr_expect_gt(port, 0);
	cr_expect_eq(member(res[1], "port"), port, "listen(0) gives every worker one port");
	czt_addr_tcp(&a, "127.0.0.1", port);
	expect_served(&a, (const json_t *const *)res, strcmp(sched, "rr") == 0);
	free_results(res);
	czt_stop(p);
}

Test(node, listen_zero_is_one_port_rr)
{
	listen_zero("rr");
}

Test(node, listen_zero_is_one_port_none)
{
	listen_zero("none");
}

/* EADDRINUSE reaches the server's 'error' handler, and is not kept: once
 * the port is free the same worker's retry works. */
static void eaddrinuse(const char *sched)
{
	json_t *res[WORKERS];
	int port, hold = czt_hold_port("127.0.0.1", &port);
	struct czt_proc *p = scenario(sched, res, "eaddrinuse", num(port));
	struct czt_addr a;

	for (int i = 0; i < WORKERS; i++) {
		cr_expect_str_eq(json_string_value(json_object_get(res[i], "error")),
			"EADDRINUSE");
		cr_expect_str_eq(json_string_value(json_object_get(res[i], "syscall")), "bind");
	}
	close(hold);
	cr_assert_eq(czt_wait_line(p, CZT_OUT, "\"tries\":", WORKERS, 20000), WORKERS,
		"both workers listen once the port is free");
	czt_addr_tcp(&a, "127.0.0.1", port);
	expect_served(&a, (const json_t *const *)res, false);
	free_results(res);
	czt_stop(p);
}

Test(node, eaddrinuse_reaches_the_error_handler_and_is_not_kept_rr)
{
	eaddrinuse("rr");
}

Test(node, eaddrinuse_reaches_the_error_handler_and_is_not_kept_none)
{
	eaddrinuse("none");
}

Test(node, listen_on_a_unix_path)
{
	char path[512];
	json_t *res[WORKERS];
	struct czt_addr a;

	snprintf(path, sizeof(path), "%s/app.sock", czt_tmpdir());
	struct czt_proc *p = scenario("rr", res, "unix", path);

	for (int i = 0; i < WORKERS; i++) {
		cr_expect_str_eq(json_string_value(json_object_get(res[i], "path")), path,
			"server.address() is the path");
	}
	czt_addr_unix(&a, path);
	expect_served(&a, (const json_t *const *)res, true);
	free_results(res);
	czt_stop(p);
	cr_expect_neq(access(path, F_OK), 0, "the socket file is gone with the launcher");
}

Test(node, dgram_sockets_are_shared)
{
	json_t *res[WORKERS];
	struct czt_proc *p = scenario("rr", res, "dgram", NULL);
	int port = (int)member(res[0], "port");
	struct czt_addr a;

	cr_expect_gt(port, 0);
	cr_expect_eq(member(res[1], "port"), port, "one UDP port for both");
	czt_addr_udp(&a, "127.0.0.1", port);
	for (int i = 0; i < 5; i++) {
		pid_t pid = czt_ask(&a, 5000);

		cr_expect(pid == member(res[0], "pid") || pid == member(res[1], "pid"),
			"datagram %d answered by a worker: %d", i, (int)pid);
	}
	free_results(res);
	czt_stop(p);
}

/* exclusive: true binds in the worker itself, as in Node: two ports. */
Test(node, exclusive_listens_are_the_workers_own)
{
	json_t *res[WORKERS];
	struct czt_proc *p = scenario("rr", res, "exclusive", NULL);
	struct czt_addr a;

	cr_expect_neq(member(res[0], "port"), member(res[1], "port"),
		"each exclusive server has a port of its own");
	for (int i = 0; i < WORKERS; i++) {
		czt_addr_tcp(&a, "127.0.0.1", (int)member(res[i], "port"));
		cr_expect_eq(czt_ask(&a, 5000), member(res[i], "pid"), "worker %d's own server",
			(int)member(res[i], "id"));
	}
	cr_expect_eq(czt_count(p, CZT_ERR, "listening on"), 0, "the primary never heard of them");
	free_results(res);
	czt_stop(p);
}

Test(node, close_and_listen_again)
{
	int port = czt_free_port(AF_INET);
	json_t *res[WORKERS];
	struct czt_proc *p = scenario("rr", res, "relisten", num(port));
	struct czt_addr a;

	cr_expect_eq(member(res[0], "port"), port);
	cr_expect_eq(member(res[1], "port"), port);
	czt_addr_tcp(&a, "127.0.0.1", port);
	expect_served(&a, (const json_t *const *)res, true);
	free_results(res);
	czt_stop(p);
}

Test(node, many_servers_in_one_worker)
{
	json_t *res[WORKERS];
	struct czt_proc *p = scenario("rr", res, "many", "3");
	json_t *ports = json_object_get(res[0], "ports");
	struct czt_addr a;

	cr_assert_eq(json_array_size(ports), 3);
	cr_expect(json_equal(ports, json_object_get(res[1], "ports")),
		"the k-th listen(0) of every worker gets the same port");
	for (size_t i = 0; i < 3; i++) {
		czt_addr_tcp(&a, "127.0.0.1", (int)json_integer_value(json_array_get(ports, i)));
		expect_served(&a, (const json_t *const *)res, true);
	}
	free_results(res);
	czt_stop(p);
}

/* ipv6Only: both workers on [::]:port, and nothing on IPv4's port. */
Test(node, ipv6only_leaves_ipv4_free)
{
	json_t *res[WORKERS];
	struct czt_proc *p = scenario("rr", res, "ipv6only", NULL);
	int port = (int)member(res[0], "port");
	struct czt_addr a;

	cr_expect_eq(member(res[1], "port"), port);
	cr_expect_str_eq(json_string_value(json_object_get(res[0], "address")), "::");
	czt_addr_tcp(&a, "::1", port);
	expect_served(&a, (const json_t *const *)res, true);
	czt_addr_tcp(&a, "127.0.0.1", port);
	cr_expect_eq(czt_ask(&a, 5000), -ECONNREFUSED, "IPv4 is not served on port %d", port);
	free_results(res);
	czt_stop(p);
}

/* listen({fd: N}) means the primary's fd N: none here but what systemd gives. */
Test(node, listen_on_an_fd_the_primary_does_not_have)
{
	json_t *res[WORKERS];
	struct czt_proc *p = scenario("rr", res, "fd", "99");

	for (int i = 0; i < WORKERS; i++) {
		cr_expect_str_eq(json_string_value(json_object_get(res[i], "error")), "EBADF");
	}
	free_results(res);
	czt_stop(p);
}

/* A TLS server's ticket keys: the first worker's, echoed to every one. */
Test(node, tls_servers_share_their_ticket_keys)
{
	json_t *res[WORKERS];
	struct czt_proc *p = scenario("rr", res, "tls", NULL);
	const char *k0 = json_string_value(json_object_get(res[0], "ticketKeys"));
	const char *k1 = json_string_value(json_object_get(res[1], "ticketKeys"));

	cr_assert(k0 != NULL && k1 != NULL);
	cr_expect_eq(strlen(k0), 96, "48 bytes of keys: %s", k0);
	cr_expect_str_eq(k0, k1, "both workers got the first one's keys");
	free_results(res);
	czt_stop(p);
}

/* --- no request lost: an unmodified server, 50 ms an answer ------------------- */

#define LOAD_CONCURRENCY 8

static void start_slow(struct czt_cluster *c, const char *sched, struct czt_addr *a)
{
	int port = czt_free_port(AF_INET);
	const char *cmd[] = { need("node"), script("slow.js"), num(port), NULL };
	const char *largs[] = { "-s", sched, NULL };

	czt_cluster_start_argv(c, WORKERS, largs, cmd, NULL);
	czt_addr_tcp(a, "127.0.0.1", port);
}

static void expect_no_failure(const struct czt_load_result *r, int at_least)
{
	cr_expect_eq(r->failed, 0, "%d of %d connections failed; the first (#%d): %s",
		r->failed, r->asked, r->first_failed, r->first_bad);
	cr_expect_geq(r->answered, at_least, "answered: %d", r->answered);
}

/*
 * Three rolling restarts under load: each old worker is told to
 * disconnect, finishes what it has and exits 0; not one request fails,
 * although the server has no signal handling at all.
 */
static void three_reloads(const char *sched)
{
	struct czt_load_result r;
	struct czt_cluster c;
	struct czt_addr a;

	start_slow(&c, sched, &a);
	struct czt_load *l = czt_load_start(&a, LOAD_CONCURRENCY, 1 << 20, 120000);

	cr_assert(czt_load_wait_more(l, 20, 10000), "the load is answered");
	for (int i = 1; i <= 3; i++) {
		cr_assert_eq(czt_signal(c.proc, SIGHUP), 0);
		cr_assert_eq(czt_wait_line(c.proc, CZT_ERR, "reload done", i, 60000), i,
			"reload %d is done", i);
		cr_assert(czt_load_wait_more(l, 20, 10000), "served after reload %d", i);
	}
	/* The last old workers have left too. */
	cr_assert_eq(czt_wait_line(c.proc, CZT_ERR, ") exited with code 0", 3 * WORKERS, 30000),
		3 * WORKERS, "every replaced worker exited 0");
	czt_load_stop(l, &r, 10000);
	expect_no_failure(&r, 100);
	cr_expect_eq(czt_count(c.proc, CZT_ERR, "killed by signal"), 0,
		"no worker needed the stop signal");
	czt_stop(c.proc);
}

Test(node, three_reloads_under_load_lose_nothing_rr)
{
	three_reloads("rr");
}

Test(node, three_reloads_under_load_lose_nothing_none)
{
	three_reloads("none");
}

/*
 * A stop under load: every request in flight when it comes is answered
 * (the clients start no new ones once it is asked for).
 */
Test(node, stop_under_load_loses_nothing)
{
	struct czt_load_result r;
	struct czt_cluster c;
	struct czt_addr a;
	pid_t pids[WORKERS] = { 0 };

	start_slow(&c, "rr", &a);
	for (int i = 0; i < WORKERS; i++) {
		pids[i] = c.w[i].pid;
	}
	struct czt_load *l = czt_load_start(&a, LOAD_CONCURRENCY, 1 << 20, 60000);

	cr_assert(czt_load_wait_more(l, 50, 10000), "the load is answered");
	czt_load_pause(l);
	cr_assert_eq(czt_signal(c.proc, SIGTERM), 0);
	czt_load_stop(l, &r, 20000);
	czt_expect_exit(c.proc, CZT_EXITED(0), 30000);
	expect_no_failure(&r, 50);
	cr_expect_eq(czt_count(c.proc, CZT_ERR, ") exited with code 0"), WORKERS,
		"both workers left by their disconnect");
	cr_expect(czt_wait_gone(pids, WORKERS, 5000));
}

/* --- listen({fd}) with a socket the service manager gave the launcher ------- */

/* In the child: the socket at fd 3, and LISTEN_* naming our pid. */
static int activate(void *arg)
{
	int fd = *(int *)arg;
	char pid[32];

	if ((fd != 3 && dup2(fd, 3) < 0) || fcntl(3, F_SETFD, 0) < 0) {
		return -1;
	}
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	return setenv("LISTEN_PID", pid, 1) | setenv("LISTEN_FDS", "1", 1);
}

/* listen({fd: 3}) means the primary's fd 3: the socket systemd passed. */
Test(node, listen_on_the_fd_of_an_adopted_socket)
{
	int port, lfd = czt_hold_port("127.0.0.1", &port);
	const char *argv[] = { czt_launcher(), "-w", num(WORKERS), "--", need("node"),
		script("scenarios.js"), "fd", "3", NULL };
	const char *env[] = { czt_asan_options(), NULL };
	struct czt_addr a;
	json_t *res[WORKERS];
	char *out, *save = NULL;
	int n = 0;

	cr_assert_geq(lfd, 0);
	struct czt_proc *p = czt_ops_spawn_hook(argv, env, activate, &lfd);

	close(lfd);
	cr_assert_eq(czt_wait_line(p, CZT_OUT, "result ", WORKERS, 20000), WORKERS);
	out = czt_read(p, CZT_OUT);
	for (char *l = strtok_r(out, "\n", &save); l != NULL && n < WORKERS;
		l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, "result ", 7) == 0) {
			res[n] = json_loads(l + 7, 0, NULL);
			cr_assert_not_null(res[n], "%s", l);
			cr_expect_eq(member(res[n], "port"), port, "worker %lld listens on "
				"the adopted socket: %s", member(res[n], "id"), l);
			n++;
		}
	}
	free(out);
	czt_addr_tcp(&a, "127.0.0.1", port);
	expect_served(&a, (const json_t *const *)res, true);
	free_results(res);
	czt_stop(p);
}
