/*
 * The fd-level logic behind the wrappers: every way an fd can be closed or
 * duplicated keeps the fd table true, and none of them may close or
 * overwrite the shim's own fds.  Functions return the libc result or a
 * negative errno.
 */
#ifndef CZ_SHIM_FDS_H
#define CZ_SHIM_FDS_H

int shim_close(int fd);
/* fclose() closed `fd` inside libc, where no wrapper sees it: forget it. */
void shim_fclosed(int fd);
int shim_dup(int fd);
int shim_dup2(int oldfd, int newfd);
int shim_dup3(int oldfd, int newfd, int flags);
/* F_DUPFD and F_DUPFD_CLOEXEC only; other commands go straight to libc. */
int shim_fcntl_dup(int fd, int cmd, long arg);
int shim_fcntl_setfd(int fd, int flags);
int shim_close_range(unsigned first, unsigned last, int flags);
void shim_closefrom(int lowfd);

/* Whether syscall(n, ...) is routed through the shim. */
int shim_syscall_routed(long n);
/* A routed syscall: the result or a negative errno. */
long shim_syscall(long n, const long a[6]);

#endif
