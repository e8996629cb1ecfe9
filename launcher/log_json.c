/*
 * --log-format json (log.h): each line one JSON object, built with jansson.
 * An event's fields come from its own printf arguments: the format is
 * walked once more, and each conversion's value is taken under the name
 * the caller gave it, so the text line and the JSON line can never
 * disagree.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>

#include "escape.h"
#include "log.h"
#include "log_json.h"

/* --- strings ---------------------------------------------------------------- */

json_t *cz_log_json_string(const char *s, size_t n)
{
	json_t *j = json_stringn(s, n);
	char *fixed, *out;

	if (j != NULL || n > SIZE_MAX / 3) {
		return j;
	}
	/* Not UTF-8 (a worker's bytes, a path): each bad byte becomes U+FFFD. */
	fixed = out = malloc(n * 3 + 1);
	if (fixed == NULL) {
		return NULL;
	}
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		size_t k = c < 0x80 ? 1 :
			cz_utf8_len((const unsigned char *)s + i, n - i);

		if (k == 0) {
			memcpy(out, "\xef\xbf\xbd", 3);
			out += 3;
			i++;
		} else {
			memcpy(out, s + i, k);
			out += k;
			i += k;
		}
	}
	j = json_stringn(fixed, (size_t)(out - fixed));
	free(fixed);
	return j;
}

/* --- a line ----------------------------------------------------------------- */

static const char *const level_names[] = {
	[CZ_LOG_ERROR] = "error", [CZ_LOG_WARN] = "warn", [CZ_LOG_INFO] = "info",
	[CZ_LOG_DEBUG] = "debug", [CZ_LOG_TRACE] = "trace",
};

/* RFC 3339, UTC, with milliseconds: "2026-11-29T23:55:50.123Z". */
static void timestamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

json_t *cz_log_json_begin(const char *level, const char *event)
{
	json_t *o = json_object();
	char t[40];

	if (o == NULL) {
		return NULL;
	}
	timestamp(t, sizeof(t));
	json_object_set_new(o, "time", json_string(t));
	if (level != NULL) {
		json_object_set_new(o, "level", json_string(level));
	}
	json_object_set_new(o, "event", json_string(event));
	return o;
}

int cz_log_json_write(json_t *o, int fd)
{
	char stack[4096], *heap = NULL, *line = stack;
	size_t n = json_dumpb(o, stack, sizeof(stack) - 1, JSON_COMPACT);
	int rc = 0;

	if (n == 0) {
		json_decref(o);
		return -1;
	}
	if (n >= sizeof(stack) - 1) {
		heap = json_dumps(o, JSON_COMPACT);
		if (heap == NULL) {
			json_decref(o);
			return -1;
		}
		line = heap;
		n = strlen(heap);
		line = realloc(heap, n + 2);
		if (line == NULL) {
			line = heap;
			rc = -1;
		}
		heap = line;
	}
	json_decref(o);
	if (rc == 0) {
		line[n++] = '\n';
		cz_log_write(fd, line, n);
	}
	free(heap);
	return rc;
}

/* --- the fields of an event --------------------------------------------- */

/* The next space-separated word of *keys into key; false at the end. */
static bool next_key(const char **keys, char *key, size_t len)
{
	const char *k = *keys;
	size_t n;

	while (*k == ' ') {
		k++;
	}
	n = strcspn(k, " ");
	if (n == 0 || n >= len) {
		*keys = k + n;
		return false;
	}
	memcpy(key, k, n);
	key[n] = '\0';
	*keys = k + n;
	return true;
}

enum arg_len { L_NONE, L_HH, L_H, L_L, L_LL, L_Z, L_J, L_T, L_BIG };

/* Parses one conversion after '%' at *fmt; consumes its arguments. */
static json_t *conversion(const char **fmt, va_list *ap)
{
	const char *f = *fmt;
	enum arg_len len = L_NONE;
	int prec = -1;
	json_t *v = NULL;
	char conv;

	f += strspn(f, "-+ #0'");
	if (*f == '*') {
		(void)va_arg(*ap, int);
		f++;
	}
	f += strspn(f, "0123456789");
	if (*f == '.') {
		f++;
		if (*f == '*') {
			prec = va_arg(*ap, int);
			f++;
		} else {
			prec = atoi(f);
			f += strspn(f, "0123456789");
		}
	}
	if (f[0] == 'h' && f[1] == 'h') {
		len = L_HH, f += 2;
	} else if (f[0] == 'l' && f[1] == 'l') {
		len = L_LL, f += 2;
	} else if (*f != '\0' && strchr("hlzjtL", *f) != NULL) {
		len = *f == 'h' ? L_H : *f == 'l' ? L_L : *f == 'z' ? L_Z :
			*f == 'j' ? L_J : *f == 't' ? L_T : L_BIG;
		f++;
	}
	conv = *f;
	*fmt = *f != '\0' ? f + 1 : f;
	switch (conv) {
	case 'd':
	case 'i':
		v = json_integer(len == L_L ? va_arg(*ap, long) :
			len == L_LL || len == L_J ? va_arg(*ap, long long) :
			len == L_Z || len == L_T ? (long long)va_arg(*ap, ssize_t) :
			va_arg(*ap, int));
		break;
	case 'u':
	case 'x':
	case 'X':
	case 'o':
		v = json_integer((json_int_t)(len == L_L ? va_arg(*ap, unsigned long) :
			len == L_LL || len == L_J ? va_arg(*ap, unsigned long long) :
			len == L_Z || len == L_T ? va_arg(*ap, size_t) :
			va_arg(*ap, unsigned)));
		break;
	case 'f': case 'F': case 'e': case 'E': case 'g': case 'G': case 'a': case 'A':
		v = json_real(len == L_BIG ? (double)va_arg(*ap, long double) :
			va_arg(*ap, double));
		break;
	case 'c': {
		char c = (char)va_arg(*ap, int);

		v = cz_log_json_string(&c, 1);
		break;
	}
	case 's': {
		const char *s = va_arg(*ap, const char *);

		s = s != NULL ? s : "(null)";
		v = cz_log_json_string(s, prec >= 0 ? strnlen(s, (size_t)prec) :
			strlen(s));
		break;
	}
	case 'p':
		(void)va_arg(*ap, void *);
		break;
	default:
		break;
	}
	return v;
}

void cz_log_json_fields(json_t *o, const char *keys, const char *fmt,
	va_list ap)
{
	va_list aq;
	char key[32];

	va_copy(aq, ap);
	while (fmt != NULL && (fmt = strchr(fmt, '%')) != NULL) {
		json_t *v;
		bool named;

		fmt++;
		if (*fmt == '%') {
			fmt++;
			continue;
		}
		named = next_key(&keys, key, sizeof(key));
		v = conversion(&fmt, &aq);
		if (v != NULL && named && strcmp(key, "-") != 0) {
			json_object_set_new(o, key, v);
		} else {
			json_decref(v);
		}
	}
	va_end(aq);
}

void cz_log_json_event(int fd, enum cz_log_level level, const char *event,
	const char *keys, const char *msg, const char *fmt, va_list ap)
{
	json_t *o = cz_log_json_begin(level_names[level], event);

	if (o == NULL) {
		return;
	}
	if (keys != NULL) {
		cz_log_json_fields(o, keys, fmt, ap);
	}
	json_object_set_new(o, "msg", cz_log_json_string(msg, strlen(msg)));
	cz_log_json_write(o, fd);
}
