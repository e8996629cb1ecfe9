/*
 * What the control socket's three files share (admin.h is the public
 * side): admin.c (the server), admin_client.c (`clusterize status|reload|
 * scale|stop`) and admin_fmt.c (the status answer).  Not for other modules.
 */
#ifndef CZ_LAUNCHER_ADMIN_INT_H
#define CZ_LAUNCHER_ADMIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "admin.h"

/* To write the answer; also how long the client waits for it. */
#define CZ_ADMIN_ANSWER_TIMEOUT_MS 5000
#define CZ_ADMIN_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

/* A growing string; after a failed allocation `oom` is set and it stops
 * growing (the content so far stays valid). */
struct cz_admin_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

/* Makes room for `need` more bytes and a NUL (unless oom). */
void cz_admin_buf_grow(struct cz_admin_buf *b, size_t need);
void cz_admin_buf_add(struct cz_admin_buf *b, const char *s, size_t n);

/* Appends the status table, or the JSON document with `json`. */
void cz_admin_format_status(struct cz_admin_buf *b,
	const struct cz_admin_summary *s, const struct cz_admin_worker *rows,
	size_t n, bool json);

/* The directory the default sockets live in.  Returns 0 or -ENAMETOOLONG.
 * When another user holds it, a launcher uses DIR.XXXXXX next to it. */
int cz_admin_default_dir(char *buf, size_t len);

/* A directory of ours no one else can write to (`st` from lstat). */
bool cz_admin_dir_private(const struct stat *st);

/* A blocking connection to the unix socket `path`; the fd or -errno. */
int cz_admin_connect(const char *path);

#endif
