/* HTTP clients for the tests: see czt_http.h. */
#include "czt_http.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "czt.h"

static _Thread_local char last_bad[160];
static char shared_bad[160];
static pthread_mutex_t bad_mu = PTHREAD_MUTEX_INITIALIZER;

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

__attribute__((format(printf, 1, 2)))
static void bad(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_bad, sizeof(last_bad), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&bad_mu);
	snprintf(shared_bad, sizeof(shared_bad), "%s", last_bad);
	pthread_mutex_unlock(&bad_mu);
}

const char *czt_http_last_bad(void)
{
	return last_bad[0] != '\0' ? last_bad : shared_bad;
}

/* 0 once fd is ready for `events`, -ETIMEDOUT at the deadline. */
static int wait_for(int fd, short events, long deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		long left = deadline - now_ms();
		int n;

		if (left <= 0) {
			return -ETIMEDOUT;
		}
		n = poll(&p, 1, (int)left);
		if (n > 0) {
			return 0;
		}
		if (n < 0 && errno != EINTR) {
			return -errno;
		}
	}
}

int czt_http_connect(int port, const char *src, int ms)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	long deadline = now_ms() + czt_ms(ms);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), err;
	socklen_t len = sizeof(err);

	if (fd < 0) {
		return -errno;
	}
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (src != NULL) {
		struct sockaddr_in from = { .sin_family = AF_INET };

		/* The test process is not under the shim: a real bind. */
		if (inet_pton(AF_INET, src, &from.sin_addr) != 1 ||
		    bind(fd, (struct sockaddr *)&from, sizeof(from)) < 0) {
			err = errno != 0 ? -errno : -EINVAL;
			close(fd);
			return err;
		}
	}
	if (connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0 && errno != EINPROGRESS) {
		err = -errno;
		close(fd);
		return err;
	}
	err = wait_for(fd, POLLOUT, deadline);
	if (err == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
		err = -err;
	}
	if (err < 0) {
		close(fd);
		return err;
	}
	return fd;
}

static int send_all(int fd, const char *buf, size_t len, long deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			int err = wait_for(fd, POLLOUT, deadline);

			if (err < 0) {
				return err;
			}
			continue;
		}
		if (n < 0) {
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Reads one answer: the headers, then Content-Length bytes (or, without
 * it, to EOF).  Returns the bytes in buf (NUL-terminated) or -errno;
 * -EPIPE for an EOF before the answer was complete.
 */
static int read_answer(int fd, char *buf, size_t cap, long deadline)
{
	size_t len = 0, want = 0;
	char *body = NULL;

	for (;;) {
		ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			int err = wait_for(fd, POLLIN, deadline);

			if (err < 0) {
				return err;
			}
			continue;
		}
		if (n < 0) {
			return -errno;
		}
		len += (size_t)n;
		buf[len] = '\0';
		if (body == NULL && (body = strstr(buf, "\r\n\r\n")) != NULL) {
			const char *cl = strcasestr(buf, "\r\nContent-Length:");

			body += 4;
			want = cl != NULL && cl < body ?
				(size_t)(body - buf) + strtoul(cl + 17, NULL, 10) : 0;
		}
		if (body != NULL && want > 0 && len >= want) {
			return (int)len;
		}
		if (n == 0) {
			return body != NULL && want == 0 ? (int)len : -EPIPE;
		}
		if (len + 1 >= cap) {
			return -EMSGSIZE;
		}
	}
}

pid_t czt_http_request(int fd, bool keep, int ms)
{
	static const char keep_req[] =
		"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n";
	static const char close_req[] =
		"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
	long deadline = now_ms() + czt_ms(ms);
	const char *req = keep ? keep_req : close_req;
	char buf[2048], *body;
	int n, status;
	long pid;

	last_bad[0] = '\0';
	n = send_all(fd, req, strlen(req), deadline);
	if (n == 0) {
		n = read_answer(fd, buf, sizeof(buf), deadline);
	}
	if (n < 0) {
		bad("%s", strerror(-n));
		return n;
	}
	body = strstr(buf, "\r\n\r\n");
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || status != 200 || body == NULL ||
	    (pid = strtol(body + 4, NULL, 10)) <= 0) {
		bad("answer '%.120s'", buf);
		return -EBADMSG;
	}
	return (pid_t)pid;
}

pid_t czt_http_once(int port, const char *src, int ms)
{
	int fd = czt_http_connect(port, src, ms);
	pid_t pid;

	if (fd < 0) {
		bad("connect: %s", strerror(-fd));
		return fd;
	}
	pid = czt_http_request(fd, false, ms);
	close(fd);
	return pid;
}

pid_t czt_http_hold(int port, int *fd, int ms)
{
	pid_t pid;

	*fd = czt_http_connect(port, NULL, ms);
	if (*fd < 0) {
		pid = *fd;
		*fd = -1;
		return pid;
	}
	pid = czt_http_request(*fd, true, ms);
	if (pid < 0) {
		close(*fd);
		*fd = -1;
	}
	return pid;
}

/* --- the load -------------------------------------------------------------- */

#define LOAD_REQ_MS 20000
#define MAX_THREADS 64

struct czt_http_load {
	int port, nthreads, per_conn;
	pthread_t threads[MAX_THREADS];
	atomic_bool stop;
	atomic_int requests, ok, failed;
	char first_bad[192];
	pthread_mutex_t mu;
};

static void load_failed(struct czt_http_load *l, int i)
{
	if (atomic_fetch_add(&l->failed, 1) == 0) {
		pthread_mutex_lock(&l->mu);
		snprintf(l->first_bad, sizeof(l->first_bad), "request %d: %s", i,
			czt_http_last_bad());
		pthread_mutex_unlock(&l->mu);
	}
}

static void *load_main(void *arg)
{
	struct czt_http_load *l = arg;

	while (!atomic_load(&l->stop)) {
		int fd = czt_http_connect(l->port, NULL, LOAD_REQ_MS);

		if (fd < 0) {
			bad("connect: %s", strerror(-fd));
			load_failed(l, atomic_fetch_add(&l->requests, 1));
			continue;
		}
		for (int k = 0; k < l->per_conn; k++) {
			/* Stopped: this connection's last request asks to close. */
			bool last = k + 1 == l->per_conn || atomic_load(&l->stop);
			int i = atomic_fetch_add(&l->requests, 1);

			if (czt_http_request(fd, !last, LOAD_REQ_MS) > 0) {
				atomic_fetch_add(&l->ok, 1);
			} else {
				load_failed(l, i);
				break;
			}
			if (last) {
				break;
			}
		}
		close(fd);
	}
	return NULL;
}

struct czt_http_load *czt_http_load_start(int port, int threads, int per_conn)
{
	struct czt_http_load *l = calloc(1, sizeof(*l));

	cr_assert(l != NULL && threads > 0 && threads <= MAX_THREADS && per_conn > 0);
	l->port = port;
	l->nthreads = threads;
	l->per_conn = per_conn;
	pthread_mutex_init(&l->mu, NULL);
	for (int i = 0; i < threads; i++) {
		int err = pthread_create(&l->threads[i], NULL, load_main, l);

		cr_assert_eq(err, 0, "pthread_create: %s", strerror(err));
	}
	return l;
}

int czt_http_load_ok(const struct czt_http_load *l)
{
	return atomic_load(&l->ok);
}

struct more {
	const struct czt_http_load *l;
	int want;
};

static bool reached(void *arg)
{
	const struct more *m = arg;

	return atomic_load(&m->l->ok) >= m->want;
}

bool czt_http_load_wait_more(const struct czt_http_load *l, int more, int ms)
{
	struct more m = { l, atomic_load(&l->ok) + more };

	return czt_wait_until(reached, &m, ms);
}

void czt_http_load_stop(struct czt_http_load *l, struct czt_http_load_result *r)
{
	atomic_store(&l->stop, true);
	for (int i = 0; i < l->nthreads; i++) {
		pthread_join(l->threads[i], NULL);
	}
	memset(r, 0, sizeof(*r));
	r->requests = atomic_load(&l->requests);
	r->ok = atomic_load(&l->ok);
	r->failed = atomic_load(&l->failed);
	snprintf(r->first_bad, sizeof(r->first_bad), "%s", l->first_bad);
	pthread_mutex_destroy(&l->mu);
	free(l);
}
