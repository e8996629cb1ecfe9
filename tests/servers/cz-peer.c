/*
 * cz-peer: plays a peer of the primary for the security tests, speaking
 * the wire protocol itself (shim/proto.h) where the shim would not.
 *
 *   cz-peer junk MS              (a worker) attaches and sends junk on its
 *                                connection and its attach socket for MS ms
 *   cz-peer stranger PORT PID LPID  (not a worker) tries every way in:
 *                                launcher LPID's abstract "clusterize" socket,
 *                                worker PID's copied environment; binds PORT
 *                                and releases keys
 *   cz-peer listen-many PORT N   (a worker) listens N times on PORT through
 *                                the shim, then exits on SIGUSR1
 *   cz-peer grab-shared PORT     (a worker) asks for PORT's listening socket
 *                                itself and shuts it down if it gets it
 *   cz-peer bind-late PORT       (a worker) binds PORT on SIGUSR1
 *   cz-peer attach-flood N MS    (a worker) attaches N connections, holds
 *                                them MS ms
 *   cz-peer connect-unix PATH N  connects to PATH N times (a refused user)
 *   cz-peer fd-abuse CMD...      (a worker) dup2()s onto the attach
 *                                socket's number, marks every fd close-on-
 *                                exec (close_range, or fcntl with
 *                                $CZ_PEER_FCNTL), closes every fd from 3,
 *                                then execs CMD
 *
 * Each prints one result line on stdout; the long-running ones then wait
 * for a signal.  Built against whichever protocol version the tree has,
 * so the tests also run against the primary before issue 12's fixes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

static uint32_t seq;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wait_usr1(void)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigwait(&set, &sig);
}

/* Sends `len` bytes with `fd` attached unless < 0; 0 or -errno. */
static int send_fd(int s, const void *buf, size_t len, int fd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *c;

		mh.msg_control = u.b;
		mh.msg_controllen = sizeof(u.b);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(s, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* One reply within 5 s: 0 (with *rfd, or -1) or -errno. */
static int get_reply(int s, struct cz_msg_reply *r, int *rfd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * 4)];
	} u;
	char buf[CZ_MSG_MAX];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.b, .msg_controllen = sizeof(u.b),
	};
	struct pollfd p = { .fd = s, .events = POLLIN };
	struct cmsghdr *c;
	ssize_t n;

	*rfd = -1;
	if (poll(&p, 1, 5000) <= 0) {
		return -ETIMEDOUT;
	}
	n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);
	if (n <= 0) {
		return n == 0 ? -ECONNRESET : -errno;
	}
	c = CMSG_FIRSTHDR(&mh);
	if (c != NULL && c->cmsg_type == SCM_RIGHTS) {
		memcpy(rfd, CMSG_DATA(c), sizeof(int));
	}
	if (cz_proto_check(buf, (size_t)n) != CZ_MSG_REPLY) {
		return -EPROTO;
	}
	memcpy(r, buf, sizeof(*r));
	return 0;
}

static int request(int s, struct cz_msg_hdr *h, struct cz_msg_reply *r, int *rfd)
{
	int err;

	h->seq = ++seq;
	err = send_fd(s, h, h->len, -1);
	return err < 0 ? err : get_reply(s, r, rfd);
}

static int hello(int s, uint32_t as_worker)
{
	struct cz_msg_hello h;
	struct cz_msg_reply r;
	int rfd, err;

	memset(&h, 0, sizeof(h));
	cz_proto_init(&h.hdr, CZ_MSG_HELLO, 0);
#ifdef CZ_ENV_CONTROL
	h.worker_id = as_worker; /* the old protocol believed it */
#else
	(void)as_worker;
#endif
	h.pid = getpid();
	h.ppid = getppid();
	snprintf(h.exe, sizeof(h.exe), "cz-peer");
	err = request(s, &h.hdr, &r, &rfd);
	return err < 0 ? err : r.err;
}

/* A control connection, as the worker's processes get one. */
static int peer_open(void)
{
#ifdef CZ_ENV_CONTROL_FD
	const char *e = getenv(CZ_ENV_CONTROL_FD);
	struct cz_msg_attach a;
	int sv[2], err;

	if (e == NULL || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		return -EINVAL;
	}
	cz_proto_init(&a.hdr, CZ_MSG_ATTACH, 0);
	err = send_fd(atoi(e), &a, sizeof(a), sv[1]);
	close(sv[1]);
	if (err < 0) {
		close(sv[0]);
		return err;
	}
	return sv[0];
#else
	const char *name = getenv(CZ_ENV_CONTROL);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int s;

	if (name == NULL || strlen(name) + 2 > sizeof(sun.sun_path)) {
		return -EINVAL;
	}
	memcpy(sun.sun_path + 1, name, strlen(name));
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (connect(s, (void *)&sun, (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
		1 + strlen(name))) < 0) {
		close(s);
		return -errno;
	}
	return s;
#endif
}

static int bind_msg(int s, int port, int type, struct cz_msg_reply *r, int *rfd)
{
	struct cz_msg_bind m;
	struct sockaddr_in *in = (void *)&m.addr.ss;

	memset(&m, 0, sizeof(m));
	cz_proto_init(&m.hdr, CZ_MSG_BIND, 0);
	m.family = AF_INET;
	m.type = type;
	m.addr.len = sizeof(*in);
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)port);
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memset(&m.opts, 0xff, sizeof(m.opts));
	m.opts.reuseaddr = 1;
	return request(s, &m.hdr, r, rfd);
}

static int release_msg(int s, uint32_t key)
{
	struct cz_msg_release m;
	struct cz_msg_reply r;
	int rfd, err;

	memset(&m, 0, sizeof(m));
	cz_proto_init(&m.hdr, CZ_MSG_RELEASE, 0);
	m.key = key;
	err = request(s, &m.hdr, &r, &rfd);
	return err < 0 ? err : r.err;
}

/* --- junk ------------------------------------------------------------------ */

static int cmd_junk(int ms)
{
	long long end = now_ms() + ms;
	unsigned long sent = 0, reopened = 0;
	unsigned char buf[512];
	int s = -1;

	srand((unsigned)getpid());
	while (now_ms() < end) {
		size_t len = (size_t)rand() % sizeof(buf);

		for (size_t i = 0; i < len; i++) {
			buf[i] = (unsigned char)rand();
		}
		if (s < 0) {
			s = peer_open();
			reopened++;
			if (s < 0) {
				continue;
			}
		}
		if (send_fd(s, buf, len, -1) < 0) {
			close(s);
			s = -1;
			continue;
		}
		sent++;
#ifdef CZ_ENV_CONTROL_FD
		/* Junk on the attach socket too, with and without an fd. */
		send_fd(atoi(getenv(CZ_ENV_CONTROL_FD)), buf, len,
			(sent & 1) ? STDOUT_FILENO : -1);
#endif
	}
	printf("junk sent %lu reopened %lu\n", sent, reopened);
	fflush(stdout);
	pause();
	return 0;
}

/* --- a stranger ------------------------------------------------------------ */

struct tally {
	int connected, bound, released, attached;
};

/* What a process that connected as worker `as` can do. */
static void abuse(int s, int port, uint32_t as, struct tally *t)
{
	struct cz_msg_reply r;
	int rfd;

	if (hello(s, as) != 0) {
		return;
	}
	if (bind_msg(s, port, SOCK_STREAM, &r, &rfd) == 0 && r.err == 0) {
		t->bound++;
	}
	for (uint32_t key = 1; key <= 8; key++) {
		for (int i = 0; i < 4; i++) {
			t->released += release_msg(s, key) == 0;
		}
	}
}

/*
 * The old way in: the abstract name "clusterize-LPID-...", visible in
 * /proc/net/unix (only the launcher under test's: others may be running).
 */
static void try_abstract(int port, pid_t launcher, struct tally *t)
{
	FILE *f = fopen("/proc/net/unix", "re");
	char line[512], want[64];

	snprintf(want, sizeof(want), " @clusterize-%d-", (int)launcher);
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		char *name = strstr(line, want);
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		size_t n;

		if (name == NULL) {
			continue;
		}
		name += 2;
		n = strcspn(name, "\n ");
		if (n + 2 > sizeof(sun.sun_path)) {
			continue;
		}
		memcpy(sun.sun_path + 1, name, n);
		for (uint32_t as = 1; as <= 2; as++) {
			int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

			if (connect(s, (void *)&sun, (socklen_t)(offsetof(struct sockaddr_un,
				    sun_path) + 1 + n)) == 0) {
				t->connected++;
				abuse(s, port, as, t);
			}
			close(s);
		}
	}
	if (f != NULL) {
		fclose(f);
	}
}

/* The new way in, from a copied environment: the fd is not ours. */
static void try_copied_env(pid_t pid, int port, struct tally *t)
{
#ifdef CZ_ENV_CONTROL_FD
	char path[64], env[16384];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, env, sizeof(env) - 1) : -1;
	if (fd >= 0) {
		close(fd);
	}
	if (n > 0) {
		env[n] = '\0';
	}
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(env + i) + 1) {
		struct cz_msg_attach a;
		int sv[2], no;

		if (sscanf(env + i, CZ_ENV_CONTROL_FD "=%d", &no) != 1 ||
		    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
			continue;
		}
		cz_proto_init(&a.hdr, CZ_MSG_ATTACH, 0);
		if (send_fd(no, &a, sizeof(a), sv[1]) == 0) {
			t->attached++;
			abuse(sv[0], port, 1, t);
		}
		close(sv[0]);
		close(sv[1]);
	}
#else
	(void)pid;
	(void)port;
	(void)t;
#endif
}

static int cmd_stranger(int port, pid_t pid, pid_t launcher)
{
	struct tally t = { 0 };

	try_abstract(port, launcher, &t);
	try_copied_env(pid, port, &t);
	printf("stranger: connected %d attached %d bound %d released %d\n", t.connected,
		t.attached, t.bound, t.released);
	return 0;
}

/* --- through the shim ------------------------------------------------------ */

static int tcp_socket(int port, struct sockaddr_in *in)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	memset(in, 0, sizeof(*in));
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)port);
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	return s;
}

static int cmd_listen_many(int port, int count)
{
	struct sockaddr_in in;
	int ok = 0;

	for (int i = 0; i < count; i++) {
		int s = tcp_socket(port, &in);

		if (bind(s, (void *)&in, sizeof(in)) == 0 && listen(s, 16) == 0) {
			ok++;
		} else {
			fprintf(stderr, "cz-peer: listen %d: %s\n", i, strerror(errno));
		}
	}
	printf("listened %d pid %d\n", ok, (int)getpid());
	fflush(stdout);
	wait_usr1();
	return 0; /* exits without closing them, as a crashing server would */
}

static int cmd_bind_late(int port)
{
	struct sockaddr_in in;
	int s;

	printf("waiting pid %d\n", (int)getpid());
	fflush(stdout);
	wait_usr1();
	s = tcp_socket(port, &in);
	if (bind(s, (void *)&in, sizeof(in)) == 0) {
		printf("bind: ok\n");
	} else {
		printf("bind: %s\n", strerror(errno));
	}
	fflush(stdout);
	pause();
	return 0;
}

/* --- raw requests as a worker ---------------------------------------------- */

static int cmd_grab_shared(int port)
{
	struct cz_msg_listen m;
	struct cz_msg_reply r;
	int s = peer_open(), rfd = -1, err, shut = -1;

	if (s < 0 || hello(s, 1) != 0 || bind_msg(s, port, SOCK_STREAM, &r, &rfd) != 0 ||
	    r.err != 0) {
		printf("grab: no key\n");
		fflush(stdout);
		pause();
	}
	memset(&m, 0, sizeof(m));
	cz_proto_init(&m.hdr, CZ_MSG_LISTEN, 0);
	m.key = r.key;
	m.backlog = 16;
	m.flags = CZ_LISTEN_F_SHARED;
	memset(&m.opts, 0xff, sizeof(m.opts));
	err = request(s, &m.hdr, &r, &rfd);
	if (err == 0 && r.err == 0 && r.mode == CZ_MODE_SHARED && rfd >= 0) {
		/* A raw syscall: no shim between us and the socket. */
		shut = (int)syscall(SYS_shutdown, rfd, SHUT_RDWR);
	}
	printf("grab: err %d mode %u fd %s shutdown %s\n", err < 0 ? err : r.err, r.mode,
		rfd >= 0 ? "yes" : "no", shut == 0 ? "done" : "no");
	fflush(stdout);
	pause();
	return 0;
}

static int cmd_attach_flood(int n, int ms)
{
	int ok = 0, refused = 0;

	for (int i = 0; i < n; i++) {
		int s = peer_open();

		if (s >= 0 && hello(s, 1) == 0) {
			ok++; /* kept open */
		} else {
			refused++;
			if (s >= 0) {
				close(s);
			}
		}
	}
	printf("flood ok %d refused %d\n", ok, refused);
	fflush(stdout);
	for (long long end = now_ms() + ms; now_ms() < end;) {
		poll(NULL, 0, (int)(end - now_ms()));
	}
	printf("flood done\n");
	fflush(stdout);
	pause();
	return 0;
}

static int cmd_connect_unix(const char *path, int n)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int ok = 0;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	for (int i = 0; i < n; i++) {
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		char c;

		if (connect(s, (void *)&sun, sizeof(sun)) == 0) {
			ok++;
			/* Until the launcher closes it: one refusal at a time. */
			while (read(s, &c, 1) > 0) {
			}
		}
		close(s);
	}
	printf("connected %d\n", ok);
	return 0;
}

/* What careless apps do to fds they did not open, before exec'ing. */
static int cmd_fd_abuse(char **cmd)
{
	const char *e = getenv("CLUSTERIZE_CONTROL_FD");
	int no = e != NULL ? atoi(e) : -1;

	if (no >= 3) {
		dup2(STDERR_FILENO, no);
		close(no);
	}
	if (getenv("CZ_PEER_FCNTL") != NULL) {
		for (int fd = 3; fd < 4096; fd++) {
			fcntl(fd, F_SETFD, FD_CLOEXEC);
		}
	} else {
		close_range(3, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */);
	}
	closefrom(3);
	execvp(cmd[0], cmd);
	perror("cz-peer: exec");
	return 127;
}

int main(int argc, char **argv)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3 && strcmp(argv[1], "junk") == 0) {
		return cmd_junk(atoi(argv[2]));
	}
	if (argc == 5 && strcmp(argv[1], "stranger") == 0) {
		return cmd_stranger(atoi(argv[2]), (pid_t)atoi(argv[3]),
			(pid_t)atoi(argv[4]));
	}
	if (argc == 4 && strcmp(argv[1], "listen-many") == 0) {
		return cmd_listen_many(atoi(argv[2]), atoi(argv[3]));
	}
	if (argc == 3 && strcmp(argv[1], "grab-shared") == 0) {
		return cmd_grab_shared(atoi(argv[2]));
	}
	if (argc == 3 && strcmp(argv[1], "bind-late") == 0) {
		return cmd_bind_late(atoi(argv[2]));
	}
	if (argc == 4 && strcmp(argv[1], "attach-flood") == 0) {
		return cmd_attach_flood(atoi(argv[2]), atoi(argv[3]));
	}
	if (argc >= 3 && strcmp(argv[1], "fd-abuse") == 0) {
		return cmd_fd_abuse(argv + 2);
	}
	if (argc == 4 && strcmp(argv[1], "connect-unix") == 0) {
		return cmd_connect_unix(argv[2], atoi(argv[3]));
	}
	fprintf(stderr, "usage: cz-peer junk MS | stranger PORT PID LPID | listen-many PORT N |\n"
		"       grab-shared PORT | bind-late PORT | attach-flood N MS |\n"
		"       connect-unix PATH N | fd-abuse CMD...\n");
	return 2;
}
