/*
 * The supervisor's metrics: what the --metrics endpoint (metrics.h) shows
 * of the cluster, read from the supervisor's state (workers.h), the rr
 * listeners (rr.h) and the counters (stats.h) when a scrape comes.
 */
#ifndef CZ_LAUNCHER_METRICS_SUP_H
#define CZ_LAUNCHER_METRICS_SUP_H

#include "expo.h"
#include "workers.h"

/*
 * With --metrics, starts the endpoint (and says where); 0, or a negative
 * errno after a one-line error (the launcher then exits 1).
 */
int cz_metrics_sup_start(struct cz_sup *s);

/* Closes the endpoint, if any. */
void cz_metrics_sup_stop(struct cz_sup *s);

/* Writes every family of the cluster `s` into `out`. */
void cz_metrics_sup_collect(void *s, struct cz_expo *out);

#endif
