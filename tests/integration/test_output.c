/*
 * --prefix-output: every line a worker prints on stdout or stderr comes out
 * of the launcher's own stdout or stderr as "[ID] line", whole, from the
 * right worker, none lost, even when the worker writes a line in pieces and
 * several workers write at once; a last line without a newline still comes
 * out (as a line) when the worker ends.  Without the option, the workers'
 * lines pass through untouched.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "czt.h"
#include "czt_ops.h"

#define WORKERS 4
#define LINES 400
#define MAX_ID 64
#define PAD "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789" \
	"abcdefghijklmnopqrstuvwxyz"

TestSuite(output, .init = czt_setup, .fini = czt_ops_teardown, .timeout = 120);

/*
 * LINES lines on each stream; on stdout each line is written in two pieces
 * (two write(2)s) with `pieces`; with `prefix`, an unterminated
 * "tail-err ID" on stderr last (unprefixed, it would glue onto the next
 * line the launcher writes).
 */
static void start_printers(struct czt_cluster *c, bool prefix, bool pieces)
{
	static char script[1024];
	const char *largs[] = { "-s", "rr", prefix ? "--prefix-output" : NULL, NULL };

	snprintf(script, sizeof(script),
		"id=$CLUSTERIZE_WORKER_ID; i=0; "
		"while [ $i -lt %d ]; do "
		"%s"
		"printf 'err %%s %%d %%s\\n' $id $i %s >&2; "
		"i=$((i+1)); done; "
		"%s"
		"exec %s --style poll",
		LINES,
		pieces ? "printf 'out %s %d ' $id $i; printf '%s\\n' " PAD "; " :
			"printf 'out %s %d %s\\n' $id $i " PAD "; ",
		PAD, prefix ? "printf 'tail-err %s' $id >&2; " : "", czt_server());
	const char *cmd[] = { "/bin/sh", "-c", script, NULL };

	czt_cluster_start_argv(c, WORKERS, largs, cmd, NULL);
	cr_assert_eq(c->nw, WORKERS);
}

struct tally {
	int seen[MAX_ID + 1][LINES];	/* by worker id, line number */
	int tails[MAX_ID + 1];
	int bad;
	char first_bad[256];
};

static void bad_line(struct tally *t, const char *line)
{
	if (t->bad++ == 0) {
		snprintf(t->first_bad, sizeof(t->first_bad), "%s", line);
	}
}

/*
 * One line of worker output: "[ID] " (if prefixed) then "<kind> ID N PAD";
 * also "[ID] port P" (cz-server) and "[ID] tail-err ID".  Anything else,
 * or an ID in the text that is not the prefix's, is a bad line.
 */
static void check_line(struct tally *t, const char *line, const char *kind, bool prefix)
{
	int pre = -1, id = -1, n = -1, used = 0, port;
	char pad[256];

	if (prefix) {
		if (sscanf(line, "[%d] %n", &pre, &used) != 1 || used == 0 || pre < 1 ||
			pre > MAX_ID) {
			bad_line(t, line);
			return;
		}
		line += used;
	}
	char word[16];

	if (sscanf(line, "%15s %d %d %255s", word, &id, &n, pad) == 4 &&
		strcmp(word, kind) == 0 && strcmp(pad, PAD) == 0 &&
		(size_t)snprintf(NULL, 0, "%s %d %d %s", kind, id, n, PAD) == strlen(line) &&
		id >= 1 && id <= MAX_ID && n >= 0 && n < LINES && (!prefix || id == pre)) {
		t->seen[id][n]++;
	} else if (prefix && sscanf(line, "tail-err %d", &id) == 1 && id == pre &&
		(size_t)snprintf(NULL, 0, "tail-err %d", id) == strlen(line)) {
		t->tails[id]++;
	} else if (sscanf(line, "port %d", &port) != 1) {
		bad_line(t, line);
	}
}

/* Checks the stream; lines starting with "clusterize: " are the launcher's. */
static void check_stream(const struct czt_proc *p, enum czt_stream s, const char *kind,
	bool prefix, const struct czt_cluster *c)
{
	struct tally *t = calloc(1, sizeof(*t));
	char *text = czt_read(p, s), *save = NULL;
	const char *name = s == CZT_OUT ? "stdout" : "stderr";

	cr_assert_not_null(t);
	for (char *line = strtok_r(text, "\n", &save); line != NULL;
		line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "clusterize: ", 12) != 0 || s == CZT_OUT) {
			check_line(t, line, kind, prefix);
		}
	}
	cr_expect_eq(t->bad, 0, "%s: %d lines are not a whole line of one worker%s, first: '%s'",
		name, t->bad, prefix ? " under its own [ID]" : "", t->first_bad);
	for (int k = 0; k < c->nw; k++) {
		int id = c->w[k].id, missing = 0, doubled = 0;

		cr_assert(id >= 1 && id <= MAX_ID);
		for (int n = 0; n < LINES; n++) {
			missing += t->seen[id][n] == 0;
			doubled += t->seen[id][n] > 1;
		}
		cr_expect_eq(missing, 0, "%s: worker %d: %d of %d '%s' lines missing", name, id,
			missing, LINES, kind);
		cr_expect_eq(doubled, 0, "%s: worker %d: %d lines came out twice", name, id,
			doubled);
		if (prefix && s == CZT_ERR) {
			cr_expect_eq(t->tails[id], 1, "%s: worker %d's unterminated last line came "
				"out once as '[%d] tail-err %d', %d times", name, id, id, id,
				t->tails[id]);
		}
	}
	free(text);
	free(t);
}

Test(output, prefixed_lines_are_whole_attributed_and_complete)
{
	struct czt_cluster c;

	start_printers(&c, true, true);
	/* Everything printed before listening, but relayed asynchronously. */
	cr_expect_eq(czt_wait_re(c.proc, CZT_OUT, "^\\[[0-9]+\\] out ", WORKERS * LINES, 20000),
		WORKERS * LINES, "every stdout line is relayed");
	cr_expect_eq(czt_wait_re(c.proc, CZT_ERR, "^\\[[0-9]+\\] err ", WORKERS * LINES, 20000),
		WORKERS * LINES, "every stderr line is relayed");
	czt_stop(c.proc);
	check_stream(c.proc, CZT_OUT, "out", true, &c);
	check_stream(c.proc, CZT_ERR, "err", true, &c);
	cr_expect_eq(czt_count_re(c.proc, CZT_ERR, "^\\[[0-9]+\\] clusterize: "), 0,
		"the launcher's own lines are not prefixed");
}

Test(output, without_the_option_lines_pass_through_unprefixed)
{
	struct czt_cluster c;

	start_printers(&c, false, false);
	cr_expect_eq(czt_wait_re(c.proc, CZT_OUT, "^out ", WORKERS * LINES, 20000),
		WORKERS * LINES, "every stdout line is there");
	cr_expect_eq(czt_wait_re(c.proc, CZT_ERR, "^err ", WORKERS * LINES, 20000),
		WORKERS * LINES, "every stderr line is there");
	czt_stop(c.proc);
	cr_expect_eq(czt_count_re(c.proc, CZT_OUT, "^\\["), 0, "no stdout line is prefixed");
	cr_expect_eq(czt_count_re(c.proc, CZT_ERR, "^\\["), 0, "no stderr line is prefixed");
	check_stream(c.proc, CZT_OUT, "out", false, &c);
}
