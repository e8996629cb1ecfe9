/* The Prometheus text exposition format (expo.h). */
#include "expo.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPO_FIRST_CAP 8192

void cz_expo_init(struct cz_expo *e)
{
	memset(e, 0, sizeof(*e));
}

void cz_expo_free(struct cz_expo *e)
{
	free(e->buf);
	cz_expo_init(e);
}

static bool reserve(struct cz_expo *e, size_t more)
{
	size_t cap = e->cap ? e->cap : EXPO_FIRST_CAP;
	char *p;

	if (e->failed) {
		return false;
	}
	if (e->len + more < e->cap) {
		return true;
	}
	while (cap <= e->len + more) {
		cap *= 2;
	}
	p = realloc(e->buf, cap);
	if (p == NULL) {
		e->failed = true;
		return false;
	}
	e->buf = p;
	e->cap = cap;
	return true;
}

static void put(struct cz_expo *e, const char *s, size_t n)
{
	if (reserve(e, n + 1)) {
		memcpy(e->buf + e->len, s, n);
		e->len += n;
		e->buf[e->len] = '\0';
	}
}

static void put_str(struct cz_expo *e, const char *s)
{
	put(e, s, strlen(s));
}

/* HELP escapes backslash and newline; label values also double quotes. */
static size_t escape(char *out, size_t room, const char *s, bool quote)
{
	size_t n = 0;

	for (; *s != '\0'; s++) {
		const char *rep = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" :
			(quote && *s == '"') ? "\\\"" : NULL;
		size_t k = rep != NULL ? 2 : 1;

		if (n + k >= room) {
			break;
		}
		memcpy(out + n, rep != NULL ? rep : s, k);
		n += k;
	}
	out[n] = '\0';
	return n;
}

void cz_expo_label(struct cz_expo_labels *l, const char *key, const char *value)
{
	size_t room = sizeof(l->s) - l->len;
	int n = snprintf(l->s + l->len, room, "%s%s=\"", l->len > 0 ? "," : "",
		key);

	/* Room for the value's closing quote is kept back. */
	if (n < 0 || (size_t)n + 2 >= room) {
		return;
	}
	l->len += (size_t)n;
	l->len += escape(l->s + l->len, sizeof(l->s) - l->len - 1, value, true);
	l->s[l->len++] = '"';
	l->s[l->len] = '\0';
}

void cz_expo_label_u(struct cz_expo_labels *l, const char *key, uint64_t value)
{
	char v[24];

	snprintf(v, sizeof(v), "%" PRIu64, value);
	cz_expo_label(l, key, v);
}

void cz_expo_family(struct cz_expo *e, const char *name, const char *type,
	const char *help)
{
	char h[512];

	escape(h, sizeof(h), help, false);
	put_str(e, "# HELP ");
	put_str(e, name);
	put_str(e, " ");
	put_str(e, h);
	put_str(e, "\n# TYPE ");
	put_str(e, name);
	put_str(e, " ");
	put_str(e, type);
	put_str(e, "\n");
}

static void sample(struct cz_expo *e, const char *name, const char *suffix,
	const struct cz_expo_labels *labels, const char *extra,
	const char *value)
{
	bool any = (labels != NULL && labels->len > 0) || extra != NULL;

	put_str(e, name);
	put_str(e, suffix);
	if (any) {
		put_str(e, "{");
		if (labels != NULL && labels->len > 0) {
			put(e, labels->s, labels->len);
		}
		if (extra != NULL) {
			put_str(e, labels != NULL && labels->len > 0 ? "," : "");
			put_str(e, extra);
		}
		put_str(e, "}");
	}
	put_str(e, " ");
	put_str(e, value);
	put_str(e, "\n");
}

void cz_expo_u64(struct cz_expo *e, const char *name,
	const struct cz_expo_labels *labels, uint64_t value)
{
	char v[24];

	snprintf(v, sizeof(v), "%" PRIu64, value);
	sample(e, name, "", labels, NULL, v);
}

void cz_expo_double(struct cz_expo *e, const char *name,
	const struct cz_expo_labels *labels, double value)
{
	char v[40];

	snprintf(v, sizeof(v), "%.15g", value);
	sample(e, name, "", labels, NULL, v);
}

void cz_expo_wait(struct cz_expo *e, const char *name,
	const struct cz_expo_labels *labels, const struct cz_stats_wait *w)
{
	char le[32], v[40];
	uint64_t cum = 0;

	for (unsigned i = 0; i <= CZ_STATS_WAIT_BUCKETS; i++) {
		cum += w->buckets[i];
		snprintf(le, sizeof(le), "le=\"%s\"", i < CZ_STATS_WAIT_BUCKETS ?
			cz_stats_wait_bounds_text[i] : "+Inf");
		snprintf(v, sizeof(v), "%" PRIu64, cum);
		sample(e, name, "_bucket", labels, le, v);
	}
	snprintf(v, sizeof(v), "%.15g", (double)w->sum_ns / 1e9);
	sample(e, name, "_sum", labels, NULL, v);
	snprintf(v, sizeof(v), "%" PRIu64, w->count);
	sample(e, name, "_count", labels, NULL, v);
}
