/*
 * The primary's side of Node's cluster protocol (native mode, the
 * default): every worker gets a Node IPC channel (node_chan.h) at the same
 * fd number, announced in NODE_CHANNEL_FD, so the node server it runs is a
 * `cluster` worker and the launcher is its primary.  Served here:
 *
 *   online, listening      noted (the launcher logs listens itself)
 *   queryServer            bound through the socket registry like a shim's
 *                          BIND + LISTEN (control.h); the reply carries the
 *                          shared socket (none, UDP) or an rr channel (rr),
 *                          so connections still go the C way; errors come
 *                          back as Node's negative errno
 *   close                  the worker's server closed: its grant released
 *   exitedAfterDisconnect  answered; the worker asked for its exit
 *   disconnect (sent)      a graceful stop: Node closes its servers and
 *                          exits once its connections are done
 *   any other message      a user message: to the supervisor (events)
 *
 * Bad input from a worker (not JSON, lines too long, unknown shapes) is
 * logged, rate-limited per worker (cz_log_peer), and the channel goes on.
 */
#ifndef CZ_LAUNCHER_NODE_IPC_H
#define CZ_LAUNCHER_NODE_IPC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "control.h"

struct cz_node_ipc;

struct cz_node_ipc_events {
	void *data;
	/* A message of the app's own (process.send()): `msg` is borrowed. */
	void (*message)(void *data, uint32_t worker_id, int pid,
		const json_t *msg);
};

/*
 * Serves Node workers on `loop`, binding through `control`.  `adopted`
 * (n) are the sockets taken from the service manager: a worker's
 * listen({fd: N}) means the one at fd N, as Node's "fd N of the primary".
 */
int cz_node_ipc_create(uv_loop_t *loop, struct cz_control *control,
	const int *adopted, unsigned n, const struct cz_node_ipc_events *ev,
	struct cz_node_ipc **out);

/* Closes every channel.  `n` may be NULL. */
void cz_node_ipc_destroy(struct cz_node_ipc *n);

/* Worker `worker_id` (pid) was forked with the other end of `fd` (taken). */
int cz_node_ipc_attach(struct cz_node_ipc *n, uint32_t worker_id, int pid,
	int fd);

/* The worker's node process (its shim said so): named in messages. */
void cz_node_ipc_set_pid(struct cz_node_ipc *n, uint32_t worker_id, int pid);

/* Whether the worker speaks Node's cluster protocol (it said something). */
bool cz_node_ipc_is_node(const struct cz_node_ipc *n, uint32_t worker_id);

/*
 * Sends the worker {act:'disconnect'} (once).  Returns false if it does
 * not speak Node's protocol, or its channel is gone.
 */
bool cz_node_ipc_disconnect(struct cz_node_ipc *n, uint32_t worker_id);

/* Whether the worker disconnected itself (exitedAfterDisconnect). */
bool cz_node_ipc_asked_exit(const struct cz_node_ipc *n, uint32_t worker_id);

/*
 * Delivers `msg` to the worker's process.on('message').  Returns 0,
 * -ENOENT (no such worker, or it does not speak Node), -ENOBUFS (it is not
 * reading: too much queued) or -errno.
 */
int cz_node_ipc_send(struct cz_node_ipc *n, uint32_t worker_id,
	const json_t *msg);

/* The worker has exited (control.h already dropped its sockets). */
void cz_node_ipc_worker_exited(struct cz_node_ipc *n, uint32_t worker_id);

#endif
