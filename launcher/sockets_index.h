/*
 * The socket registry's bookkeeping (sockets.c only): keys found by id and
 * by what was asked, which workers hold which keys, each worker's port-0
 * ordinals, and the orphans (listening keys nobody holds).  Everything a
 * bind or listen touches is found by hash or kept as a per-worker count,
 * so no request costs more because of what came before it.
 */
#ifndef CZ_LAUNCHER_SOCKETS_INDEX_H
#define CZ_LAUNCHER_SOCKETS_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "htab.h"
#include "sockets.h"

struct cz_sidx {
	struct cz_htab by_id, by_addr, workers, ords;
	uint64_t seed;
	unsigned long probes;
	struct cz_key *orphans, *orphans_last; /* oldest first */
	unsigned norphans;
};

void cz_sidx_init(struct cz_sidx *x);
/* Frees the tables and every hold left (keys are the caller's). */
void cz_sidx_free(struct cz_sidx *x);

/* Indexes `k` by id and by its request (k->adopted: by address only). */
int cz_sidx_add(struct cz_sidx *x, struct cz_key *k);
/* Unindexes `k`, forgets its holds and takes it off the orphan list. */
void cz_sidx_remove(struct cz_sidx *x, struct cz_key *k);

struct cz_key *cz_sidx_find(struct cz_sidx *x, uint32_t id);

/*
 * The key asked for as (family, type, a, v6only, ordinal), or with
 * v6only < 0 the adopted key of that address; NULL if none.
 */
struct cz_key *cz_sidx_lookup(struct cz_sidx *x, int family, int type,
	const struct cz_addr *a, int v6only, unsigned ordinal);

/*
 * The smallest port-0 ordinal of (family, type, a, v6only) that worker
 * `worker_id` holds no key of: its next port-0 bind's.
 */
unsigned cz_sidx_next_ordinal(struct cz_sidx *x, uint32_t worker_id,
	int family, int type, const struct cz_addr *a, int v6only);

/* The worker's hold on `k`, or NULL. */
struct cz_hold *cz_sidx_hold(const struct cz_key *k, uint32_t worker_id);

/*
 * Adds one hold of `worker_id` on `k` (a datagram key counts it as a
 * listen too); takes `k` off the orphan list.  0 or -ENOMEM.
 */
int cz_sidx_hold_add(struct cz_sidx *x, struct cz_key *k, uint32_t worker_id);

/* Sets h->holds and h->listens; a hold left at 0 is freed. */
void cz_sidx_hold_set(struct cz_sidx *x, struct cz_hold *h, unsigned holds,
	unsigned listens);

/* Per-worker totals, and the worker's holds (a list by wnext). */
unsigned cz_sidx_keys(const struct cz_sidx *x, uint32_t worker_id);
unsigned cz_sidx_listens(const struct cz_sidx *x, uint32_t worker_id);
struct cz_hold *cz_sidx_holds(const struct cz_sidx *x, uint32_t worker_id);

/* Orphans: listening keys that no worker holds, oldest first. */
void cz_sidx_orphan_add(struct cz_sidx *x, struct cz_key *k);

#endif
