/*
 * Command-line parsing (cli.h).  A small parser of our own rather than
 * getopt_long: getopt keeps global state, prints its own messages and
 * accepts abbreviations, and we want every error as one line we wrote.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>

#include "cli.h"
#include "metrics.h"

#define CZ_MAX_SECONDS 1e6
#define CZ_MAX_RESTARTS 1000000

enum opt_id {
	OPT_WORKERS, OPT_SCHED, OPT_GRACE, OPT_MIN_UPTIME, OPT_MAX_RESTARTS,
	OPT_HELLO_TIMEOUT, OPT_QUIET, OPT_VERBOSE, OPT_HELP, OPT_VERSION,
	OPT_MAX_SURGE, OPT_READY_TIMEOUT, OPT_STOP_SIGNAL, OPT_RESTART,
	OPT_CONTROL, OPT_PREFIX_OUTPUT, OPT_SUBREAPER, OPT_USER, OPT_GROUP,
	OPT_ALLOW_BIND, OPT_JSON, OPT_METRICS, OPT_LOG_FORMAT, OPT_NODE_IPC,
	OPT_BALANCE, OPT_DRAIN_TIMEOUT,
};

struct opt_def {
	char short_name; /* 0: long only */
	const char *long_name;
	bool has_arg;
	enum opt_id id;
};

static const struct opt_def opt_defs[] = {
	{ 'w', "workers", true, OPT_WORKERS },
	{ 's', "sched", true, OPT_SCHED },
	{ 'g', "grace", true, OPT_GRACE },
	{ 0, "min-uptime", true, OPT_MIN_UPTIME },
	{ 0, "max-restarts", true, OPT_MAX_RESTARTS },
	{ 0, "hello-timeout", true, OPT_HELLO_TIMEOUT },
	{ 'q', "quiet", false, OPT_QUIET },
	{ 'v', "verbose", false, OPT_VERBOSE },
	{ 'h', "help", false, OPT_HELP },
	{ 'V', "version", false, OPT_VERSION },
	{ 0, "max-surge", true, OPT_MAX_SURGE },
	{ 0, "ready-timeout", true, OPT_READY_TIMEOUT },
	{ 0, "stop-signal", true, OPT_STOP_SIGNAL },
	{ 0, "restart", true, OPT_RESTART },
	{ 0, "control", true, OPT_CONTROL },
	{ 0, "prefix-output", false, OPT_PREFIX_OUTPUT },
	{ 0, "subreaper", false, OPT_SUBREAPER },
	{ 'u', "user", true, OPT_USER },
	{ 0, "group", true, OPT_GROUP },
	{ 0, "allow-bind", true, OPT_ALLOW_BIND },
	{ 0, "json", false, OPT_JSON },
	{ 0, "metrics", true, OPT_METRICS },
	{ 0, "log-format", true, OPT_LOG_FORMAT },
	{ 0, "node-ipc", true, OPT_NODE_IPC },
	{ 0, "balance", true, OPT_BALANCE },
	{ 0, "drain-timeout", true, OPT_DRAIN_TIMEOUT },
};
#define N_OPTS (sizeof(opt_defs) / sizeof(opt_defs[0]))

/* Parsing state beyond struct cz_opts. */
struct parse {
	struct cz_opts *o;
	char *err;
	size_t errlen;
	bool sched_set;
	int quiet;
	int verbose;
};

static const char usage_text[] =
	"Usage: clusterize [options] [--] command [args...]\n"
	"Run N copies of a network server that share its listening sockets,\n"
	"like Node.js cluster, without changing the server.\n"
	"\n"
	"  -w, --workers N          number of workers, 1..1024 (default: CPUs available)\n"
	"  -s, --sched rr|none      rr: the launcher hands out connections in turn;\n"
	"                           none: workers accept on the shared socket\n"
	"                           (default: $NODE_CLUSTER_SCHED_POLICY, else rr)\n"
	"      --balance rr|least-conn|sticky  with rr: which worker gets a\n"
	"                           connection: in turn (default), the one with\n"
	"                           the fewest open, or by client address\n"
	"      --drain-timeout SECONDS  a stopping worker's open connections get\n"
	"                           this long before its stop signal (default 30)\n"
	"  -g, --grace SECONDS      wait before SIGKILL on stop (default 10)\n"
	"      --min-uptime SECONDS a worker exiting sooner has crashed (default 1)\n"
	"      --max-restarts N     quick crashes in a row before giving up (default 5)\n"
	"      --hello-timeout SECONDS  warn if a worker has not loaded the shim (default 5)\n"
	"      --restart always|on-failure|never  when to replace a worker that\n"
	"                           exited by itself (default always)\n"
	"      --max-surge N        new workers started at once by a rolling\n"
	"                           restart (default 1)\n"
	"      --ready-timeout SECONDS  a new worker must listen by then, or the\n"
	"                           rolling restart is aborted (default 30)\n"
	"      --stop-signal SIG    signal that stops a worker (default TERM)\n"
	"      --control PATH       control socket for the subcommands (default\n"
	"                           $XDG_RUNTIME_DIR/clusterize/PID.sock or\n"
	"                           /tmp/clusterize-UID/PID.sock)\n"
	"      --prefix-output      prefix each line workers print with [ID]\n"
	"      --subreaper          adopt and reap orphaned descendants\n"
	"      --metrics [HOST]:PORT  serve Prometheus metrics at\n"
	"                           http://HOST:PORT/metrics (HOST: a numeric\n"
	"                           address or localhost; default 127.0.0.1)\n"
	"      --node-ipc on|off    on: a node server is a worker of Node's cluster\n"
	"                           module, with the launcher as its primary;\n"
	"                           off: the app's own primary runs (default on)\n"
	"  -u, --user USER          run the workers as USER\n"
	"      --group GROUP        run the workers as GROUP\n"
	"      --allow-bind [HOST]:PORT  with --user: also let workers bind this\n"
	"                           privileged address (repeatable)\n"
	"      --log-format text|json  the launcher's lines as text (default) or\n"
	"                           one JSON object each\n"
	"  -q, --quiet              only warnings and errors\n"
	"  -v, --verbose            more detail (repeat for more)\n"
	"  -h, --help               show this help\n"
	"  -V, --version            show the version\n"
	"\n"
	"Subcommands, to a running launcher:\n"
	"  clusterize status [--json] [--control PATH]   the workers, as a table\n"
	"  clusterize reload [--control PATH]            rolling restart\n"
	"  clusterize scale N [--control PATH]           run N workers\n"
	"  clusterize stop [--control PATH]              graceful stop\n"
	"  clusterize send ID|all JSON [--control PATH]  a message to Node workers\n"
	"                                                (process.on('message'))\n"
	"  clusterize messages [--json] [--control PATH] follow what Node workers\n"
	"                                                process.send()\n"
	"\n"
	"Signals: TERM/INT stop gracefully (twice: at once), QUIT stops at once,\n"
	"HUP restarts every worker in turn, TTIN adds a worker, TTOU removes one.\n"
	"Environment: NODE_CLUSTER_SCHED_POLICY, CLUSTERIZE_LOG (error|warn|info|\n"
	"debug|trace), CLUSTERIZE_SHIM (path of libclusterize.so),\n"
	"CLUSTERIZE_METRICS (as --metrics), CLUSTERIZE_LOG_FORMAT (as --log-format),\n"
	"CLUSTERIZE_NODE_IPC (as --node-ipc), CLUSTERIZE_BALANCE (as --balance).\n";

const char *cz_cli_usage(void)
{
	return usage_text;
}

unsigned cz_cli_default_workers(void)
{
	cpu_set_t set;
	int n;

	if (sched_getaffinity(0, sizeof(set), &set) != 0) {
		return 1;
	}
	n = CPU_COUNT(&set);
	if (n < 1) {
		return 1;
	}
	return n > CZ_CLI_MAX_WORKERS ? CZ_CLI_MAX_WORKERS : (unsigned)n;
}

__attribute__((format(printf, 2, 3)))
static int fail(struct parse *p, const char *fmt, ...)
{
	va_list ap;

	if (p->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(p->err, p->errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* A decimal integer, digits only (no sign, no spaces, no hex). */
static int parse_uint(const char *s, long max, long *out)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9') {
		return -1;
	}
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max) {
		return -1;
	}
	*out = v;
	return 0;
}

/* Seconds: "10", "0.5", ".5", "2." -- no sign, exponent, hex, inf or nan. */
static int parse_seconds(const char *s, double *out)
{
	bool digits = false;
	int dots = 0;
	double v;

	for (const char *c = s; *c; c++) {
		if (*c == '.') {
			dots++;
		} else if (*c >= '0' && *c <= '9') {
			digits = true;
		} else {
			return -1;
		}
	}
	if (!digits || dots > 1) {
		return -1;
	}
	v = strtod(s, NULL);
	if (!isfinite(v) || v > CZ_MAX_SECONDS) {
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_sched(const char *s, enum cz_mode *out)
{
	if (strcasecmp(s, "rr") == 0) {
		*out = CZ_MODE_RR;
	} else if (strcasecmp(s, "none") == 0) {
		*out = CZ_MODE_SHARED;
	} else {
		return -1;
	}
	return 0;
}

static int apply_seconds(struct parse *p, const char *name, const char *val,
	double *out)
{
	if (parse_seconds(val, out) != 0) {
		return fail(p, "invalid duration '%s' for %s: expected seconds, "
			"e.g. 10 or 0.5", val, name);
	}
	return 0;
}

static const struct {
	const char *name;
	int sig;
} signal_names[] = {
	{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT },
	{ "KILL", SIGKILL }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 },
	{ "TERM", SIGTERM }, { "WINCH", SIGWINCH }, { "CONT", SIGCONT },
	{ "STOP", SIGSTOP }, { "ALRM", SIGALRM }, { "PWR", SIGPWR },
};

int cz_cli_parse_signal(const char *s)
{
	long n;

	if (parse_uint(s, 64, &n) == 0) {
		return n >= 1 ? (int)n : -1;
	}
	if (strncasecmp(s, "SIG", 3) == 0) {
		s += 3;
	}
	for (size_t i = 0; i < sizeof(signal_names) / sizeof(signal_names[0]); i++) {
		if (strcasecmp(s, signal_names[i].name) == 0) {
			return signal_names[i].sig;
		}
	}
	return -1;
}

static int parse_restart(const char *s, enum cz_restart *out)
{
	if (strcmp(s, "always") == 0) {
		*out = CZ_RESTART_ALWAYS;
	} else if (strcmp(s, "on-failure") == 0) {
		*out = CZ_RESTART_ON_FAILURE;
	} else if (strcmp(s, "never") == 0) {
		*out = CZ_RESTART_NEVER;
	} else {
		return -1;
	}
	return 0;
}

static int parse_on_off(const char *s, bool *out)
{
	if (strcmp(s, "on") == 0) {
		*out = true;
	} else if (strcmp(s, "off") == 0) {
		*out = false;
	} else {
		return -1;
	}
	return 0;
}

int cz_cli_node_ipc_env(struct cz_opts *o, const char *env, char *err,
	size_t errlen)
{
	if (o->node_ipc_set || env == NULL || *env == '\0' ||
		parse_on_off(env, &o->node_ipc) == 0) {
		return 0;
	}
	snprintf(err, errlen, "invalid value '%s' in CLUSTERIZE_NODE_IPC: "
		"expected on or off", env);
	return -1;
}

/* "[HOST]:PORT" with a port from 1 to 65535: ":80", "0.0.0.0:80", "[::1]:443". */
static int check_allow_bind(const char *s)
{
	const char *colon = strrchr(s, ':');
	long port;

	if (colon == NULL || parse_uint(colon + 1, 65535, &port) != 0 ||
		port < 1) {
		return -1;
	}
	if (s[0] == '[' && (colon == s || colon[-1] != ']')) {
		return -1;
	}
	return 0;
}

static int set_metrics(struct parse *p, const char *name, const char *val)
{
	struct sockaddr_storage ss;
	char why[160];

	if (cz_metrics_parse_addr(val, &ss, why, sizeof(why)) < 0) {
		return fail(p, "invalid address '%s' for %s: %s", val, name, why);
	}
	p->o->metrics = val;
	return 0;
}

static int set_log_format(struct parse *p, const char *name, const char *val)
{
	int f = cz_log_parse_format(val);

	if (f < 0) {
		return fail(p, "invalid log format '%s' for %s: expected text or "
			"json", val, name);
	}
	p->o->log_format = (enum cz_log_format)f;
	return 0;
}

static int set_balance(struct parse *p, const char *name, const char *val)
{
	int b = cz_balance_parse(val);

	if (b < 0) {
		return fail(p, "invalid balance '%s' for %s: expected rr, "
			"least-conn or sticky", val, name);
	}
	p->o->balance = (enum cz_balance)b;
	return 0;
}

static int apply_more(struct parse *p, const struct opt_def *d,
	const char *name, const char *val)
{
	struct cz_opts *o = p->o;
	long n;

	switch (d->id) {
	case OPT_MAX_SURGE:
		if (parse_uint(val, CZ_CLI_MAX_WORKERS, &n) != 0 || n < 1) {
			return fail(p, "invalid count '%s' for %s: expected an "
				"integer from 1 to %d", val, name, CZ_CLI_MAX_WORKERS);
		}
		o->max_surge = (unsigned)n;
		return 0;
	case OPT_READY_TIMEOUT:
		return apply_seconds(p, name, val, &o->ready_timeout);
	case OPT_STOP_SIGNAL:
		o->stop_signal = cz_cli_parse_signal(val);
		if (o->stop_signal < 0) {
			return fail(p, "invalid signal '%s' for %s: expected a "
				"name such as TERM or a number", val, name);
		}
		return 0;
	case OPT_RESTART:
		if (parse_restart(val, &o->restart) != 0) {
			return fail(p, "invalid restart policy '%s' for %s: "
				"expected always, on-failure or never", val, name);
		}
		return 0;
	case OPT_CONTROL:
		if (*val == '\0') {
			return fail(p, "empty path for %s", name);
		}
		o->control = val;
		return 0;
	case OPT_USER:
		o->user = val;
		return 0;
	case OPT_GROUP:
		o->group = val;
		return 0;
	case OPT_METRICS:
		return set_metrics(p, name, val);
	case OPT_LOG_FORMAT:
		p->o->log_format_set = true;
		return set_log_format(p, name, val);
	case OPT_NODE_IPC:
		if (parse_on_off(val, &o->node_ipc) != 0) {
			return fail(p, "invalid value '%s' for %s: expected on or "
				"off", val, name);
		}
		o->node_ipc_set = true;
		return 0;
	case OPT_BALANCE:
		o->balance_set = true;
		return set_balance(p, name, val);
	case OPT_DRAIN_TIMEOUT:
		return apply_seconds(p, name, val, &o->drain_timeout);
	case OPT_ALLOW_BIND:
		if (check_allow_bind(val) != 0) {
			return fail(p, "invalid address '%s' for %s: expected "
				"[HOST]:PORT, e.g. :80 or 127.0.0.1:443", val, name);
		}
		if (o->n_allow_bind == CZ_CLI_MAX_ALLOW_BIND) {
			return fail(p, "too many %s options (at most %d)", name,
				CZ_CLI_MAX_ALLOW_BIND);
		}
		o->allow_bind[o->n_allow_bind++] = val;
		return 0;
	default:
		break;
	}
	return fail(p, "internal error: option %s", name);
}

static int apply_opt(struct parse *p, const struct opt_def *d,
	const char *name, const char *val)
{
	struct cz_opts *o = p->o;
	long n;

	switch (d->id) {
	case OPT_WORKERS:
		if (parse_uint(val, CZ_CLI_MAX_WORKERS, &n) != 0 || n < 1) {
			return fail(p, "invalid worker count '%s' for %s: "
				"expected an integer from 1 to %d", val, name,
				CZ_CLI_MAX_WORKERS);
		}
		o->workers = (unsigned)n;
		return 0;
	case OPT_SCHED:
		if (parse_sched(val, &o->sched) != 0) {
			return fail(p, "invalid scheduling policy '%s' for %s: "
				"expected rr or none", val, name);
		}
		p->sched_set = true;
		return 0;
	case OPT_GRACE:
		return apply_seconds(p, name, val, &o->grace);
	case OPT_MIN_UPTIME:
		return apply_seconds(p, name, val, &o->min_uptime);
	case OPT_HELLO_TIMEOUT:
		return apply_seconds(p, name, val, &o->hello_timeout);
	case OPT_MAX_RESTARTS:
		if (parse_uint(val, CZ_MAX_RESTARTS, &n) != 0 || n < 1) {
			return fail(p, "invalid count '%s' for %s: expected an "
				"integer from 1 to %d", val, name, CZ_MAX_RESTARTS);
		}
		o->max_restarts = (unsigned)n;
		return 0;
	case OPT_QUIET:
		p->quiet++;
		return 0;
	case OPT_VERBOSE:
		p->verbose++;
		return 0;
	case OPT_HELP:
		o->action = CZ_CLI_HELP;
		return 0;
	case OPT_VERSION:
		o->action = CZ_CLI_VERSION;
		return 0;
	case OPT_PREFIX_OUTPUT:
		o->prefix_output = true;
		return 0;
	case OPT_SUBREAPER:
		o->subreaper = true;
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	default:
		return apply_more(p, d, name, val);
	}
}

static const struct opt_def *find_long(const char *name, size_t len)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		if (strlen(opt_defs[i].long_name) == len &&
			strncmp(opt_defs[i].long_name, name, len) == 0) {
			return &opt_defs[i];
		}
	}
	return NULL;
}

static const struct opt_def *find_short(char c)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		if (opt_defs[i].short_name == c) {
			return &opt_defs[i];
		}
	}
	return NULL;
}

/* "--name", "--name=value" or "--name value"; advances *i past a value. */
static int parse_long(struct parse *p, int argc, char **argv, int *i)
{
	const char *arg = argv[*i] + 2;
	const char *eq = strchr(arg, '=');
	size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
	const struct opt_def *d = find_long(arg, len);
	char name[64];

	snprintf(name, sizeof(name), "--%.*s", (int)(len < 40 ? len : 40), arg);
	if (d == NULL) {
		return fail(p, "unknown option '%s'", name);
	}
	if (!d->has_arg) {
		if (eq != NULL) {
			return fail(p, "option '%s' takes no value", name);
		}
		return apply_opt(p, d, name, NULL);
	}
	if (eq != NULL) {
		return apply_opt(p, d, name, eq + 1);
	}
	if (*i + 1 >= argc) {
		return fail(p, "option '%s' requires a value", name);
	}
	(*i)++;
	return apply_opt(p, d, name, argv[*i]);
}

/* "-qv", "-w4", "-w 4", "-vvw4". */
static int parse_short(struct parse *p, int argc, char **argv, int *i)
{
	const char *arg = argv[*i];

	for (size_t j = 1; arg[j] != '\0'; j++) {
		const struct opt_def *d = find_short(arg[j]);
		char name[3] = { '-', arg[j], '\0' };

		if (d == NULL) {
			return fail(p, "unknown option '%s'", name);
		}
		if (!d->has_arg) {
			if (apply_opt(p, d, name, NULL) != 0) {
				return -1;
			}
			continue;
		}
		if (arg[j + 1] != '\0') {
			return apply_opt(p, d, name, arg + j + 1);
		}
		if (*i + 1 >= argc) {
			return fail(p, "option '%s' requires a value", name);
		}
		(*i)++;
		return apply_opt(p, d, name, argv[*i]);
	}
	return 0;
}

static void set_defaults(struct cz_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->action = CZ_CLI_RUN;
	o->workers = 0;
	o->sched = CZ_MODE_RR;
	o->grace = 10;
	o->min_uptime = 1;
	o->hello_timeout = 5;
	o->max_restarts = 5;
	o->log_level = CZ_LOG_INFO;
	o->max_surge = 1;
	o->ready_timeout = 30;
	o->drain_timeout = 30;
	o->balance = CZ_BALANCE_RR;
	o->stop_signal = SIGTERM;
	o->restart = CZ_RESTART_ALWAYS;
	o->node_ipc = true;
}

/* Environment values apply only where no flag said otherwise. */
static int apply_env(struct parse *p, const char *sched_env,
	const char *log_env)
{
	struct cz_opts *o = p->o;

	if (!p->sched_set && sched_env != NULL && *sched_env != '\0' &&
		parse_sched(sched_env, &o->sched) != 0) {
		return fail(p, "invalid scheduling policy '%s' in "
			"NODE_CLUSTER_SCHED_POLICY: expected rr or none", sched_env);
	}
	if (p->quiet > 0 || p->verbose > 0) {
		int level = (p->quiet > 0 ? CZ_LOG_WARN : CZ_LOG_INFO) + p->verbose;

		o->log_level = level > CZ_LOG_TRACE ? CZ_LOG_TRACE :
			(enum cz_log_level)level;
	} else if (log_env != NULL && *log_env != '\0') {
		int level = cz_log_parse_level(log_env);

		if (level < 0) {
			return fail(p, "invalid log level '%s' in CLUSTERIZE_LOG: "
				"expected error, warn, info, debug or trace", log_env);
		}
		o->log_level = (enum cz_log_level)level;
	}
	return 0;
}

static const struct {
	const char *name;
	enum cz_cli_action action;
} subcommands[] = {
	{ "status", CZ_CLI_STATUS },
	{ "reload", CZ_CLI_RELOAD },
	{ "scale", CZ_CLI_SCALE },
	{ "stop", CZ_CLI_STOP },
	{ "send", CZ_CLI_SEND },
	{ "messages", CZ_CLI_MESSAGES },
};

/* `send ID|all JSON`: the JSON is checked here, so a typo is a usage error. */
static int parse_send(struct parse *p, int argc, char **argv, int *i)
{
	struct cz_opts *o = p->o;
	json_error_t e;
	json_t *msg;
	long n;

	if (*i + 1 >= argc) {
		return fail(p, "'send' needs a worker id (or all) and a JSON "
			"message: clusterize send ID|all JSON");
	}
	if (strcmp(argv[*i], "all") == 0) {
		o->send_to = 0;
	} else if (parse_uint(argv[*i], UINT32_MAX, &n) == 0 && n >= 1) {
		o->send_to = (unsigned)n;
	} else {
		return fail(p, "invalid worker '%s' for 'send': expected a worker "
			"id or all", argv[*i]);
	}
	msg = json_loads(argv[*i + 1], JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
	if (msg == NULL) {
		return fail(p, "invalid JSON for 'send' at line %d, column %d: %s",
			e.line, e.column, e.text);
	}
	json_decref(msg);
	o->send_json = argv[*i + 1];
	*i += 2;
	return 0;
}

/* Only --control and --json make sense after a subcommand. */
static int parse_subcommand(struct parse *p, int argc, char **argv,
	enum cz_cli_action action)
{
	struct cz_opts *o = p->o;
	const char *sub = argv[1];
	int i = 2;
	long n;

	o->action = action;
	if (action == CZ_CLI_SCALE) {
		if (i >= argc || parse_uint(argv[i], CZ_CLI_MAX_WORKERS, &n) != 0 ||
			n < 1) {
			return fail(p, "'scale' needs a worker count from 1 to %d",
				CZ_CLI_MAX_WORKERS);
		}
		o->scale_to = (unsigned)n;
		i++;
	}
	if (action == CZ_CLI_SEND && parse_send(p, argc, argv, &i) != 0) {
		return -1;
	}
	for (; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--json") == 0 && (action == CZ_CLI_STATUS ||
			action == CZ_CLI_MESSAGES)) {
			o->json = true;
		} else if (strncmp(a, "--control=", 10) == 0 && a[10] != '\0') {
			o->control = a + 10;
		} else if (strcmp(a, "--control") == 0 && i + 1 < argc &&
			argv[i + 1][0] != '\0') {
			o->control = argv[++i];
		} else {
			return fail(p, "unexpected argument '%s' for '%s'", a, sub);
		}
	}
	return 0;
}

int cz_cli_parse(int argc, char **argv, const char *sched_env,
	const char *log_env, struct cz_opts *o, char *err, size_t errlen)
{
	struct parse p = { .o = o, .err = err, .errlen = errlen };
	int i;

	set_defaults(o);
	if (errlen > 0) {
		err[0] = '\0';
	}
	/* A command named like a subcommand runs after "--". */
	for (size_t k = 0; argc > 1 && k < sizeof(subcommands) /
		sizeof(subcommands[0]); k++) {
		if (strcmp(argv[1], subcommands[k].name) == 0) {
			return parse_subcommand(&p, argc, argv,
				subcommands[k].action);
		}
	}
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		int rc;

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || a[1] == '\0') {
			break; /* the command: its options are its own */
		}
		rc = a[1] == '-' ? parse_long(&p, argc, argv, &i) :
			parse_short(&p, argc, argv, &i);
		if (rc != 0) {
			return -1;
		}
		if (o->action != CZ_CLI_RUN) {
			return 0;
		}
	}
	if ((o->group != NULL || o->n_allow_bind > 0) && o->user == NULL) {
		return fail(&p, "%s needs --user", o->group != NULL ? "--group" :
			"--allow-bind");
	}
	if (i >= argc) {
		return fail(&p, "no command given (usage: clusterize [options] "
			"[--] command [args...])");
	}
	o->cmd_argc = argc - i;
	o->cmd_argv = argv + i;
	if (o->workers == 0) {
		o->workers = cz_cli_default_workers();
	}
	return apply_env(&p, sched_env, log_env);
}

int cz_cli_apply_env(struct cz_opts *o, cz_cli_getenv_fn *get, char *err,
	size_t errlen)
{
	struct parse p = { .o = o, .err = err, .errlen = errlen };
	const char *v = get("CLUSTERIZE_METRICS");

	if (o->metrics == NULL && v != NULL && *v != '\0' &&
		set_metrics(&p, "CLUSTERIZE_METRICS", v) != 0) {
		return -1;
	}
	v = get("CLUSTERIZE_LOG_FORMAT");
	if (!o->log_format_set && v != NULL && *v != '\0' &&
		set_log_format(&p, "CLUSTERIZE_LOG_FORMAT", v) != 0) {
		return -1;
	}
	v = get("CLUSTERIZE_BALANCE");
	if (!o->balance_set && v != NULL && *v != '\0' &&
		set_balance(&p, "CLUSTERIZE_BALANCE", v) != 0) {
		return -1;
	}
	/* In none the kernel gives out the connections: nothing to balance. */
	if (o->balance != CZ_BALANCE_RR && o->sched != CZ_MODE_RR) {
		return fail(&p, "balance '%s' needs the rr scheduling policy, "
			"not none", cz_balance_name(o->balance));
	}
	return cz_cli_node_ipc_env(o, get("CLUSTERIZE_NODE_IPC"), err, errlen);
}
