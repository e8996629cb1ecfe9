/* Spare fd slots for receiving connections: see spare.h. */
#include "spare.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>

#include "ctl.h"
#include "fdtab.h"
#include "syms.h"

/* More threads receiving at once than this make and close their own. */
#define POOL 8

/* Each spare's fd + 1; 0: empty.  A thread claims one by exchange. */
static int pool[POOL];
/* What spares are dups of (one internal eventfd), or -1 until needed. */
static int source_fd = -1;

/* Marks spares (and their source) in the fd table: the shim's own fds,
 * which the app cannot close, and which cz_spare_forget() recognises. */
static struct cz_fdrec spare_rec = { .state = CZ_FD_INTERNAL };

static void mark(int fd)
{
	cz_fdtab_put(cz_fdtab_set(fd, &spare_rec), NULL);
}

static void unmark(int fd)
{
	cz_fdtab_put(cz_fdtab_set(fd, NULL), NULL);
}

static int source(void)
{
	int s = __atomic_load_n(&source_fd, __ATOMIC_ACQUIRE);
	int e, none = -1;

	if (s >= 0) {
		return s;
	}
	e = eventfd(0, EFD_CLOEXEC);
	if (e < 0) {
		return -errno;
	}
	e = cz_ctl_stash(e);
	mark(e);
	if (__atomic_compare_exchange_n(&source_fd, &none, e, 0,
		    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		return e;
	}
	/* Another thread made one first. */
	unmark(e);
	real_close(e);
	return none;
}

/* A new spare at the lowest free slot, so under any limit; or -errno. */
static int make(void)
{
	int s = source(), fd;

	if (s < 0) {
		return s;
	}
	fd = real_fcntl(s, F_DUPFD_CLOEXEC, (void *)0L);
	if (fd >= 0) {
		mark(fd);
	}
	return fd;
}

int cz_spare_free_slot(void)
{
	int fd = -1, i;

	for (i = 0; i < POOL && fd < 0; i++) {
		fd = __atomic_exchange_n(&pool[i], 0, __ATOMIC_ACQ_REL) - 1;
	}
	if (fd < 0 && (fd = make()) < 0) {
		return fd;
	}
	unmark(fd);
	real_close(fd);
	return 0;
}

void cz_spare_restore(void)
{
	int fd = make(), i;

	if (fd < 0) {
		return; /* the next receive finds out again */
	}
	for (i = 0; i < POOL; i++) {
		int empty = 0;

		if (__atomic_compare_exchange_n(&pool[i], &empty, fd + 1, 0,
			    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
			return;
		}
	}
	unmark(fd);
	real_close(fd);
}

int cz_spare_forget(int fd)
{
	int i, s = fd;

	if (fd < 0 || cz_fdtab_get(fd) != &spare_rec) {
		return 0;
	}
	for (i = 0; i < POOL; i++) {
		int v = fd + 1;

		if (__atomic_compare_exchange_n(&pool[i], &v, 0, 0,
			    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
			break;
		}
	}
	/* Spares made from the old source keep its file; the next is new. */
	__atomic_compare_exchange_n(&source_fd, &s, -1, 0, __ATOMIC_ACQ_REL,
		__ATOMIC_RELAXED);
	unmark(fd);
	return 1;
}

int cz_spare_count(void)
{
	int i, n = 0;

	for (i = 0; i < POOL; i++) {
		n += __atomic_load_n(&pool[i], __ATOMIC_RELAXED) != 0;
	}
	return n;
}
