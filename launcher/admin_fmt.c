/*
 * The control socket's status answer (admin.h): the text table with its
 * uptime column, and the JSON document with its string escaping.  Also the
 * growing string all of admin*.c write answers into (admin_int.h).
 */
#include "admin_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"

/* --- a growing string ------------------------------------------------------ */

void cz_admin_buf_grow(struct cz_admin_buf *b, size_t need)
{
	size_t cap = b->cap != 0 ? b->cap : 1024;
	char *p;

	if (b->oom || b->len + need + 1 <= b->cap) {
		return;
	}
	while (cap < b->len + need + 1) {
		cap *= 2;
	}
	p = realloc(b->p, cap);
	if (p == NULL) {
		b->oom = true;
		return;
	}
	b->p = p;
	b->cap = cap;
}

void cz_admin_buf_add(struct cz_admin_buf *b, const char *s, size_t n)
{
	cz_admin_buf_grow(b, n);
	if (b->oom) {
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

__attribute__((format(printf, 2, 3)))
static void sb_printf(struct cz_admin_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	cz_admin_buf_grow(b, (size_t)n);
	if (b->oom) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* A JSON string; bytes that are not UTF-8 (argv can hold any) become
 * U+FFFD so the document stays valid. */
static void sb_json_str(struct cz_admin_buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
	size_t n = strlen((const char *)p);

	cz_admin_buf_add(b, "\"", 1);
	while (n > 0) {
		size_t k;

		if (*p == '"' || *p == '\\') {
			sb_printf(b, "\\%c", *p);
			k = 1;
		} else if (*p < 0x20 || *p == 0x7f) {
			sb_printf(b, "\\u%04x", *p);
			k = 1;
		} else if (*p < 0x80) {
			cz_admin_buf_add(b, (const char *)p, 1);
			k = 1;
		} else if ((k = cz_utf8_len(p, n)) > 0) {
			cz_admin_buf_add(b, (const char *)p, k);
		} else {
			cz_admin_buf_add(b, "\\ufffd", 6);
			k = 1;
		}
		p += k;
		n -= k;
	}
	cz_admin_buf_add(b, "\"", 1);
}

/* --- the status answer ---------------------------------------------------- */

static void format_uptime(double s, char *buf, size_t len)
{
	unsigned long t = isfinite(s) && s > 0 ? (unsigned long)s : 0;

	if (t < 60) {
		snprintf(buf, len, "%lus", t);
	} else if (t < 3600) {
		snprintf(buf, len, "%lum%02lus", t / 60, t % 60);
	} else if (t < 86400) {
		snprintf(buf, len, "%luh%02lum", t / 3600, t % 3600 / 60);
	} else {
		snprintf(buf, len, "%lud%02luh", t / 86400, t % 86400 / 3600);
	}
}

static const char *str_or(const char *s, const char *dflt)
{
	return s != NULL ? s : dflt;
}

static void status_text(struct cz_admin_buf *b,
	const struct cz_admin_summary *s,
	const struct cz_admin_worker *rows, size_t n)
{
	char cmd[1024];

	/* Addresses come escaped (cz_addr_format); the command may hold
	 * any byte too. */
	cz_escape_str(cmd, sizeof(cmd), str_or(s->command, "?"));
	sb_printf(b, "clusterize %d: %s, %s, %s, %u workers wanted\n", s->pid,
		cmd, str_or(s->sched, "?"), str_or(s->state, "?"), s->wanted);
	sb_printf(b, "%-4s %-8s %-10s %-7s %-8s %-8s %s\n", "ID", "PID",
		"STATE", "UPTIME", "RESTARTS", "CONNS", "ADDRESSES");
	for (size_t i = 0; i < n; i++) {
		const struct cz_admin_worker *w = &rows[i];
		char up[32];

		format_uptime(w->uptime, up, sizeof(up));
		sb_printf(b, "%-4u %-8d %-10s %-7s %-8u %-8llu %.*s\n", w->id,
			w->pid, str_or(w->state, "?"), up, w->restarts,
			(unsigned long long)w->conns, (int)sizeof(w->addrs),
			w->addrs[0] != '\0' ? w->addrs : "-");
	}
}

/* "a, b" -> ["a","b"] */
static void json_addrs(struct cz_admin_buf *b, const char *addrs, size_t max)
{
	char tmp[CZ_ADMIN_ADDRS_MAX + 1];
	char *p = tmp, *sep;
	bool first = true;

	snprintf(tmp, sizeof(tmp), "%.*s", (int)max, addrs);
	cz_admin_buf_add(b, "[", 1);
	while (*p != '\0') {
		sep = strstr(p, ", ");
		if (sep != NULL) {
			*sep = '\0';
		}
		if (*p != '\0') {
			cz_admin_buf_add(b, first ? "" : ",", first ? 0 : 1);
			sb_json_str(b, p);
			first = false;
		}
		if (sep == NULL) {
			break;
		}
		p = sep + 2;
	}
	cz_admin_buf_add(b, "]", 1);
}

static void status_json(struct cz_admin_buf *b,
	const struct cz_admin_summary *s,
	const struct cz_admin_worker *rows, size_t n)
{
	sb_printf(b, "{\"pid\":%d,\"command\":", s->pid);
	sb_json_str(b, s->command);
	cz_admin_buf_add(b, ",\"sched\":", 9);
	sb_json_str(b, s->sched);
	cz_admin_buf_add(b, ",\"state\":", 9);
	sb_json_str(b, s->state);
	sb_printf(b, ",\"wanted\":%u,\"workers\":[", s->wanted);
	for (size_t i = 0; i < n; i++) {
		const struct cz_admin_worker *w = &rows[i];

		sb_printf(b, "%s{\"id\":%u,\"pid\":%d,\"state\":", i > 0 ? "," : "",
			w->id, w->pid);
		sb_json_str(b, w->state);
		sb_printf(b, ",\"uptime\":%.3f,\"restarts\":%u,\"conns\":%llu,"
			"\"addresses\":", isfinite(w->uptime) && w->uptime > 0 ?
			w->uptime : 0.0, w->restarts, (unsigned long long)w->conns);
		json_addrs(b, w->addrs, sizeof(w->addrs));
		cz_admin_buf_add(b, "}", 1);
	}
	cz_admin_buf_add(b, "]}\n", 3);
}

void cz_admin_format_status(struct cz_admin_buf *b,
	const struct cz_admin_summary *s, const struct cz_admin_worker *rows,
	size_t n, bool json)
{
	if (json) {
		status_json(b, s, rows, n);
	} else {
		status_text(b, s, rows, n);
	}
}
