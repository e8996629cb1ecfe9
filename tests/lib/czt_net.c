/* czt: clients that ask servers for their pid, and port helpers. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "czt.h"

/* Per thread: the load thread has its own. */
static __thread char last_bad[128];

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

const char *czt_last_bad(void)
{
	return last_bad;
}

static void addr_inet(struct czt_addr *a, int type, const char *host, int port)
{
	memset(a, 0, sizeof(*a));
	a->family = strchr(host, ':') != NULL ? AF_INET6 : AF_INET;
	a->type = type;
	a->port = port;
	snprintf(a->host, sizeof(a->host), "%s", host);
}

void czt_addr_tcp(struct czt_addr *a, const char *host, int port)
{
	addr_inet(a, SOCK_STREAM, host, port);
}

void czt_addr_udp(struct czt_addr *a, const char *host, int port)
{
	addr_inet(a, SOCK_DGRAM, host, port);
}

void czt_addr_unix(struct czt_addr *a, const char *path)
{
	memset(a, 0, sizeof(*a));
	a->family = AF_UNIX;
	a->type = SOCK_STREAM;
	snprintf(a->path, sizeof(a->path), "%s", path);
}

void czt_addr_unix_dgram(struct czt_addr *a, const char *path)
{
	czt_addr_unix(a, path);
	a->type = SOCK_DGRAM;
}

static socklen_t to_sockaddr(const struct czt_addr *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_UNIX) {
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;

		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, a->path, sizeof(a->path));
		return sizeof(*sun);
	}
	if (a->family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)a->port);
		cr_assert_eq(inet_pton(AF_INET6, a->host, &sin6->sin6_addr), 1, "bad %s", a->host);
		return sizeof(*sin6);
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)a->port);
	cr_assert_eq(inet_pton(AF_INET, a->host, &sin->sin_addr), 1, "bad %s", a->host);
	return sizeof(*sin);
}

/* Starts a non-blocking connect; the fd, or -errno. */
static int start_connect(const struct czt_addr *a)
{
	struct sockaddr_storage ss;
	socklen_t len = to_sockaddr(a, &ss);
	int fd = socket(a->family, a->type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		return -errno;
	}
	/* A unix datagram client needs a name of its own to get answers: an
	 * address of just the family autobinds a unique abstract one. */
	if (a->family == AF_UNIX && a->type == SOCK_DGRAM) {
		sa_family_t fam = AF_UNIX;

		if (bind(fd, (struct sockaddr *)&fam, sizeof(fam)) < 0) {
			int err = -errno;

			close(fd);
			return err;
		}
	}
	if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int wait_fd(int fd, short events, long deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		long left = deadline - now_ms();

		if (left <= 0) {
			return -ETIMEDOUT;
		}
		int n = poll(&p, 1, (int)left);

		if (n > 0) {
			return 0;
		}
		if (n < 0 && errno != EINTR) {
			return -errno;
		}
	}
}

static int sock_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
	return -err;
}

int czt_connect(const struct czt_addr *a, int ms)
{
	long deadline = now_ms() + czt_ms(ms);
	int fd = start_connect(a);

	if (fd < 0) {
		return fd;
	}
	int err = wait_fd(fd, POLLOUT, deadline);

	if (err == 0) {
		err = sock_error(fd);
	}
	if (err < 0) {
		close(fd);
		return err;
	}
	return fd;
}

/* "<pid>\n" and nothing else: the pid, else -EBADMSG (remembered). */
static pid_t parse_answer(const char *buf, size_t len)
{
	char *end;
	long pid = strtol(buf, &end, 10);

	if (len > 0 && end != buf && pid > 0 && *end == '\n' && (size_t)(end - buf) + 1 == len) {
		return (pid_t)pid;
	}
	snprintf(last_bad, sizeof(last_bad), "%.*s", (int)len, buf);
	return -EBADMSG;
}

pid_t czt_read_pid(int fd, int ms)
{
	long deadline = now_ms() + czt_ms(ms);
	char buf[128];
	size_t len = 0;

	for (;;) {
		int err = wait_fd(fd, POLLIN, deadline);

		if (err < 0) {
			return err;
		}
		ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, MSG_DONTWAIT);

		if (n == 0 || (n > 0 && len + (size_t)n >= sizeof(buf) - 1)) {
			len += n > 0 ? (size_t)n : 0;
			break;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			return len > 0 ? parse_answer(buf, len) : -errno;
		}
		len += n > 0 ? (size_t)n : 0;
	}
	buf[len] = '\0';
	return parse_answer(buf, len);
}

static pid_t ask_udp(const struct czt_addr *a, int ms)
{
	int fd = czt_connect(a, ms);

	if (fd < 0) {
		return fd;
	}
	/* Loopback does not drop, but a shared socket between restarts may: retry once. */
	for (int attempt = 0; attempt < 2; attempt++) {
		char buf[64];

		if (send(fd, "?", 1, 0) < 0) {
			break;
		}
		if (wait_fd(fd, POLLIN, now_ms() + czt_ms(ms) / 2) < 0) {
			continue;
		}
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

		if (n > 0) {
			close(fd);
			return parse_answer(buf, (size_t)n);
		}
	}
	close(fd);
	return -ETIMEDOUT;
}

pid_t czt_ask(const struct czt_addr *a, int ms)
{
	if (a->type == SOCK_DGRAM) {
		return ask_udp(a, ms);
	}
	int fd = czt_connect(a, ms);

	if (fd < 0) {
		return fd;
	}
	pid_t pid = czt_read_pid(fd, ms);

	close(fd);
	return pid;
}

struct slot {
	int fd;
	int index;
	size_t len;
	char buf[64];
};

/* Reads what slot s has; returns true once its answer is complete. */
static bool slot_read(struct slot *s, pid_t *pids)
{
	ssize_t n = recv(s->fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		return false;
	}
	if (n > 0 && s->len + (size_t)n < sizeof(s->buf) - 1) {
		s->len += (size_t)n;
		return false;
	}
	if (n < 0 && s->len == 0) {
		pids[s->index] = -errno;
	} else {
		s->len += n > 0 ? (size_t)n : 0;
		pids[s->index] = parse_answer(s->buf, s->len);
	}
	close(s->fd);
	s->fd = -1;
	return true;
}

static void slot_start(struct slot *s, const struct czt_addr *a, int index, pid_t *pids)
{
	s->index = index;
	s->len = 0;
	s->fd = start_connect(a);
	if (s->fd < 0) {
		pids[index] = s->fd;
	}
}

/*
 * The client loop behind czt_ask_many and the load thread: starts up to n
 * connections, `concurrency` open at once, until the deadline or *stop
 * (then it only finishes the open ones, until *deadline, which the stopper
 * moves).  Never asserts: the load thread runs it.  Returns how many started.
 */
struct ask_ctl {
	_Atomic bool stop;
	_Atomic long deadline;
	_Atomic int answered;
};

static int ask_loop(const struct czt_addr *a, int n, int concurrency, pid_t *pids,
	struct slot *slots, struct pollfd *pfd, struct ask_ctl *ctl)
{
	int next = 0, open = 0;

	for (int i = 0; i < concurrency; i++) {
		slots[i].fd = -1;
	}
	while ((next < n && !ctl->stop) || open > 0) {
		for (int i = 0; i < concurrency && next < n && !ctl->stop; i++) {
			/* A connect that fails at once (refused) frees its slot again. */
			while (slots[i].fd < 0 && next < n) {
				pids[next] = -ETIMEDOUT;
				slot_start(&slots[i], a, next++, pids);
				open += slots[i].fd >= 0;
			}
		}
		if (open == 0) {
			break;
		}
		long left = ctl->deadline - now_ms();

		if (left <= 0) {
			break;
		}
		for (int i = 0; i < concurrency; i++) {
			pfd[i].fd = slots[i].fd;
			pfd[i].events = POLLIN;
		}
		/* Short waits: a stop or a moved deadline is seen soon. */
		if (poll(pfd, (nfds_t)concurrency, left < 50 ? (int)left : 50) < 0 &&
			errno != EINTR) {
			break;
		}
		for (int i = 0; i < concurrency; i++) {
			if (slots[i].fd >= 0 && pfd[i].revents != 0 && slot_read(&slots[i], pids)) {
				open--;
				ctl->answered += pids[slots[i].index] > 0;
			}
		}
	}
	for (int i = 0; i < concurrency; i++) {
		if (slots[i].fd >= 0) {
			close(slots[i].fd);
		}
	}
	return next;
}

int czt_ask_many(const struct czt_addr *a, int n, int concurrency, pid_t *pids, int ms)
{
	struct slot *slots = calloc((size_t)concurrency, sizeof(*slots));
	struct pollfd *pfd = calloc((size_t)concurrency, sizeof(*pfd));
	struct ask_ctl ctl = { .deadline = now_ms() + czt_ms(ms) };
	int answered = 0;

	cr_assert(slots != NULL && pfd != NULL && a->type == SOCK_STREAM);
	for (int i = 0; i < n; i++) {
		pids[i] = -ETIMEDOUT;
	}
	ask_loop(a, n, concurrency, pids, slots, pfd, &ctl);
	for (int i = 0; i < n; i++) {
		answered += pids[i] > 0;
	}
	free(slots);
	free(pfd);
	return answered;
}

struct czt_load {
	struct czt_addr a;
	int concurrency;
	int max;
	pid_t *pids;
	struct slot *slots;
	struct pollfd *pfd;
	struct ask_ctl ctl;
	int started;
	char bad[128];
	pthread_t thread;
};

static void *load_main(void *arg)
{
	struct czt_load *l = arg;

	l->started = ask_loop(&l->a, l->max, l->concurrency, l->pids, l->slots, l->pfd,
		&l->ctl);
	snprintf(l->bad, sizeof(l->bad), "%s", last_bad);
	return NULL;
}

struct czt_load *czt_load_start(const struct czt_addr *a, int concurrency, int max_conns,
	int ms)
{
	struct czt_load *l = calloc(1, sizeof(*l));

	cr_assert(l != NULL && a->type == SOCK_STREAM && concurrency > 0 && max_conns > 0);
	l->a = *a;
	l->concurrency = concurrency;
	l->max = max_conns;
	l->pids = calloc((size_t)max_conns, sizeof(*l->pids));
	l->slots = calloc((size_t)concurrency, sizeof(*l->slots));
	l->pfd = calloc((size_t)concurrency, sizeof(*l->pfd));
	cr_assert(l->pids != NULL && l->slots != NULL && l->pfd != NULL);
	l->ctl.deadline = now_ms() + czt_ms(ms);
	int err = pthread_create(&l->thread, NULL, load_main, l);

	cr_assert_eq(err, 0, "pthread_create: %s", strerror(err));
	return l;
}

int czt_load_answered(const struct czt_load *l)
{
	return l->ctl.answered;
}

struct more_arg {
	const struct czt_load *l;
	int want;
};

static bool load_reached(void *v)
{
	const struct more_arg *m = v;

	return m->l->ctl.answered >= m->want;
}

bool czt_load_wait_more(const struct czt_load *l, int more, int ms)
{
	struct more_arg m = { l, l->ctl.answered + more };

	return czt_wait_until(load_reached, &m, ms);
}

void czt_load_pause(struct czt_load *l)
{
	l->ctl.stop = true;
}

void czt_load_stop(struct czt_load *l, struct czt_load_result *r, int ms)
{
	l->ctl.deadline = now_ms() + czt_ms(ms);
	l->ctl.stop = true;
	pthread_join(l->thread, NULL);
	memset(r, 0, sizeof(*r));
	r->asked = l->started;
	r->first_failed = -1;
	for (int i = 0; i < l->started; i++) {
		if (l->pids[i] > 0) {
			r->answered++;
			continue;
		}
		if (r->failed++ == 0) {
			r->first_failed = i;
			r->first_err = l->pids[i];
			if (l->pids[i] == -EBADMSG) {
				/* The last bad answer the thread saw; "" is a close without one. */
				snprintf(r->first_bad, sizeof(r->first_bad), "answer '%s'", l->bad);
			} else {
				snprintf(r->first_bad, sizeof(r->first_bad), "%s",
					strerror(-l->pids[i]));
			}
		}
	}
	free(l->pids);
	free(l->slots);
	free(l->pfd);
	free(l);
}

int czt_tally(const pid_t *pids, int n, pid_t *uniq, int *counts, int max)
{
	int k = 0;

	for (int i = 0; i < n; i++) {
		int j = 0;

		if (pids[i] <= 0) {
			continue;
		}
		while (j < k && uniq[j] != pids[i]) {
			j++;
		}
		if (j == k) {
			if (k == max) {
				continue;
			}
			uniq[k] = pids[i];
			counts[k++] = 0;
		}
		counts[j]++;
	}
	return k;
}

static int read_all(int fd, char *buf, size_t cap, long deadline)
{
	size_t len = 0;

	for (;;) {
		int err = wait_fd(fd, POLLIN, deadline);

		if (err < 0) {
			return err;
		}
		ssize_t n = recv(fd, buf + len, cap - 1 - len, MSG_DONTWAIT);

		if (n == 0 || (n > 0 && len + (size_t)n >= cap - 1)) {
			len += n > 0 ? (size_t)n : 0;
			break;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			return -errno;
		}
		len += n > 0 ? (size_t)n : 0;
	}
	buf[len] = '\0';
	return (int)len;
}

int czt_http_get(const char *host, int port, const char *path, char *body, size_t len, int ms)
{
	struct czt_addr a;
	char req[256], resp[8192];
	int status;

	czt_addr_tcp(&a, host, port);
	int fd = czt_connect(&a, ms);

	if (fd < 0) {
		return fd;
	}
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
	int got = send(fd, req, (size_t)n, MSG_NOSIGNAL) == n ?
		read_all(fd, resp, sizeof(resp), now_ms() + czt_ms(ms)) : -errno;

	close(fd);
	if (got < 0) {
		return got;
	}
	if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) {
		snprintf(last_bad, sizeof(last_bad), "%.100s", resp);
		return -EBADMSG;
	}
	const char *b = strstr(resp, "\r\n\r\n");

	if (body != NULL && len > 0) {
		snprintf(body, len, "%s", b != NULL ? b + 4 : "");
	}
	return status;
}

static int bound_socket(const char *host, int port, int type, int *out_port)
{
	struct czt_addr a;
	struct sockaddr_storage ss;

	czt_addr_tcp(&a, host, port);
	socklen_t len = to_sockaddr(&a, &ss);
	int fd = socket(a.family, type | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
	cr_assert_eq(bind(fd, (struct sockaddr *)&ss, len), 0, "bind %s:%d: %s", host, port,
		strerror(errno));
	len = sizeof(ss);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	*out_port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port :
		((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

int czt_free_port(int family)
{
	int port;
	int fd = bound_socket(family == AF_INET6 ? "::1" : "127.0.0.1", 0, SOCK_STREAM, &port);

	close(fd);
	return port;
}

int czt_hold_port(const char *host, int *port)
{
	int fd = bound_socket(host, 0, SOCK_STREAM, port);

	cr_assert_eq(listen(fd, 8), 0, "listen: %s", strerror(errno));
	return fd;
}

/* Sockets in LISTEN state on `port` in one /proc/net table. */
static int listeners_in(const char *table, int port)
{
	FILE *f = fopen(table, "re");
	char line[512];
	int n = 0;

	if (f == NULL) {
		return 0;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned lport, state;
		char laddr[64];

		/* "  0: 0100007F:1F90 00000000:0000 0A ..." */
		if (sscanf(line, " %*d: %63[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x", laddr, &lport,
			&state) == 3 && (int)lport == port && state == 0x0A) {
			n++;
		}
	}
	fclose(f);
	return n;
}

int czt_tcp_listeners(int port)
{
	return listeners_in("/proc/net/tcp", port) + listeners_in("/proc/net/tcp6", port);
}
