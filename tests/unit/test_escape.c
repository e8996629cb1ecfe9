/* Printing bytes that came from a worker: nothing a terminal acts on. */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "addr.h"
#include "escape.h"

TestSuite(escape);

static const char *esc(const char *in)
{
	static char out[512];

	cz_escape_str(out, sizeof(out), in);
	return out;
}

Test(escape, printable_text_is_kept)
{
	cr_assert_str_eq(esc("/run/app.sock"), "/run/app.sock");
	cr_assert_str_eq(esc("caf\xc3\xa9 \xe2\x82\xac"), "caf\xc3\xa9 \xe2\x82\xac",
		"printable UTF-8 stays readable");
	cr_assert_str_eq(esc(""), "");
}

Test(escape, controls_become_escapes)
{
	cr_assert_str_eq(esc("a\nb\tc\rd\\e"), "a\\nb\\tc\\rd\\\\e");
	cr_assert_str_eq(esc("\x1b[31mred\x7f"), "\\x1b[31mred\\x7f");
	cr_assert_str_eq(esc("\x01\x1f"), "\\x01\\x1f");
}

Test(escape, unsafe_or_invalid_utf8_is_escaped_bytewise)
{
	cr_assert_str_eq(esc("\xc2\x9b" "2J"), "\\xc2\\x9b2J", "C1 CSI");
	cr_assert_str_eq(esc("\xe2\x80\xae" "txt"), "\\xe2\\x80\\xaetxt",
		"right-to-left override");
	cr_assert_str_eq(esc("\xff\xc3"), "\\xff\\xc3", "invalid and cut short");
	cr_assert_str_eq(esc("\xc0\xaf"), "\\xc0\\xaf", "overlong /");
}

Test(escape, output_is_bounded_and_never_splits_an_escape)
{
	char out[8];

	cr_assert_eq(cz_escape_str(out, sizeof(out), "ab\x1b" "cd"), 7);
	cr_assert_str_eq(out, "ab\\x1bc");
	cr_assert_eq(cz_escape_str(out, 5, "ab\x1b" "cd"), 2, "\\x1b does not fit");
	cr_assert_str_eq(out, "ab");
	cr_assert_eq(cz_escape_str(out, 0, "x"), 0);
	cr_assert_eq(cz_escape(out, sizeof(out), "a\0b", 3), 6, "NULs too");
	cr_assert_str_eq(out, "a\\x00b");
}

/* A unix path made to forge an event line and colour the terminal. */
Test(escape, unix_addresses_are_printed_escaped)
{
	const char *path = "/tmp/x\nclusterize: worker 1 (pid 1) exited\x1b[2K";
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char buf[CZ_ADDR_STRLEN];
	socklen_t len;

	strcpy(sun.sun_path, path);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
	cz_addr_format((struct sockaddr *)&sun, len, SOCK_STREAM, buf, sizeof(buf));
	cr_assert_str_eq(buf, "unix /tmp/x\\nclusterize: worker 1 (pid 1) exited\\x1b[2K");
	sun.sun_path[0] = '\0';
	cz_addr_format((struct sockaddr *)&sun, len, SOCK_DGRAM, buf, sizeof(buf));
	cr_assert_eq(strchr(buf, '\n'), NULL, "abstract names too: %s", buf);
	cr_assert_eq(strncmp(buf, "unixgram @tmp/x\\n", 17), 0, "%s", buf);
}
