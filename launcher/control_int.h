/*
 * What the control's three files share (control.h is the public side):
 * control.c (the control connections, their requests, what each acquired,
 * and the control itself), attach.c (the workers' attach sockets, which
 * bring those connections) and control_grant.c (listens asked for over
 * Node's IPC channel).  Not for other modules.
 */
#ifndef CZ_LAUNCHER_CONTROL_INT_H
#define CZ_LAUNCHER_CONTROL_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "control.h"
#include "proto.h"
#include "sockets.h"

/* Requests (or attaches) handled per readable event, so one chatty
 * process cannot starve the loop. */
#define CZ_CONTROL_BATCH 16

struct conn;
/* What a connection acquired on one key (control.c's business). */
struct acq;

/* A worker: the launcher's end of its attach socket, its connections. */
struct wroot {
	uv_poll_t poll;
	struct cz_control *c;
	struct wroot *next;
	struct conn *conns;
	uint32_t worker_id;
	int fd;           /* not polled once no process of the worker holds its end */
	unsigned nconns;
	unsigned nchans;
};

/* A control connection, attached by one process of worker `w`. */
struct conn {
	uv_poll_t poll;
	struct wroot *w;
	struct conn *next;
	int fd;
	int pid; /* SO_PEERCRED: the process that made the socketpair */
	bool hello;
	struct acq *acq;
	unsigned nacq, acq_cap;
};

/* The control (control.h). */
struct cz_control {
	uv_loop_t *loop;
	enum cz_mode mode;
	struct cz_control_events ev;
	struct wroot *workers;
	struct cz_sockets *sockets;
	struct cz_rr *rr;
	struct cz_lwatch *watch;
	bool destroying;
	struct cz_conntab *conntab; /* open connections, per worker */
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

/* --- control.c ------------------------------------------------------------- */

/* Closes `k`; with `release`, what it acquired goes too. */
void cz_control_conn_close(struct conn *k, bool release);

/* A connection's poll callback (k->poll.data is `k`): serves its requests. */
void cz_control_on_conn(uv_poll_t *h, int status, int events);

/* recvmsg() returned 0 on SOCK_SEQPACKET `fd`: whether the peer is gone
 * (not just an empty message). */
bool cz_control_peer_gone(int fd);

/* Closes every fd that came with `mh`, but for the first one when `first`
 * is given: that one goes to *first.  Returns how many came. */
unsigned cz_control_close_fds(struct msghdr *mh, int *first);

/* Starts rr dispatching on `key` (its key->data); 0 or -errno. */
int cz_control_key_listener(struct cz_control *c, struct cz_key *key);

/* Emits the listening event: process `pid` of worker `worker_id`, `key`. */
void cz_control_emit_listening_of(struct cz_control *c, uint32_t worker_id,
	int pid, const struct cz_key *key);

/* --- attach.c -------------------------------------------------------------- */

/* Worker `id`'s attach socket, or NULL. */
struct wroot *cz_control_worker_find(const struct cz_control *c, uint32_t id);

/* Closes the worker's attach socket and connections (releasing nothing). */
void cz_control_worker_close(struct cz_control *c, struct wroot *w);

#endif
