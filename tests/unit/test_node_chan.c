/*
 * Node's IPC channel, the primary's end, driven directly: the test plays
 * the node worker on the other end of a socketpair (writing lines, fds,
 * NODE_HANDLE_ACK/NACK, reading what the primary sends) and runs the loop
 * without blocking (UV_RUN_NOWAIT) for the channel to react.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "node_chan.h"

#define MAX_GOT 16

static uv_loop_t loop;
static struct cz_node_chan *ch;
static int peer; /* the worker's end */

/* What the channel reported. */
static json_t *got[MAX_GOT];
static int got_fd[MAX_GOT];
static int ngot, nbad, closed, closed_err;
static char last_bad[256];

static void on_message(void *data, json_t *msg, int fd)
{
	(void)data;
	cr_assert_lt(ngot, MAX_GOT);
	got[ngot] = json_incref(msg);
	got_fd[ngot++] = fd;
}

static void on_bad(void *data, const char *why)
{
	(void)data;
	nbad++;
	snprintf(last_bad, sizeof(last_bad), "%s", why);
}

static void on_closed(void *data, int err)
{
	(void)data;
	closed++;
	closed_err = err;
}

static void setup(void)
{
	static const struct cz_node_chan_ops ops = {
		.message = on_message, .bad = on_bad, .closed = on_closed,
	};
	int sv[2];

	ngot = nbad = closed = 0;
	cr_assert_eq(uv_loop_init(&loop), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	peer = sv[1];
	cr_assert_eq(cz_node_chan_open(&loop, sv[0], &ops, &ch), 0);
}

static void teardown(void)
{
	cz_node_chan_close(ch);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&loop), 0, "every handle closed");
	close(peer);
	for (int i = 0; i < ngot; i++) {
		json_decref(got[i]);
		if (got_fd[i] >= 0) {
			close(got_fd[i]);
		}
	}
}

TestSuite(node_chan, .init = setup, .fini = teardown, .timeout = 20);

static void spin(void)
{
	for (int i = 0; i < 8; i++) {
		uv_run(&loop, UV_RUN_NOWAIT);
	}
}

/* The worker writes `text` (with `fd` attached unless < 0). */
static void worker_writes(const char *text, size_t len, int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = { (void *)text, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *cm;

		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	cr_assert_eq(sendmsg(peer, &mh, MSG_NOSIGNAL), (ssize_t)len);
	spin();
}

static void worker_says(const char *text)
{
	worker_writes(text, strlen(text), -1);
}

/* What the primary wrote, up to now (one read); the fd it carried. */
static size_t worker_reads(char *buf, size_t len, int *fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 2)];
	} u;
	struct iovec iov = { buf, len - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cm;
	ssize_t n;

	spin();
	*fd = -1;
	n = recvmsg(peer, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0) {
		cr_assert(errno == EAGAIN, "recvmsg: %s", strerror(errno));
		n = 0;
	}
	buf[n] = '\0';
	cm = CMSG_FIRSTHDR(&mh);
	if (cm != NULL && cm->cmsg_type == SCM_RIGHTS) {
		memcpy(fd, CMSG_DATA(cm), sizeof(int));
	}
	return (size_t)n;
}

static bool same_file(int a, int b)
{
	struct stat x, y;

	return fstat(a, &x) == 0 && fstat(b, &y) == 0 && x.st_ino == y.st_ino &&
	       x.st_dev == y.st_dev;
}

static json_t *j(const char *text)
{
	json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);

	cr_assert_not_null(v, "%s", text);
	return v;
}

static void expect_got(int i, const char *want)
{
	json_t *w = j(want);

	cr_assert_gt(ngot, i, "message %d arrived", i);
	cr_expect(json_equal(got[i], w), "message %d is %s", i, want);
	json_decref(w);
}

Test(node_chan, lines_are_messages_however_they_arrive)
{
	worker_says("{\"cmd\":\"NODE_CLUSTER\",\"act\":\"online\",\"seq\":0}\n{\"a\"");
	worker_says(":[1,2]}\n\"just a string\"\n");
	worker_says("{\"last\":true}");
	cr_expect_eq(ngot, 3, "three complete lines so far");
	worker_says("\n");
	cr_assert_eq(ngot, 4);
	expect_got(0, "{\"cmd\":\"NODE_CLUSTER\",\"act\":\"online\",\"seq\":0}");
	expect_got(1, "{\"a\":[1,2]}");
	expect_got(2, "\"just a string\"");
	expect_got(3, "{\"last\":true}");
	cr_expect_eq(nbad, 0);
}

Test(node_chan, a_bad_line_is_reported_and_skipped)
{
	worker_says("{\"a\":1,}\nnot json\n{\"ok\":1}\n");
	cr_expect_eq(nbad, 2, "two bad lines");
	cr_expect(strstr(last_bad, "not JSON") != NULL, "%s", last_bad);
	cr_assert_eq(ngot, 1);
	expect_got(0, "{\"ok\":1}");
	cr_expect_eq(closed, 0, "the channel goes on");
}

Test(node_chan, a_line_too_long_is_dropped_not_kept)
{
	size_t n = CZ_NODE_CHAN_LINE_MAX + 100000, sent = 0;
	char *big = malloc(n);

	cr_assert_not_null(big);
	memset(big, 'x', n);
	big[0] = '"';
	/* In pieces: the primary must not wait for the end to give up. */
	while (sent < n) {
		size_t k = n - sent < 65536 ? n - sent : 65536;
		ssize_t w = send(peer, big + sent, k, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w > 0) {
			sent += (size_t)w;
		}
		spin();
	}
	free(big);
	cr_expect_eq(nbad, 1, "reported once");
	cr_expect(strstr(last_bad, "longer than") != NULL, "%s", last_bad);
	worker_says("\"tail\"\n{\"next\":1}\n");
	cr_assert_eq(ngot, 1, "the rest of the long line is dropped too");
	expect_got(0, "{\"next\":1}");
}

Test(node_chan, messages_wait_while_a_handle_is_in_flight)
{
	char buf[4096];
	int fd, sv[2];
	json_t *m1 = j("{\"cmd\":\"NODE_CLUSTER\",\"ack\":1}"), *m2 = j("{\"n\":2}");

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(cz_node_chan_send(ch, m1, sv[0], "net.Native"), 0);
	cr_assert_eq(cz_node_chan_send(ch, m2, -1, NULL), 0);
	worker_reads(buf, sizeof(buf), &fd);
	cr_assert_geq(fd, 0, "the fd rides on the line's first bytes");
	cr_expect(same_file(fd, sv[0]), "it is the socket sent");
	close(fd);
	json_t *w = j(buf);

	cr_expect_str_eq(json_string_value(json_object_get(w, "cmd")), "NODE_HANDLE");
	cr_expect_str_eq(json_string_value(json_object_get(w, "type")), "net.Native");
	cr_expect(json_equal(json_object_get(w, "msg"), m1));
	json_decref(w);
	cr_expect_eq(worker_reads(buf, sizeof(buf), &fd), 0, "the next waits for the ACK");
	worker_says("{\"cmd\":\"NODE_HANDLE_ACK\"}\n");
	worker_reads(buf, sizeof(buf), &fd);
	cr_expect_str_eq(buf, "{\"n\":2}\n");
	cr_expect_lt(fd, 0);
	json_decref(m1);
	json_decref(m2);
	close(sv[0]);
	close(sv[1]);
}

Test(node_chan, a_nack_resends_the_handle_three_times_at_most)
{
	char buf[4096];
	int fd, sv[2];
	json_t *m = j("{\"x\":1}");

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(cz_node_chan_send(ch, m, sv[0], "net.Native"), 0);
	for (int i = 0; i < 4; i++) {
		cr_assert_gt(worker_reads(buf, sizeof(buf), &fd), 0, "send %d", i + 1);
		cr_expect_geq(fd, 0, "send %d carries the fd", i + 1);
		if (fd >= 0) {
			close(fd);
		}
		worker_says("{\"cmd\":\"NODE_HANDLE_NACK\"}\n");
	}
	cr_expect_eq(worker_reads(buf, sizeof(buf), &fd), 0, "no fifth send");
	cr_expect(strstr(last_bad, "did not reach the worker") != NULL, "%s", last_bad);
	json_decref(m);
	close(sv[0]);
	close(sv[1]);
}

Test(node_chan, a_handle_from_the_worker_is_acknowledged_and_delivered)
{
	char buf[256];
	int fd, sv[2];
	const char *line = "{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Socket\","
		"\"msg\":{\"hello\":1}}\n";

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	worker_writes(line, strlen(line), sv[0]);
	cr_assert_eq(ngot, 1);
	expect_got(0, "{\"hello\":1}");
	cr_expect(got_fd[0] >= 0 && same_file(got_fd[0], sv[0]), "with its fd");
	worker_reads(buf, sizeof(buf), &fd);
	cr_expect_str_eq(buf, "{\"cmd\":\"NODE_HANDLE_ACK\"}\n");
	/* No fd this time: NACK, and the message waits for Node's resend. */
	worker_says(line);
	cr_expect_eq(ngot, 1);
	worker_reads(buf, sizeof(buf), &fd);
	cr_expect_str_eq(buf, "{\"cmd\":\"NODE_HANDLE_NACK\"}\n");
	close(sv[0]);
	close(sv[1]);
}

Test(node_chan, the_workers_eof_is_reported_once)
{
	shutdown(peer, SHUT_WR);
	spin();
	cr_expect_eq(closed, 1);
	cr_expect_eq(closed_err, 0);
	json_t *m = j("{}");

	cr_expect_eq(cz_node_chan_send(ch, m, -1, NULL), -EPIPE);
	json_decref(m);
}
