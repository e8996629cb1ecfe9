/*
 * The primary's side of the shim protocol (shim/proto.h): each worker's
 * attach socket and the control connections its processes attach through
 * it, the registry of listening sockets (sockets.h) and the round-robin
 * dispatcher (rr.h).
 *
 * The supervisor (workers.c) creates one cz_control, opens an attach
 * socket for each worker before forking it (cz_control_worker_open; the
 * child's end goes to $CLUSTERIZE_CONTROL_FD), and tells it when a worker
 * stops or exits.  A connection speaks for the worker whose attach socket
 * brought it, and nothing else; what it acquired goes when it closes.  The
 * control reports hello and listening events back through struct
 * cz_control_events.
 */
#ifndef CZ_LAUNCHER_CONTROL_H
#define CZ_LAUNCHER_CONTROL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "proto.h"
#include "rr.h"
#include "spawn.h"

struct cz_control;

struct cz_control_events {
	void *data;
	/* A process of worker `worker_id` said hello (once per process);
	 * `exe` is escaped (cz_escape). */
	void (*hello)(void *data, uint32_t worker_id, int pid, uint32_t flags,
		const char *exe);
	/*
	 * Worker `worker_id` now listens on `addr`, formatted for people:
	 * "127.0.0.1:8000", "[::1]:8000", "unix /run/app.sock",
	 * "udp 0.0.0.0:5353".
	 */
	void (*listening)(void *data, uint32_t worker_id, int pid,
		const char *addr);
};

/*
 * Creates the control on `loop`.  `mode` is the scheduling policy for
 * stream listeners (datagram sockets are always shared).  Returns 0 or a
 * negative errno.
 */
int cz_control_create(uv_loop_t *loop, enum cz_mode mode,
	const struct cz_control_events *ev, struct cz_control **out);

/*
 * Makes worker `worker_id`'s attach socket (a unix SOCK_SEQPACKET
 * socketpair) and serves the launcher's end.  *child_fd gets the worker's
 * end (close-on-exec: the child dup2()s it to its fixed number; the caller
 * closes it after the fork).  Every process holding that end speaks for
 * the worker, until cz_control_worker_exited().  0 or -errno.
 */
int cz_control_worker_open(struct cz_control *c, uint32_t worker_id,
	int *child_fd);

/*
 * Worker `worker_id` is about to be stopped: stop routing new connections
 * to it.  Connections already queued in its channels that it has not taken
 * are given to other workers.
 */
void cz_control_worker_stopping(struct cz_control *c, uint32_t worker_id);

/*
 * The cluster stops: the rr listeners take what waits in their backlogs
 * and accept no more (rr.h); the workers, still routed to, take what the
 * primary holds, cz_control_held() of them, before they are stopped.
 */
void cz_control_stop_accepting(struct cz_control *c);
unsigned cz_control_held(const struct cz_control *c);

/*
 * Worker `worker_id` has exited (or was never started): close its attach
 * socket and connections, forget its holds and channels; every connection
 * queued for it and not taken goes to another worker (or waits for one).
 * Its listening sockets stay open for the next worker.
 */
void cz_control_worker_exited(struct cz_control *c, uint32_t worker_id);

/* Number of listening sockets worker `worker_id` holds (for readiness). */
unsigned cz_control_listen_count(const struct cz_control *c, uint32_t worker_id);

/*
 * True when worker `new_id` listens on every socket (key) that worker
 * `old_id` listens on: the readiness rule of a rolling restart.  A worker
 * that listens on nothing is covered by anyone.
 */
bool cz_control_worker_covers(const struct cz_control *c, uint32_t new_id,
	uint32_t old_id);

/*
 * Connections handed to worker `worker_id` that it has not taken yet.
 * After cz_control_worker_stopping() the worker gets no new ones, so it
 * is drained when this reaches 0.
 */
unsigned cz_control_worker_pending(const struct cz_control *c,
	uint32_t worker_id);

/*
 * Connections worker `worker_id` holds open: those its processes accepted
 * (rr or none) and have not closed, as their shims count them (conns.h).
 */
unsigned cz_control_worker_active(const struct cz_control *c,
	uint32_t worker_id);

/*
 * rr: which worker gets each connection (balance.h), and how to find a
 * worker's slot (sticky).  Returns 0 or -errno (no random key).
 */
int cz_control_set_balance(struct cz_control *c, enum cz_balance policy,
	cz_balance_slot_fn *slot_of, void *data);

/* A worker's slot changed (sticky reads them again). */
void cz_control_slots_changed(struct cz_control *c);

/* Connections sent to worker `worker_id` and still queued (rr.h). */
unsigned cz_control_worker_unacked(const struct cz_control *c,
	uint32_t worker_id);

/* Connections handed out to worker `worker_id` so far (rr). */
uint64_t cz_control_worker_conns(const struct cz_control *c,
	uint32_t worker_id);

/*
 * Formats the addresses worker `worker_id` listens on, ", "-separated
 * ("127.0.0.1:8000, udp 0.0.0.0:5353"), into buf.  Returns the length.
 */
size_t cz_control_worker_addrs(const struct cz_control *c, uint32_t worker_id,
	char *buf, size_t len);

/* Calls fn for each rr listener (the metrics endpoint). */
void cz_control_each_listener(const struct cz_control *c,
	cz_rr_listener_fn *fn, void *data);

/*
 * Adopts an inherited socket (systemd socket activation: LISTEN_FDS) before
 * any worker starts.  A worker's bind() of the same address and type then
 * gets this socket instead of a new one, so the port outlives restarts of
 * the launcher itself.  The socket is never closed before the launcher
 * exits.  Returns 0 or -errno (-ENOTSOCK, or -EINVAL for a socket that is
 * not bound AF_INET/AF_INET6/AF_UNIX).
 */
int cz_control_adopt(struct cz_control *c, int fd);

/*
 * Workers run as `ids` (--user; kept, it must outlive `c`): bind for them
 * only what an unprivileged process could (ports >= 1024, plus the `n`
 * addresses in `allow`: "[HOST]:PORT", an empty HOST means any address;
 * unix socket files are made as the workers' user, see unixsock.h).  A denied bind gets the
 * errno the worker would have got (EACCES, ...); a privileged port, a
 * warning naming the worker and the address.
 */
int cz_control_set_bind_policy(struct cz_control *c,
	const struct cz_spawn_ids *ids, const char *const *allow, unsigned n);

/* --- listens asked for over Node's IPC channel (node_ipc.c) ------------- */

/* What a node worker's queryServer was granted. */
struct cz_control_grant {
	int fd;            /* to send: the socket, or an rr channel's worker end
			      (the control's: not to be closed) */
	uint32_t key;      /* the socket's key */
	uint32_t channel;  /* rr: the channel; 0 for a shared socket */
	int family;
	int type;          /* SOCK_STREAM or SOCK_DGRAM */
	struct sockaddr_storage bound;
	socklen_t bound_len;
};

/*
 * Worker `worker_id` (its process `pid`, for the log) listens on `m`'s
 * address with `backlog`, as a shim's BIND and LISTEN would ask: in rr the
 * grant is a new channel, whose first message is an IDENT (proto.h); in
 * none (and for datagrams) the socket itself.  Either is made non-blocking.
 * A second grant of one key to one worker is -EADDRINUSE.  Emits the
 * listening event.  Returns 0 and *g, or a negative errno (the bind's).
 */
int cz_control_grant(struct cz_control *c, uint32_t worker_id, int pid,
	const struct cz_msg_bind *m, int backlog, struct cz_control_grant *g);

/* Gives back what cz_control_grant() gave (the worker closed it). */
void cz_control_ungrant(struct cz_control *c, uint32_t worker_id,
	const struct cz_control_grant *g);

/*
 * Closes every socket and handle.  Handles are released by the loop: run it
 * once more (uv_run(loop, UV_RUN_DEFAULT)) after this, before
 * uv_loop_close().  `c` may be NULL.
 */
void cz_control_destroy(struct cz_control *c);

#endif
