/* The socket registry's bookkeeping: see sockets_index.h. */
#include "sockets_index.h"

#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "addr.h"

#define OF(ptr, type, field) \
	((type *)(void *)((char *)(ptr) - offsetof(type, field)))

/* A worker's totals and its holds. */
struct sworker {
	struct cz_hnode node;
	uint32_t id;
	unsigned nkeys;    /* keys it holds */
	unsigned nlistens; /* sum of its holds' listens */
	struct cz_hold *holds;
};

/*
 * The port-0 ordinals one worker holds keys of, for one request tuple.  A
 * worker holds at most CZ_SOCKETS_MAX_KEYS keys, so its smallest free
 * ordinal is at most that: a fixed bitmap covers every case.
 */
#define ORD_WORDS (CZ_SOCKETS_MAX_KEYS / 64 + 1)
struct ords {
	struct cz_hnode node;
	uint32_t worker_id;
	int family, type, v6only;
	struct cz_addr req;
	unsigned n; /* bits set */
	uint64_t bits[ORD_WORDS];
};

void cz_sidx_init(struct cz_sidx *x)
{
	memset(x, 0, sizeof(*x));
	x->seed = cz_hash_seed();
}

/* --- hashing what was asked ------------------------------------------------ */

#define SUN_OFF offsetof(struct sockaddr_un, sun_path)

/* Hashes what cz_addr_equal() compares, and nothing else. */
static uint64_t addr_hash(uint64_t h, const void *p, socklen_t len)
{
	const struct sockaddr *sa = p;

	h = cz_hash_u64(h, sa->sa_family);
	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *in = p;

		return cz_hash_u64(h, (uint64_t)in->sin_port << 32 |
			in->sin_addr.s_addr);
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = p;

		h = cz_hash_u64(h, (uint64_t)in6->sin6_port << 32 |
			in6->sin6_scope_id);
		return cz_hash_bytes(h, &in6->sin6_addr, sizeof(in6->sin6_addr));
	}
	case AF_UNIX: {
		const struct sockaddr_un *sun = p;
		size_t n = len > SUN_OFF ? len - SUN_OFF : 0;

		if (n > 0 && sun->sun_path[0] != '\0') {
			n = strnlen(sun->sun_path, n);
		}
		return cz_hash_bytes(h, sun->sun_path, n);
	}
	default:
		return h;
	}
}

static uint64_t tuple_hash(const struct cz_sidx *x, int family, int type,
	const struct cz_addr *a, int v6only)
{
	uint64_t h = cz_hash_u64(x->seed, (uint64_t)(uint32_t)family << 32 |
		(uint32_t)type);

	h = cz_hash_u64(h, (uint64_t)(int64_t)v6only);
	return addr_hash(h, &a->ss, a->len);
}

static uint64_t key_hash(const struct cz_sidx *x, const struct cz_key *k)
{
	struct cz_addr a = { .len = k->req_len };

	memcpy(&a.ss, &k->req, k->req_len);
	return cz_hash_u64(tuple_hash(x, k->family, k->type, &a,
		k->adopted ? -1 : k->v6only), k->adopted ? 0 : k->ordinal);
}

static uint64_t id_hash(const struct cz_sidx *x, uint32_t id)
{
	return cz_hash_u64(x->seed, id);
}

/* --- keys ------------------------------------------------------------------ */

int cz_sidx_add(struct cz_sidx *x, struct cz_key *k)
{
	if (cz_htab_insert(&x->by_id, &k->by_id, id_hash(x, k->id)) < 0) {
		return -ENOMEM;
	}
	if (cz_htab_insert(&x->by_addr, &k->by_addr, key_hash(x, k)) < 0) {
		cz_htab_remove(&x->by_id, &k->by_id);
		return -ENOMEM;
	}
	return 0;
}

static void orphan_remove(struct cz_sidx *x, struct cz_key *k)
{
	if (!k->orphan) {
		return;
	}
	*(k->oprev != NULL ? &k->oprev->onext : &x->orphans) = k->onext;
	*(k->onext != NULL ? &k->onext->oprev : &x->orphans_last) = k->oprev;
	k->oprev = k->onext = NULL;
	k->orphan = false;
	x->norphans--;
}

void cz_sidx_orphan_add(struct cz_sidx *x, struct cz_key *k)
{
	if (k->orphan) {
		return;
	}
	k->orphan = true;
	k->onext = NULL;
	k->oprev = x->orphans_last;
	*(x->orphans_last != NULL ? &x->orphans_last->onext : &x->orphans) = k;
	x->orphans_last = k;
	x->norphans++;
}

void cz_sidx_remove(struct cz_sidx *x, struct cz_key *k)
{
	while (k->holds != NULL) {
		cz_sidx_hold_set(x, k->holds, 0, 0);
	}
	orphan_remove(x, k);
	cz_htab_remove(&x->by_id, &k->by_id);
	cz_htab_remove(&x->by_addr, &k->by_addr);
}

struct cz_key *cz_sidx_find(struct cz_sidx *x, uint32_t id)
{
	uint64_t h = id_hash(x, id);
	struct cz_hnode *n;

	for (n = cz_htab_first(&x->by_id, h); n != NULL; n = cz_htab_next(n, h)) {
		struct cz_key *k = OF(n, struct cz_key, by_id);

		x->probes++;
		if (k->id == id) {
			return k;
		}
	}
	return NULL;
}

struct cz_key *cz_sidx_lookup(struct cz_sidx *x, int family, int type,
	const struct cz_addr *a, int v6only, unsigned ordinal)
{
	uint64_t h = cz_hash_u64(tuple_hash(x, family, type, a, v6only),
		v6only < 0 ? 0 : ordinal);
	struct cz_hnode *n;

	for (n = cz_htab_first(&x->by_addr, h); n != NULL;
	     n = cz_htab_next(n, h)) {
		struct cz_key *k = OF(n, struct cz_key, by_addr);

		x->probes++;
		if (k->family == family && k->type == type &&
		    (v6only < 0 ? k->adopted :
				  (!k->adopted && k->v6only == v6only &&
				   k->ordinal == ordinal)) &&
		    cz_addr_equal((const void *)&k->req, k->req_len,
			    (const void *)&a->ss, a->len)) {
			return k;
		}
	}
	return NULL;
}

/* --- workers and their port-0 ordinals ------------------------------------- */

static struct sworker *worker_find(const struct cz_sidx *x, uint32_t id)
{
	uint64_t h = id_hash(x, id);
	struct cz_hnode *n;

	for (n = cz_htab_first(&x->workers, h); n != NULL;
	     n = cz_htab_next(n, h)) {
		struct sworker *w = OF(n, struct sworker, node);

		if (w->id == id) {
			return w;
		}
	}
	return NULL;
}

static struct sworker *worker_get(struct cz_sidx *x, uint32_t id)
{
	struct sworker *w = worker_find(x, id);

	if (w != NULL) {
		return w;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		return NULL;
	}
	w->id = id;
	if (cz_htab_insert(&x->workers, &w->node, id_hash(x, id)) < 0) {
		free(w);
		return NULL;
	}
	return w;
}

static uint64_t ords_hash(const struct cz_sidx *x, uint32_t worker_id,
	int family, int type, const struct cz_addr *a, int v6only)
{
	return cz_hash_u64(tuple_hash(x, family, type, a, v6only), worker_id);
}

static struct ords *ords_find(struct cz_sidx *x, uint32_t worker_id,
	int family, int type, const struct cz_addr *a, int v6only)
{
	uint64_t h = ords_hash(x, worker_id, family, type, a, v6only);
	struct cz_hnode *n;

	for (n = cz_htab_first(&x->ords, h); n != NULL; n = cz_htab_next(n, h)) {
		struct ords *o = OF(n, struct ords, node);

		x->probes++;
		if (o->worker_id == worker_id && o->family == family &&
		    o->type == type && o->v6only == v6only &&
		    cz_addr_equal((const void *)&o->req.ss, o->req.len,
			    (const void *)&a->ss, a->len)) {
			return o;
		}
	}
	return NULL;
}

unsigned cz_sidx_next_ordinal(struct cz_sidx *x, uint32_t worker_id,
	int family, int type, const struct cz_addr *a, int v6only)
{
	const struct ords *o = ords_find(x, worker_id, family, type, a, v6only);
	unsigned i;

	for (i = 0; o != NULL && i < ORD_WORDS; i++) {
		if (~o->bits[i] != 0) {
			return i * 64 + (unsigned)__builtin_ctzll(~o->bits[i]);
		}
	}
	return o != NULL ? ORD_WORDS * 64 : 0;
}

static bool key_wild(const struct cz_key *k)
{
	const struct sockaddr *sa = (const void *)&k->req;

	return !k->adopted && sa->sa_family != AF_UNIX &&
	       cz_addr_port(sa, k->req_len) == 0;
}

/* Marks (or clears) the key's ordinal as held by the worker. */
static int ords_mark(struct cz_sidx *x, const struct cz_key *k,
	uint32_t worker_id, bool held)
{
	struct cz_addr a = { .len = k->req_len };
	struct ords *o;
	uint64_t bit = 1ull << (k->ordinal % 64);
	unsigned w = k->ordinal / 64;

	if (!key_wild(k) || w >= ORD_WORDS) {
		return 0;
	}
	memcpy(&a.ss, &k->req, k->req_len);
	o = ords_find(x, worker_id, k->family, k->type, &a, k->v6only);
	if (o == NULL && held) {
		o = calloc(1, sizeof(*o));
		if (o == NULL) {
			return -ENOMEM;
		}
		*o = (struct ords){ .worker_id = worker_id, .family = k->family,
			.type = k->type, .v6only = k->v6only, .req = a };
		if (cz_htab_insert(&x->ords, &o->node, ords_hash(x, worker_id,
			    k->family, k->type, &a, k->v6only)) < 0) {
			free(o);
			return -ENOMEM;
		}
	}
	if (o == NULL || ((o->bits[w] & bit) != 0) == held) {
		return 0;
	}
	o->bits[w] ^= bit;
	o->n += held ? 1 : -1u;
	if (o->n == 0) {
		cz_htab_remove(&x->ords, &o->node);
		free(o);
	}
	return 0;
}

/* --- holds ----------------------------------------------------------------- */

struct cz_hold *cz_sidx_hold(const struct cz_key *k, uint32_t worker_id)
{
	struct cz_hold *h;

	for (h = k->holds; h != NULL && h->worker_id != worker_id;
	     h = h->next_in_key) {
	}
	return h;
}

static struct cz_hold *hold_new(struct cz_sidx *x, struct cz_key *k,
	uint32_t worker_id)
{
	struct sworker *w = worker_get(x, worker_id);
	struct cz_hold *h = w != NULL ? calloc(1, sizeof(*h)) : NULL;

	if (h == NULL || ords_mark(x, k, worker_id, true) < 0) {
		free(h);
		if (w != NULL && w->holds == NULL) {
			cz_htab_remove(&x->workers, &w->node);
			free(w);
		}
		return NULL;
	}
	h->worker_id = worker_id;
	h->key = k;
	h->next_in_key = k->holds;
	k->holds = h;
	h->wnext = w->holds;
	if (w->holds != NULL) {
		w->holds->wprev = h;
	}
	w->holds = h;
	w->nkeys++;
	return h;
}

int cz_sidx_hold_add(struct cz_sidx *x, struct cz_key *k, uint32_t worker_id)
{
	struct cz_hold *h = cz_sidx_hold(k, worker_id);

	if (h == NULL && (h = hold_new(x, k, worker_id)) == NULL) {
		return -ENOMEM;
	}
	orphan_remove(x, k);
	cz_sidx_hold_set(x, h, h->holds + 1,
		h->listens + (k->type == SOCK_DGRAM ? 1 : 0));
	return 0;
}

static void hold_free(struct cz_sidx *x, struct sworker *w, struct cz_hold *h)
{
	struct cz_hold **pp;

	for (pp = &h->key->holds; *pp != h; pp = &(*pp)->next_in_key) {
	}
	*pp = h->next_in_key;
	if (h->wprev != NULL) {
		h->wprev->wnext = h->wnext;
	} else {
		w->holds = h->wnext;
	}
	if (h->wnext != NULL) {
		h->wnext->wprev = h->wprev;
	}
	ords_mark(x, h->key, h->worker_id, false);
	w->nkeys--;
	free(h);
	if (w->holds == NULL) {
		cz_htab_remove(&x->workers, &w->node);
		free(w);
	}
}

void cz_sidx_hold_set(struct cz_sidx *x, struct cz_hold *h, unsigned holds,
	unsigned listens)
{
	struct sworker *w = worker_find(x, h->worker_id);

	if (listens > holds) {
		listens = holds;
	}
	w->nlistens = w->nlistens - h->listens + listens;
	h->holds = holds;
	h->listens = listens;
	if (holds == 0) {
		hold_free(x, w, h);
	}
}

unsigned cz_sidx_keys(const struct cz_sidx *x, uint32_t worker_id)
{
	const struct sworker *w = worker_find(x, worker_id);

	return w != NULL ? w->nkeys : 0;
}

unsigned cz_sidx_listens(const struct cz_sidx *x, uint32_t worker_id)
{
	const struct sworker *w = worker_find(x, worker_id);

	return w != NULL ? w->nlistens : 0;
}

struct cz_hold *cz_sidx_holds(const struct cz_sidx *x, uint32_t worker_id)
{
	const struct sworker *w = worker_find(x, worker_id);

	return w != NULL ? w->holds : NULL;
}

void cz_sidx_free(struct cz_sidx *x)
{
	cz_htab_free(&x->by_id);
	cz_htab_free(&x->by_addr);
	cz_htab_free(&x->workers);
	cz_htab_free(&x->ords);
}
