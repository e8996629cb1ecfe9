/*
 * The command line: usage errors exit 2 with one "clusterize:" line and fork
 * nothing; commands that cannot run exit 127/126 without retrying; --help and
 * --version; the command's own options are left to the command.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "czt.h"

TestSuite(cli, .init = czt_setup, .fini = czt_teardown, .timeout = 60);

struct usage_case {
	char args[4][24];	/* launcher arguments before the command; "" ends */
	char env[64];		/* one NAME=value, or "" */
	char mention[48];	/* the message names this */
	bool command;		/* append "-- true" */
};

ParameterizedTestParameters(cli, usage_errors_exit_2)
{
	static struct usage_case cases[] = {
		{ { "-w", "0" }, "", "0", true },
		{ { "-w", "abc" }, "", "abc", true },
		{ { "-w", "1025" }, "", "1025", true },
		{ { "-w", "-3" }, "", "-3", true },
		{ { "--workers=2x" }, "", "2x", true },
		{ { "-s", "bogus" }, "", "bogus", true },
		{ { "--bogus-option" }, "", "bogus-option", true },
		{ { "-w", "2" }, "", "command", false },
		{ { "" }, "", "command", false },
		{ { "-w" }, "", "-w", false },
		{ { "-g", "soon" }, "", "soon", true },
		{ { "" }, "NODE_CLUSTER_SCHED_POLICY=bogus", "bogus", true },
		{ { "" }, "NODE_CLUSTER_SCHED_POLICY=roundrobin", "roundrobin", true },
	};

	return cr_make_param_array(struct usage_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct usage_case *uc, cli, usage_errors_exit_2)
{
	const char *argv[12];
	const char *env[] = { uc->env[0] != '\0' ? uc->env : NULL, NULL };
	int n = 0;

	argv[n++] = czt_launcher();
	for (int i = 0; i < 4 && uc->args[i][0] != '\0'; i++) {
		argv[n++] = uc->args[i];
	}
	if (uc->command) {
		argv[n++] = "--";
		argv[n++] = "true";
	}
	argv[n] = NULL;
	struct czt_proc *p = czt_spawn(argv, env);

	czt_expect_exit(p, CZT_EXITED(2), 10000);
	char *err = czt_read(p, CZT_ERR);

	cr_expect(strncmp(err, "clusterize: ", 12) == 0, "message starts with 'clusterize: ': %s",
		err);
	cr_expect(strstr(err, uc->mention) != NULL, "message names '%s': %s", uc->mention, err);
	cr_expect_eq(czt_count(p, CZT_ERR, " forked"), 0, "nothing forked on a usage error: %s",
		err);
	free(err);
}

Test(cli, bad_policy_message_is_exact)
{
	const char *argv[] = { czt_launcher(), "--", "true", NULL };
	const char *env[] = { "NODE_CLUSTER_SCHED_POLICY=bogus", NULL };
	struct czt_proc *p = czt_spawn(argv, env);

	czt_expect_exit(p, CZT_EXITED(2), 10000);
	cr_expect_eq(czt_count(p, CZT_ERR, "clusterize: invalid scheduling policy 'bogus' in "
		"NODE_CLUSTER_SCHED_POLICY: expected rr or none"), 1,
		"the one-line policy error of the plan");
}

Test(cli, help_exits_0_and_lists_options)
{
	const char *argv[] = { czt_launcher(), "--help", NULL };
	struct czt_proc *p = czt_spawn(argv, NULL);

	czt_expect_exit(p, CZT_EXITED(0), 10000);
	char *out = czt_read(p, CZT_OUT);

	cr_expect(strstr(out, "--workers") != NULL && strstr(out, "--sched") != NULL &&
		strstr(out, "--grace") != NULL, "--help on stdout lists the options: %s", out);
	free(out);
}

Test(cli, version_prints_project_version)
{
	const char *argv[] = { czt_launcher(), "-V", NULL };
	struct czt_proc *p = czt_spawn(argv, NULL);

	czt_expect_exit(p, CZT_EXITED(0), 10000);
	char *out = czt_read(p, CZT_OUT);

	cr_expect(strstr(out, CZ_PROJECT_VERSION) != NULL, "-V prints %s: %s",
		CZ_PROJECT_VERSION, out);
	free(out);
}

static void expect_cannot_execute(const char *cmd, int code, int err)
{
	const char *argv[] = { czt_launcher(), "-w", "3", "--", cmd, NULL };
	struct czt_proc *p = czt_spawn(argv, NULL);
	char line[512];

	czt_expect_exit(p, CZT_EXITED(code), 15000);
	snprintf(line, sizeof(line), "clusterize: cannot execute '%s': %s", cmd, strerror(err));
	cr_expect_geq(czt_count(p, CZT_ERR, line), 1, "stderr has \"%s\"", line);
	cr_expect_eq(czt_count(p, CZT_ERR, "giving up"), 0, "no crash loop for '%s'", cmd);
	cr_expect_leq(czt_count(p, CZT_ERR, " forked"), 3, "no retries for '%s'", cmd);
}

Test(cli, missing_command_exits_127)
{
	expect_cannot_execute("cz-no-such-command", 127, ENOENT);
}

Test(cli, missing_path_exits_127)
{
	expect_cannot_execute("/nonexistent/cz-no-such-command", 127, ENOENT);
}

Test(cli, non_executable_exits_126)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/not-executable", czt_tmpdir());
	int fd = open(path, O_WRONLY | O_CREAT, 0644);

	cr_assert_geq(fd, 0, "create %s", path);
	cr_assert_eq(write(fd, "#!/bin/sh\n", 10), 10);
	close(fd);
	expect_cannot_execute(path, 126, EACCES);
}

/*
 * A script whose interpreter is missing: found and executable, so only
 * the worker's exec fails (ENOENT), which says so and exits 127 once.
 */
Test(cli, missing_interpreter_exits_127)
{
	char path[512], line[700];

	snprintf(path, sizeof(path), "%s/no-interpreter", czt_tmpdir());
	int fd = open(path, O_WRONLY | O_CREAT, 0755);

	cr_assert_geq(fd, 0, "create %s", path);
	cr_assert_eq(write(fd, "#!/nonexistent/cz-interp\n", 25), 25);
	close(fd);
	const char *argv[] = { czt_launcher(), "-w", "3", "--", path, NULL };
	struct czt_proc *p = czt_spawn(argv, NULL);

	czt_expect_exit(p, CZT_EXITED(127), 15000);
	snprintf(line, sizeof(line), "clusterize: cannot execute '%s': %s", path,
		strerror(ENOENT));
	cr_expect_geq(czt_count(p, CZT_ERR, line), 1, "stderr has \"%s\"", line);
	cr_expect_eq(czt_count(p, CZT_ERR, "giving up"), 0, "no crash loop");
}

Test(cli, options_after_command_belong_to_it)
{
	/* No "--": the launcher must stop at the command and leave --port to it. */
	const char *argv[] = { czt_launcher(), "-w", "1", czt_server(), "--style", "poll",
		"--port", "0", NULL };
	struct czt_proc *p = czt_spawn(argv, (const char *[]){ czt_asan_options(), NULL });

	cr_assert_geq(czt_wait_line(p, CZT_OUT, "port ", 1, 20000), 1,
		"the server got its own options and reported its port");
	int port;

	cr_assert_eq(czt_reported_ports(p, &port, 1), 1);
	struct czt_addr a;

	czt_addr_tcp(&a, "127.0.0.1", port);
	pid_t pid = czt_ask(&a, 10000);

	cr_expect_gt(pid, 0, "the server answers on the port it reported (%d)", port);
	czt_stop(p);
}

Test(cli, quiet_hides_info_lines)
{
	const char *argv[] = { czt_launcher(), "-q", "-w", "2", "--", czt_server(), NULL };
	struct czt_proc *p = czt_spawn(argv, (const char *[]){ czt_asan_options(), NULL });

	cr_assert_geq(czt_wait_line(p, CZT_OUT, "port ", 2, 20000), 2, "both workers listen");
	cr_expect_eq(czt_count(p, CZT_ERR, "clusterize: worker"), 0,
		"-q: no forked/online/listening lines");
	czt_stop(p);
}

Test(cli, policy_env_is_case_insensitive)
{
	struct czt_cluster c;
	const char *cmd[] = { czt_server(), NULL };
	const char *env[] = { "NODE_CLUSTER_SCHED_POLICY=NONE", NULL };

	czt_cluster_start_argv(&c, 2, NULL, cmd, env);
	struct czt_addr a;

	czt_addr_tcp(&a, "127.0.0.1", c.port);
	cr_expect_gt(czt_ask(&a, 10000), 0, "NODE_CLUSTER_SCHED_POLICY=NONE serves");
	czt_stop(c.proc);
}

/* Without -w, one worker per CPU the launcher may run on (ours, inherited). */
Test(cli, default_is_one_worker_per_cpu)
{
	cpu_set_t set;
	struct czt_worker w[CZT_MAX_WORKERS];

	cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	int cpus = CPU_COUNT(&set);

	if (cpus > CZT_MAX_WORKERS) {
		cr_skip_test("%d CPUs: more workers than the test follows", cpus);
	}
	const char *argv[] = { czt_launcher(), "--", czt_server(), NULL };
	struct czt_proc *p = czt_spawn(argv, (const char *[]){ czt_asan_options(), NULL });

	/* The launcher forks all of them before it hears from any. */
	czt_wait_listening(p, 1, w, 20000);
	cr_assert_eq(czt_count(p, CZT_ERR, ") forked"), cpus, "%d CPUs, %d workers", cpus, cpus);
	cr_expect_eq(czt_wait_listening(p, cpus, w, 20000), cpus, "%d workers listen", cpus);
	czt_stop(p);
}
