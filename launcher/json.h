/*
 * What the launcher's JSON writers share, on top of jansson (a strict
 * RFC 8259 parser and writer; see the README's development section for
 * why jansson): strings from bytes that need not be UTF-8, and one-line
 * documents.
 */
#ifndef CZ_LAUNCHER_JSON_H
#define CZ_LAUNCHER_JSON_H

#include <jansson.h>
#include <stddef.h>

/*
 * A JSON string of `s` (NULL: ""), with every byte that is not part of a
 * valid UTF-8 sequence replaced by U+FFFD (argv and peers' bytes can be
 * anything).  NULL only when out of memory.
 */
json_t *cz_json_string_lossy(const char *s);

/*
 * `j` as one compact line (no newline), malloc'd; with `ascii`, every
 * non-ASCII character escaped too, so that the line is safe on any terminal.
 * NULL when out of memory.
 */
char *cz_json_line(const json_t *j, int ascii);

/* Flags for every json_load*() of a message: one value, NUL allowed. */
#define CZ_JSON_LOAD_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL)

#endif
