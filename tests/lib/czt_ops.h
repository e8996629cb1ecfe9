/*
 * czt_ops: helpers for the production-operations tests (czt.h is the base).
 *
 * - A spawn with a hook run in the child just before exec, for what only the
 *   child can set up (socket activation: LISTEN_PID is the child's own pid,
 *   the inherited socket must sit at fd 3).
 * - A run-to-completion helper for the launcher's subcommands.
 *
 * JSON (`status --json`, `messages --json`) is read with jansson.
 */
#ifndef CZT_OPS_H
#define CZT_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "czt.h"

/* Fixtures: .init = czt_setup, .fini = czt_ops_teardown (also runs czt_teardown). */
void czt_ops_teardown(void);

/*
 * Like czt_spawn, with hook(arg) called in the child after its stdio and
 * environment are in place and right before execve.  The hook may change
 * fds and call setenv(); a nonzero return makes the child exit 125.
 * czt_stop and friends work on the result; czt_ops_teardown kills it.
 */
typedef int czt_ops_hook(void *arg);
struct czt_proc *czt_ops_spawn_hook(const char *const argv[], const char *const env[],
	czt_ops_hook *hook, void *arg);

/* The launcher with args (NULL-terminated); the result of a subcommand. */
struct czt_ops_run {
	int status;		/* wait status; -1 if it had to be killed */
	char *out;		/* malloc'd, NUL-terminated */
	char *err;
};
/*
 * Runs the launcher with the args (a subcommand) as uid (-1: ours) with env
 * (NULL-terminated or NULL), to completion or a deadline; fills r.
 * Returns WEXITSTATUS, or -1 if it did not exit normally in time.
 */
int czt_ops_client(struct czt_ops_run *r, int uid, const char *const env[], ...)
	__attribute__((sentinel));
void czt_ops_run_free(struct czt_ops_run *r);
/* Number of lines in text. */
int czt_ops_lines(const char *text);

/* One row of `clusterize status`. */
struct czt_status_row {
	unsigned id;
	int pid;
	char state[32];
	char uptime[32];
	unsigned restarts;
	unsigned long long conns;
	unsigned active;	/* connections open now */
	char addrs[256];	/* "-" for none */
};
/* `clusterize status --control ctl`, which must exit 0: its rows, in order. */
int czt_ops_status(const char *ctl, struct czt_status_row *rows, int max);
/* The row of worker `id`, or NULL. */
const struct czt_status_row *czt_ops_status_row(const struct czt_status_row *rows, int n,
	unsigned id);

#endif
