/*
 * The supervisor: forks the workers, watches them, respawns them (with a
 * backoff, giving up on a crash loop) and stops them on request.  Signals
 * (TERM, INT, QUIT, HUP, TTIN, TTOU, CHLD) are handled on the loop.
 */
#ifndef CZ_LAUNCHER_WORKERS_H
#define CZ_LAUNCHER_WORKERS_H

#include <sys/resource.h>
#include <uv.h>

#include "cli.h"

struct cz_workers_config {
	const struct cz_opts *opts;
	const char *shim_path;  /* absolute; prepended to LD_PRELOAD */
	const char *exe_path;   /* the command, resolved (has a '/') */
	struct rlimit nofile;   /* RLIMIT_NOFILE to give the workers back */
};

/*
 * Runs the cluster on `loop` until it has stopped and every handle it (and
 * the control socket) opened is closed.  Returns the exit status: 0 after a
 * requested stop, the crash-loop status after giving up, 126/127 when the
 * command cannot be executed, 1 on other failures.
 */
int cz_workers_run(uv_loop_t *loop, const struct cz_workers_config *cfg);

#endif
