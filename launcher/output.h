/*
 * --prefix-output: the workers' stdout and stderr come to the launcher
 * through pipes and leave it as whole lines, each prefixed with "[ID] " and
 * written with one write(2), so lines of different workers never interleave
 * mid-line.  With --log-format json each line leaves as a JSON object
 * instead: {"time":...,"event":"output","id":3,"stream":"stdout","line":...}.
 *
 * The line assembly (cz_output_line_*) is pure and unit-tested; the pipes
 * (cz_output_*) read with libuv and write to the launcher's own fds.
 */
#ifndef CZ_LAUNCHER_OUTPUT_H
#define CZ_LAUNCHER_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Longest line written as one; a longer one is cut into several. */
#define CZ_OUTPUT_LINE_MAX 8192
#define CZ_OUTPUT_PREFIX_MAX 24

/* Called with a whole prefixed line, ending in '\n'. */
typedef void cz_output_emit_fn(void *ctx, const char *line, size_t len);

struct cz_output_line {
	size_t plen;  /* prefix length */
	size_t len;   /* bytes of the pending line, prefix excluded */
	char buf[CZ_OUTPUT_PREFIX_MAX + CZ_OUTPUT_LINE_MAX + 1];
};

void cz_output_line_init(struct cz_output_line *l, uint32_t id);

/*
 * Adds `n` bytes read from the worker.  Emits every line they complete, and
 * the pending part as a line of its own (with a '\n' added) when it reaches
 * CZ_OUTPUT_LINE_MAX bytes.
 */
void cz_output_line_feed(struct cz_output_line *l, const char *data, size_t n,
	cz_output_emit_fn *emit, void *ctx);

/* At EOF: emits the pending partial line, if any, with a '\n' added. */
void cz_output_line_flush(struct cz_output_line *l, cz_output_emit_fn *emit,
	void *ctx);

struct cz_output_pipe;

/* The open pipes, embedded in the supervisor. */
struct cz_output {
	uv_loop_t *loop;
	struct cz_output_pipe *pipes;
};

void cz_output_init(struct cz_output *o, uv_loop_t *loop);

/*
 * Reads the pipe `fd` (taken over: closed in any case) until EOF and writes
 * its lines, prefixed with "[id] ", to `dest` (1 or 2).  Returns 0 or -errno.
 */
int cz_output_attach(struct cz_output *o, int fd, uint32_t id, int dest);

/* Flushes and closes every pipe; the loop finishes closing them. */
void cz_output_close_all(struct cz_output *o);

#endif
