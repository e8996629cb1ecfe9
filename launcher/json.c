/* JSON helpers (json.h). */
#include "json.h"

#include <stdlib.h>
#include <string.h>

#include "escape.h"

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
		size_t k = *p < 0x80 ? 1 : cz_utf8_len(p, n);

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
