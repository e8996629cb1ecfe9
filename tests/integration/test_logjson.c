/*
 * --log-format json: every line the launcher writes is one JSON object with
 * time, level, event and the event's own fields; with --prefix-output each
 * line a worker prints becomes an "output" object.  The events are read
 * back through the JSON, not the text.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "czt.h"
#include "czt_ops.h"

TestSuite(logjson, .init = czt_setup, .fini = czt_ops_teardown, .timeout = 120);

#define MAX_LINES 512

struct lines {
	int n;
	json_t *j[MAX_LINES];
	char *text;
};

/* Parses every line of the stream; each must be exactly one JSON object. */
static void parse_all(const struct czt_proc *p, enum czt_stream s, struct lines *l)
{
	char *save = NULL;

	l->n = 0;
	l->text = czt_read(p, s);
	char *copy = strdup(l->text);

	for (char *line = strtok_r(copy, "\n", &save); line != NULL;
		line = strtok_r(NULL, "\n", &save)) {
		json_error_t jerr;
		json_t *j = json_loads(line, 0, &jerr);

		cr_assert_not_null(j, "a line that is not JSON (%s): %s", jerr.text, line);
		cr_assert(json_is_object(j), "not an object: %s", line);
		cr_assert_lt(l->n, MAX_LINES);
		l->j[l->n++] = j;
	}
	free(copy);
}

static void free_all(struct lines *l)
{
	for (int i = 0; i < l->n; i++) {
		json_decref(l->j[i]);
	}
	free(l->text);
	l->n = 0;
}

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* An integer member, or -1. */
static double num(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (double)json_integer_value(v) : -1;
}

/* The launcher's own lines: time, level, event and msg, always. */
static void check_envelope(const json_t *o)
{
	static regex_t re;
	static bool compiled;
	const char *t = str(o, "time"), *level = str(o, "level");

	if (!compiled) {
		cr_assert_eq(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
			"[0-9]{2}\\.[0-9]{3}Z$", REG_EXTENDED | REG_NOSUB), 0);
		compiled = true;
	}
	cr_assert(t != NULL && regexec(&re, t, 0, NULL, 0) == 0, "RFC 3339 time with ms: %s",
		t != NULL ? t : "(none)");
	cr_assert(level != NULL && strstr(" error warn info debug trace ", level) != NULL,
		"a level: %s", level != NULL ? level : "(none)");
	cr_assert_not_null(str(o, "event"));
}

/* How many lines are event `ev` (with worker `id` when id > 0). */
static int count_event(const struct lines *l, const char *ev, int id)
{
	int n = 0;

	for (int i = 0; i < l->n; i++) {
		const char *e = str(l->j[i], "event");

		if (e != NULL && strcmp(e, ev) == 0 && (id <= 0 || num(l->j[i], "id") == id)) {
			n++;
		}
	}
	return n;
}

static const json_t *find_event(const struct lines *l, const char *ev, int id)
{
	for (int i = 0; i < l->n; i++) {
		const char *e = str(l->j[i], "event");

		if (e != NULL && strcmp(e, ev) == 0 && (id <= 0 || num(l->j[i], "id") == id)) {
			return l->j[i];
		}
	}
	return NULL;
}

struct wait_ev {
	struct czt_proc *p;
	const char *ev;
	int id;
	int n;
};

static bool event_seen(void *arg)
{
	struct wait_ev *w = arg;
	struct lines l;
	int n;

	parse_all(w->p, CZT_ERR, &l);
	n = count_event(&l, w->ev, w->id);
	free_all(&l);
	return n >= w->n;
}

/* Waits until n events `ev` (of worker id, if > 0) are on stderr. */
static void wait_event(struct czt_proc *p, const char *ev, int id, int n)
{
	struct wait_ev w = { p, ev, id, n };

	if (!czt_wait_until(event_seen, &w, 15000)) {
		czt_dump(p);
		cr_assert_fail("no %d '%s' events (worker %d)", n, ev, id);
	}
}

static struct czt_proc *launch_json(const char *const env[], const char *workers)
{
	return czt_launch(env, "--log-format", "json", "-w", workers, "-s", "rr",
		"--prefix-output", "--", czt_server(), "--port", "0", NULL);
}

Test(logjson, the_life_of_a_cluster_in_json)
{
	struct czt_proc *p = launch_json(NULL, "2");
	const json_t *o;
	struct lines l;
	int port;

	wait_event(p, "listening", 0, 2);
	parse_all(p, CZT_ERR, &l);
	for (int i = 0; i < l.n; i++) {
		check_envelope(l.j[i]);
	}
	cr_expect_eq(count_event(&l, "fork", 0), 2);
	cr_expect_eq(count_event(&l, "online", 0), 2);
	o = find_event(&l, "listening", 1);
	cr_assert_not_null(o, "worker 1 listens: %s", l.text);
	cr_expect_gt(num(o, "pid"), 0);
	const char *addr = str(o, "address");
	cr_assert(addr != NULL && strncmp(addr, "127.0.0.1:", 10) == 0, "address: %s",
		addr != NULL ? addr : "(none)");
	port = atoi(addr + 10);
	cr_expect_not_null(find_event(&l, "control_socket", 0));
	free_all(&l);

	/* A killed worker: an exit event with its signal; a replacement. */
	struct czt_addr a;
	czt_addr_tcp(&a, "127.0.0.1", port);
	pid_t victim = czt_ask(&a, 10000);
	cr_assert_gt(victim, 0);
	cr_assert_eq(kill(victim, SIGKILL), 0);
	wait_event(p, "exit", 0, 1);
	wait_event(p, "listening", 0, 3);
	cr_assert_eq(czt_signal(p, SIGHUP), 0);
	wait_event(p, "reload_done", 0, 1);
	czt_stop(p);

	parse_all(p, CZT_ERR, &l);
	for (int i = 0; i < l.n; i++) {
		check_envelope(l.j[i]);
	}
	o = find_event(&l, "exit", 0);
	cr_assert_not_null(o);
	cr_expect_eq(num(o, "pid"), victim);
	cr_expect_str_eq(str(o, "signal") ? str(o, "signal") : "", "SIGKILL");
	o = find_event(&l, "reload", 0);
	cr_expect(o != NULL && num(o, "workers") == 2, "reload names its worker count");
	cr_expect_eq(count_event(&l, "reload_ready", 0), 2);
	o = find_event(&l, "reload_done", 0);
	cr_expect(o != NULL && num(o, "replaced") == 2);
	o = find_event(&l, "stop", 0);
	cr_expect(o != NULL && str(o, "signal") != NULL &&
		strcmp(str(o, "signal"), "SIGTERM") == 0, "the stop names its signal");
	free_all(&l);

	/* The workers' own lines, wrapped. */
	parse_all(p, CZT_OUT, &l);
	int hellos = 0;
	for (int i = 0; i < l.n; i++) {
		const char *line = str(l.j[i], "line");

		cr_expect_str_eq(str(l.j[i], "event"), "output");
		cr_expect_str_eq(str(l.j[i], "stream"), "stdout");
		cr_expect_gt(num(l.j[i], "id"), 0);
		hellos += line != NULL && strncmp(line, "port ", 5) == 0;
	}
	cr_expect_geq(hellos, 2, "each worker's 'port N' line came wrapped: %s", l.text);
	free_all(&l);
}

Test(logjson, warnings_and_errors_have_a_level_and_a_msg)
{
	/* A command that exits at once: a crash loop, given up on. */
	const char *const env[] = { "CLUSTERIZE_LOG_FORMAT=json", NULL };
	struct czt_proc *p = czt_launch(env, "-w", "1", "--max-restarts", "2",
		"--prefix-output", "--", "/bin/sh", "-c", "echo 'not \xff utf-8' >&2; exit 3",
		NULL);
	const json_t *o;
	struct lines l;

	czt_expect_exit(p, CZT_EXITED(3), 30000);
	parse_all(p, CZT_ERR, &l);
	o = find_event(&l, "giveup", 0);
	cr_assert_not_null(o, "%s", l.text);
	cr_expect_str_eq(str(o, "level"), "error");
	cr_expect_eq(num(o, "crashes"), 2);
	cr_expect(str(o, "msg") != NULL && strstr(str(o, "msg"), "giving up") != NULL);
	for (int i = 0; i < l.n; i++) {
		const char *e = str(l.j[i], "event");

		if (e != NULL && strcmp(e, "output") == 0) {
			/* The worker's stderr; its byte that is not UTF-8 replaced. */
			cr_expect_str_eq(str(l.j[i], "stream"), "stderr");
			cr_expect_str_eq(str(l.j[i], "line"), "not \xef\xbf\xbd utf-8");
			continue;
		}
		check_envelope(l.j[i]);
		cr_expect_not_null(str(l.j[i], "msg"), "every launcher line has a msg");
	}
	cr_expect_geq(count_event(&l, "output", 0), 2, "the workers' lines: %s", l.text);
	free_all(&l);
}

Test(logjson, a_bad_format_is_a_usage_error)
{
	const char *const env[] = { "CLUSTERIZE_LOG_FORMAT=yaml", NULL };
	struct czt_proc *p[2] = {
		czt_launch(NULL, "--log-format", "xml", "--", "true", NULL),
		czt_launch(env, "--", "true", NULL),
	};
	const char *named[2] = { "'xml' for --log-format", "'yaml' for CLUSTERIZE_LOG_FORMAT" };

	for (int i = 0; i < 2; i++) {
		czt_expect_exit(p[i], CZT_EXITED(2), 10000);
		char *err = czt_read(p[i], CZT_ERR);

		cr_expect(strstr(err, named[i]) != NULL && czt_ops_lines(err) == 1,
			"one line naming %s: %s", named[i], err);
		free(err);
	}
}

Test(logjson, a_worker_without_the_shim_is_a_warning_event)
{
	char sleeper[512];
	const json_t *o;
	struct lines l;

	snprintf(sleeper, sizeof(sleeper), "%s/static-sleeper", getenv("CZ_SERVERS"));
	struct czt_proc *p = czt_launch(NULL, "--log-format", "json", "-w", "1",
		"--hello-timeout", "0.2", "--", sleeper, NULL);

	wait_event(p, "no_shim", 0, 1);
	czt_stop(p);
	parse_all(p, CZT_ERR, &l);
	for (int i = 0; i < l.n; i++) {
		check_envelope(l.j[i]);
	}
	o = find_event(&l, "no_shim", 1);
	cr_assert_not_null(o, "%s", l.text);
	cr_expect_str_eq(str(o, "level"), "warn");
	cr_expect_gt(num(o, "pid"), 0);
	cr_expect(json_is_real(json_object_get(o, "hello_timeout")) &&
		json_real_value(json_object_get(o, "hello_timeout")) == 0.2, "hello_timeout 0.2");
	/* The static binary named before it starts: a plain warning line. */
	o = NULL;
	for (int i = 0; i < l.n && o == NULL; i++) {
		const char *msg = str(l.j[i], "msg");

		if (msg != NULL && strstr(msg, "statically linked") != NULL) {
			o = l.j[i];
		}
	}
	cr_assert_not_null(o, "%s", l.text);
	cr_expect_str_eq(str(o, "event"), "message");
	cr_expect_str_eq(str(o, "level"), "warn");
	free_all(&l);
}
