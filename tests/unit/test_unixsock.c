/*
 * unixsock: socket files are made (as the workers' user with ids) and
 * removed only while their name, reached from the directory they were made
 * in and not through a symlink, is still that socket.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "unixsock.h"

static char dir[64];
static int fd = -1;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/cz-unixsock-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(chmod(dir, 0777 | S_ISVTX), 0); /* like /tmp */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
}

static void teardown(void)
{
	char cmd[128];

	if (fd >= 0) {
		close(fd);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(unixsock, .init = setup, .fini = teardown);

static socklen_t sun_of(struct sockaddr_un *sun, const char *path)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	cr_assert_lt(strlen(path), sizeof(sun->sun_path));
	memcpy(sun->sun_path, path, strlen(path) + 1);
	return (socklen_t)sizeof(*sun);
}

static int bind_path(const char *path, const struct cz_spawn_ids *ids,
	struct cz_unixsock *u)
{
	struct sockaddr_un sun;
	socklen_t len = sun_of(&sun, path);

	return cz_unixsock_bind(fd, (struct sockaddr *)&sun, len, ids, u);
}

static void path_in(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

Test(unixsock, only_paths_are_files)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	cr_expect_not(cz_unixsock_is_path((struct sockaddr *)&sun, sizeof(sa_family_t)),
		"autobind");
	sun.sun_path[1] = 'x';
	cr_expect_not(cz_unixsock_is_path((struct sockaddr *)&sun, sizeof(sun)), "abstract");
	sun.sun_path[0] = '/';
	cr_expect(cz_unixsock_is_path((struct sockaddr *)&sun, sizeof(sun)));
}

Test(unixsock, made_recorded_and_removed)
{
	struct cz_unixsock u;
	struct sockaddr_un got;
	socklen_t len = sizeof(got);
	struct stat st;
	char path[96];

	path_in(path, sizeof(path), "a.sock");
	cr_assert_eq(bind_path(path, NULL, &u), 0);
	cr_assert_geq(u.dirfd, 0, "the directory is kept");
	cr_expect_str_eq(u.base, "a.sock");
	cr_assert_eq(lstat(path, &st), 0);
	cr_expect(u.dev == st.st_dev && u.ino == st.st_ino, "the file is recorded");
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&got, &len), 0);
	cr_expect_str_eq(got.sun_path, path, "bound by the path asked for");
	cr_expect_eq(cz_unixsock_remove(&u, NULL), 0);
	cr_expect_eq(u.dirfd, -1);
	cr_expect_neq(lstat(path, &st), 0, "removed");
}

Test(unixsock, relative_paths_are_refused)
{
	struct cz_unixsock u;

	cr_expect_eq(bind_path("rel.sock", NULL, &u), -EINVAL);
	cr_expect_eq(u.dirfd, -1);
}

Test(unixsock, bind_errors_are_the_kernels)
{
	struct cz_unixsock u;
	char path[96];

	path_in(path, sizeof(path), "missing/a.sock");
	cr_expect_eq(bind_path(path, NULL, &u), -ENOENT);
	path_in(path, sizeof(path), "a.sock");
	cr_assert_eq(close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600)), 0);
	cr_expect_eq(bind_path(path, NULL, &u), -EADDRINUSE);
}

/* Another file renamed into the socket's place is left alone. */
Test(unixsock, a_replaced_file_is_kept)
{
	struct cz_unixsock u;
	char path[96], other[96];
	struct stat st;

	path_in(path, sizeof(path), "a.sock");
	path_in(other, sizeof(other), "other");
	cr_assert_eq(bind_path(path, NULL, &u), 0);
	cr_assert_eq(close(open(other, O_CREAT | O_WRONLY | O_CLOEXEC, 0600)), 0);
	cr_assert_eq(rename(other, path), 0);
	cr_expect_eq(cz_unixsock_remove(&u, NULL), -ESTALE);
	cr_expect_eq(lstat(path, &st), 0, "still there");
	cr_expect(S_ISREG(st.st_mode));
}

/* A symlink put in the socket's place is not followed, nor removed. */
Test(unixsock, a_symlink_in_its_place_is_kept)
{
	struct cz_unixsock u, v;
	char path[96], victim[96], tmp[96];
	struct stat st;
	int vfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	path_in(path, sizeof(path), "a.sock");
	path_in(victim, sizeof(victim), "victim.sock");
	path_in(tmp, sizeof(tmp), "link");
	cr_assert_eq(bind_path(path, NULL, &u), 0);
	/* A socket of someone else's, the symlink's target. */
	int keep = fd;

	fd = vfd;
	cr_assert_eq(bind_path(victim, NULL, &v), 0);
	fd = keep;
	cr_assert_eq(symlink(victim, tmp), 0);
	cr_assert_eq(rename(tmp, path), 0);
	cr_expect_eq(cz_unixsock_remove(&u, NULL), -ESTALE);
	cr_expect_eq(lstat(victim, &st), 0, "the target is still there");
	cr_expect_eq(lstat(path, &st), 0, "and the symlink");
	cr_expect(S_ISLNK(st.st_mode));
	cr_expect_eq(cz_unixsock_remove(&v, NULL), 0);
	close(vfd);
}

/*
 * Its directory renamed and a symlink to another directory put in its
 * place: the socket is removed where it now is, the other directory's
 * file of the same name stays.
 */
Test(unixsock, a_moved_directory_is_followed_not_the_symlink)
{
	struct cz_unixsock u;
	char sub[96], path[128], moved[96], other[96], victim[128], mpath[128];
	struct stat st;

	path_in(sub, sizeof(sub), "sub");
	path_in(moved, sizeof(moved), "sub.old");
	path_in(other, sizeof(other), "other");
	snprintf(path, sizeof(path), "%s/x.sock", sub);
	snprintf(victim, sizeof(victim), "%s/x.sock", other);
	snprintf(mpath, sizeof(mpath), "%s/x.sock", moved);
	cr_assert_eq(mkdir(sub, 0755), 0);
	cr_assert_eq(mkdir(other, 0755), 0);
	cr_assert_eq(close(open(victim, O_CREAT | O_WRONLY | O_CLOEXEC, 0600)), 0);
	cr_assert_eq(bind_path(path, NULL, &u), 0);
	cr_assert_eq(rename(sub, moved), 0);
	cr_assert_eq(symlink(other, sub), 0);
	cr_expect_eq(cz_unixsock_remove(&u, NULL), 0);
	cr_expect_eq(lstat(victim, &st), 0, "the other directory's file stays");
	cr_expect_neq(lstat(mpath, &st), 0, "the socket is removed where it moved");
}

/* --- as the workers' user (root only) ----------------------------------- */

static const struct cz_spawn_ids worker = {
	.set = true, .uid = 54321, .gid = 54322,
};

static void need_root(void)
{
	if (geteuid() != 0) {
		cr_skip_test("taking another user's identity needs root");
	}
}

Test(unixsock, the_workers_user_makes_the_file)
{
	need_root();
	struct cz_unixsock u;
	struct stat st;
	char path[96];

	path_in(path, sizeof(path), "w.sock");
	cr_assert_eq(bind_path(path, &worker, &u), 0);
	cr_assert_eq(lstat(path, &st), 0);
	cr_expect_eq(st.st_uid, 54321, "owner %u", (unsigned)st.st_uid);
	cr_expect_eq(st.st_gid, 54322, "group %u", (unsigned)st.st_gid);
	cr_expect_eq(cz_unixsock_remove(&u, &worker), 0);
	cr_expect_neq(lstat(path, &st), 0);
}

Test(unixsock, the_workers_user_gets_its_errno)
{
	need_root();
	struct cz_unixsock u;
	char path[96];
	struct stat st;

	cr_expect_eq(bind_path("/root/cz-unixsock-test.sock", &worker, &u), -EACCES);
	cr_expect_neq(lstat("/root/cz-unixsock-test.sock", &st), 0);
	cr_assert_eq(chmod(dir, 0755), 0);
	path_in(path, sizeof(path), "w.sock");
	cr_expect_eq(bind_path(path, &worker, &u), -EACCES, "no write permission");
	cr_expect_neq(lstat(path, &st), 0);
}

/*
 * The removal runs as the worker: in a sticky directory, a root socket
 * that replaced the worker's (same name, dev and inode faked aside) could
 * not be removed by it, so it stays.
 */
Test(unixsock, removal_cannot_take_what_the_worker_could_not)
{
	need_root();
	struct cz_unixsock u, v;
	char path[96];
	struct stat st;
	int rfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), keep = fd;

	path_in(path, sizeof(path), "w.sock");
	cr_assert_eq(bind_path(path, &worker, &u), 0);
	cr_assert_eq(unlink(path), 0);
	fd = rfd;
	cr_assert_eq(bind_path(path, NULL, &v), 0); /* root's now */
	fd = keep;
	/* Pretend the worker's record names root's file. */
	u.dev = v.dev;
	u.ino = v.ino;
	cr_expect_eq(cz_unixsock_remove(&u, &worker), -EPERM);
	cr_expect_eq(lstat(path, &st), 0, "root's socket stays");
	cr_expect_eq(cz_unixsock_remove(&v, NULL), 0);
	close(rfd);
}
