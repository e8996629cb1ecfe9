#include "sockets.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"
#include "escape.h"
#include "log.h"
#include "sockets_index.h"

/* An --allow-bind entry. */
struct allow {
	bool any_host;
	int port;
	struct sockaddr_storage ss;
	socklen_t len;
};

/* Binds for workers that run as another user (cz_sockets_set_policy). */
struct policy {
	bool set;
	uid_t uid;
	int port_start;
	struct allow *allow;
	unsigned n;
};

struct cz_sockets {
	struct cz_key *keys, *last; /* in the order they were made */
	struct cz_sidx idx;
	uint32_t next_id;
	int bindv6only; /* the system's default IPV6_V6ONLY */
	cz_sockets_closing_fn *closing;
	void *data;
	struct policy policy;
	const struct cz_spawn_ids *ids; /* the workers'; NULL: ours */
};

static int read_bindv6only(void)
{
	FILE *f = fopen("/proc/sys/net/ipv6/bindv6only", "re");
	int v = 0;

	if (f != NULL) {
		if (fscanf(f, "%d", &v) != 1) {
			v = 0;
		}
		fclose(f);
	}
	return v != 0;
}

int cz_sockets_create(cz_sockets_closing_fn *closing, void *data,
	struct cz_sockets **out)
{
	struct cz_sockets *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		return -ENOMEM;
	}
	s->next_id = 1;
	cz_sidx_init(&s->idx);
	s->bindv6only = read_bindv6only();
	s->closing = closing;
	s->data = data;
	*out = s;
	return 0;
}

static void key_close(struct cz_sockets *s, struct cz_key *k)
{
	*(k->prev != NULL ? &k->prev->next : &s->keys) = k->next;
	*(k->next != NULL ? &k->next->prev : &s->last) = k->prev;
	cz_sidx_remove(&s->idx, k);
	if (s->closing != NULL) {
		s->closing(s->data, k);
	}
	if (k->file.dirfd >= 0) {
		int err = cz_unixsock_remove(&k->file, s->ids);

		if (err < 0) {
			char name[4 * sizeof(k->file.base)];

			cz_escape_str(name, sizeof(name), k->file.base);
			cz_log(CZ_LOG_DEBUG, "socket file %s left in place: %s",
				name, strerror(-err));
		}
	}
	close(k->fd);
	free(k);
}

void cz_sockets_destroy(struct cz_sockets *s)
{
	if (s == NULL) {
		return;
	}
	while (s->keys != NULL) {
		key_close(s, s->keys);
	}
	cz_sidx_free(&s->idx);
	free(s->policy.allow);
	free(s);
}

struct cz_key *cz_sockets_find(struct cz_sockets *s, uint32_t id)
{
	return cz_sidx_find(&s->idx, id);
}

unsigned cz_sockets_holds(const struct cz_key *k, uint32_t worker_id)
{
	const struct cz_hold *h = cz_sidx_hold(k, worker_id);

	return h != NULL ? h->holds : 0;
}

/* Port 0 (or an autobound unix socket): the kernel picks the address. */
static bool addr_is_wild(const struct cz_addr *a)
{
	const struct sockaddr *sa = (const void *)&a->ss;

	if (sa->sa_family == AF_UNIX) {
		return a->len <= sizeof(sa_family_t);
	}
	return cz_addr_port(sa, a->len) == 0;
}

static int effective_v6only(const struct cz_sockets *s,
	const struct cz_msg_bind *m)
{
	if (m->family != AF_INET6) {
		return 0;
	}
	if (m->opts.v6only != CZ_OPT_UNSET) {
		return m->opts.v6only != 0;
	}
	return s->bindv6only;
}

/*
 * The key a BIND maps to: an adopted socket of that address, whatever
 * v6only says; else the key of (address, v6only) and, for port 0, of the
 * worker's next ordinal.
 */
static struct cz_key *key_lookup(struct cz_sockets *s, uint32_t worker_id,
	const struct cz_msg_bind *m, int v6only, unsigned *ordinal)
{
	struct cz_key *k = NULL;

	*ordinal = 0;
	if (!addr_is_wild(&m->addr)) {
		k = cz_sidx_lookup(&s->idx, m->family, m->type, &m->addr, -1, 0);
	} else {
		*ordinal = cz_sidx_next_ordinal(&s->idx, worker_id, m->family,
			m->type, &m->addr, v6only);
	}
	if (k == NULL) {
		k = cz_sidx_lookup(&s->idx, m->family, m->type, &m->addr, v6only,
			*ordinal);
	}
	return k;
}

static int setopt(int fd, int level, int name, int32_t v)
{
	int iv = v;

	if (v == CZ_OPT_UNSET) {
		return 0;
	}
	if (setsockopt(fd, level, name, &iv, sizeof(iv)) < 0) {
		cz_log(CZ_LOG_DEBUG, "setsockopt %d/%d=%d: %s", level, name,
			iv, strerror(errno));
		return -errno;
	}
	return 0;
}

void cz_sockets_apply_opts(int fd, int family, int type,
	const struct cz_sockopts *o)
{
	bool inet = family == AF_INET || family == AF_INET6;

	setopt(fd, SOL_SOCKET, SO_REUSEADDR, o->reuseaddr);
	setopt(fd, SOL_SOCKET, SO_RCVBUF, o->rcvbuf);
	setopt(fd, SOL_SOCKET, SO_SNDBUF, o->sndbuf);
	if (family == AF_INET6) {
		setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, o->v6only);
	}
	if (inet) {
		setopt(fd, IPPROTO_IP, IP_FREEBIND, o->freebind);
	}
	if (inet && type == SOCK_STREAM) {
		setopt(fd, SOL_SOCKET, SO_KEEPALIVE, o->keepalive);
		setopt(fd, IPPROTO_TCP, TCP_NODELAY, o->nodelay);
		setopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, o->defer_accept);
	}
}

static int policy_check(const struct cz_sockets *s, uint32_t worker_id,
	const struct cz_msg_bind *m);

/* Creates and binds the primary's socket for a new key. */
static int key_open(const struct cz_sockets *s, struct cz_key *k,
	const struct cz_msg_bind *m)
{
	int fd = socket(m->family, m->type | SOCK_CLOEXEC, m->protocol);
	int err;

	k->file.dirfd = -1;
	if (fd < 0) {
		return -errno;
	}
	cz_sockets_apply_opts(fd, m->family, m->type, &m->opts);
	if (m->family == AF_INET6 && m->opts.v6only == CZ_OPT_UNSET) {
		/* Pin the default we keyed on. */
		setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, k->v6only);
	}
	err = cz_unixsock_is_path((const void *)&m->addr.ss, m->addr.len) ?
		cz_unixsock_bind(fd, (const void *)&m->addr.ss, m->addr.len,
			s->ids, &k->file) :
		bind(fd, (const void *)&m->addr.ss, m->addr.len) < 0 ? -errno : 0;
	k->bound_len = sizeof(k->bound);
	if (err == 0 && getsockname(fd, (void *)&k->bound, &k->bound_len) < 0) {
		err = -errno;
	}
	if (err < 0) {
		if (k->file.dirfd >= 0) {
			cz_unixsock_remove(&k->file, s->ids);
		}
		close(fd);
		return err;
	}
	k->fd = fd;
	return 0;
}

/*
 * SO_REUSEADDR once the socket listens: the app's bind() has had the
 * kernel's answer already, and the connections accepted from now on leave
 * TIME_WAITs that let the primary make the socket again on the same
 * address if someone shuts it down (cz_sockets_relisten).
 */
static void reuse_after_listen(int fd)
{
	const int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
}

/* Appends `k` (keys stay in the order they were made) with a new id. */
static int key_insert(struct cz_sockets *s, struct cz_key *k)
{
	k->next = NULL;
	k->prev = s->last;
	*(s->last != NULL ? &s->last->next : &s->keys) = k;
	s->last = k;
	do {
		k->id = s->next_id++;
	} while (k->id == 0 || cz_sidx_find(&s->idx, k->id) != NULL);
	return cz_sidx_add(&s->idx, k);
}

static int key_create(struct cz_sockets *s, const struct cz_msg_bind *m,
	int v6only, unsigned ordinal, struct cz_key **out)
{
	struct cz_key *k = calloc(1, sizeof(*k));
	int err;

	if (k == NULL) {
		return -ENOMEM;
	}
	k->family = m->family;
	k->type = m->type;
	k->protocol = m->protocol;
	k->v6only = v6only;
	k->ordinal = ordinal;
	memcpy(&k->req, &m->addr.ss, m->addr.len);
	k->req_len = m->addr.len;
	k->opts = m->opts;
	err = key_open(s, k, m);
	if (err < 0) {
		free(k);
		return err;
	}
	if (key_insert(s, k) < 0) {
		key_close(s, k);
		return -ENOMEM;
	}
	*out = k;
	return 0;
}

int cz_sockets_bind(struct cz_sockets *s, uint32_t worker_id,
	const struct cz_msg_bind *m, struct cz_key **out)
{
	int v6only = effective_v6only(s, m);
	unsigned ordinal;
	struct cz_key *k = key_lookup(s, worker_id, m, v6only, &ordinal);
	int err;

	if ((k == NULL || cz_sidx_hold(k, worker_id) == NULL) &&
	    cz_sidx_keys(&s->idx, worker_id) >= CZ_SOCKETS_MAX_KEYS) {
		return -EMFILE;
	}
	if (k == NULL) {
		err = policy_check(s, worker_id, m);
		if (err == 0) {
			err = key_create(s, m, v6only, ordinal, &k);
		}
		if (err < 0) {
			return err;
		}
	}
	err = cz_sidx_hold_add(&s->idx, k, worker_id);
	if (err < 0) {
		if (k->holds == NULL && !k->listening && !k->adopted) {
			key_close(s, k);
		}
		return err;
	}
	*out = k;
	return 0;
}

int cz_sockets_listen(struct cz_sockets *s, struct cz_key *k,
	uint32_t worker_id, int backlog, bool nonblock,
	const struct cz_sockopts *opts)
{
	struct cz_hold *h = cz_sidx_hold(k, worker_id);

	if (h == NULL || h->holds == 0) {
		return -EBADF;
	}
	if (k->type != SOCK_STREAM) {
		return -EOPNOTSUPP;
	}
	/* An adopted socket may listen already: leave it as it was set up. */
	if (!k->listening) {
		cz_sockets_apply_opts(k->fd, k->family, k->type, opts);
		if (listen(k->fd, backlog) < 0) {
			return -errno;
		}
		k->listening = true;
		cz_sockets_merge_opts(&k->opts, opts);
		reuse_after_listen(k->fd);
	}
	if (!k->listen_seen) {
		k->listen_seen = true;
		k->backlog = backlog;
		k->nonblock = nonblock;
	}
	if (h->listens < h->holds) {
		cz_sidx_hold_set(&s->idx, h, h->holds, h->listens + 1);
	}
	return 0;
}

int cz_sockets_release(struct cz_sockets *s, struct cz_key *k,
	uint32_t worker_id, bool listened)
{
	struct cz_hold *h = cz_sidx_hold(k, worker_id);
	unsigned listens;

	if (h == NULL || h->holds == 0) {
		return -ENOENT;
	}
	listens = h->listens;
	if ((listened || listens >= h->holds) && listens > 0) {
		listens--;
	}
	cz_sidx_hold_set(&s->idx, h, h->holds - 1, listens);
	if (k->holds != NULL || k->adopted) {
		return 0;
	}
	key_close(s, k);
	return 1;
}

/* Nobody holds `k` any more: close it, or keep it open if it listens. */
static void key_unheld(struct cz_sockets *s, struct cz_key *k)
{
	if (k->holds != NULL || k->adopted) {
		return;
	}
	if (!k->listening) {
		key_close(s, k);
		return;
	}
	cz_sidx_orphan_add(&s->idx, k);
	while (s->idx.norphans > CZ_SOCKETS_MAX_ORPHANS) {
		cz_log(CZ_LOG_DEBUG, "key %u: closing the oldest unused "
			"listening socket (more than %u)", s->idx.orphans->id,
			CZ_SOCKETS_MAX_ORPHANS);
		key_close(s, s->idx.orphans);
	}
}

void cz_sockets_abandon(struct cz_sockets *s, struct cz_key *k,
	uint32_t worker_id, unsigned holds, unsigned listens)
{
	struct cz_hold *h = cz_sidx_hold(k, worker_id);

	if (h == NULL) {
		return;
	}
	holds = holds < h->holds ? h->holds - holds : 0;
	listens = listens < h->listens ? h->listens - listens : 0;
	cz_sidx_hold_set(&s->idx, h, holds, listens);
	key_unheld(s, k);
}

void cz_sockets_worker_exited(struct cz_sockets *s, uint32_t worker_id)
{
	struct cz_hold *h;

	while ((h = cz_sidx_holds(&s->idx, worker_id)) != NULL) {
		cz_sockets_abandon(s, h->key, worker_id, h->holds, h->listens);
	}
}

unsigned cz_sockets_listen_count(const struct cz_sockets *s,
	uint32_t worker_id)
{
	return cz_sidx_listens(&s->idx, worker_id);
}

unsigned cz_sockets_key_count(const struct cz_sockets *s, uint32_t worker_id)
{
	return cz_sidx_keys(&s->idx, worker_id);
}

void cz_sockets_each(struct cz_sockets *s, void (*fn)(void *, struct cz_key *),
	void *data)
{
	struct cz_key *k, *next;

	for (k = s->keys; k != NULL; k = next) {
		next = k->next;
		fn(data, k);
	}
}

unsigned cz_sockets_orphans(const struct cz_sockets *s)
{
	return s->idx.norphans;
}

unsigned long cz_sockets_probes(const struct cz_sockets *s)
{
	return s->idx.probes;
}

bool cz_sockets_worker_covers(const struct cz_sockets *s, uint32_t new_id,
	uint32_t old_id)
{
	const struct cz_hold *h, *n;

	for (h = cz_sidx_holds(&s->idx, old_id); h != NULL; h = h->wnext) {
		if (h->listens == 0) {
			continue;
		}
		n = cz_sidx_hold(h->key, new_id);
		if (n == NULL || n->listens == 0) {
			return false;
		}
	}
	return true;
}

static int by_key_id(const void *a, const void *b)
{
	const struct cz_key *x = *(const struct cz_key *const *)a;
	const struct cz_key *y = *(const struct cz_key *const *)b;

	return x->id < y->id ? -1 : x->id > y->id;
}

size_t cz_sockets_worker_addrs(const struct cz_sockets *s, uint32_t worker_id,
	char *buf, size_t len)
{
	const struct cz_key *keys[CZ_SOCKETS_MAX_KEYS];
	const struct cz_hold *h;
	char a[CZ_ADDR_STRLEN];
	size_t used = 0, nk = 0, i;
	int n;

	if (len == 0) {
		return 0;
	}
	buf[0] = '\0';
	for (h = cz_sidx_holds(&s->idx, worker_id);
	     h != NULL && nk < CZ_SOCKETS_MAX_KEYS; h = h->wnext) {
		if (h->listens > 0) {
			keys[nk++] = h->key;
		}
	}
	/* In the order the keys were made (ids grow). */
	qsort(keys, nk, sizeof(keys[0]), by_key_id);
	for (i = 0; i < nk && used + 1 < len; i++) {
		cz_addr_format((const void *)&keys[i]->bound,
			keys[i]->bound_len, keys[i]->type, a, sizeof(a));
		n = snprintf(buf + used, len - used, "%s%s",
			used > 0 ? ", " : "", a);
		used = n < 0 ? used : used + (size_t)n;
	}
	return used < len ? used : len - 1;
}

/* --- adopted sockets (socket activation) ---------------------------------- */

static int sockopt_int(int fd, int level, int name, int *v)
{
	socklen_t len = sizeof(*v);

	return getsockopt(fd, level, name, v, &len) < 0 ? -errno : 0;
}

/* Family, type and protocol of `fd`; -EINVAL unless we can key on them. */
static int adopt_kind(int fd, struct cz_key *k)
{
	int err = sockopt_int(fd, SOL_SOCKET, SO_DOMAIN, &k->family);

	if (err == 0) {
		err = sockopt_int(fd, SOL_SOCKET, SO_TYPE, &k->type);
	}
	if (err == 0) {
		err = sockopt_int(fd, SOL_SOCKET, SO_PROTOCOL, &k->protocol);
	}
	if (err < 0) {
		return err;
	}
	if ((k->family != AF_INET && k->family != AF_INET6 &&
	     k->family != AF_UNIX) ||
	    (k->type != SOCK_STREAM && k->type != SOCK_DGRAM)) {
		return -EINVAL;
	}
	return 0;
}

/* The bound address of `fd`; -EINVAL if it is not bound. */
static int adopt_addr(int fd, struct cz_key *k)
{
	const struct sockaddr *sa = (const void *)&k->bound;

	k->bound_len = sizeof(k->bound);
	if (getsockname(fd, (void *)&k->bound, &k->bound_len) < 0) {
		return -errno;
	}
	if (k->family == AF_UNIX ?
		    k->bound_len <= offsetof(struct sockaddr_un, sun_path) :
		    cz_addr_port(sa, k->bound_len) <= 0) {
		return -EINVAL;
	}
	memcpy(&k->req, &k->bound, k->bound_len);
	k->req_len = k->bound_len;
	return 0;
}

int cz_sockets_adopt(struct cz_sockets *s, int fd)
{
	struct cz_key *k = calloc(1, sizeof(*k));
	int err, acceptconn = 0;

	if (k == NULL) {
		return -ENOMEM;
	}
	k->file.dirfd = -1; /* systemd's socket file: left to it */
	memset(&k->opts, 0xff, sizeof(k->opts)); /* CZ_OPT_UNSET: its own */
	err = adopt_kind(fd, k);
	if (err == 0) {
		err = adopt_addr(fd, k);
	}
	if (err == 0 && k->family == AF_INET6) {
		err = sockopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, &k->v6only);
	}
	if (err == 0 && k->type == SOCK_STREAM) {
		err = sockopt_int(fd, SOL_SOCKET, SO_ACCEPTCONN, &acceptconn);
	}
	if (err == 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		err = -errno;
	}
	if (err < 0) {
		free(k);
		return err;
	}
	k->fd = fd;
	k->adopted = true;
	k->listening = acceptconn != 0;
	if (k->listening) {
		reuse_after_listen(fd);
	}
	if (key_insert(s, k) < 0) {
		k->fd = -1; /* the caller's, still */
		key_close(s, k);
		return -ENOMEM;
	}
	return 0;
}

/* --- binds for workers of another user ------------------------------------ */

static int allow_parse(const char *str, struct allow *a)
{
	const char *colon = strrchr(str, ':');
	struct sockaddr_storage ss;
	char *end;
	long port;
	int n;

	if (colon == NULL) {
		return -EINVAL;
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || colon[1] == '\0' || *end != '\0' || port < 1 ||
	    port > 65535) {
		return -EINVAL;
	}
	a->port = (int)port;
	a->any_host = colon == str;
	if (a->any_host) {
		return 0;
	}
	n = cz_addr_parse(str, &ss);
	if (n < 0 || ss.ss_family == AF_UNIX) {
		return -EINVAL;
	}
	a->ss = ss;
	a->len = (socklen_t)n;
	return 0;
}

int cz_sockets_set_policy(struct cz_sockets *s, uid_t uid,
	const char *const *allow, unsigned n, int port_start)
{
	struct allow *list = calloc(n > 0 ? n : 1, sizeof(*list));
	unsigned i;

	if (list == NULL) {
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		if (allow_parse(allow[i], &list[i]) < 0) {
			cz_log(CZ_LOG_ERROR, "--allow-bind '%s': expected "
				"[HOST]:PORT, PORT 1-65535, HOST numeric (\":80\", "
				"\"0.0.0.0:80\", \"[::1]:443\")", allow[i]);
			free(list);
			return -EINVAL;
		}
	}
	free(s->policy.allow);
	s->policy = (struct policy){
		.set = true, .uid = uid, .port_start = port_start,
		.allow = list, .n = n,
	};
	return 0;
}

static bool allowed_port(const struct policy *p, const struct cz_msg_bind *m,
	int port)
{
	const struct allow *a;

	for (a = p->allow; a < p->allow + p->n; a++) {
		if (a->port == port &&
		    (a->any_host ||
		     cz_addr_equal((const void *)&a->ss, a->len,
			     (const void *)&m->addr.ss, m->addr.len))) {
			return true;
		}
	}
	return false;
}

/* What the workers' own user could bind; -EACCES (with a warning) if not. */
static int policy_check(const struct cz_sockets *s, uint32_t worker_id,
	const struct cz_msg_bind *m)
{
	const struct policy *p = &s->policy;
	char a[CZ_ADDR_STRLEN];
	int port;

	if (!p->set || (m->family != AF_INET && m->family != AF_INET6)) {
		return 0;
	}
	/* Port 0: the kernel picks an unprivileged port. */
	port = cz_addr_port((const void *)&m->addr.ss, m->addr.len);
	if (port <= 0 || port >= p->port_start || allowed_port(p, m, port)) {
		return 0;
	}
	cz_addr_format((const void *)&m->addr.ss, m->addr.len, m->type, a,
		sizeof(a));
	cz_log_peer(worker_id, CZ_LOG_WARN,
		"worker %u: bind %s denied: port %d is privileged "
		"and the workers run as uid %u (allow it with --allow-bind :%d)",
		worker_id, a, port, (unsigned)p->uid, port);
	return -EACCES;
}

void cz_sockets_set_worker_ids(struct cz_sockets *s,
	const struct cz_spawn_ids *ids)
{
	s->ids = ids;
}
