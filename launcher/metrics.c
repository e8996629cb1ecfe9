/*
 * The metrics endpoint (metrics.h): a small, strict HTTP server on the
 * launcher's loop.  Each client is a TCP handle and a deadline timer; it is
 * unlinked from the server when it starts closing, so the order in which
 * the loop runs close callbacks does not matter.
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "http.h"
#include "log.h"

#define METRICS_PATH "/metrics"
#define METRICS_BACKLOG 16
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct client {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t wr;
	uv_shutdown_t sd;
	struct cz_metrics *m;
	struct client *next;
	int open_handles;
	bool closing;
	bool answered;  /* reading only to let the client finish sending */
	size_t len;
	struct cz_expo body;
	char head[256];
	char buf[CZ_HTTP_HEAD_MAX];
};

struct cz_metrics {
	uv_tcp_t server;
	uv_loop_t *loop;
	cz_metrics_collect_fn *collect;
	void *data;
	struct client *clients;
	unsigned nclients;
	char address[CZ_ADDR_STRLEN];
};

/* --- the address ---------------------------------------------------------- */

static int parse_port(const char *s, char *err, size_t errlen)
{
	long port = 0;

	if (*s == '\0' || strlen(s) > 5) {
		snprintf(err, errlen, "expected a port from 0 to 65535");
		return -1;
	}
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9') {
			snprintf(err, errlen, "expected a port from 0 to 65535");
			return -1;
		}
		port = port * 10 + (*s - '0');
	}
	if (port > 65535) {
		snprintf(err, errlen, "expected a port from 0 to 65535");
		return -1;
	}
	return (int)port;
}

int cz_metrics_parse_addr(const char *s, struct sockaddr_storage *ss,
	char *err, size_t errlen)
{
	const char *colon = strrchr(s, ':');
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	char host[64];
	size_t hlen;
	int port;

	memset(ss, 0, sizeof(*ss));
	if (colon == NULL) {
		snprintf(err, errlen, "expected [HOST]:PORT, e.g. 127.0.0.1:9464");
		return -1;
	}
	port = parse_port(colon + 1, err, errlen);
	if (port < 0) {
		return -1;
	}
	hlen = (size_t)(colon - s);
	if (hlen >= sizeof(host)) {
		snprintf(err, errlen, "host too long");
		return -1;
	}
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (hlen > 2 && host[0] == '[' && host[hlen - 1] == ']') {
		host[hlen - 1] = '\0';
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) == 1) {
			return (int)sizeof(*in6);
		}
		host[hlen - 1] = ']';
	} else if (hlen == 0 || strcmp(host, "localhost") == 0) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return (int)sizeof(*in);
	} else if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		return (int)sizeof(*in);
	}
	snprintf(err, errlen, "'%s' is not a numeric address or localhost "
		"(IPv6 in brackets: [::1]:9464)", host);
	return -1;
}

/* --- clients -------------------------------------------------------------- */

static void on_client_closed(uv_handle_t *h)
{
	struct client *c = h->data;

	if (--c->open_handles == 0) {
		cz_expo_free(&c->body);
		free(c);
	}
}

static void client_close(struct client *c)
{
	struct client **pp;

	if (c->closing) {
		return;
	}
	c->closing = true;
	for (pp = &c->m->clients; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	c->m->nclients--;
	uv_close((uv_handle_t *)&c->tcp, on_client_closed);
	uv_close((uv_handle_t *)&c->timer, on_client_closed);
}

static void on_deadline(uv_timer_t *t)
{
	client_close(t->data);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

/*
 * Closing a socket with unread bytes makes the kernel send RST, which can
 * destroy the answer before the client reads it (a request cut off at
 * CZ_HTTP_HEAD_MAX, a body we never read): read on until the client,
 * having read our FIN, closes too, or the deadline.
 */
static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct client *c = req->data;

	if (c->closing) {
		return;
	}
	c->len = 0;
	if (status < 0 || uv_read_start((uv_stream_t *)&c->tcp, on_alloc,
		on_read) < 0) {
		client_close(c);
	}
}

static void on_written(uv_write_t *req, int status)
{
	struct client *c = req->data;

	if (c->closing) {
		return;
	}
	if (status < 0 || uv_shutdown(&c->sd, (uv_stream_t *)&c->tcp,
		on_shutdown) < 0) {
		client_close(c);
	}
}

/* The answer to a request cz_http_parse() judged `status`. */
static void respond(struct client *c, int status, bool head)
{
	uv_buf_t bufs[2];
	const char *reason = cz_http_reason(status);
	int n;

	uv_read_stop((uv_stream_t *)&c->tcp);
	c->answered = true;
	if (status == 200) {
		c->m->collect(c->m->data, &c->body);
		if (c->body.failed) {
			cz_expo_free(&c->body);
			status = 503;
			reason = cz_http_reason(status);
		}
	}
	if (status != 200) {
		cz_expo_free(&c->body);
	}
	n = snprintf(c->head, sizeof(c->head), "HTTP/1.1 %d %s\r\n"
		"Content-Type: %s\r\nContent-Length: %zu\r\n%s"
		"Connection: close\r\n\r\n", status, reason,
		status == 200 ? CONTENT_TYPE : "text/plain; charset=utf-8",
		status == 200 ? c->body.len : strlen(reason) + 1,
		status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (status != 200 && !head && n > 0 && (size_t)n < sizeof(c->head)) {
		/* The reason phrase and a newline as the body. */
		n += snprintf(c->head + n, sizeof(c->head) - (size_t)n, "%s\n",
			reason);
	}
	bufs[0] = uv_buf_init(c->head, (unsigned)n);
	bufs[1] = uv_buf_init(c->body.buf, (unsigned)c->body.len);
	c->wr.data = c;
	c->sd.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, bufs,
		status == 200 && !head ? 2 : 1, on_written) < 0) {
		client_close(c);
		return;
	}
	uv_timer_start(&c->timer, on_deadline, CZ_METRICS_TOTAL_MS, 0);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct client *c = h->data;

	(void)hint;
	if (c->answered) {
		*buf = uv_buf_init(c->buf, sizeof(c->buf));  /* discarded */
		return;
	}
	*buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - c->len));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct client *c = st->data;
	struct cz_http_req req;
	int status;

	(void)buf;
	if (n < 0) {
		client_close(c);  /* gone, or done reading our answer */
		return;
	}
	if (c->answered) {
		return;
	}
	c->len += (size_t)n;
	status = cz_http_parse(c->buf, c->len, METRICS_PATH, &req);
	if (status != 0) {
		respond(c, status, req.head);
	}
}

static int client_start(struct cz_metrics *m, struct client *c)
{
	int rc;

	c->m = m;
	c->tcp.data = c;
	c->timer.data = c;
	rc = uv_tcp_init(m->loop, &c->tcp);
	if (rc < 0) {
		return rc;
	}
	c->open_handles = 1;
	rc = uv_timer_init(m->loop, &c->timer);
	if (rc < 0) {
		uv_close((uv_handle_t *)&c->tcp, on_client_closed);
		return 0;  /* freed when closed */
	}
	c->open_handles = 2;
	c->next = m->clients;
	m->clients = c;
	m->nclients++;
	rc = uv_accept((uv_stream_t *)&m->server, (uv_stream_t *)&c->tcp);
	if (rc == 0 && m->nclients > CZ_METRICS_CLIENTS) {
		rc = -EBUSY;  /* taken from the backlog only to be closed */
	}
	if (rc == 0) {
		rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	}
	if (rc == 0) {
		rc = uv_timer_start(&c->timer, on_deadline, CZ_METRICS_HEAD_MS, 0);
	}
	if (rc < 0) {
		client_close(c);
	}
	return 0;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct cz_metrics *m = server->data;
	struct client *c;

	if (status < 0) {
		cz_log(CZ_LOG_WARN, "metrics endpoint %s: %s", m->address,
			uv_strerror(status));
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL || client_start(m, c) < 0) {
		/* Out of memory: libuv holds the connection unaccepted, and
		 * the endpoint stops until the launcher stops. */
		cz_log(CZ_LOG_WARN, "metrics endpoint %s: out of memory",
			m->address);
		free(c);
	}
}

/* --- the server ----------------------------------------------------------- */

static void on_server_closed(uv_handle_t *h)
{
	free(h->data);
}

int cz_metrics_create(uv_loop_t *loop, const char *addr,
	cz_metrics_collect_fn *collect, void *data, struct cz_metrics **out)
{
	struct cz_metrics *m = calloc(1, sizeof(*m));
	struct sockaddr_storage ss;
	int sslen = sizeof(ss), rc;
	char err[128];

	if (m == NULL) {
		return -ENOMEM;
	}
	if (cz_metrics_parse_addr(addr, &ss, err, sizeof(err)) < 0) {
		free(m);
		return -EINVAL;
	}
	m->loop = loop;
	m->collect = collect;
	m->data = data;
	m->server.data = m;
	rc = uv_tcp_init_ex(loop, &m->server, ss.ss_family);
	if (rc < 0) {
		free(m);
		return rc;
	}
	rc = uv_tcp_bind(&m->server, (const struct sockaddr *)&ss,
		ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
	if (rc == 0) {
		rc = uv_listen((uv_stream_t *)&m->server, METRICS_BACKLOG,
			on_connection);
	}
	if (rc == 0) {
		rc = uv_tcp_getsockname(&m->server, (struct sockaddr *)&ss, &sslen);
	}
	if (rc < 0) {
		uv_close((uv_handle_t *)&m->server, on_server_closed);
		return rc;
	}
	cz_addr_format((struct sockaddr *)&ss, (socklen_t)sslen, SOCK_STREAM,
		m->address, sizeof(m->address));
	*out = m;
	return 0;
}

const char *cz_metrics_address(const struct cz_metrics *m)
{
	return m->address;
}

void cz_metrics_destroy(struct cz_metrics *m)
{
	if (m == NULL) {
		return;
	}
	while (m->clients != NULL) {
		client_close(m->clients);
	}
	uv_close((uv_handle_t *)&m->server, on_server_closed);
}
