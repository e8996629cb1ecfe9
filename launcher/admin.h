/*
 * The operator's control socket and the subcommands that use it:
 *
 *   clusterize status [--json]   clusterize reload
 *   clusterize scale N           clusterize stop
 *
 * The launcher listens on a unix stream socket (created 0600; only the
 * launcher's own user or root may talk to it), by default
 * $XDG_RUNTIME_DIR/clusterize/<pid>.sock, else /tmp/clusterize-<uid>/<pid>.sock,
 * or the --control PATH.  When that default directory is not ours and
 * private (another user made it first), a new private DIR.XXXXXX next to it
 * is used instead.  A client sends one request line and reads the
 * answer until the launcher closes the connection:
 *
 *   "status\n" / "status json\n" / "reload\n" / "scale N\n" / "stop\n"
 *   "send ID|all JSON\n" (the JSON on one line)
 *
 * The answer's first line is "ok" or "error: <message>"; the rest is the
 * text (or JSON) to print.  "messages\n" / "messages json\n" is answered
 * "ok", then the connection stays open and gets one line per message a
 * Node worker sends (process.send()), until the launcher stops.
 */
#ifndef CZ_LAUNCHER_ADMIN_H
#define CZ_LAUNCHER_ADMIN_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <sys/types.h>
#include <uv.h>

#include "cli.h"

#define CZ_ADMIN_ADDRS_MAX 512

struct cz_admin_worker {
	uint32_t id;
	int pid;
	const char *state;   /* "starting", "online", "listening", "draining", "stopping" */
	double uptime;       /* seconds */
	unsigned restarts;   /* replacements of this worker's slot so far */
	uint64_t conns;      /* connections handed out to it (rr) */
	unsigned active;     /* connections it holds open now (its shim's count) */
	char addrs[CZ_ADMIN_ADDRS_MAX]; /* "127.0.0.1:8000, [::1]:8000" */
};

struct cz_admin_summary {
	int pid;             /* the launcher's */
	const char *sched;   /* "rr" or "none" */
	const char *balance; /* rr: "rr", "least-conn", "sticky"; none: NULL */
	const char *state;   /* "running", "reloading", "stopping" */
	unsigned wanted;     /* the worker count asked for */
	const char *command; /* argv[0] of the workers' command */
};

struct cz_admin_ops {
	void *data;
	void (*summary)(void *data, struct cz_admin_summary *out);
	/* Fills up to `max` rows; returns how many workers there are. */
	size_t (*status)(void *data, struct cz_admin_worker *rows, size_t max);
	/* Each returns 0, or a negative errno with a one-line reason in err. */
	int (*reload)(void *data, char *err, size_t errlen);
	int (*scale)(void *data, unsigned n, char *err, size_t errlen);
	int (*stop)(void *data, char *err, size_t errlen);
	/*
	 * Delivers `msg` to Node worker `worker_id` (0: every Node worker):
	 * *delivered is how many got it.  0, or a negative errno and err.
	 */
	int (*send)(void *data, uint32_t worker_id, const json_t *msg,
		unsigned *delivered, char *err, size_t errlen);
};

struct cz_admin;

/*
 * Creates the control socket at `path` (NULL: the default path for this
 * process) and serves it on `loop`.  Replaces a stale socket file (no one
 * answering); refuses a live one (-EADDRINUSE).  Returns 0 or -errno.
 */
int cz_admin_create(uv_loop_t *loop, const char *path,
	const struct cz_admin_ops *ops, struct cz_admin **out);

/* Where it listens (printed at start). */
const char *cz_admin_path(const struct cz_admin *a);

/* Closes the socket and removes the file; handles close on the loop.
 * `a` may be NULL. */
void cz_admin_destroy(struct cz_admin *a);

/* A message worker `worker_id` (pid) sent: to every `messages` client.
 * `a` may be NULL. */
void cz_admin_publish(struct cz_admin *a, uint32_t worker_id, int pid,
	const json_t *msg);

/*
 * The default path for the launcher with pid `pid`: DIR/PID.sock, or with
 * `alt` >= 2 DIR/PID.ALT.sock: cz_admin_create tries them in turn (up to
 * CZ_ADMIN_PATHS_MAX paths in all) while a launcher with the same pid in
 * another pid namespace answers at the first.  Returns 0 or -errno
 * (-ENAMETOOLONG).  The directory is created (0700) by cz_admin_create,
 * which falls back to a DIR.XXXXXX of its own when DIR is someone else's.
 */
#define CZ_ADMIN_PATHS_MAX 8
int cz_admin_default_path(pid_t pid, unsigned alt, char *buf, size_t len);

/*
 * Runs a subcommand (o->action is CZ_CLI_STATUS, _RELOAD, _SCALE or _STOP)
 * and returns the exit status: 0 done, 1 the launcher said no or could not
 * be reached (one line on stderr says why).  Without --control, it uses the
 * only launcher of this user whose socket answers in the default directory
 * or its DIR.* fallbacks (only directories of ours no one else can write)
 * and fails with a list when there are several.
 */
int cz_admin_client(const struct cz_opts *o);

#endif
