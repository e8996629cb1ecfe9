/*
 * The control connection to the primary: one SOCK_SEQPACKET connection per
 * process, to the abstract address "\0" + $CLUSTERIZE_CONTROL, kept at a
 * high CLOEXEC fd that the fd table marks internal.  Requests are
 * synchronous under a process-wide mutex, with signals blocked so that a
 * handler calling close() on a tracked fd cannot deadlock on it.  A forked
 * child never uses its parent's connection: it reconnects and says HELLO
 * again on its first request.
 */
#ifndef CZ_SHIM_CTL_H
#define CZ_SHIM_CTL_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

/*
 * Reads the environment (constructor only), connects and says hello.
 * Returns 0 when the process is a worker with a usable connection, 1 when
 * the environment does not ask for one (pass-through), or -errno.
 */
int cz_ctl_init(uint32_t hello_flags);

/* Whether the shim manages sockets in this process at all. */
int cz_ctl_enabled(void);

/*
 * Sends `req` (its hdr.seq is assigned here) and waits for the REPLY with
 * the same seq.  If `fd_out` is not NULL it receives the attached fd (or
 * -1); any unexpected fd is closed.  Returns 0 (the reply's err is in
 * rep->err) or -errno when the primary cannot be reached.
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
