/* The key registry: which BINDs share a socket, and when sockets close. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"
#include "sockets.h"

static struct cz_sockets *s;
static unsigned closed;

static void on_closing(void *data, struct cz_key *k)
{
	(void)data;
	(void)k;
	closed++;
}

static void setup(void)
{
	closed = 0;
	cr_assert_eq(cz_sockets_create(on_closing, NULL, &s), 0);
}

static void teardown(void)
{
	cz_sockets_destroy(s);
}

TestSuite(sockets, .init = setup, .fini = teardown);

static struct cz_msg_bind req(const char *addr, int type, int v6only)
{
	struct cz_msg_bind m;
	int n;

	memset(&m, 0, sizeof(m));
	n = cz_addr_parse(addr, &m.addr.ss);
	cr_assert_gt(n, 0, "parse %s", addr);
	m.addr.len = (uint32_t)n;
	m.family = m.addr.ss.ss_family;
	m.type = type;
	memset(&m.opts, 0xff, sizeof(m.opts)); /* all CZ_OPT_UNSET */
	m.opts.reuseaddr = 1;
	m.opts.v6only = v6only;
	return m;
}

static struct cz_key *bind_ok(uint32_t w, const char *addr, int type, int v6only)
{
	struct cz_msg_bind m = req(addr, type, v6only);
	struct cz_key *k = NULL;
	int err = cz_sockets_bind(s, w, &m, &k);

	cr_assert_eq(err, 0, "bind %s: %s", addr, strerror(-err));
	return k;
}

static int port_of(const struct cz_key *k)
{
	return cz_addr_port((const void *)&k->bound, k->bound_len);
}

/* A port nothing listens on, for tests that need a fixed one. */
static int free_port(void)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	socklen_t len = sizeof(in);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (void *)&in, sizeof(in)), 0);
	getsockname(fd, (void *)&in, &len);
	port = ntohs(in.sin_port);
	close(fd);
	return port;
}

Test(sockets, same_address_same_key)
{
	char a[64];
	struct cz_key *k1, *k2;

	snprintf(a, sizeof(a), "127.0.0.1:%d", free_port());
	k1 = bind_ok(1, a, SOCK_STREAM, -1);
	k2 = bind_ok(2, a, SOCK_STREAM, -1);
	cr_assert_eq(k1, k2);
	cr_assert_eq(cz_sockets_holds(k1, 1), 1);
	cr_assert_eq(cz_sockets_holds(k1, 2), 1);
	cr_assert_eq(cz_sockets_find(s, k1->id), k1);
}

Test(sockets, port0_ordinal_per_worker)
{
	struct cz_key *a1 = bind_ok(1, "127.0.0.1:0", SOCK_STREAM, -1);
	struct cz_key *a2 = bind_ok(1, "127.0.0.1:0", SOCK_STREAM, -1);
	struct cz_key *b1 = bind_ok(2, "127.0.0.1:0", SOCK_STREAM, -1);
	struct cz_key *b2 = bind_ok(2, "127.0.0.1:0", SOCK_STREAM, -1);
	struct cz_key *c1 = bind_ok(3, "127.0.0.1:0", SOCK_STREAM, -1);

	cr_assert_neq(a1, a2);
	cr_assert_neq(port_of(a1), port_of(a2));
	cr_assert_gt(port_of(a1), 0);
	cr_assert_eq(b1, a1, "every worker's 1st port-0 socket is the same");
	cr_assert_eq(b2, a2, "every worker's 2nd port-0 socket is the same");
	cr_assert_eq(c1, a1);
	/* Worker 1 closes its first: its next port-0 bind reuses ordinal 0. */
	cr_assert_eq(cz_sockets_release(s, a1, 1, false), 0);
	cr_assert_eq(bind_ok(1, "127.0.0.1:0", SOCK_STREAM, -1), a1);
}

Test(sockets, v6only_distinguishes_keys)
{
	struct cz_key *dual = bind_ok(1, "[::]:0", SOCK_STREAM, 0);
	struct cz_key *only = bind_ok(1, "[::]:0", SOCK_STREAM, 1);
	int v = -1;
	socklen_t len = sizeof(v);

	cr_assert_neq(dual, only);
	cr_assert_eq(dual->v6only, 0);
	cr_assert_eq(only->v6only, 1);
	cr_assert_eq(bind_ok(2, "[::]:0", SOCK_STREAM, 1), only);
	cr_assert_eq(bind_ok(2, "[::]:0", SOCK_STREAM, 0), dual);
	getsockopt(only->fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &len);
	cr_assert_eq(v, 1);
}

Test(sockets, stream_and_dgram_are_different_keys)
{
	struct cz_key *t = bind_ok(1, "127.0.0.1:0", SOCK_STREAM, -1);
	struct cz_key *u = bind_ok(1, "127.0.0.1:0", SOCK_DGRAM, -1);

	cr_assert_neq(t, u);
	cr_assert_eq(cz_sockets_listen_count(s, 1), 1, "a datagram bind counts");
}

Test(sockets, unix_path_shared_and_unlinked)
{
	char path[64], a[80];
	struct cz_key *k1, *k2;

	snprintf(path, sizeof(path), "/tmp/cz-test-%d.sock", (int)getpid());
	unlink(path);
	snprintf(a, sizeof(a), "%s", path);
	k1 = bind_ok(1, a, SOCK_STREAM, -1);
	k2 = bind_ok(2, a, SOCK_STREAM, -1);
	cr_assert_eq(k1, k2);
	cr_assert_eq(access(path, F_OK), 0);
	cr_assert_eq(cz_sockets_release(s, k1, 1, false), 0);
	cr_assert_eq(access(path, F_OK), 0, "still held by worker 2");
	cr_assert_eq(cz_sockets_release(s, k1, 2, false), 1);
	cr_assert_eq(closed, 1);
	cr_assert_neq(access(path, F_OK), 0, "unlinked with the last hold");
}

Test(sockets, eaddrinuse_then_retry_rebinds)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	socklen_t len = sizeof(in);
	int blocker = socket(AF_INET, SOCK_STREAM, 0);
	struct cz_msg_bind m;
	struct cz_key *k = NULL;
	char a[64];

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(blocker, (void *)&in, sizeof(in)), 0);
	cr_assert_eq(listen(blocker, 1), 0);
	getsockname(blocker, (void *)&in, &len);
	snprintf(a, sizeof(a), "127.0.0.1:%d", ntohs(in.sin_port));
	m = req(a, SOCK_STREAM, -1);
	cr_assert_eq(cz_sockets_bind(s, 1, &m, &k), -EADDRINUSE);
	cr_assert_eq(cz_sockets_bind(s, 2, &m, &k), -EADDRINUSE,
		"the failed key was dropped: the retry binds again");
	close(blocker);
	k = bind_ok(1, a, SOCK_STREAM, -1);
	cr_assert_eq(port_of(k), ntohs(in.sin_port));
}

Test(sockets, eacces_or_eaddrnotavail_passed_through)
{
	struct cz_msg_bind m = req("192.0.2.1:0", SOCK_STREAM, -1);
	struct cz_key *k = NULL;

	/* TEST-NET-1 is not local: the bind fails and nothing is kept. */
	cr_assert_eq(cz_sockets_bind(s, 1, &m, &k), -EADDRNOTAVAIL);
	cr_assert_eq(cz_sockets_listen_count(s, 1), 0);
}

Test(sockets, listened_key_survives_worker_exit)
{
	struct cz_key *lk = bind_ok(1, "127.0.0.1:0", SOCK_STREAM, -1);
	struct cz_key *bk = bind_ok(1, "127.0.0.1:0", SOCK_STREAM, -1);
	uint32_t lid = lk->id, bid = bk->id;
	struct cz_sockopts o;
	int port = port_of(lk);

	memset(&o, 0xff, sizeof(o));
	cr_assert_eq(cz_sockets_listen(s, lk, 1, 16, true, &o), 0);
	cr_assert_eq(cz_sockets_listen_count(s, 1), 1);
	cz_sockets_worker_exited(s, 1);
	cr_assert_eq(cz_sockets_listen_count(s, 1), 0);
	cr_assert_eq(cz_sockets_find(s, lid), lk, "listening: kept open");
	cr_assert_null(cz_sockets_find(s, bid), "never listened: closed");
	/* The replacement worker's first port-0 socket is the same one. */
	cr_assert_eq(bind_ok(2, "127.0.0.1:0", SOCK_STREAM, -1), lk);
	cr_assert_eq(port_of(lk), port);
}

Test(sockets, listen_needs_a_hold_and_a_stream)
{
	struct cz_key *k = bind_ok(1, "127.0.0.1:0", SOCK_STREAM, -1);
	struct cz_key *u = bind_ok(1, "127.0.0.1:0", SOCK_DGRAM, -1);
	struct cz_sockopts o;

	memset(&o, 0xff, sizeof(o));
	cr_assert_eq(cz_sockets_listen(s, k, 2, 16, false, &o), -EBADF);
	cr_assert_eq(cz_sockets_listen(s, u, 1, 16, false, &o), -EOPNOTSUPP);
	cr_assert_eq(cz_sockets_release(s, k, 2, false), -ENOENT);
}

static struct cz_sockopts unset_opts(void)
{
	struct cz_sockopts o;

	memset(&o, 0xff, sizeof(o));
	return o;
}

static struct cz_key *listen_ok(uint32_t w, const char *addr)
{
	struct cz_key *k = bind_ok(w, addr, SOCK_STREAM, -1);
	struct cz_sockopts o = unset_opts();

	cr_assert_eq(cz_sockets_listen(s, k, w, 16, false, &o), 0);
	return k;
}

Test(sockets, covers_needs_every_key)
{
	struct cz_key *a = listen_ok(1, "127.0.0.1:0");
	char b[64];

	cr_assert(cz_sockets_worker_covers(s, 2, 9), "no keys: covered by anyone");
	cr_assert_not(cz_sockets_worker_covers(s, 2, 1));
	cr_assert_eq(listen_ok(2, "127.0.0.1:0"), a);
	cr_assert(cz_sockets_worker_covers(s, 2, 1), "same keys");
	snprintf(b, sizeof(b), "127.0.0.1:%d", free_port());
	listen_ok(1, b);
	cr_assert_not(cz_sockets_worker_covers(s, 2, 1), "a key missing");
	cr_assert(cz_sockets_worker_covers(s, 1, 2), "a superset covers");
	bind_ok(2, b, SOCK_STREAM, -1);
	cr_assert_not(cz_sockets_worker_covers(s, 2, 1), "bound is not listening");
}

Test(sockets, addrs_are_listed_in_order)
{
	struct cz_key *t = listen_ok(1, "127.0.0.1:0");
	struct cz_key *u = bind_ok(1, "127.0.0.1:0", SOCK_DGRAM, -1);
	char want[128], buf[128], small[12];

	bind_ok(1, "127.0.0.1:0", SOCK_STREAM, -1); /* not listening: left out */
	snprintf(want, sizeof(want), "127.0.0.1:%d, udp 127.0.0.1:%d",
		port_of(t), port_of(u));
	cr_assert_eq(cz_sockets_worker_addrs(s, 1, buf, sizeof(buf)),
		strlen(want));
	cr_assert_str_eq(buf, want);
	cr_assert_eq(cz_sockets_worker_addrs(s, 1, small, sizeof(small)), 11);
	cr_assert_eq(strncmp(small, want, 11), 0, "truncated, terminated");
	cr_assert_eq(cz_sockets_worker_addrs(s, 2, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "");
}

/* A socket as systemd would pass it: bound to loopback, maybe listening. */
static int inherited(bool listening, char *addr, size_t len)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	socklen_t sl = sizeof(in);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (void *)&in, sizeof(in)), 0);
	if (listening) {
		cr_assert_eq(listen(fd, 8), 0);
	}
	getsockname(fd, (void *)&in, &sl);
	snprintf(addr, len, "127.0.0.1:%d", ntohs(in.sin_port));
	return fd;
}

static uint64_t cookie(int fd)
{
	uint64_t c = 0;
	socklen_t len = sizeof(c);

	cr_assert_eq(getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len), 0);
	return c;
}

Test(sockets, adopted_socket_serves_binds_and_stays_open)
{
	char a[64];
	int fd = inherited(true, a, sizeof(a));
	uint64_t ck = cookie(fd);
	struct cz_sockopts o = unset_opts();
	struct cz_key *k;

	cr_assert_eq(cz_sockets_adopt(s, fd), 0);
	cr_assert_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	k = bind_ok(1, a, SOCK_STREAM, -1);
	cr_assert_eq(cookie(k->fd), ck, "the inherited socket, not a new one");
	cr_assert_eq(cz_sockets_listen(s, k, 1, 4, true, &o), 0,
		"already listening: no second listen fails");
	cr_assert(k->nonblock, "the first LISTEN's flags are still recorded");
	cr_assert_eq(cz_sockets_release(s, k, 1, true), 0, "not closed");
	cr_assert_eq(bind_ok(2, a, SOCK_STREAM, 1), k, "whatever v6only asked");
	cz_sockets_worker_exited(s, 2);
	cr_assert_eq(closed, 0);
	cr_assert_eq(cookie(fd), ck, "still open");
	cr_assert_eq(cz_sockets_find(s, k->id), k);
}

Test(sockets, adopted_unlistened_socket_listens_as_usual)
{
	char a[64];
	int fd = inherited(false, a, sizeof(a)), v = 0;
	socklen_t len = sizeof(v);
	struct cz_sockopts o = unset_opts();
	struct cz_key *k;

	cr_assert_eq(cz_sockets_adopt(s, fd), 0);
	k = bind_ok(1, a, SOCK_STREAM, -1);
	cr_assert_eq(k->fd, fd);
	cr_assert_eq(cz_sockets_listen(s, k, 1, 4, false, &o), 0);
	getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len);
	cr_assert_eq(v, 1);
}

Test(sockets, adopt_rejects_what_it_cannot_key_on)
{
	int p[2], fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(cz_sockets_adopt(s, p[0]), -ENOTSOCK);
	cr_assert_eq(cz_sockets_adopt(s, fd), -EINVAL, "not bound");
	close(p[0]);
	close(p[1]);
	close(fd);
}

/* A port below 1024 nothing listens on (binding it needs root). */
static int free_low_port(void)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	int port, fd;

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (port = 1023; port > 512; port--) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		in.sin_port = htons((uint16_t)port);
		if (bind(fd, (void *)&in, sizeof(in)) == 0) {
			close(fd);
			return port;
		}
		close(fd);
	}
	return -1;
}

Test(sockets, policy_denies_privileged_ports_unless_allowed)
{
	const char *allow[] = { ":0", "[::1]:443" };
	struct cz_msg_bind m;
	struct cz_key *k = NULL;
	char a[64];
	int low = geteuid() == 0 ? free_low_port() : 80;

	cr_assert_gt(low, 0);
	cr_assert_eq(cz_sockets_set_policy(s, 65534, allow, 1, 1024), -EINVAL,
		"port 0 cannot be allowed");
	cr_assert_eq(cz_sockets_set_policy(s, 65534, allow + 1, 1, 1024), 0);
	snprintf(a, sizeof(a), "127.0.0.1:%d", low);
	m = req(a, SOCK_STREAM, -1);
	cr_assert_eq(cz_sockets_bind(s, 1, &m, &k), -EACCES);
	m = req("[::1]:444", SOCK_STREAM, -1);
	cr_assert_eq(cz_sockets_bind(s, 1, &m, &k), -EACCES);
	snprintf(a, sizeof(a), "127.0.0.1:%d", free_port());
	bind_ok(1, a, SOCK_STREAM, -1);
	bind_ok(1, "127.0.0.1:0", SOCK_STREAM, -1);
}

Test(sockets, policy_binds_an_allowed_privileged_port)
{
	const char *allow[] = { NULL, "[::1]:443" };
	char a[64], any[16];

	if (geteuid() != 0) {
		cr_skip_test("binding a port below 1024 needs root");
	}
	int low = free_low_port();

	cr_assert_gt(low, 0);
	snprintf(any, sizeof(any), ":%d", low);
	allow[0] = any;
	cr_assert_eq(cz_sockets_set_policy(s, 65534, allow, 2, 1024), 0);
	snprintf(a, sizeof(a), "127.0.0.1:%d", low);
	cr_assert_eq(port_of(bind_ok(1, a, SOCK_STREAM, -1)), low);
}

/* The workers' user makes their socket files, and may make only those. */
Test(sockets, unix_socket_files_are_made_as_the_workers_user)
{
	static const struct cz_spawn_ids ids = {
		.set = true, .uid = 54321, .gid = 54321,
	};
	struct cz_msg_bind m;
	struct cz_key *k = NULL;
	struct stat st;
	char path[64];

	if (geteuid() != 0) {
		cr_skip_test("taking another user's identity needs root");
	}
	snprintf(path, sizeof(path), "/tmp/cz-test-own-%d.sock", (int)getpid());
	unlink(path);
	cz_sockets_set_worker_ids(s, &ids);
	k = bind_ok(1, path, SOCK_STREAM, -1);
	cr_assert_eq(lstat(path, &st), 0);
	cr_expect_eq(st.st_uid, 54321);
	cr_expect_eq(st.st_gid, 54321);
	cr_assert_eq(cz_sockets_release(s, k, 1, false), 1);
	cr_expect_neq(lstat(path, &st), 0, "removed with the last hold");

	m = req("/root/cz-test-denied.sock", SOCK_STREAM, -1);
	cr_expect_eq(cz_sockets_bind(s, 1, &m, &k), -EACCES);
	cr_expect_neq(lstat("/root/cz-test-denied.sock", &st), 0);
}

/* The probes (candidates compared) of one bind of `addr` by worker w. */
static unsigned long bind_probes(uint32_t w, const char *addr, struct cz_key **k)
{
	unsigned long before = cz_sockets_probes(s);

	*k = bind_ok(w, addr, SOCK_STREAM, -1);
	return cz_sockets_probes(s) - before;
}

Test(sockets, port0_bind_costs_the_same_whatever_came_before)
{
	struct cz_key *k, *first = NULL;
	unsigned long p, most = 0;
	unsigned i;

	/* Other workers' keys, and this worker's own, pile up meanwhile. */
	for (i = 0; i < 200; i++) {
		bind_ok(2, "127.0.0.1:0", SOCK_STREAM, -1);
	}
	for (i = 0; i < 250; i++) {
		p = bind_probes(1, "127.0.0.1:0", &k);
		most = p > most ? p : most;
		if (i == 0) {
			first = k;
		}
	}
	cr_assert_leq(most, 8, "a port-0 bind compared up to %lu candidates", most);
	cr_assert_eq(cz_sockets_key_count(s, 1), 250);
	/* Worker 1's 250 port-0 keys: the first 200 are worker 2's too. */
	cr_assert_eq(cz_sockets_holds(first, 2), 1);
	/* A fixed address, and a lookup by id, cost the same too. */
	p = bind_probes(3, "127.0.0.1:0", &k);
	cr_assert_eq(k, first, "worker 3's first port-0 socket is everyone's first");
	cr_assert_leq(p, 8);
	p = cz_sockets_probes(s);
	cr_assert_eq(cz_sockets_find(s, first->id), first);
	cr_assert_leq(cz_sockets_probes(s) - p, 4);
}

Test(sockets, a_worker_holds_at_most_max_keys)
{
	struct cz_msg_bind m = req("127.0.0.1:0", SOCK_STREAM, -1);
	struct cz_key *k = NULL, *held = NULL;
	unsigned i;

	for (i = 0; i < CZ_SOCKETS_MAX_KEYS; i++) {
		held = bind_ok(1, "127.0.0.1:0", SOCK_STREAM, -1);
	}
	cr_assert_eq(cz_sockets_key_count(s, 1), CZ_SOCKETS_MAX_KEYS);
	cr_assert_eq(cz_sockets_bind(s, 1, &m, &k), -EMFILE, "one key too many");
	m = req("127.0.0.1:0", SOCK_DGRAM, -1);
	cr_assert_eq(cz_sockets_bind(s, 1, &m, &k), -EMFILE, "whatever its kind");
	/* Another hold on a key it has costs the primary nothing: allowed. */
	cr_assert_eq(cz_sockets_release(s, held, 1, false), 1);
	cr_assert_eq(cz_sockets_key_count(s, 1), CZ_SOCKETS_MAX_KEYS - 1);
	bind_ok(1, "127.0.0.1:0", SOCK_STREAM, -1);
	bind_ok(2, "127.0.0.1:0", SOCK_STREAM, -1);
	cr_assert_eq(cz_sockets_key_count(s, 2), 1, "other workers are not limited");
}

Test(sockets, abandoned_keys_close_unless_they_listen)
{
	struct cz_key *l = listen_ok(1, "127.0.0.1:0");
	struct cz_key *b = bind_ok(1, "127.0.0.1:0", SOCK_STREAM, -1);
	uint32_t bid = b->id;

	bind_ok(2, "127.0.0.1:0", SOCK_STREAM, -1);
	cz_sockets_abandon(s, l, 1, 1, 1);
	cr_assert_eq(cz_sockets_find(s, l->id), l, "worker 2 still holds it");
	cr_assert_eq(cz_sockets_listen_count(s, 1), 0);
	cz_sockets_abandon(s, b, 1, 1, 0);
	cr_assert_null(cz_sockets_find(s, bid), "bound, never listened: closed");
	cz_sockets_abandon(s, l, 2, 1, 0);
	cr_assert_eq(cz_sockets_find(s, l->id), l, "listening: kept for the next");
	cr_assert_eq(cz_sockets_orphans(s), 1);
	cr_assert_eq(bind_ok(3, "127.0.0.1:0", SOCK_STREAM, -1), l);
	cr_assert_eq(cz_sockets_orphans(s), 0, "held again: no orphan any more");
}

Test(sockets, orphans_are_bounded_oldest_closed_first)
{
	uint32_t ids[300];
	unsigned i, n = 0;

	for (i = 0; i < 200; i++) {
		ids[n++] = listen_ok(1, "127.0.0.1:0")->id;
	}
	for (i = 0; i < 100; i++) {
		ids[n++] = listen_ok(2, "127.0.0.2:0")->id;
	}
	cz_sockets_worker_exited(s, 1);
	cz_sockets_worker_exited(s, 2);
	cr_assert_eq(cz_sockets_orphans(s), CZ_SOCKETS_MAX_ORPHANS);
	cr_assert_eq(closed, n - CZ_SOCKETS_MAX_ORPHANS, "the surplus was closed");
	for (i = 200; i < n; i++) {
		cr_assert_not_null(cz_sockets_find(s, ids[i]),
			"worker 2's keys, orphaned last, are kept (key %u)", i);
	}
}

static int acceptconn(int fd)
{
	int v = -1;
	socklen_t len = sizeof(v);

	getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len);
	return v;
}

/* Whether a client can connect to 127.0.0.1:port. */
static bool connects(int port)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	int c = socket(AF_INET, SOCK_STREAM, 0), r;

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	in.sin_port = htons((uint16_t)port);
	r = connect(c, (void *)&in, sizeof(in));
	close(c);
	return r == 0;
}

Test(sockets, a_listener_shut_down_listens_again_for_every_holder)
{
	struct cz_key *k = listen_ok(1, "127.0.0.1:0");
	int fd = k->fd, port = port_of(k);
	uint64_t ck = cookie(k->fd);
	int held = dup(k->fd); /* a worker's copy */

	cr_assert(connects(port));
	cr_assert_eq(shutdown(held, SHUT_RDWR), 0);
	cr_assert_eq(acceptconn(k->fd), 0);
	cr_assert_not(connects(port));
	cr_assert_eq(cz_sockets_relisten(k, NULL, NULL), 0);
	cr_assert_eq(k->fd, fd, "the same fd number");
	cr_assert_eq(cookie(k->fd), ck, "the same socket");
	cr_assert_eq(acceptconn(held), 1, "so the worker's copy listens again too");
	cr_assert(connects(port), "on the same port");
	close(held);
}

Test(sockets, a_listener_that_cannot_listen_again_is_made_anew)
{
	struct cz_key *k = listen_ok(1, "127.0.0.1:0");
	int fd = k->fd, port = port_of(k);
	int other = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	char path[64];

	/* Something else at its number, which cannot listen. */
	cr_assert_eq(dup2(other, k->fd), k->fd);
	close(other);
	cr_assert_eq(cz_sockets_relisten(k, NULL, NULL), 0);
	cr_assert_eq(k->fd, fd, "the same fd number");
	cr_assert_eq(acceptconn(k->fd), 1, "listening again");
	cr_assert_eq(port_of(k), port);
	cr_assert(connects(port), "on the same port");
	snprintf(path, sizeof(path), "/tmp/cz-test-re-%d.sock", (int)getpid());
	unlink(path);
	cr_assert_eq(cz_sockets_relisten(listen_ok(1, path), NULL, NULL), -EOPNOTSUPP,
		"a unix socket file is not made again");
}
