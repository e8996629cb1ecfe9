/*
 * The balancer (balance.h) on channel views the test builds: which index
 * cz_balance_pick() returns for rr, least-conn and sticky, with credit,
 * stalls, draining workers, open counts and client addresses of its
 * choosing.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>
#include <uv.h>

#include "balance.h"
#include "conns.h"

#define MAXCH 8

static struct cz_balance_env env;
static struct cz_balancer bal;
static struct cz_balance_chan views[MAXCH];
static struct cz_balance_chan *chans[MAXCH];
static unsigned inflight[MAXCH];
static int slots[64]; /* worker id -> slot */

static int slot_of(void *data, uint32_t worker_id)
{
	(void)data;
	return worker_id < 64 ? slots[worker_id] : -1;
}

/* n channels, worker ids 1..n, worker i in slot i-1, all with credit. */
static void chans_init(enum cz_balance policy, unsigned n)
{
	memset(&env, 0, sizeof(env));
	cr_assert_eq(cz_balance_env_init(&env, policy), 0);
	env.slot_of = slot_of;
	bal = (struct cz_balancer){ .env = &env };
	for (unsigned i = 0; i < MAXCH; i++) {
		inflight[i] = 0;
		views[i] = (struct cz_balance_chan){
			.worker_id = i + 1, .inflight = &inflight[i], .slot = -1,
			.slot_gen = env.slot_gen - 1,
		};
		chans[i] = &views[i];
	}
	for (unsigned i = 0; i < 64; i++) {
		slots[i] = i >= 1 && i <= n ? (int)i - 1 : -1;
	}
}

static int pick(unsigned n)
{
	return cz_balance_pick(&bal, chans, n, NULL, 0);
}

static struct sockaddr_storage v4(const char *ip, socklen_t *len)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	s4->sin_family = AF_INET;
	s4->sin_port = htons(40000);
	cr_assert_eq(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	*len = sizeof(*s4);
	return ss;
}

static struct sockaddr_storage v6(const char *ip, socklen_t *len)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(40001);
	cr_assert_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	*len = sizeof(*s6);
	return ss;
}

/* The worker id a client at `ss` gets (0: none now). */
static uint32_t sticky_worker(const struct sockaddr_storage *ss, socklen_t len,
	unsigned n)
{
	int i = cz_balance_pick(&bal, chans, n, ss, len);

	return i < 0 ? 0 : chans[i]->worker_id;
}

static uint32_t sticky_ip(const char *ip, unsigned n)
{
	socklen_t len;
	struct sockaddr_storage ss = v4(ip, &len);

	return sticky_worker(&ss, len, n);
}

TestSuite(balance, .timeout = 20);

Test(balance, names_parse_both_ways)
{
	cr_expect_eq(cz_balance_parse("rr"), CZ_BALANCE_RR);
	cr_expect_eq(cz_balance_parse("least-conn"), CZ_BALANCE_LEAST_CONN);
	cr_expect_eq(cz_balance_parse("sticky"), CZ_BALANCE_STICKY);
	cr_expect_eq(cz_balance_parse("RR"), -1, "exact names only");
	cr_expect_eq(cz_balance_parse("least_conn"), -1);
	cr_expect_eq(cz_balance_parse(""), -1);
	cr_expect_str_eq(cz_balance_name(CZ_BALANCE_LEAST_CONN), "least-conn");
	cr_expect_str_eq(cz_balance_name(CZ_BALANCE_STICKY), "sticky");
}

Test(balance, rr_goes_round_and_skips_what_cannot_take)
{
	chans_init(CZ_BALANCE_RR, 4);
	cr_expect_eq(pick(4), 0);
	cr_expect_eq(pick(4), 1);
	inflight[2] = CZ_RR_CREDIT;
	views[3].stalled = true;
	cr_expect_eq(pick(4), 0, "2 has no credit, 3 is stalled: back to 0");
	views[1].stopping = true;
	cr_expect_eq(pick(4), 0, "1 is draining");
	views[0].stopping = true;
	cr_expect_eq(pick(4), -1, "nothing can take it");
	cr_expect_eq(pick(0), -1);
}

Test(balance, least_conn_takes_the_fewest_open_plus_in_flight)
{
	uv_loop_t loop;
	struct cz_conntab *t;
	struct cz_conns *c[3];

	cr_assert_eq(uv_loop_init(&loop), 0);
	cr_assert_eq(cz_conntab_create(&loop, &t), 0);
	chans_init(CZ_BALANCE_LEAST_CONN, 3);
	for (unsigned i = 0; i < 3; i++) {
		c[i] = cz_conntab_get(t, i + 1, true);
		cr_assert_not_null(c[i]);
		views[i].conns = c[i];
		/* As a shim does it: an entry of this (live) process. */
		cz_conns_page(c[i])->e[0].pid = getpid();
		cz_conns_page(c[i])->used = 1;
	}
	cz_conns_page(c[0])->e[0].open = 5;
	cz_conns_page(c[1])->e[0].open = 2;
	cz_conns_page(c[2])->e[0].open = 3;
	cr_expect_eq(pick(3), 1, "2 open is the fewest");
	inflight[1] = 2;
	cr_expect_eq(pick(3), 2, "2 open + 2 in flight > 3 open");
	inflight[2] = CZ_RR_CREDIT;
	cr_expect_eq(pick(3), 1, "the fewest without credit is skipped");
	cz_conns_page(c[0])->e[0].open = 0;
	views[0].stalled = true;
	cr_expect_eq(pick(3), 1, "a stalled one is skipped, whatever its count");
	cz_conntab_destroy(t);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(balance, least_conn_ties_go_round_robin)
{
	unsigned got[4] = { 0 };

	chans_init(CZ_BALANCE_LEAST_CONN, 4);
	/* No counters (conns NULL): every channel has 0 open. */
	for (unsigned i = 0; i < 8; i++) {
		int k = pick(4);

		cr_assert_geq(k, 0);
		got[k]++;
	}
	for (unsigned i = 0; i < 4; i++) {
		cr_expect_eq(got[i], 2, "channel %u got %u of 8 ties", i, got[i]);
	}
	inflight[0] = 1;
	inflight[1] = 1;
	cr_expect_eq(pick(4), 2, "among the equal ones, after the last picked");
	cr_expect_eq(pick(4), 3);
	cr_expect_eq(pick(4), 2);
}

Test(balance, sticky_keeps_a_client_on_one_worker)
{
	char ip[32];
	unsigned used[4] = { 0 };

	chans_init(CZ_BALANCE_STICKY, 4);
	for (unsigned a = 2; a <= 21; a++) {
		snprintf(ip, sizeof(ip), "127.0.0.%u", a);
		uint32_t w = sticky_ip(ip, 4);

		cr_assert(w >= 1 && w <= 4, "%s got worker %u", ip, w);
		used[w - 1]++;
		for (unsigned r = 0; r < 5; r++) {
			cr_expect_eq(sticky_ip(ip, 4), w, "%s: same worker every time", ip);
		}
	}
	/* The key is random: 20 addresses miss one of 4 workers 1.3% of the
	 * time, 200 of them never in practice (4 * 0.75^200). */
	for (unsigned a = 0; a < 200; a++) {
		snprintf(ip, sizeof(ip), "10.9.%u.%u", a / 100, a % 100 + 1);
		used[sticky_ip(ip, 4) - 1]++;
	}
	for (unsigned i = 0; i < 4; i++) {
		cr_expect_gt(used[i], 0, "220 addresses use all 4 workers (%u: %u)", i,
			used[i]);
	}
}

Test(balance, sticky_ignores_channel_order_and_port)
{
	socklen_t len;
	struct sockaddr_storage a = v4("10.1.2.3", &len);
	uint32_t w;

	chans_init(CZ_BALANCE_STICKY, 4);
	w = sticky_worker(&a, len, 4);
	/* The channel array reordered (a channel closed and another opened). */
	struct cz_balance_chan *tmp = chans[0];

	chans[0] = chans[3];
	chans[3] = tmp;
	((struct sockaddr_in *)&a)->sin_port = htons(50000);
	cr_expect_eq(sticky_worker(&a, len, 4), w);
}

Test(balance, sticky_v4_mapped_v6_is_the_v4_client)
{
	socklen_t l4, l6, l6b;
	struct sockaddr_storage a4 = v4("192.0.2.7", &l4);
	struct sockaddr_storage a6 = v6("::ffff:192.0.2.7", &l6);
	struct sockaddr_storage b6 = v6("2001:db8::7", &l6b);
	uint64_t h4, h6, hb;

	chans_init(CZ_BALANCE_STICKY, 4);
	cr_assert(cz_balance_client_hash(&env, &a4, l4, &h4));
	cr_assert(cz_balance_client_hash(&env, &a6, l6, &h6));
	cr_assert(cz_balance_client_hash(&env, &b6, l6b, &hb));
	cr_expect_eq(h4, h6, "::ffff:192.0.2.7 hashes as 192.0.2.7");
	cr_expect_neq(h4, hb);
	cr_expect_eq(sticky_worker(&a4, l4, 4), sticky_worker(&a6, l6, 4));
}

Test(balance, sticky_key_is_random_per_launcher)
{
	socklen_t len;
	struct sockaddr_storage a = v4("198.51.100.1", &len);
	struct cz_balance_env other = { 0 };
	uint64_t h1, h2;

	chans_init(CZ_BALANCE_STICKY, 4);
	cr_assert_eq(cz_balance_env_init(&other, CZ_BALANCE_STICKY), 0);
	cr_assert(memcmp(env.key, other.key, sizeof(env.key)) != 0);
	cr_assert(cz_balance_client_hash(&env, &a, len, &h1));
	cr_assert(cz_balance_client_hash(&other, &a, len, &h2));
	cr_expect_neq(h1, h2, "another key, another hash");
}

Test(balance, sticky_replaced_worker_keeps_its_slots_clients)
{
	char ip[32];
	uint32_t before[40];

	chans_init(CZ_BALANCE_STICKY, 4);
	for (unsigned a = 0; a < 40; a++) {
		snprintf(ip, sizeof(ip), "10.0.0.%u", a + 1);
		before[a] = sticky_ip(ip, 4);
	}
	/* Worker 2 (slot 1) is replaced by worker 9 in the same slot. */
	views[1].worker_id = 9;
	slots[9] = 1;
	env.slot_gen++;
	for (unsigned a = 0; a < 40; a++) {
		snprintf(ip, sizeof(ip), "10.0.0.%u", a + 1);
		uint32_t now = sticky_ip(ip, 4);

		cr_expect_eq(now, before[a] == 2 ? 9 : before[a],
			"%s: worker %u before, %u now", ip, before[a], now);
	}
}

Test(balance, sticky_scaling_up_moves_about_one_in_n_plus_one)
{
	enum { CLIENTS = 2000 };
	static uint32_t before[CLIENTS];
	char ip[32];
	unsigned moved = 0, to_new = 0;

	chans_init(CZ_BALANCE_STICKY, 5);
	for (unsigned a = 0; a < CLIENTS; a++) {
		snprintf(ip, sizeof(ip), "10.%u.%u.1", a / 250, a % 250);
		before[a] = sticky_ip(ip, 4);
	}
	for (unsigned a = 0; a < CLIENTS; a++) {
		snprintf(ip, sizeof(ip), "10.%u.%u.1", a / 250, a % 250);
		uint32_t now = sticky_ip(ip, 5);

		moved += now != before[a];
		to_new += now != before[a] && now == 5;
	}
	/* Expected 1/5 = 400; rendezvous moves clients only to the new slot. */
	cr_expect(moved > 300 && moved < 500, "%u of %d moved", moved, CLIENTS);
	cr_expect_eq(to_new, moved, "every client that moved went to the new worker");
}

Test(balance, sticky_busy_slot_waits_but_a_stalled_one_falls_back)
{
	socklen_t len;
	struct sockaddr_storage a = v4("203.0.113.9", &len);
	uint64_t h;
	uint32_t w, next;
	int k;

	chans_init(CZ_BALANCE_STICKY, 4);
	w = sticky_worker(&a, len, 4);
	cr_assert_neq(w, 0);
	inflight[w - 1] = CZ_RR_CREDIT;
	cr_expect_eq(cz_balance_pick(&bal, chans, 4, &a, len), -1,
		"its worker is only busy: the client waits for it");
	views[w - 1].stalled = true;
	next = sticky_worker(&a, len, 4);
	cr_assert(next != 0 && next != w);
	/* The next-highest weight among the other slots. */
	cr_assert(cz_balance_client_hash(&env, &a, len, &h));
	k = -1;
	for (unsigned i = 0; i < 4; i++) {
		if (i + 1 != w && (k < 0 || cz_balance_weight(h, (int)i) >
				cz_balance_weight(h, k))) {
			k = (int)i;
		}
	}
	cr_expect_eq(next, (uint32_t)k + 1);
	views[w - 1].stalled = false;
	views[w - 1].stopping = true;
	cr_expect_eq(sticky_worker(&a, len, 4), next, "draining: the same fallback");
}

Test(balance, sticky_two_channels_of_a_slot_share_it)
{
	socklen_t len;
	struct sockaddr_storage a = v4("192.0.2.200", &len);
	uint32_t w, seen[2] = { 0, 0 };

	chans_init(CZ_BALANCE_STICKY, 4);
	w = sticky_worker(&a, len, 4);
	/* A roll's replacement (worker 5) listens in the same slot. */
	slots[5] = (int)w - 1;
	views[4].worker_id = 5;
	for (unsigned r = 0; r < 4; r++) {
		uint32_t got = sticky_worker(&a, len, 5);

		cr_assert(got == w || got == 5, "got worker %u", got);
		seen[got == 5]++;
	}
	cr_expect(seen[0] > 0 && seen[1] > 0, "both channels of the slot are used");
	inflight[w - 1] = CZ_RR_CREDIT;
	cr_expect_eq(sticky_worker(&a, len, 5), 5, "the one with credit");
}

Test(balance, sticky_without_an_ip_goes_round_robin)
{
	struct sockaddr_storage u;
	socklen_t len = sizeof(sa_family_t);

	memset(&u, 0, sizeof(u));
	u.ss_family = AF_UNIX;
	chans_init(CZ_BALANCE_STICKY, 3);
	cr_expect_eq(cz_balance_pick(&bal, chans, 3, &u, len), 0);
	cr_expect_eq(cz_balance_pick(&bal, chans, 3, &u, len), 1);
	cr_expect_eq(cz_balance_pick(&bal, chans, 3, NULL, 0), 2, "no address at all");
}

Test(balance, siphash_depends_on_every_byte_and_the_key)
{
	uint64_t k1[2] = { 1, 2 }, k2[2] = { 1, 3 };
	unsigned char d[16] = { 0 };
	uint64_t h = cz_balance_siphash(k1, d, sizeof(d));

	cr_expect_eq(cz_balance_siphash(k1, d, sizeof(d)), h, "deterministic");
	cr_expect_neq(cz_balance_siphash(k2, d, sizeof(d)), h);
	cr_expect_neq(cz_balance_siphash(k1, d, 15), h, "the length counts");
	for (unsigned i = 0; i < sizeof(d); i++) {
		d[i] = 1;
		cr_expect_neq(cz_balance_siphash(k1, d, sizeof(d)), h, "byte %u", i);
		d[i] = 0;
	}
}
