/*
 * Keeps listening sockets alive when a process that held one shut it
 * down for everyone (issue 12, finding 5).  In rr only the primary holds
 * its accepting sockets, but an adopted socket's service manager, or the
 * workers of a key shared with them, hold the very same socket.  A socket
 * that fails for good is made again on the same address (sockets.h,
 * cz_sockets_relisten) and the event logged once:
 *
 * - a socket the primary accepts on (rr): when accept4() fails with an
 *   error that no retry fixes (EINVAL after shutdown(), EBADF...);
 * - a socket the workers accept on (none, keys shared in rr): when a
 *   once-a-second check finds it no longer listening (SO_ACCEPTCONN 0).
 *   Workers that hold the dead one keep it; every LISTEN from then on
 *   (new workers, a reload) gets the new one.
 */
#ifndef CZ_LAUNCHER_LISTEN_WATCH_H
#define CZ_LAUNCHER_LISTEN_WATCH_H

#include <uv.h>

#include "rr.h"
#include "sockets.h"

#define CZ_LISTEN_WATCH_MS 1000

struct cz_lwatch;

/* Watches the keys of `s` and the listeners of `rr` (whose data must be
 * their key).  0 or -errno. */
int cz_lwatch_create(uv_loop_t *loop, struct cz_sockets *s, struct cz_rr *rr,
	struct cz_lwatch **out);

/* Runs the check of the workers' sockets now (for tests). */
void cz_lwatch_check(struct cz_lwatch *w);

/* Stops; memory is freed by the loop. */
void cz_lwatch_destroy(struct cz_lwatch *w);

#endif
