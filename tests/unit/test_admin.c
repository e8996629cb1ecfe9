#include <criterion/criterion.h>
#include <jansson.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "admin.h"

/* --- fake launcher ops ---------------------------------------------------- */

struct fake {
	int reloads, scales, stops;
	unsigned scale_n;
	int fail;            /* returned by reload/scale/stop */
	const char *why;     /* their message; NULL leaves it empty */
	const char *command;
	double uptime[2];
	struct cz_admin **destroy; /* stop destroys the server, as a stop may */
	int sends;
	uint32_t send_to;
	char sent[256];      /* the message send got, compact */
};

static void fake_summary(void *data, struct cz_admin_summary *out)
{
	struct fake *f = data;

	out->pid = 999;
	out->sched = "rr";
	out->balance = "least-conn";
	out->state = "running";
	out->wanted = 2;
	out->command = f->command;
}

static size_t fake_status(void *data, struct cz_admin_worker *rows, size_t max)
{
	static const struct cz_admin_worker w[2] = {
		{ 1, 4242, "listening", 0, 2, 10, 3, "127.0.0.1:8000, [::1]:8000" },
		{ 2, 4243, "starting", 0, 0, 0, 0, "" },
	};
	struct fake *f = data;

	for (size_t i = 0; i < 2 && i < max; i++) {
		rows[i] = w[i];
		rows[i].uptime = f->uptime[i];
	}
	return 2;
}

static int fake_result(struct fake *f, char *err, size_t len)
{
	if (f->fail != 0 && f->why != NULL) {
		snprintf(err, len, "%s", f->why);
	}
	return f->fail;
}

static int fake_reload(void *data, char *err, size_t len)
{
	struct fake *f = data;

	f->reloads++;
	return fake_result(f, err, len);
}

static int fake_scale(void *data, unsigned n, char *err, size_t len)
{
	struct fake *f = data;

	f->scales++;
	f->scale_n = n;
	return fake_result(f, err, len);
}

static int fake_stop(void *data, char *err, size_t len)
{
	struct fake *f = data;

	f->stops++;
	if (f->destroy != NULL) {
		cz_admin_destroy(*f->destroy);
		*f->destroy = NULL;
	}
	return fake_result(f, err, len);
}

static int fake_send(void *data, uint32_t worker_id, const json_t *msg,
	unsigned *delivered, char *err, size_t len)
{
	struct fake *f = data;
	char *line = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);

	f->sends++;
	f->send_to = worker_id;
	snprintf(f->sent, sizeof(f->sent), "%s", line != NULL ? line : "");
	free(line);
	*delivered = worker_id == 0 ? 2 : 1;
	return fake_result(f, err, len);
}

/* --- a launcher's loop in a thread ---------------------------------------- */

struct srv {
	uv_loop_t loop;
	uv_async_t quit;
	uv_async_t publish; /* publishes `msg` as worker 3's (pid 4444) */
	json_t *msg;
	pthread_t thread;
	struct cz_admin *a;
	struct fake f;
	struct cz_admin_ops ops;
};

static char tmpdir[64];
static char sockpath[80];

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cz-admin-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(sockpath, sizeof(sockpath), "%s/l.sock", tmpdir);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(admin, .init = setup, .fini = teardown, .timeout = 20);

static void *loop_main(void *arg)
{
	struct srv *s = arg;

	uv_run(&s->loop, UV_RUN_DEFAULT);
	return NULL;
}

static void on_quit(uv_async_t *h)
{
	struct srv *s = h->data;

	cz_admin_destroy(s->a);
	uv_close((uv_handle_t *)h, NULL);
	uv_close((uv_handle_t *)&s->publish, NULL);
}

static void on_publish(uv_async_t *h)
{
	struct srv *s = h->data;

	cz_admin_publish(s->a, 3, 4444, s->msg);
}

/* Creates the server on `path` (NULL: the default) and runs it; returns
 * cz_admin_create's result (the thread runs only on success). */
static int srv_start(struct srv *s, const char *path)
{
	int err;

	memset(s, 0, sizeof(*s));
	s->f.command = "python3";
	s->f.uptime[0] = 75.0;
	s->f.uptime[1] = 3700.0;
	s->ops = (struct cz_admin_ops){ &s->f, fake_summary, fake_status,
		fake_reload, fake_scale, fake_stop, fake_send };
	cr_assert_eq(uv_loop_init(&s->loop), 0);
	err = cz_admin_create(&s->loop, path, &s->ops, &s->a);
	if (err < 0) {
		uv_run(&s->loop, UV_RUN_DEFAULT); /* close callbacks */
		cr_assert_eq(uv_loop_close(&s->loop), 0);
		return err;
	}
	uv_async_init(&s->loop, &s->quit, on_quit);
	s->quit.data = s;
	uv_async_init(&s->loop, &s->publish, on_publish);
	s->publish.data = s;
	cr_assert_eq(pthread_create(&s->thread, NULL, loop_main, s), 0);
	return 0;
}

static void srv_stop(struct srv *s)
{
	uv_async_send(&s->quit);
	pthread_join(s->thread, NULL);
	cr_assert_eq(uv_loop_close(&s->loop), 0, "handles left open");
}

/* --- the client, with its output captured --------------------------------- */

struct out {
	int rc;
	char out[8192];
	char err[1024];
};

static void slurp(int fd, char *buf, size_t len)
{
	ssize_t n = pread(fd, buf, len - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	close(fd);
}

static void run_client(const struct cz_opts *o, struct out *r)
{
	FILE *fo = tmpfile(), *fe = tmpfile();
	int save_out = dup(1), save_err = dup(2);

	cr_assert(fo != NULL && fe != NULL);
	fflush(stdout);
	fflush(stderr);
	dup2(fileno(fo), 1);
	dup2(fileno(fe), 2);
	r->rc = cz_admin_client(o);
	fflush(stdout);
	fflush(stderr);
	dup2(save_out, 1);
	dup2(save_err, 2);
	close(save_out);
	close(save_err);
	slurp(dup(fileno(fo)), r->out, sizeof(r->out));
	slurp(dup(fileno(fe)), r->err, sizeof(r->err));
	fclose(fo);
	fclose(fe);
}

static void client(enum cz_cli_action act, const char *path, struct out *r)
{
	struct cz_opts o = { .action = act, .control = path };

	run_client(&o, r);
}

/* Sends a raw request line and returns the whole answer. */
static void raw(const char *path, const char *req, char *buf, size_t len)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	size_t got = 0;
	ssize_t n;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	/* A refused peer may find the connection closed already. */
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req)) {
		shutdown(fd, SHUT_WR);
	}
	while ((n = read(fd, buf + got, len - 1 - got)) > 0) {
		got += (size_t)n;
	}
	buf[got] = '\0';
	close(fd);
}

/* --- tests ---------------------------------------------------------------- */

Test(admin, status_text_has_header_and_rows)
{
	struct srv s;
	struct out r;

	cr_assert_eq(srv_start(&s, sockpath), 0);
	cr_expect_str_eq(cz_admin_path(s.a), sockpath);
	client(CZ_CLI_STATUS, sockpath, &r);
	srv_stop(&s);
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_expect_str_eq(r.err, "");
	cr_expect(strstr(r.out, "clusterize 999: python3, rr, balance least-conn, "
		"running, 2 workers wanted\n") == r.out, "%s", r.out);
	cr_expect_not_null(strstr(r.out, " CONNS    ACTIVE ADDRESSES\n"), "%s", r.out);
	cr_expect_not_null(strstr(r.out, "ID"), "%s", r.out);
	cr_expect_not_null(strstr(r.out, "ADDRESSES"), "%s", r.out);
	cr_expect_not_null(strstr(r.out, "\n1    4242     listening  1m15s   2 "),
		"%s", r.out);
	cr_expect_not_null(strstr(r.out, " 10       3      127.0.0.1:8000, [::1]:8000\n"),
		"%s", r.out);
	cr_expect_not_null(strstr(r.out, "\n2    4243     starting   1h01m"),
		"%s", r.out);
}

Test(admin, status_json_parses_and_escapes)
{
	struct srv s;
	struct cz_opts o = { .action = CZ_CLI_STATUS, .json = true };
	struct out r;

	cr_assert_eq(srv_start(&s, sockpath), 0);
	s.f.command = "my \"server\"\\\n\xff";
	o.control = sockpath;
	run_client(&o, &r);
	srv_stop(&s);
	cr_assert_eq(r.rc, 0, "%s", r.err);
	json_error_t e;
	json_t *doc = json_loads(r.out, 0, &e);

	cr_assert_not_null(doc, "not JSON (%s at %d): %s", e.text, e.position, r.out);
	cr_expect_eq(strchr(r.out, '\n'), r.out + strlen(r.out) - 1, "one line: %s", r.out);
	/* Bytes that are not UTF-8 come back as U+FFFD, the rest as they were. */
	cr_expect_str_eq(json_string_value(json_object_get(doc, "command")),
		"my \"server\"\\\n\xef\xbf\xbd", "%s", r.out);
	cr_expect_eq(json_integer_value(json_object_get(doc, "pid")), 999);
	cr_expect_str_eq(json_string_value(json_object_get(doc, "sched")), "rr");
	cr_expect_str_eq(json_string_value(json_object_get(doc, "balance")), "least-conn");
	cr_expect_str_eq(json_string_value(json_object_get(doc, "state")), "running");
	cr_expect_eq(json_integer_value(json_object_get(doc, "wanted")), 2);
	json_t *ws = json_object_get(doc, "workers");

	cr_assert_eq(json_array_size(ws), 2, "%s", r.out);
	json_t *w = json_array_get(ws, 0);

	cr_expect_eq(json_integer_value(json_object_get(w, "id")), 1);
	cr_expect_eq(json_integer_value(json_object_get(w, "pid")), 4242);
	cr_expect_str_eq(json_string_value(json_object_get(w, "state")), "listening");
	cr_expect(json_is_number(json_object_get(w, "uptime")) &&
		json_number_value(json_object_get(w, "uptime")) == 75.0, "%s", r.out);
	cr_expect_eq(json_integer_value(json_object_get(w, "restarts")), 2);
	cr_expect_eq(json_integer_value(json_object_get(w, "conns")), 10);
	cr_expect(json_is_integer(json_object_get(w, "active")) &&
		json_integer_value(json_object_get(w, "active")) == 3, "%s", r.out);
	json_t *as = json_object_get(w, "addresses");

	cr_assert_eq(json_array_size(as), 2, "%s", r.out);
	cr_expect_str_eq(json_string_value(json_array_get(as, 0)), "127.0.0.1:8000");
	cr_expect_str_eq(json_string_value(json_array_get(as, 1)), "[::1]:8000");
	w = json_array_get(ws, 1);
	cr_expect_eq(json_integer_value(json_object_get(w, "id")), 2);
	cr_expect_eq(json_integer_value(json_object_get(w, "pid")), 4243);
	cr_expect(json_is_array(json_object_get(w, "addresses")) &&
		json_array_size(json_object_get(w, "addresses")) == 0, "%s", r.out);
	json_decref(doc);
}

Test(admin, ops_get_their_arguments)
{
	struct srv s;
	struct cz_opts o = { .action = CZ_CLI_SCALE, .scale_to = 7 };
	struct out r;

	cr_assert_eq(srv_start(&s, sockpath), 0);
	client(CZ_CLI_RELOAD, sockpath, &r);
	cr_expect_eq(r.rc, 0, "%s", r.err);
	cr_expect_str_eq(r.out, "");
	o.control = sockpath;
	run_client(&o, &r);
	cr_expect_eq(r.rc, 0, "%s", r.err);
	client(CZ_CLI_STOP, sockpath, &r);
	cr_expect_eq(r.rc, 0, "%s", r.err);
	srv_stop(&s);
	cr_expect_eq(s.f.reloads, 1);
	cr_expect_eq(s.f.scales, 1);
	cr_expect_eq(s.f.scale_n, 7);
	cr_expect_eq(s.f.stops, 1);
}

Test(admin, op_errors_exit_1_with_the_message)
{
	struct srv s;
	struct out r;

	cr_assert_eq(srv_start(&s, sockpath), 0);
	s.f.fail = -EBUSY;
	s.f.why = "a reload is already running";
	client(CZ_CLI_RELOAD, sockpath, &r);
	cr_expect_eq(r.rc, 1);
	cr_expect_str_eq(r.err, "clusterize: a reload is already running\n");
	cr_expect_str_eq(r.out, "");
	s.f.why = NULL;
	client(CZ_CLI_STOP, sockpath, &r);
	cr_expect_eq(r.rc, 1);
	cr_expect_str_eq(r.err, "clusterize: stop: Device or resource busy\n");
	srv_stop(&s);
}

Test(admin, bad_requests_get_an_error)
{
	struct srv s;
	char buf[512];

	cr_assert_eq(srv_start(&s, sockpath), 0);
	raw(sockpath, "bogus\n", buf, sizeof(buf));
	cr_expect_str_eq(buf, "error: unknown request 'bogus'\n");
	raw(sockpath, "scale 0\n", buf, sizeof(buf));
	cr_expect_str_eq(buf, "error: invalid worker count '0' (1 to 1024)\n");
	raw(sockpath, "scale 3x\r\n", buf, sizeof(buf));
	cr_expect_not_null(strstr(buf, "error: invalid worker count '3x'"));
	raw(sockpath, "reload", buf, sizeof(buf)); /* EOF ends the line */
	cr_expect_str_eq(buf, "ok\n");
	srv_stop(&s);
	cr_expect_eq(s.f.scales, 0);
	cr_expect_eq(s.f.reloads, 1);
}

Test(admin, an_overlong_request_is_dropped)
{
	static char req[70000];
	struct srv s;
	char buf[64];

	memset(req, 'x', sizeof(req) - 1);
	req[sizeof(req) - 1] = '\0';
	cr_assert_eq(srv_start(&s, sockpath), 0);
	raw(sockpath, req, buf, sizeof(buf));
	cr_expect_str_eq(buf, "");
	srv_stop(&s);
}

Test(admin, send_delivers_the_message_compacted)
{
	struct cz_opts o = { .action = CZ_CLI_SEND, .send_to = 0,
		.send_json = "{\"cmd\": \"reload-config\",\n \"n\": [1, 2]}" };
	struct srv s;
	struct out r;

	cr_assert_eq(srv_start(&s, sockpath), 0);
	o.control = sockpath;
	run_client(&o, &r);
	cr_expect_eq(r.rc, 0, "%s", r.err);
	cr_expect_str_eq(r.out, "delivered to 2 workers\n");
	o.send_to = 7;
	o.send_json = "\"x\"";
	run_client(&o, &r);
	srv_stop(&s);
	cr_expect_eq(r.rc, 0, "%s", r.err);
	cr_expect_str_eq(r.out, "delivered to 1 worker\n");
	cr_expect_eq(s.f.sends, 2);
	cr_expect_eq(s.f.send_to, 7);
	cr_expect_str_eq(s.f.sent, "\"x\"");
}

Test(admin, send_to_nobody_exits_1_with_the_reason)
{
	struct cz_opts o = { .action = CZ_CLI_SEND, .send_to = 9, .send_json = "{}" };
	struct srv s;
	struct out r;

	cr_assert_eq(srv_start(&s, sockpath), 0);
	s.f.fail = -ENOENT;
	s.f.why = "no worker 9";
	o.control = sockpath;
	run_client(&o, &r);
	srv_stop(&s);
	cr_expect_eq(r.rc, 1);
	cr_expect_str_eq(r.err, "clusterize: send: no worker 9\n");
	cr_expect_str_eq(r.out, "");
}

Test(admin, bad_send_requests_get_an_error)
{
	struct srv s;
	char buf[256];

	cr_assert_eq(srv_start(&s, sockpath), 0);
	raw(sockpath, "send all {\"a\":\n", buf, sizeof(buf));
	cr_expect(strncmp(buf, "error: send: invalid JSON at byte ", 34) == 0, "%s", buf);
	raw(sockpath, "send x1 {}\n", buf, sizeof(buf));
	cr_expect_str_eq(buf, "error: send: expected 'send ID|all JSON'\n");
	raw(sockpath, "send 0 {}\n", buf, sizeof(buf));
	cr_expect_str_eq(buf, "error: send: expected 'send ID|all JSON'\n");
	srv_stop(&s);
	cr_expect_eq(s.f.sends, 0);
}

/* Connects and asks to follow messages; returns the fd after "ok". */
static int follow(const char *req)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	char ok[3];

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sockpath);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	cr_assert_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
	cr_assert_eq(recv(fd, ok, 3, MSG_WAITALL), 3);
	cr_assert_eq(memcmp(ok, "ok\n", 3), 0);
	return fd;
}

/* One line off fd (blocking). */
static void read_line(int fd, char *buf, size_t len)
{
	size_t n = 0;

	while (n + 1 < len && recv(fd, buf + n, 1, 0) == 1 && buf[n++] != '\n') {
	}
	buf[n] = '\0';
}

Test(admin, messages_are_streamed_to_every_watcher)
{
	struct srv s;
	char line[256];

	cr_assert_eq(srv_start(&s, sockpath), 0);
	s.msg = json_pack("{s:s, s:s}", "cmd", "ready", "x", "\x1b[2J\xc3\xa9");
	int text = follow("messages\n"), js = follow("messages json\n");

	for (int i = 0; i < 2; i++) {
		uv_async_send(&s.publish);
		read_line(text, line, sizeof(line));
		/* For terminals: escape sequences and non-ASCII escaped. */
		cr_expect_str_eq(line, "worker 3 (pid 4444): "
			"{\"cmd\":\"ready\",\"x\":\"\\u001B[2J\\u00E9\"}\n");
		read_line(js, line, sizeof(line));
		json_t *j = json_loads(line, 0, NULL);

		cr_assert_not_null(j, "%s", line);
		cr_expect_eq(json_integer_value(json_object_get(j, "worker")), 3);
		cr_expect_eq(json_integer_value(json_object_get(j, "pid")), 4444);
		cr_expect(json_equal(json_object_get(j, "message"), s.msg), "%s", line);
		json_decref(j);
	}
	close(text);
	srv_stop(&s);
	/* The launcher going away ends the stream. */
	cr_expect_eq(recv(js, line, sizeof(line), 0), 0);
	close(js);
	json_decref(s.msg);
}

Test(admin, socket_is_0600_and_destroy_removes_it)
{
	struct srv s;
	struct stat st;

	cr_assert_eq(srv_start(&s, sockpath), 0);
	cr_assert_eq(lstat(sockpath, &st), 0);
	cr_expect(S_ISSOCK(st.st_mode));
	cr_expect_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
	srv_stop(&s);
	cr_expect_eq(lstat(sockpath, &st), -1);
	cr_expect_eq(errno, ENOENT);
}

Test(admin, a_live_socket_is_refused)
{
	struct srv s, t;
	struct out r;

	cr_assert_eq(srv_start(&s, sockpath), 0);
	cr_expect_eq(srv_start(&t, sockpath), -EADDRINUSE);
	client(CZ_CLI_STATUS, sockpath, &r); /* the first still answers */
	cr_expect_eq(r.rc, 0, "%s", r.err);
	srv_stop(&s);
}

Test(admin, a_stale_socket_is_replaced)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct srv s;
	struct out r;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sockpath);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd); /* the file stays; no one listens: a dead launcher's */
	cr_assert_eq(srv_start(&s, sockpath), 0);
	client(CZ_CLI_STATUS, sockpath, &r);
	cr_expect_eq(r.rc, 0, "%s", r.err);
	srv_stop(&s);
}

Test(admin, a_file_that_is_not_a_socket_is_kept)
{
	struct srv s;
	int fd = open(sockpath, O_CREAT | O_WRONLY, 0600);

	cr_assert_geq(fd, 0);
	close(fd);
	cr_expect_eq(srv_start(&s, sockpath), -EEXIST);
	cr_expect_eq(access(sockpath, F_OK), 0);
}

Test(admin, no_launcher_at_the_path)
{
	struct out r;

	client(CZ_CLI_STATUS, sockpath, &r);
	cr_expect_eq(r.rc, 1);
	cr_expect_not_null(strstr(r.err, "clusterize: connect "), "%s", r.err);
	cr_expect_not_null(strstr(r.err, "No such file or directory\n"), "%s",
		r.err);
}

Test(admin, default_path_honours_xdg_runtime_dir)
{
	char buf[128], want[128];

	setenv("XDG_RUNTIME_DIR", tmpdir, 1);
	cr_assert_eq(cz_admin_default_path(1234, 0, buf, sizeof(buf)), 0);
	snprintf(want, sizeof(want), "%s/clusterize/1234.sock", tmpdir);
	cr_expect_str_eq(buf, want);

	snprintf(want, sizeof(want), "/tmp/clusterize-%u/1234.sock",
		(unsigned)geteuid());
	setenv("XDG_RUNTIME_DIR", "/nonexistent-cz", 1);
	cr_assert_eq(cz_admin_default_path(1234, 0, buf, sizeof(buf)), 0);
	cr_expect_str_eq(buf, want);
	setenv("XDG_RUNTIME_DIR", "relative", 1);
	cr_assert_eq(cz_admin_default_path(1234, 0, buf, sizeof(buf)), 0);
	cr_expect_str_eq(buf, want);
	unsetenv("XDG_RUNTIME_DIR");
	cr_assert_eq(cz_admin_default_path(1234, 0, buf, sizeof(buf)), 0);
	cr_expect_str_eq(buf, want);
	cr_expect_eq(cz_admin_default_path(1234, 0, buf, 10), -ENAMETOOLONG);
	snprintf(want, sizeof(want), "/tmp/clusterize-%u/1234.3.sock",
		(unsigned)geteuid());
	cr_assert_eq(cz_admin_default_path(1234, 3, buf, sizeof(buf)), 0);
	cr_expect_str_eq(buf, want);
}

/* Two containers' PID 1 sharing the directory: the same pid, both live. */
Test(admin, a_default_path_taken_by_another_namespace_gets_an_alternative)
{
	char dir[80], mine[100], alt[100];
	struct srv s, t;
	struct out r;

	setenv("XDG_RUNTIME_DIR", tmpdir, 1);
	snprintf(dir, sizeof(dir), "%s/clusterize", tmpdir);
	cr_assert_eq(mkdir(dir, 0700), 0);
	snprintf(mine, sizeof(mine), "%s/%d.sock", dir, (int)getpid());
	snprintf(alt, sizeof(alt), "%s/%d.2.sock", dir, (int)getpid());
	cr_assert_eq(srv_start(&s, mine), 0);
	cr_assert_eq(srv_start(&t, NULL), 0);
	cr_expect_str_eq(cz_admin_path(t.a), alt);
	client(CZ_CLI_STATUS, mine, &r);
	cr_expect_eq(r.rc, 0, "%s", r.err);
	client(CZ_CLI_STATUS, alt, &r);
	cr_expect_eq(r.rc, 0, "%s", r.err);
	srv_stop(&t);
	cr_expect_eq(access(alt, F_OK), -1, "its socket is removed at the end");
	cr_expect_eq(access(mine, F_OK), 0, "and only its own");
	srv_stop(&s);
}

Test(admin, default_dir_is_made_private_and_found_by_clients)
{
	char dir[80], path[100];
	struct srv s;
	struct stat st;
	struct out r;

	setenv("XDG_RUNTIME_DIR", tmpdir, 1);
	snprintf(dir, sizeof(dir), "%s/clusterize", tmpdir);
	cr_assert_eq(srv_start(&s, NULL), 0);
	snprintf(path, sizeof(path), "%s/%d.sock", dir, (int)getpid());
	cr_expect_str_eq(cz_admin_path(s.a), path);
	cr_assert_eq(stat(dir, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0700, "mode %o", st.st_mode & 0777);
	client(CZ_CLI_STATUS, NULL, &r); /* no --control: the only one */
	cr_expect_eq(r.rc, 0, "%s", r.err);
	cr_expect_not_null(strstr(r.out, "clusterize 999: "));
	srv_stop(&s);
	cr_expect_eq(stat(dir, &st), -1, "the empty directory is removed");
}

Test(admin, clients_without_control_need_exactly_one_launcher)
{
	char dir[80], a[100], b[100];
	struct srv s, t;
	struct out r;

	setenv("XDG_RUNTIME_DIR", tmpdir, 1);
	snprintf(dir, sizeof(dir), "%s/clusterize", tmpdir);
	client(CZ_CLI_STATUS, NULL, &r);
	cr_expect_eq(r.rc, 1);
	cr_expect(strncmp(r.err, "clusterize: no running launcher found in ",
		41) == 0, "%s", r.err);
	cr_expect_not_null(strstr(r.err, dir), "%s", r.err);
	cr_expect_not_null(strstr(r.err, " (use --control PATH)\n"));

	cr_assert_eq(mkdir(dir, 0700), 0);
	snprintf(a, sizeof(a), "%s/1.sock", dir);
	snprintf(b, sizeof(b), "%s/2.sock", dir);
	cr_assert_eq(srv_start(&s, a), 0);
	cr_assert_eq(srv_start(&t, b), 0);
	client(CZ_CLI_STOP, NULL, &r);
	cr_expect_eq(r.rc, 1);
	cr_expect_not_null(strstr(r.err, "clusterize: several launchers are "
		"running: "), "%s", r.err);
	cr_expect_not_null(strstr(r.err, a), "%s", r.err);
	cr_expect_not_null(strstr(r.err, b), "%s", r.err);
	cr_expect_not_null(strstr(r.err, "; choose one with --control PATH\n"));
	srv_stop(&t);
	srv_stop(&s);
	cr_expect_eq(s.f.stops + t.f.stops, 0);
}

/*
 * Someone else's (here: anyone's) default directory is not used: the
 * launcher makes a private DIR.XXXXXX, and clients find it there, never a
 * socket in a directory others can write to.
 */
Test(admin, a_shared_default_dir_is_left_for_a_private_one)
{
	char dir[80], evil[90], in_dir[100], in_evil[100], prefix[90];
	struct srv s, u, v;
	struct stat st;
	struct out r;
	const char *path;

	setenv("XDG_RUNTIME_DIR", tmpdir, 1);
	snprintf(dir, sizeof(dir), "%s/clusterize", tmpdir);
	snprintf(evil, sizeof(evil), "%s.evil", dir);
	cr_assert_eq(mkdir(dir, 0700), 0);
	cr_assert_eq(chmod(dir, 0777), 0);
	cr_assert_eq(mkdir(evil, 0700), 0);
	cr_assert_eq(chmod(evil, 0777), 0);
	snprintf(in_dir, sizeof(in_dir), "%s/1.sock", dir);
	snprintf(in_evil, sizeof(in_evil), "%s/2.sock", evil);
	cr_assert_eq(srv_start(&u, in_dir), 0);
	cr_assert_eq(srv_start(&v, in_evil), 0);

	cr_assert_eq(srv_start(&s, NULL), 0);
	path = cz_admin_path(s.a);
	snprintf(prefix, sizeof(prefix), "%s.", dir);
	cr_expect(strncmp(path, prefix, strlen(prefix)) == 0 &&
		strchr(path + strlen(prefix), '/') != NULL, "%s is in %s*",
		path, prefix);
	snprintf(in_dir, sizeof(in_dir), "%.*s", (int)(strrchr(path, '/') - path),
		path);
	cr_assert_eq(lstat(in_dir, &st), 0);
	cr_expect(S_ISDIR(st.st_mode) && st.st_uid == geteuid() &&
		(st.st_mode & 0777) == 0700, "%s is ours, 0700 (%o)", in_dir,
		st.st_mode & 0777);
	client(CZ_CLI_STATUS, NULL, &r); /* no --control: the only one */
	cr_expect_eq(r.rc, 0, "%s", r.err);
	cr_expect_not_null(strstr(r.out, "clusterize 999: "));
	srv_stop(&s);
	cr_expect_eq(lstat(in_dir, &st), -1, "%s is removed", in_dir);
	srv_stop(&v);
	srv_stop(&u);
}

Test(admin, other_users_are_refused)
{
	struct srv s;
	char buf[64];
	pid_t pid;
	int st;

	if (geteuid() != 0) {
		cr_skip_test("needs root to become another user");
	}
	cr_assert_eq(srv_start(&s, sockpath), 0);
	/* Let the file modes through so only SO_PEERCRED stands in the way. */
	cr_assert_eq(chmod(tmpdir, 0755), 0);
	cr_assert_eq(chmod(sockpath, 0666), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (setresuid(65534, 65534, 65534) < 0) {
			_exit(2);
		}
		raw(sockpath, "stop\n", buf, sizeof(buf));
		_exit(buf[0] == '\0' ? 0 : 1);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	srv_stop(&s);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	cr_expect_eq(s.f.stops, 0);
}

Test(admin, uptimes_read_like_durations)
{
	static const struct { double a, b; const char *sa, *sb; } cases[] = {
		{ 5.9, 192, "5s", "3m12s" },
		{ 7500, 93780, "2h05m", "1d02h" },
		{ -1, 0, "0s", "0s" },
	};
	struct srv s;
	struct out r;

	cr_assert_eq(srv_start(&s, sockpath), 0);
	for (size_t i = 0; i < 3; i++) {
		char a[64], b[64];

		/* The loop is idle between requests; the client waits for it. */
		s.f.uptime[0] = cases[i].a;
		s.f.uptime[1] = cases[i].b;
		client(CZ_CLI_STATUS, sockpath, &r);
		snprintf(a, sizeof(a), " listening  %-7s ", cases[i].sa);
		snprintf(b, sizeof(b), " starting   %-7s ", cases[i].sb);
		cr_expect_not_null(strstr(r.out, a), "%s", r.out);
		cr_expect_not_null(strstr(r.out, b), "%s", r.out);
	}
	srv_stop(&s);
}

Test(admin, an_idle_client_is_dropped)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct srv s;
	char c;

	cr_assert_eq(srv_start(&s, sockpath), 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sockpath);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	cr_expect_eq(write(fd, "sta", 3), 3);
	cr_expect_eq(read(fd, &c, 1), 0, "closed after 2 s without a line");
	close(fd);
	srv_stop(&s);
}

Test(admin, a_stop_that_destroys_the_server_is_still_answered)
{
	struct srv s;
	struct out r;
	struct stat st;

	cr_assert_eq(srv_start(&s, sockpath), 0);
	s.f.destroy = &s.a;
	client(CZ_CLI_STOP, sockpath, &r);
	cr_expect_eq(r.rc, 0, "%s", r.err);
	cr_expect_eq(lstat(sockpath, &st), -1);
	srv_stop(&s); /* the destroyed server's handles are all closed */
	cr_expect_eq(s.f.stops, 1);
}
