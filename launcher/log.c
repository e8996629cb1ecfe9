/*
 * The launcher's log (log.h).  Each line is formatted into a stack buffer
 * and written with one write(2): workers share our stderr, and a single
 * write of a short line is never interleaved with theirs.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define CZ_LOG_LINE_MAX 2048

static enum cz_log_level cur_level = CZ_LOG_INFO;

static const char *const level_names[] = {
	[CZ_LOG_ERROR] = "error",
	[CZ_LOG_WARN] = "warn",
	[CZ_LOG_INFO] = "info",
	[CZ_LOG_DEBUG] = "debug",
	[CZ_LOG_TRACE] = "trace",
};

static const char *const level_prefixes[] = {
	[CZ_LOG_ERROR] = "clusterize: ",
	[CZ_LOG_WARN] = "clusterize: warning: ",
	[CZ_LOG_INFO] = "clusterize: ",
	[CZ_LOG_DEBUG] = "clusterize: debug: ",
	[CZ_LOG_TRACE] = "clusterize: trace: ",
};

void cz_log_set_level(enum cz_log_level level)
{
	cur_level = level;
}

enum cz_log_level cz_log_get_level(void)
{
	return cur_level;
}

int cz_log_parse_level(const char *s)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			return (int)i;
		}
	}
	return -1;
}

static void write_all(const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, buf, len);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

void cz_log(enum cz_log_level level, const char *fmt, ...)
{
	char line[CZ_LOG_LINE_MAX];
	int saved_errno = errno;
	size_t len;
	va_list ap;
	int n;

	if (level > cur_level || level < CZ_LOG_ERROR) {
		return;
	}
	len = strlen(level_prefixes[level]);
	memcpy(line, level_prefixes[level], len);
	va_start(ap, fmt);
	n = vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
	va_end(ap);
	if (n < 0) {
		n = 0;
	}
	len += (size_t)n;
	if (len > sizeof(line) - 2) {
		/* Truncated: keep the line a line. */
		len = sizeof(line) - 2;
	}
	line[len++] = '\n';
	write_all(line, len);
	errno = saved_errno;
}
