/*
 * czt_ops: helpers for the production-operations tests (czt.h is the base).
 *
 * - A spawn with a hook run in the child just before exec, for what only the
 *   child can set up (socket activation: LISTEN_PID is the child's own pid,
 *   the inherited socket must sit at fd 3).
 * - A run-to-completion helper for the launcher's subcommands.
 * - A small JSON reader, to check `clusterize status --json`.
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

/* --- JSON ----------------------------------------------------------------- */

enum czt_json_type { CZT_JSON_NULL, CZT_JSON_BOOL, CZT_JSON_NUM, CZT_JSON_STR,
	CZT_JSON_ARR, CZT_JSON_OBJ };

struct czt_json {
	enum czt_json_type type;
	double num;		/* NUM; BOOL: 0 or 1 */
	char *str;		/* STR (unescaped); a member's key in `key` */
	char *key;		/* set on members of an object */
	struct czt_json *kids;	/* ARR, OBJ */
	int n;
};

/* The document, or NULL if text is not exactly one valid JSON value. */
struct czt_json *czt_json_parse(const char *text);
void czt_json_free(struct czt_json *j);
/* Member `key` of an object (NULL if absent or not an object). */
const struct czt_json *czt_json_get(const struct czt_json *obj, const char *key);
/* Member `key` if it has type t, else NULL. */
const struct czt_json *czt_json_typed(const struct czt_json *obj, const char *key,
	enum czt_json_type t);

#endif
