/*
 * The real libc functions behind the wrappers.  Every symbol is bound once
 * (pthread_once + dlsym(RTLD_NEXT), so the shim stacks with other preloads);
 * until that is done, and from inside dlsym itself, the calls fall back to
 * raw syscalls (dlsym may allocate, and an allocator may call back in).
 *
 * Unlike libc, real_<fn> returns the result or a negative errno, and may
 * clobber errno: the exported wrappers restore it.
 */
#ifndef CZ_SHIM_SYMS_H
#define CZ_SHIM_SYMS_H

#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Binds every symbol (idempotent; the constructor calls it first). */
void cz_syms_bind(void);

int real_close(int fd);
int real_dup(int fd);
int real_dup2(int oldfd, int newfd);
int real_dup3(int oldfd, int newfd, int flags);
int real_fcntl(int fd, int cmd, void *arg);
int real_close_range(unsigned first, unsigned last, int flags);
int real_closefrom(int lowfd); /* -ENOSYS when libc has none */
int real_socket(int domain, int type, int protocol);
int real_bind(int fd, const struct sockaddr *addr, socklen_t len);
int real_listen(int fd, int backlog);
int real_accept(int fd, struct sockaddr *addr, socklen_t *len);
int real_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int real_getsockname(int fd, struct sockaddr *addr, socklen_t *len);
int real_getpeername(int fd, struct sockaddr *addr, socklen_t *len);
int real_getsockopt(int fd, int level, int name, void *val, socklen_t *len);
int real_setsockopt(int fd, int level, int name, const void *val, socklen_t len);
int real_shutdown(int fd, int how);
int real_connect(int fd, const struct sockaddr *addr, socklen_t len);
ssize_t real_sendmsg(int fd, const struct msghdr *msg, int flags);
int real_sendmmsg(int fd, struct mmsghdr *vec, unsigned n, int flags);
ssize_t real_recvmsg(int fd, struct msghdr *msg, int flags);

/* libc's fcntl(), fclose() and syscall(): libc conventions (-1 and errno). */
int real_fcntl_libc(int fd, int cmd, void *arg);
int real_fclose_libc(FILE *fp);
long real_syscall6(long n, const long a[6]);

/* Raw syscalls that never go through libc (and so never through us). */
long cz_raw_syscall6(long n, long a, long b, long c, long d, long e, long f);
long cz_raw_write(int fd, const void *buf, size_t len);
long cz_raw_getpid(void);

/* A few helpers on top of the real functions. */
int cz_getsockopt_int(int fd, int level, int name, int *out);

#endif
