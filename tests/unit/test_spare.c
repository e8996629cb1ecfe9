/*
 * The shim's spare fd slots: a connection in flight is received only into
 * a slot a spare made free, so the kernel never drops it for want of one.
 * Each test runs in a process of its own, so lowering the fd limit stays
 * within it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fds.h"
#include "fdtab.h"
#include "spare.h"

static int sv[2]; /* [0] sends connections, [1] receives them */

static void setup(void)
{
	cr_assert_eq(cz_fdtab_init(4096), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

TestSuite(spare, .init = setup, .timeout = 20);

/* Queues a stand-in connection (an eventfd) on sv[0], and closes ours. */
static void send_conn(void)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	char b = 'c';
	struct iovec iov = { &b, 1 };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	int conn = eventfd(0, EFD_CLOEXEC);

	cr_assert_geq(conn, 0);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &conn, sizeof(int));
	cr_assert_eq(sendmsg(sv[0], &mh, 0), 1);
	close(conn);
}

/* Receives one: its fd, or -1 with *trunc set when the kernel dropped it. */
static int recv_conn(bool *trunc)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	char b;
	struct iovec iov = { &b, 1 };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cm;
	int fd = -1;

	cr_assert_eq(recvmsg(sv[1], &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC), 1);
	cm = CMSG_FIRSTHDR(&mh);
	if (cm != NULL && cm->cmsg_type == SCM_RIGHTS) {
		memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	}
	*trunc = (mh.msg_flags & MSG_CTRUNC) != 0;
	return fd;
}

/* The process is at its open-files limit: the lowest free fd is the limit. */
static void exhaust(void)
{
	struct rlimit rl;
	int lowest = dup(0);

	cr_assert_geq(lowest, 0);
	close(lowest);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = (rlim_t)lowest;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	cr_assert_lt(dup(0), 0, "no fd left");
}

/* The spare the pool holds (the one internal fd under the limit). */
static int find_spare(void)
{
	int fd, found = -1;

	for (fd = 0; fd < 900; fd++) {
		const struct cz_fdrec *r = cz_fdtab_get(fd);

		if (r != NULL && r->state == CZ_FD_INTERNAL) {
			cr_assert_eq(found, -1, "one spare only");
			found = fd;
		}
	}
	return found;
}

Test(spare, at_the_limit_a_kept_spare_receives_the_connection)
{
	bool trunc;
	int fd;

	cr_assert_eq(cz_spare_free_slot(), 0);
	cz_spare_restore();
	cr_assert_eq(cz_spare_count(), 1);
	send_conn();
	exhaust();
	cr_assert_eq(cz_spare_free_slot(), 0, "the spare's slot is free now");
	fd = recv_conn(&trunc);
	cr_assert_not(trunc);
	cr_assert_geq(fd, 0, "received, not dropped");
	cz_spare_restore();
	cr_assert_eq(cz_spare_count(), 0, "no slot left for another spare");
	cr_assert_eq(cz_spare_free_slot(), -EMFILE,
		"so the next receive is not even tried");
}

/* What the spare is for: without one the kernel drops the connection. */
Test(spare, at_the_limit_without_a_spare_nothing_is_received)
{
	bool trunc;

	send_conn();
	exhaust();
	cr_assert_eq(cz_spare_free_slot(), -EMFILE);
	/* Had the shim received anyway, the kernel would have dropped it. */
	cr_assert_lt(recv_conn(&trunc), 0);
	cr_assert(trunc);
}

/* Two threads in the middle of a receive each freed a slot of their own. */
Test(spare, receivers_at_once_free_a_slot_each)
{
	bool trunc;

	cr_assert_eq(cz_spare_free_slot(), 0);
	cz_spare_restore();
	cz_spare_restore();
	cr_assert_eq(cz_spare_count(), 2);
	send_conn();
	send_conn();
	exhaust();
	cr_assert_eq(cz_spare_free_slot(), 0);
	cr_assert_eq(cz_spare_free_slot(), 0, "the second has its own");
	cr_assert_geq(recv_conn(&trunc), 0);
	cr_assert_geq(recv_conn(&trunc), 0, "neither counted on the other's slot");
}

/* The app's dup2() onto a spare's number: the spare lets go of it. */
Test(spare, dup2_onto_a_spare_takes_its_number)
{
	int spare, e = eventfd(0, EFD_CLOEXEC);

	cr_assert_eq(cz_spare_free_slot(), 0);
	cz_spare_restore();
	spare = find_spare();
	cr_assert_geq(spare, 0);
	cr_assert_eq(shim_close(spare), -EBADF, "the app cannot close it");
	cr_assert_eq(shim_dup2(e, spare), spare);
	cr_assert_eq(cz_spare_count(), 0);
	cr_assert_null(cz_fdtab_get(spare), "the number is the app's now");
	cr_assert_eq(find_spare(), -1, "not moved: let go");
	cr_assert_eq(shim_close(spare), 0);
	cr_assert_eq(cz_spare_free_slot(), 0, "a new one is made when needed");
}
