/*
 * The operator's control socket (admin.h), the server side: it runs on the
 * launcher's loop.  One request line per connection, one answer, then
 * close.  The client is admin_client.c; the status answer, admin_fmt.c.
 */
#include "admin_int.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

#define REQUEST_MAX CZ_ADMIN_REQUEST_MAX /* bytes, newline included */
#define REQUEST_TIMEOUT_MS 2000   /* idle, while reading the request */

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
	bool watching;  /* `messages`: kept open, each message written to it */
	bool watch_json;
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
	char path[CZ_ADMIN_PATH_MAX];
	char dir[CZ_ADMIN_PATH_MAX];
};

/* --- the status answer ---------------------------------------------------- */

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
	struct cz_admin_buf *b)
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
	cz_admin_buf_add(b, "ok\n", 3);
	cz_admin_format_status(b, &s, rows, n, json);
	free(rows);
}

/* --- requests ------------------------------------------------------------- */

/* One line on the wire: a message must not break the answer's framing. */
static void sb_error(struct cz_admin_buf *b, const char *msg)
{
	cz_admin_buf_add(b, "error: ", 7);
	for (const char *p = msg; *p != '\0'; p++) {
		char c = (unsigned char)*p < 0x20 ? ' ' : *p;

		cz_admin_buf_add(b, &c, 1);
	}
	cz_admin_buf_add(b, "\n", 1);
}

static void answer_op(struct cz_admin_buf *b, int rc, const char *err,
	const char *op)
{
	char msg[320];

	if (rc == 0) {
		cz_admin_buf_add(b, "ok\n", 3);
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
	struct cz_admin_buf *b)
{
	char err[256] = "";
	char msg[320];
	unsigned n;

	if (strncmp(req, "send ", 5) == 0) {
		cz_admin_answer_send(ops, req + 5, b);
	} else if (strcmp(req, "status") == 0 || strcmp(req, "status json") == 0) {
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
		snprintf(msg, sizeof(msg), "unknown request '%.256s'", req);
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

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* `messages`: stays open; it only ever reads the client's EOF. */
static void start_watching(struct client *k)
{
	uv_timer_stop(&k->timer);
	k->len = 0;
	if (uv_read_start((uv_stream_t *)&k->pipe, on_alloc, on_read) < 0) {
		client_close(k);
	}
}

static void on_written(uv_write_t *wr, int status)
{
	struct client *k = wr->data;

	k->answering = false;
	if (k->watching && status == 0 && !k->a->closing) {
		start_watching(k);
		return;
	}
	client_close(k);
}

static void client_answer(struct client *k)
{
	struct cz_admin_buf b = { 0 };
	uv_buf_t buf;

	k->line[k->len] = '\0';
	k->answering = true;
	/* An op may destroy the server; `k` stays valid (freed only in close
	 * callbacks) and destroy leaves an answering client to finish. */
	if (strcmp(k->line, "messages") == 0 ||
	    strcmp(k->line, "messages json") == 0) {
		k->watching = true;
		k->watch_json = k->line[8] != '\0';
		cz_admin_buf_add(&b, "ok\n", 3);
	} else {
		handle_request(&k->a->ops, k->line, &b);
	}
	if (b.oom) {
		free(b.p);
		b = (struct cz_admin_buf){ 0 };
		cz_admin_buf_add(&b, "error: out of memory\n", 21);
	}
	if (b.oom) {
		k->answering = false;
		client_close(k);
		return;
	}
	k->answer = b.p;
	buf = uv_buf_init(b.p, (unsigned)b.len);
	k->wr.data = k;
	uv_timer_start(&k->timer, on_client_timeout,
		CZ_ADMIN_ANSWER_TIMEOUT_MS, 0);
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
	if (k->watching) {
		/* A watcher has nothing to say: its EOF (or junk) ends it. */
		k->len = 0;
		if (nread < 0) {
			client_close(k);
		}
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
		cz_log_peer(CZ_LOG_PEER_UNKNOWN, CZ_LOG_WARN,
			"control socket: refused pid %d (uid %u)",
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

int cz_admin_default_dir(char *buf, size_t len)
{
	const char *x = runtime_dir();
	int n = x != NULL ? snprintf(buf, len, "%s/clusterize", x) :
		snprintf(buf, len, "/tmp/clusterize-%u", (unsigned)geteuid());

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* DIR/PID.sock, or DIR/PID.ALT.sock for alt >= 2. */
static int sock_path(const char *dir, pid_t pid, unsigned alt, char *buf,
	size_t len)
{
	int n = alt < 2 ? snprintf(buf, len, "%s/%d.sock", dir, (int)pid) :
		snprintf(buf, len, "%s/%d.%u.sock", dir, (int)pid, alt);

	if (n < 0 || (size_t)n >= len || (size_t)n >= CZ_ADMIN_PATH_MAX) {
		return -ENAMETOOLONG;
	}
	return 0;
}

int cz_admin_default_path(pid_t pid, unsigned alt, char *buf, size_t len)
{
	char dir[CZ_ADMIN_PATH_MAX];
	int err = cz_admin_default_dir(dir, sizeof(dir));

	return err < 0 ? err : sock_path(dir, pid, alt, buf, len);
}

bool cz_admin_dir_private(const struct stat *st)
{
	return S_ISDIR(st->st_mode) && st->st_uid == geteuid() &&
	       (st->st_mode & 022) == 0;
}

/* Creates `dir` 0700, or accepts it only if it is ours and private: in
 * /tmp anyone could have made it first.  -EPERM (and *st) if not. */
static int private_dir(const char *dir, struct stat *st)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		return -errno;
	}
	if (lstat(dir, st) < 0) {
		return -errno;
	}
	return cz_admin_dir_private(st) ? 0 : -EPERM;
}

/*
 * The default directory is someone else's (squatted, say): a private one
 * of our own next to it, DIR.XXXXXX, which the subcommands look in too.
 */
static int fallback_dir(struct cz_admin *a, const struct stat *st)
{
	char dir[CZ_ADMIN_PATH_MAX];
	int n = snprintf(dir, sizeof(dir), "%s.XXXXXX", a->dir);

	if (n < 0 || (size_t)n >= sizeof(dir)) {
		return -ENAMETOOLONG;
	}
	if (mkdtemp(dir) == NULL) {
		return -errno;
	}
	if (!S_ISDIR(st->st_mode)) {
		cz_log(CZ_LOG_WARN, "%s is not a directory; using %s", a->dir,
			dir);
	} else {
		cz_log(CZ_LOG_WARN, "%s is not a private directory of uid %u "
			"(owner %u, mode %03o); using %s", a->dir,
			(unsigned)geteuid(), (unsigned)st->st_uid,
			(unsigned)(st->st_mode & 0777), dir);
	}
	strcpy(a->dir, dir);
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

int cz_admin_connect(const char *path)
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
	fd = cz_admin_connect(path);
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

/* Picks the path (and for the default one, makes its directory). */
static int admin_paths(struct cz_admin *a, const char *path)
{
	struct stat st;
	int err;

	if (path != NULL) {
		if (strlen(path) >= sizeof(a->path)) {
			return -ENAMETOOLONG;
		}
		strcpy(a->path, path);
		return 0;
	}
	err = cz_admin_default_dir(a->dir, sizeof(a->dir));
	if (err == 0) {
		err = private_dir(a->dir, &st);
	}
	if (err == -EPERM) {
		err = fallback_dir(a, &st);
	}
	if (err < 0) {
		return err;
	}
	a->own_dir = true;
	return sock_path(a->dir, getpid(), 0, a->path, sizeof(a->path));
}

/*
 * Listens at a->path, freed of a dead launcher's socket first.  The
 * default name is the pid, which a launcher in another pid namespace
 * sharing the directory (two containers' PID 1, say) can have too: while
 * a live socket holds it, the next of PID.2.sock ... PID.8.sock is tried.
 */
static int admin_listen(struct cz_admin *a)
{
	unsigned alt;
	int err = 0;

	for (alt = 1; err == 0; alt++) {
		err = clear_stale(a->path);
		if (err == 0) {
			err = listen_path(a);
			if (err >= 0) {
				return err;
			}
		}
		if (err != -EADDRINUSE || !a->own_dir ||
		    alt == CZ_ADMIN_PATHS_MAX) {
			break;
		}
		cz_log(CZ_LOG_DEBUG, "control socket: %s is another launcher's "
			"with this pid", a->path);
		err = sock_path(a->dir, getpid(), alt + 1, a->path,
			sizeof(a->path));
	}
	return err;
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
	fd = err == 0 ? admin_listen(a) : err;
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

/* --- `messages`: what workers send, to every client watching ------------ */

struct watch_write {
	uv_write_t wr;
	struct client *k;
	char line[];
};

static void on_watch_written(uv_write_t *wr, int status)
{
	struct watch_write *w = (struct watch_write *)wr;

	if (status < 0 && status != UV_ECANCELED) {
		client_close(w->k);
	}
	free(w);
}

/* One line to a watcher; one that does not read is dropped, not waited on. */
static void watch_write(struct client *k, const char *line)
{
	uv_stream_t *st = (uv_stream_t *)&k->pipe;
	size_t n = strlen(line);
	struct watch_write *w;
	uv_buf_t buf;

	if (uv_stream_get_write_queue_size(st) > CZ_ADMIN_WATCH_QUEUE_MAX) {
		cz_log(CZ_LOG_WARN, "control socket: a 'messages' client does "
			"not read: disconnected");
		client_close(k);
		return;
	}
	w = malloc(sizeof(*w) + n);
	if (w == NULL) {
		return;
	}
	memcpy(w->line, line, n);
	w->k = k;
	buf = uv_buf_init(w->line, (unsigned)n);
	if (uv_write(&w->wr, st, &buf, 1, on_watch_written) < 0) {
		free(w);
		client_close(k);
	}
}

void cz_admin_publish(struct cz_admin *a, uint32_t worker_id, int pid,
	const json_t *msg)
{
	char *lines[2] = { NULL, NULL };
	struct client *k, *next;

	if (a == NULL || a->closing) {
		return;
	}
	for (k = a->clients; k != NULL; k = next) {
		next = k->next;
		if (!k->watching || k->answering || k->closing) {
			continue;
		}
		if (lines[k->watch_json] == NULL) {
			lines[k->watch_json] = cz_admin_format_message(worker_id,
				pid, msg, k->watch_json);
		}
		if (lines[k->watch_json] != NULL) {
			watch_write(k, lines[k->watch_json]);
		}
	}
	free(lines[0]);
	free(lines[1]);
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
