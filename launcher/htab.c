/* A chained hash table of intrusive nodes: see htab.h. */
#include "htab.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

static size_t bucket(const struct cz_htab *t, uint64_t hash)
{
	return (size_t)(hash & (t->nb - 1));
}

static int grow(struct cz_htab *t)
{
	size_t nb = t->nb != 0 ? t->nb * 2 : 16, i;
	struct cz_hnode **b = calloc(nb, sizeof(*b)), *n, *next;

	if (b == NULL) {
		return -ENOMEM;
	}
	for (i = 0; i < t->nb; i++) {
		for (n = t->b[i]; n != NULL; n = next) {
			next = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
	return 0;
}

int cz_htab_insert(struct cz_htab *t, struct cz_hnode *n, uint64_t hash)
{
	size_t i;

	if (t->n >= t->nb && grow(t) < 0 && t->nb == 0) {
		return -ENOMEM;
	}
	n->hash = hash;
	i = bucket(t, hash);
	n->next = t->b[i];
	t->b[i] = n;
	t->n++;
	return 0;
}

void cz_htab_remove(struct cz_htab *t, struct cz_hnode *n)
{
	struct cz_hnode **pp;

	if (t->nb == 0) {
		return;
	}
	for (pp = &t->b[bucket(t, n->hash)]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			t->n--;
			return;
		}
	}
}

struct cz_hnode *cz_htab_first(const struct cz_htab *t, uint64_t hash)
{
	struct cz_hnode *n;

	if (t->nb == 0) {
		return NULL;
	}
	for (n = t->b[bucket(t, hash)]; n != NULL && n->hash != hash;
	     n = n->next) {
	}
	return n;
}

struct cz_hnode *cz_htab_next(const struct cz_hnode *n, uint64_t hash)
{
	for (n = n->next; n != NULL && n->hash != hash; n = n->next) {
	}
	return (struct cz_hnode *)n;
}

void cz_htab_free(struct cz_htab *t)
{
	free(t->b);
	*t = (struct cz_htab){ 0 };
}

/* splitmix64's finalizer: every input bit moves every output bit. */
static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

uint64_t cz_hash_seed(void)
{
	static uint64_t seed;

	if (seed == 0) {
		struct timespec ts;

		if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) !=
		    (ssize_t)sizeof(seed)) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			seed = mix((uint64_t)ts.tv_nsec ^
				   ((uint64_t)ts.tv_sec << 32));
		}
		seed |= 1;
	}
	return seed;
}

uint64_t cz_hash_u64(uint64_t h, uint64_t v)
{
	return mix(h ^ mix(v + 0x9e3779b97f4a7c15ull));
}

uint64_t cz_hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t w;
	size_t i;

	h = cz_hash_u64(h, n);
	while (n >= 8) {
		w = 0;
		for (i = 0; i < 8; i++) {
			w |= (uint64_t)s[i] << (8 * i);
		}
		h = cz_hash_u64(h, w);
		s += 8;
		n -= 8;
	}
	w = 0;
	for (i = 0; i < n; i++) {
		w |= (uint64_t)s[i] << (8 * i);
	}
	return cz_hash_u64(h, w);
}
