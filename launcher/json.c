/* JSON helpers (json.h). */
#include "json.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len, i;
	unsigned c = s[0];
	unsigned long cp;

	if (c < 0x80) {
		return 1;
	}
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

json_t *cz_json_string_lossy(const char *s)
{
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
	size_t n = strlen((const char *)p), used = 0;
	char *buf;
	json_t *j;

	/* Each bad byte becomes 3 bytes (EF BF BD). */
	buf = malloc(n * 3 + 1);
	if (buf == NULL) {
		return NULL;
	}
	while (n > 0) {
		size_t k = utf8_len(p, n);

		if (k == 0) {
			memcpy(buf + used, "\xef\xbf\xbd", 3);
			used += 3;
			k = 1;
		} else {
			memcpy(buf + used, p, k);
			used += k;
		}
		p += k;
		n -= k;
	}
	j = json_stringn(buf, used);
	free(buf);
	return j;
}

char *cz_json_line(const json_t *j, int ascii)
{
	return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY |
		JSON_REAL_PRECISION(12) | (ascii ? JSON_ENSURE_ASCII : 0));
}
