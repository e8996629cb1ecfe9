/* The shim's own formatter (shim/log.c), which must match what printf would say. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static size_t fmt(char *buf, size_t n, const char *f, ...)
{
	va_list ap;
	size_t len;

	va_start(ap, f);
	len = cz_fmt(buf, n, f, ap);
	va_end(ap);
	return len;
}

/* Every conversion the shim's messages may use, against snprintf's answer. */
Test(shim_log, conversions_match_printf)
{
	char got[256], want[256];
	void *p = (void *)0x7f00beefUL;

	fmt(got, sizeof(got), "%d %i %u %x %ld %lu %lx %zu %s %c %p %% %s", -42, 7, 3000000000U,
		0xbeefU, -1234567890123L, 1234567890123UL, 0xabcdef0123UL, (size_t)99, "str", 'c',
		p, (char *)NULL);
	snprintf(want, sizeof(want), "%d %i %u %x %ld %lu %lx %zu %s %c %p %% %s", -42, 7,
		3000000000U, 0xbeefU, -1234567890123L, 1234567890123UL, 0xabcdef0123UL, (size_t)99,
		"str", 'c', p, "(null)");
	cr_expect_str_eq(got, want);
	fmt(got, sizeof(got), "%d %d", 0, -2147483647 - 1);
	cr_expect_str_eq(got, "0 -2147483648", "zero and INT_MIN");
	fmt(got, sizeof(got), "unknown %q stays, trailing %");
	cr_expect_str_eq(got, "unknown q stays, trailing ", "an unknown conversion prints its letter");
}

/* Never past the buffer, always NUL-terminated; the length is what was written. */
Test(shim_log, truncates_to_the_buffer)
{
	char buf[8];

	memset(buf, 'X', sizeof(buf));
	cr_expect_eq(fmt(buf, sizeof(buf), "%s-%d", "abcdef", 12345), 7);
	cr_expect_str_eq(buf, "abcdef-");
	cr_expect_eq(fmt(buf, 1, "%s", "abc"), 0);
	cr_expect_str_eq(buf, "");
	buf[0] = 'Y';
	cr_expect_eq(fmt(buf, 0, "%s", "abc"), 0, "n = 0 writes nothing");
	cr_expect_eq(buf[0], 'Y');
}
