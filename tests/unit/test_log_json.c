/*
 * The launcher's log: an event's text line is exactly what cz_log() writes,
 * and its JSON line carries each printf argument under the name given.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The launcher's, not the shim's log.h, which comes first in the path. */
#include "../../launcher/log.h"

static FILE *capture;

static void setup(void)
{
	capture = tmpfile();
	cr_assert_not_null(capture);
	cz_log_set_fd(fileno(capture));
	cz_log_set_level(CZ_LOG_INFO);
}

static void teardown(void)
{
	cz_log_set_fd(2);
	fclose(capture);
	cz_log_set_format(CZ_LOG_TEXT);
}

/* What was written since the last call. */
static char *captured(void)
{
	static char buf[8192];
	size_t n;

	fflush(capture);
	rewind(capture);
	n = fread(buf, 1, sizeof(buf) - 1, capture);
	buf[n] = '\0';
	cr_assert_eq(ftruncate(fileno(capture), 0), 0);
	rewind(capture);
	return buf;
}

TestSuite(log_json, .init = setup, .fini = teardown);

Test(log_json, an_event_in_text_is_the_plain_line)
{
	cz_log(CZ_LOG_INFO, "worker %u (pid %d) listening on %s", 3u, 42, "[::1]:80");
	char *plain = strdup(captured());

	cz_log_event(CZ_LOG_INFO, "listening", "id pid address",
		"worker %u (pid %d) listening on %s", 3u, 42, "[::1]:80");
	cr_assert_str_eq(captured(), plain);
	cr_assert_str_eq(plain, "clusterize: worker 3 (pid 42) listening on [::1]:80\n");
	free(plain);
}

Test(log_json, an_event_in_json_names_each_argument)
{
	json_error_t jerr;
	json_t *o;

	cz_log_set_format(CZ_LOG_JSON);
	cz_log_event(CZ_LOG_WARN, "ev", "a - b c d e f",
		"%u%% %s! %d %.*s %g %zu %lld", 7u, "skip", -3, 2, "abcdef", 0.5,
		(size_t)9, -5ll);
	char *line = captured();

	cr_assert_eq(strchr(line, '\n'), line + strlen(line) - 1, "one line: %s", line);
	o = json_loads(line, 0, &jerr);
	cr_assert_not_null(o, "%s: %s", jerr.text, line);
	cr_expect_str_eq(json_string_value(json_object_get(o, "level")), "warn");
	cr_expect_str_eq(json_string_value(json_object_get(o, "event")), "ev");
	cr_expect_eq(json_integer_value(json_object_get(o, "a")), 7);
	cr_expect_eq(json_integer_value(json_object_get(o, "b")), -3);
	cr_expect_str_eq(json_string_value(json_object_get(o, "c")), "ab");
	cr_expect_eq(json_real_value(json_object_get(o, "d")), 0.5);
	cr_expect_eq(json_integer_value(json_object_get(o, "e")), 9);
	cr_expect_eq(json_integer_value(json_object_get(o, "f")), -5);
	cr_expect_null(json_object_get(o, "-"));
	cr_expect_str_eq(json_string_value(json_object_get(o, "msg")),
		"7% skip! -3 ab 0.5 9 -5");
	json_decref(o);
}

Test(log_json, a_message_in_json_escapes_and_repairs_what_it_must)
{
	json_error_t jerr;
	json_t *o;

	cz_log_set_format(CZ_LOG_JSON);
	cz_log(CZ_LOG_ERROR, "path '%s': \"%s\"", "/tmp/a\nb\xff", "q\\");
	o = json_loads(captured(), 0, &jerr);
	cr_assert_not_null(o, "%s", jerr.text);
	cr_expect_str_eq(json_string_value(json_object_get(o, "event")), "message");
	cr_expect_str_eq(json_string_value(json_object_get(o, "level")), "error");
	cr_expect_str_eq(json_string_value(json_object_get(o, "msg")),
		"path '/tmp/a\nb\xef\xbf\xbd': \"q\\\"");
	json_decref(o);
}

Test(log_json, below_the_level_nothing_is_written)
{
	cz_log_set_format(CZ_LOG_JSON);
	cz_log_event(CZ_LOG_DEBUG, "ev", "a", "%d", 1);
	cr_assert_str_eq(captured(), "");
}
