/*
 * Draining a worker (a rolling restart's old worker, a slot removed by
 * scaling down, every worker on stop), in one sequence:
 *
 *   1. stop routing: in rr its channels leave the rotation and what is
 *      queued in them, not taken, goes to other workers (in none the
 *      kernel keeps giving it connections until it closes its listener);
 *   2. a worker that speaks Node's cluster protocol is told to disconnect
 *      (node_ipc.h), once it has taken what was sent to it: Node closes
 *      its servers and exits by itself when their connections are done;
 *   3. wait until it has taken every connection sent to it (on a stop:
 *      and the primary holds none for the workers, there being no other)
 *      and its open connections (the shim's count, conns.h; a connection
 *      is counted before it leaves the channel) reach 0, up to
 *      --drain-timeout; a disconnected Node worker then gets --grace more
 *      to exit by itself;
 *   4. the stop signal; SIGKILL after --grace (workers.c).
 *
 * Servers that finish their requests on the stop signal lose nothing
 * either way; for those that die on it, step 3 is what makes a restart
 * lossless.  Idle keep-alive connections count as open: --drain-timeout
 * bounds them.
 */
#ifndef CZ_LAUNCHER_DRAIN_H
#define CZ_LAUNCHER_DRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "workers.h"

/*
 * Starts draining `w` (phase RUN -> DRAIN) for operation `op` ("reload",
 * "scale", "stop"): stops routing to it and says what it waits for.
 */
void cz_drain_start(struct cz_sup *s, struct cz_worker *w, const char *op,
	uint64_t now);

/*
 * Whether draining `w` is over at `now` (drained, or --drain-timeout is
 * up: then says how many connections the stop signal cuts).
 */
bool cz_drain_done(struct cz_sup *s, struct cz_worker *w, uint64_t now);

#endif
