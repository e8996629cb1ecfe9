/*
 * The channel side of the rr dispatcher (rr.h): the messages the primary
 * sends on its end of a channel (CONN, NUDGE) and reads from it (NACK from
 * the worker), the book of messages the worker has not been seen to take,
 * what is taken back from the worker's end (CONNs, with their fds, that
 * the worker never took), and the FIFO of connections not yet sent.
 * Fixed-size or grow-to-peak storage: nothing is allocated per connection.
 * Which channel gets what is rr.c's business.
 */
#ifndef CZ_LAUNCHER_RR_CHAN_H
#define CZ_LAUNCHER_RR_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "rr.h"
#include "stats.h"

/* An accepted connection and its peer address as accept4() gave it. */
struct cz_rr_conn {
	int fd;
	socklen_t plen;
	uint64_t accepted_ns; /* cz_stats_now_ns at accept; 0: unknown */
	struct sockaddr_storage peer;
};

/*
 * Whether accept4() failing with `err` (positive) is that connection's
 * problem, not the listener's: accept again at once.
 */
bool cz_rr_accept_transient(int err);

/* A FIFO of connections (a growing ring; it grows only to its peak). */
struct cz_rr_fifo {
	struct cz_rr_conn *q;
	unsigned head, len, cap;
};

/* Appends `c`; 0 or -ENOMEM. */
int cz_rr_fifo_push(struct cz_rr_fifo *f, const struct cz_rr_conn *c);

/* The oldest connection, or NULL when empty. */
struct cz_rr_conn *cz_rr_fifo_front(struct cz_rr_fifo *f);

/* Drops the oldest connection (not closed). */
void cz_rr_fifo_pop(struct cz_rr_fifo *f);

/* Closes every connection and frees the ring. */
void cz_rr_fifo_free(struct cz_rr_fifo *f);

/*
 * The messages sent on a channel that the worker has not been seen to
 * take, oldest first.  The primary keeps no copy of a connection: the
 * message in flight holds its fd.  What the worker took is learnt from the
 * kernel: the bytes still queued on the worker's end (SIOCINQ on the
 * primary's dup of it) are the newest messages of the book, the others
 * were taken.  At most CZ_RR_CREDIT_MAX CONNs, a NUDGE and the channel's
 * first message: fixed size, no allocation.
 */
#define CZ_RR_BOOK_MAX (CZ_RR_CREDIT_MAX + 2)
struct cz_rr_inflight {
	uint32_t next_seq; /* of the next CONN: 1, 2, ... (0 skipped) */
	unsigned n;        /* CONNs in the book: queued, or taken since the last look */
	unsigned head, len;
	size_t bytes;      /* the book's messages, summed */
	uint64_t taken;    /* CONNs the worker was seen to take, in all */
	struct cz_rr_sent {
		uint32_t seq;  /* a CONN's; 0: another message */
		uint32_t len;
	} book[CZ_RR_BOOK_MAX];
};

void cz_rr_inflight_init(struct cz_rr_inflight *f);

/*
 * Sends `c` as the next CONN on the primary's end `fd`, then closes c->fd
 * (the message holds the connection now) and books it; the caller checks
 * f->len < CZ_RR_BOOK_MAX.  Returns 0, or -errno and c->fd is still the
 * caller's.
 */
int cz_rr_inflight_send(struct cz_rr_inflight *f, int fd, bool nonblock,
	const struct cz_rr_conn *c);

/* Sends another message (a NUDGE, or the channel's first) and books it. */
int cz_rr_inflight_send_other(struct cz_rr_inflight *f, int fd,
	const void *msg, size_t len);

/*
 * Looks at what is queued on the worker's end `wfd`: what is no longer
 * there leaves the book.  Returns how many CONNs the worker took since
 * the last look.
 */
unsigned cz_rr_inflight_look(struct cz_rr_inflight *f, int wfd);

/* Called with each connection taken back; `c` (fd included) is the callee's. */
typedef void cz_rr_conn_fn(void *data, const struct cz_rr_conn *c);

/*
 * Takes back everything still queued on the worker's end `wfd` (the kernel
 * gives each message to one reader, so each CONN read here is one the
 * worker never took) and calls `fn` with each connection, its fd received.
 * Each receive goes into an fd slot that `*spare` (an fd the caller keeps
 * for this, or -1) made free, so the launcher's own fd limit loses no
 * connection: without one it stops, and what is left stays queued.
 * Returns how many connections it took back.
 */
unsigned cz_rr_inflight_reclaim(struct cz_rr_inflight *f, int wfd, int *spare,
	cz_rr_conn_fn *fn, void *data);

/* Sends a NUDGE (no fd) without blocking.  Returns 0 or -errno. */
int cz_rr_chan_send_nudge(struct cz_rr_inflight *f, int fd);

/*
 * Called once per message read: its type (enum cz_msg_type, or a negative
 * errno for a malformed message), its seq and its size.
 */
typedef void cz_rr_chan_msg_fn(void *data, int type, uint32_t seq,
	size_t len);

/*
 * Reads every message queued on the primary's end `fd` (NACKs), many per
 * syscall, and calls `fn` for each.  Any fd a worker attaches is dropped by
 * the kernel.  Returns how many were read.
 */
unsigned cz_rr_chan_read_msgs(int fd, cz_rr_chan_msg_fn *fn, void *data);

#endif
