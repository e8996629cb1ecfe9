/*
 * The channel side of the rr dispatcher (rr.h): the messages the primary
 * sends on its end of a channel (CONN, NUDGE) and reads from either end
 * (ACK/NACK from the worker; CONNs read back from the worker's end because
 * the worker never took them), the book of connections in flight on a
 * channel (the primary's copies, by seq), and the FIFO of connections not
 * yet sent.  Fixed-size or grow-to-peak storage: nothing is allocated per
 * connection.  Which channel gets what is rr.c's business.
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
 * The connections sent on a channel and not yet acknowledged: the
 * primary's copies, by seq (seq 0 = free slot), so a connection the worker
 * never took can be given to another.  Fixed size: no allocation.
 */
struct cz_rr_inflight {
	uint32_t next_seq; /* of the next CONN: 1, 2, ... (0 skipped) */
	uint32_t acked;    /* the highest seq ACK_UPTO covered */
	unsigned n;        /* slots in use */
	struct cz_stats_wait *wait; /* each ACKed copy's wait; NULL: none */
	struct cz_rr_slot {
		uint32_t seq;
		struct cz_rr_conn c;
	} slots[CZ_RR_CREDIT_MAX];
};

void cz_rr_inflight_init(struct cz_rr_inflight *f);

/*
 * Sends `c` as the next CONN on the primary's end `fd` and keeps it in a
 * free slot (the caller checks f->n < CZ_RR_CREDIT_MAX).  Returns 0, or
 * -errno and nothing is kept.
 */
int cz_rr_inflight_send(struct cz_rr_inflight *f, int fd, bool nonblock,
	const struct cz_rr_conn *c);

/*
 * ACK `seq`: closes its copy, or with `upto` (ACK_UPTO) the copies of
 * every seq up to it.  Returns 1 when it freed something, 0 for an ACK
 * that adds nothing (a stale one, or one of a seq read back), -EINVAL for
 * one beyond what was sent.
 */
int cz_rr_inflight_ack(struct cz_rr_inflight *f, uint32_t seq, bool upto);

/* Removes the copy of `seq` into *c (the caller owns it); -ENOENT. */
int cz_rr_inflight_take(struct cz_rr_inflight *f, uint32_t seq,
	struct cz_rr_conn *c);

/* Closes every copy left (the worker took them: it has its own). */
void cz_rr_inflight_close(struct cz_rr_inflight *f);

/*
 * Sends CONN `seq` with `c->fd` attached on the primary's end `fd`,
 * without blocking.  `nonblock` tells the worker whether the connection is
 * O_NONBLOCK.  The caller keeps its copy of c->fd.  Returns 0 or -errno.
 */
int cz_rr_chan_send_conn(int fd, uint32_t seq, bool nonblock,
	const struct cz_rr_conn *c);

/* Bytes sent on the primary's end `fd` that the worker has not read. */
int cz_rr_chan_outq(int fd);

/* Sends a NUDGE (no fd) without blocking.  Returns 0 or -errno. */
int cz_rr_chan_send_nudge(int fd);

/*
 * Called once per message read: its type (enum cz_msg_type, or a negative
 * errno for a malformed message), its seq and its size.
 */
typedef void cz_rr_chan_msg_fn(void *data, int type, uint32_t seq,
	size_t len);

/*
 * Reads every message queued on the primary's end `fd` (ACK/NACK), many per
 * syscall, and calls `fn` for each.  Any fd a worker attaches is dropped by
 * the kernel.  Returns how many were read.
 */
unsigned cz_rr_chan_read_acks(int fd, cz_rr_chan_msg_fn *fn, void *data);

/*
 * Reads back every message still queued on the worker's end `wfd`: the
 * kernel gives each message to one reader, so each CONN read here is one
 * the worker never took.  The fds they carry are dropped (the primary has
 * its own copies); `fn` is called for each CONN.  Returns how many.
 */
unsigned cz_rr_chan_read_back(int wfd, cz_rr_chan_msg_fn *fn, void *data);

#endif
