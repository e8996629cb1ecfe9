/*
 * The launcher's log (log.h).  Each line is formatted into a stack buffer
 * and written with one write(2): workers share our stderr, and a single
 * write of a short line is never interleaved with theirs.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "log_json.h"

#define CZ_LOG_LINE_MAX 2048

static enum cz_log_level cur_level = CZ_LOG_INFO;
static enum cz_log_format cur_format = CZ_LOG_TEXT;

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

void cz_log_set_format(enum cz_log_format format)
{
	cur_format = format;
}

enum cz_log_format cz_log_get_format(void)
{
	return cur_format;
}

int cz_log_parse_format(const char *s)
{
	return strcmp(s, "text") == 0 ? CZ_LOG_TEXT :
		strcmp(s, "json") == 0 ? CZ_LOG_JSON : -1;
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

static int log_fd = STDERR_FILENO;

void cz_log_set_fd(int fd)
{
	log_fd = fd;
}

void cz_log_write(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

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

/*
 * One line: the level's prefix, the message, `suffix`, a newline; or in
 * json the object of event `event` (fields named by `keys`), the message
 * and suffix as its msg.
 */
static void vlog(enum cz_log_level level, const char *event, const char *keys,
	const char *suffix, const char *fmt, va_list ap)
{
	char line[CZ_LOG_LINE_MAX];
	size_t len = 0, room;
	va_list aq;
	int n;

	if (cur_format == CZ_LOG_TEXT) {
		len = strlen(level_prefixes[level]);
		memcpy(line, level_prefixes[level], len);
	}
	va_copy(aq, ap);
	n = vsnprintf(line + len, sizeof(line) - len - 1, fmt, aq);
	va_end(aq);
	if (n < 0) {
		n = 0;
	}
	len += (size_t)n;
	if (len > sizeof(line) - 2) {
		/* Truncated: keep the line a line. */
		len = sizeof(line) - 2;
	}
	room = sizeof(line) - 1 - len;
	if (suffix != NULL && strlen(suffix) < room) {
		memcpy(line + len, suffix, strlen(suffix));
		len += strlen(suffix);
	}
	if (cur_format == CZ_LOG_JSON) {
		line[len] = '\0';
		cz_log_json_event(log_fd, level, event, keys, line, fmt, ap);
		return;
	}
	line[len++] = '\n';
	cz_log_write(log_fd, line, len);
}

void cz_log(enum cz_log_level level, const char *fmt, ...)
{
	int saved_errno = errno;
	va_list ap;

	if (level > cur_level || level < CZ_LOG_ERROR) {
		return;
	}
	va_start(ap, fmt);
	vlog(level, "message", NULL, NULL, fmt, ap);
	va_end(ap);
	errno = saved_errno;
}

void cz_log_event(enum cz_log_level level, const char *event,
	const char *keys, const char *fmt, ...)
{
	int saved_errno = errno;
	va_list ap;

	if (level > cur_level || level < CZ_LOG_ERROR) {
		return;
	}
	va_start(ap, fmt);
	vlog(level, event, keys, NULL, fmt, ap);
	va_end(ap);
	errno = saved_errno;
}

/* --- lines peers cause: a token bucket per source ------------------------ */

struct bucket {
	unsigned long long last_ms; /* when tokens were last added */
	unsigned tokens;
	unsigned long suppressed;
	bool used;
};

static struct bucket buckets[CZ_LOG_PEER_BUCKETS];

static unsigned long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000 +
	       (unsigned long long)ts.tv_nsec / 1000000;
}

static unsigned long long (*clock_ms)(void) = mono_ms;

void cz_log_set_clock(unsigned long long (*now_ms)(void))
{
	clock_ms = now_ms != NULL ? now_ms : mono_ms;
}

void cz_log_peer_reset(void)
{
	memset(buckets, 0, sizeof(buckets));
}

/* Takes a token from the source's bucket; false if none is left. */
static bool bucket_take(struct bucket *b)
{
	unsigned long long now = clock_ms(), add;

	if (!b->used) {
		b->used = true;
		b->tokens = CZ_LOG_PEER_BURST;
		b->last_ms = now;
	}
	add = (now - b->last_ms) / CZ_LOG_PEER_REFILL_MS;
	if (add > 0) {
		b->last_ms += add * CZ_LOG_PEER_REFILL_MS;
		b->tokens = add >= CZ_LOG_PEER_BURST - b->tokens ?
			CZ_LOG_PEER_BURST : b->tokens + (unsigned)add;
	}
	if (b->tokens == 0) {
		b->suppressed++;
		return false;
	}
	b->tokens--;
	return true;
}

void cz_log_peer(unsigned source, enum cz_log_level level, const char *fmt, ...)
{
	struct bucket *b = &buckets[source == CZ_LOG_PEER_UNKNOWN ? 0 :
		1 + (source - 1) % (CZ_LOG_PEER_BUCKETS - 1)];
	int saved_errno = errno;
	char suffix[64] = "";
	va_list ap;

	if (level > cur_level || level < CZ_LOG_ERROR || !bucket_take(b)) {
		errno = saved_errno;
		return;
	}
	if (b->suppressed > 0) {
		snprintf(suffix, sizeof(suffix), " (%lu similar message%s "
			"suppressed)", b->suppressed,
			b->suppressed == 1 ? "" : "s");
		b->suppressed = 0;
	}
	va_start(ap, fmt);
	vlog(level, "message", NULL, suffix, fmt, ap);
	va_end(ap);
	errno = saved_errno;
}
