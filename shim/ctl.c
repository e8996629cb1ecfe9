#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fdtab.h"
#include "log.h"
#include "syms.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int enabled;
static int conn_fd = -1;
static pid_t conn_pid;
static uint32_t seq;
static uint32_t worker_id;
static uint32_t flags;
static int high_fd = 900;
static struct sockaddr_un ctl_addr;
static socklen_t ctl_addrlen;
static char exe[256];

/* The record that marks the shim's own fds in the fd table. */
static struct cz_fdrec internal_rec = { .state = CZ_FD_INTERNAL };

int cz_ctl_enabled(void)
{
	return enabled;
}

int cz_ctl_high_fd(void)
{
	return high_fd;
}

/* High enough to stay out of the app's way, low enough to stay cheap. */
static void pick_high_fd(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) {
		return;
	}
	if (rl.rlim_cur > 2048) {
		high_fd = 2000;
	} else if (rl.rlim_cur > 64) {
		high_fd = (int)rl.rlim_cur - 16;
	} else {
		high_fd = (int)rl.rlim_cur / 2;
	}
}

/* Moves `fd` to a free high number (CLOEXEC) and marks it internal. */
static int install_high(int fd)
{
	int hi = real_fcntl(fd, F_DUPFD_CLOEXEC, (void *)(long)high_fd);

	if (hi < 0) {
		/* No room up there: keep the low fd (still CLOEXEC). */
		hi = fd;
	} else {
		real_close(fd);
	}
	cz_fdtab_put(cz_fdtab_set(hi, &internal_rec), NULL);
	return hi;
}

int cz_ctl_stash(int fd)
{
	return install_high(fd);
}

static void drop_conn(void)
{
	if (conn_fd >= 0) {
		cz_fdtab_put(cz_fdtab_set(conn_fd, NULL), NULL);
		real_close(conn_fd);
		conn_fd = -1;
	}
}

static int send_msg(int fd, const void *buf, size_t len)
{
	ssize_t n;

	do {
		n = send(fd, buf, len, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		return -errno;
	}
	return n == (ssize_t)len ? 0 : -EPROTO;
}

/* Closes every fd carried by `msg` except the first, returned. */
static int take_fds(struct msghdr *msg)
{
	struct cmsghdr *c;
	int first = -1;

	for (c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
		int *fds = (int *)CMSG_DATA(c);
		size_t i, n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
			continue;
		}
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			if (first < 0) {
				first = fds[i];
			} else {
				real_close(fds[i]);
			}
		}
	}
	return first;
}

ssize_t cz_ctl_recv(int fd, void *buf, size_t len, int rflags, int *fd_out,
	bool *ctrunc)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} cbuf;
	struct iovec iov = { buf, len };
	struct msghdr msg = { 0 };
	ssize_t n;

	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf.buf;
	msg.msg_controllen = sizeof(cbuf.buf);
	n = recvmsg(fd, &msg, rflags);
	if (n < 0) {
		*fd_out = -1;
		return -errno;
	}
	*fd_out = take_fds(&msg);
	if (ctrunc != NULL) {
		*ctrunc = (msg.msg_flags & MSG_CTRUNC) != 0;
	}
	return n;
}

/* Receives the reply to `want`; returns 0 or -errno. */
static int recv_reply(int fd, uint32_t want, struct cz_msg_reply *rep,
	int *fd_out)
{
	union {
		struct cz_msg_reply r;
		unsigned char raw[CZ_MSG_MAX];
	} in;

	for (;;) {
		int got;
		ssize_t n = cz_ctl_recv(fd, &in, sizeof(in), MSG_CMSG_CLOEXEC, &got,
			NULL);

		if (n == -EINTR) {
			continue;
		}
		if (n <= 0) {
			return n == 0 ? -ECONNRESET : (int)n;
		}
		if (cz_proto_check(&in, (size_t)n) != CZ_MSG_REPLY ||
		    in.r.hdr.seq != want) {
			if (got >= 0) {
				real_close(got);
			}
			cz_log_debug("control: dropped a stray message");
			continue;
		}
		*rep = in.r;
		if (fd_out != NULL) {
			*fd_out = got;
		} else if (got >= 0) {
			real_close(got);
		}
		return 0;
	}
}

static int connect_locked(void)
{
	struct cz_msg_hello h;
	struct cz_msg_reply rep;
	int fd, r;

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	r = real_connect(fd, (struct sockaddr *)&ctl_addr, ctl_addrlen);
	if (r < 0) {
		real_close(fd);
		return r;
	}
	fd = install_high(fd);
	memset(&h, 0, sizeof(h));
	cz_proto_init(&h.hdr, CZ_MSG_HELLO, ++seq);
	h.worker_id = worker_id;
	h.pid = (int32_t)getpid();
	h.ppid = (int32_t)getppid();
	h.flags = flags;
	memcpy(h.exe, exe, sizeof(h.exe));
	r = send_msg(fd, &h, sizeof(h));
	if (r == 0) {
		r = recv_reply(fd, h.hdr.seq, &rep, NULL);
	}
	if (r == 0 && rep.err < 0) {
		r = rep.err;
	}
	conn_fd = fd;
	conn_pid = h.pid;
	if (r < 0) {
		drop_conn();
	}
	return r;
}

static int parse_env(void)
{
	const char *name = getenv(CZ_ENV_CONTROL);
	const char *id = getenv(CZ_ENV_WORKER_ID);
	size_t len;
	char *end;
	long n;

	if (name == NULL || name[0] == '\0') {
		return 1;
	}
	if (id == NULL) {
		cz_log_warn("%s is set but %s is not: not managing sockets",
			CZ_ENV_CONTROL, CZ_ENV_WORKER_ID);
		return -EINVAL;
	}
	n = strtol(id, &end, 10);
	len = strlen(name);
	if (*end != '\0' || n <= 0 || len + 1 > sizeof(ctl_addr.sun_path)) {
		cz_log_warn("bad %s or %s: not managing sockets",
			CZ_ENV_CONTROL, CZ_ENV_WORKER_ID);
		return -EINVAL;
	}
	worker_id = (uint32_t)n;
	ctl_addr.sun_family = AF_UNIX;
	memcpy(ctl_addr.sun_path + 1, name, len);
	ctl_addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
	return 0;
}

int cz_ctl_init(uint32_t hello_flags)
{
	ssize_t n;
	int r = parse_env();

	if (r != 0) {
		return r;
	}
	flags = hello_flags;
	pick_high_fd();
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	pthread_mutex_lock(&mu);
	r = connect_locked();
	pthread_mutex_unlock(&mu);
	if (r < 0) {
		cz_log_warn("cannot reach the primary at @%s: %s: not managing sockets",
			ctl_addr.sun_path + 1, strerror(-r));
		return r;
	}
	enabled = 1;
	cz_log_debug("worker %u connected to the primary (fd %d)", worker_id, conn_fd);
	return 0;
}

static int request_locked(struct cz_msg_hdr *req, struct cz_msg_reply *rep,
	int *fd_out)
{
	int r;

	if (conn_fd >= 0 && conn_pid != getpid()) {
		/* A child made without fork handlers (_Fork, clone). */
		drop_conn();
	}
	if (conn_fd < 0 && (r = connect_locked()) < 0) {
		return r;
	}
	req->seq = ++seq;
	r = send_msg(conn_fd, req, req->len);
	if (r == 0) {
		r = recv_reply(conn_fd, req->seq, rep, fd_out);
	}
	return r;
}

int cz_ctl_request(struct cz_msg_hdr *req, struct cz_msg_reply *rep,
	int *fd_out)
{
	sigset_t all, old;
	int cancel, r, tries;

	if (fd_out != NULL) {
		*fd_out = -1;
	}
	if (!enabled) {
		return -ENOTCONN;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	pthread_mutex_lock(&mu);
	for (tries = 0; tries < 2; tries++) {
		r = request_locked(req, rep, fd_out);
		if (r != -ECONNRESET && r != -EPIPE && r != -EBADF &&
		    r != -ENOTCONN && r != -ENOTSOCK) {
			break;
		}
		/* The connection broke (or the app closed it under us). */
		drop_conn();
	}
	pthread_mutex_unlock(&mu);
	pthread_setcancelstate(cancel, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

void cz_ctl_move_away(int fd)
{
	sigset_t all, old;
	int hi;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_mutex_lock(&mu);
	hi = real_fcntl(fd, F_DUPFD_CLOEXEC, (void *)(long)high_fd);
	cz_fdtab_put(cz_fdtab_set(fd, NULL), NULL);
	if (hi >= 0) {
		cz_fdtab_put(cz_fdtab_set(hi, &internal_rec), NULL);
	}
	/* The app's dup2 will close `fd` for us. */
	if (fd == conn_fd) {
		conn_fd = hi;
	}
	pthread_mutex_unlock(&mu);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void cz_ctl_atfork_prepare(void)
{
	pthread_mutex_lock(&mu);
}

void cz_ctl_atfork_parent(void)
{
	pthread_mutex_unlock(&mu);
}

void cz_ctl_atfork_child(void)
{
	pthread_mutex_init(&mu, NULL);
	/* Replies on the parent's connection are the parent's. */
	if (conn_fd >= 0) {
		cz_fdtab_set(conn_fd, NULL);
		real_close(conn_fd);
		conn_fd = -1;
	}
}
