#include "fdtab.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#define POOL_SIZE 1024
#define MAX_FDS (1u << 20)

static _Atomic(struct cz_fdrec *) *slots;
static size_t nslots;
static atomic_int maxfd = -1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static struct cz_fdrec pool[POOL_SIZE];
static size_t pool_used;
static unsigned forkgen;

int cz_fdtab_init(size_t nfds)
{
	void *p;

	if (nfds > MAX_FDS) {
		nfds = MAX_FDS;
	}
	if (nfds == 0) {
		return -EINVAL;
	}
	/* Anonymous pages: only the parts holding tracked fds get touched. */
	p = mmap(NULL, nfds * sizeof(*slots), PROT_READ | PROT_WRITE,
		MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		return -errno;
	}
	slots = p;
	atomic_thread_fence(memory_order_release);
	nslots = nfds;
	return 0;
}

void cz_fdtab_reset(void)
{
	if (slots != NULL) {
		size_t n = nslots;

		nslots = 0;
		munmap((void *)slots, n * sizeof(*slots));
		slots = NULL;
	}
	memset(pool, 0, sizeof(pool));
	pool_used = 0;
	atomic_store(&maxfd, -1);
}

size_t cz_fdtab_size(void)
{
	return nslots;
}

struct cz_fdrec *cz_fdtab_get(int fd)
{
	if ((unsigned)fd >= nslots) {
		return NULL;
	}
	return atomic_load_explicit(&slots[fd], memory_order_acquire);
}

void cz_fdtab_lock(void)
{
	pthread_mutex_lock(&mu);
}

void cz_fdtab_unlock(void)
{
	pthread_mutex_unlock(&mu);
}

struct cz_fdrec *cz_fdtab_alloc(void)
{
	struct cz_fdrec *r = NULL;
	size_t i;

	cz_fdtab_lock();
	for (i = 0; i < POOL_SIZE; i++) {
		if (pool[i].state == CZ_FD_FREE) {
			r = &pool[i];
			memset(r, 0, sizeof(*r));
			/* Reserved until cz_fdtab_set takes the first ref. */
			r->state = CZ_FD_INTERNAL;
			pool_used++;
			break;
		}
	}
	cz_fdtab_unlock();
	return r;
}

static void free_locked(struct cz_fdrec *r)
{
	/* The static internal record is not from the pool. */
	if (r >= pool && r < pool + POOL_SIZE) {
		r->state = CZ_FD_FREE;
		pool_used--;
	}
}

static struct cz_fdrec *swap_locked(int fd, struct cz_fdrec *rec)
{
	int m;

	if (rec != NULL) {
		rec->refs++;
		m = atomic_load(&maxfd);
		while (fd > m && !atomic_compare_exchange_weak(&maxfd, &m, fd)) {
		}
	}
	return atomic_exchange_explicit(&slots[fd], rec, memory_order_acq_rel);
}

struct cz_fdrec *cz_fdtab_set(int fd, struct cz_fdrec *rec)
{
	struct cz_fdrec *old;

	cz_fdtab_lock();
	if ((unsigned)fd >= nslots) {
		if (rec != NULL && rec->refs == 0) {
			free_locked(rec);
		}
		cz_fdtab_unlock();
		return NULL;
	}
	old = swap_locked(fd, rec);
	cz_fdtab_unlock();
	return old;
}

struct cz_fdrec *cz_fdtab_dup(int oldfd, int newfd)
{
	struct cz_fdrec *rec, *old;

	if ((unsigned)newfd >= nslots) {
		return NULL;
	}
	cz_fdtab_lock();
	rec = cz_fdtab_get(oldfd);
	if (rec != NULL && rec->state == CZ_FD_INTERNAL) {
		rec = NULL; /* a dup of the shim's own fd belongs to the app */
	}
	old = swap_locked(newfd, rec);
	cz_fdtab_unlock();
	return old;
}

int cz_fdtab_put(struct cz_fdrec *rec, struct cz_fdrec *last)
{
	int was_last = 0;

	if (rec == NULL) {
		return 0;
	}
	cz_fdtab_lock();
	/* refs == 0: a record allocated but never installed. */
	if (rec->refs == 0 || --rec->refs == 0) {
		was_last = 1;
		if (last != NULL) {
			*last = *rec;
		}
		free_locked(rec);
	}
	cz_fdtab_unlock();
	return was_last;
}

int cz_fdtab_max(void)
{
	return atomic_load_explicit(&maxfd, memory_order_relaxed);
}

size_t cz_fdtab_used(void)
{
	return pool_used;
}

unsigned cz_fdtab_forkgen(void)
{
	return forkgen;
}

void cz_fdtab_atfork_parent(void)
{
	forkgen++;
}

void cz_fdtab_atfork_child(void)
{
	pthread_mutex_init(&mu, NULL);
	forkgen++;
}
