#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "proto.h"

static struct cz_msg_bind make_bind(void)
{
	struct cz_msg_bind m;
	struct sockaddr_in *sin = (struct sockaddr_in *)&m.addr.ss;

	memset(&m, 0, sizeof(m));
	cr_assert_eq(cz_proto_init(&m.hdr, CZ_MSG_BIND, 7), 0);
	m.family = AF_INET;
	m.type = SOCK_STREAM;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(8000);
	m.addr.len = sizeof(*sin);
	return m;
}

Test(proto, init_sets_len_per_type)
{
	struct cz_msg_hdr h;

	cr_assert_eq(cz_proto_init(&h, CZ_MSG_LISTEN, 3), 0);
	cr_expect_eq(h.len, sizeof(struct cz_msg_listen));
	cr_expect_eq(h.seq, 3);
	cr_expect_eq(h.type, CZ_MSG_LISTEN);
	cr_expect_eq(cz_proto_init(&h, (enum cz_msg_type)99, 0), -EINVAL);
}

Test(proto, valid_bind_round_trips)
{
	struct cz_msg_bind m = make_bind();
	unsigned char buf[CZ_MSG_MAX];

	memcpy(buf, &m, sizeof(m));
	cr_assert_eq(cz_proto_check(buf, sizeof(m)), CZ_MSG_BIND);
}

Test(proto, rejects_short_and_long_buffers)
{
	struct cz_msg_bind m = make_bind();

	cr_expect_eq(cz_proto_check(&m, 0), -EBADMSG);
	cr_expect_eq(cz_proto_check(&m, sizeof(m.hdr) - 1), -EBADMSG);
	cr_expect_eq(cz_proto_check(&m, sizeof(m) - 1), -EBADMSG);
	cr_expect_eq(cz_proto_check(NULL, sizeof(m)), -EBADMSG);
}

Test(proto, rejects_bad_magic_version_type_len)
{
	struct cz_msg_bind m = make_bind();
	struct cz_msg_bind bad;

	bad = m;
	bad.hdr.magic ^= 1;
	cr_expect_eq(cz_proto_check(&bad, sizeof(bad)), -EPROTO);
	bad = m;
	bad.hdr.version = CZ_PROTO_VERSION + 1;
	cr_expect_eq(cz_proto_check(&bad, sizeof(bad)), -EPROTO);
	bad = m;
	bad.hdr.type = 200;
	cr_expect_eq(cz_proto_check(&bad, sizeof(bad)), -EBADMSG);
	bad = m;
	bad.hdr.len = sizeof(bad) + 8;
	cr_expect_eq(cz_proto_check(&bad, sizeof(bad)), -EBADMSG);
	/* A message of another type's size. */
	bad = m;
	bad.hdr.type = CZ_MSG_NUDGE;
	cr_expect_eq(cz_proto_check(&bad, sizeof(bad)), -EBADMSG);
}

Test(proto, rejects_bad_bind_fields)
{
	struct cz_msg_bind m = make_bind();
	struct cz_msg_bind bad;

	bad = m;
	bad.addr.len = sizeof(bad.addr.ss) + 1;
	cr_expect_eq(cz_proto_check(&bad, sizeof(bad)), -EBADMSG);
	bad = m;
	bad.addr.len = 4; /* shorter than a sockaddr_in */
	cr_expect_eq(cz_proto_check(&bad, sizeof(bad)), -EBADMSG);
	bad = m;
	bad.family = AF_PACKET;
	cr_expect_eq(cz_proto_check(&bad, sizeof(bad)), -EBADMSG);
	bad = m;
	bad.type = SOCK_RAW;
	cr_expect_eq(cz_proto_check(&bad, sizeof(bad)), -EBADMSG);
	bad = m;
	bad.family = AF_INET6; /* disagrees with the address */
	cr_expect_eq(cz_proto_check(&bad, sizeof(bad)), -EBADMSG);
}

Test(proto, hello_exe_must_be_terminated)
{
	struct cz_msg_hello h;

	memset(&h, 0, sizeof(h));
	cz_proto_init(&h.hdr, CZ_MSG_HELLO, 1);
	strcpy(h.exe, "/usr/bin/python3");
	cr_expect_eq(cz_proto_check(&h, sizeof(h)), CZ_MSG_HELLO);
	memset(h.exe, 'x', sizeof(h.exe));
	cr_expect_eq(cz_proto_check(&h, sizeof(h)), -EBADMSG);
}

Test(proto, reply_err_must_be_negative_or_zero)
{
	struct cz_msg_reply r;

	memset(&r, 0, sizeof(r));
	cz_proto_init(&r.hdr, CZ_MSG_REPLY, 1);
	r.err = -EADDRINUSE;
	cr_expect_eq(cz_proto_check(&r, sizeof(r)), CZ_MSG_REPLY);
	r.err = 5;
	cr_expect_eq(cz_proto_check(&r, sizeof(r)), -EBADMSG);
}

Test(proto, listen_needs_a_key)
{
	struct cz_msg_listen l;

	memset(&l, 0, sizeof(l));
	cz_proto_init(&l.hdr, CZ_MSG_LISTEN, 1);
	cr_expect_eq(cz_proto_check(&l, sizeof(l)), -EBADMSG);
	l.key = 1;
	cr_expect_eq(cz_proto_check(&l, sizeof(l)), CZ_MSG_LISTEN);
}

/* The primary must survive any bytes a worker sends. */
Test(proto, random_bytes_never_crash)
{
	unsigned char buf[CZ_MSG_MAX];
	unsigned seed = 12345;

	for (int i = 0; i < 20000; i++) {
		size_t n = (size_t)(rand_r(&seed) % (int)sizeof(buf)) + 1;

		for (size_t j = 0; j < n; j++) {
			buf[j] = (unsigned char)rand_r(&seed);
		}
		/* Sometimes a valid header, so the body checks run too. */
		if (i % 2 == 0 && n >= sizeof(struct cz_msg_hdr)) {
			struct cz_msg_hdr h;
			unsigned type = (unsigned)(rand_r(&seed) % 64);

			cz_proto_init(&h, CZ_MSG_NUDGE, 0);
			h.type = (uint8_t)type;
			h.len = (uint32_t)n;
			memcpy(buf, &h, sizeof(h));
		}
		int r = cz_proto_check(buf, n);
		cr_assert(r == -EPROTO || r == -EBADMSG || r > 0);
		if (r > 0) {
			cr_assert_eq(cz_proto_size((unsigned)r), n);
		}
	}
}
