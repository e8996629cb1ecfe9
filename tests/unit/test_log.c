/* The launcher's log: lines peers cause are rate-limited per source. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Not shim/log.h, which comes first in the include path. */
#include "../../launcher/log.h"

static int out[2];
static unsigned long long now;

static unsigned long long fake_now(void)
{
	return now;
}

static void setup(void)
{
	cr_assert_eq(pipe2(out, O_NONBLOCK | O_CLOEXEC), 0);
	fcntl(out[1], F_SETPIPE_SZ, 1 << 20);
	cz_log_set_fd(out[1]);
	cz_log_set_clock(fake_now);
	cz_log_peer_reset();
	cz_log_set_level(CZ_LOG_INFO);
	now = 1000000;
}

static void teardown(void)
{
	cz_log_set_fd(STDERR_FILENO);
	cz_log_set_clock(NULL);
	close(out[0]);
	close(out[1]);
}

TestSuite(log, .init = setup, .fini = teardown);

/* What was logged since the last call. */
static const char *logged(void)
{
	static char buf[1 << 16];
	ssize_t n = read(out[0], buf, sizeof(buf) - 1);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static int lines(const char *s)
{
	int n = 0;

	for (; *s != '\0'; s++) {
		n += *s == '\n';
	}
	return n;
}

Test(log, a_flood_gets_a_burst_then_one_line_per_period)
{
	const char *s;

	for (int i = 0; i < 100000; i++) {
		cz_log_peer(3, CZ_LOG_WARN, "worker 3: bad message %d", i);
	}
	s = logged();
	cr_assert_eq(lines(s), CZ_LOG_PEER_BURST, "%s", s);
	cr_assert(strstr(s, "clusterize: warning: worker 3: bad message 0\n") == s);
	now += CZ_LOG_PEER_REFILL_MS;
	cz_log_peer(3, CZ_LOG_WARN, "worker 3: bad message again");
	s = logged();
	cr_assert_str_eq(s, "clusterize: warning: worker 3: bad message again "
		"(99995 similar messages suppressed)\n");
	cz_log_peer(3, CZ_LOG_WARN, "worker 3: and again");
	cr_assert_str_empty(logged(), "the period's line is spent");
}

Test(log, sources_have_their_own_buckets)
{
	for (int i = 0; i < 50; i++) {
		cz_log_peer(1, CZ_LOG_WARN, "one");
		cz_log_peer(2, CZ_LOG_WARN, "two");
		cz_log_peer(CZ_LOG_PEER_UNKNOWN, CZ_LOG_WARN, "stranger");
	}
	cr_assert_eq(lines(logged()), 3 * CZ_LOG_PEER_BURST);
	cz_log(CZ_LOG_WARN, "the launcher's own lines are never limited");
	cr_assert_eq(lines(logged()), 1);
}

Test(log, many_workers_share_a_bounded_number_of_buckets)
{
	/* Ids never repeat: a respawning worker must not get a fresh burst
	 * each time. */
	for (unsigned id = 1; id <= 10000; id++) {
		cz_log_peer(id, CZ_LOG_WARN, "worker %u", id);
	}
	cr_assert_leq(lines(logged()), (CZ_LOG_PEER_BUCKETS - 1) * CZ_LOG_PEER_BURST);
}

Test(log, hidden_levels_spend_nothing)
{
	for (int i = 0; i < 100; i++) {
		cz_log_peer(5, CZ_LOG_DEBUG, "not shown");
	}
	cz_log_peer(5, CZ_LOG_WARN, "shown");
	cr_assert_str_eq(logged(), "clusterize: warning: shown\n");
}
