/*
 * Coverage builds only (meson -Db_coverage=true defines CZ_COVERAGE): the
 * processes the launcher forks end in _exit() or exec, which write no gcov
 * counters, so what they ran would count as never run.  They call this
 * right before.  Nothing at all in other builds.
 */
#ifndef CZ_COVERAGE_H
#define CZ_COVERAGE_H

#ifdef CZ_COVERAGE
void __gcov_dump(void);
#define cz_coverage_dump() __gcov_dump()
#else
#define cz_coverage_dump() ((void)0)
#endif

#endif
