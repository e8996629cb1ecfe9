/*
 * The exported wrappers: each calls shim_<fn>, which returns a result or a
 * negative errno, and turns that into libc's -1/errno, leaving errno as it
 * was on success.  Plus the constructor.  Never linked into tests.
 */

/* With 64-bit off_t, <fcntl.h> renames fcntl to fcntl64; we define both. */
#undef _FILE_OFFSET_BITS
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "held.h"
#include "ctl.h"
#include "fds.h"
#include "fdtab.h"
#include "log.h"
#include "node.h"
#include "sock.h"
#include "syms.h"

#define CZ_EXPORT __attribute__((visibility("default")))

/* glibc exports these aliases without declaring them. */
int __close(int fd);
int __dup2(int oldfd, int newfd);
int __fcntl(int fd, int cmd, ...);

static inline long ret(long r, int saved)
{
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	errno = saved;
	return r;
}

#define WRAP(expr) do { int saved_ = errno; return ret((expr), saved_); } while (0)

CZ_EXPORT int socket(int domain, int type, int protocol)
{
	WRAP(shim_socket(domain, type, protocol));
}

CZ_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	WRAP(shim_sendmsg(fd, msg, flags));
}

CZ_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int n, int flags)
{
	WRAP(shim_sendmmsg(fd, vec, n, flags));
}

CZ_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	WRAP(shim_recvmsg(fd, msg, flags));
}

CZ_EXPORT int bind(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
	WRAP(shim_bind(fd, addr.__sockaddr__, len));
}

CZ_EXPORT int listen(int fd, int backlog)
{
	WRAP(shim_listen(fd, backlog));
}

CZ_EXPORT int accept(int fd, __SOCKADDR_ARG addr, socklen_t *restrict len)
{
	WRAP(shim_accept4(fd, addr.__sockaddr__, len, 0, 1));
}

CZ_EXPORT int accept4(int fd, __SOCKADDR_ARG addr, socklen_t *restrict len,
	int flags)
{
	WRAP(shim_accept4(fd, addr.__sockaddr__, len, flags, 0));
}

CZ_EXPORT int getsockname(int fd, __SOCKADDR_ARG addr, socklen_t *restrict len)
{
	WRAP(shim_getsockname(fd, addr.__sockaddr__, len));
}

CZ_EXPORT int getpeername(int fd, __SOCKADDR_ARG addr, socklen_t *restrict len)
{
	WRAP(shim_getpeername(fd, addr.__sockaddr__, len));
}

CZ_EXPORT int getsockopt(int fd, int level, int name, void *restrict val,
	socklen_t *restrict len)
{
	WRAP(shim_getsockopt(fd, level, name, val, len));
}

CZ_EXPORT int setsockopt(int fd, int level, int name, const void *val,
	socklen_t len)
{
	WRAP(shim_setsockopt(fd, level, name, val, len));
}

CZ_EXPORT int shutdown(int fd, int how)
{
	WRAP(shim_shutdown(fd, how));
}

CZ_EXPORT int connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
	WRAP(shim_connect(fd, addr.__sockaddr__, len));
}

CZ_EXPORT int close(int fd)
{
	WRAP(shim_close(fd));
}

CZ_EXPORT int __close(int fd)
{
	WRAP(shim_close(fd));
}

CZ_EXPORT int dup(int fd)
{
	WRAP(shim_dup(fd));
}

CZ_EXPORT int dup2(int oldfd, int newfd)
{
	WRAP(shim_dup2(oldfd, newfd));
}

CZ_EXPORT int __dup2(int oldfd, int newfd)
{
	WRAP(shim_dup2(oldfd, newfd));
}

CZ_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	WRAP(shim_dup3(oldfd, newfd, flags));
}

static int do_fcntl(int fd, int cmd, va_list ap)
{
	void *arg = va_arg(ap, void *);

	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
		WRAP(shim_fcntl_dup(fd, cmd, (long)arg));
	}
	if (cmd == F_SETFD) {
		WRAP(shim_fcntl_setfd(fd, (int)(long)arg));
	}
	return real_fcntl_libc(fd, cmd, arg);
}

CZ_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	int r;

	va_start(ap, cmd);
	r = do_fcntl(fd, cmd, ap);
	va_end(ap);
	return r;
}

/* Programs built with _FILE_OFFSET_BITS=64 call fcntl64; glibc's own
 * exports include __fcntl.  Same function. */
CZ_EXPORT int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));
CZ_EXPORT int __fcntl(int fd, int cmd, ...) __attribute__((alias("fcntl")));

CZ_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	WRAP(shim_close_range(first, last, flags));
}

CZ_EXPORT void closefrom(int lowfd)
{
	int saved = errno;

	shim_closefrom(lowfd);
	errno = saved;
}

/* libc closes an fdopen()ed fd with its own internal close(). */
CZ_EXPORT int fclose(FILE *fp)
{
	int saved = errno, fd = fp != NULL ? fileno(fp) : -1, r;

	errno = saved;
	if (fd >= 0) {
		cz_held_drop(fd);
	}
	r = real_fclose_libc(fp);
	if (fd >= 0) {
		saved = errno;
		shim_fclosed(fd);
		errno = saved;
	}
	return r;
}

CZ_EXPORT long syscall(long n, ...)
{
	long a[6];
	va_list ap;
	int i;

	va_start(ap, n);
	for (i = 0; i < 6; i++) {
		a[i] = va_arg(ap, long);
	}
	va_end(ap);
	if (shim_syscall_routed(n)) {
		WRAP(shim_syscall(n, a));
	}
	return real_syscall6(n, a);
}

/* --- fork handlers and constructor --------------------------------------- */

static void atfork_prepare(void)
{
	cz_syms_bind();
	cz_ctl_atfork_prepare();
	cz_fdtab_lock();
}

static void atfork_parent(void)
{
	cz_fdtab_atfork_parent();
	cz_fdtab_unlock();
	cz_ctl_atfork_parent();
}

static void atfork_child(void)
{
	cz_fdtab_atfork_child();
	cz_held_atfork_child();
	cz_ctl_atfork_child();
}

/* glibc passes argc, argv and envp to a library's constructors too. */
__attribute__((constructor)) static void clusterize_init(int argc, char **argv)
{
	const char *ctl = getenv(CZ_ENV_CONTROL_FD);
	uint32_t flags = 0;
	struct rlimit rl;
	size_t n = 1u << 20;
	int saved = errno;

	cz_syms_bind();
	cz_log_init();
	if (ctl == NULL || ctl[0] == '\0') {
		errno = saved;
		return; /* not a worker: pass everything through */
	}
	if (getenv(CZ_ENV_WORKER_ID) != NULL) {
		flags |= cz_node_fixup_env(argc, argv);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY &&
	    rl.rlim_max < n) {
		n = (size_t)rl.rlim_max;
	}
	if (cz_fdtab_init(n) < 0) {
		cz_log_warn("cannot map the fd table: not managing sockets");
		errno = saved;
		return;
	}
	if (cz_held_init(n) < 0) {
		cz_log_warn("cannot map the connection marks: the primary will "
			"not know this worker's open connections");
	}
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	cz_ctl_init(flags);
	errno = saved;
}
