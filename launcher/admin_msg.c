/*
 * The control socket's messages to and from Node workers (admin.h):
 * the `send` request, and the lines `messages` clients get.
 */
#include "admin_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

int cz_admin_parse_target(const char *s, size_t len, uint32_t *id)
{
	unsigned long long v = 0;

	if (len == 3 && strncmp(s, "all", 3) == 0) {
		*id = 0;
		return 0;
	}
	if (len == 0 || len > 10) {
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return -1;
		}
		v = v * 10 + (unsigned long long)(s[i] - '0');
	}
	if (v == 0 || v > UINT32_MAX) {
		return -1;
	}
	*id = (uint32_t)v;
	return 0;
}

static void answer_error(struct cz_admin_buf *b, const char *msg)
{
	cz_admin_buf_add(b, "error: ", 7);
	cz_admin_buf_add(b, msg, strlen(msg));
	cz_admin_buf_add(b, "\n", 1);
}

void cz_admin_answer_send(const struct cz_admin_ops *ops, const char *args,
	struct cz_admin_buf *b)
{
	const char *sp = strchr(args, ' ');
	char err[256] = "", line[320];
	unsigned delivered = 0;
	json_error_t e;
	uint32_t id;
	json_t *msg;
	int rc;

	if (sp == NULL || cz_admin_parse_target(args, (size_t)(sp - args), &id) < 0) {
		answer_error(b, "send: expected 'send ID|all JSON'");
		return;
	}
	msg = json_loads(sp + 1, CZ_JSON_LOAD_FLAGS, &e);
	if (msg == NULL) {
		snprintf(line, sizeof(line), "send: invalid JSON at byte %d: %s",
			e.position, e.text);
		answer_error(b, line);
		return;
	}
	rc = ops->send != NULL ? ops->send(ops->data, id, msg, &delivered, err,
		sizeof(err)) : -ENOTSUP;
	json_decref(msg);
	if (rc < 0) {
		snprintf(line, sizeof(line), "send: %s", err[0] != '\0' ? err :
			strerror(-rc));
		answer_error(b, line);
		return;
	}
	snprintf(line, sizeof(line), "ok\ndelivered to %u worker%s\n", delivered,
		delivered == 1 ? "" : "s");
	cz_admin_buf_add(b, line, strlen(line));
}

char *cz_admin_format_message(uint32_t worker_id, int pid, const json_t *msg,
	bool json)
{
	json_t *doc = NULL;
	char *body, *line = NULL;

	if (json) {
		doc = json_pack("{s:I, s:i, s:O}", "worker", (json_int_t)worker_id,
			"pid", pid, "message", msg);
	}
	/* The text form is for terminals: every non-ASCII byte escaped. */
	body = json ? (doc != NULL ? cz_json_line(doc, 0) : NULL) :
		cz_json_line(msg, 1);
	json_decref(doc);
	if (body == NULL) {
		return NULL;
	}
	int n = json ? asprintf(&line, "%s\n", body) :
		asprintf(&line, "worker %u (pid %d): %s\n", worker_id, pid, body);

	if (n < 0) {
		line = NULL;
	}
	free(body);
	return line;
}
