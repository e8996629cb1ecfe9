#include <criterion/criterion.h>
#include <sched.h>
#include <signal.h>
#include <string.h>

#include "cli.h"

#define MAX_ARGS 32

struct run {
	char *argv[MAX_ARGS + 1];
	int argc;
	struct cz_opts o;
	char err[256];
	int rc;
};

/* Parses a NULL-terminated list of arguments after "clusterize". */
static void parse_with(struct run *r, const char *sched_env,
	const char *log_env, const char *const *args)
{
	memset(r, 0, sizeof(*r));
	r->argv[r->argc++] = (char *)"clusterize";
	for (size_t i = 0; args[i] != NULL && r->argc < MAX_ARGS; i++) {
		r->argv[r->argc++] = (char *)args[i];
	}
	r->rc = cz_cli_parse(r->argc, r->argv, sched_env, log_env, &r->o,
		r->err, sizeof(r->err));
}

#define PARSE(r, sched, log, ...) \
	parse_with(r, sched, log, (const char *const[]){ __VA_ARGS__, NULL })

Test(cli, defaults)
{
	struct run r;

	PARSE(&r, NULL, NULL, "server", "--port", "8000");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_expect_eq(r.o.action, CZ_CLI_RUN);
	cr_expect_eq(r.o.workers, cz_cli_default_workers());
	cr_expect_geq(r.o.workers, 1);
	cr_expect_eq(r.o.sched, CZ_MODE_RR);
	cr_expect_float_eq(r.o.grace, 10.0, 1e-9);
	cr_expect_float_eq(r.o.min_uptime, 1.0, 1e-9);
	cr_expect_float_eq(r.o.hello_timeout, 5.0, 1e-9);
	cr_expect_eq(r.o.max_restarts, 5);
	cr_expect_eq(r.o.log_level, CZ_LOG_INFO);
	cr_assert_eq(r.o.cmd_argc, 3);
	cr_expect_str_eq(r.o.cmd_argv[0], "server");
	cr_expect_str_eq(r.o.cmd_argv[2], "8000");
	cr_expect_null(r.o.cmd_argv[3]);
}

Test(cli, worker_counts)
{
	struct run r;

	PARSE(&r, NULL, NULL, "-w", "4", "x");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_expect_eq(r.o.workers, 4);
	PARSE(&r, NULL, NULL, "-w1024", "x");
	cr_expect_eq(r.o.workers, 1024);
	PARSE(&r, NULL, NULL, "--workers=7", "x");
	cr_expect_eq(r.o.workers, 7);
	PARSE(&r, NULL, NULL, "--workers", "2", "x");
	cr_expect_eq(r.o.workers, 2);
	PARSE(&r, NULL, NULL, "-qw3", "x");
	cr_expect_eq(r.o.workers, 3);
	cr_expect_eq(r.o.log_level, CZ_LOG_WARN);
}

struct bad_case {
	const char *args[5];
	const char *sched_env;
	const char *log_env;
	const char *needle; /* must appear in the message */
};

static const struct bad_case bad_cases[] = {
	{ { "-w", "0", "x" }, NULL, NULL, "invalid worker count '0'" },
	{ { "-w", "-1", "x" }, NULL, NULL, "invalid worker count '-1'" },
	{ { "-w", "abc", "x" }, NULL, NULL, "invalid worker count 'abc'" },
	{ { "-w", "1025", "x" }, NULL, NULL, "invalid worker count '1025'" },
	{ { "-w", "4x", "x" }, NULL, NULL, "'4x'" },
	{ { "-w", " 4", "x" }, NULL, NULL, "' 4'" },
	{ { "--workers=", "x" }, NULL, NULL, "invalid worker count ''" },
	{ { "x", "-w" }, "bogus", NULL, "'bogus' in NODE_CLUSTER_SCHED_POLICY" },
	{ { "-s", "roundrobin", "x" }, NULL, NULL,
		"invalid scheduling policy 'roundrobin'" },
	{ { "x" }, NULL, "loud", "invalid log level 'loud' in CLUSTERIZE_LOG" },
	{ { "-g", "abc", "x" }, NULL, NULL, "invalid duration 'abc' for -g" },
	{ { "--grace", "-1", "x" }, NULL, NULL, "invalid duration '-1'" },
	{ { "--min-uptime=nan", "x" }, NULL, NULL, "'nan' for --min-uptime" },
	{ { "--hello-timeout", "1e3", "x" }, NULL, NULL, "'1e3'" },
	{ { "--max-restarts", "0", "x" }, NULL, NULL,
		"invalid count '0' for --max-restarts" },
	{ { "--bogus", "x" }, NULL, NULL, "unknown option '--bogus'" },
	{ { "--bogus=3", "x" }, NULL, NULL, "unknown option '--bogus'" },
	{ { "-x", "cmd" }, NULL, NULL, "unknown option '-x'" },
	{ { "--work", "2", "x" }, NULL, NULL, "unknown option '--work'" },
	{ { "--quiet=1", "x" }, NULL, NULL, "'--quiet' takes no value" },
	{ { "-w" }, NULL, NULL, "option '-w' requires a value" },
	{ { "x", "--sched" }, NULL, NULL, NULL }, /* x is the command: ok */
	{ { "--grace" }, NULL, NULL, "option '--grace' requires a value" },
	{ { NULL }, NULL, NULL, "no command given" },
	{ { "-w", "2" }, NULL, NULL, "no command given" },
	{ { "--" }, NULL, NULL, "no command given" },
};

Test(cli, bad_arguments_name_the_problem)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct run r;

		parse_with(&r, c->sched_env, c->log_env, c->args);
		if (c->needle == NULL) {
			cr_expect_eq(r.rc, 0, "case %zu: %s", i, r.err);
			continue;
		}
		cr_expect_eq(r.rc, -1, "case %zu (%s) should fail", i,
			c->needle);
		cr_expect_not_null(strstr(r.err, c->needle),
			"case %zu: '%s' does not contain '%s'", i, r.err, c->needle);
		cr_expect_null(strchr(r.err, '\n'), "case %zu: one line", i);
	}
}

Test(cli, sched_is_case_insensitive)
{
	static const char *const rr[] = { "rr", "RR", "Rr" };
	static const char *const none[] = { "none", "NONE", "NoNe" };
	struct run r;

	for (size_t i = 0; i < 3; i++) {
		PARSE(&r, NULL, NULL, "-s", rr[i], "x");
		cr_expect_eq(r.rc, 0);
		cr_expect_eq(r.o.sched, CZ_MODE_RR, "%s", rr[i]);
		PARSE(&r, NULL, NULL, "--sched", none[i], "x");
		cr_expect_eq(r.rc, 0);
		cr_expect_eq(r.o.sched, CZ_MODE_SHARED, "%s", none[i]);
		PARSE(&r, none[i], NULL, "x");
		cr_expect_eq(r.o.sched, CZ_MODE_SHARED, "env %s", none[i]);
	}
}

Test(cli, sched_flag_overrides_env)
{
	struct run r;

	PARSE(&r, "none", NULL, "x");
	cr_expect_eq(r.o.sched, CZ_MODE_SHARED);
	PARSE(&r, "none", NULL, "-s", "rr", "x");
	cr_expect_eq(r.o.sched, CZ_MODE_RR);
	PARSE(&r, "rr", NULL, "--sched=none", "x");
	cr_expect_eq(r.o.sched, CZ_MODE_SHARED);
	/* An invalid value the flag overrides is not used, so not an error. */
	PARSE(&r, "bogus", NULL, "-s", "none", "x");
	cr_expect_eq(r.rc, 0, "%s", r.err);
	cr_expect_eq(r.o.sched, CZ_MODE_SHARED);
	PARSE(&r, "", NULL, "x");
	cr_expect_eq(r.rc, 0);
	cr_expect_eq(r.o.sched, CZ_MODE_RR);
}

Test(cli, log_level_flags_and_env)
{
	struct run r;

	PARSE(&r, NULL, NULL, "-q", "x");
	cr_expect_eq(r.o.log_level, CZ_LOG_WARN);
	PARSE(&r, NULL, NULL, "-v", "x");
	cr_expect_eq(r.o.log_level, CZ_LOG_DEBUG);
	PARSE(&r, NULL, NULL, "-vv", "x");
	cr_expect_eq(r.o.log_level, CZ_LOG_TRACE);
	PARSE(&r, NULL, NULL, "--verbose", "--verbose", "-v", "x");
	cr_expect_eq(r.o.log_level, CZ_LOG_TRACE);
	PARSE(&r, NULL, "debug", "x");
	cr_expect_eq(r.o.log_level, CZ_LOG_DEBUG);
	PARSE(&r, NULL, "ERROR", "x");
	cr_expect_eq(r.o.log_level, CZ_LOG_ERROR);
	PARSE(&r, NULL, "trace", "-q", "x");
	cr_expect_eq(r.o.log_level, CZ_LOG_WARN);
	PARSE(&r, NULL, "loud", "--quiet", "x");
	cr_expect_eq(r.rc, 0, "%s", r.err);
	cr_expect_eq(r.o.log_level, CZ_LOG_WARN);
}

Test(cli, durations_and_counts)
{
	struct run r;

	PARSE(&r, NULL, NULL, "-g", "0.5", "--min-uptime=2", "--hello-timeout",
		"0", "--max-restarts", "9", "x");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_expect_float_eq(r.o.grace, 0.5, 1e-9);
	cr_expect_float_eq(r.o.min_uptime, 2.0, 1e-9);
	cr_expect_float_eq(r.o.hello_timeout, 0.0, 1e-9);
	cr_expect_eq(r.o.max_restarts, 9);
	PARSE(&r, NULL, NULL, "-g.25", "x");
	cr_expect_float_eq(r.o.grace, 0.25, 1e-9);
}

Test(cli, double_dash_ends_options)
{
	struct run r;

	PARSE(&r, NULL, NULL, "-w", "2", "--", "-w", "3");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_expect_eq(r.o.workers, 2);
	cr_assert_eq(r.o.cmd_argc, 2);
	cr_expect_str_eq(r.o.cmd_argv[0], "-w");
	PARSE(&r, NULL, NULL, "--", "--", "x");
	cr_expect_str_eq(r.o.cmd_argv[0], "--");
}

/*
 * The default is the number of CPUs the process may run on: pinned to the
 * first k of its CPUs (k = 1, 2, ...), the parser picks k workers.  Each
 * test runs in a process of its own, so the pinning ends with it.
 */
Test(cli, default_workers_is_the_cpus_available)
{
	cpu_set_t all, some;
	int n, k = 0;

	cr_assert_eq(sched_getaffinity(0, sizeof(all), &all), 0);
	n = CPU_COUNT(&all);
	if (n < 2) {
		cr_skip_test("one CPU only: 1 worker would not tell the count from a constant");
	}
	CPU_ZERO(&some);
	for (int cpu = 0; cpu < CPU_SETSIZE && k < n && k < 4; cpu++) {
		struct run r;

		if (!CPU_ISSET(cpu, &all)) {
			continue;
		}
		CPU_SET(cpu, &some);
		k++;
		cr_assert_eq(sched_setaffinity(0, sizeof(some), &some), 0);
		PARSE(&r, NULL, NULL, "server");
		cr_assert_eq(r.rc, 0, "%s", r.err);
		cr_expect_eq(r.o.workers, (unsigned)k, "pinned to %d CPU(s): %u workers", k,
			r.o.workers);
	}
}

Test(cli, options_after_the_command_are_its_own)
{
	struct run r;

	PARSE(&r, NULL, NULL, "node", "-w", "3", "--bogus", "-h", "--", "x");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_expect_eq(r.o.action, CZ_CLI_RUN);
	cr_expect_eq(r.o.workers, cz_cli_default_workers());
	cr_expect_eq(r.o.cmd_argc, 7);
	cr_expect_str_eq(r.o.cmd_argv[0], "node");
	cr_expect_str_eq(r.o.cmd_argv[4], "-h");
	/* A lone "-" is an argument, not an option. */
	PARSE(&r, NULL, NULL, "-", "x");
	cr_expect_str_eq(r.o.cmd_argv[0], "-");
}

Test(cli, help_and_version_need_no_command)
{
	struct run r;

	PARSE(&r, NULL, NULL, "-h");
	cr_expect_eq(r.rc, 0);
	cr_expect_eq(r.o.action, CZ_CLI_HELP);
	PARSE(&r, "bogus", NULL, "--help");
	cr_expect_eq(r.rc, 0);
	cr_expect_eq(r.o.action, CZ_CLI_HELP);
	PARSE(&r, NULL, NULL, "-V");
	cr_expect_eq(r.o.action, CZ_CLI_VERSION);
	PARSE(&r, NULL, NULL, "--version", "x");
	cr_expect_eq(r.o.action, CZ_CLI_VERSION);
	cr_expect_not_null(strstr(cz_cli_usage(), "--workers"));
}

Test(cli, operations_options)
{
	struct run r;

	PARSE(&r, NULL, NULL, "x");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_expect_eq(r.o.max_surge, 1);
	cr_expect_float_eq(r.o.ready_timeout, 30.0, 1e-9);
	cr_expect_eq(r.o.stop_signal, SIGTERM);
	cr_expect_eq(r.o.restart, CZ_RESTART_ALWAYS);
	cr_expect_null(r.o.control);
	cr_expect_not(r.o.prefix_output);

	PARSE(&r, NULL, NULL, "--max-surge", "2", "--ready-timeout=2.5",
		"--stop-signal", "SIGQUIT", "--restart", "on-failure",
		"--control", "/tmp/c.sock", "--prefix-output", "--subreaper",
		"--user", "nobody", "--group", "nogroup", "--allow-bind", ":80",
		"--allow-bind", "[::1]:443", "x");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_expect_eq(r.o.max_surge, 2);
	cr_expect_float_eq(r.o.ready_timeout, 2.5, 1e-9);
	cr_expect_eq(r.o.stop_signal, SIGQUIT);
	cr_expect_eq(r.o.restart, CZ_RESTART_ON_FAILURE);
	cr_expect_str_eq(r.o.control, "/tmp/c.sock");
	cr_expect(r.o.prefix_output);
	cr_expect(r.o.subreaper);
	cr_expect_str_eq(r.o.user, "nobody");
	cr_expect_str_eq(r.o.group, "nogroup");
	cr_assert_eq(r.o.n_allow_bind, 2);
	cr_expect_str_eq(r.o.allow_bind[1], "[::1]:443");
}

Test(cli, operations_options_reject_bad_values)
{
	static const char *const bad[][4] = {
		{ "--max-surge", "0", "--max-surge" },
		{ "--stop-signal", "BOGUS", "BOGUS" },
		{ "--restart", "sometimes", "sometimes" },
		{ "--allow-bind", "80", "'80'" },
		{ "--allow-bind", ":0", "':0'" },
		{ "--allow-bind", "[::1:80", "[::1:80" },
		{ "--ready-timeout", "-1", "-1" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct run r;

		PARSE(&r, NULL, NULL, "-u", "nobody", bad[i][0], bad[i][1], "x");
		cr_expect_eq(r.rc, -1, "%s %s was accepted", bad[i][0], bad[i][1]);
		cr_expect(strstr(r.err, bad[i][2]) != NULL,
			"error for %s %s does not name it: %s", bad[i][0], bad[i][1],
			r.err);
	}
}

Test(cli, group_and_allow_bind_need_user)
{
	struct run r;

	PARSE(&r, NULL, NULL, "--group", "nogroup", "x");
	cr_expect_eq(r.rc, -1);
	cr_expect(strstr(r.err, "--user") != NULL, "%s", r.err);
	PARSE(&r, NULL, NULL, "--allow-bind", ":80", "x");
	cr_expect_eq(r.rc, -1);
}

Test(cli, signal_names)
{
	cr_expect_eq(cz_cli_parse_signal("TERM"), SIGTERM);
	cr_expect_eq(cz_cli_parse_signal("sigint"), SIGINT);
	cr_expect_eq(cz_cli_parse_signal("SIGUSR2"), SIGUSR2);
	cr_expect_eq(cz_cli_parse_signal("9"), SIGKILL);
	cr_expect_eq(cz_cli_parse_signal("0"), -1);
	cr_expect_eq(cz_cli_parse_signal("65"), -1);
	cr_expect_eq(cz_cli_parse_signal("SIG"), -1);
}

Test(cli, subcommands)
{
	struct run r;

	PARSE(&r, NULL, NULL, "status", "--json", "--control", "/tmp/x.sock");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_expect_eq(r.o.action, CZ_CLI_STATUS);
	cr_expect(r.o.json);
	cr_expect_str_eq(r.o.control, "/tmp/x.sock");
	PARSE(&r, NULL, NULL, "scale", "3");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_expect_eq(r.o.action, CZ_CLI_SCALE);
	cr_expect_eq(r.o.scale_to, 3);
	PARSE(&r, NULL, NULL, "reload");
	cr_expect_eq(r.o.action, CZ_CLI_RELOAD);
	PARSE(&r, NULL, NULL, "stop", "--control=/x");
	cr_expect_eq(r.o.action, CZ_CLI_STOP);
	cr_expect_str_eq(r.o.control, "/x");
	/* A server named like a subcommand runs after "--". */
	PARSE(&r, NULL, NULL, "--", "status");
	cr_expect_eq(r.o.action, CZ_CLI_RUN);
	cr_expect_str_eq(r.o.cmd_argv[0], "status");
}

Test(cli, subcommand_errors)
{
	struct run r;

	PARSE(&r, NULL, NULL, "scale");
	cr_expect_eq(r.rc, -1);
	cr_expect(strstr(r.err, "scale") != NULL, "%s", r.err);
	PARSE(&r, NULL, NULL, "scale", "0");
	cr_expect_eq(r.rc, -1);
	PARSE(&r, NULL, NULL, "reload", "--json");
	cr_expect_eq(r.rc, -1);
	cr_expect(strstr(r.err, "--json") != NULL, "%s", r.err);
	PARSE(&r, NULL, NULL, "stop", "extra");
	cr_expect_eq(r.rc, -1);
}

/* --- --metrics and CLUSTERIZE_METRICS ------------------------------------ */

static const char *fake_env_value;

static char *fake_getenv(const char *name)
{
	return strcmp(name, "CLUSTERIZE_METRICS") == 0 ? (char *)fake_env_value : NULL;
}

Test(cli, metrics_addresses)
{
	static const char *const good[] = {
		"127.0.0.1:9464", ":9464", "localhost:9464", "[::1]:9464", "0.0.0.0:0",
	};
	static const char *const bad[] = {
		"9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "host:9464",
		"[::1:9464", "::1:9464", "127.0.0.1:+1", "127.0.0.1: 1", "",
	};
	struct run r;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		PARSE(&r, NULL, NULL, "--metrics", good[i], "server");
		cr_expect_eq(r.rc, 0, "%s: %s", good[i], r.err);
		cr_expect_str_eq(r.o.metrics, good[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		PARSE(&r, NULL, NULL, "--metrics", bad[i], "server");
		cr_expect_eq(r.rc, -1, "'%s' is refused", bad[i]);
		cr_expect(strstr(r.err, "--metrics") != NULL, "names the option: %s", r.err);
	}
}

Test(cli, metrics_from_the_environment_unless_the_option_says)
{
	struct run r;

	PARSE(&r, NULL, NULL, "server");
	fake_env_value = "127.0.0.1:9000";
	cr_assert_eq(cz_cli_apply_env(&r.o, fake_getenv, r.err, sizeof(r.err)), 0, "%s", r.err);
	cr_expect_str_eq(r.o.metrics, "127.0.0.1:9000");

	PARSE(&r, NULL, NULL, "--metrics", ":1", "server");
	fake_env_value = "bogus";
	cr_assert_eq(cz_cli_apply_env(&r.o, fake_getenv, r.err, sizeof(r.err)), 0,
		"the option wins over a bad variable: %s", r.err);
	cr_expect_str_eq(r.o.metrics, ":1");

	PARSE(&r, NULL, NULL, "server");
	cr_assert_eq(cz_cli_apply_env(&r.o, fake_getenv, r.err, sizeof(r.err)), -1);
	cr_expect(strstr(r.err, "CLUSTERIZE_METRICS") && strstr(r.err, "bogus"), "%s", r.err);
}

Test(cli, send_and_messages)
{
	struct run r;

	PARSE(&r, NULL, NULL, "send", "all", "{\"cmd\":\"reload-config\"}", "--control", "/c");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_expect_eq(r.o.action, CZ_CLI_SEND);
	cr_expect_eq(r.o.send_to, 0);
	cr_expect_str_eq(r.o.send_json, "{\"cmd\":\"reload-config\"}");
	cr_expect_str_eq(r.o.control, "/c");
	PARSE(&r, NULL, NULL, "send", "4294967295", "42");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_expect_eq(r.o.send_to, 4294967295u);
	PARSE(&r, NULL, NULL, "messages", "--json");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_expect_eq(r.o.action, CZ_CLI_MESSAGES);
	cr_expect(r.o.json);
}

Test(cli, send_needs_a_worker_and_valid_json)
{
	static const char *const bad[][4] = {
		{ "send", NULL, NULL },
		{ "send", "all", NULL },
		{ "send", "0", "{}" },
		{ "send", "-1", "{}" },
		{ "send", "x", "{}" },
		{ "send", "4294967296", "{}" },
	};
	struct run r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		parse_with(&r, NULL, NULL, bad[i]);
		cr_expect_eq(r.rc, -1, "case %zu", i);
		cr_expect(strstr(r.err, "send") != NULL, "case %zu: %s", i, r.err);
		cr_expect_null(strchr(r.err, '\n'), "one line: %s", r.err);
	}
	PARSE(&r, NULL, NULL, "send", "all", "{\"cmd\": reload}");
	cr_expect_eq(r.rc, -1);
	cr_expect(strstr(r.err, "invalid JSON for 'send' at line 1, column") == r.err, "%s",
		r.err);
	PARSE(&r, NULL, NULL, "send", "all", "{} {}");
	cr_expect_eq(r.rc, -1, "one message, not two");
	PARSE(&r, NULL, NULL, "send", "1", "{}", "--json");
	cr_expect_eq(r.rc, -1, "send takes no --json");
}

Test(cli, node_ipc_flag_and_env)
{
	struct run r;
	char err[128];

	PARSE(&r, NULL, NULL, "node", "s.js");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_expect(r.o.node_ipc, "on by default");
	cr_expect_eq(cz_cli_node_ipc_env(&r.o, "off", err, sizeof(err)), 0);
	cr_expect_not(r.o.node_ipc);
	PARSE(&r, NULL, NULL, "--node-ipc", "on", "node", "s.js");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_expect_eq(cz_cli_node_ipc_env(&r.o, "off", err, sizeof(err)), 0);
	cr_expect(r.o.node_ipc, "the flag wins over the environment");
	PARSE(&r, NULL, NULL, "--node-ipc", "off", "node", "s.js");
	cr_expect_not(r.o.node_ipc);
	PARSE(&r, NULL, NULL, "--node-ipc", "maybe", "node", "s.js");
	cr_expect_eq(r.rc, -1);
	cr_expect(strstr(r.err, "--node-ipc") != NULL, "%s", r.err);
	PARSE(&r, NULL, NULL, "node", "s.js");
	cr_expect_eq(cz_cli_node_ipc_env(&r.o, "yes", err, sizeof(err)), -1);
	cr_expect(strstr(err, "CLUSTERIZE_NODE_IPC") != NULL, "%s", err);
}

/* --- --balance, CLUSTERIZE_BALANCE, --drain-timeout ---------------------- */

static const char *balance_env;

static char *balance_getenv(const char *name)
{
	return strcmp(name, "CLUSTERIZE_BALANCE") == 0 ? (char *)balance_env : NULL;
}

/* Parses, then applies the environment with CLUSTERIZE_BALANCE = env. */
#define PARSE_ENV(r, sched, env, ...) do { \
		PARSE(r, sched, NULL, __VA_ARGS__); \
		balance_env = (env); \
		if ((r)->rc == 0) { \
			(r)->rc = cz_cli_apply_env(&(r)->o, balance_getenv, (r)->err, \
				sizeof((r)->err)); \
		} \
	} while (0)

Test(cli, balance_and_drain_timeout)
{
	struct run r;

	PARSE_ENV(&r, NULL, NULL, "server");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_expect_eq(r.o.balance, CZ_BALANCE_RR);
	cr_expect_float_eq(r.o.drain_timeout, 30.0, 1e-9);
	PARSE_ENV(&r, NULL, NULL, "--balance", "least-conn", "--drain-timeout", "0", "server");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_expect_eq(r.o.balance, CZ_BALANCE_LEAST_CONN);
	cr_expect_float_eq(r.o.drain_timeout, 0.0, 1e-9);
	PARSE_ENV(&r, NULL, "sticky", "--drain-timeout=2.5", "server");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	cr_expect_eq(r.o.balance, CZ_BALANCE_STICKY, "from CLUSTERIZE_BALANCE");
	cr_expect_float_eq(r.o.drain_timeout, 2.5, 1e-9);
	PARSE_ENV(&r, NULL, "bogus", "--balance=rr", "server");
	cr_assert_eq(r.rc, 0, "the option wins over a bad variable: %s", r.err);
	cr_expect_eq(r.o.balance, CZ_BALANCE_RR);
}

Test(cli, balance_errors_name_the_problem)
{
	struct run r;

	PARSE_ENV(&r, NULL, NULL, "--balance", "random", "server");
	cr_expect_eq(r.rc, -1);
	cr_expect(strstr(r.err, "'random'") && strstr(r.err, "--balance") &&
		strstr(r.err, "least-conn"), "%s", r.err);
	PARSE_ENV(&r, NULL, "leastconn", "server");
	cr_expect_eq(r.rc, -1);
	cr_expect(strstr(r.err, "CLUSTERIZE_BALANCE") && strstr(r.err, "leastconn"),
		"%s", r.err);
	PARSE_ENV(&r, NULL, NULL, "--sched", "none", "--balance", "sticky", "server");
	cr_expect_eq(r.rc, -1, "nothing to balance in none");
	cr_expect(strstr(r.err, "sticky") && strstr(r.err, "none"), "%s", r.err);
	PARSE_ENV(&r, "none", "least-conn", "server");
	cr_expect_eq(r.rc, -1, "none from NODE_CLUSTER_SCHED_POLICY, least-conn from the env");
	PARSE_ENV(&r, "none", NULL, "--balance", "rr", "server");
	cr_expect_eq(r.rc, 0, "rr asks for nothing none does not do: %s", r.err);
	PARSE_ENV(&r, NULL, NULL, "--drain-timeout", "-1", "server");
	cr_expect_eq(r.rc, -1);
	cr_expect(strstr(r.err, "--drain-timeout") != NULL, "%s", r.err);
}
