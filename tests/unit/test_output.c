/*
 * The line assembly of --prefix-output: whatever the pipe's reads look
 * like, what comes out is whole "[ID] " lines, one per emit.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "output.h"

#define MAX_LINES 64

static struct sink {
	size_t n;
	char *lines[MAX_LINES];
} sink;

static struct cz_output_line line;

static void collect(void *ctx, const char *s, size_t len)
{
	struct sink *k = ctx;

	cr_assert_lt(k->n, MAX_LINES);
	k->lines[k->n] = strndup(s, len);
	cr_assert_not_null(k->lines[k->n]);
	k->n++;
}

static void feed(const char *s)
{
	cz_output_line_feed(&line, s, strlen(s), collect, &sink);
}

static void setup(void)
{
	memset(&sink, 0, sizeof(sink));
	cz_output_line_init(&line, 7);
}

static void teardown(void)
{
	for (size_t i = 0; i < sink.n; i++) {
		free(sink.lines[i]);
	}
}

TestSuite(output, .init = setup, .fini = teardown);

Test(output, one_line)
{
	feed("hello\n");
	cr_assert_eq(sink.n, 1);
	cr_assert_str_eq(sink.lines[0], "[7] hello\n");
}

Test(output, split_across_reads)
{
	feed("hel");
	cr_assert_eq(sink.n, 0);
	feed("lo wor");
	cr_assert_eq(sink.n, 0);
	feed("ld\nne");
	cr_assert_eq(sink.n, 1);
	cr_assert_str_eq(sink.lines[0], "[7] hello world\n");
	feed("xt\n");
	cr_assert_eq(sink.n, 2);
	cr_assert_str_eq(sink.lines[1], "[7] next\n");
}

Test(output, several_lines_in_one_read)
{
	feed("a\nbb\n\nccc\nrest");
	cr_assert_eq(sink.n, 4);
	cr_assert_str_eq(sink.lines[0], "[7] a\n");
	cr_assert_str_eq(sink.lines[1], "[7] bb\n");
	cr_assert_str_eq(sink.lines[2], "[7] \n");
	cr_assert_str_eq(sink.lines[3], "[7] ccc\n");
}

Test(output, eof_flushes_a_partial_line)
{
	feed("no newline");
	cz_output_line_flush(&line, collect, &sink);
	cr_assert_eq(sink.n, 1);
	cr_assert_str_eq(sink.lines[0], "[7] no newline\n");
	cz_output_line_flush(&line, collect, &sink);
	cr_assert_eq(sink.n, 1, "nothing left to flush");
}

Test(output, a_long_line_is_cut_when_the_buffer_fills)
{
	static char big[CZ_OUTPUT_LINE_MAX * 2 + 10];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 2] = '\n';
	feed(big);
	cr_assert_eq(sink.n, 3);
	cr_assert_eq(strlen(sink.lines[0]), 4 + CZ_OUTPUT_LINE_MAX + 1);
	cr_assert_eq(strlen(sink.lines[1]), 4 + CZ_OUTPUT_LINE_MAX + 1);
	cr_assert_str_eq(sink.lines[2], "[7] xxxxxxxx\n");
	for (size_t i = 0; i < 2; i++) {
		cr_assert_eq(strncmp(sink.lines[i], "[7] xxx", 7), 0);
		cr_assert_eq(sink.lines[i][strlen(sink.lines[i]) - 1], '\n');
	}
}

Test(output, a_line_of_exactly_the_maximum_is_one_line)
{
	static char big[CZ_OUTPUT_LINE_MAX + 2];

	memset(big, 'y', CZ_OUTPUT_LINE_MAX);
	big[CZ_OUTPUT_LINE_MAX] = '\0';
	feed(big);
	cr_assert_eq(sink.n, 1, "a full buffer is written out");
	feed("\n");
	cr_assert_eq(sink.n, 2);
	cr_assert_str_eq(sink.lines[1], "[7] \n");
}

Test(output, byte_by_byte)
{
	const char *s = "ab\ncd\n";

	for (size_t i = 0; i < strlen(s); i++) {
		cz_output_line_feed(&line, s + i, 1, collect, &sink);
	}
	cr_assert_eq(sink.n, 2);
	cr_assert_str_eq(sink.lines[0], "[7] ab\n");
	cr_assert_str_eq(sink.lines[1], "[7] cd\n");
}

Test(output, prefix_carries_large_ids)
{
	cz_output_line_init(&line, 4294967295u);
	feed("z\n");
	cr_assert_str_eq(sink.lines[0], "[4294967295] z\n");
}
