/*
 * Real runtimes, unmodified: python3 -m http.server and a plain node http
 * server (also started through a shell wrapper), nginx and lighttpd serve
 * under both policies.  Skipped only when the runtime is not installed.
 */
#include <criterion/criterion.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "czt.h"

#define REQUESTS 10

TestSuite(runtimes, .init = czt_setup, .fini = czt_teardown, .timeout = 90);

/* name's path (also in /usr/sbin, where nginx and lighttpd live), or skip. */
static const char *need(const char *name)
{
	static char sbin[256];
	const char *path = czt_which(name);

	snprintf(sbin, sizeof(sbin), "/usr/sbin/%s", name);
	if (path == NULL && access(sbin, X_OK) == 0) {
		path = sbin;
	}
	if (path == NULL) {
		cr_skip_test("%s is not installed (scripts/setup --with-servers installs it)", name);
	}
	return strdup(path);
}

static bool two_serving(void *arg)
{
	char *out = czt_read(arg, CZT_OUT);
	int n = 0;

	for (const char *at = out; (at = strstr(at, "Serving HTTP on")) != NULL; at++) {
		n++;
	}
	free(out);
	return n >= 2;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "create %s", path);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0, "write %s", path);
}

static void check_python(const char *sched)
{
	struct czt_cluster c;
	const char *python = need("python3");
	const char *largs[] = { "-s", sched, NULL };
	const char *cmd[] = { python, "-m", "http.server", "0", "--bind", "127.0.0.1",
		"--directory", czt_tmpdir(), NULL };
	const char *env[] = { "PYTHONUNBUFFERED=1", NULL };

	czt_cluster_start_argv(&c, 2, largs, cmd, env);
	cr_assert_gt(c.port, 0, "python listens on a TCP port: %s", c.w[0].what);
	cr_expect_eq(c.w[1].port, c.port, "both python workers share the port");
	for (int i = 0; i < REQUESTS; i++) {
		int status = czt_http_get("127.0.0.1", c.port, "/", NULL, 0, 10000);

		cr_expect_eq(status, 200, "python/%s: GET %d gave %d", sched, i, status);
	}
	/* Python prints this after listen(), so it may trail the launcher's
	 * "listening" line; and the two workers share stdout, where python's
	 * separate write of the newline can put both on one line. */
	cr_expect(czt_wait_until(two_serving, c.proc, 10000),
		"each python worker believes it serves");
	czt_stop(c.proc);
}

Test(runtimes, python_http_server_rr)
{
	check_python("rr");
}

Test(runtimes, python_http_server_none)
{
	check_python("none");
}

static void check_node(const char *sched, bool wrapped)
{
	struct czt_cluster c;
	const char *node = need("node");
	const char *js = czt_source("tests/servers/http.js");
	const char *largs[] = { "-s", sched, NULL };
	char script[1024];
	pid_t pids[REQUESTS], uniq[REQUESTS];
	int counts[REQUESTS];

	snprintf(script, sizeof(script), "exec '%s' '%s' 0", node, js);
	const char *direct[] = { node, js, "0", NULL };
	const char *shell[] = { "/bin/sh", "-c", script, NULL };

	czt_cluster_start_argv(&c, 2, largs, wrapped ? shell : direct, NULL);
	cr_assert_gt(c.port, 0, "node listens on a TCP port: %s", c.w[0].what);
	for (int i = 0; i < REQUESTS; i++) {
		char body[64] = "";
		int status = czt_http_get("127.0.0.1", c.port, "/", body, sizeof(body), 10000);

		pids[i] = atoi(body);
		cr_expect_eq(status, 200, "node/%s: GET %d gave %d", sched, i, status);
		cr_expect(czt_cluster_owns(&c, pids[i]), "node/%s: answered by worker pid %d", sched,
			(int)pids[i]);
	}
	if (strcmp(sched, "rr") == 0) {
		cr_expect_eq(czt_tally(pids, REQUESTS, uniq, counts, REQUESTS), 2,
			"node/rr: both workers answer");
	}
	czt_stop(c.proc);
}

Test(runtimes, node_http_server_rr)
{
	check_node("rr", false);
}

Test(runtimes, node_http_server_none)
{
	check_node("none", false);
}

Test(runtimes, node_through_sh_wrapper_rr)
{
	check_node("rr", true);
}

Test(runtimes, node_through_sh_wrapper_none)
{
	check_node("none", true);
}

/*
 * nginx: a master that forks its own workers after listen (a prefork
 * server inside each clusterize worker), accept4 with EPOLLEXCLUSIVE and
 * FIONBIO.  Installed by scripts/setup --with-servers (which scripts/test
 * runs); skipped, and listed as such, when missing.
 */
static void check_nginx(const char *sched)
{
	struct czt_cluster c;
	const char *nginx = need("nginx");
	const char *dir = czt_tmpdir();
	const char *largs[] = { "-s", sched, NULL };
	int port = czt_free_port(AF_INET);
	char conf[512], text[1024];

	cr_assert_gt(port, 0);
	snprintf(conf, sizeof(conf), "%s/nginx.conf", dir);
	snprintf(text, sizeof(text),
		"daemon off; master_process on; worker_processes 2;\n"
		"pid %s/nginx.pid; error_log stderr;\n"
		"events { worker_connections 64; }\n"
		"http { access_log off; client_body_temp_path %s;\n"
		"  server { listen 127.0.0.1:%d; location / { return 200 \"$pid\\n\"; } } }\n",
		dir, dir, port);
	write_file(conf, text);
	const char *cmd[] = { nginx, "-p", dir, "-c", conf, NULL };

	czt_cluster_start_argv(&c, 2, largs, cmd, NULL);
	cr_assert_eq(c.port, port, "nginx listens on its configured port: %s", c.w[0].what);
	for (int i = 0; i < REQUESTS; i++) {
		int status = czt_http_get("127.0.0.1", port, "/", NULL, 0, 10000);

		cr_expect_eq(status, 200, "nginx/%s: GET %d gave %d", sched, i, status);
	}
	cr_expect_eq(czt_count(c.proc, CZT_ERR, "[emerg]"), 0, "nginx starts cleanly");
	czt_stop(c.proc);
}

Test(runtimes, nginx_rr)
{
	check_nginx("rr");
}

Test(runtimes, nginx_none)
{
	check_nginx("none");
}

/* lighttpd: accept4 with SOCK_CLOEXEC|SOCK_NONBLOCK, its own fdevent loop.
 * Installed by scripts/setup --with-servers, as nginx. */
static void check_lighttpd(const char *sched)
{
	struct czt_cluster c;
	const char *lighttpd = need("lighttpd");
	const char *dir = czt_tmpdir();
	const char *largs[] = { "-s", sched, NULL };
	int port = czt_free_port(AF_INET);
	char conf[512], page[512], text[1024];

	cr_assert_gt(port, 0);
	snprintf(page, sizeof(page), "%s/index.html", dir);
	write_file(page, "hello\n");
	snprintf(conf, sizeof(conf), "%s/lighttpd.conf", dir);
	snprintf(text, sizeof(text),
		"server.document-root = \"%s\"\nserver.bind = \"127.0.0.1\"\n"
		"server.port = %d\nserver.errorlog = \"%s/error.log\"\n", dir, port, dir);
	write_file(conf, text);
	const char *cmd[] = { lighttpd, "-D", "-f", conf, NULL };

	czt_cluster_start_argv(&c, 2, largs, cmd, NULL);
	cr_assert_eq(c.port, port, "lighttpd listens on its configured port: %s", c.w[0].what);
	for (int i = 0; i < REQUESTS; i++) {
		char body[16] = "";
		int status = czt_http_get("127.0.0.1", port, "/index.html", body, sizeof(body),
			10000);

		cr_expect_eq(status, 200, "lighttpd/%s: GET %d gave %d", sched, i, status);
		cr_expect_str_eq(body, "hello\n", "lighttpd/%s: GET %d body", sched, i);
	}
	czt_stop(c.proc);
}

Test(runtimes, lighttpd_rr)
{
	check_lighttpd("rr");
}

Test(runtimes, lighttpd_none)
{
	check_lighttpd("none");
}

/*
 * With --node-ipc off (for apps that want their own primary to run), a
 * node app that uses the cluster module itself: its primary is the
 * clusterize worker, and its own workers (forked with NODE_UNIQUE_ID and
 * Node's IPC channel) must stay workers -- the shim removes NODE_UNIQUE_ID
 * only where there is no such channel -- and serve.  The policy variable is
 * read by both clusterize and Node's cluster.  `by_env`: off through
 * CLUSTERIZE_NODE_IPC=off instead of the flag.
 */
static void check_node_cluster(const char *policy, const char *sched_flag, bool by_env)
{
	struct czt_cluster c;
	const char *node = need("node");
	const char *js = czt_source("tests/servers/cluster.js");
	int port = czt_free_port(AF_INET);
	char portarg[16];
	pid_t pids[REQUESTS], uniq[REQUESTS];
	int counts[REQUESTS];

	snprintf(portarg, sizeof(portarg), "%d", port);
	const char *cmd[] = { node, js, portarg, NULL };
	const char *env[] = { policy, by_env ? "CLUSTERIZE_NODE_IPC=off" : NULL, NULL };
	const char *largs[] = { "--node-ipc", "off", "-s", sched_flag, NULL };
	const char *const *la = largs;

	if (sched_flag == NULL) {
		largs[2] = NULL;
	}
	if (by_env) {
		la += 2;
	}
	czt_cluster_start_argv(&c, 1, la, cmd, env);
	cr_assert_eq(czt_wait_line(c.proc, CZT_OUT, "node worker ", 2, 20000), 2,
		"both of the app's own workers listen");
	for (int i = 0; i < REQUESTS; i++) {
		char body[64] = "";
		int status = czt_http_get("127.0.0.1", port, "/", body, sizeof(body), 10000);

		cr_expect_eq(status, 200, "GET %d gave %d", i, status);
		pids[i] = atoi(body);
		cr_expect(pids[i] != c.w[0].pid && pids[i] > 0,
			"answered by one of the app's workers, not its primary (%d)", (int)pids[i]);
	}
	cr_expect_eq(czt_tally(pids, REQUESTS, uniq, counts, REQUESTS), 2,
		"both of the app's workers answer");
	cr_expect_eq(czt_count(c.proc, CZT_OUT, "recursion"), 0,
		"no worker of the app took itself for a primary");
	czt_stop(c.proc);
}

Test(runtimes, node_app_with_its_own_cluster_rr)
{
	check_node_cluster("NODE_CLUSTER_SCHED_POLICY=rr", NULL, false);
}

/*
 * Node's none: its primary binds and hands the socket to its workers, who
 * listen; the shim installs the real socket as it is sent.
 */
Test(runtimes, node_app_with_its_own_cluster_none)
{
	check_node_cluster("NODE_CLUSTER_SCHED_POLICY=none", NULL, true);
}

/* Node's none under clusterize's rr: the socket Node's primary sends is
 * the primary's own, not an rr channel. */
Test(runtimes, node_app_with_its_own_cluster_none_under_rr)
{
	check_node_cluster("NODE_CLUSTER_SCHED_POLICY=none", "rr", false);
}
