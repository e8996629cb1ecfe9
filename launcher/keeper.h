/*
 * The keeper: nothing started under the launcher outlives it, however it
 * dies (SIGKILL included).
 *
 * Each worker runs in a process group of its own, and PR_SET_PDEATHSIG
 * alone does not hold: the kernel clears it when a process changes its
 * credentials (servers that drop privileges: nginx's and Apache's
 * children, mini_httpd), and a worker's own children never had it.  So at
 * start the launcher forks a small keeper that holds the read end of a
 * pipe whose write end only the launcher keeps (close-on-exec), and tells
 * it the process group of every worker it starts, and of every one it has
 * reaped (so a recycled process group id is never killed).  When the
 * launcher dies by any means, the keeper reads EOF (or gets its own
 * parent-death signal, whichever comes first), SIGKILLs every process
 * group it was told of, and exits.
 *
 * The keeper keeps the launcher's credentials (a root launcher's keeper
 * can kill workers that changed theirs), runs in a session of its own
 * (job control and the terminal's signals never reach it; it ignores
 * them anyway) and holds no fd of the launcher's but the pipe and stderr.
 * The launcher restarts it should it die (unless three in a row die
 * within a second of their start); at a normal end the launcher, having
 * reaped every worker, ends it.
 *
 * What leaves its worker's process group (setsid, setpgid: a server that
 * daemonizes itself) is not the keeper's to find.
 */
#ifndef CZ_LAUNCHER_KEEPER_H
#define CZ_LAUNCHER_KEEPER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct cz_keeper {
	pid_t pid;        /* -1: not running */
	int fd;           /* the pipe's write end; -1: none */
	uint64_t started; /* ms, when the running keeper was started */
	unsigned quick_deaths; /* keepers in a row that died within 1 s */
	pid_t *groups;    /* the process groups it was told of */
	unsigned n, cap;
};

/* Starts the keeper.  Returns 0 or -errno (logged). */
int cz_keeper_start(struct cz_keeper *k);

/* The keeper kills process group `pgid` if the launcher dies. */
void cz_keeper_watch(struct cz_keeper *k, pid_t pgid);

/* Group `pgid` is gone (its leader was reaped and the rest killed). */
void cz_keeper_forget(struct cz_keeper *k, pid_t pgid);

/*
 * For the launcher's reaper: whether `pid` was the keeper.  If so it died
 * before its time; it is started again (logged) and told every group.
 */
bool cz_keeper_reaped(struct cz_keeper *k, pid_t pid, int status);

/* At the launcher's normal end, every worker reaped: ends the keeper. */
void cz_keeper_stop(struct cz_keeper *k);

#endif
