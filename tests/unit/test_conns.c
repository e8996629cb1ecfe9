/*
 * The open-connection counters end to end: the primary's page
 * (launcher/conns.c) and the shim's marks (shim/held.c) in one process,
 * the test playing the worker's processes: it marks fds (any fd will do:
 * the marks never look at what an fd is), dups and closes them, forks,
 * and reads what the primary would.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "conns.h"
#include "held.h"

static uv_loop_t loop;
static struct cz_conntab *tab;
static struct cz_conns *page;

static void setup(void)
{
	cr_assert_eq(uv_loop_init(&loop), 0);
	cr_assert_eq(cz_conntab_create(&loop, &tab), 0);
	page = cz_conntab_get(tab, 7, true);
	cr_assert_not_null(page);
	cr_assert_eq(cz_held_init(256), 0);
	cz_held_attach(fcntl(cz_conns_fd(page), F_DUPFD_CLOEXEC, 0));
}

static void teardown(void)
{
	cz_held_reset();
	cz_conntab_destroy(tab);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&loop), 0, "every handle closed");
}

TestSuite(conns, .init = setup, .fini = teardown, .timeout = 20);

/* n fds to stand for connections: /dev/null opened n times. */
static void open_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++) {
		fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		cr_assert_geq(fds[i], 0);
	}
}

static unsigned open_now(void)
{
	return cz_conntab_open(tab, 7);
}

Test(conns, marks_count_up_and_down)
{
	int fds[5];

	open_fds(fds, 5);
	cr_expect_eq(open_now(), 0);
	for (int i = 0; i < 5; i++) {
		cz_held_add(fds[i]);
	}
	cr_expect_eq(open_now(), 5);
	cz_held_add(fds[0]);
	cr_expect_eq(open_now(), 5, "a number marked twice counts once");
	cz_held_drop(fds[1]);
	cz_held_drop(fds[1]);
	cr_expect_eq(open_now(), 4, "dropped once, whatever the calls");
	cz_held_drop_range(0, 255);
	cr_expect_eq(open_now(), 0);
	cr_expect_eq(cz_held_count(), 0);
	cr_expect_eq(cz_conntab_open(tab, 8), 0, "another worker has nothing");
	for (int i = 0; i < 5; i++) {
		close(fds[i]);
	}
}

Test(conns, dups_follow_the_connection)
{
	int fds[3];

	open_fds(fds, 3);
	cz_held_add(fds[0]);
	cz_held_dup(fds[0], fds[1]);
	cr_expect_eq(open_now(), 2, "two fds hold it: it is open until both close");
	cz_held_dup(fds[2], fds[1]);
	cr_expect_eq(open_now(), 1, "dup2 of an unmarked fd over a marked one");
	cr_expect(!cz_held_marked(fds[1]));
	cz_held_dup(fds[0], fds[0]);
	cr_expect_eq(open_now(), 1, "onto itself: nothing changes");
	cz_held_add(fds[2]);
	cz_held_dup(fds[0], fds[2]);
	cr_expect_eq(open_now(), 2, "marked over marked: one closed, one more");
	for (int i = 0; i < 3; i++) {
		cz_held_drop(fds[i]);
		close(fds[i]);
	}
	cr_expect_eq(open_now(), 0);
}

Test(conns, close_range_drops_only_its_range)
{
	int fds[6];

	open_fds(fds, 6);
	for (int i = 0; i < 6; i++) {
		cz_held_add(fds[i]);
	}
	cz_held_drop_range((unsigned)fds[2], (unsigned)fds[3]);
	cr_expect_eq(open_now(), 4);
	cz_held_drop_range((unsigned)fds[5] + 1, ~0u);
	cr_expect_eq(open_now(), 4, "above every mark: nothing");
	cz_held_drop_range((unsigned)fds[0], ~0u);
	cr_expect_eq(open_now(), 0);
	for (int i = 0; i < 6; i++) {
		close(fds[i]);
	}
}

Test(conns, forked_child_counts_its_copies_and_dies_with_them)
{
	int fds[3], ready[2], go[2];
	pid_t pid;
	char c;

	open_fds(fds, 3);
	for (int i = 0; i < 3; i++) {
		cz_held_add(fds[i]);
	}
	cr_assert_eq(pipe(ready), 0);
	cr_assert_eq(pipe(go), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		cz_held_atfork_child();
		/* A forking server's child: serves one, closes it. */
		cz_held_drop(fds[0]);
		(void)!write(ready[1], "r", 1);
		(void)!read(go[0], &c, 1);
		_exit(0); /* killed with two still open: no wrapper runs */
	}
	cr_assert_eq(read(ready[0], &c, 1), 1);
	cr_expect_eq(open_now(), 5, "the parent's 3 and the child's 2");
	/* The parent hands them to the child: closes its copies. */
	for (int i = 0; i < 3; i++) {
		cz_held_drop(fds[i]);
	}
	cr_expect_eq(open_now(), 2, "open while the child holds them");
	cr_assert_eq(write(go[1], "g", 1), 1);
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	cr_expect_eq(open_now(), 2, "not reaped yet");
	cr_expect_eq(cz_conns_reap(page), 2, "the dead child's entry held 2");
	cr_expect_eq(open_now(), 0);
	for (int i = 0; i < 3; i++) {
		close(fds[i]);
	}
	close(ready[0]);
	close(ready[1]);
	close(go[0]);
	close(go[1]);
}

Test(conns, zombie_holds_nothing)
{
	struct cz_conns_page *p = cz_conns_page(page);
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		_exit(0);
	}
	/* A zombie (waitid's WNOWAIT leaves it one), its fds all closed. */
	siginfo_t info;

	cr_assert_eq(waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT), 0);
	p->e[3].pid = pid;
	p->e[3].open = 4;
	p->used = 4;
	cz_conns_reap(page);
	cr_expect_eq(open_now(), 0);
	cr_expect_eq(p->e[3].pid, 0, "its entry is free again");
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
}

Test(conns, live_processes_keep_their_entries)
{
	struct cz_conns_page *p = cz_conns_page(page);

	p->e[5].pid = 1; /* init: alive, maybe not ours to signal */
	p->e[5].open = 2;
	p->used = 6;
	cr_expect_eq(cz_conns_reap(page), 0);
	cr_expect_eq(open_now(), 2);
	p->e[5].pid = 0;
}

Test(conns, exec_image_takes_over_its_pids_entry)
{
	struct cz_conns_page *p = cz_conns_page(page);
	int fds[1];

	open_fds(fds, 1);
	cz_held_add(fds[0]);
	cr_expect_eq(open_now(), 1);
	/* The image execs: its marks are gone, its entry (same pid) stays. */
	cz_held_reset();
	cr_assert_eq(cz_held_init(256), 0);
	cz_held_attach(fcntl(cz_conns_fd(page), F_DUPFD_CLOEXEC, 0));
	cr_expect_eq(open_now(), 0, "the new image took the entry over");
	cz_held_add(fds[0]);
	cr_expect_eq(open_now(), 1);
	unsigned n = 0;

	for (unsigned i = 0; i < CZ_CONNS_ENTRIES; i++) {
		n += p->e[i].pid == getpid();
	}
	cr_expect_eq(n, 1, "one entry per process");
	cz_held_drop(fds[0]);
	close(fds[0]);
}

Test(conns, a_hostile_page_cannot_hurt_the_primary)
{
	struct cz_conns_page *p = cz_conns_page(page);
	int fd = cz_conns_fd(page);

	p->used = 0xffffffffu;
	p->e[CZ_CONNS_ENTRIES - 1].pid = getpid();
	p->e[CZ_CONNS_ENTRIES - 1].open = 0xfffffff0u;
	p->e[CZ_CONNS_ENTRIES - 2].pid = getpid();
	p->e[CZ_CONNS_ENTRIES - 2].open = 0xfffffff0u;
	cr_expect_eq(open_now(), 0xffffffffu, "clamped, never wrapped to a few");
	p->e[0].pid = -1;
	p->e[0].open = 3;
	cz_conns_reap(page);
	cr_expect_eq(p->e[0].pid, 0, "not a pid: freed");
	cr_expect_eq(ftruncate(fd, 0), -1, "sealed: it cannot be shrunk");
	cr_expect_eq(errno, EPERM);
	p->e[CZ_CONNS_ENTRIES - 1].pid = 0;
	p->e[CZ_CONNS_ENTRIES - 2].pid = 0;
	p->used = 1;
}

Test(conns, dropped_worker_has_no_counters)
{
	cz_held_reset(); /* the shim's mapping stays valid: unmap it first */
	cz_conntab_drop(tab, 7);
	cr_expect_null(cz_conntab_find(tab, 7));
	cr_expect_eq(cz_conntab_open(tab, 7), 0);
	cr_assert_eq(cz_held_init(256), 0);
}
