#include "node.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"

static int exe_is_node(void)
{
	char path[512];
	const char *base;
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);

	if (n <= 0) {
		return 0;
	}
	path[n] = '\0';
	base = strrchr(path, '/');
	base = base != NULL ? base + 1 : path;
	return strcmp(base, "node") == 0 || strcmp(base, "nodejs") == 0;
}

int cz_node_detect(void)
{
	/* Node exports N-API to its addons, whatever the binary is called. */
	if (dlsym(RTLD_DEFAULT, "napi_create_object") != NULL) {
		return 1;
	}
	return exe_is_node();
}

int cz_node_fixup_env(void)
{
	if (!cz_node_detect()) {
		return 0;
	}
	/*
	 * With NODE_CHANNEL_FD, this is a worker of the app's own cluster
	 * module, forked by a node that we started: its NODE_UNIQUE_ID is its
	 * real one.  Removing it would make it a primary forking workers of
	 * its own, and so on without end.
	 */
	if (getenv("NODE_CHANNEL_FD") != NULL) {
		return 1;
	}
	if (getenv(CZ_ENV_UNIQUE_ID) != NULL) {
		unsetenv(CZ_ENV_UNIQUE_ID);
		cz_log_debug("node: removed %s", CZ_ENV_UNIQUE_ID);
	}
	return 1;
}
