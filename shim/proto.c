#include "proto.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

size_t cz_proto_size(unsigned type)
{
	switch (type) {
	case CZ_MSG_HELLO:
		return sizeof(struct cz_msg_hello);
	case CZ_MSG_BIND:
		return sizeof(struct cz_msg_bind);
	case CZ_MSG_LISTEN:
		return sizeof(struct cz_msg_listen);
	case CZ_MSG_RELEASE:
		return sizeof(struct cz_msg_release);
	case CZ_MSG_ATTACH:
		return sizeof(struct cz_msg_attach);
	case CZ_MSG_REPLY:
		return sizeof(struct cz_msg_reply);
	case CZ_MSG_CONN:
		return sizeof(struct cz_msg_conn);
	case CZ_MSG_NUDGE:
		return sizeof(struct cz_msg_nudge);
	case CZ_MSG_IDENT:
		return sizeof(struct cz_msg_ident);
	case CZ_MSG_NACK:
		return sizeof(struct cz_msg_nack);
	default:
		return 0;
	}
}

int cz_proto_init(struct cz_msg_hdr *hdr, enum cz_msg_type type, uint32_t seq)
{
	size_t n = cz_proto_size(type);

	if (n == 0) {
		return -EINVAL;
	}
	memset(hdr, 0, sizeof(*hdr));
	hdr->magic = CZ_PROTO_MAGIC;
	hdr->version = CZ_PROTO_VERSION;
	hdr->type = (uint8_t)type;
	hdr->len = (uint32_t)n;
	hdr->seq = seq;
	return 0;
}

/* An address is valid when its length fits and agrees with its family. */
static int addr_ok(const struct cz_addr *a, int allow_empty)
{
	sa_family_t fam;

	if (a->len == 0) {
		return allow_empty;
	}
	if (a->len < sizeof(sa_family_t) || a->len > sizeof(a->ss)) {
		return 0;
	}
	fam = a->ss.ss_family;
	switch (fam) {
	case AF_INET:
		return a->len >= sizeof(struct sockaddr_in);
	case AF_INET6:
		return a->len >= sizeof(struct sockaddr_in6);
	case AF_UNIX:
		return a->len <= sizeof(struct sockaddr_un);
	default:
		return 0;
	}
}

static int check_bind(const struct cz_msg_bind *m)
{
	if (m->family != AF_INET && m->family != AF_INET6 &&
	    m->family != AF_UNIX) {
		return 0;
	}
	if (m->type != SOCK_STREAM && m->type != SOCK_DGRAM) {
		return 0;
	}
	return addr_ok(&m->addr, 0) && m->addr.ss.ss_family == m->family;
}

static int check_body(const void *buf, unsigned type)
{
	switch (type) {
	case CZ_MSG_HELLO: {
		const struct cz_msg_hello *m = buf;

		return memchr(m->exe, '\0', sizeof(m->exe)) != NULL;
	}
	case CZ_MSG_BIND:
		return check_bind(buf);
	case CZ_MSG_LISTEN: {
		const struct cz_msg_listen *m = buf;

		return m->key != 0;
	}
	case CZ_MSG_REPLY: {
		const struct cz_msg_reply *m = buf;

		return m->err <= 0 && addr_ok(&m->bound, 1);
	}
	case CZ_MSG_CONN: {
		const struct cz_msg_conn *m = buf;

		return addr_ok(&m->peer, 1);
	}
	case CZ_MSG_IDENT: {
		const struct cz_msg_ident *m = buf;

		return addr_ok(&m->bound, 0) && m->bound.ss.ss_family == m->family;
	}
	default:
		return 1;
	}
}

int cz_proto_check(const void *buf, size_t n)
{
	struct cz_msg_hdr h;
	size_t want;

	if (buf == NULL || n < sizeof(h)) {
		return -EBADMSG;
	}
	memcpy(&h, buf, sizeof(h));
	if (h.magic != CZ_PROTO_MAGIC || h.version != CZ_PROTO_VERSION) {
		return -EPROTO;
	}
	want = cz_proto_size(h.type);
	if (want == 0 || h.len != want || n != want) {
		return -EBADMSG;
	}
	/* Callers receive into aligned buffers of CZ_MSG_MAX bytes. */
	if (!check_body(buf, h.type)) {
		return -EBADMSG;
	}
	return h.type;
}

int cz_proto_high_fd(unsigned long long nofile)
{
	if (nofile == 0 || nofile > 2048) {
		return 2000;
	}
	if (nofile > 64) {
		return (int)nofile - 16;
	}
	return nofile / 2 > 4 ? (int)(nofile / 2) : 4;
}
