#include "sockopt.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "sock.h"
#include "syms.h"

struct optdesc {
	int level;
	int name;
	size_t off;
	int inet;    /* only on AF_INET/AF_INET6 */
	int stream;  /* only on SOCK_STREAM */
	int halve;   /* the kernel doubles what was set */
};

#define OPT(l, n, f, i, s, h) { l, n, offsetof(struct cz_sockopts, f), i, s, h }
static const struct optdesc optlist[] = {
	OPT(SOL_SOCKET, SO_REUSEADDR, reuseaddr, 0, 0, 0),
	OPT(IPPROTO_IPV6, IPV6_V6ONLY, v6only, 1, 0, 0),
	OPT(SOL_SOCKET, SO_RCVBUF, rcvbuf, 0, 0, 1),
	OPT(SOL_SOCKET, SO_SNDBUF, sndbuf, 0, 0, 1),
	OPT(IPPROTO_TCP, TCP_NODELAY, nodelay, 1, 1, 0),
	OPT(SOL_SOCKET, SO_KEEPALIVE, keepalive, 0, 0, 0),
	OPT(IPPROTO_TCP, TCP_DEFER_ACCEPT, defer_accept, 1, 1, 0),
	OPT(IPPROTO_IP, IP_FREEBIND, freebind, 1, 0, 0),
};

static int opt_applies(const struct optdesc *d, int family, int type)
{
	if (d->inet && family == AF_UNIX) {
		return 0;
	}
	if (d->level == IPPROTO_IPV6 && family != AF_INET6) {
		return 0;
	}
	return !d->stream || type == SOCK_STREAM;
}

/*
 * The options the app changed from a fresh socket's defaults; the rest stay
 * CZ_OPT_UNSET so the primary leaves its own defaults alone.
 */
void cz_sockopt_read(int fd, int family, int type, int protocol,
	struct cz_sockopts *o)
{
	int fresh = socket(family, type | SOCK_CLOEXEC, protocol);
	size_t i;

	for (i = 0; i < sizeof(optlist) / sizeof(optlist[0]); i++) {
		const struct optdesc *d = &optlist[i];
		int32_t *slot = (int32_t *)((char *)o + d->off);
		int v, def;

		*slot = CZ_OPT_UNSET;
		if (!opt_applies(d, family, type) ||
		    cz_getsockopt_int(fd, d->level, d->name, &v) < 0) {
			continue;
		}
		if (fresh >= 0 &&
		    cz_getsockopt_int(fresh, d->level, d->name, &def) == 0 &&
		    def == v) {
			continue;
		}
		*slot = d->halve ? v / 2 : v;
	}
	if (fresh >= 0) {
		real_close(fresh);
	}
}

/* Options whose value is not an int: the channel answers for itself. */
static int channel_native(int level, int name)
{
	return level == SOL_SOCKET && (name == SO_RCVTIMEO ||
		name == SO_SNDTIMEO || name == SO_LINGER);
}

int cz_sockopt_recorded(const struct cz_fdrec *rec, int level, int name, int *v)
{
	size_t i;

	for (i = 0; i < CZ_FD_NOPTS; i++) {
		if (rec->rec[i].level == level && rec->rec[i].name == name &&
		    (level | name) != 0) {
			*v = rec->rec[i].value;
			return 1;
		}
	}
	for (i = 0; i < sizeof(optlist) / sizeof(optlist[0]); i++) {
		const struct optdesc *d = &optlist[i];
		int32_t s = *(const int32_t *)((const char *)&rec->opts + d->off);

		if (d->level == level && d->name == name && s != CZ_OPT_UNSET) {
			*v = d->halve ? s * 2 : s;
			return 1;
		}
	}
	return 0;
}

/* What a TCP (or unix stream) listener would answer. */
static int rr_optval(int fd, const struct cz_fdrec *rec, int level, int name)
{
	int v = 0;

	if (level == SOL_SOCKET) {
		switch (name) {
		case SO_ACCEPTCONN:
			return 1;
		case SO_TYPE:
			return SOCK_STREAM;
		case SO_DOMAIN:
			return rec->family;
		case SO_PROTOCOL:
			return rec->family == AF_UNIX ? 0 : IPPROTO_TCP;
		case SO_ERROR:
			return 0;
		default:
			break;
		}
	}
	if (cz_sockopt_recorded(rec, level, name, &v)) {
		return v;
	}
	if (level == SOL_SOCKET && (name == SO_RCVBUF || name == SO_SNDBUF)) {
		cz_getsockopt_int(fd, level, name, &v);
	}
	return v;
}

int shim_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	struct cz_fdrec *rec = cz_fdtab_get(fd);
	int v;

	if (rec == NULL || rec->state != CZ_FD_RR || channel_native(level, name)) {
		if (rec != NULL && rec->state == CZ_FD_INTERNAL) {
			return -EBADF;
		}
		return real_getsockopt(fd, level, name, val, len);
	}
	if (val == NULL || len == NULL) {
		return -EFAULT;
	}
	if (*len < sizeof(int)) {
		return -EINVAL;
	}
	v = rr_optval(fd, rec, level, name);
	memcpy(val, &v, sizeof(v));
	*len = sizeof(v);
	return 0;
}

static void record_opt(struct cz_fdrec *rec, int level, int name, int v)
{
	size_t i, free_slot = CZ_FD_NOPTS;

	cz_fdtab_lock();
	for (i = 0; i < CZ_FD_NOPTS; i++) {
		if (rec->rec[i].level == level && rec->rec[i].name == name) {
			break;
		}
		if (free_slot == CZ_FD_NOPTS && rec->rec[i].level == 0 &&
		    rec->rec[i].name == 0) {
			free_slot = i;
		}
	}
	if (i == CZ_FD_NOPTS) {
		i = free_slot;
	}
	if (i < CZ_FD_NOPTS) {
		rec->rec[i].level = level;
		rec->rec[i].name = name;
		rec->rec[i].value = v;
	}
	cz_fdtab_unlock();
}

int shim_setsockopt(int fd, int level, int name, const void *val,
	socklen_t len)
{
	struct cz_fdrec *rec = cz_fdtab_get(fd);
	int v;

	if (rec == NULL || rec->state != CZ_FD_RR || channel_native(level, name)) {
		if (rec != NULL && rec->state == CZ_FD_INTERNAL) {
			return -EBADF;
		}
		return real_setsockopt(fd, level, name, val, len);
	}
	/* The listener is the primary's: remember the value, accept it. */
	if (val != NULL && len >= sizeof(int)) {
		memcpy(&v, val, sizeof(v));
		record_opt(rec, level, name, v);
	}
	return 0;
}
