/* Node.js (node.h). */
#include "node.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fdtab.h"
#include "log.h"
#include "proto.h"
#include "syms.h"

/* The launcher's channel, in the native node worker only; else -1. */
static int native_fd = -1;

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

int cz_node_native(void)
{
	return native_fd >= 0;
}

/* --- the environment ----------------------------------------------------- */

/* The script node runs: its first argument that is not an option. */
static const char *script_of(int argc, char **argv)
{
	for (int i = 1; argv != NULL && i < argc && argv[i] != NULL; i++) {
		if (argv[i][0] != '-') {
			return argv[i];
		}
		if (strcmp(argv[i], "--") == 0) {
			return i + 1 < argc ? argv[i + 1] : NULL;
		}
	}
	return NULL;
}

/* A package manager's own script (npm-cli.js, yarn.cjs, pnpm...). */
static int is_wrapper(int argc, char **argv)
{
	static const char *const names[] = {
		"npm", "npx", "npm-cli", "npx-cli", "yarn", "yarnpkg", "pnpm",
		"pnpx", "corepack",
	};
	const char *script = script_of(argc, argv), *base, *dot;
	size_t len;

	if (script == NULL) {
		return 0;
	}
	base = strrchr(script, '/');
	base = base != NULL ? base + 1 : script;
	dot = strrchr(base, '.');
	len = dot != NULL && (strcmp(dot, ".js") == 0 || strcmp(dot, ".cjs") == 0 ||
			      strcmp(dot, ".mjs") == 0) ? (size_t)(dot - base) :
		strlen(base);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i]) == len && strncmp(base, names[i], len) == 0) {
			return 1;
		}
	}
	return 0;
}

/* Moves variable `from` to `to` (when set). */
static void env_move(const char *from, const char *to)
{
	const char *v = getenv(from);

	if (v != NULL) {
		setenv(to, v, 1);
		unsetenv(from);
	}
}

/* Whether `fd` is open here as a unix stream socket (a channel end). */
static int channel_usable(int fd)
{
	int type = 0, domain = 0;

	return fd >= 0 && cz_getsockopt_int(fd, SOL_SOCKET, SO_TYPE, &type) == 0 &&
	       cz_getsockopt_int(fd, SOL_SOCKET, SO_DOMAIN, &domain) == 0 &&
	       type == SOCK_STREAM && domain == AF_UNIX;
}

static void strip_node_vars(void)
{
	unsetenv(CZ_ENV_NODE_CHANNEL_FD);
	unsetenv(CZ_ENV_NODE_SERIALIZATION);
	unsetenv(CZ_ENV_UNIQUE_ID);
}

/* Native mode: the launcher's channel is at fd `ours`. */
static uint32_t fixup_native(int ours, int argc, char **argv)
{
	const char *fd = getenv(CZ_ENV_NODE_CHANNEL_FD);
	const char *aside = getenv(CZ_ENV_NODE_ASIDE_FD);

	/* The app's child_process.fork(): a channel of its own. */
	if (fd != NULL && atoi(fd) != ours) {
		return CZ_HELLO_F_NODE;
	}
	/* Under a wrapper that had them moved aside: ours again. */
	if (fd == NULL && aside != NULL && atoi(aside) == ours) {
		env_move(CZ_ENV_NODE_ASIDE_FD, CZ_ENV_NODE_CHANNEL_FD);
		env_move(CZ_ENV_NODE_ASIDE_ID, CZ_ENV_UNIQUE_ID);
		env_move(CZ_ENV_NODE_ASIDE_MODE, CZ_ENV_NODE_SERIALIZATION);
		fd = getenv(CZ_ENV_NODE_CHANNEL_FD);
	}
	if (fd == NULL) {
		/* Below the worker's node (which consumed them): plain. */
		unsetenv(CZ_ENV_UNIQUE_ID);
		return CZ_HELLO_F_NODE;
	}
	if (is_wrapper(argc, argv)) {
		env_move(CZ_ENV_NODE_CHANNEL_FD, CZ_ENV_NODE_ASIDE_FD);
		env_move(CZ_ENV_UNIQUE_ID, CZ_ENV_NODE_ASIDE_ID);
		env_move(CZ_ENV_NODE_SERIALIZATION, CZ_ENV_NODE_ASIDE_MODE);
		cz_log_debug("node: a wrapper: Node's channel variables set aside");
		return CZ_HELLO_F_NODE;
	}
	if (!channel_usable(ours)) {
		/* Something between the launcher and us closed it. */
		cz_log_warn("fd %d is not the launcher's Node channel any more: "
			"node runs as a plain server", ours);
		strip_node_vars();
		return CZ_HELLO_F_NODE;
	}
	native_fd = ours;
	cz_log_debug("node: a cluster worker on the launcher's channel (fd %d)",
		ours);
	return CZ_HELLO_F_NODE | CZ_HELLO_F_NODE_IPC;
}

uint32_t cz_node_fixup_env(int argc, char **argv)
{
	const char *marker = getenv(CZ_ENV_NODE_CHANNEL);
	char *end;
	long ours;

	if (!cz_node_detect()) {
		return 0;
	}
	if (marker != NULL) {
		ours = strtol(marker, &end, 10);
		if (*end == '\0' && end != marker && ours >= 0 && ours < 1 << 20) {
			return fixup_native((int)ours, argc, argv);
		}
	}
	/*
	 * --node-ipc off.  With NODE_CHANNEL_FD, this is a worker of the
	 * app's own cluster module, forked by a node that we started: its
	 * NODE_UNIQUE_ID is its real one.  Removing it would make it a primary
	 * forking workers of its own, and so on without end.
	 */
	if (getenv(CZ_ENV_NODE_CHANNEL_FD) != NULL) {
		return CZ_HELLO_F_NODE;
	}
	if (getenv(CZ_ENV_UNIQUE_ID) != NULL) {
		unsetenv(CZ_ENV_UNIQUE_ID);
		cz_log_debug("node: removed %s", CZ_ENV_UNIQUE_ID);
	}
	return CZ_HELLO_F_NODE;
}

/* --- rr channels that arrive over Node's channel ----------------------- */

/* Records `fd` as an rr channel if it is one: its IDENT comes first. */
static void adopt_channel(int fd)
{
	union {
		struct cz_msg_ident id;
		unsigned char raw[CZ_MSG_MAX];
	} in;
	struct cz_fdrec *rec;
	int type = 0;
	ssize_t n;

	if (cz_getsockopt_int(fd, SOL_SOCKET, SO_TYPE, &type) < 0 ||
	    type != SOCK_SEQPACKET) {
		return; /* a shared socket: node uses it as it is */
	}
	n = recv(fd, &in, sizeof(in), MSG_DONTWAIT);
	if (n <= 0 || cz_proto_check(&in, (size_t)n) != CZ_MSG_IDENT) {
		return;
	}
	rec = cz_fdtab_alloc();
	if (rec == NULL) {
		cz_log_warn("fd table full: the channel at fd %d is not usable", fd);
		return;
	}
	rec->state = CZ_FD_RR;
	rec->family = in.id.family;
	rec->type = SOCK_STREAM;
	rec->protocol = in.id.family == AF_UNIX ? 0 : IPPROTO_TCP;
	rec->bound = in.id.bound;
	rec->pid = (pid_t)cz_raw_getpid();
	rec->forkgen = cz_fdtab_forkgen();
	/* key 0: Node's own `close` message gives it back, not a RELEASE. */
	cz_fdtab_put(cz_fdtab_set(fd, rec), NULL);
	cz_log_debug("fd %d: an rr channel of key %u from Node's channel", fd,
		in.id.key);
}

static void adopt_channels(struct msghdr *msg)
{
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			adopt_channel(fd);
		}
	}
}

ssize_t shim_recvmsg(int fd, struct msghdr *msg, int flags)
{
	ssize_t n = real_recvmsg(fd, msg, flags);

	if (__builtin_expect(fd == native_fd, 0) && n >= 0 && msg != NULL &&
	    !(flags & MSG_PEEK) && msg->msg_control != NULL &&
	    msg->msg_controllen >= sizeof(struct cmsghdr)) {
		adopt_channels(msg);
	}
	return n;
}
