/*
 * Rolling restart (roll.h).  Slots are replaced in order; a slot needs
 * replacing while its generation is older than the roll's.  A worker
 * started for any other reason during the roll (a respawn, TTIN) is fresh
 * and gets the roll's generation, so it is not replaced again.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "control.h"
#include "log.h"
#include "node_ipc.h"
#include "roll.h"
#include "stats.h"

/* How often a replacement's readiness is checked besides on each listen. */
#define READY_TICK_MS 50
#define ADDRS_MAX 512

static unsigned count_candidates(const struct cz_sup *s)
{
	unsigned n = 0;

	for (unsigned i = 0; i < s->n_slots; i++) {
		n += s->slots[i].cand != NULL;
	}
	return n;
}

static bool needs_replacing(const struct cz_sup *s, const struct cz_slot *sl)
{
	return sl->w != NULL && sl->cand == NULL && sl->gen != s->roll.gen;
}

static void roll_end(struct cz_sup *s)
{
	s->roll.active = false;
	cz_notify_ready(&s->notify);
}

/* Detaches every replacement still starting from its slot; with `stop`,
 * also stops it (gracefully: it may serve some addresses already). */
static void drop_candidates(struct cz_sup *s, bool stop)
{
	for (unsigned i = 0; i < s->n_slots; i++) {
		struct cz_worker *c = s->slots[i].cand;

		if (c == NULL) {
			continue;
		}
		s->slots[i].cand = NULL;
		c->candidate = false;
		c->slot = -1;
		if (stop) {
			cz_workers_drain(s, c, "reload");
		}
	}
}

static void roll_abort(struct cz_sup *s, const char *why)
{
	cz_log_event(CZ_LOG_ERROR, "reload_aborted", "reason",
		"reload aborted: %s", why);
	cz_stats.reloads_aborted++;
	drop_candidates(s, true);
	roll_end(s);
}

/* Starts replacements up to max_surge; ends the roll when all are done. */
static void roll_step(struct cz_sup *s)
{
	unsigned running = count_candidates(s);
	char why[256];

	for (unsigned i = 0; i < s->n_slots && running < s->opts->max_surge;
		i++) {
		if (!needs_replacing(s, &s->slots[i])) {
			continue;
		}
		if (cz_workers_spawn(s, i, true, why, sizeof(why)) == NULL) {
			roll_abort(s, why);
			return;
		}
		running++;
	}
	if (running == 0) {
		cz_stats.reloads_finished++;
		cz_log_event(CZ_LOG_INFO, "reload_done", "replaced -",
			"reload done: %u worker%s replaced",
			s->roll.replaced, s->roll.replaced == 1 ? "" : "s");
		roll_end(s);
	}
}

int cz_roll_start(struct cz_sup *s, char *err, size_t errlen)
{
	if (s->state != CZ_SUP_RUNNING) {
		snprintf(err, errlen, "stopping");
		return -ESHUTDOWN;
	}
	if (s->roll.active) {
		snprintf(err, errlen, "reload already in progress");
		return -EBUSY;
	}
	s->roll.active = true;
	cz_stats.reloads_started++;
	s->roll.gen++;
	s->roll.replaced = 0;
	s->roll.total = 0;
	for (unsigned i = 0; i < s->n_slots; i++) {
		s->roll.total += s->slots[i].w != NULL;
	}
	cz_log_event(CZ_LOG_INFO, "reload", "workers -",
		"reload: replacing %u worker%s", s->roll.total,
		s->roll.total == 1 ? "" : "s");
	cz_notify_reloading(&s->notify);
	roll_step(s);
	cz_workers_reschedule(s);
	return 0;
}

/* The new worker serves its slot; the old one is drained and stopped. */
static void promote(struct cz_sup *s, unsigned slot)
{
	struct cz_slot *sl = &s->slots[slot];
	struct cz_worker *c = sl->cand, *old = sl->w;

	sl->w = c;
	sl->cand = NULL;
	sl->gen = s->roll.gen;
	sl->restarts++;
	c->restarts = sl->restarts;
	c->candidate = false;
	c->ready_by = 0;
	s->roll.replaced++;
	if (old == NULL) {
		return;
	}
	cz_log_event(CZ_LOG_INFO, "reload_ready", "id pid old_id old_pid",
		"reload: worker %u (pid %d) ready, stopping worker "
		"%u (pid %d)", c->id, (int)c->pid, old->id, (int)old->pid);
	old->slot = -1;
	cz_workers_drain(s, old, "reload");
}

/* Whether ", "-separated `list` holds `item`. */
static bool in_list(const char *list, const char *item)
{
	size_t n = strlen(item);

	for (const char *p = list; (p = strstr(p, item)) != NULL; p += n) {
		if ((p == list || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0')) {
			return true;
		}
	}
	return false;
}

/* Writes the addresses `old` listens on and `c` does not into buf. */
static void missing_addrs(const struct cz_sup *s, const struct cz_worker *c,
	const struct cz_worker *old, char *buf, size_t len)
{
	char have[ADDRS_MAX], want[ADDRS_MAX];
	size_t used = 0;

	cz_control_worker_addrs(s->control, c->id, have, sizeof(have));
	cz_control_worker_addrs(s->control, old->id, want, sizeof(want));
	buf[0] = '\0';
	for (char *save = NULL, *a = strtok_r(want, ",", &save); a != NULL;
		a = strtok_r(NULL, ",", &save)) {
		while (*a == ' ') {
			a++;
		}
		if (!in_list(have, a) && used < len) {
			used += (size_t)snprintf(buf + used, len - used, "%s%s",
				used > 0 ? ", " : "", a);
		}
	}
	if (buf[0] == '\0') {
		snprintf(buf, len, "its addresses");
	}
}

/* Whether the replacement of `slot` is READY, or -ETIMEDOUT. */
static int check_slot(struct cz_sup *s, unsigned slot, uint64_t now)
{
	const struct cz_slot *sl = &s->slots[slot];
	char missing[ADDRS_MAX], why[ADDRS_MAX + 128];

	if (sl->w == NULL ||
		cz_control_worker_covers(s->control, sl->cand->id, sl->w->id)) {
		return 1;
	}
	if (now < sl->cand->ready_by) {
		return 0;
	}
	missing_addrs(s, sl->cand, sl->w, missing, sizeof(missing));
	snprintf(why, sizeof(why), "worker %u (pid %d) did not listen on %s "
		"within %gs", sl->cand->id, (int)sl->cand->pid, missing,
		s->opts->ready_timeout);
	roll_abort(s, why);
	return -ETIMEDOUT;
}

void cz_roll_check(struct cz_sup *s)
{
	uint64_t now = cz_workers_now();

	if (!s->roll.active || s->state != CZ_SUP_RUNNING) {
		return;
	}
	for (unsigned i = 0; i < s->n_slots; i++) {
		int rc = s->slots[i].cand != NULL ? check_slot(s, i, now) : 0;

		if (rc < 0) {
			return;
		}
		if (rc > 0) {
			promote(s, i);
		}
	}
	roll_step(s);
}

uint64_t cz_roll_deadline(const struct cz_sup *s)
{
	uint64_t next = 0, tick = cz_workers_now() + READY_TICK_MS;

	if (!s->roll.active) {
		return 0;
	}
	for (unsigned i = 0; i < s->n_slots; i++) {
		const struct cz_worker *c = s->slots[i].cand;

		if (c != NULL && (next == 0 || c->ready_by < next)) {
			next = c->ready_by;
		}
	}
	return next != 0 && next > tick ? tick : next;
}

void cz_roll_candidate_exited(struct cz_sup *s, struct cz_worker *w,
	int status)
{
	char what[64], why[128];

	if (w->slot >= 0 && s->slots[w->slot].cand == w) {
		s->slots[w->slot].cand = NULL;
	}
	w->slot = -1;
	w->candidate = false;
	snprintf(why, sizeof(why), "worker %u (pid %d) %s", w->id, (int)w->pid,
		cz_workers_describe(status, what, sizeof(what)));
	if (s->roll.active && s->state == CZ_SUP_RUNNING) {
		roll_abort(s, why);
	}
}

void cz_roll_take_over(struct cz_sup *s, unsigned slot)
{
	struct cz_slot *sl = &s->slots[slot];

	cz_log(CZ_LOG_DEBUG, "reload: worker %u takes over slot %u at once",
		sl->cand->id, slot);
	sl->w = NULL;
	promote(s, slot);
	roll_step(s);
}

void cz_roll_cancel(struct cz_sup *s)
{
	drop_candidates(s, false);
	s->roll.active = false;
}

/* --- scaling ---------------------------------------------------------- */

static void remove_last_slot(struct cz_sup *s)
{
	struct cz_slot *sl = &s->slots[--s->n_slots];
	struct cz_worker *ws[2] = { sl->w, sl->cand };

	*sl = (struct cz_slot){ 0 };
	for (int i = 0; i < 2; i++) {
		if (ws[i] != NULL) {
			ws[i]->slot = -1;
			ws[i]->candidate = false;
			cz_workers_drain(s, ws[i], "scale");
		}
	}
}

void cz_roll_scale(struct cz_sup *s, unsigned n, const char *why)
{
	if (n == s->n_slots || s->state != CZ_SUP_RUNNING) {
		return;
	}
	cz_log_event(s->n_slots == 0 ? CZ_LOG_DEBUG : CZ_LOG_INFO, "scale",
		"from to reason", "scaling from %u to %u workers (%s)",
		s->n_slots, n, why);
	while (s->n_slots < n) {
		unsigned slot = s->n_slots++;

		s->slots[slot] = (struct cz_slot){ 0 };
		cz_workers_spawn_slot(s, slot);
	}
	while (s->n_slots > n) {
		remove_last_slot(s);
	}
	cz_workers_reschedule(s);
}

/* --- signals and the operator's control socket ------------------------ */

void cz_roll_signal(struct cz_sup *s, int sig)
{
	char err[128];

	if (sig == SIGHUP) {
		if (cz_roll_start(s, err, sizeof(err)) == -EBUSY) {
			cz_log(CZ_LOG_WARN, "SIGHUP ignored: %s", err);
		}
	} else if (sig == SIGTTIN && s->n_slots >= CZ_CLI_MAX_WORKERS) {
		cz_log(CZ_LOG_WARN, "SIGTTIN ignored: already %u workers",
			s->n_slots);
	} else if (sig == SIGTTIN) {
		cz_roll_scale(s, s->n_slots + 1, "SIGTTIN");
	} else if (sig == SIGTTOU && s->n_slots <= 1) {
		cz_log(CZ_LOG_WARN, "SIGTTOU ignored: only one worker left");
	} else if (sig == SIGTTOU) {
		cz_roll_scale(s, s->n_slots - 1, "SIGTTOU");
	}
}

const char *cz_roll_worker_state(const struct cz_sup *s,
	const struct cz_worker *w)
{
	if (w->phase == CZ_PHASE_STOP) {
		return "stopping";
	}
	if (w->phase == CZ_PHASE_DRAIN) {
		return "draining";
	}
	if (cz_control_listen_count(s->control, w->id) > 0) {
		return "listening";
	}
	return w->online ? "online" : "starting";
}

static void op_summary(void *data, struct cz_admin_summary *out)
{
	struct cz_sup *s = data;

	out->pid = (int)getpid();
	out->sched = s->opts->sched == CZ_MODE_RR ? "rr" : "none";
	out->balance = s->opts->sched == CZ_MODE_RR ?
		cz_balance_name(s->opts->balance) : NULL;
	out->state = s->state != CZ_SUP_RUNNING ? "stopping" :
		s->roll.active ? "reloading" : "running";
	out->wanted = s->n_slots;
	out->command = s->opts->cmd_argv[0];
}

static int by_id(const void *a, const void *b)
{
	const struct cz_admin_worker *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static size_t op_status(void *data, struct cz_admin_worker *rows, size_t max)
{
	struct cz_sup *s = data;
	uint64_t now = cz_workers_now();
	size_t n = 0;

	for (struct cz_worker *w = s->workers; w != NULL; w = w->next, n++) {
		struct cz_admin_worker *r = &rows[n];

		if (n >= max) {
			continue;
		}
		r->id = w->id;
		r->pid = (int)w->pid;
		r->state = cz_roll_worker_state(s, w);
		r->uptime = (double)(now - w->started) / 1000.0;
		r->restarts = w->restarts;
		r->conns = cz_control_worker_conns(s->control, w->id);
		r->active = cz_control_worker_active(s->control, w->id);
		cz_control_worker_addrs(s->control, w->id, r->addrs,
			sizeof(r->addrs));
	}
	qsort(rows, n < max ? n : max, sizeof(rows[0]), by_id);
	return n;
}

static int op_reload(void *data, char *err, size_t errlen)
{
	return cz_roll_start(data, err, errlen);
}

static int op_scale(void *data, unsigned n, char *err, size_t errlen)
{
	struct cz_sup *s = data;

	if (n < 1 || n > CZ_CLI_MAX_WORKERS) {
		snprintf(err, errlen, "the worker count must be 1..%d",
			CZ_CLI_MAX_WORKERS);
		return -EINVAL;
	}
	if (s->state != CZ_SUP_RUNNING) {
		snprintf(err, errlen, "stopping");
		return -ESHUTDOWN;
	}
	cz_roll_scale(s, n, "scale request");
	return 0;
}

static int op_stop(void *data, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	cz_log_event(CZ_LOG_INFO, "stop", "", "stopping (stop request)");
	cz_workers_begin_stop(data, false);
	return 0;
}

/* `send`: to the Node workers running now (draining ones included). */
static int op_send(void *data, uint32_t worker_id, const json_t *msg,
	unsigned *delivered, char *err, size_t errlen)
{
	struct cz_sup *s = data;
	int rc;

	*delivered = 0;
	if (s->nipc == NULL) {
		snprintf(err, errlen, "the launcher runs with --node-ipc off");
		return -ENOTSUP;
	}
	for (struct cz_worker *w = s->workers; w != NULL; w = w->next) {
		if (worker_id != 0 && w->id != worker_id) {
			continue;
		}
		rc = cz_node_ipc_send(s->nipc, w->id, msg);
		if (rc == 0) {
			(*delivered)++;
		} else if (worker_id != 0) {
			snprintf(err, errlen, "worker %u: %s", worker_id,
				rc == -ENOENT ? "not a Node worker (it never spoke "
				"Node's cluster protocol)" : rc == -ENOBUFS ?
				"it does not read its messages" : strerror(-rc));
			return rc;
		}
	}
	if (*delivered == 0) {
		snprintf(err, errlen, worker_id != 0 ? "no worker %u" :
			"no Node worker to deliver to", worker_id);
		return -ENOENT;
	}
	return 0;
}

/* Only a --control the user asked for is worth failing over. */
int cz_roll_start_admin(struct cz_sup *s)
{
	static const struct cz_admin_ops ops_template = {
		.summary = op_summary, .status = op_status, .reload = op_reload,
		.scale = op_scale, .stop = op_stop, .send = op_send,
	};
	struct cz_admin_ops ops = ops_template;
	int rc;

	ops.data = s;
	rc = cz_admin_create(s->loop, s->opts->control, &ops, &s->admin);
	if (rc == 0) {
		cz_log_event(CZ_LOG_INFO, "control_socket", "path",
			"control socket %s", cz_admin_path(s->admin));
		return 0;
	}
	s->admin = NULL;
	if (s->opts->control != NULL) {
		cz_log(CZ_LOG_ERROR, "control socket %s: %s", s->opts->control,
			strerror(-rc));
		return rc;
	}
	cz_log(CZ_LOG_WARN, "control socket: %s; the subcommands will not "
		"reach this launcher", strerror(-rc));
	return 0;
}
