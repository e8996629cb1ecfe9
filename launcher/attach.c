/*
 * The workers' attach sockets (control.h, control_int.h).  Each worker has
 * one, a socketpair whose launcher's end is served here; every ATTACH on it
 * brings one end of a fresh socketpair, a control connection that control.c
 * serves from then on.  Anything else is dropped with a warning.
 */
#include "control_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conns.h"
#include "log.h"

struct wroot *cz_control_worker_find(const struct cz_control *c, uint32_t id)
{
	struct wroot *w;

	for (w = c->workers; w != NULL && w->worker_id != id; w = w->next) {
	}
	return w;
}

/* A control connection must be a connected unix SOCK_SEQPACKET socket. */
static bool conn_socket_ok(int fd, int *pid)
{
	struct ucred cr;
	socklen_t len = sizeof(int);
	int domain = 0, type = 0, listening = 1;

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 ||
	    (len = sizeof(int),
	     getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len)) < 0 ||
	    (len = sizeof(int),
	     getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len)) < 0 ||
	    domain != AF_UNIX || type != SOCK_SEQPACKET || listening) {
		return false;
	}
	len = sizeof(cr);
	*pid = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 ?
		(int)cr.pid : 0;
	return true;
}

static void conn_add(struct wroot *w, int fd, int pid)
{
	struct conn *k = calloc(1, sizeof(*k));

	if (k == NULL || uv_poll_init(w->c->loop, &k->poll, fd) < 0) {
		free(k);
		close(fd);
		return;
	}
	k->poll.data = k;
	k->w = w;
	k->fd = fd;
	k->pid = pid;
	k->next = w->conns;
	w->conns = k;
	w->nconns++;
	uv_poll_start(&k->poll, UV_READABLE, cz_control_on_conn);
}

/* Nothing more will come from the attach socket (or it broke). */
static void root_done(struct wroot *w, const char *why)
{
	if (why != NULL) {
		cz_log_peer(w->worker_id, CZ_LOG_WARN, "worker %u: attach "
			"socket: %s: no more processes of it can attach",
			w->worker_id, why);
	} else {
		cz_log(CZ_LOG_DEBUG, "worker %u: no process holds its attach "
			"socket any more", w->worker_id);
	}
	/*
	 * The fd stays open until cz_control_worker_close().  Closed now, its
	 * number could go to another worker's connection before this handle's
	 * uv_close(), whose epoll_ctl(DEL) on that number would then silence
	 * the newcomer for good.
	 */
	uv_poll_stop(&w->poll);
}

/* Takes one ATTACH; 1 = go on, 0 = nothing more, -1 = the socket is done. */
static int root_recv_one(struct wroot *w)
{
	union msg m;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} u;
	struct iovec iov = { m.buf, sizeof(m.buf) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	int fd = -1, pid = 0;
	unsigned nfds;
	ssize_t n = recvmsg(w->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	if (n < 0) {
		if (errno == EINTR) {
			return 1;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			return 0;
		}
		root_done(w, strerror(errno));
		return -1;
	}
	if (n == 0 && cz_control_peer_gone(w->fd)) {
		root_done(w, NULL);
		return -1;
	}
	nfds = cz_control_close_fds(&mh, &fd);
	if (mh.msg_flags & MSG_CTRUNC) {
		/* The kernel dropped the fd: the process sees its connection
		 * closed and fails its call; the message is consumed, so
		 * nothing spins. */
		cz_log_peer(w->worker_id, CZ_LOG_WARN, "worker %u: attach refused: "
			"the launcher is out of file descriptors", w->worker_id);
	} else if (cz_proto_check(m.buf, (size_t)n) != CZ_MSG_ATTACH ||
		   nfds != 1 || !conn_socket_ok(fd, &pid)) {
		cz_log_peer(w->worker_id, CZ_LOG_WARN, "worker %u: attach socket: "
			"not an ATTACH with one unix SOCK_SEQPACKET socket: dropped",
			w->worker_id);
	} else if (w->nconns >= CZ_MAX_CONNS) {
		cz_log_peer(w->worker_id, CZ_LOG_WARN, "worker %u: attach from "
			"pid %d refused: %u processes attached already",
			w->worker_id, pid, w->nconns);
	} else {
		conn_add(w, fd, pid);
		return 1;
	}
	if (fd >= 0) {
		close(fd);
	}
	return 1;
}

static void on_root(uv_poll_t *h, int status, int events)
{
	struct wroot *w = h->data;
	int i;

	(void)events;
	if (status < 0) {
		root_done(w, uv_strerror(status));
		return;
	}
	for (i = 0; i < CZ_CONTROL_BATCH; i++) {
		if (root_recv_one(w) <= 0) {
			return;
		}
	}
}

int cz_control_worker_open(struct cz_control *c, uint32_t worker_id,
	int *child_fd)
{
	struct wroot *w;
	int sv[2], err;

	if (cz_control_worker_find(c, worker_id) != NULL) {
		return -EEXIST;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		return -ENOMEM;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		err = -errno;
		free(w);
		return err;
	}
	/* uv_poll_init makes the launcher's end non-blocking. */
	err = uv_poll_init(c->loop, &w->poll, sv[0]);
	if (err < 0) {
		close(sv[0]);
		close(sv[1]);
		free(w);
		return err;
	}
	w->poll.data = w;
	w->c = c;
	w->fd = sv[0];
	w->worker_id = worker_id;
	w->next = c->workers;
	c->workers = w;
	uv_poll_start(&w->poll, UV_READABLE, on_root);
	/* Its open-connection counters, sent with each HELLO reply; without
	 * them (no memfd) its connections are not counted. */
	cz_conntab_get(c->conntab, worker_id, true);
	*child_fd = sv[1];
	return 0;
}

static void on_root_closed(uv_handle_t *h)
{
	free(h->data);
}

/* Closes the worker's attach socket and connections (releasing nothing). */
void cz_control_worker_close(struct cz_control *c, struct wroot *w)
{
	struct wroot **pp;

	for (pp = &c->workers; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	while (w->conns != NULL) {
		cz_control_conn_close(w->conns, false);
	}
	uv_close((uv_handle_t *)&w->poll, on_root_closed);
	close(w->fd);
}
