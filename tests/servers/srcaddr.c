/*
 * libczsrcaddr.so: preloaded into a load generator (scripts/bench runs wrk
 * with it) so that its connections come from many clients: each connect()
 * of an IPv4 socket to 127.0.0.1 is made from the next of
 * $CZ_SRCADDR_COUNT loopback addresses (127.0.1.1, 127.0.1.2, ...; every
 * 127/8 address is the loopback's), as --balance sticky needs to spread
 * them.  Not for production: a bench tool.
 */
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>

typedef int connect_fn(int, const struct sockaddr *, socklen_t);

static unsigned next_addr;

int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	static connect_fn *real;
	const char *count = getenv("CZ_SRCADDR_COUNT");
	const struct sockaddr_in *to = (const struct sockaddr_in *)sa;
	unsigned n = count != NULL ? (unsigned)atoi(count) : 0;

	if (real == NULL) {
		real = (connect_fn *)dlsym(RTLD_NEXT, "connect");
	}
	if (n > 0 && n < 65000 && sa != NULL && sa->sa_family == AF_INET &&
	    len >= sizeof(*to) && to->sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
		unsigned k = __atomic_fetch_add(&next_addr, 1, __ATOMIC_RELAXED) % n;
		struct sockaddr_in from = { .sin_family = AF_INET };

		/* 127.0.1.1 ... : past .0 and .255 of each /24. */
		from.sin_addr.s_addr = htonl(0x7f000101u + k / 254 * 256 + k % 254);
		(void)bind(fd, (struct sockaddr *)&from, sizeof(from));
	}
	return real(fd, sa, len);
}
