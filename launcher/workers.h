/*
 * The supervisor: forks the workers, watches them, respawns them (with a
 * backoff, giving up on a crash loop), rolls them to fresh ones (roll.h),
 * scales and stops them on request.  Signals (TERM, INT, QUIT, HUP, TTIN,
 * TTOU, CHLD) and the operator's control socket (admin.h) are served on
 * the loop.
 *
 * The second half of this header is the supervisor's state, shared with
 * roll.c (and read by metrics_sup.c, for the metrics endpoint).
 */
#ifndef CZ_LAUNCHER_WORKERS_H
#define CZ_LAUNCHER_WORKERS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <uv.h>

#include "cli.h"
#include "keeper.h"
#include "notify.h"
#include "output.h"
#include "spawn.h"

struct cz_workers_config {
	const struct cz_opts *opts;
	const char *shim_path;  /* absolute; prepended to LD_PRELOAD */
	const char *exe_path;   /* the command, resolved (has a '/') */
	struct rlimit nofile;   /* RLIMIT_NOFILE to give the workers back */
	const struct cz_spawn_ids *ids;  /* --user / --group */
	const int *adopt_fds;   /* sockets inherited by socket activation */
	unsigned n_adopt;
};

/*
 * Runs the cluster on `loop` until it has stopped and every handle it (and
 * the control socket) opened is closed.  Returns the exit status: 0 after a
 * requested stop, the crash-loop status after giving up, the last failure
 * when every worker has exited and none was restarted (--restart), 126/127
 * when the command cannot be executed, 1 on other failures.
 */
int cz_workers_run(uv_loop_t *loop, const struct cz_workers_config *cfg);

/* --- the supervisor's state (workers.c, roll.c) -------------------------- */

enum cz_phase {
	CZ_PHASE_RUN,    /* serving */
	CZ_PHASE_DRAIN,  /* no new connections; waiting for what it was sent
			    and its open connections, a Node worker told to
			    disconnect (drain.h) */
	CZ_PHASE_STOP,   /* stop signal sent; SIGKILL at kill_at */
};

struct cz_worker {
	struct cz_worker *next;
	uint32_t id;
	pid_t pid;
	int slot;           /* index in slots; -1 once retired */
	bool candidate;     /* a roll's replacement for slots[slot].w, not READY */
	bool online;        /* its shim said hello */
	bool killed;        /* SIGKILL sent */
	bool disconnected;  /* Node's disconnect sent (draining) */
	enum cz_phase phase;
	unsigned restarts;  /* of its slot, when it started */
	uint64_t started;   /* ms */
	uint64_t hello_at;  /* ms; 0: said hello, or already warned */
	uint64_t ready_by;  /* ms; a candidate's deadline to listen */
	uint64_t drain_until; /* ms; stop signal then even if not drained */
	uint64_t exit_by;     /* ms; a disconnected Node worker's stop signal */
	const char *drain_op; /* "reload", "scale", "stop": what drains it */
	uint64_t kill_at;   /* ms; SIGKILL then if still running */
};

struct cz_slot {
	struct cz_worker *w;     /* the worker serving this slot */
	struct cz_worker *cand;  /* its replacement being started (roll) */
	uint64_t respawn_at;     /* ms; 0: none pending */
	unsigned crashes;        /* quick exits in a row */
	unsigned restarts;       /* replacements so far */
	unsigned gen;            /* the roll generation its worker belongs to */
};

struct cz_roll {
	bool active;
	unsigned gen;
	unsigned total;     /* workers to replace */
	unsigned replaced;
};

enum cz_sup_state { CZ_SUP_RUNNING, CZ_SUP_STOPPING, CZ_SUP_DONE };

#define CZ_SUP_N_SIGNALS 7

struct cz_sup {
	uv_loop_t *loop;
	const struct cz_workers_config *cfg;
	const struct cz_opts *opts;
	struct cz_control *control;
	struct cz_node_ipc *nipc;  /* NULL with --node-ipc off */
	struct cz_admin *admin;
	struct cz_metrics *metrics;  /* --metrics; NULL without */
	uv_signal_t sigs[CZ_SUP_N_SIGNALS];
	uv_timer_t timer;
	size_t n_handles;  /* timer + signals initialized, to close */
	struct cz_slot slots[CZ_CLI_MAX_WORKERS];
	unsigned n_slots;
	struct cz_worker *workers;
	uint32_t next_id;
	enum cz_sup_state state;
	int exit_status;
	int last_failure;  /* wait status of the last failed exit; 0: none */
	bool ready_sent;   /* READY=1 for the initial workers */
	struct cz_roll roll;
	struct cz_spawn spawn;
	struct cz_output output;
	struct cz_notify notify;
	struct cz_keeper keeper;
};

uint64_t cz_workers_now(void);

/* "exited with code 3" or "killed by signal SIGKILL", into buf. */
const char *cz_workers_describe(int status, char *buf, size_t len);
/* The wait before restarting a slot after its n-th quick exit in a row (n >= 1). */
uint64_t cz_workers_backoff_ms(unsigned n);

/*
 * Starts a worker for `slot` (as its replacement in a roll when
 * `candidate`).  Returns it, or NULL with the reason in why.
 */
struct cz_worker *cz_workers_spawn(struct cz_sup *s, unsigned slot,
	bool candidate, char *why, size_t whylen);

/* SIGKILL to the process group of worker `pid` (its own, see spawn.c). */
void cz_workers_kill_group(pid_t pid);

/*
 * Stops `w` for operation `op` ("reload", "scale"): drains it (drain.h),
 * then the stop signal, then SIGKILL after the grace period.
 */
void cz_workers_drain(struct cz_sup *s, struct cz_worker *w, const char *op);

/* As cz_workers_drain for "stop", or SIGKILL now with kill_now. */
void cz_workers_stop(struct cz_sup *s, struct cz_worker *w, bool kill_now);

/*
 * Stops the cluster: every worker as cz_workers_stop() does; the loop ends
 * when they are gone.  Never finishes synchronously, so a caller's state
 * (an admin request being answered) stays valid.
 */
void cz_workers_begin_stop(struct cz_sup *s, bool kill_now);

/* Sets the timer to the nearest deadline; call after every change. */
void cz_workers_reschedule(struct cz_sup *s);

/*
 * Starts the worker of a slot (a respawn, or a slot added by scaling); a
 * fork failure is retried later.
 */
void cz_workers_spawn_slot(struct cz_sup *s, unsigned slot);

#endif
