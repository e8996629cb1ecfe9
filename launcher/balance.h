/*
 * Which worker gets a connection (rr policy only; --balance):
 *
 *   rr          the next channel with credit, in turn (the default).
 *   least-conn  the channel whose worker has the fewest connections open
 *               (the shim's count, conns.h) plus those sent to this
 *               channel and not taken yet; ties in round-robin order.
 *   sticky      the same client IP address to the same worker slot, by
 *               rendezvous (highest random weight) hashing over the
 *               slots that have a usable channel, with a keyed hash: a
 *               worker replaced in its slot keeps its clients, and going
 *               from N to N+1 slots moves about 1/(N+1) of them.  A
 *               client whose slot's channels are all merely busy (no
 *               credit) waits for one of them: stickiness over speed,
 *               bounded by the stall check (rr.h), after which the
 *               channel is stalled and the client goes to the slot with
 *               the next-highest weight, as it does when its slot has no
 *               channel at all (a worker restarting) or is draining.
 *               Peers without an IP address (unix sockets) go round-robin.
 *
 * The decision is cz_balance_pick(), and only that: the dispatcher (rr.c)
 * keeps each channel's struct cz_balance_chan current and sends where the
 * pick says.  Nothing here allocates or makes a system call.
 */
#ifndef CZ_LAUNCHER_BALANCE_H
#define CZ_LAUNCHER_BALANCE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conns.h"

enum cz_balance {
	CZ_BALANCE_RR = 0,
	CZ_BALANCE_LEAST_CONN,
	CZ_BALANCE_STICKY,
};

/* "rr", "least-conn", "sticky" (exactly); -1 for anything else. */
int cz_balance_parse(const char *s);
const char *cz_balance_name(enum cz_balance b);

/* Credit: connections a channel may have queued (sent, not taken). */
#ifndef CZ_RR_CREDIT
#define CZ_RR_CREDIT 4
#endif

/* What the balancer reads of one channel; rr.c keeps it current. */
struct cz_balance_chan {
	uint32_t worker_id;
	bool stalled;             /* nothing taken for too long: skipped until it recovers */
	bool stopping;            /* its worker is draining: never again */
	const unsigned *inflight; /* sent, not seen taken (the channel's book) */
	const struct cz_conns *conns; /* its worker's open connections; NULL: none known */
	int slot;                 /* sticky: its worker's slot, -1: none */
	unsigned slot_gen;        /* the cz_balance_env.slot_gen `slot` is from */
};

static inline bool cz_balance_credit(const struct cz_balance_chan *c)
{
	return !c->stalled && !c->stopping && *c->inflight < CZ_RR_CREDIT;
}

/* The worker's slot (the supervisor's index, kept across replacements), or -1. */
typedef int cz_balance_slot_fn(void *data, uint32_t worker_id);

/* One per dispatcher: the policy and what sticky needs. */
struct cz_balance_env {
	enum cz_balance policy;
	uint64_t key[2];          /* sticky: random per launcher */
	unsigned slot_gen;        /* bumped whenever workers change slots */
	cz_balance_slot_fn *slot_of;
	void *slot_data;
};

/*
 * Sets the policy, and a fresh random key (the slot lookup is left as
 * it was).  Returns 0 or -errno.
 */
int cz_balance_env_init(struct cz_balance_env *env, enum cz_balance policy);

/* One per listener: the round-robin cursor. */
struct cz_balancer {
	struct cz_balance_env *env;
	unsigned next;
};

/*
 * The index in chans[0..n) of the channel to send a connection from
 * `peer` (plen bytes; 0: unknown) to, or -1 when none should get it now
 * (no credit anywhere, or sticky: its slot is busy): the caller keeps it
 * for later.  Only a channel with credit is ever picked.
 */
int cz_balance_pick(struct cz_balancer *b, struct cz_balance_chan *const *chans,
	unsigned n, const struct sockaddr_storage *peer, socklen_t plen);

/*
 * sticky: the client's 64-bit hash (keyed; IPv4-mapped IPv6 as IPv4).
 * Returns false for a peer without an IP address.
 */
bool cz_balance_client_hash(const struct cz_balance_env *env,
	const struct sockaddr_storage *peer, socklen_t plen, uint64_t *out);

/* sticky: the weight of `slot` for a client hash: the highest wins. */
uint64_t cz_balance_weight(uint64_t client, int slot);

/* SipHash-1-3 of `len` bytes with `key` (exposed for tests). */
uint64_t cz_balance_siphash(const uint64_t key[2], const void *data, size_t len);

#endif
