/*
 * The primary's side of the open-connection counters (shim/proto.h,
 * struct cz_conns_page): one shared page per worker, made here, sent to
 * each of the worker's processes with the HELLO reply, kept current by
 * their shims, read here without any message.
 *
 * A process killed with connections open cannot count them down: its
 * entry is freed once the process is gone (cz_conntab_reap, on a timer),
 * and the connections it held with it.
 */
#ifndef CZ_LAUNCHER_CONNS_H
#define CZ_LAUNCHER_CONNS_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "proto.h"

/* How often the entries of processes that are gone are freed. */
#define CZ_CONNS_REAP_MS 250

/* One worker's counters. */
struct cz_conns;

/* Open connections of every process of the worker (NULL: 0). */
unsigned cz_conns_open(const struct cz_conns *c);

/* The memfd to send to the worker's processes. */
int cz_conns_fd(const struct cz_conns *c);

/* The shared page itself (for tests, which play the shim). */
struct cz_conns_page *cz_conns_page(struct cz_conns *c);

/*
 * Frees the entries of processes that no longer run (or are zombies);
 * returns the connections their entries still counted.
 */
unsigned cz_conns_reap(struct cz_conns *c);

/* Every worker's counters, by worker id. */
struct cz_conntab;

/* Reaps every worker's entries each CZ_CONNS_REAP_MS on `loop`. */
int cz_conntab_create(uv_loop_t *loop, struct cz_conntab **out);

/* Closes everything; the loop frees it.  `t` may be NULL. */
void cz_conntab_destroy(struct cz_conntab *t);

/*
 * The counters of worker `worker_id`; made when `create` and there are
 * none yet.  NULL when there are none (or no memory, or no memfd: the
 * worker's connections are then not counted).
 */
struct cz_conns *cz_conntab_get(struct cz_conntab *t, uint32_t worker_id,
	bool create);

/* The counters of worker `worker_id`, or NULL. */
const struct cz_conns *cz_conntab_find(const struct cz_conntab *t,
	uint32_t worker_id);

/* The worker has exited: its counters go. */
void cz_conntab_drop(struct cz_conntab *t, uint32_t worker_id);

/* Open connections of worker `worker_id` (0 when it has no counters). */
unsigned cz_conntab_open(const struct cz_conntab *t, uint32_t worker_id);

/* Reaps every worker's entries now (the timer's work). */
void cz_conntab_reap(struct cz_conntab *t);

#endif
