/*
 * --metrics [HOST]:PORT: the primary's Prometheus endpoint.  A libuv TCP
 * server on the launcher's own loop (never the shim, never a worker's
 * port) that answers GET /metrics with what `collect` writes, in the text
 * exposition format 0.0.4 (expo.h).
 *
 * It shares the loop with the data path rather than running a loop of its
 * own in a thread: reading the counters then needs no lock and bumping
 * them no atomic, and a scrape costs the loop only the time to write the
 * text (see the README's bench figures).
 *
 * One request per connection (answered with Connection: close), at most
 * CZ_METRICS_CLIENTS at once (more are closed at once), the request line
 * and headers within CZ_HTTP_HEAD_MAX bytes and CZ_METRICS_HEAD_MS, the
 * whole exchange within CZ_METRICS_TOTAL_MS.
 */
#ifndef CZ_LAUNCHER_METRICS_H
#define CZ_LAUNCHER_METRICS_H

#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

#include "expo.h"

#define CZ_METRICS_CLIENTS 8
#define CZ_METRICS_HEAD_MS 5000
#define CZ_METRICS_TOTAL_MS 15000

struct cz_metrics;

/* Writes every metric family into `out`. */
typedef void cz_metrics_collect_fn(void *data, struct cz_expo *out);

/*
 * Parses "[HOST]:PORT": HOST a numeric IPv4 address, a bracketed IPv6
 * address, "localhost" (127.0.0.1) or empty (127.0.0.1: never every
 * address unless asked, e.g. 0.0.0.0:9464); PORT 0..65535.  Returns the
 * address length, or -1 with a reason (for "invalid address '...' for
 * --metrics: <reason>") in err.
 */
int cz_metrics_parse_addr(const char *s, struct sockaddr_storage *ss,
	char *err, size_t errlen);

/* Binds `addr` (as cz_metrics_parse_addr takes it) and serves it. */
int cz_metrics_create(uv_loop_t *loop, const char *addr,
	cz_metrics_collect_fn *collect, void *data, struct cz_metrics **out);

/* The bound address, "127.0.0.1:9464" or "[::1]:9464". */
const char *cz_metrics_address(const struct cz_metrics *m);

/* Closes the server and every client; the loop frees them.  NULL is fine. */
void cz_metrics_destroy(struct cz_metrics *m);

#endif
