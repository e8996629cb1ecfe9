/*
 * The control: attach sockets, the connections processes attach through
 * them, and what those connections acquired.  The test plays the worker's
 * processes with socketpairs and runs the loop without blocking.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "control.h"
#include "proto.h"

static uv_loop_t loop;
static struct cz_control *c;
static uint32_t hello_worker;
static int hellos;

static void on_hello(void *data, uint32_t worker_id, int pid, uint32_t flags,
	const char *exe)
{
	(void)data;
	(void)pid;
	(void)flags;
	(void)exe;
	hello_worker = worker_id;
	hellos++;
}

static void setup(void)
{
	static const struct cz_control_events ev = { .hello = on_hello };

	hellos = 0;
	hello_worker = 0;
	cr_assert_eq(uv_loop_init(&loop), 0);
	cr_assert_eq(cz_control_create(&loop, CZ_MODE_RR, &ev, &c), 0);
}

static void teardown(void)
{
	cz_control_destroy(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&loop), 0, "every handle closed");
}

TestSuite(control, .init = setup, .fini = teardown, .timeout = 20);

static void spin(void)
{
	for (int i = 0; i < 5; i++) {
		uv_run(&loop, UV_RUN_NOWAIT);
	}
}

/* Sends `len` bytes on `s` with `fd` attached unless < 0. */
static void send_fd(int s, const void *buf, size_t len, int fd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *cm;

		mh.msg_control = u.b;
		mh.msg_controllen = sizeof(u.b);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	cr_assert_eq(sendmsg(s, &mh, MSG_NOSIGNAL), (ssize_t)len);
}

/* A process's control connection, attached through `root`. */
static int attach(int root)
{
	struct cz_msg_attach a;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	cz_proto_init(&a.hdr, CZ_MSG_ATTACH, 0);
	send_fd(root, &a, sizeof(a), sv[1]);
	close(sv[1]);
	return sv[0];
}

/* Sends `req` on `conn` and returns the reply's err, or -ETIMEDOUT/-ECONNRESET. */
static int request(int conn, struct cz_msg_hdr *req, struct cz_msg_reply *rep)
{
	static uint32_t seq;
	union {
		struct cz_msg_reply r;
		char b[CZ_MSG_MAX];
	} in;
	char cb[CMSG_SPACE(sizeof(int) * 4)];
	struct iovec iov = { in.b, sizeof(in.b) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cb, .msg_controllen = sizeof(cb),
	};

	req->seq = ++seq;
	if (send(conn, req, req->len, MSG_NOSIGNAL) < 0) {
		return -errno;
	}
	for (int i = 0; i < 50; i++) {
		struct pollfd p = { .fd = conn, .events = POLLIN };
		ssize_t n;

		uv_run(&loop, UV_RUN_NOWAIT);
		if (poll(&p, 1, 1) != 1) {
			continue;
		}
		n = recvmsg(conn, &mh, MSG_CMSG_CLOEXEC);
		if (n <= 0) {
			return -ECONNRESET;
		}
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL;
		     cm = CMSG_NXTHDR(&mh, cm)) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm), sizeof(int));
			close(fd);
		}
		cr_assert_eq(cz_proto_check(in.b, (size_t)n), CZ_MSG_REPLY);
		cr_assert_eq(in.r.hdr.seq, req->seq);
		if (rep != NULL) {
			*rep = in.r;
		}
		return in.r.err;
	}
	return -ETIMEDOUT;
}

static int hello(int conn)
{
	struct cz_msg_hello h;

	memset(&h, 0, sizeof(h));
	cz_proto_init(&h.hdr, CZ_MSG_HELLO, 0);
	h.pid = getpid();
	return request(conn, &h.hdr, NULL);
}

/* BIND 127.0.0.1:0 (stream), then LISTEN; returns the key. */
static uint32_t bind_listen(int conn)
{
	struct cz_msg_bind b;
	struct cz_msg_listen l;
	struct cz_msg_reply r;
	struct sockaddr_in *in = (void *)&b.addr.ss;

	memset(&b, 0, sizeof(b));
	cz_proto_init(&b.hdr, CZ_MSG_BIND, 0);
	b.family = AF_INET;
	b.type = SOCK_STREAM;
	b.addr.len = sizeof(*in);
	in->sin_family = AF_INET;
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memset(&b.opts, 0xff, sizeof(b.opts));
	cr_assert_eq(request(conn, &b.hdr, &r), 0);
	memset(&l, 0, sizeof(l));
	cz_proto_init(&l.hdr, CZ_MSG_LISTEN, 0);
	l.key = r.key;
	l.backlog = 16;
	memset(&l.opts, 0xff, sizeof(l.opts));
	cr_assert_eq(request(conn, &l.hdr, &r), 0);
	return r.key;
}

Test(control, a_connection_speaks_for_the_worker_whose_socket_brought_it)
{
	int root, conn;

	cr_assert_eq(cz_control_worker_open(c, 7, &root), 0);
	conn = attach(root);
	cr_assert_eq(hello(conn), 0);
	cr_assert_eq(hellos, 1);
	cr_assert_eq(hello_worker, 7, "worker 7, whatever the process says");
	cr_assert_eq(hello(conn), -ECONNRESET, "a second HELLO is a protocol error");
	close(conn);
	close(root);
}

Test(control, what_is_not_an_attach_is_dropped)
{
	int root, conn, p[2];
	struct cz_msg_attach a;

	cr_assert_eq(cz_control_worker_open(c, 1, &root), 0);
	cz_proto_init(&a.hdr, CZ_MSG_ATTACH, 0);
	send_fd(root, &a, sizeof(a), -1);             /* no fd */
	cr_assert_eq(pipe(p), 0);
	send_fd(root, &a, sizeof(a), p[0]);           /* not a socket */
	send_fd(root, "junk", 4, p[1]);               /* not an ATTACH */
	send_fd(root, "", 0, -1);                     /* empty: not the end */
	close(p[0]);
	close(p[1]);
	spin();
	conn = attach(root);
	cr_assert_eq(hello(conn), 0, "the attach socket still works");
	close(conn);
	close(root);
}

/* A closed connection gives back what it acquired. */
Test(control, what_a_connection_acquired_goes_with_it)
{
	int root, conn, other;

	cr_assert_eq(cz_control_worker_open(c, 1, &root), 0);
	conn = attach(root);
	other = attach(root);
	cr_assert_eq(hello(conn), 0);
	cr_assert_eq(hello(other), 0);
	bind_listen(conn);
	cr_assert_eq(cz_control_listen_count(c, 1), 1);
	close(conn);
	spin();
	cr_assert_eq(cz_control_listen_count(c, 1), 0, "its listen went with it");
	cr_assert_eq(hello(other), -ECONNRESET, "(a second HELLO: the other one lives)");
	close(root);
}

Test(control, a_worker_has_at_most_max_conns_connections)
{
	int root, conns[CZ_MAX_CONNS + 1];

	cr_assert_eq(cz_control_worker_open(c, 1, &root), 0);
	for (int i = 0; i <= CZ_MAX_CONNS; i++) {
		conns[i] = attach(root);
		spin();
	}
	for (int i = 0; i < CZ_MAX_CONNS; i++) {
		cr_assert_eq(hello(conns[i]), 0, "connection %d", i);
	}
	int r = hello(conns[CZ_MAX_CONNS]);

	cr_assert(r == -EPIPE || r == -ECONNRESET, "one too many: closed (%d)", r);
	for (int i = 0; i <= CZ_MAX_CONNS; i++) {
		close(conns[i]);
	}
	close(root);
}

/*
 * A worker whose processes all closed their attach socket keeps its
 * record until it exits; the launcher's fds opened meanwhile (another
 * worker's) must keep being served when that record goes.
 */
Test(control, a_finished_attach_socket_leaves_other_fds_alone)
{
	int root1, root2, conn;

	cr_assert_eq(cz_control_worker_open(c, 1, &root1), 0);
	close(root1);
	spin(); /* worker 1's processes are all gone: EOF */
	cr_assert_eq(cz_control_worker_open(c, 2, &root2), 0);
	conn = attach(root2);
	spin();
	cz_control_worker_exited(c, 1);
	cr_assert_eq(hello(conn), 0, "worker 2's connection is still served");
	close(conn);
	conn = attach(root2);
	cr_assert_eq(hello(conn), 0, "and its attach socket too");
	close(conn);
	close(root2);
}
