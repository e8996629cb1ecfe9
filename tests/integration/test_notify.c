/*
 * sd_notify: with NOTIFY_SOCKET set (abstract "@name" or a path), the
 * launcher says READY=1 only once every initial worker listens, RELOADING=1
 * (with MONOTONIC_USEC) then READY=1 around a SIGHUP roll, STOPPING=1 on
 * SIGTERM, and STATUS= with the worker count, policy and address; nothing
 * else.  The workers never see NOTIFY_SOCKET.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "czt.h"
#include "czt_ops.h"

#define MAX_MSGS 64

TestSuite(notify, .init = czt_setup, .fini = czt_ops_teardown, .timeout = 120);

/* What the service manager got, in order. */
struct notify {
	int fd;
	struct czt_proc *p;	/* the launcher, to note its listening lines */
	int n;
	char msg[MAX_MSGS][256];
	int listening[MAX_MSGS];	/* listening lines logged when msg[i] arrived */
	int next;		/* first message not looked at by wait_msg */
};

static void notify_bind(struct notify *nt, const char *name)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len = strlen(name);

	memset(nt, 0, sizeof(*nt));
	cr_assert_lt(len, sizeof(sun.sun_path));
	memcpy(sun.sun_path, name, len);
	if (name[0] == '@') {
		sun.sun_path[0] = '\0';	/* abstract: the length counts only the name */
	} else {
		len++;
	}
	nt->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(nt->fd, 0, "socket: %s", strerror(errno));
	cr_assert_eq(bind(nt->fd, (struct sockaddr *)&sun,
		(socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)), 0, "bind %s: %s", name,
		strerror(errno));
}

/* Receives one datagram if one comes within ms; false otherwise. */
static bool notify_recv(struct notify *nt, int ms)
{
	struct pollfd pfd = { .fd = nt->fd, .events = POLLIN };

	cr_assert_lt(nt->n, MAX_MSGS, "too many notify messages");
	if (poll(&pfd, 1, ms) <= 0) {
		return false;
	}
	ssize_t r = recv(nt->fd, nt->msg[nt->n], sizeof(nt->msg[0]) - 1, MSG_DONTWAIT);

	if (r < 0) {
		return false;
	}
	nt->msg[nt->n][r] = '\0';
	nt->listening[nt->n] = czt_count(nt->p, CZT_ERR, " listening on ");
	nt->n++;
	return true;
}

/* Whether message text has the line `want` ("READY=1"). */
static bool has_line(const char *text, const char *want)
{
	size_t n = strlen(want);

	for (const char *l = text; l != NULL; l = strchr(l, '\n'), l = l != NULL ? l + 1 : NULL) {
		if (strncmp(l, want, n) == 0 && (l[n] == '\n' || l[n] == '\0')) {
			return true;
		}
	}
	return false;
}

/* Index of the next message (from nt->next on) with line `want`, or -1. */
static int wait_msg(struct notify *nt, const char *want, int ms)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		for (; nt->next < nt->n; nt->next++) {
			if (has_line(nt->msg[nt->next], want)) {
				return nt->next++;
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		long left = czt_ms(ms) - ((t.tv_sec - t0.tv_sec) * 1000L +
			(t.tv_nsec - t0.tv_nsec) / 1000000L);

		if (left <= 0 || !notify_recv(nt, (int)left)) {
			return -1;
		}
	}
}

static unsigned long long mono_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000;
}

static void dump_msgs(const struct notify *nt)
{
	for (int i = 0; i < nt->n; i++) {
		fprintf(stderr, "notify %d (%d listening): %s\n", i, nt->listening[i], nt->msg[i]);
	}
}

/*
 * Two workers that print whether they see NOTIFY_SOCKET; worker 2 waits for
 * <tmp>/gate before it starts its server, so the test controls when the
 * last initial worker listens.
 */
static struct czt_proc *start_gated(const char *notify_name, char *gate, size_t len)
{
	static char script[1024], env[200], ctl[300];

	snprintf(gate, len, "%s/gate", czt_tmpdir());
	snprintf(ctl, sizeof(ctl), "%s/c.sock", czt_tmpdir());
	snprintf(script, sizeof(script),
		"echo \"notify=${NOTIFY_SOCKET-unset}\"; "
		"if [ \"$CLUSTERIZE_WORKER_ID\" = 2 ]; then "
		"while [ ! -e '%s' ]; do sleep 0.01; done; fi; exec %s --style epoll-lt",
		gate, czt_server());
	snprintf(env, sizeof(env), "NOTIFY_SOCKET=%s", notify_name);
	const char *envs[] = { env, NULL };

	return czt_launch(envs, "-w", "2", "--control", ctl, "--", "/bin/sh", "-c", script,
		NULL);
}

/* The launcher has finished whatever it was doing when this returns. */
static void round_trip(void)
{
	struct czt_ops_run r;
	char ctl[300];

	snprintf(ctl, sizeof(ctl), "%s/c.sock", czt_tmpdir());
	cr_assert_eq(czt_ops_client(&r, -1, NULL, "status", "--control", ctl, NULL), 0,
		"status: %s", r.err);
	czt_ops_run_free(&r);
}

static void notify_lifecycle(const char *name)
{
	struct notify nt;
	struct czt_worker w[CZT_MAX_WORKERS];
	char gate[300], status[128];

	notify_bind(&nt, name);
	nt.p = start_gated(name, gate, sizeof(gate));
	cr_assert_eq(czt_wait_listening(nt.p, 1, w, 20000), 1, "worker 1 listens");
	/* Whatever worker 1's listening made the launcher send is sent by now. */
	round_trip();
	while (notify_recv(&nt, 0)) {
	}
	for (int i = 0; i < nt.n; i++) {
		cr_expect(!has_line(nt.msg[i], "READY=1"), "no READY=1 while worker 2 does not "
			"listen yet: '%s'", nt.msg[i]);
	}
	int fd = open(gate, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

	cr_assert_geq(fd, 0, "create %s: %s", gate, strerror(errno));
	close(fd);
	int ready = wait_msg(&nt, "READY=1", 20000);

	cr_assert_geq(ready, 0, "READY=1 arrives once both workers listen");
	cr_expect_eq(nt.listening[ready], 2, "READY=1 came after both listening lines (%d)",
		nt.listening[ready]);
	int n = czt_wait_listening(nt.p, 2, w, 5000);

	snprintf(status, sizeof(status), "STATUS=2 workers, rr, 127.0.0.1:%d", w[0].port);
	nt.next = 0;
	cr_expect_geq(wait_msg(&nt, status, 5000), 0, "'%s' is sent", status);
	cr_expect_eq(czt_wait_line(nt.p, CZT_OUT, "notify=unset", 2, 5000), 2,
		"both workers run without NOTIFY_SOCKET");
	cr_expect_eq(czt_count(nt.p, CZT_OUT, "notify=") , 2, "only those two lines");

	/* A roll: RELOADING=1 with the time it began, then READY=1 when done. */
	nt.next = nt.n;
	unsigned long long before = mono_usec();

	cr_assert_eq(czt_signal(nt.p, SIGHUP), 0);
	int reloading = wait_msg(&nt, "RELOADING=1", 10000);

	cr_assert_geq(reloading, 0, "RELOADING=1 after SIGHUP");
	const char *mono = strstr(nt.msg[reloading], "MONOTONIC_USEC=");
	unsigned long long usec = mono != NULL ? strtoull(mono + 15, NULL, 10) : 0;

	cr_expect(usec >= before && usec <= mono_usec(), "MONOTONIC_USEC=%llu is when the "
		"reload began (after %llu): '%s'", usec, before, nt.msg[reloading]);
	ready = wait_msg(&nt, "READY=1", 20000);
	cr_assert_geq(ready, 0, "READY=1 at the end of the roll");
	cr_expect_geq(nt.listening[ready], n + 2, "READY=1 came after both replacements listen "
		"(%d listening lines)", nt.listening[ready]);

	cr_assert_eq(czt_signal(nt.p, SIGTERM), 0);
	cr_expect_geq(wait_msg(&nt, "STOPPING=1", 10000), 0, "STOPPING=1 after SIGTERM");
	czt_expect_exit(nt.p, CZT_EXITED(0), 20000);
	while (notify_recv(&nt, 0)) {
	}
	/* Everything but STATUS=, in order. */
	const char *want[] = { "READY=1", "RELOADING=1", "READY=1", "STOPPING=1" };
	int k = 0;
	bool ok = true;

	for (int i = 0; i < nt.n; i++) {
		if (strncmp(nt.msg[i], "STATUS=", 7) == 0) {
			continue;
		}
		ok &= k < 4 && has_line(nt.msg[i], want[k]);
		k++;
	}
	if (!ok || k != 4) {
		dump_msgs(&nt);
	}
	cr_expect(ok && k == 4, "the messages are READY, RELOADING, READY, STOPPING (%d)", k);
	close(nt.fd);
}

Test(notify, abstract_socket_lifecycle)
{
	char name[64];

	snprintf(name, sizeof(name), "@czt-notify-%d", (int)getpid());
	notify_lifecycle(name);
}

Test(notify, path_socket_lifecycle)
{
	char name[300];

	snprintf(name, sizeof(name), "%s/notify.sock", czt_tmpdir());
	notify_lifecycle(name);
}
