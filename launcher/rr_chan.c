/* The channel side of the rr dispatcher: see rr_chan.h. */
#include "rr_chan.h"

#include <errno.h>
#include <linux/sockios.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "fdpass.h"
#include "log.h"
#include "proto.h"

#define READ_BATCH 32

/* Sends CONN `seq` with c->fd attached, without blocking; 0 or -errno. */
static int send_conn(int fd, uint32_t seq, bool nonblock,
	const struct cz_rr_conn *c)
{
	struct cz_msg_conn m;
	ssize_t n;

	memset(&m, 0, offsetof(struct cz_msg_conn, peer.ss));
	cz_proto_init(&m.hdr, CZ_MSG_CONN, seq);
	m.nonblock = nonblock;
	m.peer.len = c->plen;
	memcpy(&m.peer.ss, &c->peer, c->plen);
	memset((char *)&m.peer.ss + c->plen, 0, sizeof(m.peer.ss) - c->plen);
	n = cz_fdpass_send(fd, &m, sizeof(m), c->fd, MSG_NOSIGNAL | MSG_DONTWAIT);
	return n < 0 ? (int)n : 0;
}

/* Aligned for every message type; CZ_MSG_MAX so any valid one fits. */
union rr_msg {
	struct cz_msg_hdr hdr;
	struct cz_msg_conn conn;
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
static union rr_msg msg_bufs[READ_BATCH];
static struct iovec msg_iov[READ_BATCH];
static struct mmsghdr msg_mm[READ_BATCH];

static struct mmsghdr *msg_headers(void)
{
	unsigned i;

	if (msg_mm[0].msg_hdr.msg_iov == NULL) {
		for (i = 0; i < READ_BATCH; i++) {
			msg_iov[i] = (struct iovec){ msg_bufs[i].buf,
				sizeof(msg_bufs[i]) };
			msg_mm[i].msg_hdr.msg_iov = &msg_iov[i];
			msg_mm[i].msg_hdr.msg_iovlen = 1;
		}
	}
	return msg_mm;
}

unsigned cz_rr_chan_read_msgs(int fd, cz_rr_chan_msg_fn *fn, void *data)
{
	struct mmsghdr *mm = msg_headers();
	unsigned count = 0;
	int i, n;

	for (;;) {
		n = recvmmsg(fd, mm, READ_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return count;
		}
		for (i = 0; i < n; i++) {
			deliver(&msg_bufs[i], mm[i].msg_len, fn, data);
		}
		count += (unsigned)n;
		if (n < READ_BATCH) {
			return count;
		}
	}
}

/* --- the book of what the worker has not taken ----------------------------- */

void cz_rr_inflight_init(struct cz_rr_inflight *f)
{
	memset(f, 0, sizeof(*f));
	f->next_seq = 1;
}

static void book(struct cz_rr_inflight *f, uint32_t seq, size_t len)
{
	struct cz_rr_sent *e = &f->book[(f->head + f->len) % CZ_RR_BOOK_MAX];

	e->seq = seq;
	e->len = (uint32_t)len;
	f->len++;
	f->bytes += len;
	f->n += seq != 0;
}

/* Drops the oldest message of the book; returns its seq (0: not a CONN). */
static uint32_t unbook(struct cz_rr_inflight *f)
{
	struct cz_rr_sent *e = &f->book[f->head];

	f->head = (f->head + 1) % CZ_RR_BOOK_MAX;
	f->len--;
	f->bytes -= e->len;
	f->n -= e->seq != 0;
	return e->seq;
}

int cz_rr_inflight_send(struct cz_rr_inflight *f, int fd, bool nonblock,
	const struct cz_rr_conn *c)
{
	uint32_t seq = f->next_seq;
	int err = send_conn(fd, seq, nonblock, c);

	if (err < 0) {
		return err;
	}
	/* Never the last reference: the message in flight holds one. */
	close(c->fd);
	f->next_seq = seq + 1 == 0 ? 1 : seq + 1;
	book(f, seq, sizeof(struct cz_msg_conn));
	return 0;
}

int cz_rr_inflight_send_other(struct cz_rr_inflight *f, int fd,
	const void *msg, size_t len)
{
	ssize_t n;

	do {
		n = send(fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		return -errno;
	}
	book(f, 0, len);
	return 0;
}

int cz_rr_chan_send_nudge(struct cz_rr_inflight *f, int fd)
{
	struct cz_msg_nudge m;

	cz_proto_init(&m.hdr, CZ_MSG_NUDGE, 0);
	return cz_rr_inflight_send_other(f, fd, &m, sizeof(m));
}

unsigned cz_rr_inflight_look(struct cz_rr_inflight *f, int wfd)
{
	unsigned taken = 0;
	int queued = 0;

	if (f->len == 0 || ioctl(wfd, SIOCINQ, &queued) < 0) {
		return 0;
	}
	/* A SOCK_SEQPACKET socket counts every queued message's bytes. */
	while (f->len > 0 && f->bytes > (size_t)queued) {
		taken += unbook(f) != 0;
	}
	f->taken += taken;
	return taken;
}

/*
 * One message off the worker's end, its fd received into the slot the
 * spare made free.  Returns its length, 0 when nothing is left (or no
 * slot could be made free), or -errno; *cfd is the fd or -1.
 */
static ssize_t recv_back(int wfd, int *spare, union rr_msg *m, int *cfd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = { m->buf, sizeof(m->buf) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cm;
	ssize_t n;

	*cfd = -1;
	if (*spare < 0 && (*spare = eventfd(0, EFD_CLOEXEC)) < 0) {
		return 0;
	}
	close(*spare);
	do {
		n = recvmsg(wfd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		n = errno == EAGAIN ? 0 : -errno;
	}
	*spare = eventfd(0, EFD_CLOEXEC);
	cm = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
	if (cm != NULL && cm->cmsg_level == SOL_SOCKET &&
	    cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
		memcpy(cfd, CMSG_DATA(cm), sizeof(int));
	}
	return n;
}

/* Whether `e` is the message read back: a CONN by its seq, others by size. */
static bool booked_as(const struct cz_rr_sent *e, uint32_t seq, size_t len)
{
	return seq != 0 ? e->seq == seq : e->seq == 0 && e->len == len;
}

/* What a CONN read back says, as the connection it carries. */
static void conn_of(const struct cz_msg_conn *m, int cfd, struct cz_rr_conn *c)
{
	memset(c, 0, offsetof(struct cz_rr_conn, peer));
	c->fd = cfd;
	c->plen = m->peer.len <= sizeof(c->peer) ? m->peer.len : 0;
	memcpy(&c->peer, &m->peer.ss, c->plen);
}

unsigned cz_rr_inflight_reclaim(struct cz_rr_inflight *f, int wfd, int *spare,
	cz_rr_conn_fn *fn, void *data)
{
	union rr_msg m;
	struct cz_rr_conn c;
	unsigned count = 0;
	uint32_t seq;
	ssize_t n;
	int cfd, type, left = 0;

	/* What is queued now, and no more: `fn` may send elsewhere. */
	if (ioctl(wfd, SIOCINQ, &left) < 0) {
		return 0;
	}
	cz_rr_inflight_look(f, wfd);
	while (left > 0 && (n = recv_back(wfd, spare, &m, &cfd)) > 0) {
		left -= (int)n;
		type = cz_proto_check(m.buf, (size_t)n);
		seq = type == CZ_MSG_CONN ? m.hdr.seq : 0;
		/* Older ones were taken by the worker since the look. */
		while (f->len > 0 && !booked_as(&f->book[f->head], seq, (size_t)n)) {
			f->taken += unbook(f) != 0;
		}
		if (f->len > 0) {
			unbook(f);
		}
		if (type == CZ_MSG_CONN && cfd < 0) {
			cz_log(CZ_LOG_ERROR, "a connection taken back from a worker "
				"was lost: its fd could not be received");
		}
		if (type != CZ_MSG_CONN || cfd < 0) {
			if (cfd >= 0) {
				close(cfd);
			}
			continue;
		}
		conn_of(&m.conn, cfd, &c);
		fn(data, &c);
		count++;
	}
	return count;
}

/* --- accepting --------------------------------------------------------------- */

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
