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
#include "log.h"

struct cz_sockets {
	struct cz_key *keys;
	uint32_t next_id;
	int bindv6only; /* the system's default IPV6_V6ONLY */
	cz_sockets_closing_fn *closing;
	void *data;
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
	s->bindv6only = read_bindv6only();
	s->closing = closing;
	s->data = data;
	*out = s;
	return 0;
}

static void key_close(struct cz_sockets *s, struct cz_key *k)
{
	struct cz_key **pp;

	for (pp = &s->keys; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	}
	if (s->closing != NULL) {
		s->closing(s->data, k);
	}
	if (k->unlink_path) {
		const struct sockaddr_un *sun = (const void *)&k->bound;

		unlink(sun->sun_path);
	}
	close(k->fd);
	free(k->holds);
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
	free(s);
}

struct cz_key *cz_sockets_find(struct cz_sockets *s, uint32_t id)
{
	struct cz_key *k;

	for (k = s->keys; k != NULL; k = k->next) {
		if (k->id == id) {
			return k;
		}
	}
	return NULL;
}

static struct cz_hold *hold_find(const struct cz_key *k, uint32_t worker_id)
{
	unsigned i;

	for (i = 0; i < k->nholds; i++) {
		if (k->holds[i].worker_id == worker_id) {
			return &k->holds[i];
		}
	}
	return NULL;
}

unsigned cz_sockets_holds(const struct cz_key *k, uint32_t worker_id)
{
	const struct cz_hold *h = hold_find(k, worker_id);

	return h != NULL ? h->holds : 0;
}

static int hold_add(struct cz_key *k, uint32_t worker_id)
{
	struct cz_hold *h = hold_find(k, worker_id);

	if (h == NULL) {
		if (k->nholds == k->holds_cap) {
			unsigned cap = k->holds_cap ? k->holds_cap * 2 : 4;
			void *p = realloc(k->holds, cap * sizeof(*k->holds));

			if (p == NULL) {
				return -ENOMEM;
			}
			k->holds = p;
			k->holds_cap = cap;
		}
		h = &k->holds[k->nholds++];
		*h = (struct cz_hold){ .worker_id = worker_id };
	}
	h->holds++;
	if (k->type == SOCK_DGRAM) {
		h->listens++;
	}
	return 0;
}

/* Removes hold entries that reached zero; returns the total left. */
static unsigned holds_compact(struct cz_key *k)
{
	unsigned i = 0, total = 0;

	while (i < k->nholds) {
		if (k->holds[i].holds == 0) {
			k->holds[i] = k->holds[--k->nholds];
			continue;
		}
		total += k->holds[i].holds;
		i++;
	}
	return total;
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

static struct cz_key *key_lookup(struct cz_sockets *s,
	const struct cz_msg_bind *m, int v6only, unsigned ordinal)
{
	struct cz_key *k;

	for (k = s->keys; k != NULL; k = k->next) {
		if (k->family == m->family && k->type == m->type &&
		    k->v6only == v6only && k->ordinal == ordinal &&
		    cz_addr_equal((const void *)&k->req, k->req_len,
			    (const void *)&m->addr.ss, m->addr.len)) {
			return k;
		}
	}
	return NULL;
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

/* Creates and binds the primary's socket for a new key. */
static int key_open(struct cz_key *k, const struct cz_msg_bind *m)
{
	int fd = socket(m->family, m->type | SOCK_CLOEXEC, m->protocol);

	if (fd < 0) {
		return -errno;
	}
	cz_sockets_apply_opts(fd, m->family, m->type, &m->opts);
	if (m->family == AF_INET6 && m->opts.v6only == CZ_OPT_UNSET) {
		/* Pin the default we keyed on. */
		setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, k->v6only);
	}
	if (bind(fd, (const void *)&m->addr.ss, m->addr.len) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	k->bound_len = sizeof(k->bound);
	if (getsockname(fd, (void *)&k->bound, &k->bound_len) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	k->fd = fd;
	k->unlink_path = m->family == AF_UNIX &&
			 k->bound_len > offsetof(struct sockaddr_un, sun_path) &&
			 ((const struct sockaddr_un *)(const void *)&k->bound)->sun_path[0] != '\0';
	return 0;
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
	err = key_open(k, m);
	if (err < 0) {
		free(k);
		return err;
	}
	k->id = s->next_id++;
	if (s->next_id == 0) {
		s->next_id = 1;
	}
	k->next = s->keys;
	s->keys = k;
	*out = k;
	return 0;
}

int cz_sockets_bind(struct cz_sockets *s, uint32_t worker_id,
	const struct cz_msg_bind *m, struct cz_key **out)
{
	int v6only = effective_v6only(s, m);
	bool wild = addr_is_wild(&m->addr);
	unsigned ordinal = 0;
	struct cz_key *k;
	int err;

	for (;;) {
		k = key_lookup(s, m, v6only, ordinal);
		if (k == NULL || !wild || cz_sockets_holds(k, worker_id) == 0) {
			break;
		}
		ordinal++;
	}
	if (k == NULL) {
		err = key_create(s, m, v6only, ordinal, &k);
		if (err < 0) {
			return err;
		}
	}
	err = hold_add(k, worker_id);
	if (err < 0) {
		if (k->nholds == 0 && !k->listening) {
			key_close(s, k);
		}
		return err;
	}
	*out = k;
	return 0;
}

int cz_sockets_listen(struct cz_key *k, uint32_t worker_id, int backlog,
	bool nonblock, const struct cz_sockopts *opts)
{
	struct cz_hold *h = hold_find(k, worker_id);

	if (h == NULL || h->holds == 0) {
		return -EBADF;
	}
	if (k->type != SOCK_STREAM) {
		return -EOPNOTSUPP;
	}
	if (!k->listening) {
		cz_sockets_apply_opts(k->fd, k->family, k->type, opts);
		if (listen(k->fd, backlog) < 0) {
			return -errno;
		}
		k->listening = true;
		k->backlog = backlog;
		k->nonblock = nonblock;
	}
	if (h->listens < h->holds) {
		h->listens++;
	}
	return 0;
}

int cz_sockets_release(struct cz_sockets *s, struct cz_key *k,
	uint32_t worker_id, bool listened)
{
	struct cz_hold *h = hold_find(k, worker_id);

	if (h == NULL || h->holds == 0) {
		return -ENOENT;
	}
	h->holds--;
	if ((listened || h->listens > h->holds) && h->listens > 0) {
		h->listens--;
	}
	if (holds_compact(k) > 0) {
		return 0;
	}
	key_close(s, k);
	return 1;
}

void cz_sockets_worker_exited(struct cz_sockets *s, uint32_t worker_id)
{
	struct cz_key *k = s->keys, *next;
	struct cz_hold *h;

	for (; k != NULL; k = next) {
		next = k->next;
		h = hold_find(k, worker_id);
		if (h == NULL) {
			continue;
		}
		h->holds = 0;
		if (holds_compact(k) == 0 && !k->listening) {
			key_close(s, k);
		}
	}
}

unsigned cz_sockets_listen_count(const struct cz_sockets *s,
	uint32_t worker_id)
{
	const struct cz_key *k;
	const struct cz_hold *h;
	unsigned n = 0;

	for (k = s->keys; k != NULL; k = k->next) {
		h = hold_find(k, worker_id);
		if (h != NULL) {
			n += h->listens;
		}
	}
	return n;
}
