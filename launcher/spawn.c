/*
 * Starting workers (spawn.h): the process (environment, fork, the
 * child's steps until exec) and its record in the supervisor.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "control.h"
#include "coverage.h"
#include "log.h"
#include "node_ipc.h"
#include "proto.h"
#include "spawn.h"
#include "workers.h"

extern char **environ;

enum step { STEP_EXEC, STEP_SETGROUPS, STEP_SETGID, STEP_SETUID, STEP_DUP2 };

static const char *const step_names[] = {
	"exec", "setgroups", "setgid", "setuid", "dup2",
};

/* What a failed child writes to the launcher before _exit. */
struct child_error {
	int err;
	int step;
};

/* --- --user / --group ---------------------------------------------------- */

static int lookup_group(const char *group, gid_t *gid, char *err, size_t len)
{
	struct group *gr = getgrnam(group);
	char *end;
	unsigned long n;

	if (gr != NULL) {
		*gid = gr->gr_gid;
		return 0;
	}
	errno = 0;
	n = strtoul(group, &end, 10);
	if (*group != '\0' && *end == '\0' && errno == 0 && n < (gid_t)-1) {
		*gid = (gid_t)n;
		return 0;
	}
	snprintf(err, len, "unknown group '%s' for --group", group);
	return -1;
}

static int user_groups(const char *name, gid_t gid, struct cz_spawn_ids *ids)
{
	int n = 16;

	for (;;) {
		gid_t *g = realloc(ids->groups, (size_t)n * sizeof(gid_t));

		if (g == NULL) {
			return -1;
		}
		ids->groups = g;
		if (getgrouplist(name, gid, g, &n) >= 0) {
			ids->n_groups = n;
			return 0;
		}
	}
}

int cz_spawn_resolve_ids(const char *user, const char *group,
	struct cz_spawn_ids *ids, char *err, size_t errlen)
{
	struct passwd *pw;

	*ids = (struct cz_spawn_ids){ 0 };
	if (user == NULL) {
		return 0;
	}
	pw = getpwnam(user);
	if (pw == NULL) {
		snprintf(err, errlen, "unknown user '%s' for --user", user);
		return -1;
	}
	if (geteuid() != 0) {
		snprintf(err, errlen, "--user needs root");
		return -1;
	}
	ids->uid = pw->pw_uid;
	ids->gid = pw->pw_gid;
	if (group != NULL && lookup_group(group, &ids->gid, err, errlen) < 0) {
		return -1;
	}
	if (user_groups(pw->pw_name, ids->gid, ids) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ids->set = true;
	return 0;
}

void cz_spawn_free_ids(struct cz_spawn_ids *ids)
{
	free(ids->groups);
	ids->groups = NULL;
}

/* --- environment ------------------------------------------------------- */

static bool env_replaced(const char *e)
{
	/* Node's channel variables name our channel or none: never our
	 * parent's (a node that ran the launcher with an IPC channel). */
	static const char *const names[] = {
		CZ_ENV_UNIQUE_ID "=", CZ_ENV_WORKER_ID "=", CZ_ENV_CONTROL_FD "=",
		"LD_PRELOAD=", "NOTIFY_SOCKET=", CZ_ENV_NODE_CHANNEL "=",
		CZ_ENV_NODE_CHANNEL_FD "=", CZ_ENV_NODE_SERIALIZATION "=",
		CZ_ENV_NODE_ASIDE_FD "=", CZ_ENV_NODE_ASIDE_ID "=",
		CZ_ENV_NODE_ASIDE_MODE "=",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strncmp(e, names[i], strlen(names[i])) == 0) {
			return true;
		}
	}
	return false;
}

int cz_spawn_init(struct cz_spawn *sp, const char *shim)
{
	const char *old = getenv("LD_PRELOAD");
	size_t n = 0, k = 0;

	while (environ[n] != NULL) {
		n++;
	}
	sp->control_fd_no = cz_proto_high_fd(sp->nofile.rlim_cur == RLIM_INFINITY ?
		0 : (unsigned long long)sp->nofile.rlim_cur) - 1;
	sp->node_fd = -1;
	/* Room for ours, and for Node's channel (cz_spawn_node_ipc). */
	sp->envp = calloc(n + 5 + 4, sizeof(char *));
	if (sp->envp == NULL ||
		asprintf(&sp->control, "%s=%d", CZ_ENV_CONTROL_FD,
			sp->control_fd_no) < 0 ||
		asprintf(&sp->preload, "LD_PRELOAD=%s%s%s", shim,
			old != NULL && *old != '\0' ? ":" : "",
			old != NULL ? old : "") < 0) {
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		if (!env_replaced(environ[i])) {
			sp->envp[k++] = environ[i];
		}
	}
	sp->envp[k++] = sp->unique_id;
	sp->envp[k++] = sp->worker_id;
	sp->envp[k++] = sp->control;
	sp->envp[k++] = sp->preload;
	sp->envp[k] = NULL;
	return 0;
}

int cz_spawn_node_ipc(struct cz_spawn *sp, const char *sched)
{
	size_t k = 0, i;

	while (sp->envp[k] != NULL) {
		k++;
	}
	/* The policy in force, where Node would look for it. */
	for (i = 0; i < k; i++) {
		if (strncmp(sp->envp[i], CZ_ENV_SCHED "=", strlen(CZ_ENV_SCHED) + 1) == 0) {
			sp->envp[i] = sp->envp[--k];
			sp->envp[k] = NULL;
			break;
		}
	}
	/* Just below the attach socket, itself below the shim's own fds. */
	sp->node_fd = sp->control_fd_no - 1;
	if (asprintf(&sp->node_env[0], "%s=%d", CZ_ENV_NODE_CHANNEL_FD,
		    sp->node_fd) < 0 ||
	    asprintf(&sp->node_env[1], "%s=%d", CZ_ENV_NODE_CHANNEL,
		    sp->node_fd) < 0 ||
	    asprintf(&sp->node_env[2], "%s=json", CZ_ENV_NODE_SERIALIZATION) < 0 ||
	    asprintf(&sp->node_env[3], "%s=%s", CZ_ENV_SCHED, sched) < 0) {
		sp->node_fd = -1;
		return -ENOMEM;
	}
	for (i = 0; i < 4; i++) {
		sp->envp[k++] = sp->node_env[i];
	}
	sp->envp[k] = NULL;
	return 0;
}

void cz_spawn_free(struct cz_spawn *sp)
{
	for (size_t i = 0; i < 4; i++) {
		free(sp->node_env[i]);
		sp->node_env[i] = NULL;
	}
	free(sp->envp);
	free(sp->control);
	free(sp->preload);
	sp->envp = NULL;
	sp->control = sp->preload = NULL;
}

/* --- the child --------------------------------------------------------- */

static __attribute__((noreturn)) void child_fail(int errfd, int step)
{
	struct child_error ce = { .err = errno, .step = step };

	while (write(errfd, &ce, sizeof(ce)) < 0 && errno == EINTR) {
	}
	cz_coverage_dump();
	_exit(step == STEP_EXEC && ce.err == ENOENT ? 127 : 126);
}

/* Groups before gid before uid: each step needs the privilege the next drops. */
static void child_switch_ids(const struct cz_spawn_ids *ids, int errfd)
{
	if (!ids->set) {
		return;
	}
	if (setgroups((size_t)ids->n_groups, ids->groups) != 0) {
		child_fail(errfd, STEP_SETGROUPS);
	}
	if (setgid(ids->gid) != 0) {
		child_fail(errfd, STEP_SETGID);
	}
	if (setuid(ids->uid) != 0) {
		child_fail(errfd, STEP_SETUID);
	}
}

/*
 * The attach socket goes to its fixed number, inheritable (dup2 clears
 * FD_CLOEXEC); the error pipe moves out of its way first.
 */
static int child_pass_control(const struct cz_spawn *sp, int control_fd,
	int *errfd)
{
	int no = sp->control_fd_no;

	if (*errfd == no) {
		*errfd = fcntl(*errfd, F_DUPFD_CLOEXEC, 3);
	}
	if (control_fd == no) {
		return fcntl(no, F_SETFD, 0);
	}
	return dup2(control_fd, no) < 0 ? -1 : 0;
}

/*
 * In the forked child: only async-signal-safe calls until exec.  Handlers
 * are reset before the mask is opened so a pending signal cannot run the
 * launcher's libuv handler in the child.
 */
/* The Node channel's end at its fd number, inherited by exec. */
static void child_node_fd(const struct cz_spawn *sp, int fd, int *errfd)
{
	if (fd < 0) {
		return;
	}
	if (*errfd == sp->node_fd) {
		*errfd = fcntl(*errfd, F_DUPFD_CLOEXEC, 3);
	}
	/* dup2 onto itself would keep FD_CLOEXEC. */
	if (fd == sp->node_fd ? fcntl(fd, F_SETFD, 0) < 0 :
				dup2(fd, sp->node_fd) < 0) {
		child_fail(*errfd, STEP_DUP2);
	}
}

static __attribute__((noreturn)) void child_exec(const struct cz_spawn *sp,
	int errfd, const int out_w[2], int control_fd, pid_t parent, int node)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;

	for (int sig = 1; sig < NSIG; sig++) {
		sigaction(sig, &dfl, NULL);
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* A group of its own: the terminal's ^C reaches only the launcher,
	 * and what the worker starts can be killed with it. */
	setpgid(0, 0);
	if (out_w[0] >= 0 && (dup2(out_w[0], STDOUT_FILENO) < 0 ||
		dup2(out_w[1], STDERR_FILENO) < 0)) {
		child_fail(errfd, STEP_DUP2);
	}
	/* The attach socket's number must not take the Node channel's end. */
	if (node == sp->control_fd_no) {
		node = fcntl(node, F_DUPFD_CLOEXEC, 3);
	}
	if (child_pass_control(sp, control_fd, &errfd) < 0) {
		child_fail(errfd, STEP_DUP2);
	}
	child_node_fd(sp, node, &errfd);
	child_switch_ids(sp->ids, errfd);
	/*
	 * Never outlive the launcher, even SIGKILLed; after the id switch,
	 * which clears it.  The launcher may have died right here.
	 */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent) {
		cz_coverage_dump();
		_exit(1);
	}
	setrlimit(RLIMIT_NOFILE, &sp->nofile);
	cz_coverage_dump();
	execvpe(sp->exe, sp->argv, sp->envp);
	child_fail(errfd, STEP_EXEC);
}

/* --- the parent -------------------------------------------------------- */

static void read_child_error(int fd, struct cz_spawn_result *r)
{
	struct child_error ce;
	ssize_t n;

	do {
		n = read(fd, &ce, sizeof(ce));
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(ce) && ce.err != 0) {
		r->err = ce.err;
		r->step = ce.step >= 0 && ce.step <= STEP_DUP2 ?
			step_names[ce.step] : "exec";
	}
}

static void close_pair(int fds[2])
{
	for (int i = 0; i < 2; i++) {
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
	}
}

/* Two pipes; r (read ends) stay with the launcher, w go to the child. */
static int open_pipes(int r[2], int w[2])
{
	for (int i = 0; i < 2; i++) {
		int p[2];

		if (pipe2(p, O_CLOEXEC) != 0) {
			int err = errno;

			close_pair(r);
			close_pair(w);
			return -err;
		}
		r[i] = p[0];
		w[i] = p[1];
	}
	return 0;
}

/* The Node channel: the launcher's end in r->node, the worker's in *child. */
static int open_node_channel(const struct cz_spawn *sp,
	struct cz_spawn_result *r, int *child)
{
	int sv[2];

	if (sp->node_fd < 0) {
		return 0;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		return -errno;
	}
	r->node = sv[0];
	*child = sv[1];
	return 0;
}

/* Everything but the pid goes: the fork or the exec failed. */
static void drop_fds(struct cz_spawn_result *r, int *node_child)
{
	int node[2] = { r->node, *node_child };

	close_pair(r->out);
	close_pair(node);
	r->node = *node_child = -1;
}

int cz_spawn_fork(struct cz_spawn *sp, uint32_t id, int control_fd,
	struct cz_spawn_result *r)
{
	pid_t parent = getpid();
	int out_w[2] = { -1, -1 }, efd[2] = { -1, -1 }, err, node_child = -1;

	*r = (struct cz_spawn_result){ .pid = -1, .out = { -1, -1 }, .node = -1 };
	snprintf(sp->unique_id, sizeof(sp->unique_id), "%s=%u",
		CZ_ENV_UNIQUE_ID, id);
	snprintf(sp->worker_id, sizeof(sp->worker_id), "%s=%u",
		CZ_ENV_WORKER_ID, id);
	err = open_node_channel(sp, r, &node_child);
	if (err == 0 && sp->pipes) {
		err = open_pipes(r->out, out_w);
	}
	if (err == 0 && pipe2(efd, O_CLOEXEC) != 0) {
		err = -errno;
		close_pair(out_w);
	}
	if (err < 0) {
		drop_fds(r, &node_child);
		return err;
	}
	r->pid = fork();
	if (r->pid == 0) {
		close(efd[0]);
		child_exec(sp, efd[1], out_w, control_fd, parent, node_child);
	}
	err = errno;
	if (r->pid > 0) {
		setpgid(r->pid, r->pid); /* also here: no window before exec */
	}
	close(efd[1]);
	close_pair(out_w);
	if (node_child >= 0) {
		close(node_child);
		node_child = -1;
	}
	if (r->pid < 0) {
		close(efd[0]);
		drop_fds(r, &node_child);
		return -err;
	}
	read_child_error(efd[0], r);
	close(efd[0]);
	if (r->err != 0) {
		drop_fds(r, &node_child);
		while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR) {
		}
	}
	return 0;
}

#define FORK_RETRY_MS 1000

static uint64_t ms_of(double sec)
{
	return (uint64_t)(sec * 1000.0 + 0.5);
}

/* --- workers: the supervisor's records ------------------------------- */

static void exec_failed(struct cz_sup *s, const struct cz_spawn_result *r)
{
	if (strcmp(r->step, "exec") == 0) {
		cz_log(CZ_LOG_ERROR, "cannot execute '%s': %s", s->opts->cmd_argv[0],
			strerror(r->err));
	} else {
		cz_log(CZ_LOG_ERROR, "cannot execute '%s': %s: %s",
			s->opts->cmd_argv[0], r->step, strerror(r->err));
	}
	if (s->exit_status == 0) {
		s->exit_status = strcmp(r->step, "exec") == 0 &&
			r->err == ENOENT ? 127 : 126;
	}
	cz_workers_begin_stop(s, false);
}

static void attach_output(struct cz_sup *s, struct cz_spawn_result *r,
	uint32_t id)
{
	for (int i = 0; i < 2; i++) {
		if (r->out[i] >= 0 &&
			cz_output_attach(&s->output, r->out[i], id, i + 1) < 0) {
			cz_log(CZ_LOG_WARN, "worker %u: output pipe: %s", id,
				strerror(ENOMEM));
		}
	}
}

static struct cz_worker *new_worker(struct cz_sup *s, unsigned slot,
	const struct cz_spawn_result *r)
{
	struct cz_worker *w = calloc(1, sizeof(*w));

	if (w == NULL) {
		return NULL;
	}
	w->id = s->next_id++;
	w->pid = r->pid;
	w->slot = (int)slot;
	w->started = cz_workers_now();
	w->restarts = s->slots[slot].restarts;
	if (s->opts->hello_timeout > 0) {
		w->hello_at = w->started + ms_of(s->opts->hello_timeout);
	}
	w->next = s->workers;
	s->workers = w;
	return w;
}

struct cz_worker *cz_workers_spawn(struct cz_sup *s, unsigned slot,
	bool candidate, char *why, size_t whylen)
{
	struct cz_spawn_result r;
	struct cz_worker *w;
	const char *step = "attach socket";
	int rc, cfd = -1;

	if (s->state != CZ_SUP_RUNNING) {
		snprintf(why, whylen, "stopping");
		return NULL;
	}
	/* The worker's attach socket: its processes' only way to the primary. */
	rc = cz_control_worker_open(s->control, s->next_id, &cfd);
	if (rc == 0) {
		step = "fork";
		rc = cz_spawn_fork(&s->spawn, s->next_id, cfd, &r);
		close(cfd);
	}
	if (rc < 0 || r.err != 0) {
		cz_control_worker_exited(s->control, s->next_id);
		snprintf(why, whylen, "cannot start worker %u: %s: %s",
			s->next_id, rc < 0 ? step : r.step,
			strerror(rc < 0 ? -rc : r.err));
		if (rc == 0 && !candidate) {
			exec_failed(s, &r);
		}
		return NULL;
	}
	w = new_worker(s, slot, &r);
	if (w == NULL) {
		/* Not tracked, so never left running. */
		cz_workers_kill_group(r.pid);
		cz_control_worker_exited(s->control, s->next_id);
		if (r.node >= 0) {
			close(r.node);
		}
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	cz_keeper_watch(&s->keeper, r.pid);
	attach_output(s, &r, w->id);
	if (r.node >= 0 && cz_node_ipc_attach(s->nipc, w->id, w->pid, r.node) < 0) {
		cz_log(CZ_LOG_WARN, "worker %u: Node channel: %s", w->id,
			strerror(ENOMEM));
	}
	cz_log_event(CZ_LOG_INFO, "fork", "id pid", "worker %u (pid %d) forked",
		w->id, (int)w->pid);
	if (candidate) {
		w->candidate = true;
		w->ready_by = w->started + ms_of(s->opts->ready_timeout);
		s->slots[slot].cand = w;
	} else {
		s->slots[slot].w = w;
		s->slots[slot].gen = s->roll.gen;
	}
	return w;
}

/* A slot's worker (re)start; a fork failure is retried later. */
void cz_workers_spawn_slot(struct cz_sup *s, unsigned slot)
{
	char why[256];

	if (cz_workers_spawn(s, slot, false, why, sizeof(why)) != NULL ||
		s->state != CZ_SUP_RUNNING) {
		return;
	}
	cz_log(CZ_LOG_ERROR, "%s; retrying in %ds", why, FORK_RETRY_MS / 1000);
	s->slots[slot].respawn_at = cz_workers_now() + FORK_RETRY_MS;
}
