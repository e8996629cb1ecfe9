#include "rr.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"

#define ACK_BATCH 16

struct rr_conn {
	int fd;
	socklen_t plen;
	struct sockaddr_storage peer;
};

/* A connection sent on a channel; seq 0 = free slot. */
struct rr_slot {
	uint32_t seq;
	struct rr_conn c;
};

struct rr_chan {
	uv_poll_t poll; /* readable primary end: ACK/NACK */
	struct cz_rr_listener *l;
	uint32_t id;
	uint32_t worker_id;
	int fd;  /* primary end, non-blocking */
	int wfd; /* the worker's end, kept to read back untaken CONNs */
	uint32_t next_seq;
	unsigned inflight;
	uint64_t progress; /* last ACK, or first CONN sent after none */
	bool stalled;
	bool stopping;
	struct rr_slot slots[CZ_RR_CREDIT];
};

struct cz_rr_listener {
	uv_poll_t poll;
	struct cz_rr *rr;
	struct cz_rr_listener *next;
	int fd;
	bool nonblock;
	bool polling;
	bool emfile;    /* accept failed hard (EMFILE...): paused until a tick */
	bool warned;    /* ... and said so; reset by a successful accept */
	struct rr_chan **chans;
	unsigned nchans, chans_cap, next_pick;
	struct rr_conn *q; /* accepted, not yet sent: a ring */
	unsigned qhead, qlen, qcap;
	char name[160];
};

struct cz_rr {
	uv_loop_t *loop;
	uv_timer_t timer;
	struct cz_rr_listener *listeners;
	uint32_t next_chan_id;
	uint64_t fake_now;
};

static uint64_t now_ms(const struct cz_rr *rr)
{
	return rr->fake_now != 0 ? rr->fake_now : uv_now(rr->loop);
}

static void close_fd(int fd)
{
	if (fd >= 0) {
		close(fd);
	}
}

/* --- the queue of undispatched connections ----------------------------- */

static int q_push(struct cz_rr_listener *l, const struct rr_conn *c)
{
	if (l->qlen == l->qcap) {
		unsigned cap = l->qcap ? l->qcap * 2 : 16, i;
		struct rr_conn *q = malloc(cap * sizeof(*q));

		if (q == NULL) {
			return -ENOMEM;
		}
		for (i = 0; i < l->qlen; i++) {
			q[i] = l->q[(l->qhead + i) % l->qcap];
		}
		free(l->q);
		l->q = q;
		l->qcap = cap;
		l->qhead = 0;
	}
	l->q[(l->qhead + l->qlen) % l->qcap] = *c;
	l->qlen++;
	return 0;
}

static struct rr_conn *q_front(struct cz_rr_listener *l)
{
	return l->qlen > 0 ? &l->q[l->qhead] : NULL;
}

static void q_pop(struct cz_rr_listener *l)
{
	l->qhead = (l->qhead + 1) % l->qcap;
	l->qlen--;
}

/* --- channels ------------------------------------------------------------- */

static bool has_credit(const struct rr_chan *ch)
{
	return !ch->stalled && !ch->stopping && ch->inflight < CZ_RR_CREDIT;
}

/* The next channel with credit, round robin. */
static struct rr_chan *pick(struct cz_rr_listener *l)
{
	unsigned i, idx;

	for (i = 0; i < l->nchans; i++) {
		idx = (l->next_pick + i) % l->nchans;
		if (has_credit(l->chans[idx])) {
			l->next_pick = (idx + 1) % l->nchans;
			return l->chans[idx];
		}
	}
	return NULL;
}

static bool any_credit(const struct cz_rr_listener *l)
{
	unsigned i;

	for (i = 0; i < l->nchans; i++) {
		if (has_credit(l->chans[i])) {
			return true;
		}
	}
	return false;
}

static struct rr_slot *slot_find(struct rr_chan *ch, uint32_t seq)
{
	unsigned i;

	for (i = 0; i < CZ_RR_CREDIT; i++) {
		if (ch->slots[i].seq == seq && seq != 0) {
			return &ch->slots[i];
		}
	}
	return NULL;
}

static void slot_free(struct rr_chan *ch, struct rr_slot *s, bool close_it)
{
	if (close_it) {
		close(s->c.fd);
	}
	s->seq = 0;
	ch->inflight--;
}

/* Sends CONN + fd.  The slot keeps the primary's copy until the ACK. */
static int chan_send(struct rr_chan *ch, const struct rr_conn *c)
{
	struct cz_msg_conn m;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = { &m, sizeof(m) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	uint32_t seq = ch->next_seq;
	struct rr_slot *s = ch->slots;
	ssize_t n;

	while (s->seq != 0) {
		s++; /* has_credit() guarantees a free slot */
	}
	memset(&m, 0, offsetof(struct cz_msg_conn, peer.ss));
	cz_proto_init(&m.hdr, CZ_MSG_CONN, seq);
	m.nonblock = ch->l->nonblock;
	m.peer.len = c->plen;
	memcpy(&m.peer.ss, &c->peer, c->plen);
	memset((char *)&m.peer.ss + c->plen, 0, sizeof(m.peer.ss) - c->plen);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &c->fd, sizeof(int));
	do {
		n = sendmsg(ch->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		return -errno;
	}
	ch->next_seq = seq + 1 == 0 ? 1 : seq + 1;
	s->seq = seq;
	s->c = *c;
	if (ch->inflight++ == 0) {
		ch->progress = now_ms(ch->l->rr);
	}
	return 0;
}

/* Sends `c` to a channel with credit; 0, or -EAGAIN if none took it. */
static int send_any(struct cz_rr_listener *l, const struct rr_conn *c)
{
	struct rr_chan *ch;
	int err;

	while ((ch = pick(l)) != NULL) {
		err = chan_send(ch, c);
		if (err == 0) {
			return 0;
		}
		/* A full or broken channel gets nothing until a tick clears it. */
		cz_log(CZ_LOG_DEBUG, "channel %u of worker %u: send: %s",
			ch->id, ch->worker_id, strerror(-err));
		ch->stalled = true;
		ch->progress = now_ms(l->rr);
	}
	return -EAGAIN;
}

/* Queues `c` for the next channel with credit; never loses it. */
static void requeue(struct cz_rr_listener *l, const struct rr_conn *c)
{
	if (q_push(l, c) < 0) {
		cz_log(CZ_LOG_ERROR, "%s: out of memory: dropping a connection",
			l->name);
		close(c->fd);
	}
}

static void update_poll(struct cz_rr_listener *l);

/* Sends queued connections while channels have credit. */
static void drain(struct cz_rr_listener *l)
{
	struct rr_conn *c;

	while ((c = q_front(l)) != NULL && send_any(l, c) == 0) {
		q_pop(l);
	}
	update_poll(l);
}

static void close_cmsg_fds(struct msghdr *mh)
{
	struct cmsghdr *cm;

	for (cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			int *fds = (int *)(void *)CMSG_DATA(cm);
			size_t i, n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (i = 0; i < n; i++) {
				close(fds[i]);
			}
		}
	}
}

/*
 * Reads back every message still queued on the worker's end: the kernel
 * gives each message to one reader, so what we read the worker never took.
 * Their connections are queued for other workers.
 */
static unsigned chan_reclaim(struct rr_chan *ch)
{
	union {
		struct cz_msg_conn m;
		char buf[CZ_MSG_MAX];
	} u;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} cu;
	unsigned count = 0;

	for (;;) {
		struct iovec iov = { u.buf, sizeof(u.buf) };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cu.buf, .msg_controllen = sizeof(cu.buf),
		};
		struct rr_slot *s;
		ssize_t n = recvmsg(ch->wfd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		close_cmsg_fds(&mh);
		if (cz_proto_check(u.buf, (size_t)n) != CZ_MSG_CONN) {
			continue;
		}
		s = slot_find(ch, u.m.hdr.seq);
		if (s != NULL) {
			requeue(ch->l, &s->c);
			slot_free(ch, s, false);
			count++;
		}
	}
	return count;
}

static void chan_nudge(struct rr_chan *ch)
{
	struct cz_msg_nudge m;

	cz_proto_init(&m.hdr, CZ_MSG_NUDGE, 0);
	if (send(ch->fd, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		cz_log(CZ_LOG_DEBUG, "channel %u: nudge: %s", ch->id,
			strerror(errno));
	}
}

static bool seq_le(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) <= 0;
}

static void chan_ack(struct rr_chan *ch, uint32_t seq)
{
	unsigned i;

	for (i = 0; i < CZ_RR_CREDIT; i++) {
		if (ch->slots[i].seq != 0 && seq_le(ch->slots[i].seq, seq)) {
			slot_free(ch, &ch->slots[i], true);
		}
	}
	ch->progress = now_ms(ch->l->rr);
	ch->stalled = false;
}

static void chan_nack(struct rr_chan *ch, uint32_t seq)
{
	struct rr_slot *s = slot_find(ch, seq);

	if (s != NULL) {
		cz_log(CZ_LOG_TRACE, "channel %u: NACK %u: re-dispatching",
			ch->id, seq);
		requeue(ch->l, &s->c);
		slot_free(ch, s, false);
	}
	ch->progress = now_ms(ch->l->rr);
}

static void chan_handle_msg(struct rr_chan *ch, struct mmsghdr *mm,
	const void *buf)
{
	int type;

	close_cmsg_fds(&mm->msg_hdr);
	type = cz_proto_check(buf, mm->msg_len);
	if (type == CZ_MSG_ACK) {
		chan_ack(ch, ((const struct cz_msg_hdr *)buf)->seq);
	} else if (type == CZ_MSG_NACK) {
		chan_nack(ch, ((const struct cz_msg_hdr *)buf)->seq);
	} else {
		cz_log(CZ_LOG_WARN, "channel %u of worker %u: bad message "
			"(%u bytes): ignored", ch->id, ch->worker_id,
			mm->msg_len);
	}
}

/* Reads ACK/NACK messages in batches: one syscall for many connections. */
static void chan_read(struct rr_chan *ch)
{
	static union {
		struct cz_msg_hdr h;
		char buf[CZ_MSG_MAX];
	} bufs[ACK_BATCH];
	static union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} cbufs[ACK_BATCH];
	struct iovec iov[ACK_BATCH];
	struct mmsghdr mm[ACK_BATCH];
	int i, n;

	for (;;) {
		for (i = 0; i < ACK_BATCH; i++) {
			iov[i] = (struct iovec){ bufs[i].buf, sizeof(bufs[i].buf) };
			memset(&mm[i], 0, sizeof(mm[i]));
			mm[i].msg_hdr.msg_iov = &iov[i];
			mm[i].msg_hdr.msg_iovlen = 1;
			mm[i].msg_hdr.msg_control = cbufs[i].buf;
			mm[i].msg_hdr.msg_controllen = sizeof(cbufs[i].buf);
		}
		n = recvmmsg(ch->fd, mm, ACK_BATCH,
			MSG_DONTWAIT | MSG_CMSG_CLOEXEC, NULL);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return;
		}
		for (i = 0; i < n; i++) {
			chan_handle_msg(ch, &mm[i], bufs[i].buf);
		}
		if (n < ACK_BATCH) {
			return;
		}
	}
}

static void on_chan(uv_poll_t *h, int status, int events)
{
	struct rr_chan *ch = h->data;

	(void)events;
	if (status < 0) {
		cz_log(CZ_LOG_WARN, "channel %u of worker %u: poll: %s",
			ch->id, ch->worker_id, uv_strerror(status));
		uv_poll_stop(h);
		return;
	}
	chan_read(ch);
	drain(ch->l);
}

static void on_chan_closed(uv_handle_t *h)
{
	free(h->data);
}

/* Detaches `ch` from its listener and closes it; untaken copies requeued. */
static void chan_destroy(struct rr_chan *ch, bool reclaim)
{
	struct cz_rr_listener *l = ch->l;
	unsigned i;

	if (reclaim) {
		chan_reclaim(ch);
	}
	/* What is left was taken by the worker: it owns its own copy. */
	for (i = 0; i < CZ_RR_CREDIT; i++) {
		if (ch->slots[i].seq != 0) {
			slot_free(ch, &ch->slots[i], true);
		}
	}
	for (i = 0; i < l->nchans; i++) {
		if (l->chans[i] == ch) {
			l->chans[i] = l->chans[--l->nchans];
			break;
		}
	}
	if (l->next_pick >= l->nchans) {
		l->next_pick = 0;
	}
	uv_close((uv_handle_t *)&ch->poll, on_chan_closed);
	close_fd(ch->fd);
	close_fd(ch->wfd);
}

static int chans_grow(struct cz_rr_listener *l)
{
	unsigned cap;
	void *p;

	if (l->nchans < l->chans_cap) {
		return 0;
	}
	cap = l->chans_cap ? l->chans_cap * 2 : 8;
	p = realloc(l->chans, cap * sizeof(*l->chans));
	if (p == NULL) {
		return -ENOMEM;
	}
	l->chans = p;
	l->chans_cap = cap;
	return 0;
}

int cz_rr_chan_open(struct cz_rr_listener *l, uint32_t worker_id,
	uint32_t *id)
{
	struct rr_chan *ch;
	int sv[2], err;

	if (chans_grow(l) < 0 || (ch = calloc(1, sizeof(*ch))) == NULL) {
		return -ENOMEM;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		err = -errno;
		free(ch);
		return err;
	}
	/* uv_poll_init makes the primary's end non-blocking. */
	err = uv_poll_init(l->rr->loop, &ch->poll, sv[0]);
	if (err == 0) {
		err = uv_poll_start(&ch->poll, UV_READABLE, on_chan);
	}
	if (err < 0) {
		close(sv[0]);
		close(sv[1]);
		free(ch);
		return err;
	}
	ch->poll.data = ch;
	ch->l = l;
	ch->fd = sv[0];
	ch->wfd = sv[1];
	ch->worker_id = worker_id;
	ch->next_seq = 1;
	ch->id = ++l->rr->next_chan_id;
	if (ch->id == 0) {
		ch->id = ++l->rr->next_chan_id;
	}
	l->chans[l->nchans++] = ch;
	*id = ch->id;
	drain(l);
	return ch->wfd;
}

static struct rr_chan *chan_find(const struct cz_rr *rr, uint32_t id)
{
	const struct cz_rr_listener *l;
	unsigned i;

	for (l = rr->listeners; l != NULL; l = l->next) {
		for (i = 0; i < l->nchans; i++) {
			if (l->chans[i]->id == id) {
				return l->chans[i];
			}
		}
	}
	return NULL;
}

int cz_rr_chan_close(struct cz_rr *rr, uint32_t id, uint32_t worker_id)
{
	struct rr_chan *ch = chan_find(rr, id);
	struct cz_rr_listener *l;

	if (ch == NULL || ch->worker_id != worker_id) {
		return -ENOENT;
	}
	l = ch->l;
	chan_destroy(ch, true);
	drain(l);
	return 0;
}

/* Calls fn on every channel of `worker_id`, then drains each listener. */
static void each_worker_chan(struct cz_rr *rr, uint32_t worker_id,
	void (*fn)(struct rr_chan *))
{
	struct cz_rr_listener *l;
	unsigned i;

	for (l = rr->listeners; l != NULL; l = l->next) {
		for (i = l->nchans; i-- > 0;) {
			if (l->chans[i]->worker_id == worker_id) {
				fn(l->chans[i]);
			}
		}
		drain(l);
	}
}

static void chan_stop(struct rr_chan *ch)
{
	ch->stopping = true;
	chan_reclaim(ch);
}

static void chan_gone(struct rr_chan *ch)
{
	chan_destroy(ch, true);
}

void cz_rr_worker_stopping(struct cz_rr *rr, uint32_t worker_id)
{
	each_worker_chan(rr, worker_id, chan_stop);
}

void cz_rr_worker_exited(struct cz_rr *rr, uint32_t worker_id)
{
	each_worker_chan(rr, worker_id, chan_gone);
}

/* --- stall detection ------------------------------------------------------ */

static int outq(int fd)
{
	int n = 0;

	if (ioctl(fd, SIOCOUTQ, &n) < 0) {
		return 0;
	}
	return n;
}

static void chan_check(struct rr_chan *ch, uint64_t now)
{
	unsigned n;

	if (ch->stalled) {
		/* The worker read everything, the nudge included: alive again. */
		if (outq(ch->fd) == 0) {
			ch->stalled = false;
			ch->progress = now;
		}
		return;
	}
	if (ch->inflight == 0 || now - ch->progress <= CZ_RR_STALL_MS) {
		return;
	}
	ch->stalled = true;
	n = chan_reclaim(ch);
	chan_nudge(ch);
	cz_log(CZ_LOG_DEBUG, "channel %u of worker %u: no ACK for %ums: "
		"%u connection(s) given to other workers", ch->id,
		ch->worker_id, CZ_RR_STALL_MS, n);
}

void cz_rr_tick(struct cz_rr *rr)
{
	uint64_t now = now_ms(rr);
	struct cz_rr_listener *l;
	unsigned i;

	for (l = rr->listeners; l != NULL; l = l->next) {
		for (i = 0; i < l->nchans; i++) {
			chan_check(l->chans[i], now);
		}
		l->emfile = false;
		drain(l);
	}
}

static void on_tick(uv_timer_t *t)
{
	cz_rr_tick(t->data);
}

/* --- listeners ------------------------------------------------------------ */

/* Returns whether to keep accepting after accept4() failed with `err`. */
static bool on_accept_error(struct cz_rr_listener *l, int err)
{
	switch (err) {
	case EINTR:
	case ECONNABORTED:
	case EPROTO:
	case EPERM:
	case ENETDOWN:
	case ENETUNREACH:
	case EHOSTDOWN:
	case EHOSTUNREACH:
	case ENONET:
	case ENOPROTOOPT:
	case EOPNOTSUPP:
	case ETIMEDOUT:
		/* That connection's problem, not the listener's. */
		return true;
	default:
		break;
	}
	/* Out of fds or memory, or a broken socket: retrying at once would
	 * spin; the next tick resumes. */
	if (!l->warned) {
		cz_log(CZ_LOG_WARN, "accept on %s: %s", l->name, strerror(err));
		l->warned = true;
	}
	l->emfile = true;
	return false;
}

static void on_listener(uv_poll_t *h, int status, int events)
{
	struct cz_rr_listener *l = h->data;
	int flags = SOCK_CLOEXEC | (l->nonblock ? SOCK_NONBLOCK : 0);
	struct rr_conn c;
	int i;

	(void)events;
	if (status < 0) {
		/* Not retried: a broken socket would spin the loop. */
		cz_log(CZ_LOG_WARN, "%s: poll: %s", l->name, uv_strerror(status));
		uv_poll_stop(h);
		l->polling = false;
		l->emfile = true;
		return;
	}
	for (i = 0; i < CZ_RR_BATCH && l->qlen == 0 && !l->emfile; i++) {
		c.plen = sizeof(c.peer);
		c.fd = accept4(l->fd, (struct sockaddr *)&c.peer, &c.plen, flags);
		if (c.fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    !on_accept_error(l, errno)) {
				break;
			}
			continue;
		}
		l->warned = false;
		if (send_any(l, &c) < 0) {
			requeue(l, &c);
		}
	}
	update_poll(l);
}

static void update_poll(struct cz_rr_listener *l)
{
	bool want = l->qlen == 0 && !l->emfile && any_credit(l);

	if (want == l->polling) {
		return;
	}
	if (want && uv_poll_start(&l->poll, UV_READABLE, on_listener) < 0) {
		return;
	}
	if (!want) {
		uv_poll_stop(&l->poll);
	}
	l->polling = want;
}

int cz_rr_listener_create(struct cz_rr *rr, int fd, bool conn_nonblock,
	const char *name, struct cz_rr_listener **out)
{
	struct cz_rr_listener *l = calloc(1, sizeof(*l));
	int err;

	if (l == NULL) {
		return -ENOMEM;
	}
	err = uv_poll_init(rr->loop, &l->poll, fd);
	if (err < 0) {
		free(l);
		return err;
	}
	l->poll.data = l;
	l->rr = rr;
	l->fd = fd;
	l->nonblock = conn_nonblock;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->next = rr->listeners;
	rr->listeners = l;
	if (!uv_is_active((uv_handle_t *)&rr->timer)) {
		uv_timer_start(&rr->timer, on_tick, CZ_RR_TICK_MS, CZ_RR_TICK_MS);
	}
	*out = l;
	return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
	struct cz_rr_listener *l = h->data;

	free(l->chans);
	free(l->q);
	free(l);
}

void cz_rr_listener_destroy(struct cz_rr_listener *l)
{
	struct cz_rr_listener **pp;

	for (pp = &l->rr->listeners; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	}
	while (l->nchans > 0) {
		chan_destroy(l->chans[0], false);
	}
	while (l->qlen > 0) {
		close(q_front(l)->fd);
		q_pop(l);
	}
	uv_close((uv_handle_t *)&l->poll, on_listener_closed);
}

void cz_rr_dispatch(struct cz_rr_listener *l, int fd,
	const struct sockaddr *peer, socklen_t peer_len)
{
	struct rr_conn c = { .fd = fd };

	if (peer != NULL && peer_len <= sizeof(c.peer)) {
		memcpy(&c.peer, peer, peer_len);
		c.plen = peer_len;
	}
	requeue(l, &c);
	drain(l);
}

/* --- the dispatcher ------------------------------------------------------- */

int cz_rr_create(uv_loop_t *loop, struct cz_rr **out)
{
	struct cz_rr *rr = calloc(1, sizeof(*rr));
	int err;

	if (rr == NULL) {
		return -ENOMEM;
	}
	rr->loop = loop;
	err = uv_timer_init(loop, &rr->timer);
	if (err < 0) {
		free(rr);
		return err;
	}
	rr->timer.data = rr;
	/* The tick alone must not keep the loop running. */
	uv_unref((uv_handle_t *)&rr->timer);
	*out = rr;
	return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
	free(h->data);
}

void cz_rr_destroy(struct cz_rr *rr)
{
	if (rr == NULL) {
		return;
	}
	while (rr->listeners != NULL) {
		cz_rr_listener_destroy(rr->listeners);
	}
	uv_close((uv_handle_t *)&rr->timer, on_timer_closed);
}

void cz_rr_set_now(struct cz_rr *rr, uint64_t ms)
{
	rr->fake_now = ms;
}

int cz_rr_chan_info(const struct cz_rr *rr, uint32_t id,
	struct cz_rr_chan_info *info)
{
	const struct rr_chan *ch = chan_find(rr, id);

	if (ch == NULL) {
		return -ENOENT;
	}
	info->worker_id = ch->worker_id;
	info->inflight = ch->inflight;
	info->stalled = ch->stalled;
	info->stopping = ch->stopping;
	return 0;
}

unsigned cz_rr_pending(const struct cz_rr_listener *l)
{
	return l->qlen;
}

bool cz_rr_polling(const struct cz_rr_listener *l)
{
	return l->polling;
}
