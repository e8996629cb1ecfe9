/*
 * Node's child_process IPC channel, the primary's end, in Node's `json`
 * serialization: newline-delimited JSON over a unix SOCK_STREAM socket.
 * A message that carries an fd is wrapped as {"cmd":"NODE_HANDLE",
 * "type":T,"msg":M} and the fd rides (SCM_RIGHTS) on the sendmsg that
 * starts its line.  Node's rule of one handle in flight holds both ways:
 * after a NODE_HANDLE line, every message but NODE_HANDLE_ACK/NACK waits
 * until the other side acknowledges the handle; a NACK (its process could
 * not take the fd) resends it, at most three times, as Node does.
 *
 * What a worker can make the primary hold is bounded: a line longer than
 * CZ_NODE_CHAN_LINE_MAX is dropped (reported once; the channel goes on
 * with the next line), and so is one that is not JSON.  What is queued to
 * send is bounded by CZ_NODE_CHAN_QUEUE_MAX.
 *
 * Runs on the launcher's loop (a uv_poll and its own sendmsg/recvmsg:
 * libuv's ipc pipes pass only libuv handles, and the fds here are raw).
 */
#ifndef CZ_LAUNCHER_NODE_CHAN_H
#define CZ_LAUNCHER_NODE_CHAN_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#define CZ_NODE_CHAN_LINE_MAX (1u << 20)
#define CZ_NODE_CHAN_QUEUE_MAX (8u << 20)

struct cz_node_chan;

struct cz_node_chan_ops {
	void *data;
	/*
	 * A message (any JSON value; a NODE_HANDLE's inner `msg`), borrowed
	 * for the call.  `fd` >= 0 arrived with it and is the callee's.
	 */
	void (*message)(void *data, json_t *msg, int fd);
	/* Something was dropped: a line that is not JSON, a line too long,
	 * an fd without its message...: why, in a few words. */
	void (*bad)(void *data, const char *why);
	/* The channel ended (0: EOF, or a negative errno).  Once; the channel
	 * then does nothing more until cz_node_chan_close(). */
	void (*closed)(void *data, int err);
};

/* Serves `fd` (taken over, made non-blocking) on `loop`.  0 or -errno. */
int cz_node_chan_open(uv_loop_t *loop, int fd, const struct cz_node_chan_ops *ops,
	struct cz_node_chan **out);

/*
 * Queues `msg` (not stolen).  With `fd` >= 0 (not taken: a duplicate is
 * kept until the other side acknowledges it) it goes as a NODE_HANDLE of
 * type `type` ("net.Native", "dgram.Native").  Returns 0, -ENOBUFS (the
 * queue is full), -EPIPE (the channel has ended) or -errno.
 */
int cz_node_chan_send(struct cz_node_chan *ch, const json_t *msg, int fd,
	const char *type);

/* Closes the channel; memory is freed by the loop.  `ch` may be NULL.
 * Safe from inside its own callbacks. */
void cz_node_chan_close(struct cz_node_chan *ch);

#endif
