/*
 * The metrics endpoint's request reader: what each request gets, and that
 * an incomplete one waits for more while an oversized one does not.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

#include "http.h"

/* Arrays, not pointers: Criterion copies the parameters into each test. */
struct http_case {
	char req[400];
	int status;
	bool head;
};

ParameterizedTestParameters(http, answers)
{
	static struct http_case cases[] = {
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200, false },
		{ "GET /metrics HTTP/1.0\r\n\r\n", 200, false },
		{ "GET /metrics?name[]=up HTTP/1.1\r\n\r\n", 200, false },
		{ "HEAD /metrics HTTP/1.1\r\n\r\n", 200, true },
		{ "GET /metrics HTTP/1.1\nAccept: */*\n\n", 200, false },
		{ "GET /metrics HTTP/1.1\r\nUser-Agent: Prometheus/2.42.0\r\nAccept: "
		  "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;"
		  "q=0.5,*/*;q=0.1\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n", 200, false },
		{ "GET / HTTP/1.1\r\n\r\n", 404, false },
		{ "GET /metrics/ HTTP/1.1\r\n\r\n", 404, false },
		{ "GET /METRICS HTTP/1.1\r\n\r\n", 404, false },
		{ "POST /metrics HTTP/1.1\r\n\r\n", 405, false },
		{ "get /metrics HTTP/1.1\r\n\r\n", 405, false },
		{ "GET  /metrics HTTP/1.1\r\n\r\n", 400, false },
		{ "GET /metrics HTTP/1.1 \r\n\r\n", 400, false },
		{ "GET /metrics HTTP/2.0\r\n\r\n", 400, false },
		{ "GET /metrics\r\n\r\n", 400, false },
		{ "GET http://x/metrics HTTP/1.1\r\n\r\n", 400, false },
		{ "GET /met\x01rics HTTP/1.1\r\n\r\n", 400, false },
		{ "GET /metrics HTTP/1.1\r\nHost x\r\n\r\n", 400, false },
		{ "GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n", 400, false },
		{ "GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", 400, false },
		{ "GET /metrics HTTP/1.1\r\n folded\r\n\r\n", 400, false },
		{ "GET /metrics HTTP/1.1\r\nX: a\x7f\r\n\r\n", 400, false },
		{ "\r\n\r\n", 400, false },
		{ "\x16\x03\x01\x02\x05\x01\x05\x01\xfc\x03\x03\r\n\r\n", 400, false },
	};

	return cr_make_param_array(struct http_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct http_case *c, http, answers)
{
	struct cz_http_req req;
	int got = cz_http_parse(c->req, strlen(c->req), "/metrics", &req);

	cr_assert_eq(got, c->status, "%s: got %d, expected %d", c->req, got, c->status);
	if (got == 200) {
		cr_assert_eq(req.head, c->head);
	}
}

Test(http, an_incomplete_request_waits_for_more)
{
	const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	struct cz_http_req r;

	for (size_t n = 0; n < strlen(req); n++) {
		cr_assert_eq(cz_http_parse(req, n, "/metrics", &r), 0, "%zu bytes", n);
	}
	cr_assert_eq(cz_http_parse(req, strlen(req), "/metrics", &r), 200);
}

Test(http, a_nul_byte_is_malformed_at_once)
{
	static const char req[] = "GET /metrics\0 HTTP/1.1\r\n";
	struct cz_http_req r;

	cr_assert_eq(cz_http_parse(req, sizeof(req) - 1, "/metrics", &r), 400);
}

Test(http, headers_past_the_limit_get_431)
{
	static char req[CZ_HTTP_HEAD_MAX + 100];
	struct cz_http_req r;

	memset(req, 'a', sizeof(req));
	memcpy(req, "GET /metrics HTTP/1.1\r\nX: ", 26);
	cr_assert_eq(cz_http_parse(req, CZ_HTTP_HEAD_MAX - 1, "/metrics", &r), 0);
	cr_assert_eq(cz_http_parse(req, CZ_HTTP_HEAD_MAX, "/metrics", &r), 431);
	memcpy(req + CZ_HTTP_HEAD_MAX + 10, "\r\n\r\n", 4);
	cr_assert_eq(cz_http_parse(req, CZ_HTTP_HEAD_MAX + 14, "/metrics", &r), 431,
		"complete, but too long");
}
