/*
 * The supervisor (workers.h).  One record per live worker process, one
 * slot per wanted worker: a slot holds its current worker and counts its
 * quick crashes in a row, so one flapping slot gives up even while the
 * others run fine.  Every deadline (respawn backoff, hello timeout, grace
 * before SIGKILL) is served by one timer set to the nearest of them.
 *
 * Workers are started with fork() and execvpe() rather than uv_spawn(): the
 * child has things to do between the two (PR_SET_PDEATHSIG, giving back
 * RLIMIT_NOFILE) and reports exec failure through a close-on-exec pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "workers.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
#define FORK_RETRY_MS 1000

extern char **environ;

struct worker {
	struct worker *next;
	uint32_t id;
	pid_t pid;
	int slot;          /* index in sup.slots; -1 once retired (TTOU) */
	uint64_t started;  /* ms */
	uint64_t hello_at; /* ms; 0: said hello, or already warned */
	uint64_t kill_at;  /* ms; SIGKILL then if still stopping */
	bool online;
	bool stopping;     /* SIGTERM sent */
	bool killed;       /* SIGKILL sent */
};

struct slot {
	struct worker *w;
	uint64_t respawn_at; /* ms; 0: none pending */
	unsigned crashes;    /* quick exits in a row */
};

/* The workers' environment, built once; the two id entries per fork. */
struct env {
	char **envp;
	char *control;
	char *preload;
	char unique_id[48];
	char worker_id[48];
};

enum state { RUNNING, STOPPING, DONE };

static const int handled_signals[] = {
	SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGTTIN, SIGTTOU,
};
#define N_SIGNALS (sizeof(handled_signals) / sizeof(handled_signals[0]))

struct sup {
	uv_loop_t *loop;
	const struct cz_workers_config *cfg;
	const struct cz_opts *opts;
	struct cz_control *control;
	uv_signal_t sigs[N_SIGNALS];
	uv_timer_t timer;
	size_t n_handles;  /* timer + signals initialized, to close */
	struct slot slots[CZ_CLI_MAX_WORKERS];
	unsigned n_slots;
	struct worker *workers;
	uint32_t next_id;
	enum state state;
	int exit_status;
	struct env env;
};

static void begin_stop(struct sup *s, bool kill_now);
static void reschedule(struct sup *s);

static uint64_t now_ms(void)
{
	return uv_hrtime() / 1000000;
}

static uint64_t seconds_ms(double sec)
{
	return (uint64_t)(sec * 1000.0 + 0.5);
}

static const char *cmd_name(const struct sup *s)
{
	return s->opts->cmd_argv[0];
}

static const char *sig_name(int sig, char *buf, size_t len)
{
	const char *abbrev = sigabbrev_np(sig);

	if (abbrev != NULL) {
		snprintf(buf, len, "SIG%s", abbrev);
	} else {
		snprintf(buf, len, "signal %d", sig);
	}
	return buf;
}

/* "exited with code 3" or "killed by signal SIGKILL". */
static const char *describe_status(int status, char *buf, size_t len)
{
	char name[32];

	if (WIFSIGNALED(status)) {
		snprintf(buf, len, "killed by signal %s",
			sig_name(WTERMSIG(status), name, sizeof(name)));
	} else {
		snprintf(buf, len, "exited with code %d", WEXITSTATUS(status));
	}
	return buf;
}

/* --- environment ------------------------------------------------------ */

static bool env_replaced(const char *e)
{
	static const char *const names[] = {
		CZ_ENV_UNIQUE_ID "=", CZ_ENV_WORKER_ID "=", CZ_ENV_CONTROL "=",
		"LD_PRELOAD=",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strncmp(e, names[i], strlen(names[i])) == 0) {
			return true;
		}
	}
	return false;
}

static int env_build(struct env *env, const char *control, const char *shim)
{
	const char *old = getenv("LD_PRELOAD");
	size_t n = 0, k = 0;

	while (environ[n] != NULL) {
		n++;
	}
	env->envp = calloc(n + 5, sizeof(char *));
	if (env->envp == NULL ||
		asprintf(&env->control, "%s=%s", CZ_ENV_CONTROL, control) < 0 ||
		asprintf(&env->preload, "LD_PRELOAD=%s%s%s", shim,
			old != NULL && *old != '\0' ? ":" : "",
			old != NULL ? old : "") < 0) {
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		if (!env_replaced(environ[i])) {
			env->envp[k++] = environ[i];
		}
	}
	env->envp[k++] = env->unique_id;
	env->envp[k++] = env->worker_id;
	env->envp[k++] = env->control;
	env->envp[k++] = env->preload;
	env->envp[k] = NULL;
	return 0;
}

static void env_free(struct env *env)
{
	free(env->envp);
	free(env->control);
	free(env->preload);
}

/* --- spawning --------------------------------------------------------- */

/*
 * In the forked child: only async-signal-safe calls until exec.  Handlers
 * are reset before the mask is opened so a pending signal cannot run the
 * launcher's libuv handler in the child.
 */
static __attribute__((noreturn)) void child_exec(const struct sup *s,
	int errfd, pid_t parent)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;
	int err;

	for (int sig = 1; sig < NSIG; sig++) {
		sigaction(sig, &dfl, NULL);
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Never outlive the launcher, even SIGKILLed; it may die right here. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent) {
		_exit(1);
	}
	setrlimit(RLIMIT_NOFILE, &s->cfg->nofile);
	execvpe(s->cfg->exe_path, s->opts->cmd_argv, s->env.envp);
	err = errno;
	while (write(errfd, &err, sizeof(err)) < 0 && errno == EINTR) {
	}
	_exit(err == ENOENT ? 127 : 126);
}

/* 0 when the child exec'd, else the errno of its failed exec. */
static int read_exec_error(int fd)
{
	int err = 0;
	ssize_t n;

	do {
		n = read(fd, &err, sizeof(err));
	} while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(err) ? err : 0;
}

/*
 * Forks one worker.  Returns 0 with *pid set (or with *exec_err set when the
 * child could not exec the command), or -errno when it could not fork.
 */
static int fork_worker(struct sup *s, uint32_t id, pid_t *pid, int *exec_err)
{
	pid_t parent = getpid();
	int pfd[2];
	int err;

	snprintf(s->env.unique_id, sizeof(s->env.unique_id), "%s=%u",
		CZ_ENV_UNIQUE_ID, id);
	snprintf(s->env.worker_id, sizeof(s->env.worker_id), "%s=%u",
		CZ_ENV_WORKER_ID, id);
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		return -errno;
	}
	*pid = fork();
	if (*pid == 0) {
		close(pfd[0]);
		child_exec(s, pfd[1], parent);
	}
	err = errno;
	close(pfd[1]);
	if (*pid < 0) {
		close(pfd[0]);
		return -err;
	}
	*exec_err = read_exec_error(pfd[0]);
	close(pfd[0]);
	if (*exec_err != 0) {
		while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR) {
		}
	}
	return 0;
}

static void exec_failed(struct sup *s, int err)
{
	cz_log(CZ_LOG_ERROR, "cannot execute '%s': %s", cmd_name(s),
		strerror(err));
	if (s->exit_status == 0) {
		s->exit_status = err == ENOENT ? 127 : 126;
	}
	begin_stop(s, false);
}

static void spawn_slot(struct sup *s, unsigned slot)
{
	struct worker *w;
	int exec_err = 0;
	pid_t pid = -1;
	int rc;

	if (s->state != RUNNING) {
		return;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		cz_log(CZ_LOG_ERROR, "out of memory");
		s->exit_status = 1;
		begin_stop(s, false);
		return;
	}
	w->id = s->next_id;
	rc = fork_worker(s, w->id, &pid, &exec_err);
	if (rc == 0 && exec_err != 0) {
		free(w);
		exec_failed(s, exec_err);
		return;
	}
	if (rc < 0) {
		free(w);
		cz_log(CZ_LOG_ERROR, "fork: %s; retrying in %ds",
			strerror(-rc), FORK_RETRY_MS / 1000);
		s->slots[slot].respawn_at = now_ms() + FORK_RETRY_MS;
		return;
	}
	s->next_id++;
	w->pid = pid;
	w->slot = (int)slot;
	w->started = now_ms();
	if (s->opts->hello_timeout > 0) {
		w->hello_at = w->started + seconds_ms(s->opts->hello_timeout);
	}
	w->next = s->workers;
	s->workers = w;
	s->slots[slot].w = w;
	cz_log(CZ_LOG_INFO, "worker %u (pid %d) forked", w->id, (int)pid);
}

/* --- stopping --------------------------------------------------------- */

static void stop_worker(struct sup *s, struct worker *w, bool kill_now)
{
	if (!w->stopping) {
		w->stopping = true;
		/* In rr, stop routing connections to it before it is told. */
		cz_control_worker_stopping(s->control, w->id);
		if (!kill_now) {
			kill(w->pid, SIGTERM);
			w->kill_at = now_ms() + seconds_ms(s->opts->grace);
		}
	}
	if (kill_now && !w->killed) {
		w->killed = true;
		kill(w->pid, SIGKILL);
	}
}

static void close_handle(uv_handle_t *h)
{
	if (!uv_is_closing(h)) {
		uv_close(h, NULL);
	}
}

/* Everything has exited: close what we hold so the loop can end. */
static void finish(struct sup *s)
{
	s->state = DONE;
	cz_control_destroy(s->control);
	s->control = NULL;
	for (size_t i = 0; i + 1 < s->n_handles; i++) {
		close_handle((uv_handle_t *)&s->sigs[i]);
	}
	if (s->n_handles > 0) {
		close_handle((uv_handle_t *)&s->timer);
	}
}

static void begin_stop(struct sup *s, bool kill_now)
{
	if (s->state == DONE) {
		return;
	}
	s->state = STOPPING;
	for (unsigned i = 0; i < s->n_slots; i++) {
		s->slots[i].respawn_at = 0;
	}
	for (struct worker *w = s->workers; w != NULL; w = w->next) {
		stop_worker(s, w, kill_now);
	}
	if (s->workers == NULL) {
		finish(s);
		return;
	}
	reschedule(s);
}

/* --- exits and respawns ----------------------------------------------- */

static void give_up(struct sup *s, const struct slot *sl, int status)
{
	char what[64];

	cz_log(CZ_LOG_ERROR, "giving up: '%s' %s %u times in a row within "
		"%gs of starting", cmd_name(s),
		describe_status(status, what, sizeof(what)), sl->crashes,
		s->opts->min_uptime);
	if (WIFSIGNALED(status)) {
		s->exit_status = 128 + WTERMSIG(status);
	} else {
		s->exit_status = WEXITSTATUS(status) != 0 ?
			WEXITSTATUS(status) : 1;
	}
	begin_stop(s, false);
}

static void crashed(struct sup *s, unsigned slot, uint64_t lived, int status)
{
	struct slot *sl = &s->slots[slot];
	uint64_t delay;

	if (lived >= seconds_ms(s->opts->min_uptime)) {
		sl->crashes = 0;
		spawn_slot(s, slot);
		return;
	}
	sl->crashes++;
	if (sl->crashes >= s->opts->max_restarts) {
		give_up(s, sl, status);
		return;
	}
	delay = sl->crashes > 7 ? BACKOFF_MAX_MS :
		(uint64_t)BACKOFF_FIRST_MS << (sl->crashes - 1);
	if (delay > BACKOFF_MAX_MS) {
		delay = BACKOFF_MAX_MS;
	}
	cz_log(CZ_LOG_DEBUG, "restarting worker slot %u in %llu ms", slot,
		(unsigned long long)delay);
	sl->respawn_at = now_ms() + delay;
}

static void unlink_worker(struct sup *s, struct worker *w)
{
	for (struct worker **p = &s->workers; *p != NULL; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			return;
		}
	}
}

static void reaped(struct sup *s, pid_t pid, int status)
{
	struct worker *w = s->workers;
	char what[64];

	while (w != NULL && w->pid != pid) {
		w = w->next;
	}
	if (w == NULL) {
		return; /* not a worker: a stray child of ours */
	}
	cz_log(CZ_LOG_INFO, "worker %u (pid %d) %s", w->id, (int)pid,
		describe_status(status, what, sizeof(what)));
	cz_control_worker_exited(s->control, w->id);
	unlink_worker(s, w);
	if (w->slot >= 0) {
		s->slots[w->slot].w = NULL;
		if (s->state == RUNNING && !w->stopping) {
			crashed(s, (unsigned)w->slot, now_ms() - w->started,
				status);
		}
	}
	free(w);
}

/* --- events ----------------------------------------------------------- */

static void on_sigchld(struct sup *s)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid < 0 && errno == EINTR) {
			continue;
		}
		if (pid <= 0) {
			break;
		}
		reaped(s, pid, status);
	}
	if (s->state == STOPPING && s->workers == NULL) {
		finish(s);
	}
	reschedule(s);
}

static void add_worker(struct sup *s)
{
	unsigned slot = s->n_slots;

	if (slot >= CZ_CLI_MAX_WORKERS) {
		cz_log(CZ_LOG_WARN, "SIGTTIN ignored: already %u workers", slot);
		return;
	}
	s->slots[slot] = (struct slot){ 0 };
	s->n_slots++;
	spawn_slot(s, slot);
}

static void remove_worker(struct sup *s)
{
	struct slot *sl;

	if (s->n_slots <= 1) {
		cz_log(CZ_LOG_WARN, "SIGTTOU ignored: only one worker left");
		return;
	}
	sl = &s->slots[--s->n_slots];
	if (sl->w != NULL) {
		sl->w->slot = -1;
		stop_worker(s, sl->w, false);
	}
	*sl = (struct slot){ 0 };
}

static void on_signal(uv_signal_t *h, int sig)
{
	struct sup *s = h->data;

	if (sig == SIGCHLD) {
		on_sigchld(s);
		return;
	}
	if (s->state == DONE) {
		return;
	}
	cz_log(CZ_LOG_DEBUG, "received %s", sigabbrev_np(sig));
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		/* A second request while stopping means: now. */
		begin_stop(s, s->state == STOPPING);
		return;
	case SIGQUIT:
		begin_stop(s, true);
		return;
	case SIGHUP:
		cz_log(CZ_LOG_WARN, "SIGHUP (rolling restart) is not "
			"implemented yet; ignored");
		return;
	}
	if (s->state != RUNNING) {
		return;
	}
	if (sig == SIGTTIN) {
		add_worker(s);
	} else if (sig == SIGTTOU) {
		remove_worker(s);
	}
	reschedule(s);
}

static void hello_overdue(struct sup *s, struct worker *w)
{
	w->hello_at = 0;
	cz_log(CZ_LOG_WARN, "worker %u (pid %d) has not loaded the shim after "
		"%gs: the command may be statically linked, a Go program, "
		"set-user-ID or with file capabilities, or it cleared "
		"LD_PRELOAD; its sockets are not shared", w->id, (int)w->pid,
		s->opts->hello_timeout);
}

static void on_timer(uv_timer_t *t)
{
	struct sup *s = t->data;
	uint64_t now = now_ms();

	for (unsigned i = 0; i < s->n_slots; i++) {
		if (s->slots[i].respawn_at != 0 && s->slots[i].respawn_at <= now) {
			s->slots[i].respawn_at = 0;
			spawn_slot(s, i);
		}
	}
	for (struct worker *w = s->workers; w != NULL; w = w->next) {
		if (w->hello_at != 0 && w->hello_at <= now && !w->stopping) {
			hello_overdue(s, w);
		}
		if (w->stopping && !w->killed && w->kill_at <= now) {
			cz_log(CZ_LOG_DEBUG, "worker %u (pid %d) still running "
				"after the grace period: SIGKILL", w->id, (int)w->pid);
			stop_worker(s, w, true);
		}
	}
	reschedule(s);
}

static void consider(uint64_t *next, uint64_t at)
{
	if (at != 0 && (*next == 0 || at < *next)) {
		*next = at;
	}
}

static void reschedule(struct sup *s)
{
	uint64_t next = 0, now = now_ms();

	if (s->state == DONE) {
		return; /* the timer is closing */
	}
	for (unsigned i = 0; i < s->n_slots; i++) {
		consider(&next, s->slots[i].respawn_at);
	}
	for (struct worker *w = s->workers; w != NULL; w = w->next) {
		if (!w->stopping) {
			consider(&next, w->hello_at);
		} else if (!w->killed) {
			consider(&next, w->kill_at);
		}
	}
	if (next == 0) {
		uv_timer_stop(&s->timer);
		return;
	}
	uv_timer_start(&s->timer, on_timer, next > now ? next - now : 0, 0);
}

static void on_hello(void *data, uint32_t worker_id, int pid, uint32_t flags,
	const char *exe)
{
	struct sup *s = data;

	for (struct worker *w = s->workers; w != NULL; w = w->next) {
		if (w->id == worker_id && !w->online) {
			w->online = true;
			w->hello_at = 0;
			cz_log(CZ_LOG_INFO, "worker %u (pid %d) online", worker_id,
				pid);
		}
	}
	cz_log(CZ_LOG_DEBUG, "worker %u: hello from pid %d (%s)%s", worker_id,
		pid, exe, (flags & CZ_HELLO_F_NODE) ? " (node)" : "");
}

static void on_listening(void *data, uint32_t worker_id, int pid,
	const char *addr)
{
	cz_log(CZ_LOG_INFO, "worker %u (pid %d) listening on %s", worker_id, pid,
		addr);
}

/* --- running ---------------------------------------------------------- */

static int start_handles(struct sup *s)
{
	int rc = uv_timer_init(s->loop, &s->timer);

	s->timer.data = s;
	s->n_handles = rc == 0 ? 1 : 0;
	for (size_t i = 0; rc == 0 && i < N_SIGNALS; i++) {
		rc = uv_signal_init(s->loop, &s->sigs[i]);
		s->sigs[i].data = s;
		if (rc == 0) {
			s->n_handles++;
			rc = uv_signal_start(&s->sigs[i], on_signal,
				handled_signals[i]);
		}
	}
	return rc;
}

static int sup_init(struct sup *s)
{
	static const struct cz_control_events ev_template = {
		.hello = on_hello,
		.listening = on_listening,
	};
	struct cz_control_events ev = ev_template;
	int rc;

	ev.data = s;
	rc = cz_control_create(s->loop, s->opts->sched, &ev, &s->control);
	if (rc < 0) {
		cz_log(CZ_LOG_ERROR, "control socket: %s", strerror(-rc));
		return rc;
	}
	rc = env_build(&s->env, cz_control_name(s->control),
		s->cfg->shim_path);
	if (rc < 0) {
		cz_log(CZ_LOG_ERROR, "out of memory");
		return rc;
	}
	rc = start_handles(s);
	if (rc < 0) {
		cz_log(CZ_LOG_ERROR, "signal handlers: %s", uv_strerror(rc));
	}
	return rc;
}

int cz_workers_run(uv_loop_t *loop, const struct cz_workers_config *cfg)
{
	struct sup *s = calloc(1, sizeof(*s));
	int status;

	if (s == NULL) {
		cz_log(CZ_LOG_ERROR, "out of memory");
		return 1;
	}
	s->loop = loop;
	s->cfg = cfg;
	s->opts = cfg->opts;
	s->next_id = 1;
	s->state = RUNNING;
	if (sup_init(s) < 0) {
		s->exit_status = 1;
		finish(s);
	}
	for (unsigned i = 0; i < s->opts->workers && s->state == RUNNING; i++) {
		add_worker(s);
	}
	reschedule(s);
	uv_run(loop, UV_RUN_DEFAULT);
	status = s->exit_status;
	env_free(&s->env);
	free(s);
	return status;
}
