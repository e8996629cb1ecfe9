/*
 * sd_notify (notify.h).  A name starting with '@' is in the abstract
 * namespace: the '@' becomes a NUL and the address length counts only the
 * name, as sd_notify does.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

static int notify_addr(struct cz_notify *n, const char *name)
{
	size_t len = strlen(name);

	if ((name[0] != '/' && name[0] != '@') || len < 2 ||
		len >= sizeof(n->addr.sun_path)) {
		return -EINVAL;
	}
	memset(&n->addr, 0, sizeof(n->addr));
	n->addr.sun_family = AF_UNIX;
	memcpy(n->addr.sun_path, name, len);
	if (name[0] == '@') {
		n->addr.sun_path[0] = '\0';
	}
	n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
		(name[0] == '/' ? 1 : 0));
	return 0;
}

int cz_notify_open(struct cz_notify *n)
{
	const char *env = getenv("NOTIFY_SOCKET");
	int rc;

	n->fd = -1;
	n->status[0] = '\0';
	if (env == NULL || *env == '\0') {
		unsetenv("NOTIFY_SOCKET");
		return 0;
	}
	rc = notify_addr(n, env);
	if (rc == 0) {
		n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		rc = n->fd < 0 ? -errno : 0;
	}
	if (rc < 0) {
		cz_log(CZ_LOG_WARN, "NOTIFY_SOCKET=%s: %s", env, strerror(-rc));
	}
	unsetenv("NOTIFY_SOCKET");
	return rc;
}

static void send_msg(struct cz_notify *n, const char *msg)
{
	ssize_t r;

	if (n->fd < 0) {
		return;
	}
	do {
		r = sendto(n->fd, msg, strlen(msg), MSG_NOSIGNAL,
			(const struct sockaddr *)&n->addr, n->addrlen);
	} while (r < 0 && errno == EINTR);
	if (r < 0) {
		cz_log(CZ_LOG_DEBUG, "sd_notify '%s': %s", msg, strerror(errno));
	}
}

void cz_notify_ready(struct cz_notify *n)
{
	send_msg(n, "READY=1");
}

void cz_notify_reloading(struct cz_notify *n)
{
	struct timespec ts;
	char msg[96];

	/* Type=notify-reload wants the time the reload began. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		(unsigned long long)ts.tv_sec * 1000000ULL +
		(unsigned long long)ts.tv_nsec / 1000ULL);
	send_msg(n, msg);
}

void cz_notify_stopping(struct cz_notify *n)
{
	send_msg(n, "STOPPING=1");
}

void cz_notify_status(struct cz_notify *n, const char *status)
{
	char msg[sizeof(n->status) + 8];

	if (n->fd < 0 || strcmp(status, n->status) == 0) {
		return;
	}
	snprintf(n->status, sizeof(n->status), "%s", status);
	snprintf(msg, sizeof(msg), "STATUS=%s", n->status);
	send_msg(n, msg);
}

void cz_notify_close(struct cz_notify *n)
{
	if (n->fd >= 0) {
		close(n->fd);
		n->fd = -1;
	}
}
