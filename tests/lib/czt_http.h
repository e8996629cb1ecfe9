/*
 * czt_http: HTTP clients for the tests of servers that speak HTTP
 * (tests/servers/slow_http.py and .js answer GET with "<pid>\n"): one
 * request, a connection kept open (long-lived, websocket-like), a load of
 * client threads, and a client bound to a source address of its choosing
 * (127.0.0.2, ...: every 127/8 address is the loopback's).
 *
 * Every wait has a deadline (scaled by CZ_TEST_TIMEOUT_MULT); nothing here
 * asserts from a client thread.
 */
#ifndef CZT_HTTP_H
#define CZT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Connects to 127.0.0.1:port (from `src`, an IPv4 address, when not NULL).
 * Returns the fd or -errno.
 */
int czt_http_connect(int port, const char *src, int ms);

/*
 * Sends one GET on fd and reads its answer: the pid in the body, or -errno
 * (-EBADMSG: not "200" with a pid; what came is in czt_http_last_bad()).
 * With `keep`, asks to keep the connection open (HTTP/1.1); else asks the
 * server to close it and reads to EOF.
 */
pid_t czt_http_request(int fd, bool keep, int ms);

/* A new connection from `src` (NULL: any), one GET, closed: the pid or -errno. */
pid_t czt_http_once(int port, const char *src, int ms);

/*
 * A long-lived connection: one GET with keep-alive, answered; the
 * connection stays open (the caller closes *fd).  Returns the pid that
 * serves it, or -errno (then *fd is -1).
 */
pid_t czt_http_hold(int port, int *fd, int ms);

/* The last unexpected answer, for messages. */
const char *czt_http_last_bad(void);

/* A load: `threads` clients, each making requests until stopped. */
struct czt_http_load_result {
	int requests;       /* started */
	int ok;             /* answered 200 with a pid */
	int failed;
	char first_bad[192]; /* what the first failure was */
};

struct czt_http_load;
/*
 * Starts `threads` client threads against 127.0.0.1:port.  Each opens a
 * connection, makes `per_conn` requests on it (1: a new connection per
 * request; more: keep-alive, the last one asking to close), and starts
 * over, until stopped.
 */
struct czt_http_load *czt_http_load_start(int port, int threads, int per_conn);
/* Answers so far. */
int czt_http_load_ok(const struct czt_http_load *l);
/* Waits until `more` answers beyond now have come; false at the deadline. */
bool czt_http_load_wait_more(const struct czt_http_load *l, int more, int ms);
/* Starts no more requests, finishes the ones open, frees l. */
void czt_http_load_stop(struct czt_http_load *l, struct czt_http_load_result *r);

#endif
