/*
 * cz-server: a small test server that answers every connection (or datagram)
 * with "<pid>\n" and closes it.  One binary covers every accept style the
 * shim must keep working, so each integration test picks its style by flag.
 *
 * The answer is "<pid> bad-peer\n", "<pid> bad-flags\n" or "<pid> bad-opts\n"
 * when the accepted socket is not what the app asked for (peer address,
 * O_NONBLOCK/FD_CLOEXEC from accept4's flags, options inherited from the
 * listener): the client side treats anything but "<pid>\n" as a failure.
 *
 * For the operations tests (reload, stop, restart, scale): --delay-ms,
 * --graceful and --log-accepts serve each connection in a thread of its own
 * (so requests are in flight while the launcher acts); --fail-if-id-gt and
 * --no-listen-if-id-gt make the workers of a rolling restart fail;
 * --usr1-exits, --ignore-term and --die-when-queued-id script how a worker
 * ends.  Otherwise SIGTERM makes it exit 0 (through exit(), so that a
 * coverage build writes its counters, the preloaded shim's included).
 *
 * For what the shim must leave to the kernel or follow: --reuseport,
 * --connect-from/--connect-to (a client binding its source address),
 * --closefrom, --close-instead (close() rather than shutdown() the
 * listener after --shutdown-after connections), --relisten (listen() again
 * after that shutdown()).  --syscalls makes every socket and fd call through
 * syscall(2), as libuv and Go-like runtimes do, with a dup dance on the
 * listener; --onto-shim-fd dup2()s over the shim's own fd first;
 * --opts-after-listen sets and reads options on the listener.
 *
 * For the keeper (a SIGKILLed launcher leaves nothing behind): --setuid
 * UID drops to UID (and gid UID) once listening; --orphans forks prefork
 * children without PR_SET_PDEATHSIG, as nginx does.
 *
 * For the open-connection counts: --hold keeps each connection (after the
 * pid) until the client closes it, --fclose-conns closes each through
 * fclose(fdopen()); --style forking accepts in the worker
 * and serves each connection in a child of its own, inetd-style.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fdpass.h"

#define RCVBUF_ASKED 150000
#define DEFER_SECONDS 30

enum style { BLOCKING, EPOLL_ET, EPOLL_LT, POLL, SELECT, THREADS, PREFORK, FORKING };

static const char *const style_names[] = {
	"blocking", "epoll-et", "epoll-lt", "poll", "select", "threads", "prefork",
	"forking",
};

static struct {
	enum style style;
	const char *addr;
	int port;
	const char *unix_path;
	bool udp;
	bool v6only;
	int shutdown_after;
	int shutdown_id;
	bool close_fds;
	bool sockopts;
	bool fd_games;
	bool fclose_first;
	int count;
	int family;
	int delay_ms;
	bool graceful;
	bool log_accepts;
	int fail_if_id_gt;
	int emfile_id;
	int no_listen_if_id_gt;
	int usr1_exits;
	bool ignore_term;
	int pass_bound; /* 0, or 1 with sendmsg, 2 with sendmmsg */
	bool close_instead;
	int die_when_queued_id;
	bool reuseport;
	int connect_from;
	int connect_to;
	bool closefrom;
	int setuid_to;  /* -1, or the uid (and gid) to drop to once listening */
	bool orphans;   /* prefork children without PR_SET_PDEATHSIG */
	bool hold;      /* keep each connection until the client closes it */
	bool fclose_conns; /* close connections with fclose(fdopen()) */
	bool fclose_instead; /* --shutdown-after: fclose(fdopen()) the listener */
	bool relisten;
	bool syscalls;
	bool onto_shim_fd;
	bool opts_after_listen;
} opt = {
	.addr = "127.0.0.1",
	.shutdown_id = -1,
	.count = 4,
	.fail_if_id_gt = -1,
	.no_listen_if_id_gt = -1,
	.usr1_exits = -1,
	.die_when_queued_id = -1,
	.setuid_to = -1,
};

static int served;

static void die(const char *what)
{
	fprintf(stderr, "%s: %s\n", what, strerror(errno));
	exit(1);
}

/* --- the socket calls: libc's, or syscall(2) with --syscalls ----------- */

#define X(call, ...) (opt.syscalls ? (int)syscall(SYS_##call, __VA_ARGS__) : call(__VA_ARGS__))

static int x_bind(int fd, const struct sockaddr *a, socklen_t len)
{
	return X(bind, fd, a, len);
}

static int x_listen(int fd, int backlog)
{
	return X(listen, fd, backlog);
}

static int x_setsockopt(int fd, int level, int name, const void *v, socklen_t len)
{
	return X(setsockopt, fd, level, name, v, len);
}

static int x_getsockopt(int fd, int level, int name, void *v, socklen_t *len)
{
	return X(getsockopt, fd, level, name, v, len);
}

static int x_getsockname(int fd, struct sockaddr *a, socklen_t *len)
{
	return X(getsockname, fd, a, len);
}

static int x_getpeername(int fd, struct sockaddr *a, socklen_t *len)
{
	return X(getpeername, fd, a, len);
}

static int x_accept4(int fd, struct sockaddr *a, socklen_t *len, int flags)
{
	return X(accept4, fd, a, len, flags);
}

static int x_accept(int fd, struct sockaddr *a, socklen_t *len)
{
	return X(accept, fd, a, len);
}

static int x_shutdown(int fd, int how)
{
	return X(shutdown, fd, how);
}

static int x_close(int fd)
{
	return X(close, fd);
}

static int x_fcntl(int fd, int cmd, long arg)
{
	return opt.syscalls ? (int)syscall(SYS_fcntl, fd, cmd, arg) : fcntl(fd, cmd, arg);
}

static void usage(void)
{
	fprintf(stderr, "usage: cz-server [--style blocking|epoll-et|epoll-lt|poll|select|"
		"threads|prefork|forking] [--count N] [--addr A] [--port P] [--unix PATH] [--udp]\n"
		"       [--v6only] [--shutdown-after N [--shutdown-id ID]] [--close-fds]\n"
		"       [--sockopts] [--fd-games] [--fclose-first] [--emfile-id ID] [--delay-ms N] [--graceful] [--log-accepts]\n"
		"       [--fail-if-id-gt N] [--no-listen-if-id-gt N] [--usr1-exits CODE]\n"
		"       [--ignore-term] [--pass-bound sendmsg|sendmmsg] [--close-instead]\n"
		"       [--die-when-queued-id ID] [--reuseport] [--closefrom]\n"
		"       [--connect-from PORT --connect-to PORT] [--setuid UID] [--orphans] [--hold]\n"
		"       [--fclose-conns] [--fclose-instead] [--relisten] [--syscalls]\n"
		"       [--onto-shim-fd] [--opts-after-listen]\n");
	exit(2);
}

static void parse_style(const char *s)
{
	for (size_t i = 0; i < sizeof(style_names) / sizeof(style_names[0]); i++) {
		if (strcmp(s, style_names[i]) == 0) {
			opt.style = (enum style)i;
			return;
		}
	}
	usage();
}

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "style", required_argument, NULL, 's' },
		{ "count", required_argument, NULL, 'n' },
		{ "addr", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "unix", required_argument, NULL, 'u' },
		{ "udp", no_argument, NULL, 'U' },
		{ "v6only", no_argument, NULL, '6' },
		{ "shutdown-after", required_argument, NULL, 'S' },
		{ "shutdown-id", required_argument, NULL, 'I' },
		{ "close-fds", no_argument, NULL, 'c' },
		{ "sockopts", no_argument, NULL, 'o' },
		{ "fd-games", no_argument, NULL, 'g' },
		{ "fclose-first", no_argument, NULL, 'C' },
		{ "emfile-id", required_argument, NULL, 'E' },
		{ "delay-ms", required_argument, NULL, 'd' },
		{ "graceful", no_argument, NULL, 'G' },
		{ "log-accepts", no_argument, NULL, 'L' },
		{ "fail-if-id-gt", required_argument, NULL, 'F' },
		{ "no-listen-if-id-gt", required_argument, NULL, 'N' },
		{ "usr1-exits", required_argument, NULL, 'X' },
		{ "ignore-term", no_argument, NULL, 'T' },
		{ "pass-bound", required_argument, NULL, 'P' },
		{ "close-instead", no_argument, NULL, 'K' },
		{ "die-when-queued-id", required_argument, NULL, 'D' },
		{ "reuseport", no_argument, NULL, 'R' },
		{ "connect-from", required_argument, NULL, 'f' },
		{ "connect-to", required_argument, NULL, 't' },
		{ "closefrom", no_argument, NULL, 'z' },
		{ "relisten", no_argument, NULL, 'r' },
		{ "syscalls", no_argument, NULL, 'y' },
		{ "onto-shim-fd", no_argument, NULL, 'j' },
		{ "opts-after-listen", no_argument, NULL, 'A' },
		{ "setuid", required_argument, NULL, 'Z' },
		{ "orphans", no_argument, NULL, 'O' },
		{ "hold", no_argument, NULL, 'H' },
		{ "fclose-conns", no_argument, NULL, 'Q' },
		{ "fclose-instead", no_argument, NULL, 'W' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's': parse_style(optarg); break;
		case 'n': opt.count = atoi(optarg); break;
		case 'a': opt.addr = optarg; break;
		case 'p': opt.port = atoi(optarg); break;
		case 'u': opt.unix_path = optarg; break;
		case 'U': opt.udp = true; break;
		case '6': opt.v6only = true; break;
		case 'S': opt.shutdown_after = atoi(optarg); break;
		case 'I': opt.shutdown_id = atoi(optarg); break;
		case 'c': opt.close_fds = true; break;
		case 'o': opt.sockopts = true; break;
		case 'g': opt.fd_games = true; break;
		case 'C': opt.fclose_first = true; break;
		case 'E': opt.emfile_id = atoi(optarg); break;
		case 'd': opt.delay_ms = atoi(optarg); break;
		case 'G': opt.graceful = true; break;
		case 'L': opt.log_accepts = true; break;
		case 'F': opt.fail_if_id_gt = atoi(optarg); break;
		case 'N': opt.no_listen_if_id_gt = atoi(optarg); break;
		case 'X': opt.usr1_exits = atoi(optarg); break;
		case 'T': opt.ignore_term = true; break;
		case 'P':
			opt.pass_bound = strcmp(optarg, "sendmsg") == 0 ? 1 :
				strcmp(optarg, "sendmmsg") == 0 ? 2 : -1;
			break;
		case 'K': opt.close_instead = true; break;
		case 'D': opt.die_when_queued_id = atoi(optarg); break;
		case 'R': opt.reuseport = true; break;
		case 'f': opt.connect_from = atoi(optarg); break;
		case 't': opt.connect_to = atoi(optarg); break;
		case 'z': opt.closefrom = true; break;
		case 'r': opt.relisten = true; break;
		case 'y': opt.syscalls = true; break;
		case 'j': opt.onto_shim_fd = true; break;
		case 'A': opt.opts_after_listen = true; break;
		case 'Z': opt.setuid_to = atoi(optarg); break;
		case 'O': opt.orphans = true; break;
		case 'H': opt.hold = true; break;
		case 'Q': opt.fclose_conns = true; break;
		case 'W': opt.fclose_instead = true; break;
		default: usage();
		}
	}
	if (optind != argc || opt.count < 1 || opt.count > 64 || opt.delay_ms < 0 ||
		opt.usr1_exits > 255 || opt.pass_bound < 0 ||
		(opt.connect_from > 0) != (opt.connect_to > 0)) {
		usage();
	}
}

/* Fills ss from --unix or --addr/--port; returns its length. */
static socklen_t make_addr(struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (opt.unix_path != NULL) {
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;

		sun->sun_family = AF_UNIX;
		snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", opt.unix_path);
		opt.family = AF_UNIX;
		return sizeof(*sun);
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	if (inet_pton(AF_INET, opt.addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)opt.port);
		opt.family = AF_INET;
		return sizeof(*sin);
	}
	if (inet_pton(AF_INET6, opt.addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)opt.port);
		opt.family = AF_INET6;
		return sizeof(*sin6);
	}
	fprintf(stderr, "cz-server: bad address '%s'\n", opt.addr);
	exit(2);
}

static void set_int(int fd, int level, int name, int value, const char *what)
{
	if (x_setsockopt(fd, level, name, &value, sizeof(value)) < 0) {
		die(what);
	}
}

static int get_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (x_getsockopt(fd, level, name, &v, &len) < 0) {
		return -1;
	}
	return v;
}

static void apply_sockopts(int fd)
{
	set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt SO_REUSEADDR");
	set_int(fd, SOL_SOCKET, SO_RCVBUF, RCVBUF_ASKED, "setsockopt SO_RCVBUF");
	set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "setsockopt SO_KEEPALIVE");
	if (opt.family != AF_UNIX) {
		set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1, "setsockopt TCP_NODELAY");
		set_int(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, DEFER_SECONDS,
			"setsockopt TCP_DEFER_ACCEPT");
	}
}

static void print_sockopts(int fd)
{
	printf("sockopt acceptconn=%d type=%d domain=%d protocol=%d reuseaddr=%d keepalive=%d\n",
		get_int(fd, SOL_SOCKET, SO_ACCEPTCONN), get_int(fd, SOL_SOCKET, SO_TYPE),
		get_int(fd, SOL_SOCKET, SO_DOMAIN), get_int(fd, SOL_SOCKET, SO_PROTOCOL),
		get_int(fd, SOL_SOCKET, SO_REUSEADDR), get_int(fd, SOL_SOCKET, SO_KEEPALIVE));
}

static void print_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (opt.family == AF_UNIX) {
		printf("unix %s\n", opt.unix_path);
		return;
	}
	if (x_getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		die("getsockname");
	}
	if (ss.ss_family == AF_INET) {
		printf("port %d\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
	} else {
		printf("port %d\n", ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
	}
}

/*
 * Moves a bound socket through the fd juggling libuv and friends do:
 * F_DUPFD_CLOEXEC, syscall(SYS_close), dup2 onto a reused number, dup3.
 * If the shim loses track on the way, the final fd is not the bound socket.
 */
static int fd_games(int fd)
{
	int a = fcntl(fd, F_DUPFD_CLOEXEC, 64);

	if (a < 0 || syscall(SYS_close, fd) < 0) {
		die("fd-games F_DUPFD_CLOEXEC/SYS_close");
	}
	int reused = socket(AF_INET, SOCK_STREAM, 0);	/* likely takes fd's number */

	if (reused < 0 || dup2(a, reused) != reused || syscall(SYS_close, a) < 0) {
		die("fd-games dup2");
	}
	int b = dup3(reused, reused + 40, O_CLOEXEC);

	if (b < 0 || close(reused) < 0) {
		die("fd-games dup3");
	}
	return b;
}

/*
 * Binds a first socket (port 0) and closes it with fclose(fdopen()), which
 * closes through libc's internal close where no wrapper sees it.  The real
 * listener, made next, most likely gets the same fd number.
 */
static void bind_and_fclose(void)
{
	struct sockaddr_storage ss;
	socklen_t len = make_addr(&ss);
	int fd = socket(opt.family, SOCK_STREAM, 0);
	FILE *f;

	((struct sockaddr_in *)&ss)->sin_port = 0; /* same offset in v6 */
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0) {
		die("fclose-first: bind");
	}
	f = fdopen(fd, "r");
	if (f == NULL || fclose(f) != 0) {
		die("fclose-first: fclose");
	}
}

/* fork(); the child dies with this process (prefork, --pass-bound). */
static pid_t fork_child(void)
{
	pid_t parent = getpid(), pid = fork();

	if (pid < 0) {
		die("fork");
	}
	if (pid == 0) {
		sigset_t term;

		if (!opt.orphans) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
		}
		if (getppid() != parent) {
			_exit(1);
		}
		/* The thread that waited for SIGTERM did not come along. */
		sigemptyset(&term);
		sigaddset(&term, SIGTERM);
		pthread_sigmask(SIG_UNBLOCK, &term, NULL);
	}
	return pid;
}

/*
 * --pass-bound: like Node's cluster with SCHED_NONE, this process binds,
 * then hands the socket, not yet listening, to a child it forks, which
 * listens and serves.  Returns the socket in the child; the parent waits.
 */
static int pass_bound(int fd)
{
	pid_t pid;
	int sv[2], status;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		die("pass-bound: socketpair");
	}
	pid = fork_child();
	if (pid == 0) {
		close(sv[0]);
		close(fd);
		fd = fdpass_recv(sv[1], 0);
		if (fd < 0) {
			die("pass-bound: recvmsg");
		}
		close(sv[1]);
		return fd;
	}
	close(sv[1]);
	if (fdpass_send(sv[0], fd, opt.pass_bound == 2) < 0) {
		die(opt.pass_bound == 2 ? "pass-bound: sendmmsg" :
			"pass-bound: sendmsg");
	}
	close(fd);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			die("waitpid");
		}
	}
	fprintf(stderr, "cz-server: child %d died\n", (int)pid);
	exit(1);
}

/*
 * --syscalls: the listener goes through F_DUPFD_CLOEXEC, dup, dup3, dup2
 * and F_SETFD, each by syscall(2), the old numbers closed by syscall too.
 */
static int syscall_games(int fd)
{
	int a = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 64);
	int b, c, d;

	if (a < 0 || syscall(SYS_close, fd) < 0) {
		die("syscalls: F_DUPFD_CLOEXEC");
	}
	b = (int)syscall(SYS_dup, a);
	if (b < 0 || syscall(SYS_close, a) < 0) {
		die("syscalls: dup");
	}
	c = (int)syscall(SYS_dup3, b, b + 7, O_CLOEXEC);
	if (c < 0 || syscall(SYS_close, b) < 0) {
		die("syscalls: dup3");
	}
	d = (int)syscall(SYS_dup2, c, c + 1);
	if (d < 0 || syscall(SYS_close, c) < 0 || syscall(SYS_fcntl, d, F_SETFD, FD_CLOEXEC) < 0) {
		die("syscalls: dup2");
	}
	/* A range with nothing open but the number next to the listener. */
	if (syscall(SYS_close_range, d + 1, d + 1, 0) < 0) {
		die("syscalls: close_range");
	}
	return d;
}

/* --opts-after-listen: options set on the listener now read back as set. */
static void opts_after_listen(int fd)
{
	struct linger lg;
	socklen_t len = sizeof(lg);

	set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "setsockopt SO_KEEPALIVE");
	set_int(fd, SOL_SOCKET, SO_RCVBUF, RCVBUF_ASKED, "setsockopt SO_RCVBUF");
	if (opt.family != AF_UNIX) {
		set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1, "setsockopt TCP_NODELAY");
	}
	printf("after-listen acceptconn=%d keepalive=%d nodelay=%d rcvbuf-ok=%d linger=%d\n",
		get_int(fd, SOL_SOCKET, SO_ACCEPTCONN), get_int(fd, SOL_SOCKET, SO_KEEPALIVE),
		opt.family != AF_UNIX ? get_int(fd, IPPROTO_TCP, TCP_NODELAY) : 1,
		get_int(fd, SOL_SOCKET, SO_RCVBUF) >= RCVBUF_ASKED,
		x_getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &len) == 0 ? lg.l_onoff : -1);
}

/*
 * --onto-shim-fd: dup2() /dev/null over the fd the shim keeps its attach
 * socket at, then close it: the shim must move its socket out of the way.
 */
static void onto_shim_fd(void)
{
	const char *no = getenv("CLUSTERIZE_CONTROL_FD");
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int target = no != NULL ? atoi(no) : -1;

	if (null < 0 || target < 3) {
		die("onto-shim-fd: no CLUSTERIZE_CONTROL_FD");
	}
	if (dup2(null, target) != target || close(target) < 0 || close(null) < 0) {
		die("onto-shim-fd: dup2");
	}
	printf("dup2 onto %d\n", target);
}

static int make_listener(void)
{
	struct sockaddr_storage ss;
	socklen_t len = make_addr(&ss);
	int fd;

	if (opt.fclose_first) {
		bind_and_fclose();
	}
	fd = socket(opt.family, opt.udp ? SOCK_DGRAM : SOCK_STREAM, 0);
	if (fd < 0) {
		die("socket");
	}
	if (opt.v6only) {
		set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1, "setsockopt IPV6_V6ONLY");
	}
	if (opt.sockopts) {
		apply_sockopts(fd);
	}
	if (opt.reuseport) {
		set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1, "setsockopt SO_REUSEPORT");
	}
	if (x_bind(fd, (struct sockaddr *)&ss, len) < 0) {
		die("bind");
	}
	if (opt.pass_bound) {
		fd = pass_bound(fd);
	}
	if (opt.fd_games) {
		fd = fd_games(fd);
	}
	if (opt.syscalls) {
		fd = syscall_games(fd);
	}
	if (!opt.udp && x_listen(fd, 511) < 0) {
		die("listen");
	}
	if (opt.opts_after_listen) {
		opts_after_listen(fd);
	}
	print_port(fd);
	if (opt.sockopts) {
		print_sockopts(fd);
	}
	return fd;
}

static void set_nonblock(int fd)
{
	int fl = x_fcntl(fd, F_GETFL, 0);

	if (fl < 0 || x_fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		die("fcntl O_NONBLOCK");
	}
}

static bool same_inet_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family) {
		return false;
	}
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

	return x->sin6_port == y->sin6_port &&
		memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

/* What is wrong with the accepted socket, or NULL. */
static const char *check_conn(int fd, int flags, const struct sockaddr_storage *peer,
	socklen_t peerlen)
{
	bool nonblock = (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
	bool cloexec = (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;

	if (nonblock != ((flags & SOCK_NONBLOCK) != 0) || cloexec != ((flags & SOCK_CLOEXEC) != 0)) {
		return "bad-flags";
	}
	if (peer->ss_family != opt.family || peerlen < sizeof(sa_family_t)) {
		return "bad-peer";
	}
	if (opt.family != AF_UNIX) {
		struct sockaddr_storage real;
		socklen_t len = sizeof(real);

		if (x_getpeername(fd, (struct sockaddr *)&real, &len) < 0 || len != peerlen ||
			!same_inet_addr(&real, peer)) {
			return "bad-peer";
		}
	}
	if (opt.sockopts && (get_int(fd, SOL_SOCKET, SO_KEEPALIVE) != 1 ||
		get_int(fd, SOL_SOCKET, SO_RCVBUF) < RCVBUF_ASKED ||
		(opt.family != AF_UNIX && get_int(fd, IPPROTO_TCP, TCP_NODELAY) != 1))) {
		return "bad-opts";
	}
	return NULL;
}

/*
 * Reads what the client already sent (TCP_DEFER_ACCEPT clients send a byte),
 * so that close() sends a FIN rather than a RST.  Never waits for the client:
 * a test may hold many connections open and read them in any order.
 */
static void drain(int fd)
{
	char buf[256];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
	}
}

/* --fclose-conns: through stdio, as inetd-style servers do (libc's own close). */
static void close_conn(int fd)
{
	FILE *f = opt.fclose_conns ? fdopen(fd, "r+") : NULL;

	if (f != NULL) {
		fclose(f);
	} else {
		x_close(fd);
	}
}

/* --hold: keeps the connection until the client closes it. */
static void hold(int fd)
{
	char buf[256];

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, -1) < 0 && errno != EINTR) {
			return;
		}
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			return;
		}
	}
}

static void serve(int fd, int flags, const struct sockaddr_storage *peer, socklen_t peerlen)
{
	const char *bad = check_conn(fd, flags, peer, peerlen);
	char msg[64];
	int n;

	if (bad != NULL) {
		n = snprintf(msg, sizeof(msg), "%d %s\n", (int)getpid(), bad);
	} else {
		n = snprintf(msg, sizeof(msg), "%d\n", (int)getpid());
	}
	if (send(fd, msg, (size_t)n, MSG_NOSIGNAL) == n) {
		if (opt.hold) {
			hold(fd);
		} else {
			drain(fd);
			x_shutdown(fd, SHUT_WR);
		}
	}
	close_conn(fd);
}

static bool shutdown_due(void)
{
	const char *id = getenv("CLUSTERIZE_WORKER_ID");

	if (opt.shutdown_after <= 0 || served < opt.shutdown_after) {
		return false;
	}
	return opt.shutdown_id < 0 || (id != NULL && atoi(id) == opt.shutdown_id);
}

/*
 * --shutdown-after: stop accepting for good, but stay alive.  The line is
 * printed once shutdown() (or close()) has returned.
 */
static void maybe_shutdown(int lfd)
{
	if (!shutdown_due()) {
		return;
	}
	if (opt.fclose_instead) {
		FILE *f = fdopen(lfd, "r");

		if (f == NULL || fclose(f) != 0) {
			printf("fclose-error %s\n", strerror(errno));
		}
		printf("fclosed %d\n", (int)getpid());
	} else if (opt.close_instead) {
		if (close(lfd) < 0) {
			printf("close-error %s\n", strerror(errno));
		}
		printf("closed %d\n", (int)getpid());
	} else {
		if (shutdown(lfd, SHUT_RDWR) < 0) {
			printf("shutdown-error %s\n", strerror(errno));
		}
		printf("shutdown %d\n", (int)getpid());
	}
	if (opt.relisten && !opt.close_instead) {
		/* Listening again: the same socket serves again. */
		if (listen(lfd, 511) < 0) {
			die("relisten");
		}
		opt.shutdown_after = 0;
		printf("relistened %d\n", (int)getpid());
		return;
	}
	for (;;) {
		pause();
	}
}

/* Accepts one connection and serves it; returns -errno if accept failed. */
static int accept_one(int lfd, int flags, bool use_accept4)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	int fd;

	memset(&peer, 0, sizeof(peer));
	if (use_accept4) {
		fd = x_accept4(lfd, (struct sockaddr *)&peer, &len, flags);
	} else {
		fd = x_accept(lfd, (struct sockaddr *)&peer, &len);
	}
	if (fd < 0) {
		return -errno;
	}
	serve(fd, flags, &peer, len);
	served++;
	maybe_shutdown(lfd);
	return 0;
}

static void accept_error(int err)
{
	if (err >= 0 || err == -EAGAIN || err == -EINTR || err == -ECONNABORTED) {
		return;
	}
	if (err == -EMFILE && opt.emfile_id > 0) {
		/* Like a server that stops accepting while it is out of fds. */
		printf("emfile %d\n", (int)getpid());
		for (;;) {
			pause();
		}
	}
	errno = -err;
	die("accept");
}

static void run_blocking(int lfd)
{
	for (;;) {
		int r = accept_one(lfd, 0, false);

		if (r < 0) {
			accept_error(r);
		}
	}
}

static void run_epoll(int lfd, bool edge)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN | (edge ? EPOLLET : 0), .data.fd = lfd };

	set_nonblock(lfd);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
		die("epoll");
	}
	for (;;) {
		int n = epoll_wait(ep, &ev, 1, -1);

		if (n < 0 && errno != EINTR) {
			die("epoll_wait");
		}
		if (n <= 0) {
			continue;
		}
		if (!edge) {
			/* Level-triggered: one accept per wake-up, the rest wakes us again. */
			accept_error(accept_one(lfd, SOCK_CLOEXEC, true));
			continue;
		}
		int r;

		while ((r = accept_one(lfd, SOCK_NONBLOCK | SOCK_CLOEXEC, true)) == 0) {
		}
		accept_error(r);
	}
}

static void run_poll(int lfd)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	set_nonblock(lfd);
	for (;;) {
		int n = poll(&p, 1, -1);

		if (n < 0 && errno != EINTR) {
			die("poll");
		}
		if (n > 0) {
			accept_error(accept_one(lfd, 0, false));
		}
	}
}

static void run_select(int lfd)
{
	if (lfd >= FD_SETSIZE) {
		fprintf(stderr, "cz-server: fd %d too large for select\n", lfd);
		exit(1);
	}
	set_nonblock(lfd);
	for (;;) {
		fd_set rd;

		FD_ZERO(&rd);
		FD_SET(lfd, &rd);
		int n = select(lfd + 1, &rd, NULL, NULL, NULL);

		if (n < 0 && errno != EINTR) {
			die("select");
		}
		if (n > 0 && FD_ISSET(lfd, &rd)) {
			accept_error(accept_one(lfd, SOCK_NONBLOCK, true));
		}
	}
}

static void *thread_main(void *arg)
{
	int lfd = *(int *)arg;

	for (;;) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);

		if (fd < 0) {
			accept_error(-errno);
			continue;
		}
		serve(fd, SOCK_CLOEXEC, &peer, len);
	}
	return NULL;
}

static void run_threads(int lfd)
{
	static int fd;
	pthread_t t;

	fd = lfd;
	for (int i = 0; i < opt.count; i++) {
		int err = pthread_create(&t, NULL, thread_main, &fd);

		if (err != 0) {
			errno = err;
			die("pthread_create");
		}
	}
	for (;;) {
		pause();
	}
}

static void run_prefork(int lfd)
{
	for (int i = 0; i < opt.count; i++) {
		/* Children must not outlive the worker that forked them. */
		if (fork_child() == 0) {
			run_blocking(lfd);
		}
	}
	for (;;) {
		int status;
		pid_t pid = wait(&status);

		if (pid < 0 && errno != EINTR) {
			die("wait");
		}
		if (pid > 0) {
			fprintf(stderr, "cz-server: child %d died\n", (int)pid);
			exit(1);
		}
	}
}

/* One child per connection, as inetd-style servers do: the parent closes
 * its copy at once, the child serves it. */
static void run_forking(int lfd)
{
	signal(SIGCHLD, SIG_IGN); /* children reap themselves */
	for (;;) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd = accept(lfd, (struct sockaddr *)&peer, &len);

		if (fd < 0) {
			accept_error(-errno);
			continue;
		}
		if (fork_child() == 0) {
			close(lfd);
			serve(fd, 0, &peer, len);
			_exit(0);
		}
		close(fd);
	}
}

static void run_udp(int fd)
{
	for (;;) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		char buf[512], msg[32];
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &len);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			die("recvfrom");
		}
		int m = snprintf(msg, sizeof(msg), "%d\n", (int)getpid());

		sendto(fd, msg, (size_t)m, 0, (struct sockaddr *)&peer, len);
	}
}

/* --- one thread per connection: --delay-ms, --graceful, --log-accepts --- */

static volatile sig_atomic_t term_seen;
static pthread_mutex_t inflight_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t inflight_cv = PTHREAD_COND_INITIALIZER;
static int inflight;

struct conn {
	int fd;
	socklen_t len;
	struct sockaddr_storage peer;
};

static void on_term(int sig)
{
	(void)sig;
	term_seen = 1;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct timespec ts = { opt.delay_ms / 1000, (long)(opt.delay_ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
	serve(c->fd, SOCK_CLOEXEC, &c->peer, c->len);
	free(c);
	pthread_mutex_lock(&inflight_mu);
	inflight--;
	pthread_cond_signal(&inflight_cv);
	pthread_mutex_unlock(&inflight_mu);
	return NULL;
}

/* Accepts one connection (if one is still there) and starts its thread. */
static void accept_threaded(int lfd)
{
	struct conn *c = calloc(1, sizeof(*c));
	pthread_attr_t attr;
	pthread_t t;

	if (c == NULL) {
		die("calloc");
	}
	c->len = sizeof(c->peer);
	c->fd = accept4(lfd, (struct sockaddr *)&c->peer, &c->len, SOCK_CLOEXEC);
	if (c->fd < 0) {
		free(c);
		accept_error(-errno);
		return;
	}
	if (opt.log_accepts) {
		printf("accepted %d\n", (int)getpid());
	}
	pthread_mutex_lock(&inflight_mu);
	inflight++;
	pthread_mutex_unlock(&inflight_mu);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int err = pthread_create(&t, &attr, conn_main, c);

	pthread_attr_destroy(&attr);
	if (err != 0) {
		errno = err;
		die("pthread_create");
	}
}

/*
 * SIGTERM is blocked everywhere but inside ppoll, so a stop can never slip
 * in between checking the flag and waiting.  --graceful: on SIGTERM, close
 * the listener at once, finish every connection already accepted, exit 0.
 */
static void run_threaded(int lfd)
{
	sigset_t waitmask;

	/* ppoll waits with the mask we started with: SIGTERM let in. */
	pthread_sigmask(SIG_SETMASK, NULL, &waitmask);
	if (opt.graceful) {
		struct sigaction sa = { .sa_handler = on_term };
		sigset_t term;

		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGTERM, &sa, NULL) < 0) {
			die("sigaction SIGTERM");
		}
		sigemptyset(&term);
		sigaddset(&term, SIGTERM);
		pthread_sigmask(SIG_BLOCK, &term, NULL);
	}
	set_nonblock(lfd);
	while (!term_seen) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		int n = ppoll(&p, 1, NULL, &waitmask);

		if (n < 0 && errno != EINTR) {
			die("ppoll");
		}
		if (n > 0 && !term_seen) {
			accept_threaded(lfd);
		}
	}
	close(lfd);
	pthread_mutex_lock(&inflight_mu);
	while (inflight > 0) {
		pthread_cond_wait(&inflight_cv, &inflight_mu);
	}
	pthread_mutex_unlock(&inflight_mu);
	printf("graceful exit %d\n", (int)getpid());
	exit(0);
}

/* --- how the worker starts and ends ------------------------------------ */

static int worker_id(void)
{
	const char *id = getenv("CLUSTERIZE_WORKER_ID");

	return id != NULL ? atoi(id) : 0;
}

static void *term_main(void *arg)
{
	sigset_t *term = arg;
	int sig;

	while (sigwait(term, &sig) != 0) {
	}
	exit(0);
}

/*
 * SIGTERM: exit(0), from a thread of its own that waits for it (every
 * other thread keeps it blocked), so that atexit handlers and the shim's
 * destructors run outside a signal handler.  Children forked later unblock
 * it again (fork_child).
 */
static void exit_on_term(void)
{
	static sigset_t term;
	pthread_t t;
	int err;

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, NULL);
	err = pthread_create(&t, NULL, term_main, &term);
	if (err != 0) {
		errno = err;
		die("pthread_create");
	}
}

/*
 * --die-when-queued-id ID: worker ID waits until a connection is queued
 * for it (its listener is readable), then kills itself without taking it:
 * the primary must give that connection to another worker.
 */
static void die_when_queued(int lfd)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	if (worker_id() != opt.die_when_queued_id) {
		return;
	}
	while (poll(&p, 1, -1) < 0) {
		if (errno != EINTR) {
			die("poll");
		}
	}
	printf("dying %d\n", (int)getpid());
	raise(SIGKILL);
}

/*
 * --connect-from P --connect-to Q: a client that binds its source address
 * (127.0.0.1:P) before connecting to 127.0.0.1:Q, which the shim must
 * leave to the kernel; says "<pid>\n" and closes.
 */
static void connect_out(void)
{
	struct sockaddr_in from = { .sin_family = AF_INET, .sin_port = htons(opt.connect_from) };
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(opt.connect_to) };
	char msg[32];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), n;

	from.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&from, sizeof(from)) < 0) {
		die("connect-from: bind");
	}
	if (connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0) {
		die("connect-to: connect");
	}
	n = snprintf(msg, sizeof(msg), "%d\n", (int)getpid());
	if (write(fd, msg, (size_t)n) != n) {
		die("connect-to: write");
	}
	close(fd);
	printf("connected from %d\n", opt.connect_from);
}

static void on_usr1(int sig)
{
	(void)sig;
	_exit(opt.usr1_exits);
}

static void start_rules(void)
{
	int id = worker_id();

	if (opt.ignore_term) {
		signal(SIGTERM, SIG_IGN);
	}
	if (opt.usr1_exits >= 0) {
		signal(SIGUSR1, on_usr1);
	}
	if (opt.fail_if_id_gt >= 0 && id > opt.fail_if_id_gt) {
		fprintf(stderr, "cz-server: worker %d fails at start (--fail-if-id-gt %d)\n", id,
			opt.fail_if_id_gt);
		exit(1);
	}
	if (opt.no_listen_if_id_gt >= 0 && id > opt.no_listen_if_id_gt) {
		printf("not listening %d\n", (int)getpid());
		for (;;) {
			pause();
		}
	}
}

/*
 * --emfile-id ID: worker ID runs at its open-files limit, so it cannot
 * receive a connection: the lowest free fd number becomes the limit.
 */
static void exhaust_fds(void)
{
	struct rlimit rl;
	int lowest = dup(0);

	if (lowest < 0 || close(lowest) < 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		die("emfile-id");
	}
	rl.rlim_cur = (rlim_t)lowest;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		die("emfile-id setrlimit");
	}
	printf("fds exhausted %d\n", (int)getpid());
}

/*
 * --setuid: like servers that start as root and drop privileges once
 * listening (nginx's and Apache's children, mini_httpd); the kernel then
 * clears the PR_SET_PDEATHSIG the launcher gave this process.
 */
static void drop_privileges(uid_t uid)
{
	if (setgroups(0, NULL) < 0 || setgid((gid_t)uid) < 0 || setuid(uid) < 0) {
		die("setuid");
	}
	printf("dropped to uid %u\n", (unsigned)getuid());
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	parse_args(argc, argv);
	if (!opt.graceful && !opt.ignore_term) {
		exit_on_term();
	}
	start_rules();
	/* Like daemons that close every inherited fd: the shim's own must survive. */
	if (opt.close_fds && close_range(3, ~0U, 0) < 0) {
		die("close_range");
	}
	if (opt.closefrom) {
		closefrom(3);
	}
	if (opt.connect_from > 0) {
		connect_out();
	}
	if (opt.onto_shim_fd) {
		onto_shim_fd();
	}
	int lfd = make_listener();

	if (opt.die_when_queued_id >= 0) {
		die_when_queued(lfd);
	}

	if (opt.setuid_to >= 0) {
		drop_privileges((uid_t)opt.setuid_to);
	}
	if (opt.emfile_id > 0 && worker_id() == opt.emfile_id) {
		exhaust_fds();
	}
	if (opt.udp) {
		run_udp(lfd);
	}
	if (opt.delay_ms > 0 || opt.graceful || opt.log_accepts) {
		run_threaded(lfd);
	}
	switch (opt.style) {
	case BLOCKING: run_blocking(lfd); break;
	case EPOLL_ET: run_epoll(lfd, true); break;
	case EPOLL_LT: run_epoll(lfd, false); break;
	case POLL: run_poll(lfd); break;
	case SELECT: run_select(lfd); break;
	case THREADS: run_threads(lfd); break;
	case PREFORK: run_prefork(lfd); break;
	case FORKING: run_forking(lfd); break;
	}
	return 0;
}
