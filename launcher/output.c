/*
 * Workers' output, line by line (output.h).  A line is kept in the same
 * buffer as its prefix so it leaves with one write(2): the kernel keeps a
 * single write to a pipe or a terminal whole, so lines of different workers
 * interleave only between lines.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "log_json.h"
#include "output.h"

#define READ_CHUNK 16384

struct cz_output_pipe {
	struct cz_output_pipe *next;
	struct cz_output *owner;
	uv_pipe_t pipe;
	int dest;
	uint32_t id;
	bool json;  /* --log-format json: each line an "output" event */
	struct cz_output_line line;
	char rbuf[READ_CHUNK];
};

/* --- line assembly ------------------------------------------------------ */

void cz_output_line_init(struct cz_output_line *l, uint32_t id)
{
	int n = snprintf(l->buf, CZ_OUTPUT_PREFIX_MAX, "[%u] ", id);

	l->plen = n > 0 && n < CZ_OUTPUT_PREFIX_MAX ? (size_t)n : 0;
	l->len = 0;
}

static void emit_pending(struct cz_output_line *l, cz_output_emit_fn *emit,
	void *ctx)
{
	l->buf[l->plen + l->len] = '\n';
	emit(ctx, l->buf, l->plen + l->len + 1);
	l->len = 0;
}

void cz_output_line_feed(struct cz_output_line *l, const char *data, size_t n,
	cz_output_emit_fn *emit, void *ctx)
{
	while (n > 0) {
		size_t room = CZ_OUTPUT_LINE_MAX - l->len;
		size_t take = n < room ? n : room;
		const char *nl = memchr(data, '\n', take);

		if (nl != NULL) {
			take = (size_t)(nl - data);
		}
		memcpy(l->buf + l->plen + l->len, data, take);
		l->len += take;
		data += take;
		n -= take;
		if (nl != NULL) {
			data++;  /* the '\n', put back by emit_pending */
			n--;
			emit_pending(l, emit, ctx);
		} else if (l->len == CZ_OUTPUT_LINE_MAX) {
			emit_pending(l, emit, ctx);
		}
	}
}

void cz_output_line_flush(struct cz_output_line *l, cz_output_emit_fn *emit,
	void *ctx)
{
	if (l->len > 0) {
		emit_pending(l, emit, ctx);
	}
}

/* --- pipes -------------------------------------------------------------- */

/*
 * {"time":...,"event":"output","id":3,"stream":"stdout","line":"..."}: the
 * line without its '\n', its bytes that are not UTF-8 replaced.
 */
static void write_json(const struct cz_output_pipe *p, const char *line,
	size_t len)
{
	json_t *o = cz_log_json_begin(NULL, "output");

	if (o == NULL) {
		return;
	}
	json_object_set_new(o, "id", json_integer(p->id));
	json_object_set_new(o, "stream", json_string(p->dest == 1 ? "stdout" :
		"stderr"));
	json_object_set_new(o, "line", cz_log_json_string(line,
		len > 0 ? len - 1 : 0));
	cz_log_json_write(o, p->dest);
}

/*
 * Blocking like an inherited fd would be: a slow reader of our output
 * slows the workers down rather than losing their lines.
 */
static void write_line(void *ctx, const char *line, size_t len)
{
	const struct cz_output_pipe *p = ctx;

	if (p->json) {
		write_json(p, line, len);
		return;
	}

	while (len > 0) {
		ssize_t n = write(p->dest, line, len);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return;  /* our stdout is gone: drop, like a closed pipe */
		}
		line += n;
		len -= (size_t)n;
	}
}

static void on_pipe_closed(uv_handle_t *h)
{
	struct cz_output_pipe *p = h->data;
	struct cz_output_pipe **pp = &p->owner->pipes;

	while (*pp != NULL && *pp != p) {
		pp = &(*pp)->next;
	}
	if (*pp == p) {
		*pp = p->next;
	}
	free(p);
}

static void pipe_close(struct cz_output_pipe *p)
{
	if (!uv_is_closing((uv_handle_t *)&p->pipe)) {
		cz_output_line_flush(&p->line, write_line, p);
		uv_close((uv_handle_t *)&p->pipe, on_pipe_closed);
	}
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct cz_output_pipe *p = h->data;

	(void)hint;
	*buf = uv_buf_init(p->rbuf, sizeof(p->rbuf));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct cz_output_pipe *p = st->data;

	if (n > 0) {
		cz_output_line_feed(&p->line, buf->base, (size_t)n, write_line, p);
	} else if (n < 0) {
		pipe_close(p);  /* EOF: every writer (the worker, its children) closed */
	}
}

void cz_output_init(struct cz_output *o, uv_loop_t *loop)
{
	o->loop = loop;
	o->pipes = NULL;
}

int cz_output_attach(struct cz_output *o, int fd, uint32_t id, int dest)
{
	struct cz_output_pipe *p = calloc(1, sizeof(*p));
	int rc;

	if (p == NULL) {
		close(fd);
		return -ENOMEM;
	}
	rc = uv_pipe_init(o->loop, &p->pipe, 0);
	if (rc < 0) {
		free(p);
		close(fd);
		return rc;
	}
	p->owner = o;
	p->dest = dest;
	p->pipe.data = p;
	cz_output_line_init(&p->line, id);
	p->id = id;
	p->json = cz_log_get_format() == CZ_LOG_JSON;
	if (p->json) {
		p->line.plen = 0;  /* the id is a field */
	}
	p->next = o->pipes;
	o->pipes = p;
	rc = uv_pipe_open(&p->pipe, fd);
	if (rc == 0) {
		rc = uv_read_start((uv_stream_t *)&p->pipe, on_alloc, on_read);
	} else {
		close(fd);
	}
	if (rc < 0) {
		pipe_close(p);
	}
	return rc;
}

/*
 * What a worker wrote just before it exited may still sit in the pipe when
 * the launcher finishes: read it out first (the fd is non-blocking; a
 * descendant still holding the write end only makes this stop at EAGAIN).
 */
static void pipe_drain(struct cz_output_pipe *p)
{
	uv_os_fd_t fd;
	ssize_t n;

	if (uv_is_closing((uv_handle_t *)&p->pipe) ||
		uv_fileno((uv_handle_t *)&p->pipe, &fd) != 0) {
		return;
	}
	do {
		n = read(fd, p->rbuf, sizeof(p->rbuf));
		if (n > 0) {
			cz_output_line_feed(&p->line, p->rbuf, (size_t)n,
				write_line, p);
		}
	} while (n > 0 || (n < 0 && errno == EINTR));
}

void cz_output_close_all(struct cz_output *o)
{
	for (struct cz_output_pipe *p = o->pipes; p != NULL; p = p->next) {
		pipe_drain(p);
		pipe_close(p);
	}
}
