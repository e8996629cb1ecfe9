/*
 * What the control socket's three files share (admin.h is the public
 * side): admin.c (the server), admin_msg.c (`send`, `messages`),
 * admin_client.c (`clusterize status|reload|
 * scale|stop`) and admin_fmt.c (the status answer).  Not for other modules.
 */
#ifndef CZ_LAUNCHER_ADMIN_INT_H
#define CZ_LAUNCHER_ADMIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "admin.h"

/* A request line, newline included (`send` carries a JSON message). */
#define CZ_ADMIN_REQUEST_MAX (64u << 10)
/* Bytes a `messages` client may leave unread before it is dropped. */
#define CZ_ADMIN_WATCH_QUEUE_MAX (1u << 20)

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

/* `len` bytes of "all" (*id = 0) or a worker id (1..UINT32_MAX, digits
 * only): 0, or -1 if neither. */
int cz_admin_parse_target(const char *s, size_t len, uint32_t *id);

/* Answers "send TARGET JSON" (`args` is what follows "send "). */
void cz_admin_answer_send(const struct cz_admin_ops *ops, const char *args,
	struct cz_admin_buf *b);

/*
 * One `messages` line, newline included, malloc'd (NULL when out of
 * memory): "worker 2 (pid 4243): {...}", or with `json` the object
 * {"worker":2,"pid":4243,"message":{...}}.
 */
char *cz_admin_format_message(uint32_t worker_id, int pid, const json_t *msg,
	bool json);

/* The directory the default sockets live in.  Returns 0 or -ENAMETOOLONG.
 * When another user holds it, a launcher uses DIR.XXXXXX next to it. */
int cz_admin_default_dir(char *buf, size_t len);

/* A directory of ours no one else can write to (`st` from lstat). */
bool cz_admin_dir_private(const struct stat *st);

/* A blocking connection to the unix socket `path`; the fd or -errno. */
int cz_admin_connect(const char *path);

#endif
