/*
 * Doing a file system step as the workers' user would.
 *
 * With --user the launcher stays root to bind for the workers, but any
 * path a worker names must be looked at with the worker's rights, never
 * root's: a path root may use and the worker may not (or one the worker
 * swaps for a symlink) would otherwise make root act for it.  So such a
 * step runs in a short-lived child of the launcher that has taken the
 * workers' file system identity (fsuid, fsgid, supplementary groups): the
 * kernel checks every permission as it would for a worker, files it
 * creates belong to the worker, and root's file capabilities are gone.
 *
 * Only the file system identity changes: the child's real and effective
 * uid stay the launcher's, so no worker can signal, stop or trace it while
 * the launcher waits for it.  The child blocks every signal and ends with
 * _exit().  What it returns: an int, a few bytes, up to CZ_ASUSER_FDS fds.
 */
#ifndef CZ_LAUNCHER_ASUSER_H
#define CZ_LAUNCHER_ASUSER_H

#include <stddef.h>

#include "spawn.h"

#define CZ_ASUSER_DATA 4096
#define CZ_ASUSER_FDS 2

struct cz_asuser_out {
	size_t len;                 /* bytes of data */
	unsigned nfds;              /* fds: the caller owns them */
	int fds[CZ_ASUSER_FDS];
	char data[CZ_ASUSER_DATA];
};

/*
 * Runs in the child: does its step and fills `out` (the fds it puts there
 * are sent).  Returns 0 or a negative errno.
 */
typedef int cz_asuser_fn(void *arg, struct cz_asuser_out *out);

/*
 * Runs fn(arg, out) in a child with the file system identity of `ids`, or
 * in this process when `ids` is NULL or not set (the launcher's own
 * identity is the workers').  Returns fn's result with `out` filled, or a
 * negative errno when the child could not run it (fork; switching ids; it
 * died).
 */
int cz_asuser_run(const struct cz_spawn_ids *ids, cz_asuser_fn *fn, void *arg,
	struct cz_asuser_out *out);

#endif
