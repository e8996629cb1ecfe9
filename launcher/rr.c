#include "rr.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "balance.h"
#include "conns.h"
#include "log.h"
#include "proto.h"
#include "rr_chan.h"
#include "stats.h"

struct rr_chan {
	struct cz_balance_chan b; /* worker_id, stalled, stopping...: balance.h */
	uv_poll_t poll; /* readable primary end: NACK */
	struct cz_rr_listener *l;
	void *owner;
	uint32_t id;
	int fd;  /* primary end, non-blocking */
	int wfd; /* the worker's end: what is queued there, and taking it back */
	struct cz_rr_inflight fl; /* sent, not seen taken */
	unsigned looked;   /* the cz_rr.gen of the last look at the queue */
	uint64_t progress; /* last seen taking, or first CONN sent after none */
	uint64_t conns;    /* sent and not taken back */
};

struct cz_rr_listener {
	uv_poll_t poll;
	struct cz_rr *rr;
	struct cz_rr_listener *next;
	int fd;
	bool nonblock;
	bool polling;
	bool emfile;    /* accept failed hard (EMFILE...): paused until a tick */
	bool warned;    /* ... and said so; reset by a successful accept */
	bool dead;      /* broken for good: never polled again */
	void *data;     /* the owner's */
	bool lent;      /* socket activation's: never shut down */
	bool stopped;   /* the cluster stops: accepts no more */
	struct rr_chan **chans;
	struct cz_balance_chan **views; /* &chans[i]->b, for the balancer */
	unsigned nchans, chans_cap;
	struct cz_balancer bal;
	struct cz_rr_fifo q; /* accepted, not yet sent */
	struct cz_stats_listener stats;
	char name[160];
};

/* Connections of a worker's closed channels (cz_rr_worker_conns). */
struct rr_count {
	uint32_t worker_id;
	uint64_t conns;
};

struct cz_rr {
	uv_loop_t *loop;
	uv_timer_t timer;
	uv_timer_t hold; /* while connections are held: look again soon */
	unsigned gen;    /* bumped per event: a channel is looked at once in it */
	int spare;       /* an fd kept so that taking back never truncates */
	struct cz_rr_listener *listeners;
	uint32_t next_chan_id;
	uint64_t fake_now;
	struct rr_count *counts;
	unsigned ncounts, counts_cap;
	cz_rr_chan_closed_fn *chan_closed;
	void *chan_closed_data;
	cz_rr_broken_fn *broken;
	void *broken_data;
	struct cz_balance_env env;
	const struct cz_conntab *conntab;
};

static uint64_t now_ms(const struct cz_rr *rr)
{
	return rr->fake_now != 0 ? rr->fake_now : uv_now(rr->loop);
}

static void close_fd(int fd)
{
	if (fd >= 0) {
		close(fd);
	}
}

/* --- channels ------------------------------------------------------------- */

/*
 * Learns from the kernel what the worker took since the last look: at most
 * once per event (cz_rr.gen) unless `now`, so a full channel costs one
 * ioctl per event, however many connections wait.
 */
static void chan_look(struct rr_chan *ch, bool now)
{
	struct cz_rr *rr = ch->l->rr;

	if (!now && ch->looked == rr->gen) {
		return;
	}
	ch->looked = rr->gen;
	if (cz_rr_inflight_look(&ch->fl, ch->wfd) > 0) {
		ch->progress = now_ms(rr);
	}
}

/*
 * The channel the balancer picks for `c` (always one with credit), or
 * NULL.  The balancer reads each channel's count (balance.h): one that
 * seems full is looked at first; for least-conn, any with some counted
 * (a connection taken is in the worker's open count already: counted
 * twice, it would make the worker look busier than it is).
 */
static struct rr_chan *pick(struct cz_rr_listener *l, const struct cz_rr_conn *c)
{
	unsigned floor = l->rr->env.policy == CZ_BALANCE_LEAST_CONN ? 1 : CZ_RR_CREDIT;
	unsigned j;
	int i;

	for (j = 0; j < l->nchans; j++) {
		struct rr_chan *ch = l->chans[j];

		if (ch->fl.n >= floor && !ch->b.stalled && !ch->b.stopping) {
			chan_look(ch, false);
		}
	}
	i = cz_balance_pick(&l->bal, l->views, l->nchans, &c->peer, c->plen);
	return i >= 0 ? l->chans[i] : NULL;
}

/*
 * Sends CONN + fd; the primary's copy is closed at once.  The wait
 * histogram counts a connection when it first goes to a worker.
 */
static int chan_send(struct rr_chan *ch, const struct cz_rr_conn *c)
{
	int err = cz_rr_inflight_send(&ch->fl, ch->fd, ch->l->nonblock, c);

	if (err < 0) {
		return err;
	}
	cz_stats_wait_observe(&ch->l->stats.wait, c->accepted_ns);
	ch->conns++;
	if (ch->fl.n == 1) {
		ch->progress = now_ms(ch->l->rr);
	}
	return 0;
}

/* Sends `c` to a channel with credit; 0, or -EAGAIN if none took it. */
static int send_any(struct cz_rr_listener *l, const struct cz_rr_conn *c)
{
	struct rr_chan *ch;
	int err;

	while ((ch = pick(l, c)) != NULL) {
		err = chan_send(ch, c);
		if (err == 0) {
			return 0;
		}
		/* A full or broken channel gets nothing until a tick clears it. */
		cz_log_peer(ch->b.worker_id, CZ_LOG_DEBUG,
			"channel %u of worker %u: send: %s",
			ch->id, ch->b.worker_id, strerror(-err));
		ch->b.stalled = true;
		ch->progress = now_ms(l->rr);
	}
	return -EAGAIN;
}

/* Queues `c` for the next channel with credit; never loses it. */
static void requeue(struct cz_rr_listener *l, const struct cz_rr_conn *c)
{
	if (cz_rr_fifo_push(&l->q, c) < 0) {
		cz_log(CZ_LOG_ERROR, "%s: out of memory: dropping a connection",
			l->name);
		l->stats.dropped++;
		close(c->fd);
	}
}

static void update_poll(struct cz_rr_listener *l);
static void on_hold(uv_timer_t *t);

/*
 * sticky: a connection waiting for its busy worker must not hold back
 * those of other workers.  Each queued connection gets one try, and those
 * that stay keep their order.
 */
static void drain_each(struct cz_rr_listener *l)
{
	unsigned n = l->q.len;
	struct cz_rr_conn c;

	while (n-- > 0) {
		c = *cz_rr_fifo_front(&l->q);
		cz_rr_fifo_pop(&l->q);
		if (send_any(l, &c) < 0) {
			requeue(l, &c); /* pushes what was just popped: no growth */
		}
	}
}

/* Sends held connections, oldest first, while channels have credit. */
static void send_held(struct cz_rr_listener *l)
{
	struct cz_rr_conn *c;

	if (l->rr->env.policy == CZ_BALANCE_STICKY) {
		drain_each(l);
		return;
	}
	while ((c = cz_rr_fifo_front(&l->q)) != NULL && send_any(l, c) == 0) {
		cz_rr_fifo_pop(&l->q);
	}
}

/*
 * Nothing tells the primary when a worker takes a connection (that would
 * cost a wake-up per connection): while it holds some, it looks again
 * CZ_RR_HOLD_MS after its last try, unless an event comes first.
 */
static void hold_check(struct cz_rr_listener *l)
{
	if (l->q.len > 0 && l->nchans > 0) {
		uv_timer_start(&l->rr->hold, on_hold, CZ_RR_HOLD_MS, 0);
	}
}

/* Sends queued connections while channels have credit. */
static void drain(struct cz_rr_listener *l)
{
	l->rr->gen++;
	cz_stats_clock();
	send_held(l);
	update_poll(l);
	hold_check(l);
}

/*
 * A connection taken back from the worker's end: it never took it.  Sent
 * on at once if it can be, so that taking back a whole queue needs one
 * free fd, not one per connection.  `ch` has no credit by now.
 */
static void on_taken_back(void *data, const struct cz_rr_conn *c)
{
	struct rr_chan *ch = data;
	struct cz_rr_listener *l = ch->l;

	ch->conns--;
	l->stats.redispatched++;
	if (l->q.len > 0 || send_any(l, c) < 0) {
		requeue(l, c);
	}
}

/* Queues for other workers every connection the worker has not taken. */
static unsigned chan_reclaim(struct rr_chan *ch)
{
	return cz_rr_inflight_reclaim(&ch->fl, ch->wfd, &ch->l->rr->spare,
		on_taken_back, ch);
}

static void chan_nudge(struct rr_chan *ch)
{
	int err = cz_rr_chan_send_nudge(&ch->fl, ch->fd);

	if (err < 0) {
		cz_log_peer(ch->b.worker_id, CZ_LOG_DEBUG, "channel %u: nudge: %s",
			ch->id,
			strerror(-err));
	}
}

static void on_chan_msg(void *data, int type, uint32_t seq, size_t len)
{
	struct rr_chan *ch = data;
	unsigned n;

	(void)seq;
	if (type == CZ_MSG_NACK) {
		/* The worker is out of fds: it gets nothing until the next
		 * tick finds its channel empty. */
		ch->b.stalled = true;
		n = chan_reclaim(ch);
		cz_log_peer(ch->b.worker_id, CZ_LOG_TRACE, "channel %u: NACK: "
			"%u connection(s) given to other workers", ch->id, n);
		ch->progress = now_ms(ch->l->rr);
	} else {
		cz_log_peer(ch->b.worker_id, CZ_LOG_WARN,
			"channel %u of worker %u: bad message "
			"(%zu bytes): ignored", ch->id, ch->b.worker_id, len);
	}
}

static void on_chan(uv_poll_t *h, int status, int events)
{
	struct rr_chan *ch = h->data;

	(void)events;
	if (status < 0) {
		cz_log_peer(ch->b.worker_id, CZ_LOG_WARN,
			"channel %u of worker %u: poll: %s",
			ch->id, ch->b.worker_id, uv_strerror(status));
		uv_poll_stop(h);
		return;
	}
	cz_rr_chan_read_msgs(ch->fd, on_chan_msg, ch);
	drain(ch->l);
}

static struct rr_count *count_find(const struct cz_rr *rr,
	uint32_t worker_id)
{
	unsigned i;

	for (i = 0; i < rr->ncounts; i++) {
		if (rr->counts[i].worker_id == worker_id) {
			return &rr->counts[i];
		}
	}
	return NULL;
}

/* Keeps the count of a closed channel for cz_rr_worker_conns(). */
static void count_add(struct cz_rr *rr, uint32_t worker_id, uint64_t n)
{
	struct rr_count *c = count_find(rr, worker_id);

	if (c == NULL && rr->ncounts == rr->counts_cap) {
		unsigned cap = rr->counts_cap ? rr->counts_cap * 2 : 8;
		void *p = realloc(rr->counts, cap * sizeof(*rr->counts));

		if (p == NULL) {
			return; /* only a statistic */
		}
		rr->counts = p;
		rr->counts_cap = cap;
	}
	if (c == NULL) {
		c = &rr->counts[rr->ncounts++];
		*c = (struct rr_count){ .worker_id = worker_id };
	}
	c->conns += n;
}

static void count_drop(struct cz_rr *rr, uint32_t worker_id)
{
	struct rr_count *c = count_find(rr, worker_id);

	if (c != NULL) {
		*c = rr->counts[--rr->ncounts];
	}
}

static void on_chan_closed(uv_handle_t *h)
{
	free(h->data);
}

/* Why a channel goes away, which decides what becomes of its copies. */
enum chan_end {
	CHAN_SHUTDOWN, /* the launcher is closing the listener */
	CHAN_RELEASED, /* the worker closed its listener */
	CHAN_DEAD,     /* the worker exited */
};

/*
 * Detaches `ch` from its listener and closes it.  What is still queued in
 * it goes to other workers, unless the launcher is closing the listener.
 * A connection the worker received is its own: one that a worker killed
 * before serving it received is lost, as under any primary.
 */
static void chan_destroy(struct rr_chan *ch, enum chan_end why)
{
	struct cz_rr_listener *l = ch->l;
	unsigned i;

	/* What is taken back must not be sent into it again. */
	ch->b.stopping = true;
	if (why != CHAN_SHUTDOWN) {
		chan_reclaim(ch);
	}
	count_add(l->rr, ch->b.worker_id, ch->conns);
	for (i = 0; i < l->nchans; i++) {
		if (l->chans[i] == ch) {
			l->chans[i] = l->chans[--l->nchans];
			l->views[i] = &l->chans[i]->b;
			break;
		}
	}
	uv_close((uv_handle_t *)&ch->poll, on_chan_closed);
	close_fd(ch->fd);
	close_fd(ch->wfd);
	if (l->rr->chan_closed != NULL) {
		l->rr->chan_closed(l->rr->chan_closed_data, ch->b.worker_id,
			ch->owner);
	}
}

static int chans_grow(struct cz_rr_listener *l)
{
	unsigned cap;
	void *p;

	if (l->nchans < l->chans_cap) {
		return 0;
	}
	cap = l->chans_cap ? l->chans_cap * 2 : 8;
	p = realloc(l->views, cap * sizeof(*l->views));
	if (p == NULL) {
		return -ENOMEM;
	}
	l->views = p;
	p = realloc(l->chans, cap * sizeof(*l->chans));
	if (p == NULL) {
		return -ENOMEM;
	}
	l->chans = p;
	l->chans_cap = cap;
	return 0;
}

int cz_rr_chan_open(struct cz_rr_listener *l, uint32_t worker_id,
	void *owner, uint32_t *id)
{
	return cz_rr_chan_open_first(l, worker_id, owner, NULL, 0, id);
}

int cz_rr_chan_open_first(struct cz_rr_listener *l, uint32_t worker_id,
	void *owner, const void *first, size_t len, uint32_t *id)
{
	struct rr_chan *ch;
	int sv[2], err;

	if (chans_grow(l) < 0 || (ch = calloc(1, sizeof(*ch))) == NULL) {
		return -ENOMEM;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		err = -errno;
		free(ch);
		return err;
	}
	/* Before any connection can be sent on it; booked, so that the
	 * worker reading it is not taken for a connection taken. */
	cz_rr_inflight_init(&ch->fl);
	if (first != NULL &&
	    (err = cz_rr_inflight_send_other(&ch->fl, sv[0], first, len)) < 0) {
		close(sv[0]);
		close(sv[1]);
		free(ch);
		return err;
	}
	/* uv_poll_init makes the primary's end non-blocking. */
	err = uv_poll_init(l->rr->loop, &ch->poll, sv[0]);
	if (err == 0) {
		err = uv_poll_start(&ch->poll, UV_READABLE, on_chan);
	}
	if (err < 0) {
		close(sv[0]);
		close(sv[1]);
		free(ch);
		return err;
	}
	ch->poll.data = ch;
	ch->l = l;
	ch->fd = sv[0];
	ch->wfd = sv[1];
	ch->b.worker_id = worker_id;
	ch->owner = owner;
	ch->b.inflight = &ch->fl.n;
	ch->b.conns = cz_conntab_find(l->rr->conntab, worker_id);
	/* Not yet known: read on the first sticky pick. */
	ch->b.slot = -1;
	ch->b.slot_gen = l->rr->env.slot_gen - 1;
	ch->looked = l->rr->gen - 1;
	ch->id = ++l->rr->next_chan_id;
	if (ch->id == 0) {
		ch->id = ++l->rr->next_chan_id;
	}
	l->views[l->nchans] = &ch->b;
	l->chans[l->nchans++] = ch;
	*id = ch->id;
	drain(l);
	return ch->wfd;
}

static struct rr_chan *chan_find(const struct cz_rr *rr, uint32_t id)
{
	const struct cz_rr_listener *l;
	unsigned i;

	for (l = rr->listeners; l != NULL; l = l->next) {
		for (i = 0; i < l->nchans; i++) {
			if (l->chans[i]->id == id) {
				return l->chans[i];
			}
		}
	}
	return NULL;
}

int cz_rr_chan_close(struct cz_rr *rr, uint32_t id, uint32_t worker_id)
{
	struct rr_chan *ch = chan_find(rr, id);
	struct cz_rr_listener *l;

	if (ch == NULL || ch->b.worker_id != worker_id) {
		return -ENOENT;
	}
	l = ch->l;
	chan_destroy(ch, CHAN_RELEASED);
	drain(l);
	return 0;
}

/* Calls fn on every channel of `worker_id`, then drains each listener. */
static void each_worker_chan(struct cz_rr *rr, uint32_t worker_id,
	void (*fn)(struct rr_chan *))
{
	struct cz_rr_listener *l;
	unsigned i;

	for (l = rr->listeners; l != NULL; l = l->next) {
		for (i = l->nchans; i-- > 0;) {
			if (l->chans[i]->b.worker_id == worker_id) {
				fn(l->chans[i]);
			}
		}
		drain(l);
	}
}

static void chan_stop(struct rr_chan *ch)
{
	ch->b.stopping = true;
	chan_reclaim(ch);
}

static void chan_gone(struct rr_chan *ch)
{
	chan_destroy(ch, CHAN_DEAD);
}

void cz_rr_owner_gone(struct cz_rr *rr, void *owner)
{
	struct cz_rr_listener *l;
	unsigned i;

	for (l = rr->listeners; l != NULL; l = l->next) {
		for (i = l->nchans; i-- > 0;) {
			if (l->chans[i]->owner == owner) {
				chan_destroy(l->chans[i], CHAN_DEAD);
			}
		}
		drain(l);
	}
}

void cz_rr_worker_stopping(struct cz_rr *rr, uint32_t worker_id)
{
	each_worker_chan(rr, worker_id, chan_stop);
}

void cz_rr_worker_exited(struct cz_rr *rr, uint32_t worker_id)
{
	each_worker_chan(rr, worker_id, chan_gone);
	count_drop(rr, worker_id);
}

/* --- stall detection ------------------------------------------------------ */

static void chan_check(struct rr_chan *ch, uint64_t now)
{
	unsigned n;
	bool was;

	chan_look(ch, true);
	if (ch->b.stalled && ch->fl.len == 0) {
		/* The worker read everything, the nudge included: alive again. */
		ch->b.stalled = false;
		ch->progress = now;
		return;
	}
	if (ch->fl.n == 0 || now - ch->progress <= CZ_RR_STALL_MS) {
		return;
	}
	/* Stalled first: what is taken back must not go back into it.  One
	 * stalled by a failed send may still hold connections. */
	was = ch->b.stalled;
	ch->b.stalled = true;
	n = chan_reclaim(ch);
	if (!was) {
		chan_nudge(ch);
	}
	cz_log_peer(ch->b.worker_id, CZ_LOG_DEBUG,
		"channel %u of worker %u: nothing taken for %ums: "
		"%u connection(s) given to other workers", ch->id,
		ch->b.worker_id, CZ_RR_STALL_MS, n);
}

void cz_rr_tick(struct cz_rr *rr)
{
	uint64_t now = now_ms(rr);
	struct cz_rr_listener *l;
	unsigned i;

	for (l = rr->listeners; l != NULL; l = l->next) {
		for (i = 0; i < l->nchans; i++) {
			chan_check(l->chans[i], now);
		}
		l->emfile = false;
		drain(l);
	}
}

unsigned cz_rr_worker_pending(struct cz_rr *rr, uint32_t worker_id)
{
	struct cz_rr_listener *l;
	struct rr_chan *ch;
	unsigned i, n = 0;

	for (l = rr->listeners; l != NULL; l = l->next) {
		for (i = 0; i < l->nchans; i++) {
			ch = l->chans[i];
			if (ch->b.worker_id == worker_id) {
				chan_look(ch, true);
				n += ch->fl.n;
			}
		}
	}
	return n;
}

unsigned cz_rr_worker_unacked(struct cz_rr *rr, uint32_t worker_id)
{
	return cz_rr_worker_pending(rr, worker_id);
}

uint64_t cz_rr_worker_conns(const struct cz_rr *rr, uint32_t worker_id)
{
	const struct rr_count *c = count_find(rr, worker_id);
	const struct cz_rr_listener *l;
	uint64_t n = c != NULL ? c->conns : 0;
	unsigned i;

	for (l = rr->listeners; l != NULL; l = l->next) {
		for (i = 0; i < l->nchans; i++) {
			if (l->chans[i]->b.worker_id == worker_id) {
				n += l->chans[i]->conns;
			}
		}
	}
	return n;
}

static void on_tick(uv_timer_t *t)
{
	cz_stats_clock();
	cz_rr_tick(t->data);
}

static void on_hold(uv_timer_t *t)
{
	struct cz_rr *rr = t->data;
	struct cz_rr_listener *l;

	for (l = rr->listeners; l != NULL; l = l->next) {
		if (l->q.len > 0) {
			drain(l);
		}
	}
}

/* --- listeners ------------------------------------------------------------ */

/* Out of fds or memory: the listener itself is fine. */
static bool accept_starved(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/* Returns whether to keep accepting after accept4() failed with `err`. */
static bool on_accept_error(struct cz_rr_listener *l, int err)
{
	if (cz_rr_accept_transient(err)) {
		return true;
	}
	/* A socket that fails for good (shut down by someone who held it):
	 * the owner re-creates it, or it is given up. */
	if (!accept_starved(err) && l->rr->broken != NULL) {
		if (l->rr->broken(l->rr->broken_data, l, err) < 0) {
			l->dead = true;
		}
		return false;
	}
	/* Retrying at once would spin; the next tick resumes. */
	if (!l->warned) {
		cz_log(CZ_LOG_WARN, "accept on %s: %s", l->name, strerror(err));
		l->warned = true;
	}
	l->emfile = true;
	return false;
}

static void on_listener(uv_poll_t *h, int status, int events)
{
	struct cz_rr_listener *l = h->data;
	int flags = SOCK_CLOEXEC | (l->nonblock ? SOCK_NONBLOCK : 0);
	struct cz_rr_conn c;
	uint64_t now = cz_stats_clock();
	int i;

	(void)events;
	if (status < 0) {
		/* Not retried: a broken socket would spin the loop. */
		cz_log(CZ_LOG_WARN, "%s: poll: %s", l->name, uv_strerror(status));
		uv_poll_stop(h);
		l->polling = false;
		l->emfile = true;
		return;
	}
	l->rr->gen++;
	send_held(l);
	for (i = 0; i < CZ_RR_BATCH && l->q.len < CZ_RR_HOLD && !l->emfile; i++) {
		c.plen = sizeof(c.peer);
		c.fd = accept4(l->fd, (struct sockaddr *)&c.peer, &c.plen, flags);
		if (c.fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    !on_accept_error(l, errno)) {
				break;
			}
			continue;
		}
		l->warned = false;
		c.accepted_ns = now;
		l->stats.accepted++;
		/* First come, first served: behind any already held. */
		if (l->q.len > 0 || send_any(l, &c) < 0) {
			requeue(l, &c);
		}
	}
	update_poll(l);
	hold_check(l);
}

/*
 * Accepting goes on while a few connections can be held for the next
 * worker with credit: stopping and restarting the poll each time credit
 * runs out cost two epoll_ctl calls per connection under load.  Past
 * CZ_RR_HOLD, or with no worker listening at all, they wait in the
 * kernel's backlog.
 */
static void update_poll(struct cz_rr_listener *l)
{
	bool want = !l->stopped && !l->emfile && !l->dead && l->nchans > 0 &&
		    l->q.len < CZ_RR_HOLD;

	if (want == l->polling) {
		return;
	}
	if (want && uv_poll_start(&l->poll, UV_READABLE, on_listener) < 0) {
		return;
	}
	if (!want) {
		uv_poll_stop(&l->poll);
	}
	l->polling = want;
}

int cz_rr_listener_create(struct cz_rr *rr, int fd, bool conn_nonblock,
	const char *name, struct cz_rr_listener **out)
{
	struct cz_rr_listener *l = calloc(1, sizeof(*l));
	int err;

	if (l == NULL) {
		return -ENOMEM;
	}
	err = uv_poll_init(rr->loop, &l->poll, fd);
	if (err < 0) {
		free(l);
		return err;
	}
	l->poll.data = l;
	l->rr = rr;
	l->bal.env = &rr->env;
	l->fd = fd;
	l->nonblock = conn_nonblock;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->next = rr->listeners;
	rr->listeners = l;
	if (!uv_is_active((uv_handle_t *)&rr->timer)) {
		uv_timer_start(&rr->timer, on_tick, CZ_RR_TICK_MS, CZ_RR_TICK_MS);
	}
	*out = l;
	return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
	struct cz_rr_listener *l = h->data;

	free(l->views);
	free(l->chans);
	free(l);
}

void cz_rr_listener_destroy(struct cz_rr_listener *l)
{
	struct cz_rr_listener **pp;

	for (pp = &l->rr->listeners; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	}
	while (l->nchans > 0) {
		chan_destroy(l->chans[0], CHAN_SHUTDOWN);
	}
	l->stats.dropped += l->q.len;
	cz_rr_fifo_free(&l->q);
	uv_close((uv_handle_t *)&l->poll, on_listener_closed);
}

void cz_rr_listener_lent(struct cz_rr_listener *l)
{
	l->lent = true;
}

/* Takes the backlog (bounded, so a flood cannot hold the loop), then no more. */
static void listener_stop(struct cz_rr_listener *l)
{
	int flags = SOCK_CLOEXEC | (l->nonblock ? SOCK_NONBLOCK : 0);
	struct cz_rr_conn c;

	for (unsigned i = 0; i < CZ_RR_STOP_TAKE && !l->stopped; i++) {
		c.plen = sizeof(c.peer);
		c.fd = accept4(l->fd, (struct sockaddr *)&c.peer, &c.plen, flags);
		if (c.fd >= 0) {
			requeue(l, &c);
		} else if (errno != EINTR && !cz_rr_accept_transient(errno)) {
			break;
		}
	}
	if (!l->lent && !l->stopped) {
		shutdown(l->fd, SHUT_RD);
	}
	l->stopped = true;
	drain(l);
}

void cz_rr_stop_accepting(struct cz_rr *rr)
{
	for (struct cz_rr_listener *l = rr->listeners; l != NULL; l = l->next) {
		listener_stop(l);
	}
}

unsigned cz_rr_held(const struct cz_rr *rr)
{
	unsigned n = 0;

	for (const struct cz_rr_listener *l = rr->listeners; l != NULL; l = l->next) {
		n += l->q.len;
	}
	return n;
}

void cz_rr_dispatch(struct cz_rr_listener *l, int fd,
	const struct sockaddr *peer, socklen_t peer_len)
{
	struct cz_rr_conn c = { .fd = fd };

	if (peer != NULL && peer_len <= sizeof(c.peer)) {
		memcpy(&c.peer, peer, peer_len);
		c.plen = peer_len;
	}
	requeue(l, &c);
	drain(l);
}

/* --- the dispatcher ------------------------------------------------------- */

int cz_rr_create(uv_loop_t *loop, struct cz_rr **out)
{
	struct cz_rr *rr = calloc(1, sizeof(*rr));
	int err;

	if (rr == NULL) {
		return -ENOMEM;
	}
	rr->loop = loop;
	/* A slot kept free from the start for taking connections back. */
	rr->spare = eventfd(0, EFD_CLOEXEC);
	/* Neither timer alone must keep the loop running. */
	err = uv_timer_init(loop, &rr->timer);
	if (err < 0) {
		close_fd(rr->spare);
		free(rr);
		return err;
	}
	rr->timer.data = rr;
	uv_unref((uv_handle_t *)&rr->timer);
	uv_timer_init(loop, &rr->hold); /* cannot fail once the first did */
	rr->hold.data = rr;
	uv_unref((uv_handle_t *)&rr->hold);
	rr->env.policy = CZ_BALANCE_RR;
	*out = rr;
	return 0;
}

int cz_rr_set_balance(struct cz_rr *rr, enum cz_balance policy)
{
	return cz_balance_env_init(&rr->env, policy);
}

void cz_rr_set_slots(struct cz_rr *rr, cz_balance_slot_fn *fn, void *data)
{
	rr->env.slot_of = fn;
	rr->env.slot_data = data;
	rr->env.slot_gen++;
}

void cz_rr_slots_changed(struct cz_rr *rr)
{
	rr->env.slot_gen++;
}

void cz_rr_set_conntab(struct cz_rr *rr, const struct cz_conntab *t)
{
	rr->conntab = t;
}

static void on_timer_closed(uv_handle_t *h)
{
	struct cz_rr *rr = h->data;

	close_fd(rr->spare);
	free(rr->counts);
	free(rr);
}

/* The two timers live in *rr: the second is closed once the first is. */
static void on_hold_closed(uv_handle_t *h)
{
	struct cz_rr *rr = h->data;

	uv_close((uv_handle_t *)&rr->timer, on_timer_closed);
}

void cz_rr_destroy(struct cz_rr *rr)
{
	if (rr == NULL) {
		return;
	}
	while (rr->listeners != NULL) {
		cz_rr_listener_destroy(rr->listeners);
	}
	uv_close((uv_handle_t *)&rr->hold, on_hold_closed);
}

void cz_rr_set_chan_closed(struct cz_rr *rr, cz_rr_chan_closed_fn *fn,
	void *data)
{
	rr->chan_closed = fn;
	rr->chan_closed_data = data;
}

void cz_rr_set_broken(struct cz_rr *rr, cz_rr_broken_fn *fn, void *data)
{
	rr->broken = fn;
	rr->broken_data = data;
}

void cz_rr_listener_set_data(struct cz_rr_listener *l, void *data)
{
	l->data = data;
}

void *cz_rr_listener_data(const struct cz_rr_listener *l)
{
	return l->data;
}

int cz_rr_listener_replace(struct cz_rr_listener *l, int fd)
{
	int fl = fcntl(fd, F_GETFL);

	/* Stopping unregisters the old socket from epoll while the number
	 * still names it; polling again registers the new one. */
	uv_poll_stop(&l->poll);
	l->polling = false;
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    dup3(fd, l->fd, O_CLOEXEC) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	close(fd);
	l->emfile = false;
	l->warned = false;
	l->dead = false;
	update_poll(l);
	return 0;
}

void cz_rr_tick_stop(struct cz_rr *rr)
{
	uv_timer_stop(&rr->timer);
}

void cz_rr_set_now(struct cz_rr *rr, uint64_t ms)
{
	rr->fake_now = ms;
}

int cz_rr_chan_info(struct cz_rr *rr, uint32_t id,
	struct cz_rr_chan_info *info)
{
	struct rr_chan *ch = chan_find(rr, id);

	if (ch == NULL) {
		return -ENOENT;
	}
	chan_look(ch, true);
	info->worker_id = ch->b.worker_id;
	info->queued = ch->fl.n;
	info->stalled = ch->b.stalled;
	info->stopping = ch->b.stopping;
	return 0;
}

unsigned cz_rr_pending(const struct cz_rr_listener *l)
{
	return l->q.len;
}

bool cz_rr_polling(const struct cz_rr_listener *l)
{
	return l->polling;
}

void cz_rr_each_listener(struct cz_rr *rr, cz_rr_listener_fn *fn,
	void *data)
{
	struct cz_rr_listener *l;
	struct cz_rr_listener_info info;
	unsigned i;

	for (l = rr->listeners; l != NULL; l = l->next) {
		info = (struct cz_rr_listener_info){
			.name = l->name, .stats = &l->stats, .held = l->q.len,
			.workers = l->nchans,
		};
		for (i = 0; i < l->nchans; i++) {
			chan_look(l->chans[i], true);
			info.queued += l->chans[i]->fl.n;
		}
		fn(data, &info);
	}
}
