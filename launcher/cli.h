/*
 * Command line: clusterize [options] [--] command [args...]
 *
 * Parsing is a pure function of argv and the two environment values it
 * reads, so it is testable without exiting; main.c prints and exits.
 */
#ifndef CZ_LAUNCHER_CLI_H
#define CZ_LAUNCHER_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "balance.h"
#include "log.h"
#include "proto.h"

#define CZ_CLI_MAX_WORKERS 1024

#define CZ_CLI_MAX_ALLOW_BIND 16

enum cz_cli_action {
	CZ_CLI_RUN = 0,
	CZ_CLI_HELP,
	CZ_CLI_VERSION,
	/* Subcommands: talk to a running launcher over its control socket. */
	CZ_CLI_STATUS,
	CZ_CLI_RELOAD,
	CZ_CLI_SCALE,
	CZ_CLI_STOP,
	CZ_CLI_SEND,
	CZ_CLI_MESSAGES,
};

enum cz_restart {
	CZ_RESTART_ALWAYS = 0, /* any exit that was not asked for */
	CZ_RESTART_ON_FAILURE, /* a non-zero exit or a signal */
	CZ_RESTART_NEVER,
};

struct cz_opts {
	enum cz_cli_action action;
	unsigned workers;        /* 1..CZ_CLI_MAX_WORKERS */
	enum cz_mode sched;      /* CZ_MODE_RR or CZ_MODE_SHARED ("none") */
	double grace;            /* seconds */
	double min_uptime;       /* seconds */
	double hello_timeout;    /* seconds; 0 = never warn */
	unsigned max_restarts;   /* >= 1 */
	enum cz_log_level log_level;
	unsigned max_surge;      /* new workers started at once in a roll; >= 1 */
	double ready_timeout;    /* seconds a new worker has to listen */
	double drain_timeout;    /* seconds a draining worker's connections get */
	enum cz_balance balance; /* --balance: rr only */
	bool balance_set;        /* ... given as an option */
	int stop_signal;         /* sent to stop a worker (default SIGTERM) */
	enum cz_restart restart;
	const char *control;     /* --control PATH; NULL: the default path */
	bool prefix_output;      /* prefix workers' output lines with their id */
	bool subreaper;          /* PR_SET_CHILD_SUBREAPER (implied as pid 1) */
	bool json;               /* subcommands: machine-readable output */
	bool node_ipc;           /* Node workers get Node's IPC channel */
	bool node_ipc_set;       /* ... as --node-ipc said (over the env) */
	const char *user;        /* --user: run workers as this user */
	const char *group;       /* --group: ... and this group */
	const char *metrics;     /* --metrics [HOST]:PORT; NULL: none */
	enum cz_log_format log_format; /* --log-format text|json */
	bool log_format_set;     /* ... given as an option */
	unsigned n_allow_bind;
	const char *allow_bind[CZ_CLI_MAX_ALLOW_BIND]; /* "[HOST]:PORT" */
	unsigned scale_to;       /* CZ_CLI_SCALE: the new worker count */
	unsigned send_to;        /* CZ_CLI_SEND: a worker id; 0: all */
	const char *send_json;   /* CZ_CLI_SEND: the message (valid JSON) */
	int cmd_argc;            /* >= 1 when action is CZ_CLI_RUN */
	char **cmd_argv;         /* points into argv; NULL-terminated */
};

/*
 * Parses argv (argv[0] is the program name).  `sched_env` and `log_env` are
 * the values of NODE_CLUSTER_SCHED_POLICY and CLUSTERIZE_LOG (NULL or ""
 * when unset); flags override them, and an invalid value is only an error
 * when no flag overrides it.  Returns 0, or -1 with a one-line message
 * (without the "clusterize: " prefix) in err.
 */
int cz_cli_parse(int argc, char **argv, const char *sched_env,
	const char *log_env, struct cz_opts *o, char *err, size_t errlen);

/* How the launcher reads its environment (getenv, or a test's). */
typedef char *cz_cli_getenv_fn(const char *name);

/*
 * After cz_cli_parse() of a run: the environment variables that only
 * apply where no option set the same (CLUSTERIZE_METRICS,
 * CLUSTERIZE_LOG_FORMAT, CLUSTERIZE_BALANCE), and the checks that need
 * them (a balance other than rr needs the rr policy).  Returns 0, or
 * -1 with a one-line message in err.
 */
int cz_cli_apply_env(struct cz_opts *o, cz_cli_getenv_fn *get, char *err,
	size_t errlen);

/*
 * Applies CLUSTERIZE_NODE_IPC (`env`: "on" or "off"; NULL or "" when
 * unset) unless --node-ipc was given.  Returns 0, or -1 with a one-line
 * message in err.
 */
int cz_cli_node_ipc_env(struct cz_opts *o, const char *env, char *err,
	size_t errlen);

/*
 * Parses a signal name ("TERM", "SIGTERM", "term") or number; returns the
 * signal number or -1.
 */
int cz_cli_parse_signal(const char *s);

/* The --help text. */
const char *cz_cli_usage(void);

/* CPUs this process may run on (sched_getaffinity), clamped to 1..1024. */
unsigned cz_cli_default_workers(void);

#endif
