/*
 * What the README promises about the environment and the launcher's runtime
 * failures: CLUSTERIZE_SHIM picks the library the workers preload (and one
 * that is not there is exit 1); without any shim, or without its control
 * socket, the launcher exits 1 with one line and starts nothing;
 * CLUSTERIZE_LOG sets which lines the launcher writes; CLUSTERIZE_DEBUG
 * makes the shim say what it does, and only when set to something else
 * than "" or "0".
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "czt.h"
#include "czt_ops.h"

TestSuite(env, .init = czt_setup, .fini = czt_teardown, .timeout = 60);

/* Copies src to dst with mode 0755. */
static void copy_file(const char *src, const char *dst)
{
	char cmd[2200];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 755 '%s'", src, dst, dst);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* Whether pid has `path` mapped (/proc/PID/maps). */
static bool maps_file(pid_t pid, const char *path)
{
	char file[64], line[1024];
	bool found = false;
	FILE *f;

	snprintf(file, sizeof(file), "/proc/%d/maps", (int)pid);
	f = fopen(file, "re");
	cr_assert_not_null(f, "%s: %s", file, strerror(errno));
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		found = strlen(line) >= strlen(path) &&
			strcmp(line + strlen(line) - strlen(path), path) == 0;
	}
	fclose(f);
	return found;
}

Test(env, clusterize_shim_is_the_library_the_workers_preload)
{
	char dir[300], shim[400], env_shim[420];
	struct czt_cluster c;
	const char *cmd[] = { czt_server(), NULL };

	snprintf(dir, sizeof(dir), "%s/alt", czt_tmpdir());
	cr_assert_eq(mkdir(dir, 0755), 0);
	snprintf(shim, sizeof(shim), "%s/libclusterize.so", dir);
	copy_file(czt_shim(), shim);
	snprintf(env_shim, sizeof(env_shim), "CLUSTERIZE_SHIM=%s", shim);
	const char *env[] = { env_shim, NULL };

	czt_cluster_start_argv(&c, 2, NULL, cmd, env);
	for (int i = 0; i < c.nw; i++) {
		cr_expect(maps_file(c.w[i].pid, shim), "worker %d preloads %s", c.w[i].id, shim);
		cr_expect(!maps_file(c.w[i].pid, czt_shim()), "worker %d does not preload the "
			"build's %s", c.w[i].id, czt_shim());
	}
	czt_stop(c.proc);
}

static bool exited_or_forked(void *v)
{
	struct czt_proc *p = v;

	return czt_exited(p) || czt_count(p, CZT_ERR, " forked") > 0;
}

/* The launcher ends at once with 1 and the one line `want`, starting nothing. */
static void expect_runtime_failure(struct czt_proc *p, const char *want)
{
	/* A worker started is a failure already: no need to wait for more. */
	czt_wait_until(exited_or_forked, p, 10000);
	czt_expect_exit(p, CZT_EXITED(1), 1000);
	char *err = czt_read(p, CZT_ERR);

	cr_expect_eq(czt_ops_lines(err), 1, "one line on stderr, got:\n%s", err);
	cr_expect(strstr(err, want) != NULL, "it says '%s', got:\n%s", want, err);
	cr_expect_eq(czt_count(p, CZT_ERR, " forked"), 0, "no worker was started");
	free(err);
}

Test(env, missing_clusterize_shim_exits_1)
{
	char path[300], env_shim[320], want[400];

	snprintf(path, sizeof(path), "%s/no-such-lib.so", czt_tmpdir());
	snprintf(env_shim, sizeof(env_shim), "CLUSTERIZE_SHIM=%s", path);
	const char *env[] = { env_shim, czt_asan_options(), NULL };
	struct czt_proc *p = czt_launch(env, "-w", "1", "--", czt_server(), NULL);

	snprintf(want, sizeof(want), "clusterize: CLUSTERIZE_SHIM=%s: No such file or directory",
		path);
	expect_runtime_failure(p, want);
}

/* A launcher with no shim next to it (a copy of the binary elsewhere) nor installed. */
Test(env, no_shim_anywhere_exits_1)
{
	char exe[300];
	struct stat st;

	if (stat(CZ_SHIM_INSTALL_PATH, &st) == 0) {
		cr_skip_test("a shim is installed at %s", CZ_SHIM_INSTALL_PATH);
	}
	snprintf(exe, sizeof(exe), "%s/clusterize", czt_tmpdir());
	copy_file(czt_launcher(), exe);
	const char *argv[] = { exe, "-w", "1", "--", czt_server(), NULL };
	const char *env[] = { "CLUSTERIZE_SHIM", czt_asan_options(), NULL };

	expect_runtime_failure(czt_spawn(argv, env), "clusterize: cannot find libclusterize.so");
}

Test(env, unusable_control_socket_exits_1)
{
	char path[300], want[400];

	snprintf(path, sizeof(path), "%s/no-such-dir/c.sock", czt_tmpdir());
	const char *env[] = { czt_asan_options(), NULL };
	struct czt_proc *p = czt_launch(env, "-w", "1", "--control", path, "--", czt_server(),
		NULL);

	snprintf(want, sizeof(want), "clusterize: control socket %s: No such file or directory",
		path);
	expect_runtime_failure(p, want);
}

/* clusterize -w 1 -- cz-server with CLUSTERIZE_LOG=level, until it listens. */
static struct czt_proc *start_logging(const char *level)
{
	static char env_log[64];
	const char *env[] = { env_log, czt_asan_options(), NULL };
	struct czt_proc *p;

	snprintf(env_log, sizeof(env_log), "CLUSTERIZE_LOG=%s", level);
	p = czt_launch(env, "-w", "1", "--", czt_server(), NULL);
	cr_assert_eq(czt_wait_line(p, CZT_OUT, "port ", 1, 20000), 1, "the worker listens");
	return p;
}

Test(env, clusterize_log_sets_the_launchers_lines)
{
	struct czt_proc *p = start_logging("warn");

	czt_stop(p);
	cr_expect_eq(czt_count(p, CZT_ERR, "clusterize: worker"), 0,
		"warn: no forked, online, listening or exit lines");
	cr_expect_eq(czt_count(p, CZT_ERR, "clusterize: debug: "), 0, "warn: no debug lines");

	p = start_logging("info");
	czt_stop(p);
	cr_expect_eq(czt_count(p, CZT_ERR, ") listening on "), 1, "info: the listening line");
	cr_expect_eq(czt_count(p, CZT_ERR, "clusterize: debug: "), 0, "info: no debug lines");

	p = start_logging("debug");
	czt_stop(p);
	cr_expect_eq(czt_count(p, CZT_ERR, ") listening on "), 1, "debug: the listening line");
	cr_expect_geq(czt_count(p, CZT_ERR, "clusterize: debug: worker 1: hello from pid "), 1,
		"debug: the debug lines too");
	cr_expect_eq(czt_count(p, CZT_ERR, "clusterize: trace: "), 0, "debug: no trace lines");

	p = start_logging("trace");
	czt_stop(p);
	cr_expect_geq(czt_count(p, CZT_ERR, "clusterize: debug: "), 1, "trace: debug lines");
}

Test(env, bad_clusterize_log_is_a_usage_error)
{
	const char *env[] = { "CLUSTERIZE_LOG=loud", NULL };
	struct czt_proc *p = czt_launch(env, "--", "true", NULL);

	czt_expect_exit(p, CZT_EXITED(2), 10000);
	cr_expect_eq(czt_count(p, CZT_ERR, "clusterize: invalid log level 'loud' in "
		"CLUSTERIZE_LOG"), 1, "the line names the variable and the value");
}

/* clusterize -w 1 -- cz-server with CLUSTERIZE_DEBUG=value (NULL: unset). */
static void check_shim_debug(const char *value, bool on)
{
	static char env_debug[64];
	struct czt_cluster c;
	const char *cmd[] = { czt_server(), NULL };
	const char *env[] = { env_debug, NULL };
	char want[128];

	if (value != NULL) {
		snprintf(env_debug, sizeof(env_debug), "CLUSTERIZE_DEBUG=%s", value);
	} else {
		snprintf(env_debug, sizeof(env_debug), "CLUSTERIZE_DEBUG");
	}
	czt_cluster_start_argv(&c, 1, NULL, cmd, env);
	czt_stop(c.proc);
	snprintf(want, sizeof(want), "clusterize-shim[%d]: ", (int)c.w[0].pid);
	if (!on) {
		cr_expect_eq(czt_count(c.proc, CZT_ERR, "clusterize-shim["), 0,
			"CLUSTERIZE_DEBUG=%s: the shim says nothing", value != NULL ? value : "(unset)");
		return;
	}
	cr_expect_eq(czt_count(c.proc, CZT_ERR, "]: worker 1 attached to the primary"), 1,
		"the shim says it attached");
	cr_expect_eq(czt_count_re(c.proc, CZT_ERR, "\\]: fd [0-9]+ bound through the primary: "
		"key [0-9]+$"), 1, "the shim says it bound");
	cr_expect_eq(czt_count_re(c.proc, CZT_ERR, "\\]: fd [0-9]+ listening \\(rr, key [0-9]+, "
		"channel [0-9]+\\)$"), 1, "the shim says it listens");
	cr_expect_geq(czt_count(c.proc, CZT_ERR, want), 3, "every line names the worker's pid "
		"(%s)", want);
}

Test(env, clusterize_debug_makes_the_shim_talk)
{
	check_shim_debug("1", true);
}

Test(env, clusterize_debug_off)
{
	check_shim_debug("0", false);
	check_shim_debug("", false);
	check_shim_debug(NULL, false);
}

/*
 * In a node worker the shim says what it made of Node's variables: a
 * cluster worker on the launcher's channel, or with --node-ipc off a plain
 * server without NODE_UNIQUE_ID.
 */
static void check_node_debug(const char *ipc, const char *what)
{
	const char *node = czt_which("node");
	const char *largs[] = { "--node-ipc", ipc, NULL };
	struct czt_cluster c;
	char want[160];

	if (node == NULL) {
		cr_skip_test("node is not installed");
	}
	node = strdup(node);
	const char *cmd[] = { node, czt_source("tests/servers/http.js"), "0", NULL };
	const char *env[] = { "CLUSTERIZE_DEBUG=1", NULL };

	czt_cluster_start_argv(&c, 1, largs, cmd, env);
	czt_stop(c.proc);
	snprintf(want, sizeof(want), "clusterize-shim[%d]: node: %s", (int)c.w[0].pid, what);
	cr_expect_eq(czt_count(c.proc, CZT_ERR, want), 1, "'%s'", want);
	free((void *)node);
}

Test(env, clusterize_debug_tells_what_the_shim_did_to_node)
{
	check_node_debug("on", "a cluster worker on the launcher's channel");
}

Test(env, clusterize_debug_tells_what_the_shim_did_to_node_ipc_off)
{
	check_node_debug("off", "removed NODE_UNIQUE_ID");
}
