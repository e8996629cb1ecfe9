/*
 * What the shim leaves to the kernel: SO_REUSEPORT sockets the server asked
 * for itself (each worker has a listener of its own, the primary none), and
 * a client socket the server binds to choose its source address, then
 * connects (bound for real, from that very address).
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "czt.h"

#define CONNS 20

TestSuite(kernel, .init = czt_setup, .fini = czt_teardown, .timeout = 60);

Test(kernel, reuseport_sockets_are_the_workers_own)
{
	char port[16];
	int want = czt_free_port(AF_INET), ports[4];
	pid_t pids[CONNS];
	struct czt_addr a;

	snprintf(port, sizeof(port), "%d", want);
	const char *argv[] = { czt_launcher(), "-w", "2", "-s", "rr", "--", czt_server(),
		"--reuseport", "--port", port, NULL };
	struct czt_proc *p = czt_spawn(argv, (const char *[]){ czt_asan_options(), NULL });

	/* cz-server prints its port once it listens. */
	cr_assert_eq(czt_wait_line(p, CZT_OUT, "port ", 2, 20000), 2, "both workers listen");
	cr_assert_eq(czt_reported_ports(p, ports, 4), 2);
	cr_expect(ports[0] == want && ports[1] == want, "on port %d (%d, %d)", want, ports[0],
		ports[1]);
	cr_expect_eq(czt_tcp_listeners(want), 2, "two listening sockets on port %d, one per "
		"worker: the kernel's SO_REUSEPORT group, not one socket of the primary's", want);
	cr_expect_eq(czt_count(p, CZT_ERR, ") listening on "), 0,
		"the launcher does not know of them");
	czt_addr_tcp(&a, "127.0.0.1", want);
	cr_expect_eq(czt_ask_many(&a, CONNS, 4, pids, 20000), CONNS, "the workers serve (%s)",
		czt_last_bad());
	czt_stop(p);
}

/*
 * The worker binds a client socket to 127.0.0.1:FROM and connects to a
 * socket the test listens on: the connection comes from FROM, and the
 * primary keeps nothing bound there.
 */
Test(kernel, bind_then_connect_client_goes_out_from_its_address)
{
	int to, from = czt_free_port(AF_INET);
	int lfd = czt_hold_port("127.0.0.1", &to);
	char fromarg[16], toarg[16], line[64];
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };

	snprintf(fromarg, sizeof(fromarg), "%d", from);
	snprintf(toarg, sizeof(toarg), "%d", to);
	const char *argv[] = { czt_launcher(), "-w", "1", "--", czt_server(), "--connect-from",
		fromarg, "--connect-to", toarg, NULL };
	struct czt_proc *p = czt_spawn(argv, (const char *[]){ czt_asan_options(), NULL });

	cr_assert_eq(poll(&pfd, 1, czt_ms(20000)), 1, "the worker connects to port %d", to);
	int fd = accept(lfd, (struct sockaddr *)&peer, &plen);

	cr_assert_geq(fd, 0, "accept: %s", strerror(errno));
	cr_expect_eq(ntohs(peer.sin_port), from, "the connection comes from port %d (%d)", from,
		ntohs(peer.sin_port));
	pid_t pid = czt_read_pid(fd, 10000);

	cr_expect_gt(pid, 0, "the worker says who it is (%s)", czt_last_bad());
	close(fd);
	close(lfd);
	snprintf(line, sizeof(line), "connected from %d", from);
	cr_assert_eq(czt_wait_line(p, CZT_OUT, line, 1, 10000), 1);
	cr_assert_eq(czt_wait_line(p, CZT_ERR, ") listening on ", 1, 20000), 1,
		"then the worker listens as a server");
	cr_expect_eq(czt_tcp_listeners(from), 0, "nothing listens on port %d", from);
	cr_expect_eq(czt_count(p, CZT_ERR, ") listening on 127.0.0.1:" ), 1,
		"the launcher knows of the server's listener only");
	czt_stop(p);
}
