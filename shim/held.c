/* Counting the connections a worker holds open: see held.h. */
#include "held.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#include "log.h"
#include "syms.h"

#define MAX_FDS (1u << 20)
#define WORD(fd) ((unsigned)(fd) >> 6)
#define BIT(fd) (1ull << ((unsigned)(fd) & 63))

static uint64_t *marks;   /* one bit per fd; atomics only */
static size_t nbits;
static int maxmark = -1;  /* highest fd ever marked; atomics */
static struct cz_conns_page *page;
static struct cz_conns_entry *me; /* this process's entry, or NULL */

int cz_held_init(size_t nfds)
{
	size_t words;
	void *p;

	if (nfds > MAX_FDS) {
		nfds = MAX_FDS;
	}
	if (nfds == 0) {
		return -EINVAL;
	}
	words = (nfds + 63) / 64;
	/* Anonymous pages: only those holding marks get touched. */
	p = mmap(NULL, words * sizeof(*marks), PROT_READ | PROT_WRITE,
		MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		return -errno;
	}
	marks = p;
	__atomic_store_n(&nbits, nfds, __ATOMIC_RELEASE);
	return 0;
}

void cz_held_reset(void)
{
	if (marks != NULL) {
		munmap(marks, (nbits + 63) / 64 * sizeof(*marks));
	}
	if (page != NULL) {
		munmap(page, CZ_CONNS_SIZE);
	}
	marks = NULL;
	nbits = 0;
	maxmark = -1;
	page = NULL;
	me = NULL;
}

static int in_range(int fd)
{
	return fd >= 0 && (size_t)fd < __atomic_load_n(&nbits, __ATOMIC_ACQUIRE);
}

/* --- entries -------------------------------------------------------------- */

static void raise_used(struct cz_conns_page *p, uint32_t n)
{
	uint32_t used = __atomic_load_n(&p->used, __ATOMIC_RELAXED);

	while (used < n && !__atomic_compare_exchange_n(&p->used, &used, n, 1,
		__ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
	}
}

/* A free entry, now ours with `open` connections; NULL when all are taken. */
static struct cz_conns_entry *claim(struct cz_conns_page *p, uint32_t open)
{
	int32_t pid = (int32_t)cz_raw_getpid();

	for (uint32_t i = 0; i < CZ_CONNS_ENTRIES; i++) {
		int32_t free_pid = 0;

		if (__atomic_load_n(&p->e[i].pid, __ATOMIC_RELAXED) == 0 &&
		    __atomic_compare_exchange_n(&p->e[i].pid, &free_pid, pid, 0,
			__ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
			__atomic_store_n(&p->e[i].open, open, __ATOMIC_RELEASE);
			raise_used(p, i + 1);
			return &p->e[i];
		}
	}
	return NULL;
}

/* This process's entry, claimed on first use. */
static struct cz_conns_entry *my_entry(void)
{
	struct cz_conns_entry *e = __atomic_load_n(&me, __ATOMIC_ACQUIRE), *won;
	struct cz_conns_page *p = __atomic_load_n(&page, __ATOMIC_ACQUIRE);

	if (e != NULL || p == NULL) {
		return e;
	}
	e = claim(p, 0);
	if (e == NULL) {
		cz_log_debug("all %d entries of the connection counters are "
			"taken: this process's connections are not counted",
			CZ_CONNS_ENTRIES);
		return NULL;
	}
	won = NULL;
	if (!__atomic_compare_exchange_n(&me, &won, e, 0, __ATOMIC_ACQ_REL,
		__ATOMIC_ACQUIRE)) {
		/* Another thread claimed one first: give ours back. */
		__atomic_store_n(&e->pid, 0, __ATOMIC_RELEASE);
		e = won;
	}
	return e;
}

void cz_held_attach(int memfd)
{
	struct cz_conns_page *p;
	int32_t pid = (int32_t)cz_raw_getpid();

	if (__atomic_load_n(&page, __ATOMIC_ACQUIRE) != NULL) {
		real_close(memfd); /* inherited across fork: the same page */
		return;
	}
	p = mmap(NULL, CZ_CONNS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	real_close(memfd);
	if (p == MAP_FAILED) {
		return;
	}
	if (__atomic_load_n(&p->magic, __ATOMIC_ACQUIRE) != CZ_CONNS_MAGIC) {
		munmap(p, CZ_CONNS_SIZE);
		return;
	}
	/* Ours before an exec: what it counted was closed or is not ours to
	 * know (an exec'd image has no marks). */
	for (uint32_t i = 0; i < CZ_CONNS_ENTRIES; i++) {
		if (__atomic_load_n(&p->e[i].pid, __ATOMIC_RELAXED) == pid) {
			__atomic_store_n(&p->e[i].open, 0, __ATOMIC_RELEASE);
			__atomic_store_n(&me, &p->e[i], __ATOMIC_RELEASE);
			break;
		}
	}
	__atomic_store_n(&page, p, __ATOMIC_RELEASE);
}

/* --- marks ----------------------------------------------------------------- */

static void count_up(void)
{
	struct cz_conns_entry *e = __atomic_load_n(&me, __ATOMIC_ACQUIRE);

	if (e != NULL) {
		__atomic_add_fetch(&e->open, 1, __ATOMIC_RELEASE);
	}
}

/* Never below 0: the primary would read a wrapped count as a flood. */
static void count_down(void)
{
	struct cz_conns_entry *e = __atomic_load_n(&me, __ATOMIC_ACQUIRE);
	uint32_t n;

	if (e == NULL) {
		return;
	}
	n = __atomic_load_n(&e->open, __ATOMIC_RELAXED);
	while (n > 0 && !__atomic_compare_exchange_n(&e->open, &n, n - 1, 1,
		__ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
	}
}

static void raise_maxmark(int fd)
{
	int m = __atomic_load_n(&maxmark, __ATOMIC_RELAXED);

	while (fd > m && !__atomic_compare_exchange_n(&maxmark, &m, fd, 1,
		__ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
	}
}

/* Sets fd's mark; 1 if it was not set. */
static int set_mark(int fd)
{
	uint64_t old = __atomic_fetch_or(&marks[WORD(fd)], BIT(fd),
		__ATOMIC_ACQ_REL);

	raise_maxmark(fd);
	return (old & BIT(fd)) == 0;
}

/* Clears fd's mark; 1 if it was set. */
static int clear_mark(int fd)
{
	/* Most fds never carry one: a plain load first. */
	if ((__atomic_load_n(&marks[WORD(fd)], __ATOMIC_RELAXED) & BIT(fd)) == 0) {
		return 0;
	}
	return (__atomic_fetch_and(&marks[WORD(fd)], ~BIT(fd), __ATOMIC_ACQ_REL) &
		BIT(fd)) != 0;
}

void cz_held_add(int fd)
{
	if (!in_range(fd) || my_entry() == NULL) {
		return;
	}
	if (set_mark(fd)) {
		count_up();
	}
}

void cz_held_receiving(int delta)
{
	if (my_entry() == NULL) {
		return;
	}
	if (delta > 0) {
		count_up();
	} else {
		count_down();
	}
}

void cz_held_drop(int fd)
{
	if (in_range(fd) && clear_mark(fd)) {
		count_down();
	}
}

void cz_held_dup(int oldfd, int newfd)
{
	if (!in_range(oldfd) || !in_range(newfd) || oldfd == newfd) {
		return;
	}
	if (__atomic_load_n(&marks[WORD(oldfd)], __ATOMIC_ACQUIRE) & BIT(oldfd)) {
		if (set_mark(newfd)) {
			count_up();
		}
	} else {
		cz_held_drop(newfd);
	}
}

void cz_held_drop_range(unsigned first, unsigned last)
{
	int top = __atomic_load_n(&maxmark, __ATOMIC_RELAXED);
	unsigned fd;

	if (top < 0 || first > (unsigned)top || first > last) {
		return;
	}
	if (last > (unsigned)top) {
		last = (unsigned)top;
	}
	for (fd = first; fd <= last; fd++) {
		/* A whole word without marks at once. */
		if ((fd & 63) == 0 && fd + 63 <= last &&
		    __atomic_load_n(&marks[WORD(fd)], __ATOMIC_RELAXED) == 0) {
			fd += 63;
			continue;
		}
		cz_held_drop((int)fd);
	}
}

/* --- fork ------------------------------------------------------------------ */

static unsigned count_marks(void)
{
	int top = __atomic_load_n(&maxmark, __ATOMIC_RELAXED);
	unsigned n = 0;

	for (int w = 0; top >= 0 && w <= (int)WORD(top); w++) {
		n += (unsigned)__builtin_popcountll(marks[w]);
	}
	return n;
}

void cz_held_atfork_child(void)
{
	struct cz_conns_page *p = page;
	unsigned n;

	me = NULL;
	if (marks == NULL || p == NULL || (n = count_marks()) == 0) {
		return;
	}
	/* The child holds copies of the parent's connections: they stay
	 * open while it lives, whatever the parent does. */
	me = claim(p, n);
	if (me == NULL) {
		int top = maxmark;

		for (int w = 0; w <= (int)WORD(top); w++) {
			marks[w] = 0;
		}
	}
}

unsigned cz_held_count(void)
{
	struct cz_conns_entry *e = __atomic_load_n(&me, __ATOMIC_ACQUIRE);

	return e != NULL ? __atomic_load_n(&e->open, __ATOMIC_ACQUIRE) : 0;
}

int cz_held_marked(int fd)
{
	return in_range(fd) &&
		(__atomic_load_n(&marks[WORD(fd)], __ATOMIC_ACQUIRE) & BIT(fd)) != 0;
}
