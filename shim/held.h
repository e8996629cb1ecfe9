/*
 * Counting the connections a worker holds open, for the primary to read
 * (proto.h, struct cz_conns_page: one page per worker, shared by all its
 * processes and the primary).
 *
 * An fd holding a connection accepted through the shim (an rr CONN, or an
 * accept on a shared listener) carries a mark: one bit per fd number in a
 * private bitmap (no record, no allocation).  A process's entry in the page
 * counts its marks: +1 when a mark is set, -1 when one is cleared, so the
 * count is the number of (process, fd) pairs that hold such a connection.
 * A connection is open while any of them holds it, so a worker is drained
 * exactly when the sum reaches 0.  Marks follow dup*, F_DUPFD*, close,
 * close_range, closefrom, syscall(SYS_close) and fclose (fds.c, interpose.c);
 * a forked child inherits its parent's marks and counts them in an entry
 * of its own.  A mark left behind by a close no wrapper saw is dropped when
 * socket() or accept() hands out its fd number again.
 *
 * Lock-free: bit operations and counter updates are atomics, safe from any
 * thread and from signal handlers; nothing allocates.  Marks are cleared
 * before the fd is closed, so that another thread's accept of the same
 * number cannot be undone.
 */
#ifndef CZ_SHIM_HELD_H
#define CZ_SHIM_HELD_H

#include <stddef.h>

#include "proto.h"

/* Maps the bitmap for fds [0, nfds).  Returns 0 or -errno. */
int cz_held_init(size_t nfds);

/* Unmaps everything (tests). */
void cz_held_reset(void);

/*
 * The worker's page arrived (a memfd, HELLO reply; taken over and closed).
 * The first in a process image maps it and takes over an entry the same
 * pid left before an exec; a forked child already has its parent's
 * mapping and only closes the fd.
 */
void cz_held_attach(int memfd);

/* `fd` holds a connection just accepted through the shim. */
void cz_held_add(int fd);

/*
 * A receive off an rr channel starts (+1) or has ended (-1), its
 * connection, if any, marked in between: a connection is counted from
 * before it leaves the channel, so the primary, which counts what is
 * queued there, never finds it in neither count.
 */
void cz_held_receiving(int delta);

/* `fd` is about to be closed, or now refers to something else. */
void cz_held_drop(int fd);

/* `newfd` now refers to what `oldfd` does (dup2, dup3, F_DUPFD...). */
void cz_held_dup(int oldfd, int newfd);

/* Every fd in [first, last] is about to be closed. */
void cz_held_drop_range(unsigned first, unsigned last);

/* In a forked child: its inherited marks go to an entry of its own. */
void cz_held_atfork_child(void);

/* This process's count (its entry's `open`), for tests. */
unsigned cz_held_count(void);

/* Whether `fd` carries a mark, for tests. */
int cz_held_marked(int fd);

#endif
