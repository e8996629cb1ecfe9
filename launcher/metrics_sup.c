/*
 * The families of the metrics endpoint (metrics_sup.h).  Names follow the
 * Prometheus conventions: the clusterize_ prefix, _total for counters,
 * seconds and bytes; the launcher's own CPU and memory use the names every
 * client library gives them (process_*), so existing dashboards work.
 */
#include "metrics_sup.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "control.h"
#include "log.h"
#include "metrics.h"
#include "roll.h"
#include "stats.h"

static const char *const states[] = {
	"starting", "online", "listening", "draining", "stopping",
};
#define N_STATES (sizeof(states) / sizeof(states[0]))

static const char *sched_name(const struct cz_sup *s)
{
	return s->opts->sched == CZ_MODE_RR ? "rr" : "none";
}

static void cluster(struct cz_sup *s, struct cz_expo *e)
{
	unsigned counts[N_STATES] = { 0 };
	struct cz_expo_labels l = { 0 };

	cz_expo_family(e, "clusterize_info", "gauge",
		"The launcher's version and scheduling policy (always 1).");
	cz_expo_label(&l, "version", CZ_VERSION);
	cz_expo_label(&l, "sched", sched_name(s));
	cz_expo_u64(e, "clusterize_info", &l, 1);
	cz_expo_family(e, "clusterize_workers_wanted", "gauge",
		"Workers the launcher is asked to run.");
	cz_expo_u64(e, "clusterize_workers_wanted", NULL, s->n_slots);
	for (const struct cz_worker *w = s->workers; w != NULL; w = w->next) {
		const char *st = cz_roll_worker_state(s, w);

		for (size_t i = 0; i < N_STATES; i++) {
			counts[i] += strcmp(st, states[i]) == 0;
		}
	}
	cz_expo_family(e, "clusterize_workers", "gauge",
		"Worker processes running, by state.");
	for (size_t i = 0; i < N_STATES; i++) {
		l.len = 0;
		cz_expo_label(&l, "state", states[i]);
		cz_expo_u64(e, "clusterize_workers", &l, counts[i]);
	}
}

static void worker_labels(struct cz_expo_labels *l, const struct cz_worker *w)
{
	l->len = 0;
	cz_expo_label_u(l, "id", w->id);
	cz_expo_label_u(l, "pid", (uint64_t)w->pid);
}

static void workers(struct cz_sup *s, struct cz_expo *e)
{
	uint64_t now = cz_workers_now();
	struct cz_expo_labels l;

	cz_expo_family(e, "clusterize_worker_connections_total", "counter",
		"Connections handed out to the worker (rr).");
	for (const struct cz_worker *w = s->workers; w != NULL; w = w->next) {
		worker_labels(&l, w);
		cz_expo_u64(e, "clusterize_worker_connections_total", &l,
			cz_control_worker_conns(s->control, w->id));
	}
	cz_expo_family(e, "clusterize_worker_connections_open", "gauge",
		"Connections the worker holds open now (its shim's count).");
	for (const struct cz_worker *w = s->workers; w != NULL; w = w->next) {
		worker_labels(&l, w);
		cz_expo_u64(e, "clusterize_worker_connections_open", &l,
			cz_control_worker_active(s->control, w->id));
	}
	cz_expo_family(e, "clusterize_worker_restarts", "gauge",
		"Replacements of the worker's slot before this worker.");
	for (const struct cz_worker *w = s->workers; w != NULL; w = w->next) {
		worker_labels(&l, w);
		cz_expo_u64(e, "clusterize_worker_restarts", &l, w->restarts);
	}
	cz_expo_family(e, "clusterize_worker_uptime_seconds", "gauge",
		"Seconds since the worker was started.");
	for (const struct cz_worker *w = s->workers; w != NULL; w = w->next) {
		worker_labels(&l, w);
		cz_expo_double(e, "clusterize_worker_uptime_seconds", &l,
			(double)(now - w->started) / 1000.0);
	}
}

static void counter(struct cz_expo *e, const char *name, const char *help,
	uint64_t v)
{
	cz_expo_family(e, name, "counter", help);
	cz_expo_u64(e, name, NULL, v);
}

static void events(struct cz_expo *e)
{
	counter(e, "clusterize_worker_restarts_total", "Workers replaced after "
		"exiting without being asked.", cz_stats.restarts);
	counter(e, "clusterize_reloads_started_total",
		"Rolling restarts started.", cz_stats.reloads_started);
	counter(e, "clusterize_reloads_finished_total",
		"Rolling restarts that replaced every worker.",
		cz_stats.reloads_finished);
	counter(e, "clusterize_reloads_aborted_total", "Rolling restarts "
		"aborted (a new worker exited or was not ready in time).",
		cz_stats.reloads_aborted);
	counter(e, "clusterize_crash_loop_giveups_total", "Times the launcher "
		"gave up on a worker that kept crashing at start.",
		cz_stats.giveups);
}

/* --- listeners: one pass per family over the rr listeners ----------------- */

enum lfam { L_ACCEPTED, L_HELD, L_QUEUED, L_REDISPATCHED, L_DROPPED, L_WAIT,
	L_N };

static const struct {
	const char *name, *type, *help;
} lfams[L_N] = {
	[L_ACCEPTED] = { "clusterize_listener_connections_accepted_total",
		"counter", "Connections the primary accepted." },
	[L_HELD] = { "clusterize_listener_connections_held", "gauge",
		"Accepted connections the primary holds until a worker can "
		"take one." },
	[L_QUEUED] = { "clusterize_listener_connections_queued",
		"gauge", "Connections sent to a worker and still queued in its "
		"channel (the kernel's count)." },
	[L_REDISPATCHED] = { "clusterize_listener_connections_redispatched_total",
		"counter", "Connections taken back from a worker that did not "
		"take them (it stopped, stalled or died) and sent again." },
	[L_DROPPED] = { "clusterize_listener_connections_dropped_total",
		"counter", "Accepted connections closed without being served "
		"(out of memory, or held when the listener closed)." },
	[L_WAIT] = { "clusterize_connection_wait_seconds", "histogram",
		"Time from the primary's accept until it sends the connection "
		"to a worker's channel." },
};

struct lpass {
	struct cz_expo *e;
	enum lfam fam;
};

static void listener_sample(void *data, const struct cz_rr_listener_info *li)
{
	struct lpass *p = data;
	const struct cz_stats_listener *st = li->stats;
	const char *name = lfams[p->fam].name;
	struct cz_expo_labels l = { 0 };

	cz_expo_label(&l, "address", li->name);
	cz_expo_label(&l, "policy", "rr");
	switch (p->fam) {
	case L_ACCEPTED:
		cz_expo_u64(p->e, name, &l, st->accepted);
		break;
	case L_HELD:
		cz_expo_u64(p->e, name, &l, li->held);
		break;
	case L_QUEUED:
		cz_expo_u64(p->e, name, &l, li->queued);
		break;
	case L_REDISPATCHED:
		cz_expo_u64(p->e, name, &l, st->redispatched);
		break;
	case L_DROPPED:
		cz_expo_u64(p->e, name, &l, st->dropped);
		break;
	default:
		cz_expo_wait(p->e, name, &l, &st->wait);
		break;
	}
}

static void listeners(struct cz_sup *s, struct cz_expo *e)
{
	struct lpass p = { .e = e };

	for (p.fam = 0; p.fam < L_N; p.fam++) {
		cz_expo_family(e, lfams[p.fam].name, lfams[p.fam].type,
			lfams[p.fam].help);
		cz_control_each_listener(s->control, listener_sample, &p);
	}
}

/* --- the launcher process --------------------------------------------------- */

static uint64_t resident_bytes(void)
{
	unsigned long size = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (f != NULL) {
		if (fscanf(f, "%lu %lu", &size, &rss) != 2) {
			rss = 0;
		}
		fclose(f);
	}
	return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void process(struct cz_expo *e)
{
	struct rusage ru;
	double cpu = 0;

	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
			(double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	}
	cz_expo_family(e, "process_cpu_seconds_total", "counter",
		"User and system CPU time the launcher spent, in seconds.");
	cz_expo_double(e, "process_cpu_seconds_total", NULL, cpu);
	cz_expo_family(e, "process_resident_memory_bytes", "gauge",
		"The launcher's resident memory, in bytes.");
	cz_expo_u64(e, "process_resident_memory_bytes", NULL, resident_bytes());
}

void cz_metrics_sup_collect(void *data, struct cz_expo *out)
{
	struct cz_sup *s = data;

	cluster(s, out);
	workers(s, out);
	events(out);
	listeners(s, out);
	process(out);
}

int cz_metrics_sup_start(struct cz_sup *s)
{
	int rc;

	if (s->opts->metrics == NULL) {
		return 0;
	}
	rc = cz_metrics_create(s->loop, s->opts->metrics,
		cz_metrics_sup_collect, s, &s->metrics);
	if (rc < 0) {
		cz_log(CZ_LOG_ERROR, "metrics endpoint %s: %s", s->opts->metrics,
			uv_strerror(rc));
		return rc;
	}
	cz_log_event(CZ_LOG_INFO, "metrics", "address",
		"metrics on http://%s/metrics", cz_metrics_address(s->metrics));
	return 0;
}

void cz_metrics_sup_stop(struct cz_sup *s)
{
	cz_metrics_destroy(s->metrics);
	s->metrics = NULL;
}
