/*
 * The man page: it renders without warnings, and it documents exactly the
 * options, subcommands and environment variables that --help lists (both
 * directions), so an option added to one must be added to the other.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "czt.h"

TestSuite(man, .init = czt_setup, .fini = czt_teardown, .timeout = 60);

#define MAX_NAMES 64

struct names {
	int n;
	char v[MAX_NAMES][48];
};

static void add(struct names *s, const char *p, size_t len)
{
	if (len == 0 || len >= sizeof(s->v[0])) {
		return;
	}
	for (int i = 0; i < s->n; i++) {
		if (strlen(s->v[i]) == len && strncmp(s->v[i], p, len) == 0) {
			return;
		}
	}
	cr_assert_lt(s->n, MAX_NAMES);
	memcpy(s->v[s->n], p, len);
	s->v[s->n++][len] = '\0';
}

static bool has(const struct names *s, const char *name)
{
	for (int i = 0; i < s->n; i++) {
		if (strcmp(s->v[i], name) == 0) {
			return true;
		}
	}
	return false;
}

static size_t word_len(const char *p, const char *extra)
{
	size_t n = 0;

	while (isalnum((unsigned char)p[n]) || (p[n] != '\0' && strchr(extra, p[n]))) {
		n++;
	}
	return n;
}

/* Every "--name" in [p, end) when all, else the first one. */
static void add_long_opts(struct names *s, const char *p, const char *end, bool all)
{
	while ((p = strstr(p, "--")) != NULL && p < end) {
		size_t n = word_len(p + 2, "-");

		if (n > 0) {
			add(s, p + 2, n);
			if (!all) {
				return;
			}
		}
		p += 2 + n;
	}
}

/* Runs argv to completion with env; returns its stdout (malloc'd). */
static char *run(const char *const argv[], const char *const env[], char **err)
{
	struct czt_proc *p = czt_spawn(argv, env);

	czt_expect_exit(p, CZT_EXITED(0), 20000);
	if (err != NULL) {
		*err = czt_read(p, CZT_ERR);
	}
	return czt_read(p, CZT_OUT);
}

static const char *manpage(void)
{
	const char *path = getenv("CZ_MANPAGE");

	if (path == NULL || *path == '\0') {
		cr_skip_test("scdoc is not installed: the man page was not built");
	}
	if (czt_which("man") == NULL) {
		cr_skip_test("man is not installed");
	}
	return path;
}

/* The man page rendered as plain text, wide enough that no term wraps. */
static char *render(const char *path, char **err)
{
	const char *argv[] = { czt_which("man"), "--warnings", "-l", path, NULL };
	const char *env[] = { "MANWIDTH=200", "MANPAGER=cat", "PAGER=cat", "LC_ALL=C.UTF-8",
		"MAN_KEEP_FORMATTING", NULL };

	return run(argv, env, err);
}

/* The lines of section `name` (from its heading to the next one). */
static const char *section(const char *text, const char *name, const char **end)
{
	char head[64];
	const char *p;

	snprintf(head, sizeof(head), "\n%s\n", name);
	p = strstr(text, head);
	cr_assert_not_null(p, "the man page has a %s section", name);
	p += strlen(head);
	for (*end = p; **end != '\0'; (*end)++) {
		if ((*end)[0] == '\n' && isupper((unsigned char)(*end)[1])) {
			break;
		}
	}
	return p;
}

/*
 * Term lines of a man section: indented 7 columns and followed by their
 * description, indented 11 (a paragraph's lines are all indented 7).
 */
static void man_terms(const char *text, const char *name, struct names *opts,
	struct names *words)
{
	const char *end, *p = section(text, name, &end);

	while (p < end) {
		const char *eol = strchr(p, '\n');

		if (eol == NULL || eol > end) {
			eol = end;
		}
		if (eol - p > 7 && strncmp(p, "       ", 7) == 0 && p[7] != ' ' &&
			eol < end && strncmp(eol + 1, "           ", 11) == 0) {
			if (opts != NULL) {
				add_long_opts(opts, p, eol, true);
			}
			if (words != NULL) {
				add(words, p + 7, word_len(p + 7, "_"));
			}
		}
		p = eol + 1;
	}
}

static char *help_text(void)
{
	const char *argv[] = { czt_launcher(), "--help", NULL };

	return run(argv, NULL, NULL);
}

/* --help: the option lines before "Subcommands", and what follows. */
static void help_lists(const char *help, struct names *opts, struct names *subs,
	struct names *envs)
{
	const char *subs_at = strstr(help, "\nSubcommands");
	const char *env_at = strstr(help, "\nEnvironment:");

	cr_assert(subs_at != NULL && env_at != NULL, "--help has its sections: %s", help);
	for (const char *p = help; p < subs_at; p = strchr(p, '\n') + 1) {
		const char *q = p + strspn(p, " ");

		if (q > p && q[0] == '-') {
			add_long_opts(opts, q, strchr(q, '\n'), false);
		}
	}
	for (const char *p = subs_at; (p = strstr(p, "\n  clusterize ")) != NULL && p < env_at;) {
		p += strlen("\n  clusterize ");
		add(subs, p, word_len(p, ""));
	}
	for (const char *p = env_at; *p != '\0'; p++) {
		if (isupper((unsigned char)*p) && (p == env_at || !isalnum((unsigned char)p[-1]))) {
			size_t n = word_len(p, "_");

			if (strchr(p, '_') != NULL && memchr(p, '_', n) != NULL) {
				add(envs, p, n);
			}
			p += n - 1;
		}
	}
}

static void assert_same(const struct names *help, const struct names *man, const char *what)
{
	cr_assert_gt(help->n, 0, "--help lists some %s", what);
	for (int i = 0; i < help->n; i++) {
		cr_expect(has(man, help->v[i]), "%s '%s' is in --help but not in the man page",
			what, help->v[i]);
	}
	for (int i = 0; i < man->n; i++) {
		cr_expect(has(help, man->v[i]), "%s '%s' is in the man page but not in --help",
			what, man->v[i]);
	}
}

Test(man, renders_without_warnings)
{
	static const char *const sections[] = { "NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS",
		"SUBCOMMANDS", "ENVIRONMENT", "SIGNALS", "EXIT STATUS", "FILES", "EXAMPLES" };
	char *err = NULL, *text = render(manpage(), &err);
	const char *end;

	cr_expect_str_empty(err, "man -l prints no warning: %s", err);
	cr_expect(strncmp(text, "clusterize(1)", 13) == 0, "the page is clusterize(1): %.80s",
		text);
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		section(text, sections[i], &end);
	}
	free(err);
	free(text);
}

Test(man, documents_what_help_lists)
{
	struct names hopts = { 0 }, hsubs = { 0 }, henvs = { 0 };
	struct names mopts = { 0 }, msubs = { 0 }, menvs = { 0 };
	char *text = render(manpage(), NULL), *help = help_text();

	help_lists(help, &hopts, &hsubs, &henvs);
	man_terms(text, "OPTIONS", &mopts, NULL);
	man_terms(text, "SUBCOMMANDS", NULL, &msubs);
	man_terms(text, "ENVIRONMENT", NULL, &menvs);
	assert_same(&hopts, &mopts, "option");
	assert_same(&hsubs, &msubs, "subcommand");
	/* The man page also names what the workers get: only one way. */
	cr_assert_gt(henvs.n, 0, "--help names environment variables: %s", help);
	for (int i = 0; i < henvs.n; i++) {
		cr_expect(has(&menvs, henvs.v[i]), "variable '%s' is in --help but not in the "
			"man page", henvs.v[i]);
	}
	free(text);
	free(help);
}
