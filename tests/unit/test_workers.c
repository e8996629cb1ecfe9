/* The supervisor's arithmetic: how long a crashing slot waits. */
#include <criterion/criterion.h>

#include "workers.h"

/* The README: "backs off (0.1 s, doubling up to 5 s)". */
Test(workers, backoff_doubles_from_100_ms_up_to_5_s)
{
	const uint64_t want[] = { 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000 };

	for (unsigned n = 1; n <= sizeof(want) / sizeof(want[0]); n++) {
		cr_expect_eq(cz_workers_backoff_ms(n), want[n - 1], "quick exit %u: %llu ms, "
			"expected %llu", n, (unsigned long long)cz_workers_backoff_ms(n),
			(unsigned long long)want[n - 1]);
	}
	cr_expect_eq(cz_workers_backoff_ms(64), 5000, "no overflow far out");
	cr_expect_eq(cz_workers_backoff_ms(4000000000U), 5000);
}
