/* Passing one fd over a unix socket (SCM_RIGHTS), for the test servers. */
#ifndef CZ_TESTS_FDPASS_H
#define CZ_TESTS_FDPASS_H

#include <stdbool.h>

/* Sends `fd` with one byte of data, by sendmmsg if `mmsg`; 0 or -1. */
int fdpass_send(int ch, int fd, bool mmsg);

/*
 * Receives one message (recvmsg `flags`, MSG_CMSG_CLOEXEC added): the fd
 * it carried, -2 if it carried none, -1 on error or end of file.
 */
int fdpass_recv(int ch, int flags);

#endif
