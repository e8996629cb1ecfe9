/*
 * Command resolution and inspection (detect.h).  The inspection reads the
 * ELF headers by hand: enough to tell a static binary (no PT_INTERP: no
 * dynamic loader, so no LD_PRELOAD) and a Go binary (its net package makes
 * raw system calls, so the shim never sees them).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "detect.h"
#include "log.h"

#define MAX_PHNUM 4096
#define MAX_SHNUM 65535
#define MAX_SHSTRTAB (1u << 20)

/* The fields we need, whatever the ELF class. */
struct elf_info {
	bool is64;
	uint64_t phoff, shoff;
	unsigned phnum, shnum, shstrndx;
};

static int check_exec(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		return -errno;
	}
	/* execve(2) says EACCES for a directory or any non-regular file. */
	if (!S_ISREG(st.st_mode)) {
		return -EACCES;
	}
	/* The effective (file system) ids: a step run as the workers' user
	 * (asuser.h) checks what they may execute. */
	if (faccessat(AT_FDCWD, path, X_OK, AT_EACCESS) != 0) {
		return -errno;
	}
	return 0;
}

static int copy_out(const char *path, char *out, size_t outlen)
{
	if (strlen(path) >= outlen) {
		return -ENAMETOOLONG;
	}
	strcpy(out, path);
	return 0;
}

int cz_detect_resolve(const char *cmd, const char *path_env, char *out,
	size_t outlen)
{
	const char *p = path_env != NULL ? path_env : "/bin:/usr/bin";
	int result = -ENOENT;
	char buf[4096];

	if (*cmd == '\0') {
		return -ENOENT;
	}
	if (strchr(cmd, '/') != NULL) {
		int rc = check_exec(cmd);

		return rc != 0 ? rc : copy_out(cmd, out, outlen);
	}
	for (;;) {
		const char *end = strchrnul(p, ':');
		int len = (int)(end - p);
		int rc;

		/* An empty element means the current directory. */
		if (snprintf(buf, sizeof(buf), "%.*s%s%s", len, p,
			len > 0 ? "/" : "", cmd) < (int)sizeof(buf)) {
			rc = check_exec(buf);
			if (rc == 0) {
				return copy_out(buf, out, outlen);
			}
			/* Like execvp: remember EACCES, skip what is absent. */
			if (rc == -EACCES) {
				result = rc;
			} else if (rc != -ENOENT && rc != -ENOTDIR) {
				return rc;
			}
		}
		if (*end == '\0') {
			return result;
		}
		p = end + 1;
	}
}

static bool read_at(int fd, void *buf, size_t len, uint64_t off)
{
	return pread(fd, buf, len, (off_t)off) == (ssize_t)len;
}

static bool read_ehdr(int fd, struct elf_info *e)
{
	unsigned char ident[EI_NIDENT];

	if (!read_at(fd, ident, sizeof(ident), 0) ||
		memcmp(ident, ELFMAG, SELFMAG) != 0) {
		return false;
	}
	e->is64 = ident[EI_CLASS] == ELFCLASS64;
	if (e->is64) {
		Elf64_Ehdr h;

		if (!read_at(fd, &h, sizeof(h), 0)) {
			return false;
		}
		*e = (struct elf_info){ true, h.e_phoff, h.e_shoff, h.e_phnum,
			h.e_shnum, h.e_shstrndx };
	} else if (ident[EI_CLASS] == ELFCLASS32) {
		Elf32_Ehdr h;

		if (!read_at(fd, &h, sizeof(h), 0)) {
			return false;
		}
		*e = (struct elf_info){ false, h.e_phoff, h.e_shoff, h.e_phnum,
			h.e_shnum, h.e_shstrndx };
	} else {
		return false;
	}
	return e->phnum <= MAX_PHNUM && e->shnum <= MAX_SHNUM;
}

static bool has_interp(int fd, const struct elf_info *e)
{
	size_t sz = e->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);

	for (unsigned i = 0; i < e->phnum; i++) {
		uint32_t type;

		/* p_type is the first field in both classes. */
		if (!read_at(fd, &type, sizeof(type), e->phoff + i * sz)) {
			return true; /* unreadable: do not cry wolf */
		}
		if (type == PT_INTERP) {
			return true;
		}
	}
	return false;
}

/* Section i's name offset and, for the string table, its offset and size. */
static bool read_shdr(int fd, const struct elf_info *e, unsigned i,
	uint32_t *name, uint64_t *off, uint64_t *size)
{
	if (e->is64) {
		Elf64_Shdr s;

		if (!read_at(fd, &s, sizeof(s), e->shoff + i * sizeof(s))) {
			return false;
		}
		*name = s.sh_name, *off = s.sh_offset, *size = s.sh_size;
	} else {
		Elf32_Shdr s;

		if (!read_at(fd, &s, sizeof(s), e->shoff + i * sizeof(s))) {
			return false;
		}
		*name = s.sh_name, *off = s.sh_offset, *size = s.sh_size;
	}
	return true;
}

static bool is_go_section(const char *strtab, uint64_t size, uint32_t name)
{
	static const char *const go_names[] = {
		".go.buildinfo", ".note.go.buildid", ".gopclntab",
	};

	if (name >= size) {
		return false;
	}
	for (size_t k = 0; k < sizeof(go_names) / sizeof(go_names[0]); k++) {
		if (strncmp(strtab + name, go_names[k], size - name) == 0) {
			return true;
		}
	}
	return false;
}

static bool is_go(int fd, const struct elf_info *e)
{
	uint64_t stoff, stsize, off, size;
	bool found = false;
	uint32_t name;
	char *strtab;

	if (e->shnum == 0 || e->shstrndx >= e->shnum ||
		!read_shdr(fd, e, e->shstrndx, &name, &stoff, &stsize) ||
		stsize == 0 || stsize > MAX_SHSTRTAB) {
		return false;
	}
	strtab = malloc(stsize);
	if (strtab == NULL || !read_at(fd, strtab, stsize, stoff)) {
		free(strtab);
		return false;
	}
	for (unsigned i = 0; i < e->shnum && !found; i++) {
		found = read_shdr(fd, e, i, &name, &off, &size) &&
			is_go_section(strtab, stsize, name);
	}
	free(strtab);
	return found;
}

static unsigned inspect_elf(const char *path)
{
	unsigned flags = 0;
	struct elf_info e;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		return 0; /* execute-only, say: nothing to tell */
	}
	/* A "#!" script fails read_ehdr: its interpreter is dynamic, fine. */
	if (read_ehdr(fd, &e)) {
		if (is_go(fd, &e)) {
			flags |= CZ_DETECT_GO;
		} else if (!has_interp(fd, &e)) {
			flags |= CZ_DETECT_STATIC;
		}
	}
	close(fd);
	return flags;
}

unsigned cz_detect_inspect(const char *path)
{
	unsigned flags = inspect_elf(path);
	struct stat st;

	if (stat(path, &st) == 0) {
		/* The bits only matter if they change who we run as. */
		if ((st.st_mode & S_ISUID) && st.st_uid != geteuid()) {
			flags |= CZ_DETECT_SETUID;
		}
		if ((st.st_mode & S_ISGID) && (st.st_mode & S_IXGRP) &&
			st.st_gid != getegid()) {
			flags |= CZ_DETECT_SETGID;
		}
	}
	if (getxattr(path, "security.capability", NULL, 0) > 0) {
		flags |= CZ_DETECT_FILECAPS;
	}
	return flags;
}

void cz_detect_warn(const char *cmd, unsigned flags)
{
	static const struct {
		unsigned flag;
		const char *why;
	} reasons[] = {
		{ CZ_DETECT_GO, "is a Go program: Go makes socket calls without "
			"libc, where the shim cannot see them" },
		{ CZ_DETECT_STATIC, "is statically linked: the shim cannot be "
			"preloaded into it" },
		{ CZ_DETECT_SETUID, "is set-user-ID: the dynamic loader ignores "
			"LD_PRELOAD for it" },
		{ CZ_DETECT_SETGID, "is set-group-ID: the dynamic loader ignores "
			"LD_PRELOAD for it" },
		{ CZ_DETECT_FILECAPS, "has file capabilities: the dynamic loader "
			"ignores LD_PRELOAD for it" },
	};

	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
		if (flags & reasons[i].flag) {
			cz_log(CZ_LOG_WARN, "'%s' %s; its workers will not share "
				"listening sockets", cmd, reasons[i].why);
		}
	}
}
