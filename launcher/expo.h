/*
 * A writer of the Prometheus text exposition format, version 0.0.4: one
 * "# HELP" and "# TYPE" line per family, then its samples, each
 * "name{label="value",...} value\n".  Label values are escaped as the
 * format says (backslash, double quote, newline); so is HELP text
 * (backslash, newline).  Pure: no loop, no I/O; unit-tested.
 */
#ifndef CZ_LAUNCHER_EXPO_H
#define CZ_LAUNCHER_EXPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stats.h"

/* The document being written: a growing buffer. */
struct cz_expo {
	char *buf;
	size_t len, cap;
	bool failed;  /* out of memory: the document is incomplete */
};

/* A rendered label list, without the braces: `id="3",pid="42"`. */
struct cz_expo_labels {
	size_t len;
	char s[1024];
};

void cz_expo_init(struct cz_expo *e);
void cz_expo_free(struct cz_expo *e);

/* Appends `key="value"` to `l`, escaping value; an oversized one is cut. */
void cz_expo_label(struct cz_expo_labels *l, const char *key, const char *value);
void cz_expo_label_u(struct cz_expo_labels *l, const char *key, uint64_t value);

/* "# HELP name help" and "# TYPE name type" (counter, gauge, histogram). */
void cz_expo_family(struct cz_expo *e, const char *name, const char *type,
	const char *help);

/* A sample of the family: `labels` may be NULL. */
void cz_expo_u64(struct cz_expo *e, const char *name,
	const struct cz_expo_labels *labels, uint64_t value);
void cz_expo_double(struct cz_expo *e, const char *name,
	const struct cz_expo_labels *labels, double value);

/* The samples of histogram `name` (cumulative _bucket, _sum, _count). */
void cz_expo_wait(struct cz_expo *e, const char *name,
	const struct cz_expo_labels *labels, const struct cz_stats_wait *w);

#endif
