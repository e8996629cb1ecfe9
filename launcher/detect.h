/*
 * Looking at the command before launching it: find it like execvp(3)
 * would, and name the kinds of programs the shim cannot work in (it is
 * loaded with LD_PRELOAD and intercepts libc's socket calls).
 */
#ifndef CZ_LAUNCHER_DETECT_H
#define CZ_LAUNCHER_DETECT_H

#include <stddef.h>

/*
 * Resolves `cmd` as execvp would: a name with a '/' is used as is, others
 * are looked up in `path_env` ($PATH; NULL means "/bin:/usr/bin").
 * Writes the path found to `out`.  Returns 0, -ENOENT (not found: exit
 * 127), -EACCES (found but not executable: exit 126) or another -errno.
 */
int cz_detect_resolve(const char *cmd, const char *path_env, char *out,
	size_t outlen);

/* Reasons the shim will not load or will not see the sockets. */
enum cz_detect_flags {
	CZ_DETECT_STATIC = 1u << 0, /* ELF without PT_INTERP */
	CZ_DETECT_GO = 1u << 1,     /* Go makes raw syscalls */
	CZ_DETECT_SETUID = 1u << 2, /* secure-execution: LD_PRELOAD dropped */
	CZ_DETECT_SETGID = 1u << 3,
	CZ_DETECT_FILECAPS = 1u << 4,
};

/* Inspects the file at `path`; returns a mask of enum cz_detect_flags. */
unsigned cz_detect_inspect(const char *path);

/* Logs one warning per flag in `flags`, naming `cmd`. */
void cz_detect_warn(const char *cmd, unsigned flags);

#endif
