/* Printing bytes that came from a worker: see escape.h. */
#include "escape.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

size_t cz_utf8_len(const unsigned char *s, size_t n)
{
	size_t len, i;
	unsigned c = s[0];
	unsigned long cp;

	if (c >= 0xc2 && c <= 0xdf) {
		len = 2, cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3, cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n) {
		return 0;
	}
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80) {
			return 0;
		}
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and beyond U+10FFFF are not UTF-8. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
		return 0;
	}
	return len;
}

/* The code point of a valid sequence of `len` bytes. */
static uint32_t utf8_cp(const unsigned char *s, size_t len)
{
	uint32_t cp = s[0] & (0x7f >> len);
	size_t i;

	for (i = 1; i < len; i++) {
		cp = cp << 6 | (s[i] & 0x3f);
	}
	return cp;
}

/* C1 controls (terminals act on some) and the bidirectional controls
 * that make text display in another order than it is stored. */
static bool cp_unsafe(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x200e || cp == 0x200f ||
	       (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* Appends `s` (`k` bytes) if it fits whole; returns whether it did. */
static bool put(char *out, size_t size, size_t *used, const char *s, size_t k)
{
	if (*used + k + 1 > size) {
		return false;
	}
	memcpy(out + *used, s, k);
	*used += k;
	return true;
}

size_t cz_escape(char *out, size_t size, const void *in, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = in;
	size_t used = 0, k, len;
	char esc[4];

	if (size == 0) {
		return 0;
	}
	while (n > 0) {
		unsigned c = *p;
		const char *s = (const char *)p;

		k = len = 1;
		if (c == '\\' || c == '\n' || c == '\t' || c == '\r') {
			esc[0] = '\\';
			esc[1] = c == '\n' ? 'n' : c == '\t' ? 't' :
				 c == '\r' ? 'r' : '\\';
			s = esc;
			len = 2;
		} else if (c >= 0x20 && c < 0x7f) {
			/* as is */
		} else if (c >= 0x80 && (k = cz_utf8_len(p, n)) > 0 &&
			   !cp_unsafe(utf8_cp(p, k))) {
			len = k; /* printable UTF-8, as is */
		} else {
			k = 1;
			esc[0] = '\\';
			esc[1] = 'x';
			esc[2] = hex[c >> 4];
			esc[3] = hex[c & 15];
			s = esc;
			len = 4;
		}
		if (!put(out, size, &used, s, len)) {
			break;
		}
		p += k;
		n -= k;
	}
	out[used] = '\0';
	return used;
}

size_t cz_escape_str(char *out, size_t size, const char *in)
{
	return cz_escape(out, size, in, in != NULL ? strlen(in) : 0);
}
