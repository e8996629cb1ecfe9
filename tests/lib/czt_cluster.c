/* czt: a launcher with cz-server workers, started and checked in one call. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "czt.h"

#define MAX_ARGS 64

void czt_cluster_start_argv(struct czt_cluster *c, int workers, const char *const largs[],
	const char *const cmd[], const char *const env[])
{
	const char *argv[MAX_ARGS];
	const char *envs[MAX_ARGS];
	static char wbuf[16];
	int n = 0, k = 0;

	snprintf(wbuf, sizeof(wbuf), "%d", workers);
	argv[n++] = czt_launcher();
	argv[n++] = "-w";
	argv[n++] = wbuf;
	for (int i = 0; largs != NULL && largs[i] != NULL && n < MAX_ARGS - 2; i++) {
		argv[n++] = largs[i];
	}
	argv[n++] = "--";
	for (int i = 0; cmd[i] != NULL; i++) {
		cr_assert_lt(n, MAX_ARGS - 1, "too many arguments");
		argv[n++] = cmd[i];
	}
	argv[n] = NULL;
	envs[k++] = czt_asan_options();
	for (int i = 0; env != NULL && env[i] != NULL && k < MAX_ARGS - 1; i++) {
		envs[k++] = env[i];
	}
	envs[k] = NULL;
	memset(c, 0, sizeof(*c));
	c->workers = workers;
	c->proc = czt_spawn(argv, envs);
	c->nw = czt_wait_listening(c->proc, workers, c->w, 20000);
	c->port = c->w[0].port > 0 ? c->w[0].port : 0;
}

void czt_cluster_start(struct czt_cluster *c, int workers, const char *sched, ...)
{
	const char *cmd[MAX_ARGS];
	const char *largs[] = { "-s", sched, NULL };
	int n = 0;
	va_list ap;

	cmd[n++] = czt_server();
	va_start(ap, sched);
	for (const char *a = va_arg(ap, const char *); a != NULL; a = va_arg(ap, const char *)) {
		cr_assert_lt(n, MAX_ARGS - 1, "too many server arguments");
		cmd[n++] = a;
	}
	va_end(ap);
	cmd[n] = NULL;
	czt_cluster_start_argv(c, workers, largs, cmd, NULL);
}

int czt_cluster_worker_of(const struct czt_cluster *c, pid_t pid)
{
	pid_t parent = czt_ppid(pid);

	for (int i = 0; i < c->nw; i++) {
		if (c->w[i].pid == pid || c->w[i].pid == parent) {
			return i;
		}
	}
	return -1;
}

bool czt_cluster_owns(const struct czt_cluster *c, pid_t pid)
{
	return czt_cluster_worker_of(c, pid) >= 0;
}

void czt_cluster_start_server(struct czt_cluster *c, int workers, const char *const largs[],
	const char *const srv[])
{
	const char *cmd[32];
	int n = 0;

	cmd[n++] = czt_server();
	for (int i = 0; srv[i] != NULL; i++) {
		cr_assert_lt(n, 31, "too many server arguments");
		cmd[n++] = srv[i];
	}
	cmd[n] = NULL;
	czt_cluster_start_argv(c, workers, largs, cmd, NULL);
}
