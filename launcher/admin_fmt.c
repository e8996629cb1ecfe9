/*
 * The control socket's status answer (admin.h): the text table with its
 * uptime column, and the JSON document (jansson).  Also the
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
#include "json.h"

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
	sb_printf(b, "clusterize %d: %s, %s%s%s, %s, %u workers wanted\n",
		s->pid, cmd, str_or(s->sched, "?"),
		s->balance != NULL ? ", balance " : "", str_or(s->balance, ""),
		str_or(s->state, "?"), s->wanted);
	sb_printf(b, "%-4s %-8s %-10s %-7s %-8s %-8s %-6s %s\n", "ID", "PID",
		"STATE", "UPTIME", "RESTARTS", "CONNS", "ACTIVE", "ADDRESSES");
	for (size_t i = 0; i < n; i++) {
		const struct cz_admin_worker *w = &rows[i];
		char up[32];

		format_uptime(w->uptime, up, sizeof(up));
		sb_printf(b, "%-4u %-8d %-10s %-7s %-8u %-8llu %-6u %.*s\n",
			w->id, w->pid, str_or(w->state, "?"), up, w->restarts,
			(unsigned long long)w->conns, w->active,
			(int)sizeof(w->addrs),
			w->addrs[0] != '\0' ? w->addrs : "-");
	}
}

/* "a, b" -> ["a","b"] */
static json_t *json_addrs(const char *addrs, size_t max)
{
	char tmp[CZ_ADMIN_ADDRS_MAX + 1];
	json_t *list = json_array();
	char *p = tmp, *sep;

	snprintf(tmp, sizeof(tmp), "%.*s", (int)max, addrs);
	while (list != NULL && *p != '\0') {
		sep = strstr(p, ", ");
		if (sep != NULL) {
			*sep = '\0';
		}
		if (*p != '\0' &&
		    json_array_append_new(list, cz_json_string_lossy(p)) < 0) {
			json_decref(list);
			return NULL;
		}
		if (sep == NULL) {
			break;
		}
		p = sep + 2;
	}
	return list;
}

/* Seconds, to the millisecond. */
static json_t *json_seconds(double s)
{
	return json_real(isfinite(s) && s > 0 ?
		(double)(long long)(s * 1000.0 + 0.5) / 1000.0 : 0.0);
}

static json_t *json_worker(const struct cz_admin_worker *w)
{
	return json_pack("{s:I, s:i, s:o, s:o, s:I, s:I, s:I, s:o}",
		"id", (json_int_t)w->id, "pid", w->pid,
		"state", cz_json_string_lossy(w->state),
		"uptime", json_seconds(w->uptime),
		"restarts", (json_int_t)w->restarts,
		"conns", (json_int_t)w->conns,
		"active", (json_int_t)w->active,
		"addresses", json_addrs(w->addrs, sizeof(w->addrs)));
}

/* NULL when out of memory (json_pack fails on any NULL member). */
static json_t *status_doc(const struct cz_admin_summary *s,
	const struct cz_admin_worker *rows, size_t n)
{
	json_t *workers = json_array();

	for (size_t i = 0; workers != NULL && i < n; i++) {
		if (json_array_append_new(workers, json_worker(&rows[i])) < 0) {
			json_decref(workers);
			workers = NULL;
		}
	}
	return json_pack("{s:i, s:o, s:o, s:o, s:o, s:I, s:o}", "pid", s->pid,
		"command", cz_json_string_lossy(s->command),
		"sched", cz_json_string_lossy(s->sched),
		"balance", s->balance != NULL ?
			cz_json_string_lossy(s->balance) : json_null(),
		"state", cz_json_string_lossy(s->state),
		"wanted", (json_int_t)s->wanted, "workers", workers);
}

static void status_json(struct cz_admin_buf *b,
	const struct cz_admin_summary *s,
	const struct cz_admin_worker *rows, size_t n)
{
	json_t *doc = status_doc(s, rows, n);
	char *line = doc != NULL ? cz_json_line(doc, 0) : NULL;

	if (line == NULL) {
		b->oom = true;
	} else {
		cz_admin_buf_add(b, line, strlen(line));
		cz_admin_buf_add(b, "\n", 1);
	}
	free(line);
	json_decref(doc);
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
