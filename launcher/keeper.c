/*
 * The keeper (keeper.h): a child of the launcher that kills the workers'
 * process groups when the launcher dies.
 *
 * The pipe carries one int32 per message: a process group to watch, or
 * its negation to forget.  Writes of 4 bytes to a pipe are atomic.
 */
#include "keeper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "coverage.h"
#include "log.h"

/* Workers, and the replacements of a rolling restart, alive at once. */
#define KEEPER_MAX (2 * CZ_CLI_MAX_WORKERS + 64)
/* Keepers dying this soon after their start, this many times in a row,
 * are not restarted: something kills them as soon as they exist. */
#define KEEPER_MIN_LIFE_MS 1000
#define KEEPER_QUICK_DEATHS 3

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- the keeper process ------------------------------------------------- */

/* The groups it was told of: no allocation in the keeper. */
static pid_t kept[KEEPER_MAX];
static unsigned n_kept;

static void keep(int32_t msg)
{
	pid_t g = msg > 0 ? msg : -msg;

	for (unsigned i = 0; i < n_kept; i++) {
		if (kept[i] == g) {
			if (msg < 0) {
				kept[i] = kept[--n_kept];
			}
			return;
		}
	}
	if (msg > 0 && n_kept < KEEPER_MAX) {
		kept[n_kept++] = g;
	}
}

static __attribute__((noreturn)) void kill_all(pid_t launcher)
{
	unsigned killed = 0;

	for (unsigned i = 0; i < n_kept; i++) {
		killed += kill(-kept[i], SIGKILL) == 0;
	}
	if (killed > 0) {
		cz_log(CZ_LOG_WARN, "the launcher (pid %d) is gone: killed the "
			"process groups of %u worker%s", (int)launcher, killed,
			killed == 1 ? "" : "s");
	}
	cz_coverage_dump();
	_exit(0);
}

/* Reads what the launcher sent; false at EOF (the launcher is gone). */
static bool read_messages(int fd)
{
	static char buf[4096];
	static size_t have;
	ssize_t n = read(fd, buf + have, sizeof(buf) - have);
	size_t i;

	if (n < 0) {
		return errno == EINTR || errno == EAGAIN;
	}
	if (n == 0) {
		return false;
	}
	have += (size_t)n;
	for (i = 0; i + sizeof(int32_t) <= have; i += sizeof(int32_t)) {
		int32_t msg;

		memcpy(&msg, buf + i, sizeof(msg));
		keep(msg);
	}
	memmove(buf, buf + i, have - i);
	have -= i;
	return true;
}

/*
 * Every signal stays blocked (as the launcher forked it): the terminal's,
 * job control's, a service manager's SIGTERM to the whole unit never end
 * the keeper.  SIGUSR1 is its parent-death signal, read from a signalfd.
 */
static __attribute__((noreturn)) void keeper_main(int rfd, pid_t launcher)
{
	struct pollfd p[2] = { { .fd = rfd, .events = POLLIN } };
	sigset_t usr1;

	setsid();
	prctl(PR_SET_NAME, "clusterize-keep");
	if (rfd <= STDERR_FILENO) {
		/* The launcher started without stdio: keep the pipe clear of it. */
		int moved = fcntl(rfd, F_DUPFD, STDERR_FILENO + 1);

		if (moved >= 0) {
			close(rfd);
			rfd = moved;
			p[0].fd = rfd;
		}
	}
	close(STDIN_FILENO);
	close(STDOUT_FILENO);
	if (rfd > STDERR_FILENO + 1) {
		close_range(STDERR_FILENO + 1, (unsigned)rfd - 1, 0);
	}
	close_range((unsigned)rfd + 1, ~0U, 0);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	p[1].fd = signalfd(-1, &usr1, SFD_CLOEXEC);
	p[1].events = POLLIN;
	prctl(PR_SET_PDEATHSIG, SIGUSR1);
	if (getppid() != launcher) {
		kill_all(launcher);
	}
	for (;;) {
		if (poll(p, 2, -1) < 0 && errno != EINTR) {
			kill_all(launcher);
		}
		if (p[1].revents != 0) {
			kill_all(launcher);
		}
		if (p[0].revents != 0 && !read_messages(rfd)) {
			kill_all(launcher);
		}
	}
}

/* --- the launcher's side ------------------------------------------------ */

static void send_msg(struct cz_keeper *k, int32_t msg)
{
	ssize_t n;

	if (k->fd < 0) {
		return;
	}
	do {
		n = write(k->fd, &msg, sizeof(msg));
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(msg)) {
		cz_log(CZ_LOG_WARN, "keeper (pid %d): %s", (int)k->pid,
			n < 0 ? strerror(errno) : "short write");
	}
}

int cz_keeper_start(struct cz_keeper *k)
{
	pid_t launcher = getpid();
	sigset_t all, old;
	int p[2], err;

	k->pid = -1;
	k->fd = -1;
	if (pipe2(p, O_CLOEXEC) != 0) {
		err = errno;
		cz_log(CZ_LOG_WARN, "keeper: pipe: %s", strerror(err));
		return -err;
	}
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	k->pid = fork();
	if (k->pid == 0) {
		keeper_main(p[0], launcher);
	}
	err = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(p[0]);
	if (k->pid < 0) {
		close(p[1]);
		cz_log(CZ_LOG_WARN, "keeper: fork: %s", strerror(err));
		return -err;
	}
	/* A stuck keeper must not stall the launcher. */
	fcntl(p[1], F_SETFL, O_NONBLOCK);
	k->fd = p[1];
	k->started = now_ms();
	cz_log(CZ_LOG_DEBUG, "keeper (pid %d) started", (int)k->pid);
	for (unsigned i = 0; i < k->n; i++) {
		send_msg(k, k->groups[i]);
	}
	return 0;
}

void cz_keeper_watch(struct cz_keeper *k, pid_t pgid)
{
	if (k->n == k->cap) {
		unsigned cap = k->cap ? k->cap * 2 : 16;
		pid_t *g = realloc(k->groups, cap * sizeof(*g));

		if (g == NULL) {
			cz_log(CZ_LOG_WARN, "keeper: out of memory");
			return;
		}
		k->groups = g;
		k->cap = cap;
	}
	k->groups[k->n++] = pgid;
	send_msg(k, pgid);
}

void cz_keeper_forget(struct cz_keeper *k, pid_t pgid)
{
	for (unsigned i = 0; i < k->n; i++) {
		if (k->groups[i] == pgid) {
			k->groups[i] = k->groups[--k->n];
			send_msg(k, -pgid);
			return;
		}
	}
}

static const char *describe(int status, char *buf, size_t len)
{
	const char *abbrev = WIFSIGNALED(status) ?
		sigabbrev_np(WTERMSIG(status)) : NULL;

	if (!WIFSIGNALED(status)) {
		snprintf(buf, len, "exited with code %d", WEXITSTATUS(status));
	} else if (abbrev != NULL) {
		snprintf(buf, len, "killed by signal SIG%s", abbrev);
	} else {
		snprintf(buf, len, "killed by signal %d", WTERMSIG(status));
	}
	return buf;
}

bool cz_keeper_reaped(struct cz_keeper *k, pid_t pid, int status)
{
	char what[48];
	bool give_up;

	if (pid <= 0 || pid != k->pid) {
		return false;
	}
	close(k->fd);
	k->fd = -1;
	k->pid = -1;
	k->quick_deaths = now_ms() - k->started < KEEPER_MIN_LIFE_MS ?
		k->quick_deaths + 1 : 0;
	give_up = k->quick_deaths >= KEEPER_QUICK_DEATHS;
	cz_log(CZ_LOG_WARN, "keeper (pid %d) %s%s", (int)pid,
		describe(status, what, sizeof(what)),
		give_up ? "; not restarted: workers may outlive a killed "
			"launcher" : "; starting another");
	if (!give_up) {
		cz_keeper_start(k);
	}
	return true;
}

void cz_keeper_stop(struct cz_keeper *k)
{
	if (k->fd >= 0) {
		close(k->fd);
		k->fd = -1;
	}
	if (k->pid > 0) {
		/* Nothing left to keep (or, on EOF, it kills what is). */
		if (k->n == 0) {
			kill(k->pid, SIGKILL);
		}
		while (waitpid(k->pid, NULL, 0) < 0 && errno == EINTR) {
		}
		k->pid = -1;
	}
	free(k->groups);
	k->groups = NULL;
	k->n = k->cap = 0;
}
