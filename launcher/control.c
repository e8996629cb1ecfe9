/*
 * The control server (control.h).  Each worker has an attach socket; every
 * process of the worker that needs the primary sends one end of a fresh
 * socketpair over it (ATTACH), and makes synchronous requests on that
 * connection, each answered by one REPLY, possibly with one fd.  A
 * connection speaks for the worker whose attach socket brought it, whatever
 * it says.  Anything malformed closes that connection with a (rate-limited)
 * warning: the primary must survive any bytes a worker sends.
 *
 * The attach sockets are attach.c's; the listens Node workers ask for over
 * their IPC channel, control_grant.c's.  control_int.h is what the three
 * share.
 */
#include "control_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "conns.h"
#include "escape.h"
#include "fdpass.h"
#include "listen_watch.h"
#include "log.h"
#include "rr.h"
#include "sockets.h"

/* --- what a connection acquired -------------------------------------------- */

/* What a connection acquired on one key: released when it goes. */
struct acq {
	uint32_t key;
	unsigned holds;
	unsigned listens;
};

static struct acq *acq_find(const struct conn *k, uint32_t key)
{
	unsigned i;

	for (i = 0; i < k->nacq; i++) {
		if (k->acq[i].key == key) {
			return &k->acq[i];
		}
	}
	return NULL;
}

/* Counts `holds` and `listens` more on `key` for `k`; 0 or -ENOMEM. */
static int acq_add(struct conn *k, uint32_t key, unsigned holds,
	unsigned listens)
{
	struct acq *a = acq_find(k, key);

	if (a == NULL) {
		if (k->nacq == k->acq_cap) {
			unsigned cap = k->acq_cap ? k->acq_cap * 2 : 4;
			void *p = realloc(k->acq, cap * sizeof(*k->acq));

			if (p == NULL) {
				return -ENOMEM;
			}
			k->acq = p;
			k->acq_cap = cap;
		}
		a = &k->acq[k->nacq++];
		*a = (struct acq){ .key = key };
	}
	a->holds += holds;
	a->listens += listens;
	return 0;
}

/*
 * One hold (and a listen) on `key` was released: off the books of `k`, or
 * of another connection of the worker (a hold taken by a process that
 * forked, released by the child that kept the socket).
 */
static void acq_release(struct conn *k, uint32_t key, bool listened)
{
	struct acq *a = acq_find(k, key);
	struct conn *o;

	for (o = k->w->conns; a == NULL && o != NULL; o = o->next) {
		a = acq_find(o, key);
		k = o;
	}
	if (a == NULL) {
		return;
	}
	a->holds -= a->holds > 0;
	a->listens -= listened && a->listens > 0;
	if (a->holds == 0 && a->listens == 0) {
		*a = k->acq[--k->nacq];
	}
}

/* Gives back everything `k` acquired: no process that could use it is left. */
static void acq_abandon(struct conn *k)
{
	struct cz_control *c = k->w->c;
	unsigned i;

	cz_rr_owner_gone(c->rr, k);
	for (i = 0; i < k->nacq; i++) {
		struct cz_key *key = cz_sockets_find(c->sockets, k->acq[i].key);

		if (key != NULL) {
			cz_sockets_abandon(c->sockets, key, k->w->worker_id,
				k->acq[i].holds, k->acq[i].listens);
		}
	}
	k->nacq = 0;
}

/* --- connections ----------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h)
{
	struct conn *k = h->data;

	free(k->acq);
	free(k);
}

/* Closes `k`; with `release`, what it acquired goes too. */
void cz_control_conn_close(struct conn *k, bool release)
{
	struct conn **pp;

	for (pp = &k->w->conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	}
	k->w->nconns--;
	if (release) {
		acq_abandon(k);
	}
	uv_close((uv_handle_t *)&k->poll, on_conn_closed);
	close(k->fd);
}

static void conn_drop(struct conn *k, const char *why)
{
	cz_log_peer(k->w->worker_id, CZ_LOG_WARN, "worker %u: control connection "
		"from pid %d: %s: closing it", k->w->worker_id, k->pid, why);
	cz_control_conn_close(k, true);
}

/* Sends `r`, with `fd` attached unless it is < 0. */
static int conn_reply(struct conn *k, struct cz_msg_reply *r, int fd)
{
	ssize_t n = cz_fdpass_send(k->fd, r, sizeof(*r), fd,
		MSG_NOSIGNAL | MSG_DONTWAIT);

	return n < 0 ? (int)n : 0;
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

void cz_control_emit_listening_of(struct cz_control *c, uint32_t worker_id,
	int pid, const struct cz_key *key)
{
	char a[CZ_ADDR_STRLEN];

	if (c->ev.listening == NULL) {
		return;
	}
	cz_addr_format((const void *)&key->bound, key->bound_len, key->type,
		a, sizeof(a));
	c->ev.listening(c->ev.data, worker_id, pid, a);
}

static void emit_listening(struct conn *k, const struct cz_key *key)
{
	cz_control_emit_listening_of(k->w->c, k->w->worker_id, k->pid, key);
}

/* --- requests -------------------------------------------------------------- */

static int on_hello(struct conn *k, const union msg *m)
{
	struct cz_control *c = k->w->c;
	struct cz_msg_reply r;
	const struct cz_conns *conns;

	if (k->hello) {
		return -EPROTO;
	}
	k->hello = true;
	if (c->ev.hello != NULL) {
		char exe[4 * sizeof(m->hello.exe)];

		cz_escape_str(exe, sizeof(exe), m->hello.exe);
		c->ev.hello(c->ev.data, k->w->worker_id, k->pid, m->hello.flags,
			exe);
	}
	reply_init(&r, m, 0);
	/* Every process of the worker counts into the same page. */
	conns = cz_conntab_find(c->conntab, k->w->worker_id);
	return conn_reply(k, &r, conns != NULL ? cz_conns_fd(conns) : -1);
}

static int on_bind(struct conn *k, const union msg *m)
{
	struct cz_control *c = k->w->c;
	uint32_t wid = k->w->worker_id;
	struct cz_msg_reply r;
	struct cz_key *key = NULL;
	int err = cz_sockets_bind(c->sockets, wid, &m->bind, &key);

	if (err == 0 && acq_add(k, key->id, 1, key->type == SOCK_DGRAM) < 0) {
		cz_sockets_release(c->sockets, key, wid, false);
		err = -ENOMEM;
	}
	reply_init(&r, m, err);
	if (err < 0) {
		char a[CZ_ADDR_STRLEN];

		cz_log_peer(wid, CZ_LOG_DEBUG, "worker %u: bind %s: %s", wid,
			cz_addr_format((const void *)&m->bind.addr.ss,
				m->bind.addr.len, m->bind.type, a, sizeof(a)),
			strerror(-err));
		return conn_reply(k, &r, -1);
	}
	reply_bound(&r, key);
	err = conn_reply(k, &r, key->type == SOCK_DGRAM ? key->fd : -1);
	if (err < 0) {
		acq_release(k, key->id, key->type == SOCK_DGRAM);
		cz_sockets_release(c->sockets, key, wid, false);
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

/* A channel went: it no longer counts against its worker's limit. */
static void chan_closed(void *data, uint32_t worker_id, void *owner)
{
	struct cz_control *c = data;
	struct conn *k = owner;

	(void)worker_id;
	if (!c->destroying && k != NULL && k->w->nchans > 0) {
		k->w->nchans--;
	}
}

/* Starts rr dispatching on `key` (its key->data); 0 or -errno. */
int cz_control_key_listener(struct cz_control *c, struct cz_key *key)
{
	char a[CZ_ADDR_STRLEN];
	struct cz_rr_listener *l;
	int err;

	cz_addr_format((const void *)&key->bound, key->bound_len, key->type, a,
		sizeof(a));
	err = cz_rr_listener_create(c->rr, key->fd, key->nonblock, a, &l);
	if (err == 0) {
		cz_rr_listener_set_data(l, key);
		if (key->adopted) {
			cz_rr_listener_lent(l);
		}
		key->data = l;
	}
	return err;
}

/* Opens an rr channel on `key` for `k`; returns its fd or -errno. */
static int open_channel(struct conn *k, struct cz_key *key, uint32_t *chan)
{
	struct cz_control *c = k->w->c;
	int fd;

	if (k->w->nchans >= CZ_MAX_CHANNELS) {
		cz_log_peer(k->w->worker_id, CZ_LOG_WARN, "worker %u: listen: "
			"%u channels open already: refused with ENOBUFS",
			k->w->worker_id, k->w->nchans);
		return -ENOBUFS;
	}
	if (key->data == NULL && (fd = cz_control_key_listener(c, key)) < 0) {
		return fd;
	}
	fd = cz_rr_chan_open(key->data, k->w->worker_id, k, chan);
	if (fd >= 0) {
		k->w->nchans++;
	}
	return fd;
}

/*
 * The mode a LISTEN of `key` gets.  A socket the app sends elsewhere
 * (CZ_LISTEN_F_SHARED) must be the socket itself; in rr that key is then
 * shared for good, so the primary never accepts on a socket a worker
 * holds; one the primary accepts on already cannot be given out.
 */
static int listen_mode(struct conn *k, struct cz_key *key, uint32_t flags,
	enum cz_mode *mode)
{
	struct cz_control *c = k->w->c;

	*mode = c->mode;
	if (key->shared) {
		*mode = CZ_MODE_SHARED;
	} else if ((flags & CZ_LISTEN_F_SHARED) && c->mode == CZ_MODE_RR) {
		if (key->data != NULL) {
			return -EADDRINUSE;
		}
		key->shared = true;
		*mode = CZ_MODE_SHARED;
		cz_log_peer(k->w->worker_id, CZ_LOG_DEBUG, "worker %u: key %u is "
			"shared from now on: the worker sends the socket itself",
			k->w->worker_id, key->id);
	}
	return 0;
}

static int on_listen(struct conn *k, const union msg *m)
{
	struct cz_control *c = k->w->c;
	uint32_t wid = k->w->worker_id;
	struct cz_key *key = cz_sockets_find(c->sockets, m->listen.key);
	unsigned before = cz_sockets_listen_count(c->sockets, wid);
	struct cz_msg_reply r;
	enum cz_mode mode = c->mode;
	uint32_t chan = 0;
	int err = -EBADF, fd = -1;

	if (key != NULL && cz_sockets_holds(key, wid) > 0) {
		err = listen_mode(k, key, m->listen.flags, &mode);
	}
	if (err == 0) {
		err = cz_sockets_listen(c->sockets, key, wid, m->listen.backlog,
			m->listen.nonblock != 0, &m->listen.opts);
	}
	if (err == 0 && mode == CZ_MODE_RR) {
		err = fd = open_channel(k, key, &chan);
	} else if (err == 0) {
		fd = key->fd;
	}
	/* Booked only if this LISTEN counted one (a second one of a socket
	 * already listening does not). */
	if (err >= 0 && cz_sockets_listen_count(c->sockets, wid) > before &&
	    acq_add(k, key->id, 0, 1) < 0) {
		err = -ENOMEM;
		if (chan != 0) {
			cz_rr_chan_close(c->rr, chan, wid);
		}
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
			cz_rr_chan_close(c->rr, chan, wid);
		}
		return err;
	}
	emit_listening(k, key);
	return 0;
}

static int on_release(struct conn *k, const union msg *m)
{
	struct cz_control *c = k->w->c;
	uint32_t wid = k->w->worker_id;
	struct cz_key *key = cz_sockets_find(c->sockets, m->release.key);
	struct cz_msg_reply r;
	bool listened;
	int err = -ENOENT;

	if (m->release.channel != 0) {
		err = cz_rr_chan_close(c->rr, m->release.channel, wid);
	}
	if (key != NULL) {
		listened = m->release.channel != 0 ||
			   ((c->mode == CZ_MODE_SHARED || key->shared) &&
			    key->listening);
		acq_release(k, key->id, listened);
		err = cz_sockets_release(c->sockets, key, wid, listened);
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

/*
 * recvmsg() returned 0 on a SOCK_SEQPACKET socket: the peer is gone, or
 * it sent an empty message.  Only the first means the end.
 */
bool cz_control_peer_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP));
}

/* Closes every fd that came with `mh`; returns how many. */
unsigned cz_control_close_fds(struct msghdr *mh, int *first)
{
	struct cmsghdr *cm;
	unsigned count = 0;

	for (cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
			continue;
		}
		for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		     i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (count++ == 0 && first != NULL) {
				*first = fd;
			} else {
				close(fd);
			}
		}
	}
	return count;
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
	if (n == 0 && !cz_control_peer_gone(k->fd)) {
		conn_drop(k, "empty message");
		return -1;
	}
	if (n <= 0) {
		/* The process and every child that kept its connection have
		 * exited or exec'd: nothing it acquired is in use any more. */
		cz_log_peer(k->w->worker_id, CZ_LOG_DEBUG, "worker %u: control "
			"connection from pid %d closed", k->w->worker_id, k->pid);
		cz_control_conn_close(k, true);
		return -1;
	}
	if (cz_control_close_fds(&mh, NULL) > 0 ||
	    (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
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

void cz_control_on_conn(uv_poll_t *h, int status, int events)
{
	struct conn *k = h->data;
	int i;

	(void)events;
	if (status < 0) {
		conn_drop(k, uv_strerror(status));
		return;
	}
	for (i = 0; i < CZ_CONTROL_BATCH; i++) {
		if (conn_recv_one(k) <= 0) {
			return;
		}
	}
}

/* --- the control ----------------------------------------------------------- */

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
	if (ev != NULL) {
		c->ev = *ev;
	}
	err = cz_sockets_create(key_closing, c, &c->sockets);
	if (err == 0) {
		err = cz_rr_create(loop, &c->rr);
	}
	if (err == 0) {
		err = cz_lwatch_create(loop, c->sockets, c->rr, &c->watch);
	}
	if (err == 0) {
		err = cz_conntab_create(loop, &c->conntab);
	}
	if (err == 0) {
		cz_rr_set_conntab(c->rr, c->conntab);
	}
	if (err < 0) {
		cz_sockets_destroy(c->sockets);
		cz_rr_destroy(c->rr);
		free(c);
		return err;
	}
	cz_rr_set_chan_closed(c->rr, chan_closed, c);
	*out = c;
	return 0;
}

void cz_control_worker_stopping(struct cz_control *c, uint32_t worker_id)
{
	if (c != NULL) {
		cz_rr_worker_stopping(c->rr, worker_id);
	}
}

void cz_control_stop_accepting(struct cz_control *c)
{
	if (c != NULL) {
		cz_rr_stop_accepting(c->rr);
	}
}

unsigned cz_control_held(const struct cz_control *c)
{
	return c != NULL ? cz_rr_held(c->rr) : 0;
}

void cz_control_worker_exited(struct cz_control *c, uint32_t worker_id)
{
	struct wroot *w;

	if (c == NULL) {
		return;
	}
	cz_rr_worker_exited(c->rr, worker_id);
	cz_sockets_worker_exited(c->sockets, worker_id);
	w = cz_control_worker_find(c, worker_id);
	if (w != NULL) {
		cz_control_worker_close(c, w);
	}
	/* After its channels: they read these counters. */
	cz_conntab_drop(c->conntab, worker_id);
}

unsigned cz_control_worker_active(const struct cz_control *c,
	uint32_t worker_id)
{
	return c != NULL ? cz_conntab_open(c->conntab, worker_id) : 0;
}

int cz_control_set_balance(struct cz_control *c, enum cz_balance policy,
	cz_balance_slot_fn *slot_of, void *data)
{
	cz_rr_set_slots(c->rr, slot_of, data);
	return cz_rr_set_balance(c->rr, policy);
}

void cz_control_slots_changed(struct cz_control *c)
{
	if (c != NULL) {
		cz_rr_slots_changed(c->rr);
	}
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

unsigned cz_control_worker_unacked(const struct cz_control *c,
	uint32_t worker_id)
{
	return c != NULL ? cz_rr_worker_unacked(c->rr, worker_id) : 0;
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
	c->destroying = true;
	cz_lwatch_destroy(c->watch);
	while (c->workers != NULL) {
		cz_control_worker_close(c, c->workers);
	}
	/* Keys first: closing one destroys its rr listener. */
	cz_sockets_destroy(c->sockets);
	cz_rr_destroy(c->rr);
	cz_conntab_destroy(c->conntab);
	free(c);
}
