/*
 * The launcher's counters, for the metrics endpoint (metrics.h).  Bumping
 * one is a plain increment: the launcher runs on one thread, and the
 * endpoint is served by the same loop, so nothing needs a lock or an
 * atomic.  Counters of the supervisor live in `cz_stats`; each rr listener
 * has its own struct cz_stats_listener.
 *
 * How long a connection waits in the primary (from accept until it is
 * first sent to a worker's channel) is measured on a clock read once per
 * loop event, not once per connection: cz_stats_clock() at the start of
 * the callback that accepts or sends, cz_stats_now_ns in between.
 */
#ifndef CZ_LAUNCHER_STATS_H
#define CZ_LAUNCHER_STATS_H

#include <stdint.h>
#include <time.h>

/* Upper bounds of the wait histogram's buckets: 100 µs to 1 s. */
#define CZ_STATS_WAIT_BUCKETS 13
extern const uint64_t cz_stats_wait_bounds_ns[CZ_STATS_WAIT_BUCKETS];
/* The same bounds in seconds, as the exposition format writes them. */
extern const char *const cz_stats_wait_bounds_text[CZ_STATS_WAIT_BUCKETS];

struct cz_stats_wait {
	uint64_t buckets[CZ_STATS_WAIT_BUCKETS + 1]; /* not cumulative; last: +Inf */
	uint64_t count;
	uint64_t sum_ns;
};

struct cz_stats_listener {
	uint64_t accepted;      /* accept4() gave a connection */
	uint64_t redispatched;  /* taken back from a worker, sent again */
	uint64_t dropped;       /* closed without being served */
	struct cz_stats_wait wait;
};

struct cz_stats {
	uint64_t restarts;         /* workers replaced after exiting unasked */
	uint64_t reloads_started;
	uint64_t reloads_finished;
	uint64_t reloads_aborted;
	uint64_t giveups;          /* crash loops given up on */
};

extern struct cz_stats cz_stats;

/* CLOCK_MONOTONIC in ns as of the last cz_stats_clock(). */
extern uint64_t cz_stats_now_ns;

static inline uint64_t cz_stats_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	cz_stats_now_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	return cz_stats_now_ns;
}

/* A connection accepted at `since_ns` (0: unknown) was sent now. */
void cz_stats_wait_observe(struct cz_stats_wait *w, uint64_t since_ns);

#endif
