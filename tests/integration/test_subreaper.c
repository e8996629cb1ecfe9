/*
 * --subreaper: a process a worker leaves behind (its parent exits first) is
 * reparented to the launcher rather than to init, and once it dies the
 * launcher reaps it: no zombie is left with the launcher as its parent, and
 * the workers are not disturbed.  Without the option, orphans go elsewhere.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "czt.h"
#include "czt_ops.h"

TestSuite(subreaper, .init = czt_setup, .fini = czt_ops_teardown, .timeout = 120);

/*
 * One worker whose shell first runs a child shell that starts `sleep 30` in
 * the background and exits at once, printing "orphan=PID parent=PID".
 */
static void start_orphaner(struct czt_cluster *c, bool subreaper, pid_t *orphan,
	pid_t *parent)
{
	static char script[512];
	const char *largs[] = { "-v", subreaper ? "--subreaper" : NULL, NULL };
	int o = 0, p = 0;

	snprintf(script, sizeof(script),
		"/bin/sh -c 'sleep 30 </dev/null >/dev/null 2>&1 & echo orphan=$! parent=$$'; "
		"exec %s --style poll", czt_server());
	const char *cmd[] = { "/bin/sh", "-c", script, NULL };

	czt_cluster_start_argv(c, 1, largs, cmd, NULL);
	cr_assert_eq(czt_wait_line(c->proc, CZT_OUT, "orphan=", 1, 5000), 1);
	char *out = czt_read(c->proc, CZT_OUT);
	const char *at = strstr(out, "orphan=");

	cr_assert(at != NULL && sscanf(at, "orphan=%d parent=%d", &o, &p) == 2 && o > 0,
		"the worker says which process it orphans: %s", out);
	free(out);
	*orphan = o;
	*parent = p;
}

struct reparent {
	pid_t pid;
	pid_t from;
};

static bool reparented(void *arg)
{
	const struct reparent *r = arg;
	pid_t pp = czt_ppid(r->pid);

	return pp > 0 && pp != r->from;
}

static bool gone_from_proc(void *arg)
{
	return czt_ppid(*(pid_t *)arg) == -1;
}

/* Zombies whose parent is ppid, from /proc. */
static int zombies_of(pid_t ppid)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL) {
		char path[300], buf[512];

		if (!isdigit((unsigned char)de->d_name[0])) {
			continue;
		}
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		FILE *f = fopen(path, "re");

		if (f == NULL) {
			continue;
		}
		size_t len = fread(buf, 1, sizeof(buf) - 1, f);

		fclose(f);
		buf[len] = '\0';
		char *rp = strrchr(buf, ')'), state = 0;
		int pp = 0;

		if (rp != NULL && sscanf(rp + 1, " %c %d", &state, &pp) == 2 && pp == ppid &&
			state == 'Z') {
			n++;
		}
	}
	closedir(d);
	return n;
}

Test(subreaper, orphan_is_adopted_and_reaped)
{
	struct czt_cluster c;
	struct czt_addr a;
	pid_t orphan, parent;

	start_orphaner(&c, true, &orphan, &parent);
	struct reparent r = { orphan, parent };

	cr_assert(czt_wait_until(reparented, &r, 5000), "pid %d leaves its parent %d",
		(int)orphan, (int)parent);
	cr_expect_eq(czt_ppid(orphan), c.proc->pid, "the orphan %d is the launcher's (%d) now, "
		"its parent is %d", (int)orphan, (int)c.proc->pid, (int)czt_ppid(orphan));
	cr_assert_eq(kill(orphan, SIGKILL), 0);
	cr_expect(czt_wait_until(gone_from_proc, &orphan, 5000), "the dead orphan %d is reaped "
		"(still in /proc as a child of %d)", (int)orphan, (int)czt_ppid(orphan));
	cr_expect_eq(zombies_of(c.proc->pid), 0, "no zombie child of the launcher");
	char line[64];

	snprintf(line, sizeof(line), "reaped pid %d (not a worker)", (int)orphan);
	cr_expect_eq(czt_wait_line(c.proc, CZT_ERR, line, 1, 5000), 1, "the log says '%s'",
		line);
	snprintf(line, sizeof(line), "(pid %d)", (int)orphan);
	cr_expect_eq(czt_count(c.proc, CZT_ERR, line), 0, "the orphan is not taken for a worker");
	cr_expect_eq(czt_count(c.proc, CZT_ERR, " forked"), 1, "no worker was replaced");
	czt_addr_tcp(&a, "127.0.0.1", c.port);
	cr_expect_eq(czt_ask(&a, 5000), c.w[0].pid, "the worker still serves");
	czt_stop(c.proc);
}

Test(subreaper, without_the_option_orphans_go_elsewhere)
{
	struct czt_cluster c;
	pid_t orphan, parent;

	start_orphaner(&c, false, &orphan, &parent);
	struct reparent r = { orphan, parent };

	cr_assert(czt_wait_until(reparented, &r, 5000), "pid %d leaves its parent %d",
		(int)orphan, (int)parent);
	cr_expect_neq(czt_ppid(orphan), c.proc->pid, "without --subreaper the orphan %d is not "
		"the launcher's", (int)orphan);
	kill(orphan, SIGKILL);
	czt_stop(c.proc);
}

/* The first child of `pid`, from /proc/PID/task/PID/children; 0 if none. */
static pid_t first_child(pid_t pid)
{
	char path[96];
	int child = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	f = fopen(path, "re");
	if (f != NULL) {
		if (fscanf(f, "%d", &child) != 1) {
			child = 0;
		}
		fclose(f);
	}
	return child;
}

/*
 * As PID 1 (of a new pid namespace, as in a container) every orphan is the
 * launcher's without --subreaper, and it reaps them: no zombie is left.
 */
Test(subreaper, as_pid_1_orphans_are_reaped)
{
	const char *unshare = czt_which("unshare");
	static char script[512];

	if (unshare == NULL || geteuid() != 0) {
		cr_skip_test("needs root and unshare(1) for a pid namespace");
	}
	snprintf(script, sizeof(script),
		"/bin/sh -c 'sleep 0.2 </dev/null >/dev/null 2>&1 &'; "
		"exec %s --style poll", czt_server());
	const char *argv[] = { unshare, "--pid", "--fork", "--kill-child", czt_launcher(),
		"-v", "-w", "1", "--", "/bin/sh", "-c", script, NULL };
	const char *env[] = { czt_asan_options(), NULL };
	struct czt_proc *p = czt_spawn(argv, env);

	cr_assert_eq(czt_wait_line(p, CZT_ERR, "listening on", 1, 10000), 1,
		"the worker listens");
	cr_assert_eq(czt_wait_line(p, CZT_ERR, "(not a worker)", 1, 10000), 1,
		"the launcher, PID 1 in its namespace, reaps the orphan");
	pid_t launcher = first_child(p->pid);

	cr_assert_gt(launcher, 0, "the launcher runs under unshare (pid %d)", (int)p->pid);
	cr_expect_eq(zombies_of(launcher), 0, "no zombie child of the launcher");
	cr_expect_eq(czt_count(p, CZT_ERR, " forked"), 1, "no worker was replaced");
	/* unshare leaves signals to its child: stop the launcher itself. */
	cr_assert_eq(kill(launcher, SIGTERM), 0);
	/* unshare exits with the launcher's status. */
	czt_expect_exit(p, CZT_EXITED(0), 10000);
}
