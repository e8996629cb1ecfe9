/*
 * Spare fd slots for receiving connections.
 *
 * A connection comes down an rr channel as an fd in flight (SCM_RIGHTS),
 * and the primary no longer holds a copy of it: if the kernel cannot
 * install that fd (the process is at its open-files limit) it sets
 * MSG_CTRUNC and drops the fd, and with it the connection.  So the shim
 * receives only into a slot it made free itself: each process keeps a few
 * spare fds (dups of one internal eventfd, taken by the lowest free slot,
 * so always under the limit), and around each receive closes one and
 * makes it again.  A thread that finds no spare and cannot make one does
 * not receive: its accept() fails with EMFILE, as the kernel's would, and
 * the connection stays queued for the primary to give to another worker.
 *
 * Each receiving thread frees a spare of its own, so threads accepting at
 * once never count on the same free slot.  Only the app's own threads
 * opening fds in the few instructions between the close and the receive,
 * at the very limit, can still take the slot (then the receive truncates).
 * Nothing here allocates; the pool is a few atomics.
 */
#ifndef CZ_SHIM_SPARE_H
#define CZ_SHIM_SPARE_H

/*
 * Frees one fd slot for the caller's next receive: a spare from the pool,
 * or one made now, is closed.  Returns 0, or -EMFILE (or another -errno)
 * when the process has no slot to spare.
 */
int cz_spare_free_slot(void);

/* After the receive: makes a spare again if a slot is left (else not). */
void cz_spare_restore(void);

/*
 * The app is about to dup2()/dup3() onto `fd`: if it is a spare (or their
 * source), the shim lets it go (the app's call closes it) and returns 1.
 */
int cz_spare_forget(int fd);

/* Spares held now (for tests). */
int cz_spare_count(void);

#endif
