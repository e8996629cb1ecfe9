/* Draining a worker: see drain.h. */
#include "drain.h"

#include <stdio.h>
#include <string.h>

#include "control.h"
#include "log.h"
#include "node_ipc.h"

static uint64_t seconds_ms(double sec)
{
	return (uint64_t)(sec * 1000.0 + 0.5);
}

static const char *plural(unsigned n)
{
	return n == 1 ? "" : "s";
}

void cz_drain_start(struct cz_sup *s, struct cz_worker *w, const char *op,
	uint64_t now)
{
	unsigned open;

	w->phase = CZ_PHASE_DRAIN;
	w->drain_op = op;
	w->drain_until = now + seconds_ms(s->opts->drain_timeout);
	w->exit_by = 0;
	/* In rr, stop routing connections to it before it is told; unless
	 * the cluster stops: then the workers take what the primary holds,
	 * there being no one else. */
	if (s->state != CZ_SUP_STOPPING) {
		cz_control_worker_stopping(s->control, w->id);
	}
	open = cz_control_worker_active(s->control, w->id);
	if (open > 0 && s->opts->drain_timeout > 0) {
		cz_log_event(CZ_LOG_INFO, "draining", "op id pid open",
			"%s: worker %u (pid %d) draining, %u connection%s open",
			op, w->id, (int)w->pid, open, plural(open));
	}
}

/*
 * What was sent to the worker is not all taken yet (the shim counts a
 * connection open before it leaves the channel), or on a stop
 * the primary still holds some for the workers.
 */
static bool still_taking(const struct cz_sup *s, const struct cz_worker *w)
{
	return cz_control_worker_unacked(s->control, w->id) > 0 ||
		(s->state == CZ_SUP_STOPPING && cz_control_held(s->control) > 0);
}

static void say_cut(const struct cz_sup *s, const struct cz_worker *w,
	unsigned open)
{
	const char *abbrev = sigabbrev_np(s->opts->stop_signal);
	char sig[32];

	if (abbrev != NULL) {
		snprintf(sig, sizeof(sig), "SIG%s", abbrev);
	} else {
		snprintf(sig, sizeof(sig), "signal %d", s->opts->stop_signal);
	}
	cz_log_event(CZ_LOG_WARN, "drain_timeout",
		"op id pid open - drain_timeout signal",
		"%s: worker %u (pid %d) still has %u connection%s open "
		"after %gs (--drain-timeout): sending %s",
		w->drain_op, w->id, (int)w->pid, open, plural(open),
		s->opts->drain_timeout, sig);
}

bool cz_drain_done(struct cz_sup *s, struct cz_worker *w, uint64_t now)
{
	bool timed_out = now >= w->drain_until;
	unsigned open;

	if (!timed_out && still_taking(s, w)) {
		return false;
	}
	/* Node closes its servers and exits once their connections are done. */
	if (!w->disconnected && cz_node_ipc_disconnect(s->nipc, w->id)) {
		w->disconnected = true;
	}
	open = cz_control_worker_active(s->control, w->id);
	if (!timed_out && open > 0) {
		return false;
	}
	/* ... by itself: --grace for that before its stop signal. */
	if (w->disconnected) {
		if (w->exit_by == 0) {
			w->exit_by = now + seconds_ms(s->opts->grace);
		}
		if (now < w->exit_by) {
			return false;
		}
	}
	if (open > 0) {
		say_cut(s, w, open);
	}
	return true;
}
