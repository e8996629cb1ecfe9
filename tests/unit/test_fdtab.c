#include <criterion/criterion.h>

#include "fdtab.h"

static void setup(void)
{
	cr_assert_eq(cz_fdtab_init(64), 0);
}

static void teardown(void)
{
	cz_fdtab_reset();
}

TestSuite(fdtab, .init = setup, .fini = teardown);

static struct cz_fdrec *track(int fd, uint32_t key)
{
	struct cz_fdrec *r = cz_fdtab_alloc();

	cr_assert_not_null(r);
	r->state = CZ_FD_RR;
	r->key = key;
	cr_assert_null(cz_fdtab_set(fd, r));
	return r;
}

Test(fdtab, untracked_fds_are_null)
{
	cr_expect_null(cz_fdtab_get(0));
	cr_expect_null(cz_fdtab_get(63));
	cr_expect_eq(cz_fdtab_max(), -1);
	cr_expect_eq(cz_fdtab_used(), 0);
}

Test(fdtab, tracked_fd_is_found)
{
	struct cz_fdrec *r = track(5, 42);

	cr_expect_eq(cz_fdtab_get(5), r);
	cr_expect_eq(cz_fdtab_get(5)->key, 42);
	cr_expect_null(cz_fdtab_get(4));
	cr_expect_eq(r->refs, 1);
	cr_expect_eq(cz_fdtab_max(), 5);
	cr_expect_eq(cz_fdtab_used(), 1);
}

Test(fdtab, out_of_range_fds_are_untracked)
{
	struct cz_fdrec *r = cz_fdtab_alloc();

	cr_expect_null(cz_fdtab_get(-1));
	cr_expect_null(cz_fdtab_get(64));
	cr_expect_null(cz_fdtab_get(1 << 30));
	/* Installing out of range fails and gives the reservation back. */
	cr_expect_null(cz_fdtab_set(64, r));
	cr_expect_null(cz_fdtab_get(64));
	cr_expect_eq(cz_fdtab_used(), 0);
	cr_expect_null(cz_fdtab_dup(3, 1000));
}

Test(fdtab, dup_shares_the_record)
{
	struct cz_fdrec *r = track(3, 7);

	cr_expect_null(cz_fdtab_dup(3, 9));
	cr_expect_eq(cz_fdtab_get(9), r);
	cr_expect_eq(r->refs, 2);
	cr_expect_eq(cz_fdtab_max(), 9);
}

Test(fdtab, release_only_on_last_close)
{
	struct cz_fdrec *r = track(3, 7);
	struct cz_fdrec last;

	cz_fdtab_dup(3, 4);
	cr_expect_eq(cz_fdtab_put(cz_fdtab_set(3, NULL), &last), 0);
	cr_expect_null(cz_fdtab_get(3));
	cr_expect_eq(cz_fdtab_get(4), r);
	cr_expect_eq(cz_fdtab_used(), 1);
	cr_expect_eq(cz_fdtab_put(cz_fdtab_set(4, NULL), &last), 1);
	cr_expect_eq(last.key, 7);
	cr_expect_eq(last.state, CZ_FD_RR);
	cr_expect_null(cz_fdtab_get(4));
	cr_expect_eq(cz_fdtab_used(), 0);
}

Test(fdtab, dup_onto_a_tracked_fd_returns_the_old_record)
{
	struct cz_fdrec *a = track(3, 1);
	struct cz_fdrec *b = track(4, 2);
	struct cz_fdrec last;
	struct cz_fdrec *old;

	old = cz_fdtab_dup(3, 4);
	cr_expect_eq(old, b);
	cr_expect_eq(cz_fdtab_get(4), a);
	cr_expect_eq(cz_fdtab_put(old, &last), 1);
	cr_expect_eq(last.key, 2);
	cr_expect_eq(a->refs, 2);
}

Test(fdtab, dup_of_an_untracked_fd_clears_the_target)
{
	struct cz_fdrec *b = track(4, 2);

	cr_expect_eq(cz_fdtab_dup(10, 4), b);
	cr_expect_null(cz_fdtab_get(4));
}

Test(fdtab, dup_of_an_internal_fd_is_untracked)
{
	struct cz_fdrec *r = cz_fdtab_alloc();

	r->state = CZ_FD_INTERNAL;
	cz_fdtab_set(20, r);
	cr_expect_null(cz_fdtab_dup(20, 21));
	cr_expect_null(cz_fdtab_get(21));
}

Test(fdtab, pool_records_are_reused)
{
	struct cz_fdrec *r = track(3, 1);

	cr_expect_eq(cz_fdtab_put(cz_fdtab_set(3, NULL), NULL), 1);
	cr_expect_eq(track(5, 2), r);
	cr_expect_eq(r->key, 2);
}

Test(fdtab, pool_exhaustion_returns_null)
{
	size_t n = 0;

	while (cz_fdtab_alloc() != NULL) {
		n++;
	}
	cr_expect_gt(n, 0);
	cr_expect_eq(cz_fdtab_used(), n);
	cr_expect_null(cz_fdtab_alloc());
}

Test(fdtab, fork_generation_counts)
{
	unsigned g = cz_fdtab_forkgen();

	cz_fdtab_lock();
	cz_fdtab_atfork_parent();
	cz_fdtab_unlock();
	cr_expect_eq(cz_fdtab_forkgen(), g + 1);
	cz_fdtab_lock();
	cz_fdtab_atfork_child(); /* re-inits the (held) mutex */
	cz_fdtab_lock();
	cz_fdtab_unlock();
	cr_expect_eq(cz_fdtab_forkgen(), g + 2);
}
