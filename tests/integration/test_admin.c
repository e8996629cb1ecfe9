/*
 * The control socket and its subcommands: `status` names every worker,
 * `status --json` is valid JSON whose counters move, the socket is private
 * (0600, and other users are refused even when the mode would let them in),
 * the client finds the only launcher by itself, `scale` and `stop` act, and
 * a wrong --control fails with one line.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "czt.h"
#include "czt_ops.h"

#define NOBODY 65534

TestSuite(admin, .init = czt_setup, .fini = czt_ops_teardown, .timeout = 120);

static const char *sock_path(void)
{
	static char path[300];

	snprintf(path, sizeof(path), "%s/c.sock", czt_tmpdir());
	return path;
}

/* n cz-server workers with --control <tmp>/c.sock, all listening. */
static void start_with_control(struct czt_cluster *c, int n)
{
	const char *largs[] = { "-s", "rr", "--control", sock_path(), NULL };
	const char *cmd[] = { czt_server(), "--style", "epoll-lt", NULL };

	czt_cluster_start_argv(c, n, largs, cmd, NULL);
	char line[400];

	snprintf(line, sizeof(line), "clusterize: control socket %s", sock_path());
	cr_assert_eq(czt_count(c->proc, CZT_ERR, line), 1, "the log names the socket: '%s'", line);
}

/* `clusterize status [--json] --control <sock>`, which must succeed. */
static void status_ok(struct czt_ops_run *r, bool json)
{
	int rc = json ? czt_ops_client(r, -1, NULL, "status", "--json", "--control", sock_path(),
			NULL) :
		czt_ops_client(r, -1, NULL, "status", "--control", sock_path(), NULL);

	cr_assert_eq(rc, 0, "status%s exits 0 (got %d); stderr: %s", json ? " --json" : "", rc,
		r->err);
}

struct row {
	unsigned id;
	int pid;
	char state[32];
	unsigned long long conns;
	unsigned active;
	char addrs[256];
};

/* Parses the table under the header; returns the rows read. */
static int parse_table(const char *text, struct row *rows, int max)
{
	const char *line = strchr(text, '\n');
	int n = 0;

	cr_assert_not_null(line, "status has a header line: %s", text);
	line = strchr(line + 1, '\n');	/* the column titles */
	cr_assert_not_null(line, "status has column titles: %s", text);
	for (line++; *line != '\0' && n < max; line = strchr(line, '\n') + 1) {
		char up[32];
		unsigned restarts;

		cr_assert(sscanf(line, "%u %d %31s %31s %u %llu %u %255[^\n]", &rows[n].id,
			&rows[n].pid, rows[n].state, up, &restarts, &rows[n].conns,
			&rows[n].active, rows[n].addrs) == 8, "a table row: '%.*s'",
			(int)strcspn(line, "\n"), line);
		n++;
		if (strchr(line, '\n') == NULL) {
			break;
		}
	}
	return n;
}

Test(admin, status_table_names_every_worker_and_address)
{
	struct czt_cluster c;
	struct czt_ops_run r;
	struct row rows[8];
	pid_t forked[8];
	char header[256], addr[64];

	start_with_control(&c, 3);
	int nf = czt_forked_pids(c.proc, forked, 8);

	cr_assert_eq(nf, 3, "3 forked lines, got %d", nf);
	status_ok(&r, false);
	snprintf(header, sizeof(header), "clusterize %d: %s, rr, balance rr, running, 3 workers wanted\n",
		(int)c.proc->pid, czt_server());
	cr_expect(strncmp(r.out, header, strlen(header)) == 0, "header '%s' in:\n%s", header,
		r.out);
	int n = parse_table(r.out, rows, 8);

	cr_assert_eq(n, 3, "3 rows in:\n%s", r.out);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", c.port);
	for (int i = 0; i < nf; i++) {
		int k = 0;

		while (k < n && rows[k].pid != forked[i]) {
			k++;
		}
		cr_assert_lt(k, n, "forked pid %d has a row in:\n%s", (int)forked[i], r.out);
		int w = czt_cluster_worker_of(&c, forked[i]);

		cr_assert_geq(w, 0);
		cr_expect_eq(rows[k].id, (unsigned)c.w[w].id, "pid %d: id %u, the log says %d",
			(int)forked[i], rows[k].id, c.w[w].id);
		cr_expect_str_eq(rows[k].state, "listening");
		cr_expect_str_eq(rows[k].addrs, addr, "pid %d listens on %s", (int)forked[i], addr);
	}
	czt_ops_run_free(&r);
	czt_stop(c.proc);
}

/* Member `key` of `obj` if it has jansson type t, else NULL. */
static json_t *typed(const json_t *obj, const char *key, json_type t)
{
	json_t *v = json_object_get(obj, key);

	return v != NULL && json_typeof(v) == t ? v : NULL;
}

/* Sum of workers[].conns, and each worker's in per[] (by position). */
static void check_json(const char *text, const struct czt_cluster *c, int wanted,
	unsigned long long *per)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	char addr[64];

	cr_assert_not_null(j, "status --json is valid JSON (%s at %d):\n%s", e.text, e.position,
		text);
	json_t *pid = typed(j, "pid", JSON_INTEGER);
	json_t *ws = typed(j, "workers", JSON_ARRAY);
	json_t *want = typed(j, "wanted", JSON_INTEGER);

	cr_assert(pid != NULL && ws != NULL && want != NULL, "pid, wanted, workers:\n%s", text);
	cr_expect_eq((int)json_integer_value(pid), (int)c->proc->pid, "pid is the launcher's");
	cr_expect_not_null(typed(j, "command", JSON_STRING), "command");
	json_t *sched = typed(j, "sched", JSON_STRING);
	json_t *state = typed(j, "state", JSON_STRING);

	cr_expect(sched != NULL && strcmp(json_string_value(sched), "rr") == 0, "sched rr:\n%s",
		text);
	cr_expect(state != NULL && strcmp(json_string_value(state), "running") == 0,
		"running:\n%s", text);
	cr_expect_eq((int)json_integer_value(want), wanted, "wanted %d:\n%s", wanted, text);
	cr_assert_eq((int)json_array_size(ws), wanted, "%d workers in:\n%s", wanted, text);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", c->port);
	for (int i = 0; i < wanted; i++) {
		json_t *w = json_array_get(ws, (size_t)i);
		json_t *id = typed(w, "id", JSON_INTEGER);
		json_t *wp = typed(w, "pid", JSON_INTEGER);
		json_t *conns = typed(w, "conns", JSON_INTEGER);
		json_t *as = typed(w, "addresses", JSON_ARRAY);

		cr_assert(id != NULL && wp != NULL && conns != NULL && as != NULL,
			"worker %d has id, pid, conns, addresses:\n%s", i, text);
		cr_expect_not_null(typed(w, "state", JSON_STRING));
		cr_expect(json_is_number(json_object_get(w, "uptime")), "uptime is a number");
		cr_expect_not_null(typed(w, "restarts", JSON_INTEGER));
		int k = czt_cluster_worker_of(c, (pid_t)json_integer_value(wp));

		cr_expect(k >= 0 && c->w[k].id == (int)json_integer_value(id), "worker %d pid %d "
			"id %d is in the log", i, (int)json_integer_value(wp),
			(int)json_integer_value(id));
		cr_expect(json_array_size(as) == 1 && json_is_string(json_array_get(as, 0)) &&
			strcmp(json_string_value(json_array_get(as, 0)), addr) == 0,
			"worker %d: addresses [\"%s\"]:\n%s", i, addr, text);
		per[i] = (unsigned long long)json_integer_value(conns);
	}
	json_decref(j);
}

Test(admin, status_json_parses_and_counts_connections)
{
	struct czt_cluster c;
	struct czt_ops_run r;
	struct czt_addr a;
	unsigned long long before[3], after[3];
	pid_t pids[30];

	start_with_control(&c, 3);
	status_ok(&r, true);
	check_json(r.out, &c, 3, before);
	czt_ops_run_free(&r);
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	cr_assert_eq(czt_ask_many(&a, 30, 3, pids, 20000), 30, "30 connections answered");
	status_ok(&r, true);
	check_json(r.out, &c, 3, after);
	unsigned long long sum = 0;

	for (int i = 0; i < 3; i++) {
		cr_expect_gt(after[i], before[i], "worker %d's conns grew (%llu -> %llu) in rr", i,
			before[i], after[i]);
		sum += after[i] - before[i];
	}
	cr_expect_eq(sum, 30, "the conns went up by the 30 connections made, got %llu:\n%s",
		sum, r.out);
	czt_ops_run_free(&r);
	czt_stop(c.proc);
}

/* One "clusterize:" line on stderr, nothing on stdout. */
static void expect_one_error_line(const struct czt_ops_run *r, const char *what)
{
	cr_expect_eq(czt_ops_lines(r->err), 1, "%s: one line on stderr, got:\n%s", what, r->err);
	cr_expect(strncmp(r->err, "clusterize: ", 12) == 0, "%s: 'clusterize: ...', got: %s",
		what, r->err);
	cr_expect_str_empty(r->out, "%s: nothing on stdout", what);
}

Test(admin, socket_is_private_and_other_users_are_refused)
{
	struct czt_cluster c;
	struct czt_ops_run r;
	struct stat st;

	start_with_control(&c, 1);
	cr_assert_eq(lstat(sock_path(), &st), 0, "stat %s: %s", sock_path(), strerror(errno));
	cr_expect(S_ISSOCK(st.st_mode), "%s is a socket", sock_path());
	cr_expect_eq(st.st_mode & 07777, 0600, "mode 0600, got %04o", st.st_mode & 07777);
	cr_expect_eq(st.st_uid, geteuid(), "owned by the launcher's user");
	if (geteuid() != 0) {
		czt_stop(c.proc);
		cr_skip_test("needs root to run a client as another user");
	}
	int rc = czt_ops_client(&r, NOBODY, NULL, "status", "--control", sock_path(), NULL);

	cr_expect_eq(rc, 1, "nobody's status exits 1, got %d", rc);
	expect_one_error_line(&r, "nobody through mode 0600");
	czt_ops_run_free(&r);
	/* With the file opened up, the launcher itself still says no (SO_PEERCRED). */
	cr_assert_eq(chmod(sock_path(), 0666), 0);
	rc = czt_ops_client(&r, NOBODY, NULL, "status", "--control", sock_path(), NULL);
	cr_expect_eq(rc, 1, "nobody's status through mode 0666 exits 1, got %d", rc);
	expect_one_error_line(&r, "nobody through mode 0666");
	cr_expect_eq(czt_wait_line(c.proc, CZT_ERR, "control socket: refused pid", 1, 5000), 1,
		"the launcher logs the refusal");
	czt_ops_run_free(&r);
	status_ok(&r, false);
	czt_ops_run_free(&r);
	czt_stop(c.proc);
}

static const char *xdg_env(void)
{
	static char env[300];
	char dir[280];

	snprintf(dir, sizeof(dir), "%s/xdg", czt_tmpdir());
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		cr_assert_fail("mkdir %s: %s", dir, strerror(errno));
	}
	snprintf(env, sizeof(env), "XDG_RUNTIME_DIR=%s", dir);
	return env;
}

/* A launcher with the default control socket under the private XDG dir. */
static struct czt_proc *start_default(struct czt_cluster *c, int n, char *path, size_t len)
{
	const char *env[] = { xdg_env(), NULL };
	const char *largs[] = { "-s", "rr", NULL };
	const char *cmd[] = { czt_server(), NULL };
	char want[300];

	czt_cluster_start_argv(c, n, largs, cmd, env);
	snprintf(path, len, "%s/clusterize/%d.sock", xdg_env() + strlen("XDG_RUNTIME_DIR="),
		(int)c->proc->pid);
	snprintf(want, sizeof(want), "clusterize: control socket %s", path);
	cr_assert_eq(czt_count(c->proc, CZT_ERR, want), 1, "the log says '%s'", want);
	return c->proc;
}

Test(admin, client_finds_the_only_launcher_then_scale_and_stop)
{
	const char *env[] = { xdg_env(), NULL };
	struct czt_cluster c;
	struct czt_ops_run r;
	struct czt_worker w[CZT_MAX_WORKERS];
	unsigned long long conns[3];
	char path[300], header[64];

	start_default(&c, 2, path, sizeof(path));
	int rc = czt_ops_client(&r, -1, env, "status", NULL);

	cr_assert_eq(rc, 0, "status without --control finds the launcher; stderr: %s", r.err);
	snprintf(header, sizeof(header), "clusterize %d: ", (int)c.proc->pid);
	cr_expect(strncmp(r.out, header, strlen(header)) == 0, "it is this launcher's:\n%s", r.out);
	czt_ops_run_free(&r);

	rc = czt_ops_client(&r, -1, env, "scale", "3", NULL);
	cr_assert_eq(rc, 0, "scale 3 exits 0; stderr: %s", r.err);
	czt_ops_run_free(&r);
	cr_assert_eq(czt_wait_listening(c.proc, 3, w, 20000), 3, "a third worker listens");
	c.nw = czt_listening(c.proc, c.w, CZT_MAX_WORKERS);
	rc = czt_ops_client(&r, -1, env, "status", "--json", NULL);
	cr_assert_eq(rc, 0, "status --json; stderr: %s", r.err);
	check_json(r.out, &c, 3, conns);
	czt_ops_run_free(&r);

	pid_t pids[3] = { c.w[0].pid, c.w[1].pid, c.w[2].pid };

	rc = czt_ops_client(&r, -1, env, "stop", NULL);
	cr_expect_eq(rc, 0, "stop exits 0; stderr: %s", r.err);
	czt_ops_run_free(&r);
	czt_expect_exit(c.proc, CZT_EXITED(0), 20000);
	cr_expect(czt_wait_gone(pids, 3, 5000), "every worker is gone");
	cr_expect_neq(access(path, F_OK), 0, "%s is removed at exit", path);
}

Test(admin, client_refuses_to_choose_between_two_launchers)
{
	const char *env[] = { xdg_env(), NULL };
	struct czt_cluster c1, c2;
	struct czt_ops_run r;
	char p1[300], p2[300];

	start_default(&c1, 1, p1, sizeof(p1));
	start_default(&c2, 1, p2, sizeof(p2));
	int rc = czt_ops_client(&r, -1, env, "status", NULL);

	cr_expect_eq(rc, 1, "status with two launchers exits 1, got %d", rc);
	expect_one_error_line(&r, "two launchers");
	cr_expect(strstr(r.err, p1) != NULL && strstr(r.err, p2) != NULL,
		"the error names both sockets: %s", r.err);
	czt_ops_run_free(&r);
	czt_stop(c1.proc);
	czt_stop(c2.proc);
}

Test(admin, nonexistent_control_path_fails_with_one_line)
{
	struct czt_ops_run r;
	char path[300];

	snprintf(path, sizeof(path), "%s/nothing-here.sock", czt_tmpdir());
	int rc = czt_ops_client(&r, -1, NULL, "status", "--control", path, NULL);

	cr_expect_eq(rc, 1, "exit 1, got %d", rc);
	expect_one_error_line(&r, "missing socket");
	cr_expect(strstr(r.err, path) != NULL, "the line names the path: %s", r.err);
	czt_ops_run_free(&r);
	rc = czt_ops_client(&r, -1, NULL, "stop", "--control", path, NULL);
	cr_expect_eq(rc, 1, "stop: exit 1, got %d", rc);
	expect_one_error_line(&r, "missing socket, stop");
	czt_ops_run_free(&r);
}
