/* czt: reading what a process wrote, and waiting for lines. */
#include <criterion/criterion.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "czt.h"

char *czt_read(const struct czt_proc *p, enum czt_stream s)
{
	FILE *f = fopen(s == CZT_ERR ? p->err_path : p->out_path, "re");
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);

	cr_assert_not_null(buf);
	buf[0] = '\0';
	if (f == NULL) {
		return buf;
	}
	for (;;) {
		size_t n = fread(buf + len, 1, cap - len - 1, f);

		len += n;
		buf[len] = '\0';
		if (n == 0) {
			break;
		}
		if (cap - len < 1024) {
			cap *= 2;
			buf = realloc(buf, cap);
			cr_assert_not_null(buf);
		}
	}
	fclose(f);
	return buf;
}

typedef bool (*line_pred)(const char *line, const void *arg);

/* Counts the lines of p's stream for which pred holds. */
static int count_lines(const struct czt_proc *p, enum czt_stream s, line_pred pred,
	const void *arg)
{
	char *text = czt_read(p, s);
	char *save = NULL;
	int n = 0;

	for (char *line = strtok_r(text, "\n", &save); line != NULL;
		line = strtok_r(NULL, "\n", &save)) {
		n += pred(line, arg);
	}
	free(text);
	return n;
}

static bool has_substr(const char *line, const void *arg)
{
	return strstr(line, arg) != NULL;
}

static bool matches(const char *line, const void *arg)
{
	return regexec(arg, line, 0, NULL, 0) == 0;
}

int czt_count(const struct czt_proc *p, enum czt_stream s, const char *substr)
{
	return count_lines(p, s, has_substr, substr);
}

int czt_count_re(const struct czt_proc *p, enum czt_stream s, const char *re)
{
	regex_t rx;

	cr_assert_eq(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0, "bad regex %s", re);
	int n = count_lines(p, s, matches, &rx);

	regfree(&rx);
	return n;
}

struct wait_arg {
	struct czt_proc *p;
	enum czt_stream s;
	line_pred pred;
	const void *arg;
	int want;
	int got;
	bool exited;
};

static bool enough_lines(void *v)
{
	struct wait_arg *w = v;

	/* Check the exit first: lines written before exiting are then all in. */
	bool exited = czt_exited(w->p);

	w->got = count_lines(w->p, w->s, w->pred, w->arg);
	w->exited = exited;
	return w->got >= w->want || exited;
}

static int wait_lines(struct czt_proc *p, enum czt_stream s, line_pred pred, const void *arg,
	int n, int ms)
{
	struct wait_arg w = { p, s, pred, arg, n, 0, false };

	czt_wait_until(enough_lines, &w, ms);
	if (w.got < n) {
		fprintf(stderr, "czt: waited for %d line(s), saw %d%s\n", n, w.got,
			w.exited ? " (the process exited)" : "");
		czt_dump(p);
	}
	return w.got;
}

int czt_wait_line(struct czt_proc *p, enum czt_stream s, const char *substr, int n, int ms)
{
	return wait_lines(p, s, has_substr, substr, n, ms);
}

int czt_wait_re(struct czt_proc *p, enum czt_stream s, const char *re, int n, int ms)
{
	regex_t rx;

	cr_assert_eq(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0, "bad regex %s", re);
	int got = wait_lines(p, s, matches, &rx, n, ms);

	regfree(&rx);
	return got;
}

#define DUMP_LINES 200

/* The last DUMP_LINES lines of one of p's files, on stderr. */
static void dump_tail(const struct czt_proc *p, enum czt_stream s)
{
	const char *path = s == CZT_ERR ? p->err_path : p->out_path;
	char *text = czt_read(p, s);
	const char *start = text + strlen(text);
	int lines = 0;

	while (start > text && lines <= DUMP_LINES) {
		start--;
		lines += *start == '\n';
	}
	if (lines > DUMP_LINES) {
		start++;
		fprintf(stderr, "---- pid %d %s: the last %d lines of %s ----\n", (int)p->pid,
			s == CZT_ERR ? "stderr" : "stdout", DUMP_LINES, path);
	} else {
		fprintf(stderr, "---- pid %d %s (%s) ----\n", (int)p->pid,
			s == CZT_ERR ? "stderr" : "stdout", p->argv0);
	}
	fputs(start, stderr);
	if (*start != '\0' && text[strlen(text) - 1] != '\n') {
		fputc('\n', stderr);
	}
	free(text);
}

void czt_dump(const struct czt_proc *p)
{
	dump_tail(p, CZT_OUT);
	dump_tail(p, CZT_ERR);
	fprintf(stderr, "----\n");
}

/* What the sanitizers print: "==PID==ERROR: AddressSanitizer: ...",
 * "SUMMARY: UndefinedBehaviorSanitizer: ...", "file.c:3:5: runtime error: ...". */
#define SANITIZER_RE "==[0-9]+==(ERROR|WARNING): [A-Za-z]+Sanitizer|SUMMARY: [A-Za-z]+Sanitizer|" \
	": runtime error: "

int czt_sanitizer_lines(const struct czt_proc *p, char *first, size_t len)
{
	regex_t rx;
	char *text = czt_read(p, CZT_ERR);
	char *save = NULL;
	int n = 0;

	cr_assert_eq(regcomp(&rx, SANITIZER_RE, REG_EXTENDED | REG_NOSUB), 0);
	for (char *line = strtok_r(text, "\n", &save); line != NULL;
		line = strtok_r(NULL, "\n", &save)) {
		if (regexec(&rx, line, 0, NULL, 0) == 0 && n++ == 0 && first != NULL) {
			snprintf(first, len, "%s", line);
		}
	}
	regfree(&rx);
	free(text);
	return n;
}

int czt_parse_port(const char *what)
{
	const char *colon = strrchr(what, ':');

	if (strncmp(what, "unix ", 5) == 0 || colon == NULL) {
		return -1;
	}
	char *end;
	long port = strtol(colon + 1, &end, 10);

	if (end == colon + 1 || port < 0 || port > 65535) {
		return -1;
	}
	return (int)port;
}

int czt_listening(const struct czt_proc *p, struct czt_worker *w, int max)
{
	char *text = czt_read(p, CZT_ERR);
	char *save = NULL;
	int n = 0;

	for (char *line = strtok_r(text, "\n", &save); line != NULL && n < max;
		line = strtok_r(NULL, "\n", &save)) {
		int id, pid, off = 0;

		if (sscanf(line, "clusterize: worker %d (pid %d) listening on %n", &id, &pid,
			&off) != 2 || off == 0) {
			continue;
		}
		w[n].id = id;
		w[n].pid = pid;
		snprintf(w[n].what, sizeof(w[n].what), "%s", line + off);
		w[n].port = czt_parse_port(w[n].what);
		n++;
	}
	free(text);
	return n;
}

int czt_wait_listening(struct czt_proc *p, int n, struct czt_worker *w, int ms)
{
	int got = czt_wait_line(p, CZT_ERR, ") listening on ", n, ms);

	cr_assert_geq(got, n, "expected %d 'listening on' line(s) from the launcher, saw %d",
		n, got);
	return czt_listening(p, w, CZT_MAX_WORKERS);
}

int czt_forked_pids(const struct czt_proc *p, pid_t *pids, int max)
{
	char *text = czt_read(p, CZT_ERR);
	char *save = NULL;
	int n = 0;

	for (char *line = strtok_r(text, "\n", &save); line != NULL && n < max;
		line = strtok_r(NULL, "\n", &save)) {
		int id, pid;
		char word[16];

		if (sscanf(line, "clusterize: worker %d (pid %d) %15s", &id, &pid, word) == 3 &&
			strcmp(word, "forked") == 0) {
			pids[n++] = pid;
		}
	}
	free(text);
	return n;
}

int czt_reported_ports(const struct czt_proc *p, int *ports, int max)
{
	char *text = czt_read(p, CZT_OUT);
	char *save = NULL;
	int n = 0;

	for (char *line = strtok_r(text, "\n", &save); line != NULL && n < max;
		line = strtok_r(NULL, "\n", &save)) {
		int port;

		if (sscanf(line, "port %d", &port) == 1) {
			ports[n++] = port;
		}
	}
	free(text);
	return n;
}

/* Whether line says worker `id` exited or was killed. */
static bool exit_line_of(const char *line, int *id)
{
	int pid, off = 0;

	if (sscanf(line, "clusterize: worker %d (pid %d) %n", id, &pid, &off) != 2 || off == 0) {
		return false;
	}
	return strncmp(line + off, "exited with code ", 17) == 0 ||
		strncmp(line + off, "killed by signal ", 17) == 0;
}

static int by_id(const void *x, const void *y)
{
	const struct czt_worker *a = x, *b = y;

	return (a->id > b->id) - (a->id < b->id);
}

int czt_live_workers(const struct czt_proc *p, struct czt_worker *w, int max)
{
	struct czt_worker all[CZT_MAX_WORKERS * 4];
	int n = czt_listening(p, all, CZT_MAX_WORKERS * 4), k = 0;
	char *text = czt_read(p, CZT_ERR);
	char *save = NULL;

	/* Ids are never reused: an exit line removes that worker for good. */
	for (char *line = strtok_r(text, "\n", &save); line != NULL;
		line = strtok_r(NULL, "\n", &save)) {
		int id;

		for (int i = 0; exit_line_of(line, &id) && i < n; i++) {
			all[i].id = all[i].id == id ? -1 : all[i].id;
		}
	}
	free(text);
	for (int i = 0; i < n && k < max; i++) {
		bool seen = all[i].id < 0;

		for (int j = 0; j < k && !seen; j++) {
			seen = w[j].id == all[i].id;
		}
		if (!seen) {
			w[k++] = all[i];
		}
	}
	qsort(w, (size_t)k, sizeof(*w), by_id);
	return k;
}

struct live_arg {
	struct czt_proc *p;
	struct czt_worker *w;
	int want;
	int got;
};

static bool live_reached(void *v)
{
	struct live_arg *l = v;

	l->got = czt_live_workers(l->p, l->w, CZT_MAX_WORKERS);
	return l->got == l->want || czt_exited(l->p);
}

int czt_wait_live(struct czt_proc *p, int n, struct czt_worker *w, int ms)
{
	struct czt_worker tmp[CZT_MAX_WORKERS];
	struct live_arg l = { p, w != NULL ? w : tmp, n, 0 };

	czt_wait_until(live_reached, &l, ms);
	if (l.got != n) {
		fprintf(stderr, "czt: waited for %d live worker(s), saw %d\n", n, l.got);
		czt_dump(p);
	}
	return l.got;
}
