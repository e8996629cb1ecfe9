/*
 * Unix socket files the primary makes for the workers.
 *
 * A root primary must never act on a path a worker can change.  So a
 * socket file is made, and later removed, with the workers' file system
 * identity (asuser.h) when they run as another user: the kernel creates
 * the file owned by them (nothing is ever chowned), refuses a path they
 * could not create with their errno (EACCES in /root, ENOENT, ...), and a
 * removal can delete nothing they could not delete themselves.
 *
 * Where the file is, is recorded when it is made: the directory (an
 * O_PATH fd), the name in it, and the file's device and inode.  It is
 * removed only if that name in that directory, not followed if it is a
 * symlink, is still that socket.  Renaming the directory or putting a
 * symlink or another file in its place makes the primary leave it alone.
 *
 * Abstract and autobound sockets have no file: they are not for this
 * module.
 */
#ifndef CZ_LAUNCHER_UNIXSOCK_H
#define CZ_LAUNCHER_UNIXSOCK_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "spawn.h"

struct cz_unixsock {
	int dirfd;       /* the file's directory (O_PATH); -1: nothing to remove */
	dev_t dev;
	ino_t ino;
	char base[108];  /* the file's name in dirfd */
};

/* Whether a unix address names a file (not abstract, not autobind). */
bool cz_unixsock_is_path(const struct sockaddr *sa, socklen_t len);

/*
 * Binds socket `fd` to the unix path of `sa` as the workers' user `ids`
 * (NULL or not set: the launcher's own) and records the file in `u`
 * (u->dirfd -1 if it could not be found again right after: then it is
 * never removed).  A path that is not absolute is refused (-EINVAL): the
 * shim makes a worker's relative path absolute from the worker's own
 * working directory.  Returns 0 or the bind's -errno.
 */
int cz_unixsock_bind(int fd, const struct sockaddr *sa, socklen_t len,
	const struct cz_spawn_ids *ids, struct cz_unixsock *u);

/*
 * Removes the file `u` records if it is still the socket that was made,
 * as the workers' user `ids`; closes u->dirfd.  Returns 0 if it was
 * removed, else a negative errno (-ESTALE: something else is there now).
 */
int cz_unixsock_remove(struct cz_unixsock *u, const struct cz_spawn_ids *ids);

#endif
