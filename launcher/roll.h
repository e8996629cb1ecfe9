/*
 * The rolling restart (HUP, `clusterize reload`): every worker is replaced
 * by a fresh one, max_surge at a time.  A new worker is READY when it
 * listens on every address its predecessor listens on; only then is the
 * old one drained and stopped.  A new worker that exits or is not READY
 * within ready_timeout aborts the roll: the old workers keep serving.
 *
 * The other requests of an operator live here too (TTIN/TTOU, `scale`,
 * `stop`, `status`): like a roll, they act on the running cluster from the
 * outside, while workers.c runs its life cycle.
 */
#ifndef CZ_LAUNCHER_ROLL_H
#define CZ_LAUNCHER_ROLL_H

#include <stddef.h>
#include <stdint.h>

#include "workers.h"

/*
 * Starts a roll.  Returns 0, or -EBUSY (one is in progress) or -ESHUTDOWN
 * (stopping) with a one-line reason in err.
 */
int cz_roll_start(struct cz_sup *s, char *err, size_t errlen);

/* Promotes the READY replacements, enforces deadlines, starts the next. */
void cz_roll_check(struct cz_sup *s);

/* The next time cz_roll_check() must run, or 0. */
uint64_t cz_roll_deadline(const struct cz_sup *s);

/* Replacement `w` has exited with `status`: the roll is aborted. */
void cz_roll_candidate_exited(struct cz_sup *s, struct cz_worker *w,
	int status);

/*
 * The worker of `slot` has exited while its replacement was starting: the
 * replacement takes the slot over at once.
 */
void cz_roll_take_over(struct cz_sup *s, unsigned slot);

/*
 * The slot count becomes n (1..CZ_CLI_MAX_WORKERS): new slots get a worker
 * each, the newest slots are removed and their workers drained and
 * stopped.  `why` names the request in the log.
 */
void cz_roll_scale(struct cz_sup *s, unsigned n, const char *why);

/* SIGHUP (reload), SIGTTIN (one more worker), SIGTTOU (one fewer). */
void cz_roll_signal(struct cz_sup *s, int sig);

/*
 * Opens the operator's control socket (admin.h), serving reload, scale,
 * stop and status.  A failure is fatal (-errno) only with --control.
 */
int cz_roll_start_admin(struct cz_sup *s);

/* Stops the roll (the cluster is stopping); its replacements are stopped. */
void cz_roll_cancel(struct cz_sup *s);

/* "starting", "online", "listening", "draining" or "stopping". */
const char *cz_roll_worker_state(const struct cz_sup *s,
	const struct cz_worker *w);

#endif
