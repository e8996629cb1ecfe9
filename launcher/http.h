/*
 * The metrics endpoint's HTTP/1.x request reader: strict, small, and pure
 * (unit-tested).  It reads one request line and its headers and decides the
 * answer; a request body is never read (the connection is closed after the
 * answer).
 */
#ifndef CZ_LAUNCHER_HTTP_H
#define CZ_LAUNCHER_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* A request line and headers longer than this get 431. */
#define CZ_HTTP_HEAD_MAX 8192

struct cz_http_req {
	bool head;   /* HEAD: the answer has no body */
};

/*
 * Looks at the `len` bytes received so far.  Returns 0 while the headers
 * are incomplete, else the status to answer: 200 (GET or HEAD of
 * `path`, a query string allowed), 400 (malformed: bad request line,
 * version other than HTTP/1.0 or 1.1, bad header line, control bytes),
 * 404 (another path), 405 (another method), 431 (no end of the headers
 * within CZ_HTTP_HEAD_MAX bytes).
 */
int cz_http_parse(const char *buf, size_t len, const char *path,
	struct cz_http_req *req);

/* The reason phrase of a status cz_http_parse() returns. */
const char *cz_http_reason(int status);

#endif
