/*
 * A file system step with the workers' identity, in a child (asuser.h).
 */
#include "asuser.h"

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coverage.h"

struct header {
	int32_t rc;
	uint32_t len;
};

union fd_cmsg {
	struct cmsghdr h;
	char buf[CMSG_SPACE(sizeof(int) * CZ_ASUSER_FDS)];
};

/*
 * Groups, then fsgid, then fsuid.  setfsuid() and setfsgid() report no
 * error, so each is read back.  Changing fsuid away from 0 also takes the
 * file capabilities (DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, ...) out of
 * the effective set: from here on the kernel sees the worker.
 */
static int take_ids(const struct cz_spawn_ids *ids)
{
	if (setgroups((size_t)ids->n_groups, ids->groups) != 0) {
		return -errno;
	}
	setfsgid(ids->gid);
	if ((gid_t)setfsgid((gid_t)-1) != ids->gid) {
		return -EPERM;
	}
	setfsuid(ids->uid);
	if ((uid_t)setfsuid((uid_t)-1) != ids->uid) {
		return -EPERM;
	}
	return 0;
}

static void send_out(int sock, int rc, const struct cz_asuser_out *out)
{
	struct header h = { .rc = rc, .len = (uint32_t)out->len };
	struct iovec iov[2] = {
		{ .iov_base = &h, .iov_len = sizeof(h) },
		{ .iov_base = (void *)out->data, .iov_len = out->len },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
	union fd_cmsg cm;

	if (out->nfds > 0) {
		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * out->nfds);
		cm.h.cmsg_level = SOL_SOCKET;
		cm.h.cmsg_type = SCM_RIGHTS;
		cm.h.cmsg_len = CMSG_LEN(sizeof(int) * out->nfds);
		memcpy(CMSG_DATA(&cm.h), out->fds, sizeof(int) * out->nfds);
	}
	while (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR) {
	}
}

static __attribute__((noreturn)) void child(const struct cz_spawn_ids *ids,
	cz_asuser_fn *fn, void *arg, struct cz_asuser_out *out, int sock)
{
	int rc = take_ids(ids);

	if (rc == 0) {
		rc = fn(arg, out);
	}
	if (out->len > sizeof(out->data) || out->nfds > CZ_ASUSER_FDS) {
		out->len = 0;
		out->nfds = 0;
		rc = -EOVERFLOW;
	}
	send_out(sock, rc, out);
	cz_coverage_dump();
	_exit(0);
}

/* The child's answer; -EIO if it died without one. */
static int receive(int sock, struct cz_asuser_out *out)
{
	struct header h = { 0 };
	struct iovec iov[2] = {
		{ .iov_base = &h, .iov_len = sizeof(h) },
		{ .iov_base = out->data, .iov_len = sizeof(out->data) },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
	union fd_cmsg cm;
	struct cmsghdr *c;
	ssize_t n;

	msg.msg_control = cm.buf;
	msg.msg_controllen = sizeof(cm.buf);
	do {
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		return -errno;
	}
	for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			out->nfds = (unsigned)((c->cmsg_len - CMSG_LEN(0)) /
				sizeof(int));
			memcpy(out->fds, CMSG_DATA(c), out->nfds * sizeof(int));
		}
	}
	if ((size_t)n < sizeof(h) || h.len != (size_t)n - sizeof(h)) {
		for (unsigned i = 0; i < out->nfds; i++) {
			close(out->fds[i]);
		}
		out->nfds = 0;
		return -EIO;
	}
	out->len = h.len;
	if (msg.msg_flags & MSG_CTRUNC) {
		/* At our fd limit: whatever arrived is not enough. */
		for (unsigned i = 0; i < out->nfds; i++) {
			close(out->fds[i]);
		}
		out->nfds = 0;
		return -EMFILE;
	}
	return h.rc;
}

int cz_asuser_run(const struct cz_spawn_ids *ids, cz_asuser_fn *fn, void *arg,
	struct cz_asuser_out *out)
{
	sigset_t all, old;
	int sv[2], rc, err;
	pid_t pid;

	memset(out, 0, offsetof(struct cz_asuser_out, data));
	if (ids == NULL || !ids->set) {
		return fn(arg, out);
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		return -errno;
	}
	/* The child keeps every signal blocked: none of the launcher's
	 * handlers (libuv's write to its loop) may run in it. */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		child(ids, fn, arg, out, sv[1]);
	}
	err = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return -err;
	}
	rc = receive(sv[0], out);
	close(sv[0]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
	}
	return rc;
}
