/*
 * systemd's readiness protocol (sd_notify(3)) without libsystemd: one
 * datagram per state change to the unix socket named by $NOTIFY_SOCKET
 * ("READY=1", "RELOADING=1\nMONOTONIC_USEC=...", "STOPPING=1",
 * "STATUS=...").  Without $NOTIFY_SOCKET every call does nothing.
 */
#ifndef CZ_LAUNCHER_NOTIFY_H
#define CZ_LAUNCHER_NOTIFY_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/un.h>

struct cz_notify {
	int fd;                   /* -1: not under a service manager */
	struct sockaddr_un addr;
	socklen_t addrlen;
	char status[256];         /* the last STATUS= sent */
};

/*
 * Reads $NOTIFY_SOCKET and removes it from the environment (the workers
 * must not notify in our name).  Returns 0, or -errno with the socket
 * unusable (a one-line warning is logged).
 */
int cz_notify_open(struct cz_notify *n);

void cz_notify_ready(struct cz_notify *n);
void cz_notify_reloading(struct cz_notify *n);
void cz_notify_stopping(struct cz_notify *n);

/* Sends STATUS=<status> when it differs from the last one sent. */
void cz_notify_status(struct cz_notify *n, const char *status);

void cz_notify_close(struct cz_notify *n);

#endif
