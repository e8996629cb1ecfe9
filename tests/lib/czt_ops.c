/* czt_ops: spawning with a pre-exec hook, subcommand runs (czt_ops.h). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "czt_ops.h"

#define MAX_HOOKED 8
#define MAX_ARGS 32
#define CLIENT_MS 15000

extern char **environ;

static struct czt_proc hooked[MAX_HOOKED];
static int nhooked;

void czt_ops_teardown(void)
{
	for (int i = 0; i < nhooked; i++) {
		czt_kill_group(&hooked[i]);
		czt_wait_exit(&hooked[i], 5000);
		if (getenv("CZ_TEST_VERBOSE") != NULL) {
			czt_dump(&hooked[i]);
		}
	}
	nhooked = 0;
	czt_teardown();
}

/* "NAME=value" sets, "NAME" unsets. */
static void apply_env(const char *const env[])
{
	for (int i = 0; env != NULL && env[i] != NULL; i++) {
		const char *eq = strchr(env[i], '=');

		if (eq == NULL) {
			unsetenv(env[i]);
		} else {
			char name[128];

			snprintf(name, sizeof(name), "%.*s", (int)(eq - env[i]), env[i]);
			setenv(name, eq + 1, 1);
		}
	}
}

static void hooked_child(const struct czt_proc *p, const char *const argv[],
	const char *const env[], czt_ops_hook *hook, void *arg, pid_t parent)
{
	int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int out = open(p->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	int err = open(p->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);

	setpgid(0, 0);
	if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
		dup2(err, 2) < 0) {
		_exit(125);
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent) {
		_exit(125);
	}
	signal(SIGPIPE, SIG_DFL);
	apply_env(env);
	if (hook != NULL && hook(arg) != 0) {
		dprintf(2, "czt: the pre-exec hook failed: %s\n", strerror(errno));
		_exit(125);
	}
	execve(argv[0], (char *const *)argv, environ);
	dprintf(2, "czt: exec %s: %s\n", argv[0], strerror(errno));
	_exit(125);
}

struct czt_proc *czt_ops_spawn_hook(const char *const argv[], const char *const env[],
	czt_ops_hook *hook, void *arg)
{
	cr_assert_lt(nhooked, MAX_HOOKED, "too many hooked processes in one test");
	struct czt_proc *p = &hooked[nhooked];
	pid_t parent = getpid();

	memset(p, 0, sizeof(*p));
	snprintf(p->out_path, sizeof(p->out_path), "%s/h%d.out", czt_tmpdir(), nhooked);
	snprintf(p->err_path, sizeof(p->err_path), "%s/h%d.err", czt_tmpdir(), nhooked);
	fflush(NULL);
	pid_t pid = fork();

	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		hooked_child(p, argv, env, hook, arg, parent);
	}
	setpgid(pid, pid);
	p->pid = pid;
	nhooked++;
	czt_track(p, argv[0]);
	return p;
}

/* --- subcommands ------------------------------------------------------------ */

int czt_ops_client(struct czt_ops_run *r, int uid, const char *const env[], ...)
{
	const char *argv[MAX_ARGS];
	const char *envs[MAX_ARGS];
	int n = 0, k = 0;
	va_list ap;

	argv[n++] = czt_launcher();
	va_start(ap, env);
	for (const char *a = va_arg(ap, const char *); a != NULL; a = va_arg(ap, const char *)) {
		cr_assert_lt(n, MAX_ARGS - 1, "too many client arguments");
		argv[n++] = a;
	}
	va_end(ap);
	argv[n] = NULL;
	envs[k++] = czt_asan_options();
	for (int i = 0; env != NULL && env[i] != NULL && k < MAX_ARGS - 1; i++) {
		envs[k++] = env[i];
	}
	envs[k] = NULL;
	struct czt_proc *p = czt_spawn_as(argv, envs, uid, uid);

	r->status = czt_wait_exit(p, CLIENT_MS);
	if (r->status == -1) {
		czt_kill_group(p);
		czt_wait_exit(p, 5000);
	}
	r->out = czt_read(p, CZT_OUT);
	r->err = czt_read(p, CZT_ERR);
	/* The caller asserts the status it expects; a sanitizer report is never right. */
	char first[256] = "";
	int reports = czt_sanitizer_lines(p, first, sizeof(first));

	p->checked = true;
	cr_expect_eq(reports, 0, "clusterize %s: %d lines of sanitizer reports, the first: %s",
		argv[1], reports, first);
	return r->status != -1 && WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1;
}

void czt_ops_run_free(struct czt_ops_run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

int czt_ops_lines(const char *text)
{
	int n = 0;

	for (const char *p = text; *p != '\0'; p++) {
		n += *p == '\n';
	}
	return n + (text[0] != '\0' && text[strlen(text) - 1] != '\n');
}

int czt_ops_status(const char *ctl, struct czt_status_row *rows, int max)
{
	struct czt_ops_run r;
	int rc = czt_ops_client(&r, -1, NULL, "status", "--control", ctl, NULL);
	const char *line;
	int n = 0;

	cr_assert_eq(rc, 0, "clusterize status exits 0, got %d: %s", rc, r.err);
	/* A header line, the column titles, then one row per worker. */
	line = strchr(r.out, '\n');
	line = line != NULL ? strchr(line + 1, '\n') : NULL;
	cr_assert_not_null(line, "status has its two header lines:\n%s", r.out);
	for (line++; *line != '\0' && n < max; n++) {
		struct czt_status_row *w = &rows[n];

		cr_assert(sscanf(line, "%u %d %31s %31s %u %llu %u %255[^\n]", &w->id, &w->pid,
			w->state, w->uptime, &w->restarts, &w->conns, &w->active, w->addrs) == 8,
			"a status row: '%.*s'", (int)strcspn(line, "\n"), line);
		line += strcspn(line, "\n");
		line += *line == '\n';
	}
	czt_ops_run_free(&r);
	return n;
}

const struct czt_status_row *czt_ops_status_row(const struct czt_status_row *rows, int n,
	unsigned id)
{
	for (int i = 0; i < n; i++) {
		if (rows[i].id == id) {
			return &rows[i];
		}
	}
	return NULL;
}
