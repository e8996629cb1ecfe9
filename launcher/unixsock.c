/*
 * Unix socket files made for the workers (unixsock.h).
 */
#include "unixsock.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "asuser.h"

bool cz_unixsock_is_path(const struct sockaddr *sa, socklen_t len)
{
	const struct sockaddr_un *sun = (const void *)sa;

	return sa->sa_family == AF_UNIX &&
	       len > offsetof(struct sockaddr_un, sun_path) &&
	       sun->sun_path[0] != '\0';
}

/* What the step that binds reports besides the fd of the directory. */
struct bound_file {
	bool found;
	dev_t dev;
	ino_t ino;
};

struct bind_arg {
	int fd;
	const struct sockaddr_un *sun;
	socklen_t len;
	const char *dir;   /* the path up to its last '/' ("/" for "/x") */
	const char *base;  /* after it */
};

/*
 * Binds by the full path, as the app asked (getsockname and the clients'
 * getpeername show it, as without clusterize), then finds the file again
 * from its directory, opened right after.  A worker racing to swap the
 * path between the two at worst makes us record another socket file in a
 * directory it can write to: removing that later, as the worker, takes
 * nothing from anyone but the worker.
 */
static int bind_step(void *arg, struct cz_asuser_out *out)
{
	const struct bind_arg *b = arg;
	struct bound_file f = { false, 0, 0 };
	struct stat st;
	int dirfd;

	if (bind(b->fd, (const void *)b->sun, b->len) < 0) {
		return -errno;
	}
	dirfd = open(b->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd >= 0 && fstatat(dirfd, b->base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISSOCK(st.st_mode)) {
		f = (struct bound_file){ true, st.st_dev, st.st_ino };
		out->fds[out->nfds++] = dirfd;
	} else if (dirfd >= 0) {
		close(dirfd);
	}
	memcpy(out->data, &f, sizeof(f));
	out->len = sizeof(f);
	return 0;
}

/* Splits the path of `sun` into dir and base (in u->base). */
static int split_path(const struct sockaddr_un *sun, socklen_t len,
	char *dir, size_t dirlen, struct cz_unixsock *u)
{
	size_t off = offsetof(struct sockaddr_un, sun_path);
	size_t n = strnlen(sun->sun_path, len - off);
	const char *slash;

	if (sun->sun_path[0] != '/') {
		return -EINVAL;
	}
	if (n >= dirlen) {
		return -ENAMETOOLONG;
	}
	memcpy(dir, sun->sun_path, n);
	dir[n] = '\0';
	slash = strrchr(dir, '/');
	snprintf(u->base, sizeof(u->base), "%s", slash + 1);
	dir[slash == dir ? 1 : (size_t)(slash - dir)] = '\0';
	return 0;
}

int cz_unixsock_bind(int fd, const struct sockaddr *sa, socklen_t len,
	const struct cz_spawn_ids *ids, struct cz_unixsock *u)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	struct bind_arg b = {
		.fd = fd, .sun = (const void *)sa, .len = len, .dir = dir,
		.base = u->base,
	};
	struct cz_asuser_out out;
	struct bound_file f;
	int rc;

	u->dirfd = -1;
	rc = split_path(b.sun, len, dir, sizeof(dir), u);
	if (rc == 0) {
		rc = cz_asuser_run(ids, bind_step, &b, &out);
	}
	if (rc < 0) {
		return rc;
	}
	if (out.len == sizeof(f) && out.nfds == 1) {
		memcpy(&f, out.data, sizeof(f));
		u->dirfd = out.fds[0];
		u->dev = f.dev;
		u->ino = f.ino;
	} else {
		for (unsigned i = 0; i < out.nfds; i++) {
			close(out.fds[i]);
		}
	}
	return 0;
}

/*
 * The check and the unlink are two calls: between them a worker may put
 * another file at the name.  Running as the worker, the unlink can only
 * take what the worker could have taken itself.
 */
static int remove_step(void *arg, struct cz_asuser_out *out)
{
	const struct cz_unixsock *u = arg;
	struct stat st;

	(void)out;
	if (fstatat(u->dirfd, u->base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		return -errno;
	}
	if (!S_ISSOCK(st.st_mode) || st.st_dev != u->dev ||
	    st.st_ino != u->ino) {
		return -ESTALE;
	}
	return unlinkat(u->dirfd, u->base, 0) < 0 ? -errno : 0;
}

int cz_unixsock_remove(struct cz_unixsock *u, const struct cz_spawn_ids *ids)
{
	struct cz_asuser_out out;
	int rc;

	if (u->dirfd < 0) {
		return -ENOENT;
	}
	rc = cz_asuser_run(ids, remove_step, u, &out);
	close(u->dirfd);
	u->dirfd = -1;
	return rc;
}
