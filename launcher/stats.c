/* The launcher's counters (stats.h). */
#include "stats.h"

struct cz_stats cz_stats;
uint64_t cz_stats_now_ns;

const uint64_t cz_stats_wait_bounds_ns[CZ_STATS_WAIT_BUCKETS] = {
	100000, 250000, 500000,
	1000000, 2500000, 5000000,
	10000000, 25000000, 50000000,
	100000000, 250000000, 500000000,
	1000000000,
};

const char *const cz_stats_wait_bounds_text[CZ_STATS_WAIT_BUCKETS] = {
	"0.0001", "0.00025", "0.0005",
	"0.001", "0.0025", "0.005",
	"0.01", "0.025", "0.05",
	"0.1", "0.25", "0.5",
	"1",
};

void cz_stats_wait_observe(struct cz_stats_wait *w, uint64_t since_ns)
{
	uint64_t ns;
	unsigned i = 0;

	if (since_ns == 0) {
		return;
	}
	/* The clock is read once per event: a connection accepted later in
	 * the same event is not older than it. */
	ns = cz_stats_now_ns > since_ns ? cz_stats_now_ns - since_ns : 0;
	while (i < CZ_STATS_WAIT_BUCKETS && ns > cz_stats_wait_bounds_ns[i]) {
		i++;
	}
	w->buckets[i]++;
	w->count++;
	w->sum_ns += ns;
}
