/* Re-creating listening sockets that someone shut down: listen_watch.h. */
#include "listen_watch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "addr.h"
#include "log.h"

struct cz_lwatch {
	uv_timer_t timer;
	struct cz_sockets *sockets;
	struct cz_rr *rr;
};

static int install_rr(void *data, int fd)
{
	return cz_rr_listener_replace(data, fd);
}

/* Makes `k` a new socket (through rr listener `l` if it has one). */
static int relisten(struct cz_key *k, struct cz_rr_listener *l, int why)
{
	char a[CZ_ADDR_STRLEN];
	int err = cz_sockets_relisten(k, l != NULL ? install_rr : NULL, l);

	cz_addr_format((const void *)&k->bound, k->bound_len, k->type, a,
		sizeof(a));
	if (err == 0) {
		cz_log_peer(CZ_LOG_PEER_UNKNOWN, CZ_LOG_WARN, "%s: %s: a process "
			"that held the listening socket shut it down; listening on "
			"a new one", a, strerror(why));
		return 0;
	}
	k->dead = true;
	cz_log_peer(CZ_LOG_PEER_UNKNOWN, CZ_LOG_WARN, "%s: %s: cannot listen "
		"on a new socket (%s): connections to it are not served any more",
		a, strerror(why), strerror(-err));
	return err;
}

static int on_broken(void *data, struct cz_rr_listener *l, int err)
{
	struct cz_key *k = cz_rr_listener_data(l);

	(void)data;
	return k != NULL && !k->dead ? relisten(k, l, err) : -EINVAL;
}

/* The workers accept on it: only SO_ACCEPTCONN says it died. */
static void check_key(void *data, struct cz_key *k)
{
	int v = 1;
	socklen_t len = sizeof(v);

	(void)data;
	if (!k->listening || k->type != SOCK_STREAM || k->data != NULL ||
	    k->dead) {
		return;
	}
	if (getsockopt(k->fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 &&
	    v == 0) {
		relisten(k, NULL, EINVAL);
	}
}

void cz_lwatch_check(struct cz_lwatch *w)
{
	cz_sockets_each(w->sockets, check_key, w);
}

static void on_timer(uv_timer_t *t)
{
	cz_lwatch_check(t->data);
}

int cz_lwatch_create(uv_loop_t *loop, struct cz_sockets *s, struct cz_rr *rr,
	struct cz_lwatch **out)
{
	struct cz_lwatch *w = calloc(1, sizeof(*w));
	int err;

	if (w == NULL) {
		return -ENOMEM;
	}
	err = uv_timer_init(loop, &w->timer);
	if (err < 0) {
		free(w);
		return err;
	}
	w->timer.data = w;
	w->sockets = s;
	w->rr = rr;
	uv_timer_start(&w->timer, on_timer, CZ_LISTEN_WATCH_MS,
		CZ_LISTEN_WATCH_MS);
	/* The check alone must not keep the loop running. */
	uv_unref((uv_handle_t *)&w->timer);
	cz_rr_set_broken(rr, on_broken, w);
	*out = w;
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	free(h->data);
}

void cz_lwatch_destroy(struct cz_lwatch *w)
{
	if (w != NULL) {
		cz_rr_set_broken(w->rr, NULL, NULL);
		uv_close((uv_handle_t *)&w->timer, on_closed);
	}
}
