/*
 * The supervisor (workers.h).  One record per live worker process, one
 * slot per wanted worker: a slot holds its current worker (and, during a
 * roll, its replacement) and counts its quick crashes in a row, so one
 * flapping slot gives up even while the others run fine.  Every deadline
 * (respawn backoff, hello timeout, drain, grace before SIGKILL, a
 * replacement's readiness) is served by one timer set to the nearest.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addr.h"
#include "admin.h"
#include "control.h"
#include "json.h"
#include "drain.h"
#include "log.h"
#include "metrics_sup.h"
#include "node_ipc.h"
#include "roll.h"
#include "stats.h"
#include "workers.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
/* How often a draining worker's queue is looked at. */
#define DRAIN_TICK_MS 10

static const int handled_signals[CZ_SUP_N_SIGNALS] = {
	SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGTTIN, SIGTTOU,
};


uint64_t cz_workers_now(void)
{
	return uv_hrtime() / 1000000;
}

static uint64_t seconds_ms(double sec)
{
	return (uint64_t)(sec * 1000.0 + 0.5);
}

static const char *cmd_name(const struct cz_sup *s)
{
	return s->opts->cmd_argv[0];
}

static const char *sig_name(int sig, char *buf, size_t len)
{
	const char *abbrev = sigabbrev_np(sig);

	if (abbrev != NULL) {
		snprintf(buf, len, "SIG%s", abbrev);
	} else {
		snprintf(buf, len, "signal %d", sig);
	}
	return buf;
}

const char *cz_workers_describe(int status, char *buf, size_t len)
{
	char name[32];

	if (WIFSIGNALED(status)) {
		snprintf(buf, len, "killed by signal %s",
			sig_name(WTERMSIG(status), name, sizeof(name)));
	} else {
		snprintf(buf, len, "exited with code %d", WEXITSTATUS(status));
	}
	return buf;
}

/* A shell's status for a wait status: the code, or 128 + the signal. */
static int exit_code(int status)
{
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) :
		WEXITSTATUS(status);
}

/* --- stopping --------------------------------------------------------- */

/* Once a draining worker is drained (drain.h), it gets the stop signal. */
static void drain_check(struct cz_sup *s, struct cz_worker *w, uint64_t now)
{
	char name[32];

	if (w->phase != CZ_PHASE_DRAIN || !cz_drain_done(s, w, now)) {
		return;
	}
	w->phase = CZ_PHASE_STOP;
	w->kill_at = now + seconds_ms(s->opts->grace);
	cz_log(CZ_LOG_DEBUG, "worker %u (pid %d) %s: %s", w->id, (int)w->pid,
		w->disconnected ? "still running after its disconnect" : "drained",
		sig_name(s->opts->stop_signal, name, sizeof(name)));
	kill(w->pid, s->opts->stop_signal);
}

void cz_workers_kill_group(pid_t pid)
{
	if (kill(-pid, SIGKILL) < 0) {
		kill(pid, SIGKILL);
	}
}

static void stop_for(struct cz_sup *s, struct cz_worker *w, bool kill_now,
	const char *op)
{
	uint64_t now = cz_workers_now();

	if (w->phase == CZ_PHASE_RUN) {
		cz_drain_start(s, w, op, now);
	}
	if (kill_now) {
		if (!w->killed) {
			w->killed = true;
			w->phase = CZ_PHASE_STOP;
			cz_workers_kill_group(w->pid);
		}
		return;
	}
	drain_check(s, w, now);
}

void cz_workers_drain(struct cz_sup *s, struct cz_worker *w, const char *op)
{
	stop_for(s, w, false, op);
}

void cz_workers_stop(struct cz_sup *s, struct cz_worker *w, bool kill_now)
{
	stop_for(s, w, kill_now, "stop");
}

static void close_handle(uv_handle_t *h)
{
	if (!uv_is_closing(h)) {
		uv_close(h, NULL);
	}
}

/* Everything has exited: close what we hold so the loop can end. */
static void finish(struct cz_sup *s)
{
	s->state = CZ_SUP_DONE;
	cz_keeper_stop(&s->keeper);
	cz_admin_destroy(s->admin);
	s->admin = NULL;
	cz_node_ipc_destroy(s->nipc);
	s->nipc = NULL;
	cz_metrics_sup_stop(s);
	cz_control_destroy(s->control);
	s->control = NULL;
	cz_output_close_all(&s->output);
	cz_notify_close(&s->notify);
	for (size_t i = 0; i + 1 < s->n_handles; i++) {
		close_handle((uv_handle_t *)&s->sigs[i]);
	}
	if (s->n_handles > 0) {
		close_handle((uv_handle_t *)&s->timer);
	}
}

/* The loop finishes the stop (from the timer or SIGCHLD), never a caller. */
void cz_workers_begin_stop(struct cz_sup *s, bool kill_now)
{
	if (s->state == CZ_SUP_DONE) {
		return;
	}
	if (s->state == CZ_SUP_RUNNING) {
		cz_notify_stopping(&s->notify);
		cz_control_stop_accepting(s->control);
	}
	s->state = CZ_SUP_STOPPING;
	cz_roll_cancel(s);
	for (unsigned i = 0; i < s->n_slots; i++) {
		s->slots[i].respawn_at = 0;
	}
	for (struct cz_worker *w = s->workers; w != NULL; w = w->next) {
		cz_workers_stop(s, w, kill_now);
	}
	cz_workers_reschedule(s);
}

/* --- exits and respawns ----------------------------------------------- */

static void give_up(struct cz_sup *s, const struct cz_slot *sl, int status)
{
	char what[64];

	cz_log_event(CZ_LOG_ERROR, "giveup", "command status crashes min_uptime",
		"giving up: '%s' %s %u times in a row within "
		"%gs of starting", cmd_name(s),
		cz_workers_describe(status, what, sizeof(what)), sl->crashes,
		s->opts->min_uptime);
	s->exit_status = exit_code(status) != 0 ? exit_code(status) : 1;
	cz_stats.giveups++;
	cz_workers_begin_stop(s, false);
}

/* 0.1 s, doubling, at most 5 s. */
uint64_t cz_workers_backoff_ms(unsigned n)
{
	uint64_t delay = n > 7 ? BACKOFF_MAX_MS :
		(uint64_t)BACKOFF_FIRST_MS << (n > 0 ? n - 1 : 0);

	return delay > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay;
}

/* `asked`: the worker asked for its exit (Node's disconnect): no crash. */
static void respawn(struct cz_sup *s, unsigned slot, uint64_t lived,
	int status, bool asked)
{
	struct cz_slot *sl = &s->slots[slot];
	uint64_t delay;

	sl->restarts++;
	cz_stats.restarts++;
	if (asked || lived >= seconds_ms(s->opts->min_uptime)) {
		sl->crashes = 0;
		cz_workers_spawn_slot(s, slot);
		return;
	}
	sl->crashes++;
	if (sl->crashes >= s->opts->max_restarts) {
		give_up(s, sl, status);
		return;
	}
	delay = cz_workers_backoff_ms(sl->crashes);
	cz_log(CZ_LOG_DEBUG, "restarting worker slot %u in %llu ms", slot,
		(unsigned long long)delay);
	sl->respawn_at = cz_workers_now() + delay;
}

/* Forgets slot i; the later slots move down one. */
static void slot_remove(struct cz_sup *s, unsigned i)
{
	memmove(&s->slots[i], &s->slots[i + 1],
		(s->n_slots - i - 1) * sizeof(s->slots[0]));
	s->n_slots--;
	for (unsigned j = i; j < s->n_slots; j++) {
		if (s->slots[j].w != NULL) {
			s->slots[j].w->slot = (int)j;
		}
		if (s->slots[j].cand != NULL) {
			s->slots[j].cand->slot = (int)j;
		}
	}
	cz_control_slots_changed(s->control);
}

static const char *restart_name(enum cz_restart r)
{
	return r == CZ_RESTART_NEVER ? "never" :
		r == CZ_RESTART_ON_FAILURE ? "on-failure" : "always";
}

/* A slot's worker exited unasked: restart it, or let the cluster shrink. */
static void worker_ended(struct cz_sup *s, const struct cz_worker *w,
	int status, bool asked)
{
	bool failed = exit_code(status) != 0;
	enum cz_restart policy = s->opts->restart;

	if (failed) {
		s->last_failure = status;
	}
	if (policy == CZ_RESTART_ALWAYS ||
		(policy == CZ_RESTART_ON_FAILURE && failed)) {
		respawn(s, (unsigned)w->slot, cz_workers_now() - w->started,
			status, asked);
		return;
	}
	slot_remove(s, (unsigned)w->slot);
	cz_log_event(CZ_LOG_INFO, "not_restarted", "id restart workers -",
		"worker %u not restarted (--restart %s): %u "
		"worker%s left", w->id, restart_name(policy), s->n_slots,
		s->n_slots == 1 ? "" : "s");
	if (s->n_slots == 0) {
		s->exit_status = s->last_failure != 0 ?
			exit_code(s->last_failure) : 0;
		cz_log_event(CZ_LOG_INFO, "no_workers", "status",
			"no workers left: exiting with status %d",
			s->exit_status);
		cz_workers_begin_stop(s, false);
	}
}

static void unlink_worker(struct cz_sup *s, struct cz_worker *w)
{
	for (struct cz_worker **p = &s->workers; *p != NULL; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			return;
		}
	}
}

static void reaped(struct cz_sup *s, pid_t pid, int status)
{
	struct cz_worker *w = s->workers;
	char sig[32];
	bool asked;

	while (w != NULL && w->pid != pid) {
		w = w->next;
	}
	if (w == NULL) {
		if (cz_keeper_reaped(&s->keeper, pid, status)) {
			return;
		}
		/* An orphan we adopted as a subreaper, or a stray child. */
		cz_log(CZ_LOG_DEBUG, "reaped pid %d (not a worker)", (int)pid);
		return;
	}
	/* A Node worker that disconnected itself (worker.disconnect()). */
	asked = cz_node_ipc_asked_exit(s->nipc, w->id);
	if (WIFSIGNALED(status)) {
		cz_log_event(CZ_LOG_INFO, "exit", "id pid signal", "worker %u "
			"(pid %d) killed by signal %s", w->id, (int)pid,
			sig_name(WTERMSIG(status), sig, sizeof(sig)));
	} else {
		cz_log_event(CZ_LOG_INFO, "exit", "id pid code -", "worker %u "
			"(pid %d) exited with code %d%s", w->id, (int)pid,
			WEXITSTATUS(status),
			asked ? " after disconnecting itself" : "");
	}
	/* Nothing a worker started outlives it (a wrapper that forked the
	 * server instead of exec'ing it, a helper left behind). */
	if (kill(-pid, SIGKILL) == 0) {
		cz_log(CZ_LOG_DEBUG, "worker %u (pid %d): killed what was left "
			"in its process group", w->id, (int)pid);
	}
	cz_keeper_forget(&s->keeper, pid);
	cz_control_worker_exited(s->control, w->id);
	cz_node_ipc_worker_exited(s->nipc, w->id);
	unlink_worker(s, w);
	if (w->candidate) {
		cz_roll_candidate_exited(s, w, status);
	} else if (w->slot >= 0) {
		s->slots[w->slot].w = NULL;
		if (s->slots[w->slot].cand != NULL) {
			cz_roll_take_over(s, (unsigned)w->slot);
		} else if (s->state == CZ_SUP_RUNNING &&
			w->phase == CZ_PHASE_RUN) {
			worker_ended(s, w, status, asked);
		}
	}
	free(w);
}

/* --- events ----------------------------------------------------------- */

static void on_sigchld(struct cz_sup *s)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid < 0 && errno == EINTR) {
			continue;
		}
		if (pid <= 0) {
			break;
		}
		reaped(s, pid, status);
	}
	if (s->state == CZ_SUP_STOPPING && s->workers == NULL) {
		finish(s);
		return;
	}
	cz_workers_reschedule(s);
}

static void on_signal(uv_signal_t *h, int sig)
{
	struct cz_sup *s = h->data;
	char name[32];

	if (sig == SIGCHLD) {
		on_sigchld(s);
		return;
	}
	if (s->state == CZ_SUP_DONE) {
		return;
	}
	cz_log(CZ_LOG_DEBUG, "received SIG%s", sigabbrev_np(sig));
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		/* A second request while stopping means: now. */
		cz_log_event(CZ_LOG_INFO, s->state == CZ_SUP_STOPPING ?
			"stop_now" : "stop", "- signal", "stopping%s (%s)",
			s->state == CZ_SUP_STOPPING ? " now" : "",
			sig_name(sig, name, sizeof(name)));
		cz_workers_begin_stop(s, s->state == CZ_SUP_STOPPING);
		return;
	case SIGQUIT:
		cz_log_event(CZ_LOG_INFO, "stop_now", "signal",
			"stopping now (%s)", "SIGQUIT");
		cz_workers_begin_stop(s, true);
		return;
	default:
		cz_roll_signal(s, sig);  /* HUP, TTIN, TTOU */
		return;
	}
}

static void hello_overdue(struct cz_sup *s, struct cz_worker *w)
{
	w->hello_at = 0;
	cz_log_event(CZ_LOG_WARN, "no_shim", "id pid hello_timeout",
		"worker %u (pid %d) has not loaded the shim after "
		"%gs: the command may be statically linked, a Go program, "
		"set-user-ID or with file capabilities, or it cleared "
		"LD_PRELOAD; its sockets are not shared", w->id, (int)w->pid,
		s->opts->hello_timeout);
}

static void worker_deadlines(struct cz_sup *s, struct cz_worker *w,
	uint64_t now)
{
	if (w->hello_at != 0 && w->hello_at <= now &&
		w->phase == CZ_PHASE_RUN) {
		hello_overdue(s, w);
	}
	drain_check(s, w, now);
	if (w->phase == CZ_PHASE_STOP && !w->killed && w->kill_at <= now) {
		cz_log(CZ_LOG_DEBUG, "worker %u (pid %d) still running after "
			"the grace period: SIGKILL", w->id, (int)w->pid);
		cz_workers_stop(s, w, true);
	}
}

static void on_timer(uv_timer_t *t)
{
	struct cz_sup *s = t->data;
	uint64_t now = cz_workers_now();

	if (s->state == CZ_SUP_STOPPING && s->workers == NULL) {
		finish(s);
		return;
	}
	for (unsigned i = 0; i < s->n_slots; i++) {
		if (s->slots[i].respawn_at != 0 && s->slots[i].respawn_at <= now) {
			s->slots[i].respawn_at = 0;
			cz_workers_spawn_slot(s, i);
		}
	}
	for (struct cz_worker *w = s->workers; w != NULL; w = w->next) {
		worker_deadlines(s, w, now);
	}
	cz_roll_check(s);
	cz_workers_reschedule(s);
}

static void consider(uint64_t *next, uint64_t at)
{
	if (at != 0 && (*next == 0 || at < *next)) {
		*next = at;
	}
}

static uint64_t worker_deadline(const struct cz_worker *w, uint64_t now)
{
	switch (w->phase) {
	case CZ_PHASE_RUN:
		return w->hello_at;
	case CZ_PHASE_DRAIN:
		return now + DRAIN_TICK_MS;
	case CZ_PHASE_STOP:
		return w->killed ? 0 : w->kill_at;
	}
	return 0;
}

/* STATUS= for the service manager: "4 workers, rr, 127.0.0.1:8000". */
static void update_status(struct cz_sup *s)
{
	char addrs[512] = "", status[sizeof(s->notify.status)];
	unsigned n = 0;

	for (unsigned i = 0; i < s->n_slots; i++) {
		if (s->slots[i].w == NULL) {
			continue;
		}
		if (n++ == 0) {
			cz_control_worker_addrs(s->control, s->slots[i].w->id,
				addrs, sizeof(addrs));
		}
	}
	snprintf(status, sizeof(status), "%s%u worker%s, %s%s%s",
		s->roll.active ? "reloading: " : "", n, n == 1 ? "" : "s",
		s->opts->sched == CZ_MODE_RR ? "rr" : "none",
		addrs[0] != '\0' ? ", " : "", addrs);
	cz_notify_status(&s->notify, status);
}

void cz_workers_reschedule(struct cz_sup *s)
{
	uint64_t next = 0, now = cz_workers_now();

	if (s->state == CZ_SUP_DONE) {
		return; /* the timer is closing */
	}
	if (s->state == CZ_SUP_RUNNING) {
		update_status(s);
	}
	if (s->state == CZ_SUP_STOPPING && s->workers == NULL) {
		next = now;
	}
	for (unsigned i = 0; i < s->n_slots; i++) {
		consider(&next, s->slots[i].respawn_at);
	}
	for (struct cz_worker *w = s->workers; w != NULL; w = w->next) {
		consider(&next, worker_deadline(w, now));
	}
	consider(&next, cz_roll_deadline(s));
	if (next == 0) {
		uv_timer_stop(&s->timer);
		return;
	}
	uv_timer_start(&s->timer, on_timer, next > now ? next - now : 0, 0);
}

static void on_hello(void *data, uint32_t worker_id, int pid, uint32_t flags,
	const char *exe)
{
	struct cz_sup *s = data;

	for (struct cz_worker *w = s->workers; w != NULL; w = w->next) {
		if (w->id == worker_id && !w->online) {
			w->online = true;
			w->hello_at = 0;
			cz_log_event(CZ_LOG_INFO, "online", "id pid",
				"worker %u (pid %d) online", worker_id, pid);
		}
	}
	if (flags & CZ_HELLO_F_NODE_IPC) {
		cz_node_ipc_set_pid(s->nipc, worker_id, pid);
	}
	cz_log(CZ_LOG_DEBUG, "worker %u: hello from pid %d (%s)%s", worker_id,
		pid, exe, (flags & CZ_HELLO_F_NODE_IPC) ? " (node, native)" :
		(flags & CZ_HELLO_F_NODE) ? " (node)" : "");
}

/* READY=1 once, when every worker of the initial set listens. */
static void check_ready(struct cz_sup *s)
{
	if (s->ready_sent || s->state != CZ_SUP_RUNNING) {
		return;
	}
	for (unsigned i = 0; i < s->n_slots; i++) {
		const struct cz_worker *w = s->slots[i].w;

		if (w == NULL || cz_control_listen_count(s->control, w->id) == 0) {
			return;
		}
	}
	s->ready_sent = true;
	cz_notify_ready(&s->notify);
}

static void on_listening(void *data, uint32_t worker_id, int pid,
	const char *addr)
{
	struct cz_sup *s = data;

	cz_log_event(CZ_LOG_INFO, "listening", "id pid address",
		"worker %u (pid %d) listening on %s", worker_id, pid, addr);
	check_ready(s);
	cz_roll_check(s);
	cz_workers_reschedule(s);
}

/* --- running ---------------------------------------------------------- */

static int start_handles(struct cz_sup *s)
{
	int rc = uv_timer_init(s->loop, &s->timer);

	s->timer.data = s;
	s->n_handles = rc == 0 ? 1 : 0;
	for (size_t i = 0; rc == 0 && i < CZ_SUP_N_SIGNALS; i++) {
		rc = uv_signal_init(s->loop, &s->sigs[i]);
		s->sigs[i].data = s;
		if (rc == 0) {
			s->n_handles++;
			rc = uv_signal_start(&s->sigs[i], on_signal,
				handled_signals[i]);
		}
	}
	if (rc < 0) {
		cz_log(CZ_LOG_ERROR, "signal handlers: %s", uv_strerror(rc));
	}
	return rc;
}

static const char *fd_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss), tlen = sizeof(int);
	int type = SOCK_STREAM;

	getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen);
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0) {
		snprintf(buf, len, "socket");
		return buf;
	}
	return cz_addr_format((struct sockaddr *)&ss, sslen, type, buf, len);
}

/* Socket activation: the inherited sockets serve the workers' binds. */
static int adopt_sockets(struct cz_sup *s)
{
	char name[CZ_ADDR_STRLEN];

	for (unsigned i = 0; i < s->cfg->n_adopt; i++) {
		int fd = s->cfg->adopt_fds[i], rc;

		rc = cz_control_adopt(s->control, fd);
		if (rc < 0) {
			cz_log(CZ_LOG_ERROR, "LISTEN_FDS: fd %d: %s", fd,
				strerror(-rc));
			return rc;
		}
		cz_log_event(CZ_LOG_INFO, "adopted", "address fd",
			"adopted %s (fd %d) from the service manager",
			fd_name(fd, name, sizeof(name)), fd);
	}
	return 0;
}

/* A message a worker process.send()s: an event line at -v, and to every
 * `clusterize messages`. */
static void on_node_message(void *data, uint32_t worker_id, int pid,
	const json_t *msg)
{
	struct cz_sup *s = data;
	char *line;

	cz_admin_publish(s->admin, worker_id, pid, msg);
	if (cz_log_get_level() < CZ_LOG_DEBUG) {
		return;
	}
	line = cz_json_line(msg, 1);
	cz_log_event(CZ_LOG_INFO, "worker_message", "id pid message -",
		"worker %u (pid %d) message: %.1024s%s", worker_id, pid,
		line != NULL ? line : "(out of memory)",
		line != NULL && strlen(line) > 1024 ? "..." : "");
	free(line);
}

/* Node's cluster protocol, unless --node-ipc off. */
static int start_node_ipc(struct cz_sup *s)
{
	static const struct cz_node_ipc_events ev_template = {
		.message = on_node_message,
	};
	struct cz_node_ipc_events ev = ev_template;
	int rc;

	if (!s->opts->node_ipc) {
		return 0;
	}
	ev.data = s;
	rc = cz_node_ipc_create(s->loop, s->control, s->cfg->adopt_fds,
		s->cfg->n_adopt, &ev, &s->nipc);
	if (rc < 0) {
		cz_log(CZ_LOG_ERROR, "out of memory");
	}
	return rc;
}

/* sticky: the slot of a worker (a roll's replacement has its slot too). */
static int slot_of(void *data, uint32_t worker_id)
{
	const struct cz_sup *s = data;

	for (const struct cz_worker *w = s->workers; w != NULL; w = w->next) {
		if (w->id == worker_id) {
			return w->slot;
		}
	}
	return -1;
}

static int start_control(struct cz_sup *s)
{
	static const struct cz_control_events ev_template = {
		.hello = on_hello,
		.listening = on_listening,
	};
	struct cz_control_events ev = ev_template;
	const struct cz_spawn_ids *ids = s->cfg->ids;
	int rc;

	ev.data = s;
	rc = cz_control_create(s->loop, s->opts->sched, &ev, &s->control);
	if (rc < 0) {
		cz_log(CZ_LOG_ERROR, "control socket: %s", strerror(-rc));
		return rc;
	}
	rc = cz_control_set_balance(s->control, s->opts->balance, slot_of, s);
	if (rc < 0) {
		cz_log(CZ_LOG_ERROR, "--balance %s: %s",
			cz_balance_name(s->opts->balance), strerror(-rc));
		return rc;
	}
	if (ids != NULL && ids->set) {
		rc = cz_control_set_bind_policy(s->control, ids,
			s->opts->allow_bind, s->opts->n_allow_bind);
		if (rc < 0) {
			cz_log(CZ_LOG_ERROR, "--user: %s", strerror(-rc));
			return rc;
		}
	}
	rc = adopt_sockets(s);
	return rc < 0 ? rc : start_node_ipc(s);
}

static int sup_init(struct cz_sup *s)
{
	const struct cz_workers_config *cfg = s->cfg;
	int rc;

	/* First: it must hold nothing of ours but its pipe. */
	cz_keeper_start(&s->keeper);
	cz_notify_open(&s->notify);
	cz_output_init(&s->output, s->loop);
	s->spawn.exe = cfg->exe_path;
	s->spawn.argv = s->opts->cmd_argv;
	s->spawn.nofile = cfg->nofile;
	s->spawn.pipes = s->opts->prefix_output;
	rc = start_control(s);
	if (rc < 0) {
		return rc;
	}
	rc = cz_spawn_init(&s->spawn, cfg->shim_path);
	if (rc == 0 && s->nipc != NULL) {
		rc = cz_spawn_node_ipc(&s->spawn,
			s->opts->sched == CZ_MODE_RR ? "rr" : "none");
	}
	if (rc < 0) {
		cz_log(CZ_LOG_ERROR, "out of memory");
		return rc;
	}
	rc = start_handles(s);
	if (rc == 0) {
		rc = cz_metrics_sup_start(s);
	}
	return rc < 0 ? rc : cz_roll_start_admin(s);
}

/* "starting 4 workers: node (rr, balance least-conn)" */
static void log_start(const struct cz_sup *s)
{
	const struct cz_opts *o = s->opts;

	if (o->sched != CZ_MODE_RR) {
		cz_log_event(CZ_LOG_INFO, "start", "workers - command sched",
			"starting %u worker%s: %s (%s)", o->workers,
			o->workers == 1 ? "" : "s", cmd_name(s), "none");
		return;
	}
	cz_log_event(CZ_LOG_INFO, "start", "workers - command sched balance",
		"starting %u worker%s: %s (%s, balance %s)", o->workers,
		o->workers == 1 ? "" : "s", cmd_name(s), "rr",
		cz_balance_name(o->balance));
}

int cz_workers_run(uv_loop_t *loop, const struct cz_workers_config *cfg)
{
	static const struct cz_spawn_ids no_ids;
	struct cz_sup *s = calloc(1, sizeof(*s));
	int status;

	if (s == NULL) {
		cz_log(CZ_LOG_ERROR, "out of memory");
		return 1;
	}
	s->loop = loop;
	s->cfg = cfg;
	s->opts = cfg->opts;
	s->next_id = 1;
	s->state = CZ_SUP_RUNNING;
	s->keeper.pid = -1;
	s->keeper.fd = -1;
	s->spawn.ids = cfg->ids != NULL ? cfg->ids : &no_ids;
	if (sup_init(s) < 0) {
		s->exit_status = 1;
		finish(s);
	} else {
		log_start(s);
	}
	cz_roll_scale(s, s->opts->workers, "start");
	uv_run(loop, UV_RUN_DEFAULT);
	status = s->exit_status;
	cz_spawn_free(&s->spawn);
	free(s);
	return status;
}
