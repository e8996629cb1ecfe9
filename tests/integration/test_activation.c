/*
 * Socket activation: started with a listening socket at fd 3, LISTEN_FDS=1
 * and LISTEN_PID = its own pid, the launcher adopts that very socket for the
 * workers' bind of its address: connections queued on it before the
 * launcher started are answered by workers, it says so in the log, the
 * workers do not see the LISTEN_* variables, and the socket is still the
 * test's (listening) after the launcher exits.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "czt.h"
#include "czt_ops.h"

#define QUEUED 6
#define ASKED 20

TestSuite(activation, .init = czt_setup, .fini = czt_ops_teardown, .timeout = 120);

/* In the child: the socket at fd 3, and the variables naming our pid. */
static int activate(void *arg)
{
	int fd = *(int *)arg;
	char pid[32];

	if (fd != 3 && dup2(fd, 3) < 0) {
		return -1;
	}
	if (fcntl(3, F_SETFD, 0) < 0) {
		return -1;
	}
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	return setenv("LISTEN_PID", pid, 1) | setenv("LISTEN_FDS", "1", 1) |
		setenv("LISTEN_FDNAMES", "web", 1);
}

static void activation(const char *sched)
{
	struct czt_worker w[CZT_MAX_WORKERS];
	struct czt_addr a;
	int port, fds[QUEUED];
	pid_t pids[ASKED];
	char script[512], line[128];
	int lfd = czt_hold_port("127.0.0.1", &port);

	cr_assert_geq(lfd, 0, "a listening socket: %s", strerror(-lfd));
	czt_addr_tcp(&a, "127.0.0.1", port);
	for (int i = 0; i < QUEUED; i++) {
		fds[i] = czt_connect(&a, 5000);
		cr_assert_geq(fds[i], 0, "connect %d before the launcher: %s", i,
			strerror(-fds[i]));
	}
	snprintf(script, sizeof(script), "echo \"listen=${LISTEN_PID-unset},${LISTEN_FDS-unset}\"; "
		"exec %s --style epoll-et --port %d", czt_server(), port);
	const char *argv[] = { czt_launcher(), "-w", "2", "-s", sched, "--", "/bin/sh", "-c",
		script, NULL };
	const char *env[] = { czt_asan_options(), NULL };
	struct czt_proc *p = czt_ops_spawn_hook(argv, env, activate, &lfd);

	cr_assert_eq(czt_wait_listening(p, 2, w, 20000), 2, "both workers listen");
	snprintf(line, sizeof(line), "clusterize: adopted 127.0.0.1:%d (fd 3) from the service "
		"manager", port);
	cr_expect_eq(czt_count(p, CZT_ERR, line), 1, "the log says '%s'", line);
	for (int i = 0; i < 2; i++) {
		cr_expect_eq(w[i].port, port, "worker %d listens on the adopted port", w[i].id);
	}
	for (int i = 0; i < QUEUED; i++) {
		pid_t pid = czt_read_pid(fds[i], 10000);

		close(fds[i]);
		cr_expect(pid == w[0].pid || pid == w[1].pid, "connection %d, queued before the "
			"launcher started, answered by a worker: %d (%s)", i, (int)pid,
			pid < 0 ? strerror(-pid) : czt_last_bad());
	}
	int answered = czt_ask_many(&a, ASKED, 4, pids, 20000);

	cr_expect_eq(answered, ASKED, "%d of %d connections answered", answered, ASKED);
	for (int i = 0; i < ASKED; i++) {
		cr_expect(pids[i] == w[0].pid || pids[i] == w[1].pid, "connection %d answered by a "
			"worker, got %d", i, (int)pids[i]);
	}
	cr_expect_eq(czt_wait_line(p, CZT_OUT, "listen=unset,unset", 2, 5000), 2,
		"the workers do not see LISTEN_PID or LISTEN_FDS");
	czt_stop(p);

	/* Our copy is the same socket: still listening, and it takes a connection. */
	int acc = 0;
	socklen_t len = sizeof(acc);

	cr_expect_eq(getsockopt(lfd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len), 0);
	cr_expect_eq(acc, 1, "the test's socket still listens after the launcher exits");
	int c = czt_connect(&a, 5000);

	cr_expect_geq(c, 0, "a connection after the launcher exits: %s", strerror(-c));
	fcntl(lfd, F_SETFL, O_NONBLOCK);	/* a failure, not a hang, if it is not there */
	int s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	cr_expect_geq(s, 0, "the test accepts it on its own socket: %s", strerror(errno));
	close(s);
	close(c);
	close(lfd);
}

Test(activation, adopted_socket_serves_rr)
{
	activation("rr");
}

Test(activation, adopted_socket_serves_none)
{
	activation("none");
}
