/*
 * The primary's registry of sockets bound on the workers' behalf.
 *
 * A key is what a worker asked for: family, type, address and port,
 * IPV6_V6ONLY as it applies, unix path; and, for port 0, an ordinal so that
 * every worker's k-th port-0 socket of a tuple maps to the same socket (and
 * so the same "random" port), as Node does.  Workers hold keys: one hold
 * per successful BIND, dropped by RELEASE or when the worker exits.
 *
 * No event loop here: the registry only makes syscalls on its own sockets,
 * so it is tested on its own.
 */
#ifndef CZ_LAUNCHER_SOCKETS_H
#define CZ_LAUNCHER_SOCKETS_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "htab.h"
#include "proto.h"
#include "spawn.h"
#include "unixsock.h"

/*
 * What one worker may hold at once, all its processes together: more
 * keys get EMFILE from bind() (each key is a socket of the primary's).
 * Listening keys that no worker holds any more stay open for the next
 * worker, up to CZ_SOCKETS_MAX_ORPHANS; past that the oldest is closed.
 */
#define CZ_SOCKETS_MAX_KEYS 256
#define CZ_SOCKETS_MAX_ORPHANS 256

struct cz_key;

/* A worker's holds on one key. */
struct cz_hold {
	uint32_t worker_id;
	unsigned holds;   /* successful BINDs not released */
	unsigned listens; /* of those, how many listen (or are datagram) */
	struct cz_key *key;
	struct cz_hold *next_in_key;
	struct cz_hold *wprev, *wnext; /* the worker's holds */
};

struct cz_key {
	uint32_t id;
	int family;
	int type;
	int protocol;
	int v6only;        /* effective; 0 unless AF_INET6 */
	unsigned ordinal;  /* port 0 only: the k-th such socket of a worker */
	struct sockaddr_storage req; /* as asked (the key) */
	socklen_t req_len;
	struct sockaddr_storage bound; /* getsockname() */
	socklen_t bound_len;
	int fd;
	bool listening;   /* listen() done (by us, or before adoption) */
	bool listen_seen; /* a LISTEN recorded backlog and nonblock */
	struct cz_unixsock file; /* a unix socket file we made (unixsock.h) */
	bool adopted;     /* inherited (socket activation): open until destroy */
	bool shared;      /* sent to a worker in rr: the primary never accepts
			   * on it; every LISTEN of it gets the socket */
	struct cz_sockopts opts; /* as applied (BIND's, then LISTEN's) */
	bool dead;        /* broke, and could not be made again */
	int backlog;      /* the first LISTEN's */
	bool nonblock;    /* the first LISTEN's */
	struct cz_hold *holds; /* one per worker holding it */
	void *data;       /* the owner's (the rr listener) */
	/* The registry's: creation order, orphans, and its two indexes. */
	struct cz_key *prev, *next;
	struct cz_key *oprev, *onext;
	bool orphan;
	struct cz_hnode by_id, by_addr;
};

struct cz_sockets;

/* Called just before a key's socket is closed, to detach `k->data`. */
typedef void cz_sockets_closing_fn(void *data, struct cz_key *k);

int cz_sockets_create(cz_sockets_closing_fn *closing, void *data,
	struct cz_sockets **out);

/* Closes every key's socket (unlinking socket files it created). */
void cz_sockets_destroy(struct cz_sockets *s);

/*
 * Worker `worker_id` binds `m->addr`: find or create the key and take a
 * hold on it.  A new key's socket is created with `m->opts` applied and
 * bound; if that fails nothing is kept (a retry binds afresh).
 * Returns 0 and *out, or a negative errno (the bind's; -EMFILE when the
 * worker holds CZ_SOCKETS_MAX_KEYS keys already).  Costs the same however
 * many keys exist: keys are found by hash, and a worker's next port-0
 * ordinal from a bitmap of those it holds.
 */
int cz_sockets_bind(struct cz_sockets *s, uint32_t worker_id,
	const struct cz_msg_bind *m, struct cz_key **out);

/* The key with id `id`, or NULL. */
struct cz_key *cz_sockets_find(struct cz_sockets *s, uint32_t id);

/* How many holds worker `worker_id` has on `k`. */
unsigned cz_sockets_holds(const struct cz_key *k, uint32_t worker_id);

/*
 * Worker `worker_id` listens on `k`: the first LISTEN applies `opts`,
 * calls listen(backlog) and records backlog and the app's `nonblock`.
 * Returns 0 or a negative errno (EOPNOTSUPP for datagram keys).
 */
int cz_sockets_listen(struct cz_sockets *s, struct cz_key *k,
	uint32_t worker_id, int backlog, bool nonblock,
	const struct cz_sockopts *opts);

/*
 * Drops one of worker `worker_id`'s holds on `k` (and one listen if
 * `listened`); closes the key when no hold is left.  Returns 1 if `k` was
 * closed (and freed), 0 if not, -ENOENT if the worker held none.
 */
int cz_sockets_release(struct cz_sockets *s, struct cz_key *k,
	uint32_t worker_id, bool listened);

/*
 * The process that took `holds` of worker `worker_id`'s holds on `k` (and
 * `listens` of its listens) is gone: drop them.  A key left without holds
 * is closed, unless it listens: then it waits, open, for the next worker
 * (an orphan, see CZ_SOCKETS_MAX_ORPHANS).
 */
void cz_sockets_abandon(struct cz_sockets *s, struct cz_key *k,
	uint32_t worker_id, unsigned holds, unsigned listens);

/* Abandons every hold of worker `worker_id`. */
void cz_sockets_worker_exited(struct cz_sockets *s, uint32_t worker_id);

/* The number of keys worker `worker_id` holds. */
unsigned cz_sockets_key_count(const struct cz_sockets *s, uint32_t worker_id);

/* Listening keys no worker holds, kept open for the next worker. */
unsigned cz_sockets_orphans(const struct cz_sockets *s);

/* Calls fn(data, k) for every key, in the order they were made (fn may
 * close the key it is given). */
void cz_sockets_each(struct cz_sockets *s, void (*fn)(void *, struct cz_key *),
	void *data);

/*
 * For tests: how many candidate records lookups have compared so far, to
 * show that a bind's cost does not grow with what came before.
 */
unsigned long cz_sockets_probes(const struct cz_sockets *s);

/* The number of listens (and datagram binds) worker `worker_id` holds. */
unsigned cz_sockets_listen_count(const struct cz_sockets *s,
	uint32_t worker_id);

/*
 * True when worker `new_id` listens on every key worker `old_id` listens on
 * (datagram binds count as listens).
 */
bool cz_sockets_worker_covers(const struct cz_sockets *s, uint32_t new_id,
	uint32_t old_id);

/*
 * Writes the bound addresses of the keys worker `worker_id` listens on, in
 * the order the keys were made, ", "-separated, into buf (always
 * terminated when len > 0).  Returns the length written.
 */
size_t cz_sockets_worker_addrs(const struct cz_sockets *s, uint32_t worker_id,
	char *buf, size_t len);

/*
 * Adopts the inherited socket `fd` (bound; maybe listening) as a key: a
 * BIND of its family, type and address gets it, whatever the IPV6_V6ONLY
 * asked, and it stays open, without holds, until cz_sockets_destroy().
 * Made close-on-exec.  Returns 0, -ENOTSOCK, -EINVAL (not a bound
 * AF_INET/AF_INET6/AF_UNIX stream or datagram socket) or -ENOMEM.
 */
int cz_sockets_adopt(struct cz_sockets *s, int fd);

/*
 * Workers run as `uid`: from now on an AF_INET/AF_INET6 bind to a port
 * below `port_start` (net.ipv4.ip_unprivileged_port_start) is denied with
 * -EACCES, and a warning, unless it matches one of the `n` entries of
 * `allow` ("[HOST]:PORT"; an empty HOST matches any address of either
 * family).  Returns 0, -EINVAL (an entry that does not parse; logged) or
 * -ENOMEM.
 */
int cz_sockets_set_policy(struct cz_sockets *s, uid_t uid,
	const char *const *allow, unsigned n, int port_start);

/*
 * Workers run as `ids` (kept; it must outlive `s`): unix socket files are
 * made and removed with their identity (unixsock.h).
 */
void cz_sockets_set_worker_ids(struct cz_sockets *s,
	const struct cz_spawn_ids *ids);

/* Applies every option of `o` that is not CZ_OPT_UNSET to socket `fd`. */
void cz_sockets_apply_opts(int fd, int family, int type,
	const struct cz_sockopts *o);

/* Sets in `to` every option of `o` that is not CZ_OPT_UNSET. */
void cz_sockets_merge_opts(struct cz_sockopts *to, const struct cz_sockopts *o);

/*
 * A listening socket broke for good (someone that held it shut it down):
 * makes a new one with the key's address, options and backlog and puts it
 * at k->fd's number (dup3), so everything that refers to the key by fd
 * goes on.  Inet stream keys only: -EOPNOTSUPP for others (a unix socket
 * file would have to be made again).  `install` (NULL: dup3 here) puts the
 * new fd in place, for a socket something polls.  0 or -errno.
 */
int cz_sockets_relisten(struct cz_key *k, int (*install)(void *, int),
	void *data);

#endif
