/*
 * The JSON lines of --log-format json (log.h), for the launcher's own lines
 * and the workers' output (output.c).
 */
#ifndef CZ_LAUNCHER_LOG_JSON_H
#define CZ_LAUNCHER_LOG_JSON_H

#include <stdarg.h>
#include <stddef.h>

#include <jansson.h>

#include "log.h"

/* A JSON string of n bytes; bytes that are not UTF-8 become U+FFFD. */
json_t *cz_log_json_string(const char *s, size_t n);

/* {"time": now (RFC 3339, ms, UTC), "level": level, "event": event};
 * `level` may be NULL.  NULL when out of memory. */
json_t *cz_log_json_begin(const char *level, const char *event);

/* Writes `o` as one line on fd with one write(2), and frees it. */
int cz_log_json_write(json_t *o, int fd);

/*
 * Adds to `o` the value of each conversion of `fmt` (taken from `ap`) under
 * the next space-separated word of `keys`; "-" or no word left: not added.
 */
void cz_log_json_fields(json_t *o, const char *keys, const char *fmt,
	va_list ap);

/* The JSON line, on fd, of an event (cz_log_event) or message (keys NULL). */
void cz_log_json_event(int fd, enum cz_log_level level, const char *event,
	const char *keys, const char *msg, const char *fmt, va_list ap);

#endif
