/*
 * The launcher's log: one line per call on stderr, written with a single
 * write(2) so lines from the launcher and its workers never interleave
 * mid-line.
 *
 *   error:  "clusterize: <msg>"            always shown
 *   warn:   "clusterize: warning: <msg>"   always shown
 *   info:   "clusterize: <msg>"            events; hidden by -q
 *   debug:  "clusterize: debug: <msg>"     -v or CLUSTERIZE_LOG=debug
 *   trace:  "clusterize: trace: <msg>"     -vv or CLUSTERIZE_LOG=trace
 */
#ifndef CZ_LAUNCHER_LOG_H
#define CZ_LAUNCHER_LOG_H

enum cz_log_level {
	CZ_LOG_ERROR = 0,
	CZ_LOG_WARN = 1,
	CZ_LOG_INFO = 2,
	CZ_LOG_DEBUG = 3,
	CZ_LOG_TRACE = 4,
};

void cz_log_set_level(enum cz_log_level level);
enum cz_log_level cz_log_get_level(void);

/* Parses "error", "warn", "info", "debug", "trace"; returns -1 if unknown. */
int cz_log_parse_level(const char *s);

void cz_log(enum cz_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Lines a peer can cause (a worker sending junk, a refused connection):
 * as cz_log, but each source gets CZ_LOG_PEER_BURST lines at once and
 * then one per CZ_LOG_PEER_REFILL_MS, so no peer can fill a disk.  The
 * next line printed after some were dropped ends with "(N similar
 * messages suppressed)".  `source` is the worker id, or
 * CZ_LOG_PEER_UNKNOWN for peers that are no worker; workers share
 * CZ_LOG_PEER_BUCKETS - 1 buckets (by id), so the total is bounded too.
 */
#define CZ_LOG_PEER_UNKNOWN 0u
#define CZ_LOG_PEER_BURST 5
#define CZ_LOG_PEER_REFILL_MS 10000
#define CZ_LOG_PEER_BUCKETS 64
void cz_log_peer(unsigned source, enum cz_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* For tests: where lines go (default stderr), and the clock (ms). */
void cz_log_set_fd(int fd);
void cz_log_set_clock(unsigned long long (*now_ms)(void));
/* Forgets every source's history. */
void cz_log_peer_reset(void);

#endif
