/*
 * Node.js.  Node takes a process whose environment has NODE_UNIQUE_ID for
 * a worker of its cluster module, and NODE_CHANNEL_FD for the end of an
 * IPC channel to its primary.
 *
 * Native mode (the launcher's default): every worker has the launcher's
 * channel at the fd CLUSTERIZE_NODE_CHANNEL names, in NODE_CHANNEL_FD too.
 * The node that serves keeps both variables and is a real cluster worker:
 * its listens are queryServer messages to the launcher, so the shim lets
 * its bind()/listen() through (an `exclusive` or reusePort server binds
 * for itself, as in Node), and it records each rr channel the launcher
 * sends over the channel (recvmsg) so that node can listen and accept on
 * it.  A node that only wraps the server (npm, npx, yarn, pnpm, corepack)
 * gets the three variables moved to CLUSTERIZE_NODE_*, so it runs as
 * without clusterize; the shim in the node it starts puts them back.  A
 * node with a channel of its own (child_process.fork) keeps its own.
 *
 * --node-ipc off: no channel.  The shim removes NODE_UNIQUE_ID from a node
 * without a channel (it would wait for a primary that is not there, and
 * never listen); the node then runs as a plain server whose sockets the
 * shim manages, and the app's own cluster primary, if any, runs.
 */
#ifndef CZ_SHIM_NODE_H
#define CZ_SHIM_NODE_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Whether this process is node (N-API exported, or an exe named node). */
int cz_node_detect(void);

/*
 * Constructor only: sets the environment up as above for a node.  Returns
 * the HELLO flags (CZ_HELLO_F_NODE, CZ_HELLO_F_NODE_IPC), 0 if not node.
 */
uint32_t cz_node_fixup_env(int argc, char **argv);

/* Whether this process is a native node worker (it has the channel). */
int cz_node_native(void);

/* recvmsg(): on the launcher's channel, records the rr channels it gets. */
ssize_t shim_recvmsg(int fd, struct msghdr *msg, int flags);

#endif
