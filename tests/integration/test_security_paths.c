/*
 * A root launcher never acts on a path a worker can swap, nothing outlives
 * the launcher, and the command is found as the worker would find it
 * (issue 12, findings 1, 2, 3, 12, 13, 14).  Root only: the workers run as
 * nobody.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "czt.h"
#include "czt_ops.h"

TestSuite(security_paths, .init = czt_setup, .fini = czt_ops_teardown, .timeout = 180);

static const struct passwd *nobody;

static void need_root_and_nobody(void)
{
	if (geteuid() != 0) {
		cr_skip_test("the workers run as another user: needs root");
	}
	nobody = getpwnam("nobody");
	if (nobody == NULL) {
		cr_skip_test("there is no user 'nobody' to run the workers as");
	}
}

/* czt_tmpdir()/name, made with `mode` and owned by uid:gid. */
static const char *make_dir(const char *name, mode_t mode, uid_t uid, gid_t gid)
{
	static char paths[8][256];
	static int next;
	char *p = paths[next++ % 8];

	snprintf(p, sizeof(paths[0]), "%s/%s", czt_tmpdir(), name);
	cr_assert_eq(mkdir(p, 0700), 0, "mkdir %s: %s", p, strerror(errno));
	cr_assert_eq(chown(p, uid, gid), 0, "chown %s: %s", p, strerror(errno));
	cr_assert_eq(chmod(p, mode), 0, "chmod %s: %s", p, strerror(errno));
	return p;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

/* --- finding 14: the command is found as the worker would find it -------- */

/*
 * Root's PATH starts with a directory only root can read, holding a
 * python3 of its own: a worker running as nobody cannot execute that one,
 * so the launcher must find /usr/bin/python3, as execvp would for nobody.
 */
Test(security_paths, command_is_found_as_the_worker_would)
{
	need_root_and_nobody();
	const char *python = czt_which("python3");

	if (python == NULL) {
		cr_skip_test("no python3 in PATH");
	}
	const char *priv = make_dir("rootbin", 0700, 0, 0);
	char fake[300], pathenv[600], pydir[256], want[64];

	snprintf(fake, sizeof(fake), "%s/python3", priv);
	write_file(fake, "#!/bin/sh\necho root-only python3\n", 0755);
	snprintf(pydir, sizeof(pydir), "%s", python);
	*strrchr(pydir, '/') = '\0';
	snprintf(pathenv, sizeof(pathenv), "PATH=%s:%s:/usr/bin:/bin", priv, pydir);
	const char *env[] = { pathenv, czt_asan_options(), NULL };
	struct czt_proc *p = czt_launch(env, "-w", "1", "--user", "nobody",
		"--restart", "never", "--", "python3", "-c",
		"import os; print('python3 as uid', os.getuid())", NULL);

	/* Once the worker did. */
	czt_expect_exit(p, CZT_EXITED(0), 30000);
	snprintf(want, sizeof(want), "python3 as uid %u", (unsigned)nobody->pw_uid);
	cr_expect_eq(czt_count(p, CZT_OUT, want), 1, "the worker ran python3 as nobody");
	cr_expect_eq(czt_count(p, CZT_OUT, "root-only"), 0, "not root's own python3");
	cr_expect_eq(czt_count(p, CZT_ERR, "cannot execute"), 0);
}

/* Nothing nobody can execute anywhere in PATH: 126, as a shell says. */
Test(security_paths, command_only_root_can_run_is_126)
{
	need_root_and_nobody();
	const char *priv = make_dir("rootbin", 0700, 0, 0);
	char fake[300], pathenv[300];

	snprintf(fake, sizeof(fake), "%s/cz-root-only-cmd", priv);
	write_file(fake, "#!/bin/sh\nexit 0\n", 0755);
	snprintf(pathenv, sizeof(pathenv), "PATH=%s:/usr/bin:/bin", priv);
	const char *env[] = { pathenv, NULL };
	struct czt_proc *p = czt_launch(env, "-w", "1", "--user", "nobody", "--",
		"cz-root-only-cmd", NULL);
	/* 126: found, not executable by nobody. */
	czt_expect_exit(p, CZT_EXITED(126), 30000);
	cr_expect_eq(czt_count(p, CZT_ERR,
		"clusterize: cannot execute 'cz-root-only-cmd': Permission denied"), 1);
	cr_expect_eq(czt_count(p, CZT_ERR, "forked"), 0, "no worker is started");
}

/* --- finding 12: a squatted control directory ---------------------------- */

/* XDG_RUNTIME_DIR=<a private dir of the test's>: the default control dir is in it. */
static const char *xdg_env(const char **dir)
{
	static char env[300];
	const char *d = make_dir("xdg", 0700, 0, 0);

	snprintf(env, sizeof(env), "XDG_RUNTIME_DIR=%s", d);
	*dir = d;
	return env;
}

/*
 * Another user made the default control directory first: the launcher
 * says so, uses a private directory of its own next to it, and the
 * subcommands find it there without --control.
 */
Test(security_paths, squatted_control_dir_falls_back_and_is_found)
{
	need_root_and_nobody();
	const char *xdg;
	const char *env[] = { xdg_env(&xdg), NULL };
	char squat[300], want[400], line[600];
	struct czt_cluster c;
	struct czt_ops_run r;
	struct stat st;

	snprintf(squat, sizeof(squat), "%s/clusterize", xdg);
	cr_assert_eq(mkdir(squat, 0755), 0);
	cr_assert_eq(chown(squat, nobody->pw_uid, nobody->pw_gid), 0);
	const char *largs[] = { NULL };
	const char *cmd[] = { czt_server(), NULL };

	czt_cluster_start_argv(&c, 1, largs, cmd, env);
	snprintf(want, sizeof(want), "clusterize: warning: %s is not a private directory", squat);
	cr_expect_eq(czt_count(c.proc, CZT_ERR, want), 1, "the launcher says why");
	snprintf(want, sizeof(want), "clusterize: control socket %s.", squat);
	cr_assert_eq(czt_count(c.proc, CZT_ERR, want), 1, "and where (%s...)", want);

	/* The fallback directory, from the startup line. */
	char *log = czt_read(c.proc, CZT_ERR), *at = strstr(log, want);

	cr_assert_not_null(at);
	snprintf(line, sizeof(line), "%s", at + strlen("clusterize: control socket "));
	*strchr(line, '\n') = '\0';
	*strrchr(line, '/') = '\0';
	free(log);
	cr_assert_eq(lstat(line, &st), 0, "%s exists", line);
	cr_expect(S_ISDIR(st.st_mode) && st.st_uid == 0 && (st.st_mode & 0777) == 0700,
		"%s is root's, 0700 (owner %u, mode %o)", line, (unsigned)st.st_uid,
		st.st_mode & 0777);

	int rc = czt_ops_client(&r, -1, env, "status", NULL);

	cr_expect_eq(rc, 0, "status finds the launcher without --control: %s", r.err);
	snprintf(want, sizeof(want), "clusterize %d: ", (int)c.proc->pid);
	cr_expect(strncmp(r.out, want, strlen(want)) == 0, "this launcher answers:\n%s", r.out);
	czt_ops_run_free(&r);
	czt_stop(c.proc);
	cr_expect_eq(lstat(line, &st), -1, "%s is removed at the end", line);
}

/* The shim where nobody cannot read it: the launcher warns, as nobody sees it. */
Test(security_paths, shim_nobody_cannot_read_is_named)
{
	need_root_and_nobody();
	const char *priv = make_dir("rootlib", 0700, 0, 0);
	char shim[300], env_shim[320], cmd[700], want[400];

	snprintf(shim, sizeof(shim), "%s/libclusterize.so", priv);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", czt_shim(), shim);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	snprintf(env_shim, sizeof(env_shim), "CLUSTERIZE_SHIM=%s", shim);
	const char *env[] = { env_shim, NULL };
	struct czt_proc *p = czt_launch(env, "-w", "1", "--user", "nobody",
		"--restart", "never", "--", "/bin/true", NULL);

	/* After /bin/true. */
	czt_expect_exit(p, CZT_EXITED(0), 30000);
	snprintf(want, sizeof(want), "clusterize: warning: %s is not readable by uid %u",
		shim, (unsigned)nobody->pw_uid);
	cr_expect_eq(czt_count(p, CZT_ERR, want), 1, "the launcher says: %s", want);
}

/* --- findings 1, 2, 3: unix socket files ---------------------------------- */

static const char *pathrace(void)
{
	static char path[300];

	snprintf(path, sizeof(path), "%s", czt_server());
	snprintf(strrchr(path, '/'), sizeof(path) - (size_t)(strrchr(path, '/') - path),
		"/cz-pathrace");
	return path;
}

/* One worker as nobody running cmd once (--restart never). */
static struct czt_proc *launch_once_as_nobody(const char *const cmd[])
{
	const char *argv[32];
	int k = 0;

	argv[k++] = czt_launcher();
	argv[k++] = "-w";
	argv[k++] = "1";
	argv[k++] = "--user";
	argv[k++] = "nobody";
	argv[k++] = "--restart";
	argv[k++] = "never";
	argv[k++] = "--";
	for (int i = 0; cmd[i] != NULL && k < 31; i++) {
		argv[k++] = cmd[i];
	}
	argv[k] = NULL;
	const char *env[] = { czt_asan_options(), NULL };

	return czt_spawn(argv, env);
}

/* A root-owned file only root may read or write: what an attacker wants. */
static const char *make_secret(struct stat *st)
{
	static char path[300];

	snprintf(path, sizeof(path), "%s/secret", czt_tmpdir());
	write_file(path, "root's\n", 0600);
	cr_assert_eq(chown(path, 0, 0), 0);
	cr_assert_eq(stat(path, st), 0);
	return path;
}

/*
 * Finding 1: the worker binds and closes a unix path in its own directory
 * thousands of times while a thread renames a symlink to a root file into
 * its place.  The file keeps its owner and mode: the primary never chowns.
 */
Test(security_paths, symlink_race_never_chowns_a_root_file)
{
	need_root_and_nobody();
	struct stat before, after;
	const char *secret = make_secret(&before);
	const char *dir = make_dir("race", 0755, nobody->pw_uid, nobody->pw_gid);
	const char *cmd[] = { pathrace(), "chown", dir, secret, "2000", NULL };
	struct czt_proc *p = launch_once_as_nobody(cmd);
	long bound = 0, swapped = 0;

	/* After the worker. */
	czt_expect_exit(p, CZT_EXITED(0), 120000);
	char *out = czt_read(p, CZT_OUT);

	cr_assert_eq(sscanf(out, "bound %ld swapped %ld", &bound, &swapped), 2, "%s", out);
	free(out);
	cr_expect_gt(bound, 1000, "binds went through the primary (%ld)", bound);
	cr_expect_gt(swapped, 0, "the symlink was swapped in");
	cr_assert_eq(stat(secret, &after), 0, "%s still exists", secret);
	cr_expect_eq(after.st_uid, before.st_uid, "%s keeps its owner (%u)", secret,
		(unsigned)after.st_uid);
	cr_expect_eq(after.st_gid, before.st_gid, "and its group");
	cr_expect_eq(after.st_mode, before.st_mode, "and its mode");
}

/*
 * Finding 2: the worker renames the directory of its socket and puts a
 * symlink to a root directory in its place before closing it.  The root
 * socket file there survives; the worker's own socket is still removed.
 */
Test(security_paths, swapped_directory_never_unlinks_a_root_file)
{
	need_root_and_nobody();
	const char *dir = make_dir("swap", 0755, nobody->pw_uid, nobody->pw_gid);
	const char *rootdir = make_dir("rootsock", 0755, 0, 0);
	char sub[300], victim[300], moved[300];
	struct stat st;

	snprintf(sub, sizeof(sub), "%s/sub", dir);
	cr_assert_eq(mkdir(sub, 0755), 0);
	cr_assert_eq(chown(sub, nobody->pw_uid, nobody->pw_gid), 0);
	/* A root socket file where the symlink will point. */
	snprintf(victim, sizeof(victim), "%s/x.sock", rootdir);
	int vfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un vsun = { .sun_family = AF_UNIX };

	cr_assert_lt(strlen(victim), sizeof(vsun.sun_path));
	memcpy(vsun.sun_path, victim, strlen(victim) + 1);
	cr_assert_eq(bind(vfd, (struct sockaddr *)&vsun, sizeof(vsun)), 0, "bind %s: %s", victim,
		strerror(errno));
	close(vfd);

	const char *cmd[] = { pathrace(), "unlink", dir, rootdir, NULL };
	struct czt_proc *p = launch_once_as_nobody(cmd);
	/* After the worker. */
	czt_expect_exit(p, CZT_EXITED(0), 60000);
	cr_assert_eq(czt_count(p, CZT_OUT, "swapped"), 1, "the worker swapped the directory");
	cr_expect_eq(lstat(victim, &st), 0, "root's %s still exists", victim);
	snprintf(moved, sizeof(moved), "%s/sub.old/x.sock", dir);
	cr_expect_neq(lstat(moved, &st), 0, "the worker's own socket (now %s) is removed", moved);
}

/* Finding 3: nobody's worker binds where nobody may not create a file. */
static void bind_is_refused_like_the_kernel_would(const char *dir)
{
	char path[128], want[64];
	struct stat st;

	snprintf(path, sizeof(path), "%s/cz-sp-%d.sock", dir, (int)getpid());
	unlink(path);
	const char *cmd[] = { czt_server(), "--unix", path, NULL };
	struct czt_proc *p = launch_once_as_nobody(cmd);
	czt_wait_exit(p, 30000);
	bool made = lstat(path, &st) == 0;

	unlink(path);
	/* Once the worker failed, with its status. */
	czt_expect_exit(p, CZT_EXITED(1), 30000);
	snprintf(want, sizeof(want), "bind: %s", strerror(EACCES));
	cr_expect_eq(czt_count(p, CZT_ERR, want), 1, "the worker's own bind() says '%s'", want);
	cr_expect_not(made, "no socket file appeared in %s", dir);
}

Test(security_paths, worker_cannot_bind_in_root)
{
	need_root_and_nobody();
	bind_is_refused_like_the_kernel_would("/root");
}

Test(security_paths, worker_cannot_bind_in_etc)
{
	need_root_and_nobody();
	bind_is_refused_like_the_kernel_would("/etc");
}

/*
 * A relative path is the worker's: it is made from the worker's working
 * directory (here not the launcher's), by the worker's user.
 */
Test(security_paths, relative_path_lands_in_the_workers_cwd)
{
	need_root_and_nobody();
	const char *dir = make_dir("cwd", 0755, nobody->pw_uid, nobody->pw_gid);
	const char *cmd[] = { "/bin/sh", "-c", "cd \"$0\" && exec \"$1\" --unix rel.sock",
		dir, czt_server(), NULL };
	char path[300], want[400];
	struct czt_worker w[1];
	struct czt_addr a;
	struct stat st;

	snprintf(path, sizeof(path), "%s/rel.sock", dir);
	struct czt_proc *p = launch_once_as_nobody(cmd);

	cr_assert_eq(czt_wait_listening(p, 1, w, 20000), 1, "the worker listens");
	snprintf(want, sizeof(want), "unix %s", path);
	cr_expect_str_eq(w[0].what, want, "on the path in its own cwd");
	cr_assert_eq(lstat(path, &st), 0, "%s exists", path);
	cr_expect(S_ISSOCK(st.st_mode), "a socket");
	cr_expect_eq(st.st_uid, nobody->pw_uid, "made by the worker's user (%u)",
		(unsigned)st.st_uid);
	cr_expect_eq(st.st_gid, nobody->pw_gid, "with its group (%u)", (unsigned)st.st_gid);
	czt_addr_unix(&a, path);
	cr_expect_eq(czt_ask(&a, 10000), w[0].pid, "the worker answers there");
	czt_stop(p);
	cr_expect_neq(lstat(path, &st), 0, "the socket file is removed at the end");
}

/*
 * A relative path that does not fit sun_path once made absolute is an
 * error the app sees, not a socket bound unshared by the worker itself.
 */
Test(security_paths, relative_path_too_long_is_an_error)
{
	need_root_and_nobody();
	char name[100], want[64];

	memset(name, 'd', 90);
	name[90] = '\0';
	const char *dir = make_dir(name, 0755, nobody->pw_uid, nobody->pw_gid);
	const char *cmd[] = { "/bin/sh", "-c", "cd \"$0\" && exec \"$1\" --unix rel.sock",
		dir, czt_server(), NULL };

	cr_assert_gt(strlen(dir) + strlen("/rel.sock"), 107, "%s is long enough", dir);
	struct czt_proc *p = launch_once_as_nobody(cmd);
	/* Once the worker failed, with its status. */
	czt_expect_exit(p, CZT_EXITED(1), 30000);
	snprintf(want, sizeof(want), "bind: %s", strerror(ENAMETOOLONG));
	cr_expect_eq(czt_count(p, CZT_ERR, want), 1, "the worker's bind() says '%s'", want);
	cr_expect_eq(czt_count(p, CZT_ERR, "listening on"), 0);
}

/* --- finding 13: nothing outlives the launcher ---------------------------- */

/* pid's /proc/PID/stat fields after the command: ppid and process group. */
static bool proc_stat(pid_t pid, pid_t *ppid, pid_t *pgrp, char *comm, size_t len)
{
	char path[64], buf[512], *close_paren;
	FILE *f;
	size_t n;
	int pp = 0, pg = 0;
	char state;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (f == NULL) {
		return false;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	close_paren = strrchr(buf, ')');
	if (close_paren == NULL ||
		sscanf(close_paren + 1, " %c %d %d", &state, &pp, &pg) != 3 || state == 'Z') {
		return false;
	}
	if (comm != NULL) {
		char *open_paren = strchr(buf, '(');

		*close_paren = '\0';
		snprintf(comm, len, "%s", open_paren != NULL ? open_paren + 1 : "");
	}
	*ppid = pp;
	*pgrp = pg;
	return true;
}

/* Live processes whose process group is one of groups[0..ng); returns the count. */
static int group_members(const pid_t *groups, int ng, pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL && n < max) {
		pid_t pid = (pid_t)atoi(de->d_name), pp, pg;

		if (pid <= 0 || !proc_stat(pid, &pp, &pg, NULL, 0)) {
			continue;
		}
		for (int i = 0; i < ng; i++) {
			if (pg == groups[i]) {
				out[n++] = pid;
				break;
			}
		}
	}
	closedir(d);
	return n;
}

/* The launcher's keeper: its child named clusterize-keep; -1 if none. */
static pid_t keeper_of(pid_t launcher)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t found = -1;
	char comm[32];

	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL) {
		pid_t pid = (pid_t)atoi(de->d_name), pp, pg;

		if (pid > 0 && proc_stat(pid, &pp, &pg, comm, sizeof(comm)) && pp == launcher &&
			strcmp(comm, "clusterize-keep") == 0) {
			found = pid;
		}
	}
	closedir(d);
	return found;
}

struct keeper_wait {
	pid_t launcher, not, found;
};

static bool keeper_found(void *arg)
{
	struct keeper_wait *k = arg;

	k->found = keeper_of(k->launcher);
	return k->found > 0 && k->found != k->not;
}

/* Waits for the launcher's keeper (other than `not`): it names itself
 * just after its fork. */
static pid_t wait_keeper(pid_t launcher, pid_t not)
{
	struct keeper_wait k = { launcher, not, -1 };

	cr_assert(czt_wait_until(keeper_found, &k, 10000), "the launcher has a keeper%s",
		not > 0 ? " (a new one)" : "");
	return k.found;
}

struct members_wait {
	const pid_t *groups;
	int ng, want;
};

static bool enough_members(void *arg)
{
	const struct members_wait *m = arg;
	pid_t pids[64];

	return group_members(m->groups, m->ng, pids, 64) >= m->want;
}

/*
 * `workers` cz-server workers, each with 2 prefork children: kill -9 of
 * the launcher must take every one of them, and the keeper, with it.
 * Whatever is left is killed here, so a failure leaves nothing behind.
 */
static void sigkill_leaves_nothing(const char *const largs[], const char *const srv[],
	int dropped_lines)
{
	struct czt_cluster c;
	pid_t groups[4], pids[64], keeper, all[65];
	struct members_wait mw = { groups, 0, 0 };
	char want[128];
	int n;

	czt_cluster_start_argv(&c, 2, largs, srv, NULL);
	for (int i = 0; i < c.nw; i++) {
		groups[i] = c.w[i].pid;
	}
	mw.ng = c.nw;
	mw.want = 3 * c.nw;
	cr_assert(czt_wait_until(enough_members, &mw, 20000),
		"each worker and its 2 children are up");
	if (dropped_lines > 0) {
		cr_assert_eq(czt_wait_line(c.proc, CZT_OUT, "dropped to uid", dropped_lines, 20000),
			dropped_lines, "the workers dropped their privileges");
	}
	n = group_members(groups, c.nw, pids, 64);
	keeper = wait_keeper(c.proc->pid, -1);
	memcpy(all, pids, (size_t)n * sizeof(pid_t));
	all[n] = keeper;

	czt_signal(c.proc, SIGKILL);
	czt_expect_exit(c.proc, CZT_KILLED(SIGKILL), 10000);
	bool gone = czt_wait_gone(all, n + 1, 10000);

	for (int i = 0; i <= n; i++) {
		kill(all[i], SIGKILL);
	}
	cr_expect(gone, "no worker, worker's child or keeper outlives the launcher");
	snprintf(want, sizeof(want), "the launcher (pid %d) is gone: killed the process "
		"groups of %d workers", (int)c.proc->pid, c.nw);
	cr_expect_eq(czt_count(c.proc, CZT_ERR, want), 1, "the keeper says: %s", want);
}

/* Workers that drop privileges themselves lose PR_SET_PDEATHSIG. */
Test(security_paths, sigkilled_launcher_leaves_no_privilege_dropping_worker)
{
	need_root_and_nobody();
	char uid[16];

	snprintf(uid, sizeof(uid), "%u", (unsigned)nobody->pw_uid);
	const char *largs[] = { NULL };
	const char *srv[] = { czt_server(), "--style", "prefork", "--count", "2", "--orphans",
		"--setuid", uid, NULL };

	sigkill_leaves_nothing(largs, srv, 2);
}

/* A prefork server's children (like nginx's workers) never had it. */
Test(security_paths, sigkilled_launcher_leaves_no_prefork_child)
{
	need_root_and_nobody();
	const char *largs[] = { "--user", "nobody", NULL };
	const char *srv[] = { czt_server(), "--style", "prefork", "--count", "2", "--orphans",
		NULL };

	sigkill_leaves_nothing(largs, srv, 0);
}

/*
 * The keeper is restarted when something kills it, and the new one does
 * its job; it never gets the terminal's SIGINT (a session of its own) and
 * ends with a normal stop.
 */
Test(security_paths, keeper_is_restarted_and_ends_with_the_launcher)
{
	struct czt_cluster c;
	char want[128];
	pid_t first, second;

	czt_cluster_start(&c, 1, "rr", NULL);
	first = wait_keeper(c.proc->pid, -1);
	cr_assert_eq(kill(first, SIGKILL), 0);
	snprintf(want, sizeof(want), "keeper (pid %d) killed by signal SIGKILL; starting another",
		(int)first);
	cr_assert_eq(czt_wait_line(c.proc, CZT_ERR, want, 1, 10000), 1, "the launcher says: %s",
		want);
	second = wait_keeper(c.proc->pid, first);

	/* ^C reaches the launcher's process group, not the keeper. */
	cr_assert_eq(kill(-c.proc->pid, SIGINT), 0);
	czt_expect_exit(c.proc, CZT_EXITED(0), 20000);
	cr_expect(czt_wait_gone(&second, 1, 10000), "the keeper ends with the launcher");
	cr_expect_eq(czt_count(c.proc, CZT_ERR, "is gone: killed"), 0,
		"and has nothing to kill after a normal stop");
}

/*
 * The issue's own case: nginx with worker_processes 2 in none, where its
 * workers (which nginx makes drop to its user) hold the listening socket.
 */
Test(security_paths, sigkilled_launcher_leaves_no_nginx_worker)
{
	need_root_and_nobody();
	const char *nginx = czt_which("nginx");

	if (nginx == NULL && access("/usr/sbin/nginx", X_OK) == 0) {
		nginx = "/usr/sbin/nginx";
	}
	if (nginx == NULL) {
		cr_skip_test("nginx is not installed (scripts/setup --with-servers installs it)");
	}
	const char *dir = czt_tmpdir();
	int port = czt_free_port(AF_INET);
	char conf[512], text[1024];

	cr_assert_gt(port, 0);
	snprintf(conf, sizeof(conf), "%s/nginx.conf", dir);
	snprintf(text, sizeof(text),
		"daemon off; master_process on; worker_processes 2;\n"
		"pid %s/nginx.pid; error_log stderr;\n"
		"events { worker_connections 64; }\n"
		"http { access_log off; client_body_temp_path %s;\n"
		"  server { listen 127.0.0.1:%d; location / { return 200 \"$pid\\n\"; } } }\n",
		dir, dir, port);
	write_file(conf, text, 0644);
	const char *largs[] = { "-s", "none", NULL };
	const char *cmd[] = { nginx, "-p", dir, "-c", conf, NULL };

	sigkill_leaves_nothing(largs, cmd, 0);
}
