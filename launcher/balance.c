/* Which worker gets a connection: see balance.h. */
#include "balance.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/random.h>

static const char *const names[] = {
	[CZ_BALANCE_RR] = "rr",
	[CZ_BALANCE_LEAST_CONN] = "least-conn",
	[CZ_BALANCE_STICKY] = "sticky",
};

int cz_balance_parse(const char *s)
{
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			return (int)i;
		}
	}
	return -1;
}

const char *cz_balance_name(enum cz_balance b)
{
	return (unsigned)b < sizeof(names) / sizeof(names[0]) ? names[b] : "?";
}

int cz_balance_env_init(struct cz_balance_env *env, enum cz_balance policy)
{
	env->policy = policy;
	/* A key clients cannot know, so that none can aim at a worker. */
	if (getrandom(env->key, sizeof(env->key), 0) != (ssize_t)sizeof(env->key)) {
		return errno != 0 ? -errno : -EIO;
	}
	return 0;
}

/* --- the keyed hash ------------------------------------------------------- */

static inline uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

#define SIPROUND(v0, v1, v2, v3) do { \
		v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32); \
		v2 += v3; v3 = rotl(v3, 16); v3 ^= v2; \
		v0 += v3; v3 = rotl(v3, 21); v3 ^= v0; \
		v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32); \
	} while (0)

/* SipHash with one compression and three finalization rounds. */
uint64_t cz_balance_siphash(const uint64_t key[2], const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t v0 = key[0] ^ 0x736f6d6570736575ull;
	uint64_t v1 = key[1] ^ 0x646f72616e646f6dull;
	uint64_t v2 = key[0] ^ 0x6c7967656e657261ull;
	uint64_t v3 = key[1] ^ 0x7465646279746573ull;
	uint64_t m, b = (uint64_t)len << 56;
	size_t i, left = len & 7;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&m, p + i, 8);
		v3 ^= m;
		SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	for (size_t j = 0; j < left; j++) {
		b |= (uint64_t)p[i + j] << (8 * j);
	}
	v3 ^= b;
	SIPROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

bool cz_balance_client_hash(const struct cz_balance_env *env,
	const struct sockaddr_storage *peer, socklen_t plen, uint64_t *out)
{
	static const unsigned char v4mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
	};
	const struct sockaddr_in6 *s6 = (const void *)peer;
	const struct sockaddr_in *s4 = (const void *)peer;

	if (peer->ss_family == AF_INET && plen >= sizeof(*s4)) {
		*out = cz_balance_siphash(env->key, &s4->sin_addr, 4);
		return true;
	}
	if (peer->ss_family != AF_INET6 || plen < sizeof(*s6)) {
		return false;
	}
	/* ::ffff:a.b.c.d is the client a.b.c.d on a dual-stack socket. */
	if (memcmp(s6->sin6_addr.s6_addr, v4mapped, sizeof(v4mapped)) == 0) {
		*out = cz_balance_siphash(env->key, s6->sin6_addr.s6_addr + 12, 4);
	} else {
		*out = cz_balance_siphash(env->key, s6->sin6_addr.s6_addr, 16);
	}
	return true;
}

/*
 * The client's hash is keyed already; a strong 64-bit mix of it with the
 * slot (splitmix64's finalizer) gives each slot an independent-looking
 * weight without hashing the address again per slot.
 */
uint64_t cz_balance_weight(uint64_t client, int slot)
{
	uint64_t z = client ^ ((uint64_t)(unsigned)slot + 1) *
		0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* --- the policies --------------------------------------------------------- */

static int pick_rr(struct cz_balancer *b, struct cz_balance_chan *const *chans,
	unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		unsigned idx = (b->next + i) % n;

		if (cz_balance_credit(chans[idx])) {
			b->next = idx + 1;
			return (int)idx;
		}
	}
	return -1;
}

static int pick_least(struct cz_balancer *b,
	struct cz_balance_chan *const *chans, unsigned n)
{
	unsigned best_load = UINT_MAX;
	int best = -1;

	/* Strictly fewer wins: ties go to the first in round-robin order. */
	for (unsigned i = 0; i < n; i++) {
		unsigned idx = (b->next + i) % n, load;
		const struct cz_balance_chan *c = chans[idx];

		if (!cz_balance_credit(c)) {
			continue;
		}
		load = cz_conns_open(c->conns);
		load = load > UINT_MAX - *c->inflight ? UINT_MAX : load + *c->inflight;
		if (load < best_load) {
			best_load = load;
			best = (int)idx;
		}
	}
	if (best >= 0) {
		b->next = (unsigned)best + 1;
	}
	return best;
}

static int chan_slot(const struct cz_balance_env *env, struct cz_balance_chan *c)
{
	if (c->slot_gen != env->slot_gen) {
		c->slot = env->slot_of != NULL ?
			env->slot_of(env->slot_data, c->worker_id) : -1;
		c->slot_gen = env->slot_gen;
	}
	return c->slot;
}

/*
 * The usable slot with the highest weight for `client`, or -1 when no
 * usable channel has a slot.  A stalled or stopping channel is not
 * usable; one without credit is (it is only busy).
 */
static int best_slot(const struct cz_balance_env *env,
	struct cz_balance_chan *const *chans, unsigned n, uint64_t client)
{
	uint64_t best_w = 0;
	int best = -1;

	for (unsigned i = 0; i < n; i++) {
		struct cz_balance_chan *c = chans[i];
		int slot;
		uint64_t w;

		if (c->stalled || c->stopping || (slot = chan_slot(env, c)) < 0 ||
		    slot == best) {
			continue;
		}
		w = cz_balance_weight(client, slot);
		/* Equal weights (1 in 2^64): the lower slot, whatever the order. */
		if (best < 0 || w > best_w || (w == best_w && slot < best)) {
			best_w = w;
			best = slot;
		}
	}
	return best;
}

static int pick_sticky(struct cz_balancer *b,
	struct cz_balance_chan *const *chans, unsigned n,
	const struct sockaddr_storage *peer, socklen_t plen)
{
	uint64_t client;
	int slot;

	if (plen == 0 || !cz_balance_client_hash(b->env, peer, plen, &client) ||
	    (slot = best_slot(b->env, chans, n, client)) < 0) {
		return pick_rr(b, chans, n);
	}
	/* A slot may have several channels (a replacement starting, or a
	 * worker that listens twice): in turn among those with credit. */
	for (unsigned i = 0; i < n; i++) {
		unsigned idx = (b->next + i) % n;

		if (chans[idx]->slot == slot && cz_balance_credit(chans[idx])) {
			b->next = idx + 1;
			return (int)idx;
		}
	}
	return -1; /* busy: wait for it */
}

int cz_balance_pick(struct cz_balancer *b, struct cz_balance_chan *const *chans,
	unsigned n, const struct sockaddr_storage *peer, socklen_t plen)
{
	if (n == 0) {
		return -1;
	}
	switch (b->env->policy) {
	case CZ_BALANCE_LEAST_CONN:
		return pick_least(b, chans, n);
	case CZ_BALANCE_STICKY:
		return pick_sticky(b, chans, n, peer, plen);
	default:
		return pick_rr(b, chans, n);
	}
}
