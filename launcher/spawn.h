/*
 * Starting one worker process: its environment, the fork, what the child
 * does before exec (PR_SET_PDEATHSIG, RLIMIT_NOFILE, --user/--group, the
 * output pipes) and how an exec failure comes back to the launcher.
 *
 * Workers are started with fork() and execvpe() rather than uv_spawn(): the
 * child has things to do between the two, and reports a failure through a
 * close-on-exec pipe.
 */
#ifndef CZ_LAUNCHER_SPAWN_H
#define CZ_LAUNCHER_SPAWN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

/* --user / --group, resolved once at start. */
struct cz_spawn_ids {
	bool set;
	uid_t uid;
	gid_t gid;
	int n_groups;
	gid_t *groups;  /* the user's supplementary groups (initgroups) */
};

/*
 * Resolves `user` (name or number; NULL: no switch) and `group` (NULL: the
 * user's primary group).  Returns 0, or -1 with a one-line message in err
 * (a usage error: unknown user or group, or not running as root).
 */
int cz_spawn_resolve_ids(const char *user, const char *group,
	struct cz_spawn_ids *ids, char *err, size_t errlen);

void cz_spawn_free_ids(struct cz_spawn_ids *ids);

struct cz_spawn {
	const char *exe;          /* resolved command */
	char **argv;
	struct rlimit nofile;     /* RLIMIT_NOFILE to give back */
	const struct cz_spawn_ids *ids;
	bool pipes;               /* --prefix-output */
	/* The workers' environment, built once; the two id entries per fork. */
	char **envp;
	char *control;
	char *preload;
	int control_fd_no;        /* where workers find their attach socket */
	char unique_id[48];
	char worker_id[48];
	/* Node's IPC channel (node_ipc.h): its fd number in every worker, or
	 * -1 (--node-ipc off); and the environment that names it. */
	int node_fd;
	char *node_env[4];
};

/*
 * Builds the workers' environment from ours: the shim first in LD_PRELOAD,
 * CLUSTERIZE_CONTROL_FD, and without NOTIFY_SOCKET.  The attach socket's
 * number is just below where the shim keeps its own fds for sp->nofile
 * (set it first).  Returns 0 or -ENOMEM.
 */
int cz_spawn_init(struct cz_spawn *sp, const char *shim);

/*
 * Gives every worker forked from now on a Node IPC channel, at the fd
 * just below the attach socket's: NODE_CHANNEL_FD and
 * CLUSTERIZE_NODE_CHANNEL name it, with NODE_CHANNEL_SERIALIZATION_MODE=json
 * and NODE_CLUSTER_SCHED_POLICY=`sched`.  After cz_spawn_init().  Returns
 * 0 or -ENOMEM.
 */
int cz_spawn_node_ipc(struct cz_spawn *sp, const char *sched);

void cz_spawn_free(struct cz_spawn *sp);

struct cz_spawn_result {
	pid_t pid;
	int err;            /* errno of the child's failed step, else 0 */
	const char *step;   /* which step: "exec", "setgid", ... */
	int out[2];         /* --prefix-output: read ends of stdout, stderr */
	int node;           /* the launcher's end of the Node channel, or -1 */
};

/*
 * Forks worker `id`, handing it `control_fd` (its end of the attach
 * socket, still the caller's to close) at sp->control_fd_no, inheritable.
 * Returns 0 with r->pid set, or with r->err set when the child could not
 * exec (it has been reaped), or -errno when it could not fork.  With
 * sp->pipes, r->out holds the pipes' read ends (the caller owns them),
 * else -1; likewise r->node, the Node channel.
 */
int cz_spawn_fork(struct cz_spawn *sp, uint32_t id, int control_fd,
	struct cz_spawn_result *r);

#endif
