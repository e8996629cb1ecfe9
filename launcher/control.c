/*
 * The control server (control.h).  Workers' shims connect to an abstract
 * unix SOCK_SEQPACKET socket and make synchronous requests; each gets one
 * REPLY, possibly with one fd.  Anything malformed closes that connection
 * with a warning: the primary must survive any bytes a worker sends.
 */
#include "control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "escape.h"
#include "log.h"
#include "rr.h"
#include "sockets.h"

struct conn {
	uv_poll_t poll;
	struct cz_control *c;
	struct conn *next;
	int fd;
	int pid; /* SO_PEERCRED */
	uint32_t worker_id;
	bool hello;
};

struct cz_control {
	uv_poll_t poll; /* the listening socket */
	uv_loop_t *loop;
	enum cz_mode mode;
	struct cz_control_events ev;
	int fd;
	char name[64];
	struct conn *conns;
	struct cz_sockets *sockets;
	struct cz_rr *rr;
};

/* Any request; aligned for every message type. */
union msg {
	struct cz_msg_hdr hdr;
	struct cz_msg_hello hello;
	struct cz_msg_bind bind;
	struct cz_msg_listen listen;
	struct cz_msg_release release;
	char buf[CZ_MSG_MAX];
};

/* --- connections ---------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h)
{
	free(h->data);
}

static void conn_close(struct conn *k)
{
	struct conn **pp;

	for (pp = &k->c->conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	}
	uv_close((uv_handle_t *)&k->poll, on_conn_closed);
	close(k->fd);
}

static void conn_drop(struct conn *k, const char *why)
{
	cz_log_peer(k->worker_id, CZ_LOG_WARN, "control connection from pid %d "
		"(worker %u): %s: closing it", k->pid, k->worker_id, why);
	conn_close(k);
}

/* Sends `r`, with `fd` attached unless it is < 0. */
static int conn_reply(struct conn *k, struct cz_msg_reply *r, int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = { r, sizeof(*r) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (fd >= 0) {
		struct cmsghdr *cm;

		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	do {
		n = sendmsg(k->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

static void reply_init(struct cz_msg_reply *r, const union msg *m, int err)
{
	memset(r, 0, sizeof(*r));
	cz_proto_init(&r->hdr, CZ_MSG_REPLY, m->hdr.seq);
	r->err = err;
}

static void reply_bound(struct cz_msg_reply *r, const struct cz_key *k)
{
	r->key = k->id;
	r->bound.len = k->bound_len;
	memcpy(&r->bound.ss, &k->bound, k->bound_len);
}

static void emit_listening(struct conn *k, const struct cz_key *key)
{
	char a[CZ_ADDR_STRLEN];

	if (k->c->ev.listening == NULL) {
		return;
	}
	cz_addr_format((const void *)&key->bound, key->bound_len, key->type,
		a, sizeof(a));
	k->c->ev.listening(k->c->ev.data, k->worker_id, k->pid, a);
}

/* --- requests ------------------------------------------------------------- */

static int on_hello(struct conn *k, const union msg *m)
{
	struct cz_msg_reply r;

	if (k->hello) {
		return -EPROTO;
	}
	k->hello = true;
	k->worker_id = m->hello.worker_id;
	if (k->c->ev.hello != NULL) {
		char exe[4 * sizeof(m->hello.exe)];

		cz_escape_str(exe, sizeof(exe), m->hello.exe);
		k->c->ev.hello(k->c->ev.data, k->worker_id, k->pid,
			m->hello.flags, exe);
	}
	reply_init(&r, m, 0);
	return conn_reply(k, &r, -1);
}

static int on_bind(struct conn *k, const union msg *m)
{
	struct cz_control *c = k->c;
	struct cz_msg_reply r;
	struct cz_key *key = NULL;
	int err = cz_sockets_bind(c->sockets, k->worker_id, &m->bind, &key);

	reply_init(&r, m, err);
	if (err < 0) {
		char a[CZ_ADDR_STRLEN];

		cz_log_peer(k->worker_id, CZ_LOG_DEBUG, "worker %u: bind %s: %s",
			k->worker_id,
			cz_addr_format((const void *)&m->bind.addr.ss,
				m->bind.addr.len, m->bind.type, a, sizeof(a)),
			strerror(-err));
		return conn_reply(k, &r, -1);
	}
	reply_bound(&r, key);
	err = conn_reply(k, &r, key->type == SOCK_DGRAM ? key->fd : -1);
	if (err < 0) {
		cz_sockets_release(c->sockets, key, k->worker_id, false);
		return err;
	}
	if (key->type == SOCK_DGRAM) {
		emit_listening(k, key);
	}
	return 0;
}

static void key_closing(void *data, struct cz_key *key)
{
	(void)data;
	if (key->data != NULL) {
		cz_rr_listener_destroy(key->data);
		key->data = NULL;
	}
}

/* Opens an rr channel on `key` for the worker; returns its fd or -errno. */
static int open_channel(struct conn *k, struct cz_key *key, uint32_t *chan)
{
	struct cz_control *c = k->c;
	int err;

	if (key->data == NULL) {
		char a[CZ_ADDR_STRLEN];
		struct cz_rr_listener *l;

		cz_addr_format((const void *)&key->bound, key->bound_len,
			key->type, a, sizeof(a));
		err = cz_rr_listener_create(c->rr, key->fd, key->nonblock, a, &l);
		if (err < 0) {
			return err;
		}
		key->data = l;
	}
	return cz_rr_chan_open(key->data, k->worker_id, chan);
}

static int on_listen(struct conn *k, const union msg *m)
{
	struct cz_control *c = k->c;
	struct cz_key *key = cz_sockets_find(c->sockets, m->listen.key);
	struct cz_msg_reply r;
	uint32_t chan = 0;
	int err = -EBADF, fd = -1;
	/* A socket about to be sent elsewhere must be the socket itself. */
	enum cz_mode mode = (m->listen.flags & CZ_LISTEN_F_SHARED) ?
		CZ_MODE_SHARED : c->mode;

	if (key != NULL) {
		err = cz_sockets_listen(c->sockets, key, k->worker_id,
			m->listen.backlog,
			m->listen.nonblock != 0, &m->listen.opts);
	}
	if (err == 0 && mode == CZ_MODE_RR) {
		err = fd = open_channel(k, key, &chan);
	} else if (err == 0) {
		fd = key->fd;
	}
	reply_init(&r, m, err < 0 ? err : 0);
	if (err < 0) {
		return conn_reply(k, &r, -1);
	}
	reply_bound(&r, key);
	r.mode = mode;
	r.channel = chan;
	err = conn_reply(k, &r, fd);
	if (err < 0) {
		if (chan != 0) {
			cz_rr_chan_close(c->rr, chan, k->worker_id);
		}
		return err;
	}
	emit_listening(k, key);
	return 0;
}

static int on_release(struct conn *k, const union msg *m)
{
	struct cz_control *c = k->c;
	struct cz_key *key = cz_sockets_find(c->sockets, m->release.key);
	struct cz_msg_reply r;
	bool listened;
	int err = -ENOENT;

	if (m->release.channel != 0) {
		err = cz_rr_chan_close(c->rr, m->release.channel, k->worker_id);
	}
	if (key != NULL) {
		listened = m->release.channel != 0 ||
			   (c->mode == CZ_MODE_SHARED && key->listening);
		err = cz_sockets_release(c->sockets, key, k->worker_id,
			listened);
	}
	reply_init(&r, m, err < 0 ? err : 0);
	return conn_reply(k, &r, -1);
}

static int dispatch(struct conn *k, const union msg *m, int type)
{
	if (type != CZ_MSG_HELLO && !k->hello) {
		return -EPROTO;
	}
	switch (type) {
	case CZ_MSG_HELLO:
		return on_hello(k, m);
	case CZ_MSG_BIND:
		return on_bind(k, m);
	case CZ_MSG_LISTEN:
		return on_listen(k, m);
	case CZ_MSG_RELEASE:
		return on_release(k, m);
	default:
		return -EPROTO;
	}
}

/* Receives one request; 1 = handled, 0 = nothing more, -1 = closed. */
static int conn_recv_one(struct conn *k)
{
	static union msg m;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} u;
	struct iovec iov = { m.buf, sizeof(m.buf) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	ssize_t n;
	int type, err;

	do {
		n = recvmsg(k->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		return 0;
	}
	if (n <= 0) {
		/* The process exited or exec'd (our fd is close-on-exec). */
		cz_log_peer(k->worker_id, CZ_LOG_DEBUG,
			"control connection from pid %d closed",
			k->pid);
		conn_close(k);
		return -1;
	}
	if (mh.msg_controllen != 0 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

		for (; cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_type == SCM_RIGHTS) {
				int *fds = (int *)(void *)CMSG_DATA(cm);
				size_t i, nf = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

				for (i = 0; i < nf; i++) {
					close(fds[i]);
				}
			}
		}
		conn_drop(k, "unexpected message (truncated or with fds)");
		return -1;
	}
	type = cz_proto_check(m.buf, (size_t)n);
	if (type < 0) {
		conn_drop(k, "bad message");
		return -1;
	}
	err = dispatch(k, &m, type);
	if (err < 0) {
		char why[96];

		snprintf(why, sizeof(why), "message type %d: %s", type,
			strerror(-err));
		conn_drop(k, why);
		return -1;
	}
	return 1;
}

static void on_conn(uv_poll_t *h, int status, int events)
{
	struct conn *k = h->data;
	int i;

	(void)events;
	if (status < 0) {
		conn_drop(k, uv_strerror(status));
		return;
	}
	/* Bounded, so one chatty process cannot starve the loop. */
	for (i = 0; i < 16; i++) {
		if (conn_recv_one(k) <= 0) {
			return;
		}
	}
}

/* --- the listening socket ------------------------------------------------- */

static bool peer_allowed(const struct cz_control *c, int fd, int *pid)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		return false;
	}
	*pid = cr.pid;
	if (!cz_sockets_uid_allowed(c->sockets, cr.uid)) {
		cz_log_peer(CZ_LOG_PEER_UNKNOWN, CZ_LOG_WARN,
			"control connection from pid %d (uid %u) "
			"refused: not our user", (int)cr.pid, (unsigned)cr.uid);
		return false;
	}
	return true;
}

static void conn_add(struct cz_control *c, int fd, int pid)
{
	struct conn *k = calloc(1, sizeof(*k));

	if (k == NULL || uv_poll_init(c->loop, &k->poll, fd) < 0) {
		free(k);
		close(fd);
		return;
	}
	k->poll.data = k;
	k->c = c;
	k->fd = fd;
	k->pid = pid;
	k->next = c->conns;
	c->conns = k;
	uv_poll_start(&k->poll, UV_READABLE, on_conn);
}

static void on_accept(uv_poll_t *h, int status, int events)
{
	struct cz_control *c = h->data;
	int fd, pid = 0, i;

	(void)events;
	if (status < 0) {
		cz_log(CZ_LOG_WARN, "control socket: poll: %s", uv_strerror(status));
		return;
	}
	for (i = 0; i < 64; i++) {
		fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED) {
				continue;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				cz_log(CZ_LOG_WARN, "control socket: accept: %s",
					strerror(errno));
			}
			return;
		}
		if (!peer_allowed(c, fd, &pid)) {
			close(fd);
			continue;
		}
		conn_add(c, fd, pid);
	}
}

static void make_name(char *buf, size_t size)
{
	uint64_t r = 0;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		r ^= (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^
		     (uint64_t)ts.tv_sec;
	}
	snprintf(buf, size, "clusterize-%d-%016llx", (int)getpid(),
		(unsigned long long)r);
}

static int listen_socket(struct cz_control *c)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t n = strlen(c->name);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0) {
		return -errno;
	}
	/* Abstract: sun_path[0] stays NUL; no file to clean up. */
	memcpy(sun.sun_path + 1, c->name, n);
	if (bind(fd, (struct sockaddr *)&sun,
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) < 0 ||
	    listen(fd, SOMAXCONN) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	c->fd = fd;
	return 0;
}

static void on_control_closed(uv_handle_t *h)
{
	free(h->data);
}

int cz_control_create(uv_loop_t *loop, enum cz_mode mode,
	const struct cz_control_events *ev, struct cz_control **out)
{
	struct cz_control *c = calloc(1, sizeof(*c));
	int err;

	if (c == NULL) {
		return -ENOMEM;
	}
	c->loop = loop;
	c->mode = mode;
	c->fd = -1;
	if (ev != NULL) {
		c->ev = *ev;
	}
	make_name(c->name, sizeof(c->name));
	err = listen_socket(c);
	if (err == 0) {
		err = cz_sockets_create(key_closing, c, &c->sockets);
	}
	if (err == 0) {
		err = cz_rr_create(loop, &c->rr);
	}
	if (err == 0) {
		err = uv_poll_init(loop, &c->poll, c->fd);
	}
	if (err < 0) {
		cz_sockets_destroy(c->sockets);
		cz_rr_destroy(c->rr);
		if (c->fd >= 0) {
			close(c->fd);
		}
		free(c);
		return err;
	}
	c->poll.data = c;
	uv_poll_start(&c->poll, UV_READABLE, on_accept);
	*out = c;
	return 0;
}

const char *cz_control_name(const struct cz_control *c)
{
	return c->name;
}

void cz_control_worker_stopping(struct cz_control *c, uint32_t worker_id)
{
	if (c != NULL) {
		cz_rr_worker_stopping(c->rr, worker_id);
	}
}

void cz_control_worker_exited(struct cz_control *c, uint32_t worker_id)
{
	if (c == NULL) {
		return;
	}
	cz_rr_worker_exited(c->rr, worker_id);
	cz_sockets_worker_exited(c->sockets, worker_id);
}

unsigned cz_control_listen_count(const struct cz_control *c,
	uint32_t worker_id)
{
	return c != NULL ? cz_sockets_listen_count(c->sockets, worker_id) : 0;
}

bool cz_control_worker_covers(const struct cz_control *c, uint32_t new_id,
	uint32_t old_id)
{
	return c == NULL || cz_sockets_worker_covers(c->sockets, new_id, old_id);
}

unsigned cz_control_worker_pending(const struct cz_control *c,
	uint32_t worker_id)
{
	return c != NULL ? cz_rr_worker_pending(c->rr, worker_id) : 0;
}

uint64_t cz_control_worker_conns(const struct cz_control *c,
	uint32_t worker_id)
{
	return c != NULL ? cz_rr_worker_conns(c->rr, worker_id) : 0;
}

size_t cz_control_worker_addrs(const struct cz_control *c, uint32_t worker_id,
	char *buf, size_t len)
{
	if (c == NULL) {
		if (len > 0) {
			buf[0] = '\0';
		}
		return 0;
	}
	return cz_sockets_worker_addrs(c->sockets, worker_id, buf, len);
}

void cz_control_each_listener(const struct cz_control *c,
	cz_rr_listener_fn *fn, void *data)
{
	if (c != NULL) {
		cz_rr_each_listener(c->rr, fn, data);
	}
}

int cz_control_adopt(struct cz_control *c, int fd)
{
	return cz_sockets_adopt(c->sockets, fd);
}

/* net.ipv4.ip_unprivileged_port_start (it applies to IPv6 too). */
static int unprivileged_port_start(void)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_unprivileged_port_start", "re");
	int v = 1024;

	if (f != NULL) {
		if (fscanf(f, "%d", &v) != 1) {
			v = 1024;
		}
		fclose(f);
	}
	return v;
}

int cz_control_set_bind_policy(struct cz_control *c,
	const struct cz_spawn_ids *ids, const char *const *allow, unsigned n)
{
	cz_sockets_set_worker_ids(c->sockets, ids);
	return cz_sockets_set_policy(c->sockets, ids->uid, allow, n,
		unprivileged_port_start());
}

void cz_control_destroy(struct cz_control *c)
{
	if (c == NULL) {
		return;
	}
	while (c->conns != NULL) {
		conn_close(c->conns);
	}
	/* Keys first: closing one destroys its rr listener. */
	cz_sockets_destroy(c->sockets);
	cz_rr_destroy(c->rr);
	uv_close((uv_handle_t *)&c->poll, on_control_closed);
	close(c->fd);
}
