/*
 * A load generator for close-delimited HTTP answers, for scripts/bench:
 * keeps C connections busy, each sending one HTTP/1.0 request on a new
 * connection and reading the answer until the server's FIN.  The latency
 * of a request runs from connect() to that end of file, so whatever holds
 * the FIN back (a primary still holding a copy of the connection) counts.
 *
 *   eofload --port P [--addr A] [--conns C] [--duration S] [--rate R]
 *
 * Closed loop by default: each of C connections is followed at once by
 * the next, as fast as the server goes.  --rate R: open loop instead, a
 * new request every 1/R s whatever the answers (at most C at once), each
 * timed from when it was due, so a late start counts too: the latency of
 * a server that is not saturated.
 *
 * wrk cannot do this: it takes the end of file for an error and opens two
 * connections per request.  Prints `key value` lines: requests, errors,
 * seconds, rps, p50_us, p99_us.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define HIST_US 1000000 /* microsecond buckets up to 1 s; the last holds more */

struct slot {
	int fd;
	int sent;          /* the request went out */
	int got;           /* bytes of the answer read so far */
	char head[16];     /* its first bytes: the status line */
	uint64_t start_ns; /* connect() */
};

static struct sockaddr_in target = { .sin_family = AF_INET };
static const char request[] = "GET / HTTP/1.0\r\nHost: bench\r\n\r\n";
static uint32_t *hist;
static unsigned long requests, errors;
static int ep;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Opens the slot's next connection, timed from `due_ns`; edge-triggered,
 * so no EPOLL_CTL_MOD.
 */
static void start(struct slot *s, uint64_t due_ns)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET,
		.data.ptr = s };

	s->sent = 0;
	s->got = 0;
	s->start_ns = due_ns;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		perror("eofload: socket");
		exit(1);
	}
	if (connect(s->fd, (struct sockaddr *)&target, sizeof(target)) < 0 &&
	    errno != EINPROGRESS) {
		perror("eofload: connect");
		exit(1);
	}
	if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
		perror("eofload: epoll_ctl");
		exit(1);
	}
}

static void finish(struct slot *s, int ok)
{
	uint64_t us = (now_ns() - s->start_ns) / 1000;

	close(s->fd);
	s->fd = -1;
	if (!ok) {
		errors++;
		return;
	}
	requests++;
	hist[us < HIST_US ? us : HIST_US]++;
}

/* Returns 1 when the answer is complete (or failed) and the slot closed. */
static int on_event(struct slot *s, uint32_t events)
{
	char buf[4096];
	ssize_t n;

	if ((events & EPOLLOUT) && !s->sent) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err != 0 || send(s->fd, request, sizeof(request) - 1,
				    MSG_NOSIGNAL) != (ssize_t)sizeof(request) - 1) {
			finish(s, 0);
			return 1;
		}
		s->sent = 1;
	}
	while (s->sent) {
		n = read(s->fd, buf, sizeof(buf));
		if (n > 0) {
			if (s->got < (int)sizeof(s->head)) {
				size_t k = sizeof(s->head) - (size_t)s->got;

				memcpy(s->head + s->got, buf, (size_t)n < k ? (size_t)n : k);
			}
			s->got += (int)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			return 0;
		}
		/* The end of file ends the answer; a reset is an error. */
		finish(s, n == 0 && s->got >= 12 &&
			memcmp(s->head, "HTTP/1.", 7) == 0 &&
			memcmp(s->head + 8, " 200", 4) == 0);
		return 1;
	}
	return 0;
}

static unsigned long percentile_us(double p)
{
	unsigned long want = (unsigned long)(p * (double)requests + 0.5), seen = 0;
	unsigned long i;

	if (want == 0) {
		want = 1;
	}
	for (i = 0; i <= HIST_US; i++) {
		seen += hist[i];
		if (seen >= want) {
			return i;
		}
	}
	return HIST_US;
}

/* Open loop: what is due and has a free slot starts. */
struct pacer {
	uint64_t t0, interval_ns, issued;
	struct slot **free;
	int nfree;
};

static void pace(struct pacer *p, uint64_t now)
{
	uint64_t due = (now - p->t0) / p->interval_ns + 1;

	while (p->issued < due && p->nfree > 0) {
		start(p->free[--p->nfree], p->t0 + p->issued * p->interval_ns);
		p->issued++;
	}
}

/* A periodic timerfd in `ep`, so the loop wakes when the next is due. */
static int pace_timer(uint64_t interval_ns)
{
	struct itimerspec its = { 0 };
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);

	its.it_interval.tv_sec = (time_t)(interval_ns / 1000000000u);
	its.it_interval.tv_nsec = (long)(interval_ns % 1000000000u);
	its.it_value = its.it_interval;
	if (tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) < 0) {
		perror("eofload: timerfd");
		exit(1);
	}
	return tfd;
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1";
	int port = 0, conns = 32;
	double duration = 5, rate = 0;
	struct pacer pacer = { 0 };
	struct epoll_event evs[256];
	int tfd = -1;
	struct slot *slots;
	uint64_t t0, end;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
			port = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--addr") == 0 && i + 1 < argc) {
			addr = argv[++i];
		} else if (strcmp(argv[i], "--conns") == 0 && i + 1 < argc) {
			conns = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--duration") == 0 && i + 1 < argc) {
			duration = atof(argv[++i]);
		} else if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc) {
			rate = atof(argv[++i]);
			if (rate <= 0) {
				port = 0;
				break;
			}
		} else {
			port = 0;
			break;
		}
	}
	if (port <= 0 || port > 65535 || conns < 1 || duration <= 0 ||
	    inet_pton(AF_INET, addr, &target.sin_addr) != 1) {
		fprintf(stderr, "usage: eofload --port P [--addr A] [--conns C] "
			"[--duration S] [--rate R]\n");
		return 2;
	}
	target.sin_port = htons((uint16_t)port);
	hist = calloc(HIST_US + 1, sizeof(*hist));
	slots = calloc((size_t)conns, sizeof(*slots));
	pacer.free = calloc((size_t)conns, sizeof(*pacer.free));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (hist == NULL || slots == NULL || pacer.free == NULL || ep < 0) {
		perror("eofload");
		return 1;
	}
	t0 = now_ns();
	end = t0 + (uint64_t)(duration * 1e9);
	if (rate > 0) {
		pacer.t0 = t0;
		pacer.interval_ns = (uint64_t)(1e9 / rate);
		pacer.interval_ns += pacer.interval_ns == 0;
		for (int i = 0; i < conns; i++) {
			slots[i].fd = -1;
			pacer.free[pacer.nfree++] = &slots[i];
		}
		tfd = pace_timer(pacer.interval_ns);
		pace(&pacer, t0);
	} else {
		for (int i = 0; i < conns; i++) {
			start(&slots[i], now_ns());
		}
	}
	while (now_ns() < end) {
		int n = epoll_wait(ep, evs, 256, 100);
		uint64_t ticks;

		for (int i = 0; i < n; i++) {
			struct slot *s = evs[i].data.ptr;

			if (s == NULL) {
				(void)!read(tfd, &ticks, sizeof(ticks));
			} else if (s->fd >= 0 && on_event(s, evs[i].events) &&
				   now_ns() < end) {
				if (rate > 0) {
					pacer.free[pacer.nfree++] = s;
				} else {
					start(s, now_ns());
				}
			}
		}
		if (rate > 0 && now_ns() < end) {
			pace(&pacer, now_ns());
		}
	}
	printf("requests %lu\nerrors %lu\nseconds %.3f\nrps %.1f\n"
	       "p50_us %lu\np99_us %lu\n", requests, errors,
	       (double)(now_ns() - t0) / 1e9,
	       (double)requests * 1e9 / (double)(now_ns() - t0),
	       percentile_us(0.50), percentile_us(0.99));
	return 0;
}
