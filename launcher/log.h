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
 *
 * With --log-format json each line is instead one JSON object:
 * {"time":"2026-11-29T23:55:50.123Z","level":"info","event":"online",
 * "id":1,"pid":4242,"msg":"worker 1 (pid 4242) online"}.  A line from
 * cz_log() or cz_log_peer() is event "message"; cz_log_event() names the
 * event and its fields.
 */
#ifndef CZ_LAUNCHER_LOG_H
#define CZ_LAUNCHER_LOG_H

#include <stddef.h>

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

enum cz_log_format {
	CZ_LOG_TEXT = 0,
	CZ_LOG_JSON = 1,
};

void cz_log_set_format(enum cz_log_format format);
enum cz_log_format cz_log_get_format(void);

/* Parses "text" or "json"; returns -1 if unknown. */
int cz_log_parse_format(const char *s);

void cz_log(enum cz_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * An event: in text exactly the line cz_log(level, fmt, ...) writes; in
 * json, "event": `event`, and the value of each conversion of `fmt` in
 * turn as a field named by the next space-separated word of `keys` ("-"
 * leaves one out):
 *
 *   cz_log_event(CZ_LOG_INFO, "online", "id pid",
 *       "worker %u (pid %d) online", id, pid);
 */
void cz_log_event(enum cz_log_level level, const char *event,
	const char *keys, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* write(2) of all of buf to fd, retrying EINTR; errors are dropped. */
void cz_log_write(int fd, const char *buf, size_t len);

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
