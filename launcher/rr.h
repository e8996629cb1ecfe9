/*
 * The round-robin dispatcher: the primary accepts on each rr listening
 * socket and hands every connection to one worker over that worker's
 * channel (a SOCK_SEQPACKET socketpair; CONN message + SCM_RIGHTS).
 *
 * The primary closes its copy of a connection as soon as it is sent: the
 * message in flight holds it, so the FIN of a connection the worker closes
 * never waits for the primary, and nothing wakes the primary when a worker
 * takes one.  The primary keeps a dup of the worker's end: the kernel's
 * count of what is queued there tells it what the worker took (it looks
 * when a channel seems full, at most once per event, and on each tick),
 * and a connection queued for a worker that stops, stalls, dies or runs
 * out of fds (NACK) is taken back out of it, fd and all, and given to
 * another worker: never lost.  The shim receives only into an fd slot it
 * made free (shim/spare.h), so a received connection is never dropped for
 * want of one.  What a worker received and did not serve before it was
 * killed is lost, as under any primary.
 *
 * A channel has credit while fewer than CZ_RR_CREDIT connections are
 * queued in it (as last seen, plus those sent since), and is neither
 * stalled nor stopping.  Each connection goes to a channel with credit
 * that the balancer picks (balance.h: round-robin order by default).
 * While no channel has credit, up to CZ_RR_HOLD connections are held,
 * first come first served, and looked at again CZ_RR_HOLD_MS after the
 * last try unless an event comes first; past that they wait in the
 * kernel's backlog.
 *
 * Everything is in fixed rings: no allocation per connection.
 */
#ifndef CZ_LAUNCHER_RR_H
#define CZ_LAUNCHER_RR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "balance.h"
#include "conns.h"
#include "stats.h"

#ifndef CZ_RR_CREDIT
#define CZ_RR_CREDIT 4     /* connections queued per channel */
#endif
#define CZ_RR_CREDIT_MAX CZ_RR_CREDIT
#define CZ_RR_BATCH 64     /* accepts per readable event */
#define CZ_RR_HOLD 128     /* accepted connections held while no worker can take one */
#define CZ_RR_HOLD_MS 1    /* ... looked at again this soon */
#define CZ_RR_STOP_TAKE 4096 /* connections a stopping listener takes at most */
#define CZ_RR_TICK_MS 100  /* stall check period */
#define CZ_RR_STALL_MS 500 /* nothing taken for this long with work queued */

struct cz_rr;
struct cz_rr_listener;

int cz_rr_create(uv_loop_t *loop, struct cz_rr **out);

/*
 * Called whenever a channel goes (released, its owner or worker gone, its
 * listener closed), with what cz_rr_chan_open() was given.
 */
typedef void cz_rr_chan_closed_fn(void *data, uint32_t worker_id, void *owner);
void cz_rr_set_chan_closed(struct cz_rr *rr, cz_rr_chan_closed_fn *fn,
	void *data);

/*
 * Which channel gets each connection (balance.h; default rr).  Draws the
 * sticky key: returns 0 or -errno.
 */
int cz_rr_set_balance(struct cz_rr *rr, enum cz_balance policy);

/* sticky: how to find a worker's slot; call slots_changed whenever one moves. */
void cz_rr_set_slots(struct cz_rr *rr, cz_balance_slot_fn *fn, void *data);
void cz_rr_slots_changed(struct cz_rr *rr);

/*
 * least-conn: the workers' open-connection counters (kept, it must outlive
 * every channel; a channel reads its worker's when it opens).
 */
void cz_rr_set_conntab(struct cz_rr *rr, const struct cz_conntab *t);

/* Closes every listener and channel; memory is freed by the loop. */
void cz_rr_destroy(struct cz_rr *rr);

/*
 * Starts dispatching connections of listening socket `fd` (not owned; made
 * non-blocking).  Accepted connections are O_NONBLOCK iff `conn_nonblock`.
 * `name` (copied) names the socket in messages.
 */
int cz_rr_listener_create(struct cz_rr *rr, int fd, bool conn_nonblock,
	const char *name, struct cz_rr_listener **out);

/* Closes the listener's channels and undispatched connections (not fd). */
void cz_rr_listener_destroy(struct cz_rr_listener *l);

/* The owner's pointer, for cz_rr_broken_fn. */
void cz_rr_listener_set_data(struct cz_rr_listener *l, void *data);
void *cz_rr_listener_data(const struct cz_rr_listener *l);

/*
 * Called when accept4() on a listener fails with an error that is not the
 * connection's nor a lack of resources (EINVAL after a shutdown(), EBADF,
 * ENOTSOCK...): retrying would fail for ever.  Return 0 once the socket is
 * replaced (cz_rr_listener_replace), or -errno: the listener then stops
 * accepting for good.  Without a callback it is retried each tick.
 */
typedef int cz_rr_broken_fn(void *data, struct cz_rr_listener *l, int err);
void cz_rr_set_broken(struct cz_rr *rr, cz_rr_broken_fn *fn, void *data);

/*
 * Puts the listening socket `fd` at the listener's fd number (dup3; `fd`
 * is closed) and accepts on it.  0 or -errno.
 */
int cz_rr_listener_replace(struct cz_rr_listener *l, int fd);

/*
 * The listener's socket was lent to us (socket activation): on a stop,
 * what waits in its backlog is left for the next launcher.
 */
void cz_rr_listener_lent(struct cz_rr_listener *l);

/*
 * The cluster is stopping: every listener takes what waits in its backlog
 * and accepts no more.  A socket of our own is shut down, so that a new
 * client is refused at once rather than queued and then reset when the
 * launcher exits.  What was taken still goes to the workers' channels
 * (cz_rr_held() counts what is left).
 */
void cz_rr_stop_accepting(struct cz_rr *rr);

/* Connections accepted and not yet given to any worker, in all listeners. */
unsigned cz_rr_held(const struct cz_rr *rr);

/*
 * Opens a channel to worker `worker_id` for `owner` (the control
 * connection that asked; see cz_rr_owner_gone).  Returns the worker's end
 * (to be sent to the worker; the dispatcher keeps it open and owns it) and
 * sets *id, or returns a negative errno.
 */
int cz_rr_chan_open(struct cz_rr_listener *l, uint32_t worker_id,
	void *owner, uint32_t *id);

/*
 * The same, with `first` (`len` bytes, a proto.h message) queued on the
 * channel before any connection: the IDENT of a channel that goes to a
 * node worker over Node's IPC channel (node_ipc.c).
 */
int cz_rr_chan_open_first(struct cz_rr_listener *l, uint32_t worker_id,
	void *owner, const void *first, size_t len, uint32_t *id);

/*
 * Closes channel `id` of worker `worker_id` (the worker released it):
 * connections it did not take go to other channels.  -ENOENT if unknown.
 */
int cz_rr_chan_close(struct cz_rr *rr, uint32_t id, uint32_t worker_id);

/*
 * No process that could read `owner`'s channels is left: they leave the
 * rotation at once, and what they hold goes to other channels, as for a
 * worker that exited.
 */
void cz_rr_owner_gone(struct cz_rr *rr, void *owner);

/* Stop routing to the worker's channels; requeue what it did not take. */
void cz_rr_worker_stopping(struct cz_rr *rr, uint32_t worker_id);

/* The worker is gone: requeue what it did not take, close its channels. */
void cz_rr_worker_exited(struct cz_rr *rr, uint32_t worker_id);

/* Connections queued in the worker's channels now (the kernel's count). */
unsigned cz_rr_worker_pending(struct cz_rr *rr, uint32_t worker_id);

/*
 * Connections sent to the worker's channels that may not be counted open
 * by its shim yet: those still queued (the kernel's count).  The shim
 * counts a connection open from before it leaves the channel (held.h), so
 * a worker with none queued and none open holds none.
 */
unsigned cz_rr_worker_unacked(struct cz_rr *rr, uint32_t worker_id);

/* Connections the worker was given (not counting ones taken back). */
uint64_t cz_rr_worker_conns(const struct cz_rr *rr, uint32_t worker_id);

/* What the metrics endpoint shows of an rr listener. */
struct cz_rr_listener_info {
	const char *name;  /* its address, for people */
	const struct cz_stats_listener *stats;
	unsigned held;     /* accepted, waiting for a worker with credit */
	unsigned queued;   /* sent to a worker, still queued in its channel */
	unsigned workers;  /* channels: workers listening */
};
typedef void cz_rr_listener_fn(void *data,
	const struct cz_rr_listener_info *info);

/* Calls fn for every listener. */
void cz_rr_each_listener(struct cz_rr *rr, cz_rr_listener_fn *fn,
	void *data);

/* --- for tests -------------------------------------------------------- */

/* Dispatches an accepted connection `fd` (owned from now on). */
void cz_rr_dispatch(struct cz_rr_listener *l, int fd,
	const struct sockaddr *peer, socklen_t peer_len);

/* Runs the stall check now. */
void cz_rr_tick(struct cz_rr *rr);

/* Stops the periodic tick (until the next listener is created). */
void cz_rr_tick_stop(struct cz_rr *rr);

/* Replaces the loop's clock (milliseconds) when `ms` != 0. */
void cz_rr_set_now(struct cz_rr *rr, uint64_t ms);

struct cz_rr_chan_info {
	uint32_t worker_id;
	unsigned queued; /* CONNs queued in it now */
	bool stalled;
	bool stopping;
};
/* Fills *info for channel `id`; -ENOENT if unknown. */
int cz_rr_chan_info(struct cz_rr *rr, uint32_t id,
	struct cz_rr_chan_info *info);

/* Connections accepted but not yet sent to any worker. */
unsigned cz_rr_pending(const struct cz_rr_listener *l);

/* Whether the listening socket is being polled (some channel has credit). */
bool cz_rr_polling(const struct cz_rr_listener *l);

#endif
