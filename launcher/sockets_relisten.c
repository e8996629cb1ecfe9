/*
 * Re-creating a listening socket that broke for good (sockets.h,
 * cz_sockets_relisten).  A worker that holds the real socket (none, or a
 * key shared in rr, or the service manager's copy of an adopted one) can
 * shut it down for everyone.  A TCP listener that was shut down is an
 * unconnected socket again, so bind() (for a port the kernel chose) and
 * listen() bring it back for every process that holds it.  If that fails, a new socket is bound beside the
 * dead one: SO_REUSEADDR on both (and on the listener before, so that its
 * connections' TIME_WAITs allow it, see cz_sockets_listen) lets Linux bind
 * it while the old one no longer listens.
 */
#include "sockets.h"

#include "addr.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define MERGE(f) do { if (o->f != CZ_OPT_UNSET) to->f = o->f; } while (0)

void cz_sockets_merge_opts(struct cz_sockopts *to, const struct cz_sockopts *o)
{
	MERGE(reuseaddr);
	MERGE(v6only);
	MERGE(rcvbuf);
	MERGE(sndbuf);
	MERGE(nodelay);
	MERGE(keepalive);
	MERGE(defer_accept);
	MERGE(freebind);
}

static int fresh_socket(const struct cz_key *k)
{
	const int one = 1;
	int fd = socket(k->family, k->type | SOCK_CLOEXEC, k->protocol);

	if (fd < 0) {
		return -errno;
	}
	cz_sockets_apply_opts(fd, k->family, k->type, &k->opts);
	if (k->family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &k->v6only,
			sizeof(k->v6only));
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(k->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (const void *)&k->bound, k->bound_len) < 0 ||
	    listen(fd, k->listen_seen ? k->backlog : SOMAXCONN) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/*
 * listen() again on the key's own socket.  A listener whose port the
 * kernel chose (port 0) lost it at the shutdown: bind it there again
 * first (a socket still bound says EINVAL).  Anything else than the old
 * address listening is undone.
 */
static bool listen_again(const struct cz_key *k)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss), vlen = sizeof(int);
	int v = 0;

	if (bind(k->fd, (const void *)&k->bound, k->bound_len) < 0 &&
	    errno != EINVAL) {
		return false;
	}
	if (listen(k->fd, k->listen_seen ? k->backlog : SOMAXCONN) < 0) {
		return false;
	}
	if (getsockopt(k->fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vlen) == 0 &&
	    v == 1 && getsockname(k->fd, (void *)&ss, &len) == 0 &&
	    cz_addr_equal((const void *)&ss, len, (const void *)&k->bound,
		    k->bound_len)) {
		return true;
	}
	shutdown(k->fd, SHUT_RDWR);
	return false;
}

int cz_sockets_relisten(struct cz_key *k, int (*install)(void *, int),
	void *data)
{
	int fd;

	if ((k->family != AF_INET && k->family != AF_INET6) ||
	    k->type != SOCK_STREAM || !k->listening) {
		return -EOPNOTSUPP;
	}
	if (listen_again(k)) {
		return 0;
	}
	fd = fresh_socket(k);
	if (fd < 0) {
		return fd;
	}
	if (install != NULL) {
		return install(data, fd);
	}
	if (dup3(fd, k->fd, O_CLOEXEC) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	close(fd);
	return 0;
}
