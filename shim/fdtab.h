/*
 * The fd table: which of the process's fds are sockets the shim manages.
 *
 * An array indexed by fd of atomic pointers to records.  Reads are
 * lock-free (a bounds check and one atomic load), so an untracked fd costs
 * next to nothing; every change happens under one mutex.  Records come from
 * a static pool (no malloc) and are refcounted: dup() makes a second slot
 * point at the same record, and the record goes back to the pool when the
 * last slot referring to it is cleared.
 */
#ifndef CZ_SHIM_FDTAB_H
#define CZ_SHIM_FDTAB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "proto.h"

enum cz_fd_state {
	CZ_FD_FREE = 0,
	CZ_FD_INTERNAL, /* one of the shim's own fds */
	CZ_FD_VBOUND,   /* stream socket bound through the primary, not listening */
	CZ_FD_SHARED,   /* the primary's listening (or UDP) socket is installed */
	CZ_FD_RR,       /* an rr channel is installed */
	CZ_FD_PAUSED,   /* shut down: an inert socket is installed */
};

/* Socket options an app set on an rr channel (recorded, not applied). */
#define CZ_FD_NOPTS 12
struct cz_fd_opt {
	int level;
	int name;
	int value;
};

struct cz_fdrec {
	int refs;      /* slots pointing here; under the table mutex */
	int state;     /* enum cz_fd_state */
	int family;
	int type;
	int protocol;
	uint32_t key;
	uint32_t channel;
	int released;     /* the key's hold was given back (PAUSED after rr) */
	pid_t pid;        /* the process that created the record */
	unsigned forkgen; /* cz_fdtab_forkgen() when created */
	struct cz_addr bound; /* the real bound address (the primary's) */
	struct cz_addr asked; /* the address the app passed to bind() */
	struct cz_sockopts opts;
	struct cz_fd_opt rec[CZ_FD_NOPTS];
};

/*
 * Maps a table for fds [0, nfds) (nfds is capped at 1 << 20).  Returns 0
 * or -errno.  Without it every fd is untracked.
 */
int cz_fdtab_init(size_t nfds);
/* Unmaps the table and empties the pool (for tests). */
void cz_fdtab_reset(void);
size_t cz_fdtab_size(void);

/* The record of `fd`, or NULL: lock-free. */
struct cz_fdrec *cz_fdtab_get(int fd);

void cz_fdtab_lock(void);
void cz_fdtab_unlock(void);

/* A zeroed record with refs = 0 from the pool, or NULL when exhausted. */
struct cz_fdrec *cz_fdtab_alloc(void);

/*
 * Points `fd` at `rec` (may be NULL), taking a reference on rec.  The
 * record `fd` pointed at before is returned, its reference still counted:
 * pass it to cz_fdtab_put().  -EBADF-like failure (fd out of range) returns
 * NULL and leaves rec untouched (rec is freed if nothing refers to it).
 */
struct cz_fdrec *cz_fdtab_set(int fd, struct cz_fdrec *rec);

/* Makes `newfd` share `oldfd`'s record (or clears it); returns newfd's old. */
struct cz_fdrec *cz_fdtab_dup(int oldfd, int newfd);

/*
 * Drops one reference (or the reservation of a record never installed).
 * Returns 1 if it was the last: *last (if not NULL) receives a copy and the
 * record goes back to the pool; else 0.
 */
int cz_fdtab_put(struct cz_fdrec *rec, struct cz_fdrec *last);

/* The highest fd that has ever been tracked, or -1. */
int cz_fdtab_max(void);

/* Records in use (for tests). */
size_t cz_fdtab_used(void);

/* Fork: counts forks (parent side) and re-inits the mutex (child side). */
unsigned cz_fdtab_forkgen(void);
void cz_fdtab_atfork_parent(void);
void cz_fdtab_atfork_child(void);

#endif
