/*
 * The operator's control socket (admin.h): the server that runs on the
 * launcher's loop, and the client behind `clusterize status|reload|scale|
 * stop`.  One request line per connection, one answer, then close.
 */
#include "admin.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

#define REQUEST_MAX 256           /* bytes, newline included */
#define REQUEST_TIMEOUT_MS 2000   /* idle, while reading the request */
#define ANSWER_TIMEOUT_MS 5000    /* to write the answer; the client's wait */
#define ANSWER_MAX (64u << 20)    /* the client gives up on anything bigger */
#define SUN_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

struct client {
	uv_pipe_t pipe;
	uv_timer_t timer;
	uv_write_t wr;
	struct cz_admin *a;
	struct client *next;
	char *answer;
	size_t len;
	int handles;   /* open libuv handles; freed when 0 */
	bool closing;
	bool answering; /* an op is running or the answer is being written */
	char line[REQUEST_MAX];
};

struct cz_admin {
	uv_pipe_t server;
	struct cz_admin_ops ops;
	struct client *clients;
	unsigned refs; /* the server handle plus one per client */
	bool closing;
	bool own_dir;  /* the default directory: removed when empty */
	dev_t dev;
	ino_t ino;
	char path[SUN_PATH_MAX];
	char dir[SUN_PATH_MAX];
};

/* --- a growing string ------------------------------------------------------ */

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_grow(struct sbuf *b, size_t need)
{
	size_t cap = b->cap != 0 ? b->cap : 1024;
	char *p;

	if (b->oom || b->len + need + 1 <= b->cap) {
		return;
	}
	while (cap < b->len + need + 1) {
		cap *= 2;
	}
	p = realloc(b->p, cap);
	if (p == NULL) {
		b->oom = true;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	sb_grow(b, n);
	if (b->oom) {
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

__attribute__((format(printf, 2, 3)))
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	sb_grow(b, (size_t)n);
	if (b->oom) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len, i;
	unsigned c = s[0];
	unsigned long cp;

	if (c >= 0xc2 && c <= 0xdf) {
		len = 2, cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3, cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n) {
		return 0;
	}
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80) {
			return 0;
		}
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and beyond U+10FFFF are not UTF-8. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
		return 0;
	}
	return len;
}

/* A JSON string; bytes that are not UTF-8 (argv can hold any) become
 * U+FFFD so the document stays valid. */
static void sb_json_str(struct sbuf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
	size_t n = strlen((const char *)p);

	sb_add(b, "\"", 1);
	while (n > 0) {
		size_t k;

		if (*p == '"' || *p == '\\') {
			sb_printf(b, "\\%c", *p);
			k = 1;
		} else if (*p < 0x20 || *p == 0x7f) {
			sb_printf(b, "\\u%04x", *p);
			k = 1;
		} else if (*p < 0x80) {
			sb_add(b, (const char *)p, 1);
			k = 1;
		} else if ((k = utf8_len(p, n)) > 0) {
			sb_add(b, (const char *)p, k);
		} else {
			sb_add(b, "\\ufffd", 6);
			k = 1;
		}
		p += k;
		n -= k;
	}
	sb_add(b, "\"", 1);
}

/* --- the status answer ---------------------------------------------------- */

static void format_uptime(double s, char *buf, size_t len)
{
	unsigned long t = isfinite(s) && s > 0 ? (unsigned long)s : 0;

	if (t < 60) {
		snprintf(buf, len, "%lus", t);
	} else if (t < 3600) {
		snprintf(buf, len, "%lum%02lus", t / 60, t % 60);
	} else if (t < 86400) {
		snprintf(buf, len, "%luh%02lum", t / 3600, t % 3600 / 60);
	} else {
		snprintf(buf, len, "%lud%02luh", t / 86400, t % 86400 / 3600);
	}
}

static const char *str_or(const char *s, const char *dflt)
{
	return s != NULL ? s : dflt;
}

static void status_text(struct sbuf *b, const struct cz_admin_summary *s,
	const struct cz_admin_worker *rows, size_t n)
{
	sb_printf(b, "clusterize %d: %s, %s, %s, %u workers wanted\n", s->pid,
		str_or(s->command, "?"), str_or(s->sched, "?"), str_or(s->state, "?"),
		s->wanted);
	sb_printf(b, "%-4s %-8s %-10s %-7s %-8s %-8s %s\n", "ID", "PID",
		"STATE", "UPTIME", "RESTARTS", "CONNS", "ADDRESSES");
	for (size_t i = 0; i < n; i++) {
		const struct cz_admin_worker *w = &rows[i];
		char up[32];

		format_uptime(w->uptime, up, sizeof(up));
		sb_printf(b, "%-4u %-8d %-10s %-7s %-8u %-8llu %.*s\n", w->id,
			w->pid, str_or(w->state, "?"), up, w->restarts,
			(unsigned long long)w->conns, (int)sizeof(w->addrs),
			w->addrs[0] != '\0' ? w->addrs : "-");
	}
}

/* "a, b" -> ["a","b"] */
static void json_addrs(struct sbuf *b, const char *addrs, size_t max)
{
	char tmp[CZ_ADMIN_ADDRS_MAX + 1];
	char *p = tmp, *sep;
	bool first = true;

	snprintf(tmp, sizeof(tmp), "%.*s", (int)max, addrs);
	sb_add(b, "[", 1);
	while (*p != '\0') {
		sep = strstr(p, ", ");
		if (sep != NULL) {
			*sep = '\0';
		}
		if (*p != '\0') {
			sb_add(b, first ? "" : ",", first ? 0 : 1);
			sb_json_str(b, p);
			first = false;
		}
		if (sep == NULL) {
			break;
		}
		p = sep + 2;
	}
	sb_add(b, "]", 1);
}

static void status_json(struct sbuf *b, const struct cz_admin_summary *s,
	const struct cz_admin_worker *rows, size_t n)
{
	sb_printf(b, "{\"pid\":%d,\"command\":", s->pid);
	sb_json_str(b, s->command);
	sb_add(b, ",\"sched\":", 9);
	sb_json_str(b, s->sched);
	sb_add(b, ",\"state\":", 9);
	sb_json_str(b, s->state);
	sb_printf(b, ",\"wanted\":%u,\"workers\":[", s->wanted);
	for (size_t i = 0; i < n; i++) {
		const struct cz_admin_worker *w = &rows[i];

		sb_printf(b, "%s{\"id\":%u,\"pid\":%d,\"state\":", i > 0 ? "," : "",
			w->id, w->pid);
		sb_json_str(b, w->state);
		sb_printf(b, ",\"uptime\":%.3f,\"restarts\":%u,\"conns\":%llu,"
			"\"addresses\":", isfinite(w->uptime) && w->uptime > 0 ?
			w->uptime : 0.0, w->restarts, (unsigned long long)w->conns);
		json_addrs(b, w->addrs, sizeof(w->addrs));
		sb_add(b, "}", 1);
	}
	sb_add(b, "]}\n", 3);
}

/* Asks for the rows until the buffer holds them all (workers come and go
 * between calls only on the loop, so the second call settles it). */
static size_t fetch_rows(const struct cz_admin_ops *ops,
	struct cz_admin_worker **out)
{
	size_t max = 64, n;
	struct cz_admin_worker *rows = NULL;

	for (;;) {
		struct cz_admin_worker *r = realloc(rows, max * sizeof(*rows));

		if (r == NULL) {
			free(rows);
			*out = NULL;
			return 0;
		}
		rows = r;
		memset(rows, 0, max * sizeof(*rows));
		n = ops->status(ops->data, rows, max);
		if (n <= max) {
			break;
		}
		max = n;
	}
	*out = rows;
	return n;
}

static void answer_status(const struct cz_admin_ops *ops, bool json,
	struct sbuf *b)
{
	struct cz_admin_summary s = { .pid = (int)getpid() };
	struct cz_admin_worker *rows = NULL;
	size_t n = 0;

	if (ops->summary != NULL) {
		ops->summary(ops->data, &s);
	}
	if (ops->status != NULL) {
		n = fetch_rows(ops, &rows);
	}
	sb_add(b, "ok\n", 3);
	if (json) {
		status_json(b, &s, rows, n);
	} else {
		status_text(b, &s, rows, n);
	}
	free(rows);
}

/* --- requests ------------------------------------------------------------- */

/* One line on the wire: a message must not break the answer's framing. */
static void sb_error(struct sbuf *b, const char *msg)
{
	sb_add(b, "error: ", 7);
	for (const char *p = msg; *p != '\0'; p++) {
		char c = (unsigned char)*p < 0x20 ? ' ' : *p;

		sb_add(b, &c, 1);
	}
	sb_add(b, "\n", 1);
}

static void answer_op(struct sbuf *b, int rc, const char *err, const char *op)
{
	char msg[320];

	if (rc == 0) {
		sb_add(b, "ok\n", 3);
		return;
	}
	if (err[0] != '\0') {
		sb_error(b, err);
		return;
	}
	snprintf(msg, sizeof(msg), "%s: %s", op, strerror(rc < 0 ? -rc : rc));
	sb_error(b, msg);
}

/* Parses "N" for scale: 1..CZ_CLI_MAX_WORKERS, digits only. */
static int parse_count(const char *s, unsigned *n)
{
	unsigned long v = 0;

	if (*s == '\0') {
		return -EINVAL;
	}
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9') {
			return -EINVAL;
		}
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > CZ_CLI_MAX_WORKERS) {
			return -ERANGE;
		}
	}
	if (v == 0) {
		return -ERANGE;
	}
	*n = (unsigned)v;
	return 0;
}

/* Runs the request in `req` (no newline) and writes the answer into b. */
static void handle_request(const struct cz_admin_ops *ops, const char *req,
	struct sbuf *b)
{
	char err[256] = "";
	char msg[REQUEST_MAX + 64];
	unsigned n;

	if (strcmp(req, "status") == 0 || strcmp(req, "status json") == 0) {
		answer_status(ops, req[6] != '\0', b);
	} else if (strcmp(req, "reload") == 0) {
		answer_op(b, ops->reload != NULL ?
			ops->reload(ops->data, err, sizeof(err)) : -ENOTSUP,
			err, "reload");
	} else if (strcmp(req, "stop") == 0) {
		answer_op(b, ops->stop != NULL ?
			ops->stop(ops->data, err, sizeof(err)) : -ENOTSUP,
			err, "stop");
	} else if (strncmp(req, "scale ", 6) == 0) {
		if (parse_count(req + 6, &n) < 0) {
			snprintf(msg, sizeof(msg), "invalid worker count '%s' "
				"(1 to %d)", req + 6, CZ_CLI_MAX_WORKERS);
			sb_error(b, msg);
			return;
		}
		answer_op(b, ops->scale != NULL ?
			ops->scale(ops->data, n, err, sizeof(err)) : -ENOTSUP,
			err, "scale");
	} else {
		snprintf(msg, sizeof(msg), "unknown request '%s'", req);
		sb_error(b, msg);
	}
}

/* --- connections ---------------------------------------------------------- */

static void admin_unref(struct cz_admin *a)
{
	if (--a->refs == 0) {
		free(a);
	}
}

static void on_client_handle_closed(uv_handle_t *h)
{
	struct client *k = h->data;

	if (--k->handles > 0) {
		return;
	}
	free(k->answer);
	admin_unref(k->a);
	free(k);
}

static void client_close(struct client *k)
{
	struct client **pp;

	if (k->closing) {
		return;
	}
	k->closing = true;
	for (pp = &k->a->clients; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	}
	uv_close((uv_handle_t *)&k->pipe, on_client_handle_closed);
	uv_close((uv_handle_t *)&k->timer, on_client_handle_closed);
}

static void on_client_timeout(uv_timer_t *t)
{
	struct client *k = t->data;

	cz_log(CZ_LOG_DEBUG, "control socket: client timed out");
	client_close(k);
}

static void on_written(uv_write_t *wr, int status)
{
	struct client *k = wr->data;

	(void)status;
	k->answering = false;
	client_close(k);
}

static void client_answer(struct client *k)
{
	struct sbuf b = { 0 };
	uv_buf_t buf;

	k->line[k->len] = '\0';
	k->answering = true;
	/* An op may destroy the server; `k` stays valid (freed only in close
	 * callbacks) and destroy leaves an answering client to finish. */
	handle_request(&k->a->ops, k->line, &b);
	if (b.oom) {
		free(b.p);
		b = (struct sbuf){ 0 };
		sb_add(&b, "error: out of memory\n", 21);
	}
	if (b.oom) {
		k->answering = false;
		client_close(k);
		return;
	}
	k->answer = b.p;
	buf = uv_buf_init(b.p, (unsigned)b.len);
	k->wr.data = k;
	uv_timer_start(&k->timer, on_client_timeout, ANSWER_TIMEOUT_MS, 0);
	if (uv_write(&k->wr, (uv_stream_t *)&k->pipe, &buf, 1, on_written) < 0) {
		k->answering = false;
		client_close(k);
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct client *k = h->data;

	(void)suggested;
	/* One spare byte for the NUL. */
	*buf = uv_buf_init(k->line + k->len,
		(unsigned)(sizeof(k->line) - 1 - k->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct client *k = s->data;
	char *nl;

	(void)buf;
	if (nread == 0) {
		return;
	}
	if (nread < 0) {
		/* A request that ends at EOF without a newline still counts. */
		if (nread == UV_EOF && k->len > 0) {
			uv_read_stop(s);
			client_answer(k);
		} else {
			client_close(k);
		}
		return;
	}
	k->len += (size_t)nread;
	nl = memchr(k->line, '\n', k->len);
	if (nl != NULL) {
		k->len = (size_t)(nl - k->line);
		if (k->len > 0 && k->line[k->len - 1] == '\r') {
			k->len--;
		}
		uv_read_stop(s);
		client_answer(k);
	} else if (k->len == sizeof(k->line) - 1) {
		cz_log(CZ_LOG_DEBUG, "control socket: request too long");
		client_close(k);
	} else {
		uv_timer_again(&k->timer);
	}
}

/* Only our own user (or root) may drive the launcher. */
static bool peer_allowed(struct client *k)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	uv_os_fd_t fd;

	if (uv_fileno((uv_handle_t *)&k->pipe, &fd) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		return false;
	}
	if (cr.uid != geteuid() && cr.uid != 0) {
		cz_log(CZ_LOG_WARN, "control socket: refused pid %d (uid %u)",
			(int)cr.pid, (unsigned)cr.uid);
		return false;
	}
	return true;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct cz_admin *a = server->data;
	struct client *k;

	if (status < 0 || a->closing) {
		return;
	}
	k = calloc(1, sizeof(*k));
	if (k == NULL) {
		/* libuv holds the accepted fd and stops accepting until it is
		 * taken; out of memory, the launcher has bigger problems. */
		cz_log(CZ_LOG_ERROR, "control socket: out of memory");
		return;
	}
	k->a = a;
	a->refs++;
	k->handles = 2;
	uv_pipe_init(server->loop, &k->pipe, 0);
	uv_timer_init(server->loop, &k->timer);
	k->pipe.data = k;
	k->timer.data = k;
	k->next = a->clients;
	a->clients = k;
	if (uv_accept(server, (uv_stream_t *)&k->pipe) < 0 || !peer_allowed(k) ||
	    uv_read_start((uv_stream_t *)&k->pipe, on_alloc, on_read) < 0) {
		client_close(k);
		return;
	}
	uv_timer_start(&k->timer, on_client_timeout, REQUEST_TIMEOUT_MS,
		REQUEST_TIMEOUT_MS);
}

/* --- paths ---------------------------------------------------------------- */

/* $XDG_RUNTIME_DIR if it is an absolute directory of ours we can write. */
static const char *runtime_dir(void)
{
	const char *x = getenv("XDG_RUNTIME_DIR");
	struct stat st;

	if (x == NULL || x[0] != '/' || stat(x, &st) < 0 ||
	    !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    access(x, W_OK | X_OK) < 0) {
		return NULL;
	}
	return x;
}

/* The directory the default sockets live in. */
static int default_dir(char *buf, size_t len)
{
	const char *x = runtime_dir();
	int n = x != NULL ? snprintf(buf, len, "%s/clusterize", x) :
		snprintf(buf, len, "/tmp/clusterize-%u", (unsigned)geteuid());

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int cz_admin_default_path(pid_t pid, char *buf, size_t len)
{
	char dir[SUN_PATH_MAX];
	int n, err = default_dir(dir, sizeof(dir));

	if (err < 0) {
		return err;
	}
	n = snprintf(buf, len, "%s/%d.sock", dir, (int)pid);
	if (n < 0 || (size_t)n >= len || (size_t)n >= SUN_PATH_MAX) {
		return -ENAMETOOLONG;
	}
	return 0;
}

/* Creates `dir` 0700, or accepts it only if it is ours and private: in
 * /tmp anyone could have made it first. */
static int private_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		return -errno;
	}
	if (lstat(dir, &st) < 0) {
		return -errno;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 022) != 0) {
		cz_log(CZ_LOG_ERROR, "%s: not a private directory of uid %u "
			"(mode %03o, owner %u)", dir, (unsigned)geteuid(),
			(unsigned)(st.st_mode & 0777), (unsigned)st.st_uid);
		return -EPERM;
	}
	return 0;
}

static int fill_sun(struct sockaddr_un *sun, const char *path)
{
	size_t n = strlen(path);

	if (n == 0) {
		return -EINVAL;
	}
	if (n >= sizeof(sun->sun_path)) {
		return -ENAMETOOLONG;
	}
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, n + 1);
	return 0;
}

/* A blocking connection to `path`; returns the fd or -errno. */
static int connect_path(const char *path)
{
	struct sockaddr_un sun;
	int fd, err = fill_sun(&sun, path);

	if (err < 0) {
		return err;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno != EINTR) {
			err = -errno;
			close(fd);
			return err;
		}
	}
	return fd;
}

/* Frees `path` of a dead launcher's socket; refuses a live one or a file
 * that is not a socket at all. */
static int clear_stale(const char *path)
{
	struct stat st;
	int fd;

	if (lstat(path, &st) < 0) {
		return errno == ENOENT ? 0 : -errno;
	}
	if (!S_ISSOCK(st.st_mode)) {
		return -EEXIST;
	}
	fd = connect_path(path);
	if (fd >= 0) {
		close(fd);
		return -EADDRINUSE;
	}
	if (fd != -ECONNREFUSED) {
		return fd;
	}
	cz_log(CZ_LOG_DEBUG, "control socket: removing the stale %s", path);
	return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

/* Binds a listening socket at a->path, 0600 from the start. */
static int listen_path(struct cz_admin *a)
{
	struct sockaddr_un sun;
	struct stat st = { 0 };
	mode_t old;
	int fd, err = fill_sun(&sun, a->path);

	if (err < 0) {
		return err;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		return -errno;
	}
	old = umask(077);
	err = bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ? -errno : 0;
	umask(old);
	if (err == 0 && (chmod(a->path, 0600) < 0 || lstat(a->path, &st) < 0)) {
		err = -errno;
		unlink(a->path);
	}
	if (err == 0 && listen(fd, SOMAXCONN) < 0) {
		err = -errno;
		unlink(a->path);
	}
	if (err < 0) {
		close(fd);
		return err;
	}
	a->dev = st.st_dev;
	a->ino = st.st_ino;
	return fd;
}

/* --- the server ----------------------------------------------------------- */

static void on_server_closed(uv_handle_t *h)
{
	admin_unref(h->data);
}

static int admin_paths(struct cz_admin *a, const char *path)
{
	char *slash;
	int err;

	if (path != NULL) {
		if (strlen(path) >= sizeof(a->path)) {
			return -ENAMETOOLONG;
		}
		strcpy(a->path, path);
		return 0;
	}
	err = cz_admin_default_path(getpid(), a->path, sizeof(a->path));
	if (err < 0) {
		return err;
	}
	strcpy(a->dir, a->path);
	slash = strrchr(a->dir, '/');
	*slash = '\0';
	a->own_dir = true;
	return private_dir(a->dir);
}

int cz_admin_create(uv_loop_t *loop, const char *path,
	const struct cz_admin_ops *ops, struct cz_admin **out)
{
	struct cz_admin *a = calloc(1, sizeof(*a));
	int fd, err;

	if (a == NULL) {
		return -ENOMEM;
	}
	a->ops = *ops;
	err = admin_paths(a, path);
	if (err == 0) {
		err = clear_stale(a->path);
	}
	fd = err == 0 ? listen_path(a) : err;
	if (fd < 0) {
		free(a);
		return fd;
	}
	uv_pipe_init(loop, &a->server, 0);
	a->server.data = a;
	a->refs = 1;
	err = uv_pipe_open(&a->server, fd);
	if (err < 0) {
		close(fd); /* not the handle's yet */
	} else {
		err = uv_listen((uv_stream_t *)&a->server, SOMAXCONN,
			on_connection);
	}
	if (err < 0) {
		unlink(a->path);
		uv_close((uv_handle_t *)&a->server, on_server_closed);
		return err;
	}
	*out = a;
	return 0;
}

const char *cz_admin_path(const struct cz_admin *a)
{
	return a->path;
}

/* Unlinks the socket file unless someone else's has replaced it. */
static void remove_files(struct cz_admin *a)
{
	struct stat st;

	if (lstat(a->path, &st) == 0 && st.st_dev == a->dev &&
	    st.st_ino == a->ino) {
		unlink(a->path);
	}
	if (a->own_dir) {
		rmdir(a->dir); /* fails while other launchers' sockets live there */
	}
}

void cz_admin_destroy(struct cz_admin *a)
{
	struct client *k, *next;

	if (a == NULL || a->closing) {
		return;
	}
	a->closing = true;
	remove_files(a);
	for (k = a->clients; k != NULL; k = next) {
		next = k->next;
		/* An answer in flight (e.g. to "stop") still reaches its client. */
		if (!k->answering) {
			client_close(k);
		}
	}
	uv_close((uv_handle_t *)&a->server, on_server_closed);
}

/* --- the client ----------------------------------------------------------- */

static int cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* The socket of the only launcher answering in the default directory. */
static int find_launcher(char *path, size_t len)
{
	char dir[SUN_PATH_MAX], p[PATH_MAX], *found[64];
	size_t n = 0;
	struct dirent *de;
	DIR *d;
	int rc = 1;

	if (default_dir(dir, sizeof(dir)) < 0) {
		fprintf(stderr, "clusterize: no default control directory "
			"(use --control PATH)\n");
		return 1;
	}
	d = opendir(dir);
	while (d != NULL && (de = readdir(d)) != NULL && n < 64) {
		size_t l = strlen(de->d_name);
		int fd;

		if (l < 6 || strcmp(de->d_name + l - 5, ".sock") != 0) {
			continue;
		}
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		fd = connect_path(p);
		if (fd >= 0) {
			close(fd);
			found[n] = strdup(p);
			n += found[n] != NULL;
		}
	}
	if (d != NULL) {
		closedir(d);
	}
	qsort(found, n, sizeof(found[0]), cmp_str);
	if (n == 0) {
		fprintf(stderr, "clusterize: no running launcher found in %s "
			"(use --control PATH)\n", dir);
	} else if (n > 1) {
		fprintf(stderr, "clusterize: several launchers are running:");
		for (size_t i = 0; i < n; i++) {
			fprintf(stderr, "%s %s", i > 0 ? "," : "", found[i]);
		}
		fprintf(stderr, "; choose one with --control PATH\n");
	} else if (strlen(found[0]) < len) {
		strcpy(path, found[0]);
		rc = 0;
	}
	for (size_t i = 0; i < n; i++) {
		free(found[i]);
	}
	return rc;
}

static int format_request(const struct cz_opts *o, char *buf, size_t len)
{
	switch (o->action) {
	case CZ_CLI_STATUS:
		return snprintf(buf, len, o->json ? "status json\n" : "status\n");
	case CZ_CLI_RELOAD:
		return snprintf(buf, len, "reload\n");
	case CZ_CLI_SCALE:
		return snprintf(buf, len, "scale %u\n", o->scale_to);
	case CZ_CLI_STOP:
		return snprintf(buf, len, "stop\n");
	default:
		return -EINVAL;
	}
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w < 0) {
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads until the launcher closes; SO_RCVTIMEO bounds each wait. */
static int recv_all(int fd, struct sbuf *b)
{
	for (;;) {
		ssize_t r;

		sb_grow(b, 4096);
		if (b->oom) {
			return -ENOMEM;
		}
		r = recv(fd, b->p + b->len, b->cap - b->len - 1, 0);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0) {
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		if (r == 0) {
			return 0;
		}
		b->len += (size_t)r;
		b->p[b->len] = '\0';
		if (b->len > ANSWER_MAX) {
			return -EMSGSIZE;
		}
	}
}

/* Sends `req` to the launcher at `path`; the whole answer goes into b. */
static int exchange(const char *path, const char *req, struct sbuf *b)
{
	struct timeval tv = { ANSWER_TIMEOUT_MS / 1000, 0 };
	int err, fd = connect_path(path);

	if (fd < 0) {
		fprintf(stderr, "clusterize: connect %s: %s\n", path,
			strerror(-fd));
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	err = send_all(fd, req, strlen(req));
	if (err == 0) {
		err = recv_all(fd, b);
	}
	close(fd);
	if (err < 0) {
		fprintf(stderr, "clusterize: %s: %s\n", path, err == -ETIMEDOUT ?
			"no answer from the launcher" : strerror(-err));
		return 1;
	}
	return 0;
}

/* Prints the answer's body, or its error line; returns the exit status. */
static int print_answer(const char *path, const char *ans, size_t len)
{
	const char *nl = memchr(ans, '\n', len);
	size_t head = nl != NULL ? (size_t)(nl - ans) : len;
	size_t body = nl != NULL ? len - head - 1 : 0;

	if (head == 2 && memcmp(ans, "ok", 2) == 0) {
		if (body > 0 && (fwrite(nl + 1, 1, body, stdout) != body ||
				 fflush(stdout) != 0)) {
			fprintf(stderr, "clusterize: stdout: %s\n", strerror(errno));
			return 1;
		}
		return 0;
	}
	if (head > 7 && memcmp(ans, "error: ", 7) == 0) {
		fprintf(stderr, "clusterize: %.*s\n", (int)(head - 7), ans + 7);
		return 1;
	}
	fprintf(stderr, "clusterize: %s: %s\n", path, len == 0 ?
		"the launcher closed the connection without answering" :
		"unexpected answer from the launcher");
	return 1;
}

int cz_admin_client(const struct cz_opts *o)
{
	char path[SUN_PATH_MAX], req[64];
	struct sbuf b = { 0 };
	int rc;

	if (format_request(o, req, sizeof(req)) < 0) {
		fprintf(stderr, "clusterize: not a control subcommand\n");
		return 1;
	}
	if (o->control != NULL) {
		if (strlen(o->control) >= sizeof(path)) {
			fprintf(stderr, "clusterize: control socket path too "
				"long: %s\n", o->control);
			return 1;
		}
		strcpy(path, o->control);
	} else if (find_launcher(path, sizeof(path)) != 0) {
		return 1;
	}
	rc = exchange(path, req, &b);
	if (rc == 0) {
		rc = print_answer(path, b.p != NULL ? b.p : "", b.len);
	}
	free(b.p);
	return rc;
}
