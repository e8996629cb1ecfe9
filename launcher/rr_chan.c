/* The channel side of the rr dispatcher: see rr_chan.h. */
#include "rr_chan.h"

#include <errno.h>
#include <linux/sockios.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "proto.h"

#define ACK_BATCH 32

int cz_rr_chan_send_conn(int fd, uint32_t seq, bool nonblock,
	const struct cz_rr_conn *c)
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
	ssize_t n;

	memset(&m, 0, offsetof(struct cz_msg_conn, peer.ss));
	cz_proto_init(&m.hdr, CZ_MSG_CONN, seq);
	m.nonblock = nonblock;
	m.peer.len = c->plen;
	memcpy(&m.peer.ss, &c->peer, c->plen);
	memset((char *)&m.peer.ss + c->plen, 0, sizeof(m.peer.ss) - c->plen);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &c->fd, sizeof(int));
	do {
		n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

int cz_rr_chan_outq(int fd)
{
	int n = 0;

	/* Unix sockets count what the peer has not consumed yet. */
	if (ioctl(fd, SIOCOUTQ, &n) < 0) {
		return 0;
	}
	return n;
}

int cz_rr_chan_send_nudge(int fd)
{
	struct cz_msg_nudge m;
	ssize_t n;

	cz_proto_init(&m.hdr, CZ_MSG_NUDGE, 0);
	do {
		n = send(fd, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

/* Aligned for every message type; CZ_MSG_MAX so any valid one fits. */
union rr_msg {
	struct cz_msg_hdr hdr;
	char buf[CZ_MSG_MAX];
};

static void deliver(const union rr_msg *m, size_t len, cz_rr_chan_msg_fn *fn,
	void *data)
{
	int type = cz_proto_check(m->buf, len);

	fn(data, type, type < 0 ? 0 : m->hdr.seq, len);
}

/*
 * No control buffer: for a message that carries fds anyway, the kernel
 * drops them (and sets MSG_CTRUNC), so nothing leaks and no close() is
 * needed.  The headers are set up once; recvmmsg() only writes msg_len
 * and msg_flags.
 */
static union rr_msg ack_bufs[ACK_BATCH];
static struct iovec ack_iov[ACK_BATCH];
static struct mmsghdr ack_mm[ACK_BATCH];

static struct mmsghdr *ack_headers(void)
{
	unsigned i;

	if (ack_mm[0].msg_hdr.msg_iov == NULL) {
		for (i = 0; i < ACK_BATCH; i++) {
			ack_iov[i] = (struct iovec){ ack_bufs[i].buf,
				sizeof(ack_bufs[i]) };
			ack_mm[i].msg_hdr.msg_iov = &ack_iov[i];
			ack_mm[i].msg_hdr.msg_iovlen = 1;
		}
	}
	return ack_mm;
}

unsigned cz_rr_chan_read_acks(int fd, cz_rr_chan_msg_fn *fn, void *data)
{
	struct mmsghdr *mm = ack_headers();
	unsigned count = 0;
	int i, n;

	for (;;) {
		n = recvmmsg(fd, mm, ACK_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return count;
		}
		for (i = 0; i < n; i++) {
			deliver(&ack_bufs[i], mm[i].msg_len, fn, data);
		}
		count += (unsigned)n;
		if (n < ACK_BATCH) {
			return count;
		}
	}
}

unsigned cz_rr_chan_read_back(int wfd, cz_rr_chan_msg_fn *fn, void *data)
{
	union rr_msg m;
	unsigned count = 0;
	ssize_t n;

	for (;;) {
		n = recv(wfd, m.buf, sizeof(m.buf), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return count;
		}
		if (cz_proto_check(m.buf, (size_t)n) == CZ_MSG_CONN) {
			deliver(&m, (size_t)n, fn, data);
			count++;
		}
	}
}

/* --- the primary's copies ------------------------------------------------- */

static bool seq_le(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) <= 0;
}

void cz_rr_inflight_init(struct cz_rr_inflight *f)
{
	memset(f, 0, sizeof(*f));
	f->next_seq = 1;
}

int cz_rr_inflight_send(struct cz_rr_inflight *f, int fd, bool nonblock,
	const struct cz_rr_conn *c)
{
	struct cz_rr_slot *s = f->slots;
	uint32_t seq = f->next_seq;
	int err;

	while (s->seq != 0) {
		s++; /* the caller made sure one is free */
	}
	err = cz_rr_chan_send_conn(fd, seq, nonblock, c);
	if (err < 0) {
		return err;
	}
	f->next_seq = seq + 1 == 0 ? 1 : seq + 1;
	s->seq = seq;
	s->c = *c;
	f->n++;
	return 0;
}

/*
 * An ACK_UPTO counts only if it is the highest seen: with several threads
 * accepting, one can overtake another, and a late, lower one must not
 * count again.  A plain ACK closes its own copy if it is still there.
 */
int cz_rr_inflight_ack(struct cz_rr_inflight *f, uint32_t seq, bool upto)
{
	unsigned i;
	int freed = 0;

	if (seq == 0 || seq_le(f->next_seq, seq)) {
		return -EINVAL;
	}
	if (upto && seq_le(seq, f->acked)) {
		return 0;
	}
	if (upto) {
		f->acked = seq;
	}
	for (i = 0; i < CZ_RR_CREDIT_MAX && f->n > 0; i++) {
		uint32_t s = f->slots[i].seq;

		if (s != 0 && (upto ? seq_le(s, seq) : s == seq)) {
			if (f->wait != NULL) {
				cz_stats_wait_observe(f->wait, f->slots[i].c.accepted_ns);
			}
			close(f->slots[i].c.fd);
			f->slots[i].seq = 0;
			f->n--;
			freed = 1;
		}
	}
	return freed;
}

int cz_rr_inflight_take(struct cz_rr_inflight *f, uint32_t seq,
	struct cz_rr_conn *c)
{
	unsigned i;

	for (i = 0; i < CZ_RR_CREDIT_MAX && seq != 0; i++) {
		if (f->slots[i].seq == seq) {
			*c = f->slots[i].c;
			f->slots[i].seq = 0;
			f->n--;
			return 0;
		}
	}
	return -ENOENT;
}

void cz_rr_inflight_close(struct cz_rr_inflight *f)
{
	unsigned i;

	for (i = 0; i < CZ_RR_CREDIT_MAX; i++) {
		if (f->slots[i].seq != 0) {
			close(f->slots[i].c.fd);
			f->slots[i].seq = 0;
		}
	}
	f->n = 0;
}

bool cz_rr_accept_transient(int err)
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
		return true;
	default:
		return false;
	}
}

/* --- the FIFO of undispatched connections ---------------------------------- */

int cz_rr_fifo_push(struct cz_rr_fifo *f, const struct cz_rr_conn *c)
{
	if (f->len == f->cap) {
		unsigned cap = f->cap ? f->cap * 2 : 16, i;
		struct cz_rr_conn *q = malloc(cap * sizeof(*q));

		if (q == NULL) {
			return -ENOMEM;
		}
		for (i = 0; i < f->len; i++) {
			q[i] = f->q[(f->head + i) % f->cap];
		}
		free(f->q);
		f->q = q;
		f->cap = cap;
		f->head = 0;
	}
	f->q[(f->head + f->len) % f->cap] = *c;
	f->len++;
	return 0;
}

struct cz_rr_conn *cz_rr_fifo_front(struct cz_rr_fifo *f)
{
	return f->len > 0 ? &f->q[f->head] : NULL;
}

void cz_rr_fifo_pop(struct cz_rr_fifo *f)
{
	f->head = (f->head + 1) % f->cap;
	f->len--;
}

void cz_rr_fifo_free(struct cz_rr_fifo *f)
{
	while (f->len > 0) {
		close(cz_rr_fifo_front(f)->fd);
		cz_rr_fifo_pop(f);
	}
	free(f->q);
	f->q = NULL;
	f->cap = 0;
}
