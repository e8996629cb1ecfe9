/*
 * Bytes that came from a worker (unix socket paths, executable names),
 * made safe to print: a newline or an escape sequence in a path must not
 * forge a log line or drive the operator's terminal.
 */
#ifndef CZ_LAUNCHER_ESCAPE_H
#define CZ_LAUNCHER_ESCAPE_H

#include <stddef.h>

/*
 * Writes `n` bytes of `in` to `out` (always NUL-terminated when size > 0),
 * keeping printable ASCII and printable UTF-8; a backslash becomes "\\",
 * tab, newline and carriage return "\t", "\n", "\r", and every other byte
 * (controls, DEL, C1 controls, bidirectional overrides, invalid UTF-8)
 * "\xHH".  An escape that does not fit is left out whole.  Returns the
 * length written.
 */
size_t cz_escape(char *out, size_t size, const void *in, size_t n);

/* The same for a NUL-terminated string. */
size_t cz_escape_str(char *out, size_t size, const char *in);

/*
 * The length of the valid UTF-8 sequence at `s` (`n` bytes left), or 0
 * if it is not one (overlong, a surrogate, beyond U+10FFFF, cut short).
 */
size_t cz_utf8_len(const unsigned char *s, size_t n);

#endif
