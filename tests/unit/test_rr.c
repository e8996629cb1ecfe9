/*
 * The rr dispatcher, driven directly: the test plays the workers by
 * reading their channel ends (and writing a NACK), and runs the loop
 * without blocking (UV_RUN_NOWAIT), or the tick, for the primary to react.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "proto.h"
#include "rr.h"

#define NCH 3

static uv_loop_t loop;
static struct cz_rr *rr;
static struct cz_rr_listener *lst;
static int lfd;
static uint32_t chan[NCH];
static int wfd[NCH];

static void setup(void)
{
	struct sockaddr_in in = { .sin_family = AF_INET };

	cr_assert_eq(uv_loop_init(&loop), 0);
	cr_assert_eq(cz_rr_create(&loop, &rr), 0);
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(lfd, (void *)&in, sizeof(in)), 0);
	cr_assert_eq(listen(lfd, 64), 0);
	cr_assert_eq(cz_rr_listener_create(rr, lfd, false, "test", &lst), 0);
	cz_rr_set_now(rr, 1000);
}

static void teardown(void)
{
	cz_rr_destroy(rr);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&loop), 0, "every handle closed");
	close(lfd);
}

TestSuite(rr, .init = setup, .fini = teardown, .timeout = 20);

static void open_chans(unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		wfd[i] = cz_rr_chan_open(lst, 10 + i, NULL, &chan[i]);
		cr_assert_geq(wfd[i], 0);
	}
}

/* A connection stand-in: one end of a socketpair; returns the other. */
static int give_conn(void)
{
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cz_rr_dispatch(lst, sv[0], NULL, 0);
	return sv[1];
}

/* Reads one message off a worker end: its type, seq and fd (or -1). */
static int take(int fd, uint32_t *seq, int *cfd)
{
	union {
		struct cz_msg_conn m;
		char buf[CZ_MSG_MAX];
	} u;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cu;
	struct iovec iov = { u.buf, sizeof(u.buf) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cu.buf, .msg_controllen = sizeof(cu.buf),
	};
	ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	*cfd = -1;
	if (n < 0) {
		return -errno;
	}
	if (cm != NULL && cm->cmsg_type == SCM_RIGHTS) {
		memcpy(cfd, CMSG_DATA(cm), sizeof(int));
	}
	*seq = u.m.hdr.seq;
	return cz_proto_check(u.buf, (size_t)n);
}

/* Takes a CONN and closes its fd; returns its seq. */
static uint32_t take_conn(int fd)
{
	uint32_t seq = 0;
	int cfd, type = take(fd, &seq, &cfd);

	cr_assert_eq(type, CZ_MSG_CONN, "got %d", type);
	cr_assert_geq(cfd, 0);
	close(cfd);
	return seq;
}

static unsigned count_queued(int fd)
{
	uint32_t seq;
	int cfd;
	unsigned n = 0;

	while (take(fd, &seq, &cfd) > 0) {
		if (cfd >= 0) {
			close(cfd);
		}
		n++;
	}
	return n;
}

static void nack(int fd)
{
	struct cz_msg_nack a;

	cz_proto_init(&a.hdr, CZ_MSG_NACK, 0);
	cr_assert_eq(send(fd, &a, sizeof(a), 0), (ssize_t)sizeof(a));
	uv_run(&loop, UV_RUN_NOWAIT);
}

/* CONNs queued in channel i, as the primary sees them now. */
static unsigned queued(unsigned i)
{
	struct cz_rr_chan_info info;

	cr_assert_eq(cz_rr_chan_info(rr, chan[i], &info), 0);
	return info.queued;
}

static bool stalled(unsigned i)
{
	struct cz_rr_chan_info info;

	cr_assert_eq(cz_rr_chan_info(rr, chan[i], &info), 0);
	return info.stalled;
}

/* Whether `peer`'s connection is the one `cfd` is the other end of. */
static bool same_conn(int cfd, int peer)
{
	char b[4];

	return write(cfd, "hi", 2) == 2 && read(peer, b, sizeof(b)) == 2;
}

Test(rr, round_robin_over_channels)
{
	unsigned i;

	open_chans(NCH);
	for (i = 0; i < 3 * NCH; i++) {
		close(give_conn());
	}
	for (i = 0; i < NCH; i++) {
		cr_assert_eq(queued(i), 3);
		cr_assert_eq(take_conn(wfd[i]), 1);
		cr_assert_eq(take_conn(wfd[i]), 2);
		cr_assert_eq(take_conn(wfd[i]), 3);
	}
}

/* The primary keeps no copy: the worker's close is the connection's end. */
Test(rr, the_worker_closing_a_connection_ends_it_at_once)
{
	uint32_t seq;
	int peer, cfd;
	char b;

	open_chans(1);
	peer = give_conn();
	cr_assert_eq(take(wfd[0], &seq, &cfd), CZ_MSG_CONN);
	cr_assert(same_conn(cfd, peer));
	close(cfd);
	cr_assert_eq(recv(peer, &b, 1, MSG_DONTWAIT), 0,
		"end of file, with the loop never run");
	close(peer);
}

Test(rr, credit_limits_and_a_look_frees_it)
{
	unsigned i;

	open_chans(NCH);
	cr_assert(cz_rr_polling(lst));
	for (i = 0; i < CZ_RR_CREDIT * NCH + 2; i++) {
		close(give_conn());
	}
	for (i = 0; i < NCH; i++) {
		cr_assert_eq(queued(i), CZ_RR_CREDIT);
	}
	cr_assert_eq(cz_rr_pending(lst), 2);
	cr_assert(cz_rr_polling(lst), "no credit: a few are held, accepting goes on");
	for (i = 2; i < CZ_RR_HOLD; i++) {
		close(give_conn());
	}
	cr_assert_eq(cz_rr_pending(lst), CZ_RR_HOLD);
	cr_assert_not(cz_rr_polling(lst), "as many held as allowed: listener paused");
	/* Channel 1 takes everything; nothing is sent back, the tick looks. */
	for (i = 0; i < CZ_RR_CREDIT; i++) {
		take_conn(wfd[1]);
	}
	cz_rr_tick(rr);
	cr_assert_eq(queued(1), CZ_RR_CREDIT,
		"the oldest held went to the only one with credit");
	cr_assert_eq(cz_rr_pending(lst), CZ_RR_HOLD - CZ_RR_CREDIT);
	cr_assert(cz_rr_polling(lst));
}

/* Without a tick or a new connection, the hold timer looks again. */
static void on_guard(uv_timer_t *t)
{
	*(bool *)t->data = true;
}

Test(rr, held_connections_go_once_a_worker_takes_some)
{
	unsigned i;

	open_chans(1);
	cz_rr_tick_stop(rr);
	for (i = 0; i < CZ_RR_CREDIT + 2; i++) {
		close(give_conn());
	}
	cr_assert_eq(cz_rr_pending(lst), 2);
	take_conn(wfd[0]);
	take_conn(wfd[0]);
	/* No tick, no event: only the hold timer can send them.  The loop
	 * blocks until a timer fires; the guard's bounds the wait. */
	uv_timer_t guard;
	bool late = false;

	uv_timer_init(&loop, &guard);
	guard.data = &late;
	uv_timer_start(&guard, on_guard, 5000, 0);
	while (cz_rr_pending(lst) > 0 && !late) {
		uv_run(&loop, UV_RUN_ONCE);
	}
	uv_close((uv_handle_t *)&guard, NULL);
	uv_run(&loop, UV_RUN_NOWAIT); /* finishes the close: `guard` is on the stack */
	cr_assert_eq(cz_rr_pending(lst), 0, "both held ones were sent");
	cr_assert_eq(queued(0), CZ_RR_CREDIT);
}

Test(rr, full_channels_are_skipped)
{
	unsigned i;

	open_chans(2);
	for (i = 0; i < CZ_RR_CREDIT; i++) {
		close(give_conn());
		close(give_conn());
	}
	take_conn(wfd[0]);
	close(give_conn());
	cr_assert_eq(queued(0), CZ_RR_CREDIT);
	cr_assert_eq(queued(1), CZ_RR_CREDIT);
	cr_assert_eq(count_queued(wfd[1]), CZ_RR_CREDIT);
}

Test(rr, stalled_channel_is_skipped_and_reclaimed)
{
	int peer, cfd;
	uint32_t seq;

	open_chans(2);
	peer = give_conn(); /* to channel 0 */
	close(give_conn()); /* to channel 1 */
	take_conn(wfd[1]);
	cz_rr_set_now(rr, 1000 + CZ_RR_STALL_MS + 1);
	cz_rr_tick(rr);
	cr_assert(stalled(0));
	cr_assert_eq(queued(0), 0, "the untaken one was taken back");
	cr_assert_eq(queued(1), 1, "... and given to channel 1");
	cr_assert_not(stalled(1), "channel 1 took its own: it made progress");
	cr_assert_eq(take(wfd[1], &seq, &cfd), CZ_MSG_CONN);
	cr_assert(same_conn(cfd, peer), "it is the same connection, fd and all");
	close(cfd);
	close(peer);
	/* While stalled it gets nothing. */
	close(give_conn());
	cr_assert_eq(queued(0), 0);
	/* The worker wakes up and reads the nudge: back in the rotation. */
	cr_assert_eq(take(wfd[0], &seq, &cfd), CZ_MSG_NUDGE);
	cz_rr_tick(rr);
	cr_assert_not(stalled(0));
}

Test(rr, taking_is_progress)
{
	open_chans(1);
	close(give_conn());
	close(give_conn());
	take_conn(wfd[0]);
	cz_rr_set_now(rr, 1000 + CZ_RR_STALL_MS + 1);
	cz_rr_tick(rr);
	cr_assert_not(stalled(0), "it took one since the last look");
	cr_assert_eq(queued(0), 1);
	cz_rr_set_now(rr, 1000 + 2 * CZ_RR_STALL_MS + 2);
	cz_rr_tick(rr);
	cr_assert(stalled(0), "nothing taken since");
	cr_assert_eq(cz_rr_pending(lst), 1, "taken back, held for a worker");
}

/*
 * A worker that died: what is queued goes to the others.  The one it
 * received is its own (lost if it never served it, as under any primary).
 */
Test(rr, dead_worker_queued_connections_go_to_others)
{
	unsigned i;

	open_chans(NCH);
	for (i = 0; i < 2 * NCH; i++) {
		close(give_conn());
	}
	take_conn(wfd[1]);
	cz_rr_worker_exited(rr, 11);
	cr_assert_eq(cz_rr_chan_info(rr, chan[1], &(struct cz_rr_chan_info){ 0 }),
		-ENOENT);
	cr_assert_eq(queued(0) + queued(2), 2 * NCH - 1);
	cr_assert_eq(cz_rr_pending(lst), 0);
	for (i = 0; i < 6; i++) {
		close(give_conn());
	}
	cr_assert_eq(queued(0), CZ_RR_CREDIT);
	cr_assert_eq(queued(2), CZ_RR_CREDIT);
}

/* Taken back from a channel that goes: never sent into it again. */
Test(rr, a_going_channel_gets_none_of_its_own_back)
{
	unsigned i;

	open_chans(2);
	for (i = 0; i < 4; i++) {
		close(give_conn());
	}
	/* Next in turn is channel 0, which has room once emptied. */
	cz_rr_worker_exited(rr, 10);
	cr_assert_eq(queued(1), 4, "worker 10's two went to worker 11");
	cr_assert_eq(cz_rr_pending(lst), 0);
	/* Now worker 11 goes, and no one has room: they are held. */
	open_chans(1); /* channel 0 again: worker 10's slot, a new id */
	for (i = 0; i < CZ_RR_CREDIT; i++) {
		close(give_conn());
	}
	cr_assert_eq(queued(0), CZ_RR_CREDIT);
	cz_rr_worker_exited(rr, 11);
	cr_assert_eq(cz_rr_pending(lst), 4, "held for a worker with room");
}

Test(rr, stopping_worker_gets_nothing_more)
{
	open_chans(2);
	close(give_conn());
	close(give_conn());
	cz_rr_worker_stopping(rr, 10);
	cr_assert_eq(queued(0), 0);
	cr_assert_eq(queued(1), 2);
	close(give_conn());
	cr_assert_eq(queued(1), 3);
}

/* A worker out of fds takes nothing: what is queued for it goes elsewhere. */
Test(rr, nack_takes_back_what_is_queued)
{
	uint32_t seq;
	int peer, cfd;

	open_chans(2);
	peer = give_conn(); /* seq 1 on channel 0 */
	close(give_conn()); /* channel 1 */
	close(give_conn()); /* seq 2 on channel 0 */
	nack(wfd[0]);
	cr_assert_eq(queued(0), 0);
	cr_assert_eq(queued(1), 3);
	take_conn(wfd[1]);
	cr_assert_eq(take(wfd[1], &seq, &cfd), CZ_MSG_CONN);
	cr_assert(same_conn(cfd, peer), "the first one queued for worker 10");
	close(cfd);
	close(peer);
	close(give_conn());
	cr_assert_eq(queued(0), 0, "until the next tick worker 10 gets nothing");
	cr_assert_eq(queued(1), 2);
	cz_rr_tick(rr);
	cr_assert_not(stalled(0));
	nack(wfd[1]);
	cr_assert_eq(queued(1), 0, "worker 11 said NACK in turn");
	cr_assert_eq(queued(0), 2);
}

Test(rr, no_worker_connections_wait)
{
	close(give_conn());
	close(give_conn());
	cr_assert_eq(cz_rr_pending(lst), 2);
	cr_assert_not(cz_rr_polling(lst));
	open_chans(1);
	cr_assert_eq(cz_rr_pending(lst), 0);
	cr_assert_eq(count_queued(wfd[0]), 2);
}

Test(rr, bad_messages_are_ignored)
{
	struct cz_msg_nack old;

	open_chans(1);
	close(give_conn());
	cr_assert_eq(send(wfd[0], "garbage", 7, 0), 7);
	/* An ACK of protocol version 2 (type 48) is no message any more. */
	cz_proto_init(&old.hdr, CZ_MSG_NACK, 1);
	old.hdr.type = 48;
	cr_assert_eq(send(wfd[0], &old, sizeof(old), 0), (ssize_t)sizeof(old));
	uv_run(&loop, UV_RUN_NOWAIT);
	cr_assert_eq(queued(0), 1, "nothing taken back");
	take_conn(wfd[0]);
	cr_assert_eq(queued(0), 0);
}

Test(rr, accepts_from_a_real_listener)
{
	struct sockaddr_in srv, me;
	socklen_t len = sizeof(srv);
	union {
		struct cz_msg_conn m;
		char buf[CZ_MSG_MAX];
	} u;
	int c[6], i, n;

	open_chans(2);
	getsockname(lfd, (void *)&srv, &len);
	for (i = 0; i < 6; i++) {
		c[i] = socket(AF_INET, SOCK_STREAM, 0);
		cr_assert_eq(connect(c[i], (void *)&srv, sizeof(srv)), 0);
	}
	for (i = 0; i < 20 && queued(0) + queued(1) < 6; i++) {
		uv_run(&loop, UV_RUN_NOWAIT);
	}
	cr_assert_eq(queued(0), 3);
	cr_assert_eq(queued(1), 3);
	n = (int)recv(wfd[0], u.buf, sizeof(u.buf), MSG_DONTWAIT);
	cr_assert_eq(cz_proto_check(u.buf, (size_t)n), CZ_MSG_CONN);
	len = sizeof(me);
	getsockname(c[0], (void *)&me, &len);
	cr_assert_eq(u.m.peer.len, sizeof(me));
	cr_assert_eq(((struct sockaddr_in *)&u.m.peer.ss)->sin_port, me.sin_port);
	for (i = 0; i < 6; i++) {
		close(c[i]);
	}
}

/* A NUDGE in the queue is not a connection, taken or not. */
Test(rr, a_nudge_is_not_counted_as_a_connection)
{
	uint32_t seq;
	int cfd;

	open_chans(2);
	close(give_conn()); /* channel 0 */
	cz_rr_set_now(rr, 1000 + CZ_RR_STALL_MS + 1);
	cz_rr_tick(rr); /* channel 0 stalls: its one goes to 1, a NUDGE stays */
	cr_assert(stalled(0));
	cr_assert_eq(queued(0), 0);
	cr_assert_eq(take(wfd[0], &seq, &cfd), CZ_MSG_NUDGE);
	cz_rr_tick(rr);
	cr_assert_not(stalled(0));
	close(give_conn()); /* channel 0 again (1 has one) */
	close(give_conn());
	cr_assert_eq(queued(0), 1);
	cr_assert_eq(queued(1), 2);
}

Test(rr, pending_counts_what_the_worker_has_not_taken)
{
	open_chans(2); /* workers 10 and 11 */
	close(give_conn());
	close(give_conn());
	close(give_conn());
	close(give_conn());
	cr_assert_eq(cz_rr_worker_pending(rr, 10), 2);
	cr_assert_eq(cz_rr_worker_pending(rr, 11), 2);
	take_conn(wfd[0]);
	cr_assert_eq(cz_rr_worker_pending(rr, 10), 1, "the kernel's count");
	take_conn(wfd[0]);
	cr_assert_eq(cz_rr_worker_pending(rr, 10), 0);
	cz_rr_worker_stopping(rr, 11);
	cr_assert_eq(cz_rr_worker_pending(rr, 11), 0, "taken back");
	cr_assert_eq(cz_rr_worker_pending(rr, 10), 2, "... and sent to 10");
	take_conn(wfd[0]);
	take_conn(wfd[0]);
	cr_assert_eq(cz_rr_worker_pending(rr, 10), 0);
	cr_assert_eq(cz_rr_worker_pending(rr, 12), 0);
}

Test(rr, conns_counts_connections_handed_out)
{
	open_chans(2);
	close(give_conn());
	close(give_conn());
	close(give_conn());
	cr_assert_eq(cz_rr_worker_conns(rr, 10), 2);
	cr_assert_eq(cz_rr_worker_conns(rr, 11), 1);
	cz_rr_worker_stopping(rr, 11); /* its one is taken back */
	cr_assert_eq(cz_rr_worker_conns(rr, 11), 0);
	cr_assert_eq(cz_rr_worker_conns(rr, 10), 3);
	take_conn(wfd[0]);
	take_conn(wfd[0]);
	take_conn(wfd[0]);
	cr_assert_eq(cz_rr_chan_close(rr, chan[0], 10), 0);
	cr_assert_eq(cz_rr_worker_conns(rr, 10), 3, "kept when a channel closes");
	cz_rr_worker_exited(rr, 10);
	cr_assert_eq(cz_rr_worker_conns(rr, 10), 0, "forgotten with the worker");
}

/* How many fds this process has open. */
static unsigned open_fds(void)
{
	unsigned n = 0;
	int fd;

	for (fd = 0; fd < 1024; fd++) {
		n += fcntl(fd, F_GETFD) >= 0;
	}
	return n;
}

Test(rr, taking_back_leaks_no_fd)
{
	unsigned before;

	open_chans(2);
	before = open_fds();
	close(give_conn());
	close(give_conn());
	close(give_conn());
	cz_rr_worker_exited(rr, 10); /* two taken back, given to 11 */
	cr_assert_eq(queued(1), 3);
	cr_assert_eq(open_fds(), before - 2, "only worker 10's channel closed: "
		"the primary holds no connection");
	cr_assert_eq(count_queued(wfd[1]), 3);
}

/* The primary at its own fd limit still takes every connection back. */
Test(rr, taking_back_at_the_fd_limit_loses_nothing)
{
	struct rlimit rl;
	unsigned i;
	int lowest;

	open_chans(2);
	for (i = 0; i < 4; i++) {
		close(give_conn());
	}
	lowest = dup(0);
	close(lowest);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = (rlim_t)lowest;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	cz_rr_worker_stopping(rr, 10);
	cr_assert_eq(queued(0), 0);
	cr_assert_eq(queued(1), 4, "both of worker 10's went to 11");
}

/* --- the balancer, through the dispatcher ------------------------------- */

static int slot_of(void *data, uint32_t worker_id)
{
	(void)data;
	return worker_id >= 10 && worker_id < 10 + NCH ? (int)worker_id - 10 : -1;
}

/* A connection stand-in from `ip` (v4); returns the client end. */
static int give_conn_from(const char *ip)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(4000) };
	int sv[2];

	cr_assert_eq(inet_pton(AF_INET, ip, &in.sin_addr), 1);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cz_rr_dispatch(lst, sv[0], (struct sockaddr *)&in, sizeof(in));
	return sv[1];
}

/* The channel index whose worker end has a CONN waiting, or -1. */
static int queued_at(void)
{
	int n;

	for (unsigned i = 0; i < NCH; i++) {
		if (ioctl(wfd[i], FIONREAD, &n) == 0 && n > 0) {
			return (int)i;
		}
	}
	return -1;
}

Test(rr, least_conn_sends_to_the_fewest_open)
{
	struct cz_conntab *t;

	cr_assert_eq(cz_conntab_create(&loop, &t), 0);
	for (unsigned i = 0; i < NCH; i++) {
		struct cz_conns_page *p = cz_conns_page(cz_conntab_get(t, 10 + i, true));

		p->e[0].pid = getpid();
		p->e[0].open = i == 2 ? 1 : 7;
		p->used = 1;
	}
	cz_rr_set_conntab(rr, t);
	cr_assert_eq(cz_rr_set_balance(rr, CZ_BALANCE_LEAST_CONN), 0);
	open_chans(NCH);
	close(give_conn());
	cr_assert_eq(queued(2), 1, "worker 12 has 1 open, the others 7");
	close(give_conn());
	close(give_conn());
	cr_assert_eq(queued(2), 3, "1 open + queued stays the fewest");
	cr_assert_eq(queued(0) + queued(1), 0);
	cz_rr_destroy(rr);
	rr = NULL;
	uv_run(&loop, UV_RUN_DEFAULT);
	cz_conntab_destroy(t);
	cr_assert_eq(cz_rr_create(&loop, &rr), 0, "a fresh one for the teardown");
}

/* A connection taken is in its worker's open count: not counted twice. */
Test(rr, least_conn_counts_a_taken_connection_once)
{
	struct cz_conntab *t;
	struct cz_conns_page *p[NCH];

	cr_assert_eq(cz_conntab_create(&loop, &t), 0);
	for (unsigned i = 0; i < NCH; i++) {
		p[i] = cz_conns_page(cz_conntab_get(t, 10 + i, true));
		p[i]->e[0].pid = getpid();
		p[i]->e[0].open = i == 2 ? 1 : 3;
		p[i]->used = 1;
	}
	cz_rr_set_conntab(rr, t);
	cr_assert_eq(cz_rr_set_balance(rr, CZ_BALANCE_LEAST_CONN), 0);
	open_chans(NCH);
	close(give_conn());
	cr_assert_eq(count_queued(wfd[2]), 1, "to worker 12, with 1 open");
	p[2]->e[0].open = 2; /* its shim counts the one it took */
	close(give_conn());
	cr_assert_eq(count_queued(wfd[2]), 1, "2 open and none queued: still the fewest");
	cz_rr_destroy(rr);
	rr = NULL;
	uv_run(&loop, UV_RUN_DEFAULT);
	cz_conntab_destroy(t);
	cr_assert_eq(cz_rr_create(&loop, &rr), 0, "a fresh one for the teardown");
}

Test(rr, sticky_waiting_client_holds_back_no_other)
{
	int map[40], a, b = -1, w;
	char ip[32];

	cz_rr_set_slots(rr, slot_of, NULL);
	cr_assert_eq(cz_rr_set_balance(rr, CZ_BALANCE_STICKY), 0);
	open_chans(NCH);
	/* Where each client goes while every worker is free. */
	for (a = 1; a < 40; a++) {
		snprintf(ip, sizeof(ip), "192.0.2.%d", a);
		close(give_conn_from(ip));
		map[a] = w = queued_at();
		cr_assert_geq(w, 0, "%s was sent at once", ip);
		take_conn(wfd[w]);
		if (b < 0 && map[a] != map[1]) {
			b = a;
		}
	}
	cr_assert_gt(b, 0, "the 39 clients are not all on one worker");
	w = map[1];
	/* Client 1 again and again: its worker, until that one is busy. */
	for (unsigned i = 0; i < CZ_RR_CREDIT + 2; i++) {
		close(give_conn_from("192.0.2.1"));
	}
	cr_assert_eq(queued((unsigned)w), CZ_RR_CREDIT, "none went elsewhere");
	cr_assert_eq(cz_rr_pending(lst), 2, "busy worker: its client waits for it");
	/* A client of another worker is not held back behind them. */
	snprintf(ip, sizeof(ip), "192.0.2.%d", b);
	close(give_conn_from(ip));
	cr_expect_eq(queued((unsigned)map[b]), 1, "%s went to its worker", ip);
	cr_expect_eq(cz_rr_pending(lst), 2, "only the busy worker's clients wait");
	/* The busy worker takes what it had: the two waiting follow. */
	for (unsigned i = 0; i < CZ_RR_CREDIT; i++) {
		take_conn(wfd[w]);
	}
	cz_rr_tick(rr);
	cr_expect_eq(cz_rr_pending(lst), 0);
	cr_expect_eq(queued((unsigned)w), 2);
}

/* The shim counts a connection open before it leaves the channel. */
Test(rr, unacked_counts_what_is_still_queued)
{
	open_chans(2);
	close(give_conn());
	close(give_conn());
	close(give_conn());
	cr_assert_eq(cz_rr_worker_unacked(rr, 10), 2);
	take_conn(wfd[0]);
	cr_assert_eq(cz_rr_worker_unacked(rr, 10), 1, "taken: the shim's count now");
	cz_rr_worker_stopping(rr, 10);
	cr_assert_eq(cz_rr_worker_unacked(rr, 10), 0, "the queued one was taken back");
	cr_assert_eq(cz_rr_worker_unacked(rr, 11), 2, "11 got the one taken back");
}
