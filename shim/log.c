#include "log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "syms.h"

static int debug_on;

struct out {
	char *p;
	size_t n; /* room left, including the final NUL */
	size_t len;
};

static void put(struct out *o, char c)
{
	if (o->n > 1) {
		*o->p++ = c;
		o->n--;
	}
	o->len++;
}

static void put_str(struct out *o, const char *s)
{
	if (s == NULL) {
		s = "(null)";
	}
	while (*s) {
		put(o, *s++);
	}
}

static void put_num(struct out *o, unsigned long v, unsigned base, int neg)
{
	char tmp[24];
	int i = 0;

	do {
		tmp[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v != 0);
	if (neg) {
		put(o, '-');
	}
	while (i > 0) {
		put(o, tmp[--i]);
	}
}

static void put_signed(struct out *o, long v)
{
	if (v < 0) {
		put_num(o, 0UL - (unsigned long)v, 10, 1);
	} else {
		put_num(o, (unsigned long)v, 10, 0);
	}
}

static const char *conv(struct out *o, const char *f, va_list *ap)
{
	int lng = 0;

	while (*f == 'l' || *f == 'z') {
		lng = 1;
		f++;
	}
	switch (*f) {
	case 'd':
	case 'i':
		put_signed(o, lng ? va_arg(*ap, long) : va_arg(*ap, int));
		break;
	case 'u':
		put_num(o, lng ? va_arg(*ap, unsigned long) : va_arg(*ap, unsigned), 10, 0);
		break;
	case 'x':
		put_num(o, lng ? va_arg(*ap, unsigned long) : va_arg(*ap, unsigned), 16, 0);
		break;
	case 'p':
		put_str(o, "0x");
		put_num(o, (unsigned long)(uintptr_t)va_arg(*ap, void *), 16, 0);
		break;
	case 's':
		put_str(o, va_arg(*ap, const char *));
		break;
	case 'c':
		put(o, (char)va_arg(*ap, int));
		break;
	case '\0':
		return f;
	default:
		put(o, *f);
		break;
	}
	return f + 1;
}

size_t cz_fmt(char *buf, size_t n, const char *fmt, va_list ap)
{
	struct out o = { buf, n, 0 };
	va_list cp;

	va_copy(cp, ap);
	while (*fmt) {
		if (*fmt != '%') {
			put(&o, *fmt++);
			continue;
		}
		fmt++;
		fmt = conv(&o, fmt, &cp);
	}
	va_end(cp);
	if (n > 0) {
		*o.p = '\0';
	}
	return o.len < n ? o.len : (n ? n - 1 : 0);
}

static size_t fmt_prefix(char *buf, size_t n, const char *pfx, ...)
{
	va_list ap;
	size_t len;

	va_start(ap, pfx);
	len = cz_fmt(buf, n, pfx, ap);
	va_end(ap);
	return len;
}

static void emit(const char *prefix, const char *fmt, va_list ap)
{
	char buf[512];
	size_t len;

	len = fmt_prefix(buf, sizeof(buf), prefix, (int)cz_raw_getpid());
	len += cz_fmt(buf + len, sizeof(buf) - len - 1, fmt, ap);
	buf[len++] = '\n';
	cz_raw_write(2, buf, len);
}

void cz_log_init(void)
{
	const char *v = getenv("CLUSTERIZE_DEBUG");

	debug_on = v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

int cz_log_debug_enabled(void)
{
	return debug_on;
}

void cz_log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!debug_on) {
		return;
	}
	va_start(ap, fmt);
	emit("clusterize-shim[%d]: ", fmt, ap);
	va_end(ap);
}

void cz_log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit("clusterize: warning: shim in pid %d: ", fmt, ap);
	va_end(ap);
}
