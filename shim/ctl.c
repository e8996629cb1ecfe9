#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fdtab.h"
#include "held.h"
#include "log.h"
#include "syms.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int enabled;
static int root_fd = -1;   /* the attach socket: inherited, not CLOEXEC */
static char *root_env;     /* the digits of $CLUSTERIZE_CONTROL_FD */
static int conn_fd = -1;   /* this process's control connection */
static pid_t conn_pid;
static uint32_t seq;
static uint32_t worker_id; /* for messages only */
static uint32_t flags;
static int high_fd = 900;
static int timeout_ms = CZ_REQUEST_TIMEOUT_MS;
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

static void pick_high_fd(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		high_fd = cz_proto_high_fd(rl.rlim_cur == RLIM_INFINITY ? 0 :
			(unsigned long long)rl.rlim_cur);
	}
}

static void mark_internal(int fd)
{
	cz_fdtab_put(cz_fdtab_set(fd, &internal_rec), NULL);
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
	mark_internal(hi);
	return hi;
}

int cz_ctl_stash(int fd)
{
	return install_high(fd);
}

/*
 * Stops using the connection.  A child's copy of its parent's connection
 * stays open (`keep`), marked internal, until the child exits or execs:
 * the primary releases what the parent acquired only once no process that
 * may hold it is left.
 */
static void drop_conn(bool keep)
{
	if (conn_fd >= 0 && !keep) {
		cz_fdtab_put(cz_fdtab_set(conn_fd, NULL), NULL);
		real_close(conn_fd);
	}
	conn_fd = -1;
}

/* --- bounded waits ------------------------------------------------------- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until `fd` has `ev`, or the deadline: 0, -ETIMEDOUT or -errno. */
static int wait_io(int fd, short ev, long long deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = ev };
		long long left = deadline - now_ms();
		int n;

		if (left <= 0) {
			return -ETIMEDOUT;
		}
		n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (n > 0) {
			return (p.revents & POLLNVAL) ? -EBADF : 0;
		}
		if (n < 0 && errno != EINTR) {
			return -errno;
		}
	}
}

/* Sends one message (with `pass` attached unless < 0) before the deadline. */
static int send_msg(int fd, const void *buf, size_t len, int pass,
	long long deadline)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct iovec iov = { (void *)buf, len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;
	int r;

	if (pass >= 0) {
		struct cmsghdr *c;

		msg.msg_control = cbuf.buf;
		msg.msg_controllen = sizeof(cbuf.buf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pass, sizeof(int));
	}
	for (;;) {
		n = real_sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0) {
			return n == (ssize_t)len ? 0 : -EPROTO;
		}
		if (n != -EAGAIN && n != -EINTR) {
			return (int)n;
		}
		if ((r = wait_io(fd, POLLOUT, deadline)) < 0) {
			return r;
		}
	}
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

/* Receives the reply to `want` before the deadline; 0 or -errno. */
static int recv_reply(int fd, uint32_t want, struct cz_msg_reply *rep,
	int *fd_out, long long deadline)
{
	union {
		struct cz_msg_reply r;
		unsigned char raw[CZ_MSG_MAX];
	} in;

	for (;;) {
		int got, r;
		ssize_t n = cz_ctl_recv(fd, &in, sizeof(in),
			MSG_CMSG_CLOEXEC | MSG_DONTWAIT, &got, NULL);

		if (n == -EAGAIN || n == -EINTR) {
			if ((r = wait_io(fd, POLLIN, deadline)) < 0) {
				return r;
			}
			continue;
		}
		if (n <= 0) {
			return n == 0 ? -ECONNRESET : (int)n;
		}
		if (cz_proto_check(&in, (size_t)n) != CZ_MSG_REPLY ||
		    in.r.hdr.seq != want) {
			/* A late reply to a request that timed out, say. */
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

/* --- attaching ------------------------------------------------------------- */

static int hello_locked(long long deadline)
{
	struct cz_msg_hello h;
	struct cz_msg_reply rep;
	int r, page = -1;

	memset(&h, 0, sizeof(h));
	cz_proto_init(&h.hdr, CZ_MSG_HELLO, ++seq);
	h.pid = (int32_t)getpid();
	h.ppid = (int32_t)getppid();
	h.flags = flags;
	memcpy(h.exe, exe, sizeof(h.exe));
	r = send_msg(conn_fd, &h, sizeof(h), -1, deadline);
	if (r == 0) {
		r = recv_reply(conn_fd, h.hdr.seq, &rep, &page, deadline);
	}
	if (page >= 0 && r == 0 && rep.err == 0) {
		cz_held_attach(page);
	} else if (page >= 0) {
		real_close(page);
	}
	return r == 0 && rep.err < 0 ? rep.err : r;
}

/*
 * Makes this process's control connection: a socketpair whose other end
 * goes to the primary over the attach socket; then HELLO.
 */
static int attach_locked(long long deadline)
{
	struct cz_msg_attach a;
	int sv[2], r;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		return -errno;
	}
	cz_proto_init(&a.hdr, CZ_MSG_ATTACH, 0);
	r = send_msg(root_fd, &a, sizeof(a), sv[1], deadline);
	real_close(sv[1]);
	if (r < 0) {
		real_close(sv[0]);
		/* The launcher closed its end: the worker is gone for it. */
		return r == -ETIMEDOUT ? r : -ECONNREFUSED;
	}
	conn_fd = install_high(sv[0]);
	conn_pid = getpid();
	r = hello_locked(deadline);
	if (r < 0) {
		drop_conn(false);
	}
	return r;
}

/* --- the environment ------------------------------------------------------- */

/* Whether `fd` can be the attach socket: a unix SOCK_SEQPACKET socket. */
static bool attach_socket_ok(int fd)
{
	struct stat st;
	int domain = 0, type = 0;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
	       cz_getsockopt_int(fd, SOL_SOCKET, SO_DOMAIN, &domain) == 0 &&
	       cz_getsockopt_int(fd, SOL_SOCKET, SO_TYPE, &type) == 0 &&
	       domain == AF_UNIX && type == SOCK_SEQPACKET;
}

static int parse_env(void)
{
	const char *id = getenv(CZ_ENV_WORKER_ID);
	const char *t = getenv("CLUSTERIZE_REQUEST_TIMEOUT_MS");
	char *end;
	long n;

	root_env = getenv(CZ_ENV_CONTROL_FD);
	if (root_env == NULL || root_env[0] == '\0') {
		return 1;
	}
	errno = 0;
	n = strtol(root_env, &end, 10);
	if (errno != 0 || *end != '\0' || n < 3 || n > 0x7fffffff) {
		cz_log_warn("bad %s=%s: not managing sockets", CZ_ENV_CONTROL_FD,
			root_env);
		return -EINVAL;
	}
	root_fd = (int)n;
	if (!attach_socket_ok(root_fd)) {
		/* A stranger that copied a worker's environment, say. */
		cz_log_warn("%s=%d is not the launcher's socket: not managing "
			"sockets", CZ_ENV_CONTROL_FD, root_fd);
		root_fd = -1;
		return -EBADF;
	}
	if (id != NULL) {
		worker_id = (uint32_t)strtoul(id, NULL, 10);
	}
	if (t != NULL && (n = strtol(t, &end, 10)) > 0 && *end == '\0' &&
	    n < 3600000) {
		timeout_ms = (int)n;
	}
	return 0;
}

/* Whether the launcher (which made the attach socket) is our parent. */
static bool launcher_is_parent(void)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	return real_getsockopt(root_fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 &&
	       cr.pid == getppid();
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
	mark_internal(root_fd);
	enabled = 1;
	/* A native node worker attaches at once too: its hello tells the
	 * launcher which process its Node channel leads to. */
	if (!launcher_is_parent() && !(hello_flags & CZ_HELLO_F_NODE_IPC)) {
		return 0; /* attach on the first request */
	}
	/* The worker process itself: the launcher waits for its hello. */
	pthread_mutex_lock(&mu);
	r = attach_locked(now_ms() + timeout_ms);
	pthread_mutex_unlock(&mu);
	if (r < 0) {
		cz_log_warn("cannot reach the primary: %s: not managing sockets",
			strerrorname_np(-r));
		cz_fdtab_put(cz_fdtab_set(root_fd, NULL), NULL);
		enabled = 0;
		return r;
	}
	cz_log_debug("worker %u attached to the primary (fd %d)", worker_id,
		conn_fd);
	return 0;
}

/* --- requests -------------------------------------------------------------- */

static int request_locked(struct cz_msg_hdr *req, struct cz_msg_reply *rep,
	int *fd_out, long long deadline)
{
	int r;

	if (conn_fd >= 0 && conn_pid != getpid()) {
		/* A child made without fork handlers (_Fork, clone). */
		drop_conn(true);
	}
	if (conn_fd < 0 && (r = attach_locked(deadline)) < 0) {
		return r;
	}
	req->seq = ++seq;
	r = send_msg(conn_fd, req, req->len, -1, deadline);
	if (r == 0) {
		r = recv_reply(conn_fd, req->seq, rep, fd_out, deadline);
	}
	return r;
}

static bool broken(int r)
{
	return r == -ECONNRESET || r == -EPIPE || r == -EBADF ||
	       r == -ENOTCONN || r == -ENOTSOCK;
}

int cz_ctl_request(struct cz_msg_hdr *req, struct cz_msg_reply *rep,
	int *fd_out)
{
	long long deadline = now_ms() + timeout_ms;
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
		r = request_locked(req, rep, fd_out, deadline);
		if (!broken(r)) {
			break;
		}
		/* The connection broke (or the app closed it under us). */
		drop_conn(false);
		r = -ECONNREFUSED;
	}
	pthread_mutex_unlock(&mu);
	pthread_setcancelstate(cancel, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r == -ETIMEDOUT) {
		cz_log_warn("no answer from the primary in %d ms: failing the "
			"call with ETIMEDOUT", timeout_ms);
	} else if (r == -ECONNREFUSED) {
		cz_log_warn("the primary refused this process's connection: "
			"failing the call with ECONNREFUSED");
	}
	return r;
}

/* Writes `fd` over the digits of $CLUSTERIZE_CONTROL_FD, if it fits. */
static void rewrite_env(int fd)
{
	size_t n = root_env != NULL ? strlen(root_env) : 0;
	char d[16];
	size_t k = 0;

	do {
		d[k++] = (char)('0' + fd % 10);
		fd /= 10;
	} while (fd > 0 && k < sizeof(d));
	if (k > n) {
		cz_log_debug("%s: no room for the moved fd", CZ_ENV_CONTROL_FD);
		return;
	}
	/* Zero-padded to the old width: strtol reads "0002001" as 2001. */
	for (size_t i = 0; i < n; i++) {
		root_env[n - 1 - i] = i < k ? d[i] : '0';
	}
}

void cz_ctl_move_away(int fd)
{
	sigset_t all, old;
	int hi;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_mutex_lock(&mu);
	/* The attach socket must stay inheritable; the others close on exec. */
	hi = real_fcntl(fd, fd == root_fd ? F_DUPFD : F_DUPFD_CLOEXEC,
		(void *)(long)high_fd);
	cz_fdtab_put(cz_fdtab_set(fd, NULL), NULL);
	if (hi >= 0) {
		mark_internal(hi);
	}
	/* The app's dup2 will close `fd` for us. */
	if (fd == conn_fd) {
		conn_fd = hi;
	}
	if (fd == root_fd && hi >= 0) {
		root_fd = hi;
		rewrite_env(hi);
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
	drop_conn(true);
}
