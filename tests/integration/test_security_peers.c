/*
 * What a peer of the primary can do (issue 12, findings 4-11): only the
 * launcher's own workers may talk to it, what a process acquired goes
 * with it, and nothing a worker sends makes the primary spin, fill a disk
 * or print what the worker chose unescaped.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "czt.h"
#include "czt_ops.h"

TestSuite(security_peers, .init = czt_setup, .fini = czt_ops_teardown, .timeout = 120);

static const char *ctl_path(void)
{
	static char path[300];

	snprintf(path, sizeof(path), "%s/c.sock", czt_tmpdir());
	return path;
}

/* Whether text holds a byte a terminal acts on (ESC, or another control but \n). */
static bool has_controls(const char *text)
{
	for (const unsigned char *p = (const void *)text; *p != '\0'; p++) {
		if ((*p < 0x20 && *p != '\n') || *p == 0x7f) {
			return true;
		}
	}
	return false;
}

/*
 * A worker binds a unix path made to forge an "exited" event line and
 * colour the terminal: the log and `status` show it escaped.
 */
Test(security_peers, a_unix_path_a_worker_chose_is_printed_escaped)
{
	static const char forged[] = "clusterize: worker 9 (pid 1) exited with code 0";
	char path[200], escaped[300];
	struct czt_cluster c;
	struct czt_ops_run r;

	snprintf(path, sizeof(path), "%s/a\n%s\x1b[31m.sock", czt_tmpdir(), forged);
	snprintf(escaped, sizeof(escaped), "unix %s/a\\n%s\\x1b[31m.sock", czt_tmpdir(),
		forged);
	const char *largs[] = { "--control", ctl_path(), NULL };
	const char *cmd[] = { czt_server(), "--unix", path, NULL };

	czt_cluster_start_argv(&c, 1, largs, cmd, NULL);
	char *err = czt_read(c.proc, CZT_ERR);

	cr_expect(strstr(err, escaped) != NULL, "the listening line shows '%s':\n%s", escaped,
		err);
	cr_expect_eq(czt_count(c.proc, CZT_ERR, forged), 1, "the forged text is in one line, "
		"the listening line:\n%s", err);
	cr_expect_eq(czt_count_re(c.proc, CZT_ERR, "^clusterize: worker 9 "), 0,
		"no line starts as the forged event");
	cr_expect_not(has_controls(err), "no control byte in the log");
	free(err);
	cr_assert_eq(czt_ops_client(&r, -1, NULL, "status", "--control", ctl_path(), NULL), 0,
		"status: %s", r.err);
	cr_expect(strstr(r.out, escaped + 5) != NULL, "status shows the path escaped:\n%s",
		r.out);
	cr_expect_not(has_controls(r.out), "no control byte in status:\n%s", r.out);
	cr_expect_eq(czt_ops_lines(r.out), 3, "a header, the titles, one worker:\n%s", r.out);
	czt_ops_run_free(&r);
	cr_assert_eq(czt_ops_client(&r, -1, NULL, "status", "--json", "--control", ctl_path(),
		NULL), 0);
	json_t *j = json_loads(r.out, 0, NULL);

	cr_expect_not_null(j, "status --json is still valid JSON: %s", r.out);
	json_decref(j);
	czt_ops_run_free(&r);
	czt_stop(c.proc);
}
