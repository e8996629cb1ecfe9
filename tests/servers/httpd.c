/*
 * A minimal epoll HTTP/1.1 server for scripts/bench: answers every request
 * with a fixed body, honours keep-alive and "Connection: close".  An
 * HTTP/1.0 request gets a close-delimited answer, as from an HTTP/1.0
 * server: no Content-Length, the FIN ends the body (so a primary that
 * still holds the connection when the worker closes it delays the answer).
 *
 *   httpd --port P [--addr A] [--reuseport | --handoff] [--procs N]
 *         [--stats-dir D]
 *
 * --procs N forks N processes after the socket is set up (with --reuseport
 * each opens its own SO_REUSEPORT socket: the kernel's own balancing, the
 * baseline clusterize is measured against).  --handoff: the parent accepts
 * and passes each connection round robin to the N processes over unix
 * sockets (SCM_RIGHTS), closing its copy at once: the least work a primary
 * that accepts can do, with no acknowledgement and no event library.  The
 * floor the rr primary's CPU per connection is measured against.
 * --stats-dir D: on SIGTERM each process writes the number of connections
 * it accepted to D/<pid>.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fdpass.h"

#define BUF_SIZE 4096
#define MAX_EVENTS 64

static const char *stats_dir;
static volatile unsigned long accepted;

/* Async-signal-safe: formats with no stdio. */
static void write_stats(int sig)
{
	char path[512], num[24];
	size_t n = 0, d = strlen(stats_dir);
	unsigned long v = accepted;
	char tmp[24];
	int pid = getpid(), fd;
	size_t i = 0;

	(void)sig;
	if (d > sizeof(path) - 24) {
		_exit(0);
	}
	memcpy(path, stats_dir, d);
	path[d++] = '/';
	do {
		tmp[i++] = (char)('0' + pid % 10);
		pid /= 10;
	} while (pid > 0);
	while (i > 0) {
		path[d++] = tmp[--i];
	}
	path[d] = '\0';
	do {
		tmp[i++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	while (i > 0) {
		num[n++] = tmp[--i];
	}
	num[n++] = '\n';
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		(void)!write(fd, num, n);
		close(fd);
	}
	_exit(0);
}

struct conn {
	int fd;
	size_t len;
	char buf[BUF_SIZE];
};

static const char reply[] =
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	"Content-Length: 12\r\n\r\nhello world\n";
static const char reply_close[] =
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	"Content-Length: 12\r\nConnection: close\r\n\r\nhello world\n";
static const char reply_eof[] =
	"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello world\n";

static int open_listener(const char *addr, int port, int reuseport)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		perror("socket");
		exit(1);
	}
	sin.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "httpd: bad address '%s'\n", addr);
		exit(2);
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	}
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		perror("bind");
		exit(1);
	}
	if (listen(fd, 4096) < 0) {
		perror("listen");
		exit(1);
	}
	return fd;
}

static void close_conn(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

static int header_says_close(const char *req, size_t len)
{
	return memmem(req, len, "Connection: close", 17) != NULL ||
	       memmem(req, len, "connection: close", 17) != NULL;
}

static int http10(const char *req, size_t len)
{
	const char *eol = memmem(req, len, "\r\n", 2);

	return eol != NULL && eol - req >= 8 && memcmp(eol - 8, "HTTP/1.0", 8) == 0;
}

/* Reads what arrived and answers every complete request in it. */
static void serve(int ep, struct conn *c)
{
	for (;;) {
		ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
		char *end;

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			close_conn(ep, c);
			return;
		}
		if (n < 0) {
			return;
		}
		c->len += (size_t)n;
		while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) != NULL) {
			size_t req = (size_t)(end - c->buf) + 4;
			int eof = http10(c->buf, req);
			int last = eof || header_says_close(c->buf, req);
			const char *r = eof ? reply_eof : last ? reply_close : reply;
			size_t rl = eof ? sizeof(reply_eof) - 1
				 : last ? sizeof(reply_close) - 1 : sizeof(reply) - 1;

			if (write(c->fd, r, rl) != (ssize_t)rl || last) {
				close_conn(ep, c);
				return;
			}
			memmove(c->buf, c->buf + req, c->len - req);
			c->len -= req;
		}
		if (c->len == sizeof(c->buf)) {
			close_conn(ep, c);
			return;
		}
	}
}

/* Starts serving an accepted connection. */
static void add_conn(int ep, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (c == NULL) {
		close(fd);
		return;
	}
	c->fd = fd;
	accepted++;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev.data.ptr = c;
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static void accept_all(int ep, int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			return;
		}
		add_conn(ep, fd);
	}
}

static void take_all(int ep, int ch)
{
	int fd;

	while ((fd = fdpass_recv(ch, MSG_DONTWAIT)) != -1) {
		if (fd >= 0) {
			add_conn(ep, fd);
		}
	}
}

/* The --handoff parent: accept, pass on, close; nothing else. */
static void hand_off(int lfd, const int *chans, int n)
{
	int next = 0;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN }, evs[1];

	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	for (;;) {
		int fd;

		if (epoll_wait(ep, evs, 1, -1) < 0 && errno != EINTR) {
			exit(1);
		}
		while ((fd = accept4(lfd, NULL, NULL,
			    SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
			if (fdpass_send(chans[next], fd, false) < 0) {
				perror("httpd: sendmsg");
			}
			next = (next + 1) % n;
			close(fd);
		}
	}
}

/* Serves connections accepted on `lfd`, or passed on `lfd` if `chan`. */
static void run(int lfd, int chan)
{
	/* EPOLLEXCLUSIVE, as nginx does: with a listener shared between
	 * processes, wake one of them per connection, not all. */
	struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE,
		.data.ptr = NULL };
	struct epoll_event evs[MAX_EVENTS];
	int ep = epoll_create1(EPOLL_CLOEXEC);

	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	for (;;) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, -1);

		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL && chan) {
				take_all(ep, lfd);
			} else if (evs[i].data.ptr == NULL) {
				accept_all(ep, lfd);
			} else {
				serve(ep, evs[i].data.ptr);
			}
		}
	}
}

static void handoff_main(int lfd, int procs)
{
	int *chans = calloc((size_t)procs, sizeof(int));
	int sv[2];

	for (int i = 0; i < procs; i++) {
		if (chans == NULL ||
		    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
			perror("httpd: socketpair");
			exit(1);
		}
		if (fork() == 0) {
			close(lfd);
			close(sv[0]);
			run(sv[1], 1);
		}
		close(sv[1]);
		chans[i] = sv[0];
	}
	hand_off(lfd, chans, procs);
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1";
	int port = 8080, reuseport = 0, handoff = 0, procs = 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
			port = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--addr") == 0 && i + 1 < argc) {
			addr = argv[++i];
		} else if (strcmp(argv[i], "--reuseport") == 0) {
			reuseport = 1;
		} else if (strcmp(argv[i], "--handoff") == 0) {
			handoff = 1;
		} else if (strcmp(argv[i], "--procs") == 0 && i + 1 < argc) {
			procs = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--stats-dir") == 0 && i + 1 < argc) {
			stats_dir = argv[++i];
		} else {
			fprintf(stderr, "usage: httpd --port P [--addr A] "
				"[--reuseport | --handoff] [--procs N] "
				"[--stats-dir D]\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if (stats_dir != NULL) {
		signal(SIGTERM, write_stats);
	}
	if (handoff && (procs < 1 || reuseport)) {
		fprintf(stderr, "httpd: --handoff needs --procs N >= 1 and no "
			"--reuseport\n");
		return 2;
	}
	if (handoff) {
		handoff_main(open_listener(addr, port, 0), procs);
	}
	if (procs <= 1) {
		run(open_listener(addr, port, reuseport), 0);
	}
	/* With --reuseport each child opens its own socket; without, they
	 * share one (the classic prefork server). */
	int shared = reuseport ? -1 : open_listener(addr, port, 0);
	for (int i = 0; i < procs; i++) {
		if (fork() == 0) {
			run(shared >= 0 ? shared : open_listener(addr, port, 1),
				0);
		}
	}
	while (wait(NULL) > 0) {
	}
	return 0;
}
