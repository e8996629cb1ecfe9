/*
 * The request reader (http.h).  RFC 9112 syntax, without what a metrics
 * scraper never sends: no obsolete line folding, no absolute-form target.
 * A bare LF ends a line as CRLF does (the RFC allows a recipient that).
 */
#include "http.h"

#include <string.h>

/* tchar of RFC 9110: the characters of a method or a header name. */
static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

/* The end of the line at p (its '\n'), or NULL. */
static const char *line_end(const char *p, const char *end)
{
	return memchr(p, '\n', (size_t)(end - p));
}

/* The line [p, nl) without a trailing CR. */
static size_t line_len(const char *p, const char *nl)
{
	size_t n = (size_t)(nl - p);

	return n > 0 && p[n - 1] == '\r' ? n - 1 : n;
}

/* Where the headers end (past the empty line), or NULL if not yet. */
static const char *head_end(const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len, *nl;

	while ((nl = line_end(p, end)) != NULL) {
		if (line_len(p, nl) == 0 && p != buf) {
			return nl + 1;
		}
		p = nl + 1;
	}
	return NULL;
}

static bool header_ok(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && is_tchar(p[i])) {
		i++;
	}
	if (i == 0 || i == n || p[i] != ':') {
		return false;
	}
	for (i++; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			return false;
		}
	}
	return true;
}

/* "METHOD SP TARGET SP HTTP/1.x": 0, or 400. */
static int request_line(const char *p, size_t n, const char **target,
	size_t *tlen, size_t *mlen)
{
	const char *sp1, *sp2, *end = p + n;
	size_t i;

	for (i = 0; i < n && is_tchar(p[i]); i++) {
	}
	if (i == 0 || i == n || p[i] != ' ') {
		return 400;
	}
	*mlen = i;
	sp1 = p + i;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
	if (sp2 == NULL || sp2 == sp1 + 1 || sp1[1] != '/') {
		return 400;
	}
	for (const char *c = sp1 + 1; c < sp2; c++) {
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f) {
			return 400;
		}
	}
	if ((size_t)(end - sp2 - 1) != 8 ||
		(memcmp(sp2 + 1, "HTTP/1.0", 8) != 0 &&
		 memcmp(sp2 + 1, "HTTP/1.1", 8) != 0)) {
		return 400;
	}
	*target = sp1 + 1;
	*tlen = (size_t)(sp2 - sp1 - 1);
	return 0;
}

static bool path_matches(const char *t, size_t tlen, const char *path)
{
	size_t n = strlen(path);

	return tlen >= n && memcmp(t, path, n) == 0 && (tlen == n || t[n] == '?');
}

int cz_http_parse(const char *buf, size_t len, const char *path,
	struct cz_http_req *req)
{
	const char *end = head_end(buf, len), *p, *nl, *target;
	size_t tlen, mlen;
	int rc;

	req->head = false;
	if (memchr(buf, '\0', len) != NULL) {
		return 400;
	}
	if (end == NULL) {
		return len >= CZ_HTTP_HEAD_MAX ? 431 : 0;
	}
	if (end - buf > CZ_HTTP_HEAD_MAX) {
		return 431;
	}
	nl = line_end(buf, end);
	rc = request_line(buf, line_len(buf, nl), &target, &tlen, &mlen);
	if (rc != 0) {
		return rc;
	}
	for (p = nl + 1; (nl = line_end(p, end)) != NULL && line_len(p, nl) > 0;
		p = nl + 1) {
		if (!header_ok(p, line_len(p, nl))) {
			return 400;
		}
	}
	if (!path_matches(target, tlen, path)) {
		return 404;
	}
	req->head = mlen == 4 && memcmp(buf, "HEAD", 4) == 0;
	if (!req->head && !(mlen == 3 && memcmp(buf, "GET", 3) == 0)) {
		return 405;
	}
	return 200;
}

const char *cz_http_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	default:
		return "Error";
	}
}
