#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "escape.h"

#define SUN_OFF offsetof(struct sockaddr_un, sun_path)

/* A worker chose the path: escaped, so it cannot forge a log line. */
static const char *format_unix(const struct sockaddr_un *sun, socklen_t len,
	const char *pre, char *buf, size_t size)
{
	char path[CZ_ADDR_STRLEN];
	size_t n;

	if (len <= SUN_OFF) {
		snprintf(buf, size, "%s (unnamed)", pre);
		return buf;
	}
	n = len - SUN_OFF;
	if (n > sizeof(sun->sun_path)) {
		n = sizeof(sun->sun_path);
	}
	if (sun->sun_path[0] == '\0') {
		/* Abstract names may hold any byte; "@name", as ss shows them. */
		cz_escape(path, sizeof(path), sun->sun_path + 1, n - 1);
		snprintf(buf, size, "%s @%s", pre, path);
		return buf;
	}
	cz_escape(path, sizeof(path), sun->sun_path, strnlen(sun->sun_path, n));
	snprintf(buf, size, "%s %s", pre, path);
	return buf;
}

const char *cz_addr_format(const struct sockaddr *sa, socklen_t len, int type,
	char *buf, size_t size)
{
	const char *udp = type == SOCK_DGRAM ? "udp " : "";
	char host[INET6_ADDRSTRLEN];

	if (sa == NULL || len < sizeof(sa_family_t)) {
		snprintf(buf, size, "(no address)");
		return buf;
	}
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(buf, size, "%s%s:%u", udp, host, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6 &&
		   len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(buf, size, "%s[%s]:%u", udp, host,
			ntohs(in6->sin6_port));
	} else if (sa->sa_family == AF_UNIX) {
		return format_unix((const void *)sa, len,
			type == SOCK_DGRAM ? "unixgram" : "unix", buf, size);
	} else {
		snprintf(buf, size, "(family %d)", sa->sa_family);
	}
	return buf;
}

int cz_addr_port(const struct sockaddr *sa, socklen_t len)
{
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
	}
	return -1;
}

static bool unix_equal(const struct sockaddr_un *a, socklen_t alen,
	const struct sockaddr_un *b, socklen_t blen)
{
	size_t an = alen > SUN_OFF ? alen - SUN_OFF : 0;
	size_t bn = blen > SUN_OFF ? blen - SUN_OFF : 0;

	if (an == 0 || bn == 0) {
		return an == bn;
	}
	if (a->sun_path[0] == '\0' || b->sun_path[0] == '\0') {
		return an == bn && memcmp(a->sun_path, b->sun_path, an) == 0;
	}
	/* A path may or may not be counted with its NUL. */
	an = strnlen(a->sun_path, an);
	bn = strnlen(b->sun_path, bn);
	return an == bn && memcmp(a->sun_path, b->sun_path, an) == 0;
}

bool cz_addr_equal(const struct sockaddr *a, socklen_t alen,
	const struct sockaddr *b, socklen_t blen)
{
	if (alen < sizeof(sa_family_t) || blen < sizeof(sa_family_t) ||
	    a->sa_family != b->sa_family) {
		return false;
	}
	switch (a->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return alen >= sizeof(*x) && blen >= sizeof(*y) &&
		       x->sin_port == y->sin_port &&
		       x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return alen >= sizeof(*x) && blen >= sizeof(*y) &&
		       x->sin6_port == y->sin6_port &&
		       x->sin6_scope_id == y->sin6_scope_id &&
		       memcmp(&x->sin6_addr, &y->sin6_addr,
			       sizeof(x->sin6_addr)) == 0;
	}
	case AF_UNIX:
		return unix_equal((const void *)a, alen, (const void *)b, blen);
	default:
		return false;
	}
}

static int parse_port(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < 0 || v > 65535) {
		return -EINVAL;
	}
	return (int)v;
}

static int parse_inet(const char *s, struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	size_t hn;
	int port;

	if (colon == NULL || (hn = (size_t)(colon - s)) >= sizeof(host)) {
		return -EINVAL;
	}
	port = parse_port(colon + 1);
	memcpy(host, s, hn);
	host[hn] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (hn >= 2 && host[0] == '[' && host[hn - 1] == ']') {
		struct sockaddr_in6 *in6 = (void *)ss;

		host[hn - 1] = '\0';
		if (port < 0 || inet_pton(AF_INET6, host + 1, &in6->sin6_addr) != 1) {
			return -EINVAL;
		}
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		return sizeof(*in6);
	}
	struct sockaddr_in *in = (void *)ss;

	if (port < 0 || inet_pton(AF_INET, host, &in->sin_addr) != 1) {
		return -EINVAL;
	}
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)port);
	return sizeof(*in);
}

int cz_addr_parse(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_un *sun = (void *)ss;
	size_t n;

	if (s[0] != '/') {
		return parse_inet(s, ss);
	}
	n = strlen(s);
	if (n >= sizeof(sun->sun_path)) {
		return -EINVAL;
	}
	memset(ss, 0, sizeof(*ss));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, s, n + 1);
	return (int)(SUN_OFF + n + 1);
}
