#include "fds.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "held.h"
#include "ctl.h"
#include "fdtab.h"
#include "sock.h"
#include "spare.h"
#include "syms.h"

#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* Clears `fd`'s slot; the last close of a record gives its hold back. */
static void drop_slot(int fd)
{
	struct cz_fdrec last;

	if (cz_fdtab_put(cz_fdtab_set(fd, NULL), &last)) {
		cz_sock_release(&last);
	}
}

int shim_close(int fd)
{
	struct cz_fdrec *rec = cz_fdtab_get(fd);
	int r;

	/* Before the close: once it is done, another thread's accept may
	 * get the same number. */
	cz_held_drop(fd);
	if (__builtin_expect(rec == NULL, 1)) {
		return real_close(fd);
	}
	if (rec->state == CZ_FD_INTERNAL) {
		return -EBADF; /* not the app's fd */
	}
	r = real_close(fd);
	/* Linux closes the fd even when close() reports EINTR/EIO. */
	if (r == 0 || r == -EINTR || r == -EIO) {
		drop_slot(fd);
	} else if (r == -EBADF) {
		drop_slot(fd); /* stale */
	}
	return r;
}

void shim_fclosed(int fd)
{
	struct cz_fdrec *rec = cz_fdtab_get(fd);

	if (rec != NULL && rec->state != CZ_FD_INTERNAL) {
		drop_slot(fd);
	}
}

/* `newfd` now refers to whatever `oldfd` is. */
static void after_dup(int oldfd, int newfd)
{
	struct cz_fdrec last;

	cz_held_dup(oldfd, newfd);
	if (cz_fdtab_get(oldfd) == NULL && cz_fdtab_get(newfd) == NULL) {
		return;
	}
	if (cz_fdtab_put(cz_fdtab_dup(oldfd, newfd), &last)) {
		cz_sock_release(&last);
	}
}

int shim_dup(int fd)
{
	int r = real_dup(fd);

	if (r >= 0) {
		after_dup(fd, r);
	}
	return r;
}

static int dup_onto(int oldfd, int newfd, int flags, int three)
{
	struct cz_fdrec *t = cz_fdtab_get(newfd);
	int moved = 0, r;

	if (t != NULL && t->state == CZ_FD_INTERNAL && oldfd != newfd) {
		/* A spare is let go; anything else of the shim's moves. */
		if (!cz_spare_forget(newfd)) {
			cz_ctl_move_away(newfd);
		}
		moved = 1;
	}
	r = three ? real_dup3(oldfd, newfd, flags) : real_dup2(oldfd, newfd);
	if (r < 0) {
		if (moved) {
			real_close(newfd); /* it lives on elsewhere, or is not needed */
		}
		return r;
	}
	if (oldfd != newfd) {
		after_dup(oldfd, newfd);
	}
	return r;
}

int shim_dup2(int oldfd, int newfd)
{
	return dup_onto(oldfd, newfd, 0, 0);
}

int shim_dup3(int oldfd, int newfd, int flags)
{
	return dup_onto(oldfd, newfd, flags, 1);
}

/* The shim's own fds keep their flags: the attach socket must stay
 * inheritable, the others close-on-exec. */
int shim_fcntl_setfd(int fd, int flags)
{
	struct cz_fdrec *rec = cz_fdtab_get(fd);

	if (rec != NULL && rec->state == CZ_FD_INTERNAL) {
		return -EBADF;
	}
	return real_fcntl(fd, F_SETFD, (void *)(long)flags);
}

int shim_fcntl_dup(int fd, int cmd, long arg)
{
	int r = real_fcntl(fd, cmd, (void *)arg);

	if (r >= 0) {
		after_dup(fd, r);
	}
	return r;
}

/* close_range() minus the shim's own fds, which it splits the range around. */
static int close_range_around(unsigned first, unsigned last, int flags,
	unsigned top)
{
	unsigned lo = first, fd;
	int r = 0;

	for (fd = first; fd <= top; fd++) {
		struct cz_fdrec *rec = cz_fdtab_get((int)fd);

		if (rec == NULL || rec->state != CZ_FD_INTERNAL) {
			continue;
		}
		if (fd > lo && (r = real_close_range(lo, fd - 1, flags)) < 0) {
			return r;
		}
		lo = fd + 1;
	}
	if (lo <= last) {
		r = real_close_range(lo, last, flags);
	}
	return r;
}

int shim_close_range(unsigned first, unsigned last, int flags)
{
	int max = cz_fdtab_max();
	unsigned top, fd;
	int r;

	/* Only flags the kernel knows close anything (CLOEXEC closes later,
	 * at exec, where the image's marks go anyway). */
	if ((flags & ~CLOSE_RANGE_UNSHARE) == 0) {
		cz_held_drop_range(first, last);
	}
	if (max < 0 || first > (unsigned)max || first > last) {
		return real_close_range(first, last, flags);
	}
	top = last < (unsigned)max ? last : (unsigned)max;
	/* CLOSE_RANGE_CLOEXEC too: the attach socket must stay inheritable. */
	r = close_range_around(first, last, flags, top);
	if (r < 0 || (flags & CLOSE_RANGE_CLOEXEC)) {
		return r;
	}
	for (fd = first; fd <= top; fd++) {
		struct cz_fdrec *rec = cz_fdtab_get((int)fd);

		if (rec != NULL && rec->state != CZ_FD_INTERNAL) {
			drop_slot((int)fd);
		}
	}
	return r;
}

void shim_closefrom(int lowfd)
{
	int max, fd;

	if (lowfd < 0) {
		lowfd = 0;
	}
	if (shim_close_range((unsigned)lowfd, ~0U, 0) != -ENOSYS) {
		return;
	}
	/* Kernels before 5.9: one by one, as glibc would from /proc. */
	max = (int)sysconf(_SC_OPEN_MAX);
	for (fd = lowfd; fd < max; fd++) {
		shim_close(fd);
	}
}

int shim_syscall_routed(long n)
{
	switch (n) {
	case SYS_close:
	case SYS_accept:
	case SYS_accept4:
	case SYS_dup:
	case SYS_dup2:
	case SYS_dup3:
	case SYS_fcntl:
	case SYS_close_range:
	case SYS_bind:
	case SYS_listen:
	case SYS_connect:
	case SYS_getsockname:
	case SYS_getpeername:
	case SYS_getsockopt:
	case SYS_setsockopt:
	case SYS_shutdown:
		return 1;
	default:
		return 0;
	}
}

static long fcntl_syscall(const long a[6])
{
	int cmd = (int)a[1];

	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
		return shim_fcntl_dup((int)a[0], cmd, a[2]);
	}
	if (cmd == F_SETFD) {
		return shim_fcntl_setfd((int)a[0], (int)a[2]);
	}
	return real_fcntl((int)a[0], cmd, (void *)a[2]);
}

long shim_syscall(long n, const long a[6])
{
	int fd = (int)a[0];

	switch (n) {
	case SYS_close:
		return shim_close(fd);
	case SYS_accept:
		return shim_accept4(fd, (void *)a[1], (void *)a[2], 0, 1);
	case SYS_accept4:
		return shim_accept4(fd, (void *)a[1], (void *)a[2], (int)a[3], 0);
	case SYS_dup:
		return shim_dup(fd);
	case SYS_dup2:
		return shim_dup2(fd, (int)a[1]);
	case SYS_dup3:
		return shim_dup3(fd, (int)a[1], (int)a[2]);
	case SYS_fcntl:
		return fcntl_syscall(a);
	case SYS_close_range:
		return shim_close_range((unsigned)a[0], (unsigned)a[1], (int)a[2]);
	case SYS_bind:
		return shim_bind(fd, (void *)a[1], (socklen_t)a[2]);
	case SYS_listen:
		return shim_listen(fd, (int)a[1]);
	case SYS_connect:
		return shim_connect(fd, (void *)a[1], (socklen_t)a[2]);
	case SYS_getsockname:
		return shim_getsockname(fd, (void *)a[1], (void *)a[2]);
	case SYS_getpeername:
		return shim_getpeername(fd, (void *)a[1], (void *)a[2]);
	case SYS_getsockopt:
		return shim_getsockopt(fd, (int)a[1], (int)a[2], (void *)a[3],
			(void *)a[4]);
	case SYS_setsockopt:
		return shim_setsockopt(fd, (int)a[1], (int)a[2], (const void *)a[3],
			(socklen_t)a[4]);
	case SYS_shutdown:
		return shim_shutdown(fd, (int)a[1]);
	default:
		return -ENOSYS;
	}
}
