/* czt: starting, waiting for and stopping processes. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "czt.h"

extern char **environ;

static struct czt_proc procs[CZT_MAX_PROCS];
static int nprocs;
/* Every process of the test: procs[] and those czt_ops spawns. */
static struct czt_proc *tracked[CZT_MAX_PROCS * 2];
static int ntracked;
static char tmpdir[PATH_MAX];
static bool assert_failed;

/*
 * Criterion's assertions all report through criterion_send_assert; this
 * definition in the test program comes first, notes a failure and passes
 * the report on.  A suite's .fini cannot fail a test (Criterion ignores its
 * assertions), so czt_teardown needs to know whether the test failed to
 * keep its logs, and whether it passed without checking a launcher's end.
 */
void criterion_send_assert(struct criterion_assert_stats *stats)
{
	static void (*real)(struct criterion_assert_stats *);

	if (!stats->passed) {
		assert_failed = true;
	}
	if (real == NULL) {
		*(void **)&real = dlsym(RTLD_NEXT, "criterion_send_assert");
	}
	real(stats);
}

bool czt_test_failed(void)
{
	return assert_failed;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int czt_ms(int ms)
{
	const char *m = getenv("CZ_TEST_TIMEOUT_MULT");
	double mult = m != NULL ? atof(m) : 1.0;

	return mult > 1.0 ? (int)(ms * mult) : ms;
}

/* The pause between two checks of a deadline wait, 1 ms doubling to 64. */
static void nap(int *backoff_ms)
{
	struct timespec ts = { 0, (long)*backoff_ms * 1000000L };

	nanosleep(&ts, NULL);
	if (*backoff_ms < 50) {
		*backoff_ms *= 2;
	}
}

bool czt_wait_until(bool (*pred)(void *arg), void *arg, int ms)
{
	long deadline = now_ms() + czt_ms(ms);
	int backoff = 1;

	for (;;) {
		if (pred(arg)) {
			return true;
		}
		if (now_ms() >= deadline) {
			return false;
		}
		nap(&backoff);
	}
}

void czt_setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/czt-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
	/* The EACCES test runs the launcher as nobody; it must reach its files. */
	chmod(tmpdir, 0755);
	signal(SIGPIPE, SIG_IGN);
	nprocs = 0;
	ntracked = 0;
	assert_failed = false;
	czt_report_tmpdir(tmpdir);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void czt_track(struct czt_proc *p, const char *argv0)
{
	const char *launcher = getenv("CZ_LAUNCHER");

	cr_assert_lt(ntracked, CZT_MAX_PROCS * 2, "too many processes in one test");
	snprintf(p->argv0, sizeof(p->argv0), "%s", argv0);
	p->launcher = launcher != NULL && strcmp(argv0, launcher) == 0;
	tracked[ntracked++] = p;
}

/*
 * Stops what the test left running.  A failed test keeps its directory and
 * prints its logs.  A passed one that never asserted how a launcher ended is
 * a broken test: said so, and abort(), which Criterion counts as an error of
 * the test program (its assertions here would be ignored).
 */
void czt_teardown(void)
{
	bool failed = assert_failed, verbose = getenv("CZ_TEST_VERBOSE") != NULL;
	int unchecked = 0;

	for (int i = 0; i < ntracked; i++) {
		struct czt_proc *p = tracked[i];

		if (p->launcher && !p->checked && !failed) {
			fprintf(stderr, "czt: the launcher (pid %d) was never stopped with its exit "
				"status asserted (czt_stop, czt_stop_as, czt_expect_exit)\n",
				(int)p->pid);
			unchecked++;
		}
		czt_kill_group(p);
		czt_wait_exit(p, 5000);
	}
	for (int i = 0; i < ntracked && (failed || unchecked > 0 || verbose); i++) {
		czt_dump(tracked[i]);
	}
	nprocs = 0;
	ntracked = 0;
	if (tmpdir[0] != '\0') {
		if (failed || unchecked > 0 || getenv("CZ_TEST_KEEP") != NULL) {
			fprintf(stderr, "czt: the test's files are kept in %s\n", tmpdir);
		} else {
			nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		}
	}
	czt_report_tmpdir(NULL);
	tmpdir[0] = '\0';
	if (unchecked > 0) {
		fflush(NULL);
		abort();
	}
}

const char *czt_tmpdir(void)
{
	cr_assert(tmpdir[0] != '\0', "czt_setup was not called (.init = czt_setup)");
	return tmpdir;
}

static const char *need_env(const char *name)
{
	const char *v = getenv(name);

	cr_assert(v != NULL && v[0] != '\0', "%s is not set: run the tests with meson test", name);
	return v;
}

const char *czt_launcher(void)
{
	return need_env("CZ_LAUNCHER");
}

const char *czt_shim(void)
{
	return need_env("CZ_SHIM");
}

const char *czt_server(void)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/cz-server", need_env("CZ_SERVERS"));
	return path;
}

const char *czt_source(const char *rel)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", need_env("CZ_SOURCE_ROOT"), rel);
	return path;
}

const char *czt_which(const char *name)
{
	static char path[PATH_MAX];
	const char *p = getenv("PATH");

	while (p != NULL && *p != '\0') {
		const char *colon = strchr(p, ':');
		int len = colon != NULL ? (int)(colon - p) : (int)strlen(p);

		snprintf(path, sizeof(path), "%.*s/%s", len, p, name);
		if (access(path, X_OK) == 0) {
			return path;
		}
		p = colon != NULL ? colon + 1 : NULL;
	}
	return NULL;
}

static bool same_name(const char *entry, const char *var)
{
	size_t n = strcspn(var, "=");

	return strncmp(entry, var, n) == 0 && entry[n] == '=';
}

/* The test's environment with env applied; malloc'd array of borrowed strings. */
static char **build_env(const char *const env[])
{
	size_t n = 0, extra = 0;

	while (environ[n] != NULL) {
		n++;
	}
	while (env != NULL && env[extra] != NULL) {
		extra++;
	}
	char **out = calloc(n + extra + 1, sizeof(char *));
	size_t k = 0;

	cr_assert_not_null(out);
	for (size_t i = 0; i < n; i++) {
		bool overridden = false;

		for (size_t j = 0; j < extra; j++) {
			overridden |= same_name(environ[i], env[j]);
		}
		if (!overridden) {
			out[k++] = environ[i];
		}
	}
	for (size_t j = 0; j < extra; j++) {
		if (strchr(env[j], '=') != NULL) {
			out[k++] = (char *)env[j];
		}
	}
	out[k] = NULL;
	return out;
}

static int open_log(const char *path)
{
	return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
}

static void child_exec(const struct czt_proc *p, const char *const argv[], char **envp,
	int uid, int gid, pid_t parent)
{
	int in = open("/dev/null", O_RDONLY);
	int out = open_log(p->out_path);
	int err = open_log(p->err_path);

	setpgid(0, 0);
	if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
		dup2(err, 2) < 0) {
		_exit(125);
	}
	if (gid >= 0 && (setgroups(0, NULL) < 0 || setgid((gid_t)gid) < 0)) {
		dprintf(2, "czt: setgid: %s\n", strerror(errno));
		_exit(125);
	}
	if (uid >= 0 && setuid((uid_t)uid) < 0) {
		dprintf(2, "czt: setuid: %s\n", strerror(errno));
		_exit(125);
	}
	/* A test killed by its timeout must not leak the launcher (after setuid:
	 * credential changes clear it). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent) {
		_exit(125);
	}
	signal(SIGPIPE, SIG_DFL);
	execve(argv[0], (char *const *)argv, envp);
	dprintf(2, "czt: exec %s: %s\n", argv[0], strerror(errno));
	_exit(125);
}

struct czt_proc *czt_spawn_as(const char *const argv[], const char *const env[],
	int uid, int gid)
{
	cr_assert_lt(nprocs, CZT_MAX_PROCS, "too many processes in one test");
	struct czt_proc *p = &procs[nprocs];
	char **envp = build_env(env);
	pid_t parent = getpid();

	memset(p, 0, sizeof(*p));
	snprintf(p->out_path, sizeof(p->out_path), "%s/p%d.out", czt_tmpdir(), nprocs);
	snprintf(p->err_path, sizeof(p->err_path), "%s/p%d.err", czt_tmpdir(), nprocs);
	fflush(NULL);
	pid_t pid = fork();

	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		child_exec(p, argv, envp, uid, gid, parent);
	}
	free(envp);
	setpgid(pid, pid);	/* both sides, so a signal right away reaches the group */
	p->pid = pid;
	nprocs++;
	czt_track(p, argv[0]);
	return p;
}

struct czt_proc *czt_spawn(const char *const argv[], const char *const env[])
{
	return czt_spawn_as(argv, env, -1, -1);
}

/*
 * ASan-instrumented servers get the (uninstrumented) shim preloaded ahead of
 * the ASan runtime; tell ASan that is fine.  Harmless in other builds.
 */
const char *czt_asan_options(void)
{
	static char buf[1024];
	const char *cur = getenv("ASAN_OPTIONS");

	snprintf(buf, sizeof(buf), "ASAN_OPTIONS=%s%sverify_asan_link_order=0",
		cur != NULL ? cur : "", cur != NULL && cur[0] != '\0' ? ":" : "");
	return buf;
}

struct czt_proc *czt_launch(const char *const env[], ...)
{
	const char *argv[64];
	const char *envs[64];
	int n = 0, k = 0;
	va_list ap;

	argv[n++] = czt_launcher();
	va_start(ap, env);
	for (const char *a = va_arg(ap, const char *); a != NULL; a = va_arg(ap, const char *)) {
		cr_assert_lt(n, 63, "too many launcher arguments");
		argv[n++] = a;
	}
	va_end(ap);
	argv[n] = NULL;
	envs[k++] = czt_asan_options();
	for (int i = 0; env != NULL && env[i] != NULL && k < 63; i++) {
		envs[k++] = env[i];
	}
	envs[k] = NULL;
	return czt_spawn(argv, envs);
}

int czt_signal(struct czt_proc *p, int sig)
{
	if (p->reaped) {
		return -ESRCH;
	}
	return kill(p->pid, sig) < 0 ? -errno : 0;
}

static bool try_reap(struct czt_proc *p)
{
	int status;

	if (p->reaped) {
		return true;
	}
	if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
		p->reaped = true;
		p->status = status;
	}
	return p->reaped;
}

static bool reaped_pred(void *arg)
{
	return try_reap(arg);
}

int czt_wait_exit(struct czt_proc *p, int ms)
{
	if (!czt_wait_until(reaped_pred, p, ms)) {
		return -1;
	}
	return p->status;
}

void czt_kill_group(struct czt_proc *p)
{
	pid_t pids[256];
	int n;

	if (p->pid <= 0) {
		return;
	}
	/*
	 * Each worker has a process group of its own: kill those of the
	 * launcher's live children first (only while they are its children,
	 * so a recycled pid is never taken for one).
	 */
	n = czt_forked_pids(p, pids, 256);
	for (int i = 0; i < n; i++) {
		if (pids[i] > 0 && czt_ppid(pids[i]) == p->pid) {
			kill(-pids[i], SIGKILL);
		}
	}
	kill(-p->pid, SIGKILL);
	kill(p->pid, SIGKILL);
}

const char *czt_describe_status(int status, char *buf, size_t len)
{
	if (status == -1) {
		snprintf(buf, len, "still running");
	} else if (WIFEXITED(status)) {
		snprintf(buf, len, "exited with code %d", WEXITSTATUS(status));
	} else if (WIFSIGNALED(status)) {
		const char *name = sigabbrev_np(WTERMSIG(status));

		snprintf(buf, len, "killed by SIG%s", name != NULL ? name : "?");
	} else {
		snprintf(buf, len, "wait status 0x%x", status);
	}
	return buf;
}

void czt_check_end(struct czt_proc *p, int want)
{
	char got[64], wanted[64], first[256] = "";
	int reports = czt_sanitizer_lines(p, first, sizeof(first));

	p->checked = true;
	cr_expect_eq(p->status, want, "%s (pid %d) %s, expected: %s", p->argv0, (int)p->pid,
		czt_describe_status(p->status, got, sizeof(got)),
		czt_describe_status(want, wanted, sizeof(wanted)));
	cr_expect_eq(reports, 0, "%s (pid %d): %d lines of sanitizer reports on stderr, the "
		"first: %s", p->argv0, (int)p->pid, reports, first);
}

int czt_expect_exit(struct czt_proc *p, int want, int ms)
{
	int status = czt_wait_exit(p, ms);

	/* Whatever the launcher left behind in its group goes too. */
	czt_kill_group(p);
	if (status == -1) {
		p->checked = true;
		czt_wait_exit(p, 5000);
		cr_assert_fail("%s (pid %d) still runs after %d ms", p->argv0, (int)p->pid,
			czt_ms(ms));
	}
	czt_check_end(p, want);
	return status;
}

int czt_stop_as(struct czt_proc *p, int want)
{
	if (!p->reaped) {
		kill(p->pid, SIGTERM);
	}
	int status = czt_wait_exit(p, 15000);

	czt_kill_group(p);
	if (status == -1) {
		p->checked = true;
		cr_assert_neq(czt_wait_exit(p, 5000), -1, "pid %d survived SIGKILL", (int)p->pid);
		cr_assert_fail("%s (pid %d) did not exit within %d ms of SIGTERM", p->argv0,
			(int)p->pid, czt_ms(15000));
	}
	czt_check_end(p, want);
	return status;
}

int czt_stop(struct czt_proc *p)
{
	return czt_stop_as(p, CZT_EXITED(0));
}

bool czt_exited(struct czt_proc *p)
{
	return try_reap(p);
}

/* Process state letter from /proc/PID/stat, 0 if there is no such process. */
static char proc_state(pid_t pid, pid_t *ppid)
{
	char path[64], buf[512];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (f == NULL) {
		return 0;
	}
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);

	fclose(f);
	buf[n] = '\0';
	char *rp = strrchr(buf, ')');
	char state = 0;
	int pp = -1;

	if (rp == NULL || sscanf(rp + 1, " %c %d", &state, &pp) != 2) {
		return 0;
	}
	if (ppid != NULL) {
		*ppid = pp;
	}
	return state;
}

/* Threads of pid still there (/proc/PID/task), the leader included. */
static int threads_of(pid_t pid)
{
	char path[64];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (d == NULL) {
		return 0;
	}
	while ((e = readdir(d)) != NULL) {
		n += e->d_name[0] != '.';
	}
	closedir(d);
	return n;
}

/*
 * A zombie is gone only once its other threads are: a killed process's
 * leader turns zombie first, and its fds (a listening socket, say) stay
 * open until the last thread has exited.
 */
bool czt_pid_alive(pid_t pid)
{
	char s = proc_state(pid, NULL);

	if (s == 'Z' || s == 'X') {
		return threads_of(pid) > 1;
	}
	return s != 0;
}

long czt_age_ms(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long start;
	struct timespec now;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (f == NULL) {
		return -1;
	}
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);

	fclose(f);
	buf[n] = '\0';
	char *rp = strrchr(buf, ')');

	/* Field 22, starttime, in clock ticks since boot; rp is at field 2's end. */
	if (rp == NULL || sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u "
		"%*d %*d %*d %*d %*d %*d %llu", &start) != 1) {
		return -1;
	}
	clock_gettime(CLOCK_BOOTTIME, &now);
	return (long)(now.tv_sec * 1000LL + now.tv_nsec / 1000000 -
		(long long)(start * 1000 / (unsigned long long)sysconf(_SC_CLK_TCK)));
}

struct age_arg {
	pid_t pid;
	long ms;
};

static bool old_enough(void *v)
{
	const struct age_arg *a = v;

	return czt_age_ms(a->pid) >= a->ms || !czt_pid_alive(a->pid);
}

bool czt_wait_age(pid_t pid, int ms)
{
	struct age_arg a = { pid, ms };

	/* Not scaled: the process has to be this old, however slow the machine. */
	czt_wait_until(old_enough, &a, ms + 5000);
	return czt_age_ms(pid) >= ms;
}

pid_t czt_child_named(pid_t parent, const char *comm, pid_t not)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = -1;

	cr_assert_not_null(d, "/proc: %s", strerror(errno));
	while (found < 0 && (e = readdir(d)) != NULL) {
		pid_t pid = (pid_t)atoi(e->d_name);
		char path[64], name[64] = "";
		FILE *f;

		if (pid <= 0 || pid == not || czt_ppid(pid) != parent) {
			continue;
		}
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
		f = fopen(path, "re");
		if (f != NULL && fgets(name, sizeof(name), f) != NULL) {
			name[strcspn(name, "\n")] = '\0';
			found = strcmp(name, comm) == 0 ? pid : -1;
		}
		if (f != NULL) {
			fclose(f);
		}
	}
	closedir(d);
	return found;
}

pid_t czt_ppid(pid_t pid)
{
	pid_t pp = -1;

	return proc_state(pid, &pp) != 0 ? pp : -1;
}

struct pid_set {
	const pid_t *pids;
	int n;
};

static bool all_gone(void *arg)
{
	const struct pid_set *s = arg;

	for (int i = 0; i < s->n; i++) {
		if (czt_pid_alive(s->pids[i])) {
			return false;
		}
	}
	return true;
}

bool czt_wait_gone(const pid_t *pids, int n, int ms)
{
	struct pid_set s = { pids, n };

	return czt_wait_until(all_gone, &s, ms);
}

const char *czt_ctl_path(void)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/ctl.sock", czt_tmpdir());
	return path;
}
