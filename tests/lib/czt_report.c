/*
 * czt_report: what every test program (unit and integration) tells its
 * reader beyond Criterion's own lines.  Linked into each test program.
 *
 * - "czt: skipped SUITE::TEST: REASON" for each skipped test, which
 *   Criterion's closing synthesis leaves out; scripts/test lists and counts
 *   these lines.
 * - For a test that crashed or timed out (its .fini never ran), where its
 *   files are and the end of its logs.  The test process names its
 *   directory in /tmp/czt-run-RUNNER (czt_setup); the runner, which calls
 *   these hooks, reads it.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "czt.h"

#define TAIL_BYTES 8192

static void run_file(char *path, size_t len, pid_t runner)
{
	snprintf(path, len, "/tmp/czt-run-%d", (int)runner);
}

/* In the test process: dir is the test's directory (NULL: the test is done). */
void czt_report_tmpdir(const char *dir)
{
	char path[64];
	FILE *f;

	run_file(path, sizeof(path), getppid());
	if (dir == NULL) {
		unlink(path);
		return;
	}
	f = fopen(path, "we");
	if (f != NULL) {
		fprintf(f, "%s\n", dir);
		fclose(f);
	}
}

static void print_tail(const char *path)
{
	FILE *f = fopen(path, "re");
	char buf[TAIL_BYTES + 1];
	size_t n;

	if (f == NULL) {
		return;
	}
	if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > TAIL_BYTES) {
		fseek(f, -TAIL_BYTES, SEEK_END);
	} else {
		rewind(f);
	}
	n = fread(buf, 1, TAIL_BYTES, f);
	buf[n] = '\0';
	fclose(f);
	fprintf(stderr, "---- %s (its end) ----\n%s%s", path, buf,
		n > 0 && buf[n - 1] != '\n' ? "\n" : "");
}

/* The logs (*.out, *.err) in the directory the crashed test left behind. */
static void report_left_behind(const struct criterion_test_stats *st)
{
	char path[64], dir[PATH_MAX];
	FILE *f;
	DIR *d;
	struct dirent *e;

	run_file(path, sizeof(path), getpid());
	f = fopen(path, "re");
	if (f == NULL) {
		return;
	}
	if (fgets(dir, sizeof(dir), f) == NULL) {
		dir[0] = '\0';
	}
	fclose(f);
	unlink(path);
	dir[strcspn(dir, "\n")] = '\0';
	d = dir[0] != '\0' ? opendir(dir) : NULL;
	if (d == NULL) {
		return;
	}
	fprintf(stderr, "czt: %s::%s %s; its files are kept in %s\n", st->test->category,
		st->test->name, st->timed_out ? "timed out" : "crashed", dir);
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		char file[PATH_MAX + 256];

		if (len > 4 && (strcmp(e->d_name + len - 4, ".out") == 0 ||
			strcmp(e->d_name + len - 4, ".err") == 0)) {
			snprintf(file, sizeof(file), "%s/%s", dir, e->d_name);
			print_tail(file);
		}
	}
	closedir(d);
}

ReportHook(POST_TEST)(struct criterion_test_stats *st)
{
	if (st->test_status == CR_STATUS_SKIPPED) {
		fprintf(stderr, "czt: skipped %s::%s: %s\n", st->test->category, st->test->name,
			st->message != NULL ? st->message : "(no reason given)");
	}
	if (st->timed_out) {
		report_left_behind(st);
	}
}

ReportHook(TEST_CRASH)(struct criterion_test_stats *st)
{
	report_left_behind(st);
}
