/*
 * Socket addresses for people and for comparison.
 */
#ifndef CZ_LAUNCHER_ADDR_H
#define CZ_LAUNCHER_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Room for the longest string cz_addr_format() writes (an escaped path). */
#define CZ_ADDR_STRLEN 448

/*
 * Formats `sa` (`len` bytes, as getsockname() returned it) into `buf`:
 * "127.0.0.1:8000", "[::1]:8000", "unix /run/app.sock", "unix @abstract",
 * "unix (unnamed)".  Datagram sockets (`type` SOCK_DGRAM) get a "udp "
 * prefix for inet and "unixgram " instead of "unix " for unix.  Unix paths
 * and names are escaped (cz_escape): a worker chose them.  Returns buf.
 */
const char *cz_addr_format(const struct sockaddr *sa, socklen_t len, int type,
	char *buf, size_t size);

/* The port of an inet address (host order), or -1 for other families. */
int cz_addr_port(const struct sockaddr *sa, socklen_t len);

/*
 * Whether two addresses name the same local endpoint: family, address,
 * port (and scope id for IPv6); for unix the path (or abstract name).
 * Fields the kernel ignores on bind (sin_zero, flowinfo) do not count.
 */
bool cz_addr_equal(const struct sockaddr *a, socklen_t alen,
	const struct sockaddr *b, socklen_t blen);

/*
 * Parses "host:port", "[v6]:port" or "/path" into `ss`; for tests and
 * tools.  Returns the address length, or -EINVAL.
 */
int cz_addr_parse(const char *s, struct sockaddr_storage *ss);

#endif
