/*
 * The shim's link to the primary (shim/proto.h has the whole design).
 *
 * The attach socket is inherited at $CLUSTERIZE_CONTROL_FD and stays
 * there, NOT close-on-exec, protected like the shim's other fds.  A
 * process's control connection is a socketpair it makes and sends to the
 * primary (ATTACH) on its first request (the worker process itself: when
 * the shim loads), kept at a high CLOEXEC fd that the fd table marks
 * internal.  Requests are synchronous under a process-wide mutex, with
 * signals blocked so that a handler calling close() on a tracked fd cannot
 * deadlock on it, and each waits at most CZ_REQUEST_TIMEOUT_MS.  A forked
 * child never uses its parent's connection: it attaches anew, and keeps
 * its copy of the parent's open (so the primary knows the parent's
 * listeners may still be in use) until it exits or execs.
 */
#ifndef CZ_SHIM_CTL_H
#define CZ_SHIM_CTL_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

/*
 * Reads the environment (constructor only) and checks the attach socket;
 * the worker process itself attaches and says hello at once.  Returns 0
 * when the process is a worker with a usable attach socket, 1 when the
 * environment does not name one (pass-through), or -errno.
 */
int cz_ctl_init(uint32_t hello_flags);

/* Whether the shim manages sockets in this process at all. */
int cz_ctl_enabled(void);

/*
 * Sends `req` (its hdr.seq is assigned here) and waits for the REPLY with
 * the same seq.  If `fd_out` is not NULL it receives the attached fd (or
 * -1); any unexpected fd is closed.  Returns 0 (the reply's err is in
 * rep->err) or -errno when the primary cannot be reached: -ETIMEDOUT after
 * CZ_REQUEST_TIMEOUT_MS without an answer, -ECONNREFUSED when it closed
 * the connection or the attach socket (each says so on stderr).
 */
int cz_ctl_request(struct cz_msg_hdr *req, struct cz_msg_reply *rep,
	int *fd_out);

/*
 * The app is about to dup2()/dup3() onto `fd`, one of the shim's own fds:
 * move it to another high number first.
 */
void cz_ctl_move_away(int fd);

/*
 * One recvmsg(2) of a message carrying at most one fd (any extra fd is
 * closed).  Returns the message's length (0 at EOF) or -errno, with the fd
 * (or -1) in *fd_out and, if ctrunc is not NULL, whether the kernel had to
 * drop fds (MSG_CTRUNC: the process is at its fd limit).
 */
ssize_t cz_ctl_recv(int fd, void *buf, size_t len, int rflags, int *fd_out,
	bool *ctrunc);

/*
 * Keeps `fd` as one of the shim's own fds: moved to a high number, CLOEXEC,
 * protected from the app's close/dup2/close_range.  Returns the new number.
 */
int cz_ctl_stash(int fd);

/* The lowest fd number the shim uses for its own fds. */
int cz_ctl_high_fd(void);

/* pthread_atfork handlers (registered by the constructor). */
void cz_ctl_atfork_prepare(void);
void cz_ctl_atfork_parent(void);
void cz_ctl_atfork_child(void);

#endif
