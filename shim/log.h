/*
 * The shim's logging: one line per message, formatted into a stack buffer
 * by cz_fmt (no stdio, no malloc) and written with a single write(2), so it
 * is safe in any wrapper, in signal handlers and after fork.
 */
#ifndef CZ_SHIM_LOG_H
#define CZ_SHIM_LOG_H

#include <stdarg.h>
#include <stddef.h>

/*
 * A tiny vsnprintf: %d %i %u %x %ld %lu %lx %zu %s %c %p %%.  Always
 * NUL-terminates (when n > 0); returns the length written.
 */
size_t cz_fmt(char *buf, size_t n, const char *fmt, va_list ap);

/* Reads CLUSTERIZE_DEBUG once (from the constructor). */
void cz_log_init(void);
int cz_log_debug_enabled(void);

/* "clusterize-shim[pid]: ..." when CLUSTERIZE_DEBUG is set. */
void cz_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "clusterize: warning: ..." always. */
void cz_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
