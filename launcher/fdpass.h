/*
 * Sending a message with one fd attached (SCM_RIGHTS), as the control
 * replies, Node's channel and the rr channels all do.
 */
#ifndef CZ_LAUNCHER_FDPASS_H
#define CZ_LAUNCHER_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Sends `len` bytes of `buf` on `sock` with `fd` attached, or nothing
 * attached when `fd` < 0; `flags` as sendmsg's.  Retries EINTR.  Returns
 * the bytes sent or -errno.
 */
ssize_t cz_fdpass_send(int sock, const void *buf, size_t len, int fd, int flags);

#endif
