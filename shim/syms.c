#include "syms.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The symbols bound, as (field, libc name). */
#define CZ_SYMS(X)                          \
	X(close, "close")                   \
	X(dup, "dup")                       \
	X(dup2, "dup2")                     \
	X(dup3, "dup3")                     \
	X(fcntl, "fcntl64")                 \
	X(close_range, "close_range")       \
	X(closefrom, "closefrom")           \
	X(socket, "socket")                 \
	X(bind, "bind")                     \
	X(listen, "listen")                 \
	X(accept, "accept")                 \
	X(accept4, "accept4")               \
	X(getsockname, "getsockname")       \
	X(getpeername, "getpeername")       \
	X(getsockopt, "getsockopt")         \
	X(setsockopt, "setsockopt")         \
	X(shutdown, "shutdown")             \
	X(connect, "connect")               \
	X(sendmsg, "sendmsg")               \
	X(sendmmsg, "sendmmsg")             \
	X(recvmsg, "recvmsg")               \
	X(fclose, "fclose")                 \
	X(syscall, "syscall")

static struct {
#define X(f, s) __typeof__(f) *f;
	CZ_SYMS(X)
#undef X
} libc;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static atomic_int ready;
static __thread int binding __attribute__((tls_model("initial-exec")));

long cz_raw_syscall6(long n, long a, long b, long c, long d, long e, long f)
{
#if defined(__x86_64__)
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;

	__asm__ volatile("syscall"
		: "=a"(ret)
		: "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
		: "rcx", "r11", "memory");
	return ret;
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	register long x5 __asm__("x5") = f;

	__asm__ volatile("svc 0"
		: "+r"(x0)
		: "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
		: "memory");
	return x0;
#else
#error "clusterize's shim supports x86_64 and aarch64"
#endif
}

#define RAW(n, a, b, c, d) cz_raw_syscall6((n), (long)(a), (long)(b), \
	(long)(c), (long)(d), 0, 0)

long cz_raw_write(int fd, const void *buf, size_t len)
{
	return RAW(SYS_write, fd, buf, len, 0);
}

long cz_raw_getpid(void)
{
	return RAW(SYS_getpid, 0, 0, 0, 0);
}

static void bind_all(void)
{
	binding = 1;
#define X(f, s) libc.f = (__typeof__(f) *)dlsym(RTLD_NEXT, s);
	CZ_SYMS(X)
#undef X
	if (libc.fcntl == NULL) {
		libc.fcntl = (__typeof__(fcntl) *)dlsym(RTLD_NEXT, "fcntl");
	}
	binding = 0;
	atomic_store_explicit(&ready, 1, memory_order_release);
}

void cz_syms_bind(void)
{
	if (!binding) {
		pthread_once(&once, bind_all);
	}
}

/* True when libc.<f> may be used; false means "use the raw syscall". */
static inline int have(void *const *slot)
{
	if (__builtin_expect(atomic_load_explicit(&ready, memory_order_acquire), 1)) {
		return *slot != NULL;
	}
	cz_syms_bind();
	return atomic_load_explicit(&ready, memory_order_acquire) && *slot != NULL;
}

#define HAVE(f) have((void *const *)&libc.f)
#define RET(expr) do { long r_ = (expr); return r_ < 0 ? -errno : (int)r_; } while (0)

int real_close(int fd)
{
	if (HAVE(close)) {
		RET(libc.close(fd));
	}
	return (int)RAW(SYS_close, fd, 0, 0, 0);
}

int real_dup(int fd)
{
	if (HAVE(dup)) {
		RET(libc.dup(fd));
	}
	return (int)RAW(SYS_dup, fd, 0, 0, 0);
}

int real_dup2(int oldfd, int newfd)
{
	if (HAVE(dup2)) {
		RET(libc.dup2(oldfd, newfd));
	}
#ifdef SYS_dup2
	return (int)RAW(SYS_dup2, oldfd, newfd, 0, 0);
#else
	if (oldfd == newfd) {
		long r = RAW(SYS_fcntl, oldfd, F_GETFD, 0, 0);
		return r < 0 ? (int)r : oldfd;
	}
	return (int)RAW(SYS_dup3, oldfd, newfd, 0, 0);
#endif
}

int real_dup3(int oldfd, int newfd, int flags)
{
	if (HAVE(dup3)) {
		RET(libc.dup3(oldfd, newfd, flags));
	}
	return (int)RAW(SYS_dup3, oldfd, newfd, flags, 0);
}

int real_fcntl(int fd, int cmd, void *arg)
{
	if (HAVE(fcntl)) {
		RET(libc.fcntl(fd, cmd, arg));
	}
	return (int)RAW(SYS_fcntl, fd, cmd, arg, 0);
}

int real_fcntl_libc(int fd, int cmd, void *arg)
{
	long r;

	if (HAVE(fcntl)) {
		return libc.fcntl(fd, cmd, arg);
	}
	r = RAW(SYS_fcntl, fd, cmd, arg, 0);
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return -1;
	}
	return (int)r;
}

int real_close_range(unsigned first, unsigned last, int flags)
{
	if (HAVE(close_range)) {
		RET(libc.close_range(first, last, flags));
	}
	return (int)RAW(SYS_close_range, first, last, flags, 0);
}

int real_closefrom(int lowfd)
{
	if (HAVE(closefrom)) {
		libc.closefrom(lowfd);
		return 0;
	}
	return -ENOSYS;
}

int real_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	if (HAVE(bind)) {
		RET(libc.bind(fd, addr, len));
	}
	return (int)RAW(SYS_bind, fd, addr, len, 0);
}

int real_socket(int domain, int type, int protocol)
{
	if (HAVE(socket)) {
		RET(libc.socket(domain, type, protocol));
	}
	return (int)RAW(SYS_socket, domain, type, protocol, 0);
}

int real_listen(int fd, int backlog)
{
	if (HAVE(listen)) {
		RET(libc.listen(fd, backlog));
	}
	return (int)RAW(SYS_listen, fd, backlog, 0, 0);
}

int real_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	if (HAVE(accept)) {
		RET(libc.accept(fd, addr, len));
	}
	return (int)RAW(SYS_accept4, fd, addr, len, 0);
}

int real_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	if (HAVE(accept4)) {
		RET(libc.accept4(fd, addr, len, flags));
	}
	return (int)RAW(SYS_accept4, fd, addr, len, flags);
}

int real_getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
	if (HAVE(getsockname)) {
		RET(libc.getsockname(fd, addr, len));
	}
	return (int)RAW(SYS_getsockname, fd, addr, len, 0);
}

int real_getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
	if (HAVE(getpeername)) {
		RET(libc.getpeername(fd, addr, len));
	}
	return (int)RAW(SYS_getpeername, fd, addr, len, 0);
}

int real_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	if (HAVE(getsockopt)) {
		RET(libc.getsockopt(fd, level, name, val, len));
	}
	return (int)cz_raw_syscall6(SYS_getsockopt, fd, level, name,
		(long)val, (long)len, 0);
}

int real_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	if (HAVE(setsockopt)) {
		RET(libc.setsockopt(fd, level, name, val, len));
	}
	return (int)cz_raw_syscall6(SYS_setsockopt, fd, level, name,
		(long)val, (long)len, 0);
}

int real_shutdown(int fd, int how)
{
	if (HAVE(shutdown)) {
		RET(libc.shutdown(fd, how));
	}
	return (int)RAW(SYS_shutdown, fd, how, 0, 0);
}

ssize_t real_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	if (HAVE(sendmsg)) {
		ssize_t r = libc.sendmsg(fd, msg, flags);

		return r < 0 ? -errno : r;
	}
	return RAW(SYS_sendmsg, fd, msg, flags, 0);
}

ssize_t real_recvmsg(int fd, struct msghdr *msg, int flags)
{
	if (HAVE(recvmsg)) {
		ssize_t r = libc.recvmsg(fd, msg, flags);

		return r < 0 ? -errno : r;
	}
	return RAW(SYS_recvmsg, fd, msg, flags, 0);
}

int real_sendmmsg(int fd, struct mmsghdr *vec, unsigned n, int flags)
{
	if (HAVE(sendmmsg)) {
		RET(libc.sendmmsg(fd, vec, n, flags));
	}
	return (int)RAW(SYS_sendmmsg, fd, vec, n, flags);
}

int real_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	if (HAVE(connect)) {
		RET(libc.connect(fd, addr, len));
	}
	return (int)RAW(SYS_connect, fd, addr, len, 0);
}

/* glibc's own name for it, for the moment before dlsym answers. */
int _IO_fclose(FILE *fp);

int real_fclose_libc(FILE *fp)
{
	if (HAVE(fclose)) {
		return libc.fclose(fp);
	}
	return _IO_fclose(fp);
}

long real_syscall6(long n, const long a[6])
{
	long r;

	if (HAVE(syscall)) {
		return libc.syscall(n, a[0], a[1], a[2], a[3], a[4], a[5]);
	}
	r = cz_raw_syscall6(n, a[0], a[1], a[2], a[3], a[4], a[5]);
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

int cz_getsockopt_int(int fd, int level, int name, int *out)
{
	socklen_t len = sizeof(*out);

	*out = 0;
	return real_getsockopt(fd, level, name, out, &len);
}
