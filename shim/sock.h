/*
 * The socket-level logic behind the wrappers: bind and listen go through
 * the primary, accept on an rr channel receives a connection, and the calls
 * that ask a socket who it is answer for the socket the app thinks it has.
 * Every function returns the libc result or a negative errno.
 */
#ifndef CZ_SHIM_SOCK_H
#define CZ_SHIM_SOCK_H

#include <sys/socket.h>

#include "fdtab.h"

int shim_socket(int domain, int type, int protocol);
int shim_bind(int fd, const struct sockaddr *addr, socklen_t len);
int shim_listen(int fd, int backlog);
/* `plain`: the app called accept() (not accept4), flags must be 0. */
int shim_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags,
	int plain);
int shim_getsockname(int fd, struct sockaddr *addr, socklen_t *len);
int shim_getpeername(int fd, struct sockaddr *addr, socklen_t *len);
int shim_getsockopt(int fd, int level, int name, void *val, socklen_t *len);
int shim_setsockopt(int fd, int level, int name, const void *val,
	socklen_t len);
int shim_shutdown(int fd, int how);
int shim_connect(int fd, const struct sockaddr *addr, socklen_t len);
ssize_t shim_sendmsg(int fd, const struct msghdr *msg, int flags);
int shim_sendmmsg(int fd, struct mmsghdr *vec, unsigned n, int flags);

/*
 * The last fd of a tracked socket was closed (`last` is the record's final
 * state): give the hold back to the primary if this process took it.
 */
void cz_sock_release(const struct cz_fdrec *last);

#endif
