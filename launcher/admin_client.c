/*
 * The client behind `clusterize status|reload|scale|stop` (admin.h): finds
 * the launcher's socket (--control, or the only one answering in the
 * default directory), sends one request line, reads the answer until the
 * launcher closes, prints it.  Blocking; it runs before any loop exists.
 */
#include "admin_int.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "json.h"

#define ANSWER_MAX (64u << 20)    /* the client gives up on anything bigger */

static int cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

#define FOUND_MAX 64

struct found {
	size_t n;
	char *path[FOUND_MAX];
};

/* Adds the sockets in `dir` that a launcher answers on. */
static void scan_dir(const char *dir, struct found *f)
{
	char p[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(dir);

	while (d != NULL && (de = readdir(d)) != NULL && f->n < FOUND_MAX) {
		size_t l = strlen(de->d_name);
		int fd;

		if (l < 6 || strcmp(de->d_name + l - 5, ".sock") != 0) {
			continue;
		}
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		fd = cz_admin_connect(p);
		if (fd >= 0) {
			close(fd);
			f->path[f->n] = strdup(p);
			f->n += f->path[f->n] != NULL;
		}
	}
	if (d != NULL) {
		closedir(d);
	}
}

/*
 * Only a directory of ours that no one else can write to is looked in: a
 * socket another user put there is not a launcher of ours.  Checked with
 * lstat, so never through a symlink; in /tmp (sticky) only we can then
 * rename or remove it.
 */
static void scan_private(const char *dir, struct found *f)
{
	struct stat st;

	if (lstat(dir, &st) == 0 && cz_admin_dir_private(&st)) {
		scan_dir(dir, f);
	}
}

/* The default directory, then its DIR.XXXXXX fallbacks (admin.c). */
static void scan_defaults(const char *dir, struct found *f)
{
	char parent[CZ_ADMIN_PATH_MAX], p[PATH_MAX];
	const char *base;
	struct dirent *de;
	size_t blen;
	DIR *d;

	scan_private(dir, f);
	snprintf(parent, sizeof(parent), "%s", dir);
	*strrchr(parent, '/') = '\0';
	base = dir + strlen(parent) + 1;
	blen = strlen(base);
	d = opendir(parent[0] != '\0' ? parent : "/");
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, base, blen) == 0 &&
		    de->d_name[blen] == '.') {
			snprintf(p, sizeof(p), "%s/%s", parent, de->d_name);
			scan_private(p, f);
		}
	}
	if (d != NULL) {
		closedir(d);
	}
}

/* The socket of the only launcher answering in the default directories. */
static int find_launcher(char *path, size_t len)
{
	char dir[CZ_ADMIN_PATH_MAX];
	struct found f = { 0 };
	int rc = 1;

	if (cz_admin_default_dir(dir, sizeof(dir)) < 0) {
		fprintf(stderr, "clusterize: no default control directory "
			"(use --control PATH)\n");
		return 1;
	}
	scan_defaults(dir, &f);
	qsort(f.path, f.n, sizeof(f.path[0]), cmp_str);
	if (f.n == 0) {
		fprintf(stderr, "clusterize: no running launcher found in %s "
			"or %s.* (use --control PATH)\n", dir, dir);
	} else if (f.n > 1) {
		fprintf(stderr, "clusterize: several launchers are running:");
		for (size_t i = 0; i < f.n; i++) {
			fprintf(stderr, "%s %s", i > 0 ? "," : "", f.path[i]);
		}
		fprintf(stderr, "; choose one with --control PATH\n");
	} else if (strlen(f.path[0]) < len) {
		strcpy(path, f.path[0]);
		rc = 0;
	}
	for (size_t i = 0; i < f.n; i++) {
		free(f.path[i]);
	}
	return rc;
}

/* "send ID|all JSON\n", the JSON on one line as the launcher reads it. */
static char *send_request(const struct cz_opts *o)
{
	json_t *msg = json_loads(o->send_json, CZ_JSON_LOAD_FLAGS, NULL);
	char *line = msg != NULL ? cz_json_line(msg, 0) : NULL, *req = NULL;
	char target[16] = "all";
	int n;

	json_decref(msg);
	if (line == NULL) {
		return NULL;
	}
	if (o->send_to != 0) {
		snprintf(target, sizeof(target), "%u", o->send_to);
	}
	n = asprintf(&req, "send %s %s\n", target, line);
	free(line);
	return n < 0 || (size_t)n > CZ_ADMIN_REQUEST_MAX ? (free(req), NULL) : req;
}

/* The request line for the subcommand, malloc'd; NULL if none. */
static char *format_request(const struct cz_opts *o)
{
	const char *req;

	switch (o->action) {
	case CZ_CLI_STATUS:
		req = o->json ? "status json\n" : "status\n";
		break;
	case CZ_CLI_RELOAD:
		req = "reload\n";
		break;
	case CZ_CLI_STOP:
		req = "stop\n";
		break;
	case CZ_CLI_MESSAGES:
		req = o->json ? "messages json\n" : "messages\n";
		break;
	case CZ_CLI_SCALE: {
		char *line = NULL;

		return asprintf(&line, "scale %u\n", o->scale_to) < 0 ? NULL : line;
	}
	case CZ_CLI_SEND:
		return send_request(o);
	default:
		return NULL;
	}
	return strdup(req);
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
static int recv_all(int fd, struct cz_admin_buf *b)
{
	for (;;) {
		ssize_t r;

		cz_admin_buf_grow(b, 4096);
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
static int exchange(const char *path, const char *req, struct cz_admin_buf *b)
{
	struct timeval tv = { CZ_ADMIN_ANSWER_TIMEOUT_MS / 1000, 0 };
	int err, fd = cz_admin_connect(path);

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

/* Writes what came after the answer's first line; false if stdout failed
 * (a reader that went away, say: then there is nobody to follow for). */
static bool pass_on(const char *p, size_t n)
{
	return n == 0 || (fwrite(p, 1, n, stdout) == n && fflush(stdout) == 0);
}

/*
 * `messages`: the answer's first line within the usual time, then every
 * line the launcher writes, as it comes, until it closes.
 */
static int follow(const char *path, const char *req)
{
	struct timeval tv = { CZ_ADMIN_ANSWER_TIMEOUT_MS / 1000, 0 }, none = { 0, 0 };
	char buf[4096];
	int fd = cz_admin_connect(path), err, rc = 1;
	size_t len = 0;
	char *nl = NULL;
	ssize_t r;

	if (fd < 0) {
		fprintf(stderr, "clusterize: connect %s: %s\n", path, strerror(-fd));
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	err = send_all(fd, req, strlen(req));
	while (err == 0 && nl == NULL && len < sizeof(buf)) {
		r = recv(fd, buf + len, sizeof(buf) - len, 0);
		if (r <= 0 && !(r < 0 && errno == EINTR)) {
			err = r == 0 ? 0 : errno == EAGAIN ? -ETIMEDOUT : -errno;
			break;
		}
		len += r > 0 ? (size_t)r : 0;
		nl = memchr(buf, '\n', len);
	}
	if (err < 0 || nl == NULL) {
		fprintf(stderr, "clusterize: %s: %s\n", path, err == -ETIMEDOUT ?
			"no answer from the launcher" : err < 0 ? strerror(-err) :
			"unexpected answer from the launcher");
		close(fd);
		return 1;
	}
	if (print_answer(path, buf, (size_t)(nl - buf) + 1) == 0) {
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
		rc = pass_on(nl + 1, len - (size_t)(nl - buf) - 1) ? -1 : 0;
		while (rc < 0) {
			r = recv(fd, buf, sizeof(buf), 0);
			if (r < 0 && errno == EINTR) {
				continue;
			}
			rc = r <= 0 || !pass_on(buf, (size_t)r) ? 0 : -1;
		}
	}
	close(fd);
	return rc;
}

/* --control, or the only launcher answering in the default directory. */
static int client_path(const struct cz_opts *o, char *path, size_t len)
{
	if (o->control != NULL) {
		if (strlen(o->control) >= len) {
			fprintf(stderr, "clusterize: control socket path too "
				"long: %s\n", o->control);
			return 1;
		}
		strcpy(path, o->control);
		return 0;
	}
	return find_launcher(path, len);
}

int cz_admin_client(const struct cz_opts *o)
{
	char path[CZ_ADMIN_PATH_MAX], *req = format_request(o);
	struct cz_admin_buf b = { 0 };
	int rc;

	if (req == NULL) {
		fprintf(stderr, "clusterize: %s\n", o->action == CZ_CLI_SEND ?
			"send: message too long or out of memory" :
			"not a control subcommand");
		return 1;
	}
	rc = client_path(o, path, sizeof(path));
	if (rc == 0 && o->action == CZ_CLI_MESSAGES) {
		rc = follow(path, req);
	} else if (rc == 0) {
		rc = exchange(path, req, &b);
		if (rc == 0) {
			rc = print_answer(path, b.p != NULL ? b.p : "", b.len);
		}
	}
	free(b.p);
	free(req);
	return rc;
}
