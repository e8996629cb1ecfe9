/*
 * A small chained hash table of intrusive nodes, for the primary's
 * registries that peers can grow (keys, holds, port-0 ordinals): lookups
 * must cost the same however many entries came before.
 *
 * The caller embeds a struct cz_hnode in its record, computes the hash
 * (cz_hash_*) and compares candidates itself:
 *
 *	for (n = cz_htab_first(t, h); n != NULL; n = cz_htab_next(n, h))
 *		if (same(container_of(n), ...)) ...
 *
 * The table grows to keep about one node per bucket; it never shrinks
 * below its peak (it is only as big as the most entries ever held).
 */
#ifndef CZ_LAUNCHER_HTAB_H
#define CZ_LAUNCHER_HTAB_H

#include <stddef.h>
#include <stdint.h>

struct cz_hnode {
	struct cz_hnode *next;
	uint64_t hash;
};

struct cz_htab {
	struct cz_hnode **b;
	size_t nb; /* buckets: 0 or a power of two */
	size_t n;  /* nodes */
};

/* Adds `n` with `hash`.  Returns 0 or -ENOMEM (then nothing changed). */
int cz_htab_insert(struct cz_htab *t, struct cz_hnode *n, uint64_t hash);

/* Removes `n`, which must be in `t`. */
void cz_htab_remove(struct cz_htab *t, struct cz_hnode *n);

/* The first node with `hash`, or NULL; then the next one after `n`. */
struct cz_hnode *cz_htab_first(const struct cz_htab *t, uint64_t hash);
struct cz_hnode *cz_htab_next(const struct cz_hnode *n, uint64_t hash);

/* Frees the buckets (not the nodes). */
void cz_htab_free(struct cz_htab *t);

/*
 * Hashing.  The seed is random per launcher, so a peer cannot choose
 * addresses that all fall into one bucket.
 */
uint64_t cz_hash_seed(void);
uint64_t cz_hash_bytes(uint64_t h, const void *p, size_t n);
uint64_t cz_hash_u64(uint64_t h, uint64_t v);

#endif
