/*
 * The exposition format writer: families, samples, label escaping and the
 * cumulative histogram, byte for byte as the format's specification says.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "expo.h"

static struct cz_expo e;

static void setup(void)
{
	cz_expo_init(&e);
}

static void teardown(void)
{
	cz_expo_free(&e);
}

TestSuite(expo, .init = setup, .fini = teardown);

Test(expo, family_and_plain_samples)
{
	cz_expo_family(&e, "x_total", "counter", "Things.");
	cz_expo_u64(&e, "x_total", NULL, 18446744073709551615u);
	cz_expo_double(&e, "y_seconds", NULL, 0.25);
	cr_assert_str_eq(e.buf, "# HELP x_total Things.\n# TYPE x_total counter\n"
		"x_total 18446744073709551615\ny_seconds 0.25\n");
}

Test(expo, label_values_are_escaped)
{
	struct cz_expo_labels l = { 0 };

	cz_expo_label(&l, "address", "unix /tmp/a\"b\\c\nd");
	cz_expo_label_u(&l, "id", 7);
	cz_expo_u64(&e, "m", &l, 1);
	cr_assert_str_eq(e.buf, "m{address=\"unix /tmp/a\\\"b\\\\c\\nd\",id=\"7\"} 1\n");
}

Test(expo, help_escapes_backslash_and_newline_only)
{
	cz_expo_family(&e, "m", "gauge", "a \"q\" \\ b\nc");
	cr_assert_str_eq(e.buf, "# HELP m a \"q\" \\\\ b\\nc\n# TYPE m gauge\n");
}

Test(expo, an_oversized_label_value_is_cut_but_stays_quoted)
{
	static char big[4000];
	struct cz_expo_labels l = { 0 };

	memset(big, '"', sizeof(big) - 1);
	cz_expo_label(&l, "k", big);
	cr_assert_lt(l.len, sizeof(l.s));
	cr_assert_eq(l.s[l.len - 1], '"');
	cr_assert_eq(l.s[l.len - 2], '"', "ends on an escaped quote, not half of one");
	cr_assert_eq(l.s[l.len - 3], '\\');
	cz_expo_label(&l, "next", "v");
	cr_assert_eq(strstr(l.s, "next") == NULL || l.s[l.len - 1] == '"', 1);
}

Test(expo, histogram_buckets_are_cumulative)
{
	struct cz_stats_wait w = { 0 };
	struct cz_expo_labels l = { 0 };

	cz_stats_now_ns = 10000000000ull;
	cz_stats_wait_observe(&w, cz_stats_now_ns - 50000);      /* 50 µs */
	cz_stats_wait_observe(&w, cz_stats_now_ns - 100000);     /* 100 µs: le 0.0001 */
	cz_stats_wait_observe(&w, cz_stats_now_ns - 3000000);    /* 3 ms */
	cz_stats_wait_observe(&w, cz_stats_now_ns - 2000000000); /* 2 s: +Inf */
	cz_stats_wait_observe(&w, 0);                            /* unknown: ignored */
	cz_expo_label(&l, "a", "b");
	cz_expo_wait(&e, "w_seconds", &l, &w);
	cr_assert(strstr(e.buf, "w_seconds_bucket{a=\"b\",le=\"0.0001\"} 2\n") != NULL, "%s", e.buf);
	cr_assert(strstr(e.buf, "w_seconds_bucket{a=\"b\",le=\"0.0025\"} 2\n") != NULL, "%s", e.buf);
	cr_assert(strstr(e.buf, "w_seconds_bucket{a=\"b\",le=\"0.005\"} 3\n") != NULL, "%s", e.buf);
	cr_assert(strstr(e.buf, "w_seconds_bucket{a=\"b\",le=\"1\"} 3\n") != NULL, "%s", e.buf);
	cr_assert(strstr(e.buf, "w_seconds_bucket{a=\"b\",le=\"+Inf\"} 4\n") != NULL, "%s", e.buf);
	cr_assert(strstr(e.buf, "w_seconds_sum{a=\"b\"} 2.00315\n") != NULL, "%s", e.buf);
	cr_assert(strstr(e.buf, "w_seconds_count{a=\"b\"} 4\n") != NULL, "%s", e.buf);
}

Test(expo, a_clock_behind_the_accept_counts_as_no_wait)
{
	struct cz_stats_wait w = { 0 };

	cz_stats_now_ns = 1000;
	cz_stats_wait_observe(&w, 5000);
	cr_assert_eq(w.buckets[0], 1);
	cr_assert_eq(w.sum_ns, 0);
}
