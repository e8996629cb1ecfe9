/* The open-connection counters, the primary's side: see conns.h. */
#include "conns.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct cz_conns {
	int fd;
	struct cz_conns_page *page;
};

struct conntab_entry {
	uint32_t worker_id;
	struct cz_conns *c;
};

struct cz_conntab {
	uv_timer_t timer;
	struct conntab_entry *v;
	unsigned n, cap;
};

/* --- one worker ---------------------------------------------------------- */

static unsigned used_entries(const struct cz_conns_page *p)
{
	unsigned used = __atomic_load_n(&p->used, __ATOMIC_ACQUIRE);

	/* The worker writes the page too: never trust it past the array. */
	return used < CZ_CONNS_ENTRIES ? used : CZ_CONNS_ENTRIES;
}

unsigned cz_conns_open(const struct cz_conns *c)
{
	const struct cz_conns_page *p;
	unsigned i, used, sum = 0;

	if (c == NULL) {
		return 0;
	}
	p = c->page;
	used = used_entries(p);
	for (i = 0; i < used; i++) {
		if (__atomic_load_n(&p->e[i].pid, __ATOMIC_RELAXED) != 0) {
			unsigned n = __atomic_load_n(&p->e[i].open, __ATOMIC_RELAXED);

			/* A sum that wraps would read as "none open". */
			sum = n > ~0u - sum ? ~0u : sum + n;
		}
	}
	return sum;
}

int cz_conns_fd(const struct cz_conns *c)
{
	return c->fd;
}

struct cz_conns_page *cz_conns_page(struct cz_conns *c)
{
	return c->page;
}

/*
 * The kernel keeps a zombie's pid until its parent reaps it, but the
 * zombie has closed every fd: it holds no connection.
 */
static bool zombie(pid_t pid)
{
	char path[64], buf[512], *paren;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return errno == ENOENT;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0) {
		return false;
	}
	buf[n] = '\0';
	/* "pid (comm) S ...": comm may hold anything, ')' included. */
	paren = strrchr(buf, ')');
	return paren != NULL && (paren[1] == ' ') &&
		(paren[2] == 'Z' || paren[2] == 'X');
}

static bool gone(pid_t pid, unsigned open)
{
	if (pid <= 0) {
		return true; /* not a pid: nothing we could wait for */
	}
	if (kill(pid, 0) < 0 && errno == ESRCH) {
		return true;
	}
	return open > 0 && zombie(pid);
}

unsigned cz_conns_reap(struct cz_conns *c)
{
	struct cz_conns_page *p;
	unsigned i, used, dropped = 0;

	if (c == NULL) {
		return 0;
	}
	p = c->page;
	used = used_entries(p);
	for (i = 0; i < used; i++) {
		int32_t pid = __atomic_load_n(&p->e[i].pid, __ATOMIC_ACQUIRE);
		unsigned open = __atomic_load_n(&p->e[i].open, __ATOMIC_RELAXED);

		if (pid == 0 || !gone(pid, open)) {
			continue;
		}
		/* The count first: once pid is 0 a new process may take the
		 * entry and set its own. */
		dropped += __atomic_exchange_n(&p->e[i].open, 0, __ATOMIC_ACQ_REL);
		__atomic_compare_exchange_n(&p->e[i].pid, &pid, 0, false,
			__ATOMIC_RELEASE, __ATOMIC_RELAXED);
	}
	return dropped;
}

static void conns_free(struct cz_conns *c)
{
	if (c == NULL) {
		return;
	}
	munmap(c->page, CZ_CONNS_SIZE);
	close(c->fd);
	free(c);
}

/*
 * A memfd, sealed at its size: a worker that could shrink it would make
 * the primary's reads of the page fault (SIGBUS).
 */
static int conns_new(struct cz_conns **out)
{
	struct cz_conns *c = calloc(1, sizeof(*c));
	void *p;
	int err;

	if (c == NULL) {
		return -ENOMEM;
	}
	c->fd = memfd_create("clusterize-conns", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (c->fd < 0) {
		err = -errno;
		free(c);
		return err;
	}
	if (ftruncate(c->fd, CZ_CONNS_SIZE) < 0 ||
	    fcntl(c->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0 ||
	    (p = mmap(NULL, CZ_CONNS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		    c->fd, 0)) == MAP_FAILED) {
		err = -errno;
		close(c->fd);
		free(c);
		return err;
	}
	c->page = p;
	c->page->magic = CZ_CONNS_MAGIC;
	*out = c;
	return 0;
}

/* --- the table ------------------------------------------------------------ */

static struct conntab_entry *find(const struct cz_conntab *t, uint32_t id)
{
	for (unsigned i = 0; i < t->n; i++) {
		if (t->v[i].worker_id == id) {
			return &t->v[i];
		}
	}
	return NULL;
}

struct cz_conns *cz_conntab_get(struct cz_conntab *t, uint32_t worker_id,
	bool create)
{
	struct conntab_entry *e;
	struct cz_conns *c = NULL;

	if (t == NULL) {
		return NULL;
	}
	e = find(t, worker_id);
	if (e != NULL || !create) {
		return e != NULL ? e->c : NULL;
	}
	if (t->n == t->cap) {
		unsigned cap = t->cap ? t->cap * 2 : 8;
		void *v = realloc(t->v, cap * sizeof(*t->v));

		if (v == NULL) {
			return NULL;
		}
		t->v = v;
		t->cap = cap;
	}
	if (conns_new(&c) < 0) {
		return NULL;
	}
	t->v[t->n++] = (struct conntab_entry){ .worker_id = worker_id, .c = c };
	return c;
}

const struct cz_conns *cz_conntab_find(const struct cz_conntab *t,
	uint32_t worker_id)
{
	const struct conntab_entry *e = t != NULL ? find(t, worker_id) : NULL;

	return e != NULL ? e->c : NULL;
}

void cz_conntab_drop(struct cz_conntab *t, uint32_t worker_id)
{
	struct conntab_entry *e = t != NULL ? find(t, worker_id) : NULL;

	if (e != NULL) {
		conns_free(e->c);
		*e = t->v[--t->n];
	}
}

unsigned cz_conntab_open(const struct cz_conntab *t, uint32_t worker_id)
{
	return cz_conns_open(cz_conntab_find(t, worker_id));
}

void cz_conntab_reap(struct cz_conntab *t)
{
	for (unsigned i = 0; t != NULL && i < t->n; i++) {
		cz_conns_reap(t->v[i].c);
	}
}

static void on_reap(uv_timer_t *h)
{
	cz_conntab_reap(h->data);
}

int cz_conntab_create(uv_loop_t *loop, struct cz_conntab **out)
{
	struct cz_conntab *t = calloc(1, sizeof(*t));
	int err;

	if (t == NULL) {
		return -ENOMEM;
	}
	err = uv_timer_init(loop, &t->timer);
	if (err < 0) {
		free(t);
		return err;
	}
	t->timer.data = t;
	uv_timer_start(&t->timer, on_reap, CZ_CONNS_REAP_MS, CZ_CONNS_REAP_MS);
	/* The reaper alone must not keep the loop running. */
	uv_unref((uv_handle_t *)&t->timer);
	*out = t;
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	struct cz_conntab *t = h->data;

	free(t->v);
	free(t);
}

void cz_conntab_destroy(struct cz_conntab *t)
{
	if (t == NULL) {
		return;
	}
	for (unsigned i = 0; i < t->n; i++) {
		conns_free(t->v[i].c);
	}
	t->n = 0;
	uv_close((uv_handle_t *)&t->timer, on_closed);
}
