/*
 * Listens asked for over Node's IPC channel (node_ipc.c): the control's
 * side (control.h, control_int.h).  A node worker's queryServer is granted
 * what a shim's BIND and LISTEN would get, booked on no control connection:
 * node_ipc.c gives each grant back with cz_control_ungrant().
 */
#include "control_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "rr.h"
#include "sockets.h"

/* What a node worker's `listen()` gets: the socket in none (or a key a
 * worker made shared), an rr channel starting with an IDENT otherwise. */
static int grant_fd(struct cz_control *c, uint32_t worker_id,
	struct cz_key *key, int backlog, uint32_t *chan)
{
	/* Node sets its options before bind; none are left for listen. */
	static const struct cz_sockopts unset = {
		CZ_OPT_UNSET, CZ_OPT_UNSET, CZ_OPT_UNSET, CZ_OPT_UNSET,
		CZ_OPT_UNSET, CZ_OPT_UNSET, CZ_OPT_UNSET, CZ_OPT_UNSET,
	};
	struct cz_msg_ident id;
	int fd, err;

	if (key->type != SOCK_STREAM) {
		fd = key->fd;
	} else if ((err = cz_sockets_listen(c->sockets, key, worker_id,
			    backlog, true, &unset)) < 0) {
		return err;
	} else if (c->mode == CZ_MODE_SHARED || key->shared) {
		fd = key->fd;
	} else if (key->data == NULL &&
		   (err = cz_control_key_listener(c, key)) < 0) {
		return err;
	} else {
		memset(&id, 0, sizeof(id));
		cz_proto_init(&id.hdr, CZ_MSG_IDENT, 0);
		id.key = key->id;
		id.family = key->family;
		id.bound.len = key->bound_len;
		memcpy(&id.bound.ss, &key->bound, key->bound_len);
		fd = cz_rr_chan_open_first(key->data, worker_id, NULL, &id,
			sizeof(id), chan);
		if (fd < 0) {
			return fd;
		}
	}
	/* libuv, in the worker, never expects a blocking socket. */
	err = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ? -errno : 0;
	return err < 0 ? err : fd;
}

int cz_control_grant(struct cz_control *c, uint32_t worker_id, int pid,
	const struct cz_msg_bind *m, int backlog, struct cz_control_grant *g)
{
	struct cz_key *key = NULL;
	int err = cz_sockets_bind(c->sockets, worker_id, m, &key);

	memset(g, 0, sizeof(*g));
	g->fd = -1;
	if (err < 0) {
		return err;
	}
	/* A second listen of one worker on one address fails, as it would
	 * without cluster; port 0 gets a socket of its own (sockets.c).
	 * That bounds its channels too: one per key it may hold. */
	err = cz_sockets_holds(key, worker_id) > 1 ? -EADDRINUSE :
		grant_fd(c, worker_id, key, backlog, &g->channel);
	if (err < 0) {
		if (g->channel != 0) {
			cz_rr_chan_close(c->rr, g->channel, worker_id);
		}
		cz_sockets_release(c->sockets, key, worker_id, false);
		return err;
	}
	g->fd = err;
	g->key = key->id;
	g->type = key->type;
	g->family = key->family;
	g->bound_len = key->bound_len;
	memcpy(&g->bound, &key->bound, key->bound_len);
	cz_control_emit_listening_of(c, worker_id, pid, key);
	return 0;
}

void cz_control_ungrant(struct cz_control *c, uint32_t worker_id,
	const struct cz_control_grant *g)
{
	struct cz_key *key = cz_sockets_find(c->sockets, g->key);

	if (g->channel != 0) {
		cz_rr_chan_close(c->rr, g->channel, worker_id);
	}
	if (key != NULL) {
		cz_sockets_release(c->sockets, key, worker_id, true);
	}
}
