#include "fdpass.h"

#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

union fd_cmsg {
	struct cmsghdr h;
	char buf[CMSG_SPACE(sizeof(int))];
};

int fdpass_send(int ch, int fd, bool mmsg)
{
	union fd_cmsg u;
	char byte = 0;
	struct iovec iov = { &byte, 1 };
	struct mmsghdr mm = { .msg_hdr = { .msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf) } };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mm.msg_hdr);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	if (mmsg) {
		return sendmmsg(ch, &mm, 1, MSG_NOSIGNAL) == 1 ? 0 : -1;
	}
	return sendmsg(ch, &mm.msg_hdr, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

int fdpass_recv(int ch, int flags)
{
	union fd_cmsg u;
	char byte;
	struct iovec iov = { &byte, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cm;
	int fd;

	if (recvmsg(ch, &mh, flags | MSG_CMSG_CLOEXEC) <= 0) {
		return -1;
	}
	cm = CMSG_FIRSTHDR(&mh);
	if (cm == NULL || cm->cmsg_level != SOL_SOCKET ||
	    cm->cmsg_type != SCM_RIGHTS) {
		return -2;
	}
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}
