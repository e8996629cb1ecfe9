/*
 * Node.js detection.  A node started with NODE_UNIQUE_ID set believes it is
 * a cluster worker and waits for its primary over an IPC channel that does
 * not exist: it silently never listens.  So in node the shim removes
 * NODE_UNIQUE_ID (the id stays in CLUSTERIZE_WORKER_ID) and node behaves as
 * a plain server whose sockets the shim manages.
 */
#ifndef CZ_SHIM_NODE_H
#define CZ_SHIM_NODE_H

/* Whether this process is node (N-API exported, or an exe named node). */
int cz_node_detect(void);

/*
 * Constructor only: when the process is node, unsets NODE_UNIQUE_ID.
 * Returns 1 if the process is node, else 0.
 */
int cz_node_fixup_env(void);

#endif
