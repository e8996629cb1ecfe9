/*
 * Servers the shim cannot see are named, not left to fail silently: a
 * statically linked command is recognised before it starts, and a worker
 * whose shim never says hello is reported once --hello-timeout has passed.
 * A dynamically linked one gets neither warning.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "czt.h"

TestSuite(detect, .init = czt_setup, .fini = czt_teardown, .timeout = 60);

static const char *static_sleeper(void)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/static-sleeper", getenv("CZ_SERVERS"));
	return path;
}

Test(detect, static_binary_is_named_and_its_silence_reported)
{
	const char *argv[] = { czt_launcher(), "-w", "1", "--hello-timeout", "0.2", "--",
		static_sleeper(), NULL };
	struct czt_proc *p = czt_spawn(argv, NULL);

	cr_expect_eq(czt_wait_line(p, CZT_ERR, "is statically linked: the shim cannot be "
		"preloaded into it", 1, 10000), 1, "the launcher names the static binary");
	cr_expect_eq(czt_wait_line(p, CZT_ERR, "has not loaded the shim after 0.2s", 1,
		10000), 1, "and reports the worker that never said hello");
	cr_expect_eq(czt_count(p, CZT_ERR, " online"), 0, "the static worker is never online");
	czt_stop(p);
}

Test(detect, dynamic_server_gets_no_warning)
{
	const char *argv[] = { czt_launcher(), "-w", "1", "--hello-timeout", "0.2", "--",
		czt_server(), NULL };
	struct czt_proc *p = czt_spawn(argv, (const char *[]){ czt_asan_options(), NULL });

	cr_assert_eq(czt_wait_line(p, CZT_ERR, " listening on ", 1, 20000), 1);
	/* Its shim said hello before it could listen: no reason to warn. */
	cr_expect_eq(czt_count(p, CZT_ERR, " online"), 1, "the worker is online");
	cr_expect_eq(czt_count(p, CZT_ERR, "warning"), 0, "no warning for a dynamic server");
	czt_stop(p);
}
