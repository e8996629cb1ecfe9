#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "held.h"
#include "ctl.h"
#include "log.h"
#include "node.h"
#include "sockopt.h"
#include "spare.h"
#include "syms.h"

struct ident {
	int family;
	int type;
	int protocol;
};

/* --- helpers ----------------------------------------------------------- */

/* Sockets the primary can own: inet/inet6/unix stream/dgram, no REUSEPORT. */
static int managed_ident(int fd, struct ident *id)
{
	int reuseport = 0;

	if (cz_getsockopt_int(fd, SOL_SOCKET, SO_DOMAIN, &id->family) < 0 ||
	    cz_getsockopt_int(fd, SOL_SOCKET, SO_TYPE, &id->type) < 0 ||
	    cz_getsockopt_int(fd, SOL_SOCKET, SO_PROTOCOL, &id->protocol) < 0) {
		return 0;
	}
	if (id->family != AF_INET && id->family != AF_INET6 &&
	    id->family != AF_UNIX) {
		return 0;
	}
	if (id->type != SOCK_STREAM && id->type != SOCK_DGRAM) {
		return 0;
	}
	cz_getsockopt_int(fd, SOL_SOCKET, SO_REUSEPORT, &reuseport);
	return !reuseport;
}

/* Whether the kernel already bound the socket (then it is not ours). */
static int really_bound(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (real_getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		return 0;
	}
	switch (ss.ss_family) {
	case AF_INET:
		return ((struct sockaddr_in *)&ss)->sin_port != 0;
	case AF_INET6:
		return ((struct sockaddr_in6 *)&ss)->sin6_port != 0;
	default:
		return len > sizeof(sa_family_t);
	}
}

/*
 * The app's address as the primary needs it: 1, or 0 to leave the call to
 * the kernel.  A relative unix path is made absolute from the worker's own
 * working directory; when that cannot be done (no cwd, or longer than
 * sun_path) the app's bind fails with the errno: binding it elsewhere, or
 * unshared, would be silently wrong.
 */
static int unix_addr(const struct sockaddr *sa, socklen_t len, struct cz_addr *out)
{
	const struct sockaddr_un *su = (const struct sockaddr_un *)sa;
	struct sockaddr_un *o = (struct sockaddr_un *)&out->ss;
	size_t off = offsetof(struct sockaddr_un, sun_path);
	size_t plen, clen;

	if (len <= off || len > sizeof(*su)) {
		return 0; /* autobind, or the kernel's EINVAL */
	}
	if (su->sun_path[0] == '\0' || su->sun_path[0] == '/') {
		memcpy(&out->ss, sa, len); /* abstract or absolute */
		out->len = len;
		return 1;
	}
	plen = strnlen(su->sun_path, len - off);
	o->sun_family = AF_UNIX;
	if (getcwd(o->sun_path, sizeof(o->sun_path)) == NULL) {
		return errno == ERANGE ? -ENAMETOOLONG : -errno;
	}
	clen = strlen(o->sun_path);
	if (clen + 1 + plen + 1 > sizeof(o->sun_path)) {
		cz_log_debug("bind: a relative unix path in %s would be "
			"longer than sun_path", o->sun_path);
		return -ENAMETOOLONG;
	}
	o->sun_path[clen] = '/';
	memcpy(o->sun_path + clen + 1, su->sun_path, plen);
	o->sun_path[clen + 1 + plen] = '\0';
	out->len = (uint32_t)(off + clen + 1 + plen + 1);
	return 1;
}

static int app_addr(const struct sockaddr *sa, socklen_t len, int family,
	struct cz_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (sa == NULL || len < sizeof(sa_family_t) || sa->sa_family != family) {
		return 0;
	}
	switch (family) {
	case AF_INET:
		out->len = sizeof(struct sockaddr_in);
		break;
	case AF_INET6:
		out->len = sizeof(struct sockaddr_in6);
		break;
	default:
		return unix_addr(sa, len, out);
	}
	if (len < out->len) {
		return 0;
	}
	memcpy(&out->ss, sa, out->len);
	return 1;
}

/* accept/getsockname truncation: copy what fits, report the full length. */
static void fill_addr(const struct cz_addr *a, struct sockaddr *addr,
	socklen_t *len)
{
	if (addr == NULL || len == NULL) {
		return;
	}
	memcpy(addr, &a->ss, *len < a->len ? *len : a->len);
	*len = a->len;
}

/*
 * Installs `srcfd` at `appfd` (closing srcfd), keeping appfd's FD_CLOEXEC
 * and O_NONBLOCK: dup3 takes the status flags of the source's file.
 */
static int swap_in(int appfd, int srcfd)
{
	int fdfl = real_fcntl(appfd, F_GETFD, 0);
	int fl = real_fcntl(appfd, F_GETFL, 0);
	int r, nfl;

	if (fdfl < 0 || fl < 0) {
		real_close(srcfd);
		return fdfl < 0 ? fdfl : fl;
	}
	r = real_dup3(srcfd, appfd, (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0);
	real_close(srcfd);
	if (r < 0) {
		return r;
	}
	nfl = real_fcntl(appfd, F_GETFL, 0);
	if (nfl >= 0 && ((nfl ^ fl) & O_NONBLOCK)) {
		nfl = (nfl & ~O_NONBLOCK) | (fl & O_NONBLOCK);
		real_fcntl(appfd, F_SETFL, (void *)(long)nfl);
	}
	return 0;
}

static void send_release(uint32_t key, uint32_t channel)
{
	struct cz_msg_release m;
	struct cz_msg_reply rep;

	memset(&m, 0, sizeof(m));
	cz_proto_init(&m.hdr, CZ_MSG_RELEASE, 0);
	m.key = key;
	m.channel = channel;
	if (cz_ctl_request(&m.hdr, &rep, NULL) == 0) {
		cz_log_debug("released key %u channel %u", key, channel);
	}
}

void cz_sock_release(const struct cz_fdrec *last)
{
	if (last->state == CZ_FD_INTERNAL || last->state == CZ_FD_FREE ||
	    last->key == 0 || last->released) {
		return;
	}
	/* After a fork the children may still use it: not ours alone. */
	if (last->pid != (pid_t)cz_raw_getpid() ||
	    last->forkgen != cz_fdtab_forkgen()) {
		return;
	}
	send_release(last->key, last->state == CZ_FD_RR ? last->channel : 0);
}

/* Drops a stale record at an fd number the kernel just handed out. */
static void forget(int fd)
{
	struct cz_fdrec last;

	if (cz_fdtab_get(fd) != NULL &&
	    cz_fdtab_put(cz_fdtab_set(fd, NULL), &last)) {
		cz_sock_release(&last);
	}
}

/*
 * A listener closed where no wrapper sees it (fclose of an fdopen()ed
 * socket closes through libc's internal close) leaves a record behind;
 * a new socket at that number must start clean.
 */
int shim_socket(int domain, int type, int protocol)
{
	int fd = real_socket(domain, type, protocol);

	if (fd >= 0) {
		forget(fd);
		cz_held_drop(fd);
	}
	return fd;
}

/* --- bind ---------------------------------------------------------------- */

static int ask_bind(const struct ident *id, const struct cz_addr *addr,
	const struct cz_sockopts *opts, struct cz_msg_reply *rep, int *sfd)
{
	struct cz_msg_bind m;
	int r;

	memset(&m, 0, sizeof(m));
	cz_proto_init(&m.hdr, CZ_MSG_BIND, 0);
	m.family = id->family;
	m.type = id->type;
	m.protocol = id->protocol;
	m.addr = *addr;
	m.opts = *opts;
	r = cz_ctl_request(&m.hdr, rep, id->type == SOCK_DGRAM ? sfd : NULL);
	if (r < 0) {
		cz_log_debug("bind: no answer from the primary: %d", r);
		return r;
	}
	if (rep->err < 0 && sfd != NULL && *sfd >= 0) {
		real_close(*sfd);
		*sfd = -1;
	}
	return rep->err;
}

static int bind_via_primary(int fd, const struct ident *id,
	const struct cz_addr *asked)
{
	struct cz_msg_reply rep;
	struct cz_sockopts opts;
	struct cz_fdrec *rec;
	int sfd = -1, r;

	cz_sockopt_read(fd, id->family, id->type, id->protocol, &opts);
	r = ask_bind(id, asked, &opts, &rep, &sfd);
	if (r < 0) {
		return r;
	}
	rec = cz_fdtab_alloc();
	if (rec == NULL || (id->type == SOCK_DGRAM && sfd < 0)) {
		/* Cannot track it: let the kernel have it. */
		send_release(rep.key, 0);
		cz_fdtab_put(rec, NULL);
		if (sfd >= 0) {
			real_close(sfd);
		}
		return real_bind(fd, (const struct sockaddr *)&asked->ss, asked->len);
	}
	rec->family = id->family;
	rec->type = id->type;
	rec->protocol = id->protocol;
	rec->key = rep.key;
	rec->pid = (pid_t)cz_raw_getpid();
	rec->forkgen = cz_fdtab_forkgen();
	rec->bound = rep.bound.len ? rep.bound : *asked;
	rec->asked = *asked;
	rec->opts = opts;
	rec->state = CZ_FD_VBOUND;
	if (id->type == SOCK_DGRAM) {
		r = swap_in(fd, sfd);
		if (r < 0) {
			send_release(rep.key, 0);
			cz_fdtab_put(rec, NULL);
			return r;
		}
		rec->state = CZ_FD_SHARED;
	}
	cz_fdtab_put(cz_fdtab_set(fd, rec), NULL);
	cz_log_debug("fd %d bound through the primary: key %u", fd, rep.key);
	return 0;
}

int shim_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	struct cz_fdrec *rec;
	struct cz_addr asked;
	struct ident id;
	int r;

	/* A native node worker asks its primary in Node's own way: what it
	 * binds itself (exclusive, reusePort) is its own. */
	if (!cz_ctl_enabled() || cz_node_native()) {
		return real_bind(fd, addr, len);
	}
	rec = cz_fdtab_get(fd);
	if (rec != NULL) {
		return rec->state == CZ_FD_INTERNAL ? -EBADF : -EINVAL;
	}
	if (!managed_ident(fd, &id) || really_bound(fd)) {
		return real_bind(fd, addr, len);
	}
	r = app_addr(addr, len, id.family, &asked);
	if (r <= 0) {
		return r < 0 ? r : real_bind(fd, addr, len);
	}
	return bind_via_primary(fd, &id, &asked);
}

/* listen() on an unbound inet socket binds the wildcard address, port 0. */
static int implicit_bind(int fd)
{
	struct cz_addr any;
	struct ident id;
	int r;

	if (!managed_ident(fd, &id) || id.type != SOCK_STREAM ||
	    id.family == AF_UNIX || really_bound(fd)) {
		return 0;
	}
	memset(&any, 0, sizeof(any));
	any.ss.ss_family = (sa_family_t)id.family;
	any.len = id.family == AF_INET ? sizeof(struct sockaddr_in)
				       : sizeof(struct sockaddr_in6);
	r = bind_via_primary(fd, &id, &any);
	return r < 0 ? r : 1;
}

/* --- listen -------------------------------------------------------------- */

static int addr_port(const struct cz_addr *a)
{
	if (a->ss.ss_family == AF_INET) {
		return ((const struct sockaddr_in *)&a->ss)->sin_port;
	}
	if (a->ss.ss_family == AF_INET6) {
		return ((const struct sockaddr_in6 *)&a->ss)->sin6_port;
	}
	return -1;
}

/*
 * A paused rr listener gave its hold back: bind again.  For port 0, first
 * the port it had (free again if it was the last holder), else port 0
 * (the same key as the other workers' k-th port-0 listener).
 */
static int rebind(struct cz_fdrec *rec)
{
	struct ident id = { rec->family, rec->type, rec->protocol };
	struct cz_msg_reply rep;
	int r = -EADDRINUSE;

	if (addr_port(&rec->asked) == 0) {
		r = ask_bind(&id, &rec->bound, &rec->opts, &rep, NULL);
	}
	if (r == -EADDRINUSE) {
		r = ask_bind(&id, &rec->asked, &rec->opts, &rep, NULL);
	}
	if (r < 0) {
		return r;
	}
	cz_fdtab_lock();
	rec->key = rep.key;
	rec->released = 0;
	if (rep.bound.len != 0) {
		rec->bound = rep.bound;
	}
	cz_fdtab_unlock();
	return 0;
}

static int ask_listen(int fd, struct cz_fdrec *rec, int backlog,
	uint32_t flags, struct cz_msg_reply *rep, int *sfd)
{
	struct ident id = { rec->family, rec->type, rec->protocol };
	struct cz_msg_listen m;
	int fl, r;

	fl = real_fcntl(fd, F_GETFL, 0);
	if (fl < 0) {
		return fl;
	}
	memset(&m, 0, sizeof(m));
	cz_proto_init(&m.hdr, CZ_MSG_LISTEN, 0);
	m.key = rec->key;
	m.backlog = backlog;
	m.nonblock = (fl & O_NONBLOCK) != 0;
	m.flags = flags;
	if (rec->state == CZ_FD_VBOUND) {
		cz_sockopt_read(fd, id.family, id.type, id.protocol, &rec->opts);
	}
	m.opts = rec->opts;
	r = cz_ctl_request(&m.hdr, rep, sfd);
	if (r == 0 && rep->err < 0) {
		r = rep->err;
	} else if (r == 0 && (*sfd < 0 || (rep->mode != CZ_MODE_SHARED &&
					     rep->mode != CZ_MODE_RR))) {
		r = -EPROTO;
	}
	if (r < 0 && *sfd >= 0) {
		real_close(*sfd);
	}
	return r;
}

static int listen_via_primary(int fd, struct cz_fdrec *rec, int backlog,
	uint32_t flags)
{
	struct cz_msg_reply rep;
	struct timeval to = { 0, 0 };
	socklen_t tolen = sizeof(to);
	int sfd = -1, r;

	if (rec->state == CZ_FD_PAUSED && rec->released && (r = rebind(rec)) < 0) {
		return r;
	}
	/* accept() honours SO_RCVTIMEO: carry it over to the channel. */
	if (rec->state == CZ_FD_VBOUND) {
		real_getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &to, &tolen);
	}
	r = ask_listen(fd, rec, backlog, flags, &rep, &sfd);
	if (r < 0) {
		return r;
	}
	r = swap_in(fd, sfd);
	if (r < 0) {
		return r;
	}
	if (rep.mode == CZ_MODE_RR && (to.tv_sec != 0 || to.tv_usec != 0)) {
		real_setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &to, sizeof(to));
	}
	cz_fdtab_lock();
	rec->state = rep.mode == CZ_MODE_RR ? CZ_FD_RR : CZ_FD_SHARED;
	rec->channel = rep.mode == CZ_MODE_RR ? rep.channel : 0;
	if (rep.bound.len != 0) {
		rec->bound = rep.bound;
	}
	cz_fdtab_unlock();
	cz_log_debug("fd %d listening (%s, key %u, channel %u)", fd,
		rep.mode == CZ_MODE_RR ? "rr" : "shared", rec->key, rec->channel);
	return 0;
}

int shim_listen(int fd, int backlog)
{
	struct cz_fdrec *rec = cz_fdtab_get(fd);
	int r;

	if (rec == NULL) {
		if (!cz_ctl_enabled() || cz_node_native()) {
			return real_listen(fd, backlog);
		}
		r = implicit_bind(fd);
		if (r < 0) {
			return r;
		}
		rec = cz_fdtab_get(fd);
		if (r == 0 || rec == NULL) {
			return real_listen(fd, backlog);
		}
	}
	switch (rec->state) {
	case CZ_FD_INTERNAL:
		return -EBADF;
	case CZ_FD_RR:
		return 0; /* the backlog is the primary's */
	case CZ_FD_SHARED:
		return real_listen(fd, backlog);
	default:
		return listen_via_primary(fd, rec, backlog, 0);
	}
}

/*
 * A socket bound through the primary stays unbound in the kernel until
 * listen().  An app that hands it to another process first (Node's own
 * cluster with SCHED_NONE: its primary binds, its workers listen) would
 * send an unbound socket: install the real one before it goes.
 */
static void materialize_fds(struct msghdr *msg)
{
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		const unsigned char *data = CMSG_DATA(c);

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			struct cz_fdrec *rec;
			int fd;

			memcpy(&fd, data + i * sizeof(int), sizeof(int));
			rec = cz_fdtab_get(fd);
			if (rec != NULL && rec->state == CZ_FD_VBOUND) {
				listen_via_primary(fd, rec, SOMAXCONN,
					CZ_LISTEN_F_SHARED);
			}
		}
	}
}

static bool has_control(const struct msghdr *msg)
{
	return msg != NULL && msg->msg_control != NULL &&
	       msg->msg_controllen >= sizeof(struct cmsghdr);
}

ssize_t shim_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	if (has_control(msg) && cz_ctl_enabled()) {
		materialize_fds((struct msghdr *)msg);
	}
	return real_sendmsg(fd, msg, flags);
}

int shim_sendmmsg(int fd, struct mmsghdr *vec, unsigned n, int flags)
{
	if (vec != NULL && cz_ctl_enabled()) {
		for (unsigned i = 0; i < n; i++) {
			if (has_control(&vec[i].msg_hdr)) {
				materialize_fds(&vec[i].msg_hdr);
			}
		}
	}
	return real_sendmmsg(fd, vec, n, flags);
}

/* --- accept on an rr channel --------------------------------------------- */

/*
 * This process cannot take a connection now (no fd to spare): the primary
 * takes back what is queued in the channel and gives it to other workers.
 * Should the NACK not go out, its stall check does the same.
 */
static void send_nack(int fd)
{
	struct cz_msg_nack m;

	cz_proto_init(&m.hdr, CZ_MSG_NACK, 0);
	(void)send(fd, &m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL);
}

/*
 * The primary closed the channel (it stopped, or is gone).  accept must not
 * return 0, and an EOF'd channel is readable forever, which would spin the
 * app's event loop: put a socket that never becomes readable in its place.
 */
static int channel_eof(int fd)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0) {
		cz_ctl_stash(sv[1]);
		swap_in(fd, sv[0]);
	}
	cz_log_debug("fd %d: the primary closed the channel", fd);
	return -ECONNABORTED;
}

static int conn_fd_ready(int cfd, const struct cz_msg_conn *c, int flags)
{
	int want = (flags & SOCK_NONBLOCK) != 0;
	int fl;

	/* The fd carries the primary's status flags, not accept4's. */
	if ((c->nonblock != 0) == want) {
		return 0;
	}
	fl = real_fcntl(cfd, F_GETFL, 0);
	if (fl < 0) {
		return fl;
	}
	fl = want ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	return real_fcntl(cfd, F_SETFL, (void *)(long)(fl & ~O_ASYNC));
}

/*
 * Waits until a message is queued, without taking it, as the app's fd
 * says: at once for a non-blocking one, else blocking, with its
 * SO_RCVTIMEO and its signals, as accept() would.  > 0, 0 at EOF, -errno.
 */
static ssize_t wait_queued(int fd)
{
	char b;
	ssize_t n = recv(fd, &b, 1, MSG_PEEK);

	return n < 0 ? -errno : n;
}

/*
 * The primary keeps no copy of a connection it sent: receiving it must not
 * fail for want of an fd slot (the kernel would drop the fd, and with it
 * the connection).  So each receive goes into a slot a spare made free
 * (spare.h), without blocking; the wait for a connection is a peek, which
 * takes nothing.  The peek comes first: the accept that ends a server's
 * accept-until-EAGAIN loop then costs one system call, not the spare's
 * two around a receive that finds nothing.
 */
static int rr_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	union {
		struct cz_msg_conn c;
		unsigned char raw[CZ_MSG_MAX];
	} in;
	int rflags = MSG_DONTWAIT | ((flags & SOCK_CLOEXEC) ? MSG_CMSG_CLOEXEC : 0);

	for (;;) {
		bool trunc;
		int cfd;
		ssize_t n = wait_queued(fd);

		if (n <= 0) {
			return n == 0 ? channel_eof(fd) : (int)n;
		}
		if (cz_spare_free_slot() < 0) {
			send_nack(fd);
			return -EMFILE;
		}
		cz_held_receiving(1);
		n = cz_ctl_recv(fd, &in, sizeof(in), rflags, &cfd, &trunc);
		if (n > 0 && cfd >= 0 && !trunc &&
		    cz_proto_check(&in, (size_t)n) == CZ_MSG_CONN) {
			cz_held_add(cfd);
		}
		cz_held_receiving(-1);
		cz_spare_restore();
		if (n == -EAGAIN) {
			continue; /* another thread of the app took it */
		}
		if (n < 0) {
			return (int)n;
		}
		if (n == 0) {
			return channel_eof(fd);
		}
		if (cz_proto_check(&in, (size_t)n) != CZ_MSG_CONN) {
			if (cfd >= 0) {
				real_close(cfd);
			}
			continue; /* NUDGE, or garbage */
		}
		if (cfd < 0 || trunc) {
			/* Another thread of the app took the freed slot. */
			if (cfd >= 0) {
				real_close(cfd);
			}
			cz_log_warn("fd %d: a connection was lost: the process "
				"ran out of fds while receiving it", fd);
			send_nack(fd);
			return -EMFILE;
		}
		conn_fd_ready(cfd, &in.c, flags);
		fill_addr(&in.c.peer, addr, len);
		forget(cfd);
		return cfd;
	}
}

int shim_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags,
	int plain)
{
	struct cz_fdrec *rec = cz_fdtab_get(fd);
	int r;

	if (rec != NULL && rec->state == CZ_FD_RR) {
		if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) {
			return -EINVAL;
		}
		return rr_accept(fd, addr, len, flags);
	}
	if (rec != NULL && rec->state == CZ_FD_INTERNAL) {
		return -EBADF;
	}
	r = plain ? real_accept(fd, addr, len) : real_accept4(fd, addr, len, flags);
	if (r >= 0) {
		forget(r);
		/* none: a connection of the shared listener is the worker's. */
		if (rec != NULL && rec->state == CZ_FD_SHARED &&
		    rec->type == SOCK_STREAM) {
			cz_held_add(r);
		} else {
			cz_held_drop(r);
		}
	}
	return r;
}

/* --- identity ------------------------------------------------------------ */

int shim_getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
	struct cz_fdrec *rec = cz_fdtab_get(fd);

	if (rec == NULL || rec->state == CZ_FD_SHARED || rec->bound.len == 0) {
		if (rec != NULL && rec->state == CZ_FD_INTERNAL) {
			return -EBADF;
		}
		return real_getsockname(fd, addr, len);
	}
	if (addr == NULL || len == NULL) {
		return -EFAULT;
	}
	fill_addr(&rec->bound, addr, len);
	return 0;
}

int shim_getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
	struct cz_fdrec *rec = cz_fdtab_get(fd);

	if (rec == NULL) {
		return real_getpeername(fd, addr, len);
	}
	switch (rec->state) {
	case CZ_FD_INTERNAL:
		return -EBADF;
	case CZ_FD_RR:
	case CZ_FD_PAUSED:
		return -ENOTCONN;
	default:
		return real_getpeername(fd, addr, len);
	}
}

/* --- shutdown, connect --------------------------------------------------- */

/* Stops listening in this process only: an inert socket takes the fd. */
static int pause_listener(int fd, struct cz_fdrec *rec)
{
	int inert = socket(rec->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int r, was_rr = rec->state == CZ_FD_RR;

	if (inert < 0) {
		return -errno;
	}
	r = swap_in(fd, inert);
	if (r < 0) {
		return r;
	}
	if (was_rr) {
		send_release(rec->key, rec->channel);
	}
	cz_fdtab_lock();
	rec->state = CZ_FD_PAUSED;
	if (was_rr) {
		rec->released = 1;
		rec->channel = 0;
	}
	cz_fdtab_unlock();
	return 0;
}

int shim_shutdown(int fd, int how)
{
	struct cz_fdrec *rec = cz_fdtab_get(fd);

	if (rec == NULL || rec->state == CZ_FD_VBOUND) {
		return real_shutdown(fd, how);
	}
	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) {
		return -EINVAL;
	}
	switch (rec->state) {
	case CZ_FD_INTERNAL:
		return -EBADF;
	case CZ_FD_PAUSED:
		return -ENOTCONN;
	case CZ_FD_SHARED:
		if (rec->type != SOCK_STREAM) {
			return -ENOTCONN; /* and never wake the others */
		}
		break;
	default:
		break;
	}
	/* Linux ignores SHUT_WR on a listener. */
	return how == SHUT_WR ? 0 : pause_listener(fd, rec);
}

int shim_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	struct cz_fdrec *rec = cz_fdtab_get(fd);
	struct cz_fdrec last;
	struct cz_addr asked;
	int r;

	if (rec == NULL || rec->state != CZ_FD_VBOUND) {
		if (rec != NULL && rec->state == CZ_FD_INTERNAL) {
			return -EBADF;
		}
		return real_connect(fd, addr, len);
	}
	/* A client that bound its source address: bind for real after all. */
	asked = rec->asked;
	if (cz_fdtab_put(cz_fdtab_set(fd, NULL), &last)) {
		cz_sock_release(&last);
	}
	r = real_bind(fd, (const struct sockaddr *)&asked.ss, asked.len);
	if (r < 0) {
		return r;
	}
	return real_connect(fd, addr, len);
}
