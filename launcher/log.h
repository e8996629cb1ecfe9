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

#endif
