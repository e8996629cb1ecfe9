/*
 * czt: the integration tests' helper library.  Starts the real launcher (or
 * any program) in its own process group with its stdout/stderr in files,
 * waits for log lines with deadlines, runs clients that collect the pid each
 * connection was answered by, and stops everything it started, also when a
 * test fails (czt_teardown, the suites' .fini).
 *
 * Deadlines are in milliseconds and scaled by CZ_TEST_TIMEOUT_MULT.
 * Nothing here sleeps a fixed time: waits poll with backoff until a deadline.
 *
 * Every launcher a test starts must end through czt_stop, czt_stop_as or
 * czt_expect_exit, which assert how it ended and that its stderr holds no
 * sanitizer report; a test that passes without doing so is reported as
 * broken by czt_teardown.  A failing test keeps its files (logs, sockets)
 * and prints its logs.
 */
#ifndef CZT_H
#define CZT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define CZT_MAX_PROCS 16
#define CZT_MAX_WORKERS 256

enum czt_stream { CZT_ERR, CZT_OUT };

struct czt_proc {
	pid_t pid;		/* also its process group id */
	bool reaped;
	int status;		/* wait status, once reaped */
	bool launcher;		/* started as czt_launcher() */
	bool checked;		/* its end was asserted */
	char argv0[128];
	char out_path[512];
	char err_path[512];
};

/* Wait statuses, for czt_stop_as and czt_expect_exit. */
#define CZT_EXITED(code) (((code) & 0xff) << 8)
#define CZT_KILLED(sig) ((sig) & 0x7f)

/* One "clusterize: worker ID (pid PID) listening on WHAT" line. */
struct czt_worker {
	int id;
	pid_t pid;
	char what[128];		/* "127.0.0.1:8000", "unix /x.sock", "udp 127.0.0.1:53" */
	int port;		/* parsed from what; 0 for unix */
};

struct czt_addr {
	int family;		/* AF_INET, AF_INET6, AF_UNIX */
	int type;		/* SOCK_STREAM, SOCK_DGRAM */
	int port;
	char host[64];
	char path[108];
};

/* A launcher running cz-server workers, all of them listening. */
struct czt_cluster {
	struct czt_proc *proc;
	int workers;
	int nw;			/* listening lines seen */
	struct czt_worker w[CZT_MAX_WORKERS];
	int port;		/* from the first listening line; 0 for unix */
};

/* Fixtures: .init = czt_setup, .fini = czt_teardown. */
void czt_setup(void);
void czt_teardown(void);

int czt_ms(int ms);
const char *czt_tmpdir(void);
/* Paths from the environment meson gives the tests; cr_fatal if unset. */
const char *czt_launcher(void);
const char *czt_shim(void);
const char *czt_server(void);
/* CZ_SOURCE_ROOT/rel into a static buffer. */
const char *czt_source(const char *rel);
/* Full path of an executable found in PATH, or NULL. */
const char *czt_which(const char *name);

/*
 * Starts argv (argv[0] a path) with the test's environment plus env
 * ("NAME=value" sets, "NAME" alone unsets; NULL-terminated, or NULL).
 * uid/gid >= 0: drop to them before exec.  Never returns NULL (cr_fatal).
 */
struct czt_proc *czt_spawn_as(const char *const argv[], const char *const env[],
	int uid, int gid);
struct czt_proc *czt_spawn(const char *const argv[], const char *const env[]);
/*
 * For spawners outside czt_proc.c (czt_ops): p, just forked from argv0,
 * joins the processes czt_teardown stops, checks and dumps.
 */
void czt_track(struct czt_proc *p, const char *argv0);
/* czt_report.c: the running test's directory, for the runner (NULL: done). */
void czt_report_tmpdir(const char *dir);
/* Whether an assertion of the running test has failed so far. */
bool czt_test_failed(void);
/* "ASAN_OPTIONS=...:verify_asan_link_order=0" for children that get the shim. */
const char *czt_asan_options(void);
/* The launcher with args (NULL-terminated): env may be NULL. */
struct czt_proc *czt_launch(const char *const env[], ...) __attribute__((sentinel));

/*
 * clusterize -w WORKERS -s SCHED -- cz-server ARGS...: waits until every
 * worker is listening (cr_fatal with the logs otherwise).
 */
void czt_cluster_start(struct czt_cluster *c, int workers, const char *sched, ...)
	__attribute__((sentinel));
/* Same with launcher args before "--" and any command after it. */
void czt_cluster_start_argv(struct czt_cluster *c, int workers, const char *const largs[],
	const char *const cmd[], const char *const env[]);
/* clusterize -w WORKERS LARGS -- cz-server SRV...; as czt_cluster_start_argv. */
void czt_cluster_start_server(struct czt_cluster *c, int workers, const char *const largs[],
	const char *const srv[]);
/* pid is one of c's listening workers, or a child of one (prefork). */
bool czt_cluster_owns(const struct czt_cluster *c, pid_t pid);
/* Index of the worker whose pid (or whose child's pid) this is, or -1. */
int czt_cluster_worker_of(const struct czt_cluster *c, pid_t pid);

/* The whole file, NUL-terminated, malloc'd (never NULL). */
char *czt_read(const struct czt_proc *p, enum czt_stream s);
/* Lines containing substr / matching the extended regex. */
int czt_count(const struct czt_proc *p, enum czt_stream s, const char *substr);
int czt_count_re(const struct czt_proc *p, enum czt_stream s, const char *re);
/*
 * Waits until n lines contain substr (match re); returns the count reached.
 * Gives up early once the process has exited.  Dumps the logs on timeout.
 */
int czt_wait_line(struct czt_proc *p, enum czt_stream s, const char *substr, int n, int ms);
int czt_wait_re(struct czt_proc *p, enum czt_stream s, const char *re, int n, int ms);
/* Dumps both files on the test's stderr. */
void czt_dump(const struct czt_proc *p);
/*
 * Lines of p's stderr that are a sanitizer's report (ASan, LeakSanitizer,
 * UBSan "runtime error"); the first such line in first (may be NULL).
 */
int czt_sanitizer_lines(const struct czt_proc *p, char *first, size_t len);

/* Parses the launcher's "listening on" lines; returns how many. */
int czt_listening(const struct czt_proc *p, struct czt_worker *w, int max);
/* Waits for n listening lines (cr_fatal with the logs otherwise). */
int czt_wait_listening(struct czt_proc *p, int n, struct czt_worker *w, int ms);
/* Pids from "worker N (pid P) forked" lines. */
int czt_forked_pids(const struct czt_proc *p, pid_t *pids, int max);
/* Port from "127.0.0.1:8000", "[::1]:8000", "udp 1.2.3.4:5"; -1 if none. */
int czt_parse_port(const char *what);
/* Values of "port N" lines on stdout. */
int czt_reported_ports(const struct czt_proc *p, int *ports, int max);

int czt_signal(struct czt_proc *p, int sig);
/* Reaps p if it has exited; true once it has. */
bool czt_exited(struct czt_proc *p);
/*
 * Wait status, or -1 if still running at the deadline.  Asserts nothing:
 * a launcher must still end through czt_expect_exit (or czt_stop).
 */
int czt_wait_exit(struct czt_proc *p, int ms);
/*
 * SIGTERM (unless it has already exited), wait, then SIGKILL the group;
 * reaps; asserts that p ended with the wait status `want` (CZT_EXITED(0),
 * CZT_KILLED(SIGTERM), ...) and that its stderr has no sanitizer report.
 * Returns the wait status.
 */
int czt_stop_as(struct czt_proc *p, int want);
/* czt_stop_as(p, CZT_EXITED(0)): the launcher's graceful stop. */
int czt_stop(struct czt_proc *p);
/*
 * Waits up to ms for p to end by itself, then asserts as czt_stop_as does
 * (a process still running at the deadline fails the test and is killed).
 */
int czt_expect_exit(struct czt_proc *p, int want, int ms);
/* Checks p's end (already reaped) as czt_stop_as does; marks it checked. */
void czt_check_end(struct czt_proc *p, int want);
/* "exited with code 3", "killed by SIGTERM", "still running" */
const char *czt_describe_status(int status, char *buf, size_t len);
void czt_kill_group(struct czt_proc *p);

bool czt_pid_alive(pid_t pid);
/*
 * How long pid has run, in ms (to the kernel's 10 ms tick), or -1.  Waits
 * until it has run at least ms: for behaviour that depends on a worker's
 * age (--min-uptime), not a sleep standing in for an event.
 */
long czt_age_ms(pid_t pid);
bool czt_wait_age(pid_t pid, int ms);
/* pid's parent from /proc, or -1. */
pid_t czt_ppid(pid_t pid);
/* A child of parent whose name (/proc/PID/comm) is comm, other than `not`; -1 if none. */
pid_t czt_child_named(pid_t parent, const char *comm, pid_t not);
/* Waits until every pid is gone (absent or a zombie). */
bool czt_wait_gone(const pid_t *pids, int n, int ms);
bool czt_wait_until(bool (*pred)(void *arg), void *arg, int ms);

void czt_addr_tcp(struct czt_addr *a, const char *host, int port);
void czt_addr_udp(struct czt_addr *a, const char *host, int port);
void czt_addr_unix(struct czt_addr *a, const char *path);
/* A unix datagram socket; the client autobinds an abstract name for answers. */
void czt_addr_unix_dgram(struct czt_addr *a, const char *path);
/* A connected stream socket, or -errno. */
int czt_connect(const struct czt_addr *a, int ms);
/* Reads "<pid>\n" then EOF: the pid, or -errno (-EBADMSG: other text). */
pid_t czt_read_pid(int fd, int ms);
/* One connection (or datagram): the pid that answered, or -errno. */
pid_t czt_ask(const struct czt_addr *a, int ms);
/*
 * n connections, at most `concurrency` open at once; pids[i] is the answer
 * or -errno.  Returns how many were answered with a pid.
 */
int czt_ask_many(const struct czt_addr *a, int n, int concurrency, pid_t *pids, int ms);
/* Distinct positive pids and their counts; returns the number distinct. */
int czt_tally(const pid_t *pids, int n, pid_t *uniq, int *counts, int max);
/* The last unexpected answer a client saw, for messages. */
const char *czt_last_bad(void);

/* GET path over HTTP/1.0: the status code or -errno; body copied if given. */
int czt_http_get(const char *host, int port, const char *path, char *body, size_t len, int ms);

/*
 * Operations (reload, stop, scale): the workers running now, a client load
 * that runs in a thread while the test acts, the launcher's subcommands.
 */

/* Workers with a "listening on" line and no exit line since, one per id, by id. */
int czt_live_workers(const struct czt_proc *p, struct czt_worker *w, int max);
/* Waits until exactly n workers are live; returns the count seen last. */
int czt_wait_live(struct czt_proc *p, int n, struct czt_worker *w, int ms);

struct czt_load_result {
	int asked;		/* connections started */
	int answered;		/* answered with a pid */
	int failed;		/* refused, reset, timed out or a bad answer */
	int first_failed;	/* index of the first failure, or -1 */
	int first_err;		/* its -errno */
	char first_bad[160];	/* what went wrong with it */
};

struct czt_load;
/*
 * Starts a thread that keeps opening new connections to a, `concurrency`
 * at once, until czt_load_stop, max_conns were started or ms passed.
 */
struct czt_load *czt_load_start(const struct czt_addr *a, int concurrency, int max_conns,
	int ms);
/* Answers so far (any thread may ask). */
int czt_load_answered(const struct czt_load *l);
/* Waits until `more` answers beyond now have come; false at the deadline. */
bool czt_load_wait_more(const struct czt_load *l, int more, int ms);
/* Starts no more connections; the open ones go on (czt_load_stop collects). */
void czt_load_pause(struct czt_load *l);
/* Starts no more connections, waits up to ms for the open ones, frees l. */
void czt_load_stop(struct czt_load *l, struct czt_load_result *r, int ms);

/* A path for --control in the test's directory (czt_ops_client runs subcommands). */
const char *czt_ctl_path(void);

/* TCP sockets in LISTEN state on port, over IPv4 and IPv6 (/proc/net/tcp*). */
int czt_tcp_listeners(int port);
/* A port that was free a moment ago. */
int czt_free_port(int family);
/* A listening socket the test holds on host; *port gets its port. */
int czt_hold_port(const char *host, int *port);

#endif
