/*
 * Socket options: the ones read off the app's socket and sent to the
 * primary (cz_sockopts), and what an rr channel answers to getsockopt and
 * setsockopt so that it passes for the TCP listener the app created.
 */
#ifndef CZ_SHIM_SOCKOPT_H
#define CZ_SHIM_SOCKOPT_H

#include "fdtab.h"
#include "proto.h"

/*
 * The options the app changed from a fresh socket's defaults; the others
 * are CZ_OPT_UNSET, so the primary leaves its own defaults alone.
 */
void cz_sockopt_read(int fd, int family, int type, int protocol,
	struct cz_sockopts *o);

/* An option recorded on `rec` (set on the channel, or read at bind). */
int cz_sockopt_recorded(const struct cz_fdrec *rec, int level, int name,
	int *v);

#endif
