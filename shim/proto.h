/*
 * The wire format spoken between the shim (in every worker) and the primary
 * (the launcher), and the environment variables both sides read.  Defined
 * once, here, and used by both.  libc only: the shim includes this file.
 *
 * Who may talk to the primary is decided by possession of an inherited
 * socket, as Node does with NODE_CHANNEL_FD: nothing a peer says about
 * itself is trusted.  Three kinds of unix SOCK_SEQPACKET sockets carry
 * these messages:
 *
 * Attach socket (one per *worker*).  Before forking worker N the launcher
 * makes a socketpair; the child's end sits at the fd number named by
 * $CLUSTERIZE_CONTROL_FD, NOT close-on-exec, so the worker and whatever it
 * starts (shell wrappers that exec, npm, prefork children) inherit it; the
 * launcher keeps the other end and knows it belongs to worker N.  Only
 * processes of the worker's own tree hold it (the kernel's view; a process
 * that may ptrace a worker can take it, but could act as the worker
 * anyway).  It carries one message, ATTACH, process -> primary, with one
 * fd attached: the primary never writes on it, so no process can read a
 * reply meant for another (a forked child shares the socket).
 *
 * Control connection (one per *process* that needs the primary).  The shim
 * makes a socketpair, sends one end in an ATTACH and keeps the other, at a
 * high close-on-exec fd.  The primary adopts the received end as a
 * connection of the worker the attach socket belongs to, whatever HELLO
 * then says; SO_PEERCRED on it gives the pid that made it (for logs).  On
 * it the shim makes synchronous requests: one request message, one reply
 * message carrying the same seq, possibly with one fd attached
 * (SCM_RIGHTS).  The primary never sends anything unasked on it.  The
 * worker process itself (its parent is the launcher) attaches and says
 * HELLO when the shim loads, so the launcher knows the shim is in; any
 * other process attaches on its first request.  A forked child never uses
 * its parent's connection (it attaches anew), but keeps its copy of it
 * open until it exits or execs: so the primary sees the connection close
 * (EOF) only when the process that opened it and every child that may
 * hold what it acquired (listening fds, channels) are gone or have exec'd.
 * Then everything the connection acquired is released (holds, listens,
 * channels); listening sockets stay open for the next worker.
 *
 * Channel (rr only; one per listen() of a worker).  A socketpair made by the
 * primary; the worker end is handed over in the LISTEN reply and the shim
 * installs it at the app's listening fd number, so the app's epoll/poll/select
 * see it readable when a connection waits.  The primary sends CONN (with the
 * connection's fd) and NUDGE (no fd), and closes its own copy of the fd at
 * once: the message in flight holds the connection.  The worker does not
 * acknowledge: the primary learns what it took from the kernel (the bytes
 * still queued on the worker's end, of which it keeps a dup), and takes
 * back what is queued, fds and all, from that dup when the worker stops,
 * stalls or dies.  The shim receives only into an fd slot it made free
 * (shim/spare.h); when it has none it sends NACK (seq 0), and the primary
 * takes back everything queued in the channel.  A channel belongs to the control connection that asked for it and goes
 * when that connection goes (or on RELEASE, or when its worker exits).
 * The primary keeps a dup of the worker end, so it can tell a channel by
 * the inode of its socket: a channel that reaches a process some other
 * way than a LISTEN reply (handed over by the launcher, inherited across
 * exec) can be named to the primary by sending the fd on the process's
 * control connection, and the primary can answer only for its own
 * worker's channels.  (Not built yet: no message does it today.)
 *
 * Limits per worker (all its processes together): CZ_MAX_CONNS control
 * connections (an ATTACH past it is refused: the process sees its
 * connection closed), 256 bound keys (BIND: -EMFILE) and CZ_MAX_CHANNELS
 * channels (LISTEN: -ENOBUFS).  A shim waits at most CZ_REQUEST_TIMEOUT_MS
 * for a reply: then the call fails with ETIMEDOUT (and a line on stderr);
 * a primary that closed the connection or the attach socket gives
 * ECONNREFUSED.
 *
 * Every message starts with struct cz_msg_hdr; `len` is the whole message's
 * size and must equal the size of the struct for its type.  Integers are in
 * host byte order (both ends run on the same host).  A receiver rejects any
 * message whose magic, version, type or len is wrong (cz_proto_check()).
 */
#ifndef CZ_SHIM_PROTO_H
#define CZ_SHIM_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* --- environment ------------------------------------------------------ */

/* Set by the launcher in every worker. */
#define CZ_ENV_CONTROL_FD "CLUSTERIZE_CONTROL_FD" /* the attach socket's fd */
#define CZ_ENV_WORKER_ID "CLUSTERIZE_WORKER_ID" /* 1, 2, 3, ... */
#define CZ_ENV_UNIQUE_ID "NODE_UNIQUE_ID"       /* same value; removed for node */
/* Read by the launcher. */
#define CZ_ENV_SCHED "NODE_CLUSTER_SCHED_POLICY" /* rr | none */
#define CZ_ENV_SHIM "CLUSTERIZE_SHIM"            /* path of libclusterize.so */
#define CZ_ENV_LOG "CLUSTERIZE_LOG"     /* error|warn|info|debug|trace */
/* Read by the shim: "1" (or any non-empty value but "0") logs to stderr. */
#define CZ_ENV_DEBUG "CLUSTERIZE_DEBUG"

/*
 * Node's IPC channel (native mode, the default; none with --node-ipc off).
 * Every worker gets one end of a SOCK_STREAM socketpair at fd
 * CZ_ENV_NODE_CHANNEL, named in NODE_CHANNEL_FD as well, so the node server
 * it runs is a worker of Node's cluster module with the launcher as its
 * primary.  In a node that only wraps the server (npm, yarn...), the shim
 * moves Node's three variables to the CLUSTERIZE_NODE_* names, and puts
 * them back in the node the wrapper runs.
 */
#define CZ_ENV_NODE_CHANNEL "CLUSTERIZE_NODE_CHANNEL" /* the fd, a marker */
#define CZ_ENV_NODE_CHANNEL_FD "NODE_CHANNEL_FD"
#define CZ_ENV_NODE_SERIALIZATION "NODE_CHANNEL_SERIALIZATION_MODE"
#define CZ_ENV_NODE_ASIDE_FD "CLUSTERIZE_NODE_CHANNEL_FD"
#define CZ_ENV_NODE_ASIDE_ID "CLUSTERIZE_NODE_UNIQUE_ID"
#define CZ_ENV_NODE_ASIDE_MODE "CLUSTERIZE_NODE_SERIALIZATION_MODE"

/* --- framing ---------------------------------------------------------- */

#define CZ_PROTO_MAGIC 0x7a63u /* "cz" */
#define CZ_PROTO_VERSION 3u

/* Limits: see the top of this file. */
#define CZ_MAX_CONNS 128
#define CZ_MAX_CHANNELS 64
#define CZ_REQUEST_TIMEOUT_MS 10000

enum cz_msg_type {
	/* control connection, worker -> primary (each gets a reply) */
	CZ_MSG_HELLO = 1,
	CZ_MSG_BIND = 2,
	CZ_MSG_LISTEN = 3,
	CZ_MSG_RELEASE = 4,
	/* attach socket, process -> primary (no reply; one fd attached) */
	CZ_MSG_ATTACH = 5,
	/* control connection, primary -> worker */
	CZ_MSG_REPLY = 16,
	/* channel, primary -> worker */
	CZ_MSG_CONN = 32,
	CZ_MSG_NUDGE = 33,
	CZ_MSG_IDENT = 34,
	/* channel, worker -> primary (48 and 50 were ACKs, before version 3) */
	CZ_MSG_NACK = 49,
};

struct cz_msg_hdr {
	uint16_t magic;   /* CZ_PROTO_MAGIC */
	uint8_t version;  /* CZ_PROTO_VERSION */
	uint8_t type;     /* enum cz_msg_type */
	uint32_t len;     /* size of the whole message */
	uint32_t seq;     /* request: sender's counter; reply: the request's */
	uint32_t pad;
};

/* A socket address as the app gave it (or as the kernel reported it). */
struct cz_addr {
	uint32_t len; /* socklen_t of `ss`; 0 = none */
	uint32_t pad;
	struct sockaddr_storage ss;
};

/*
 * Socket options read off the app's own socket at bind() and listen() time
 * (getsockopt on the app's fd) and applied by the primary to its socket
 * before bind()/listen().  CZ_OPT_UNSET (-1) means "leave the default".
 */
#define CZ_OPT_UNSET (-1)
struct cz_sockopts {
	int32_t reuseaddr;    /* SOL_SOCKET SO_REUSEADDR */
	int32_t v6only;       /* IPPROTO_IPV6 IPV6_V6ONLY (AF_INET6 only) */
	int32_t rcvbuf;       /* SOL_SOCKET SO_RCVBUF (as set; kernel doubles) */
	int32_t sndbuf;       /* SOL_SOCKET SO_SNDBUF */
	int32_t nodelay;      /* IPPROTO_TCP TCP_NODELAY */
	int32_t keepalive;    /* SOL_SOCKET SO_KEEPALIVE */
	int32_t defer_accept; /* IPPROTO_TCP TCP_DEFER_ACCEPT (seconds) */
	int32_t freebind;     /* IPPROTO_IP IP_FREEBIND */
};

/*
 * ATTACH: on the attach socket, with the process's end of its new control
 * connection attached (a unix SOCK_SEQPACKET socket; anything else is
 * dropped).  No reply: the process's first request on the connection
 * (HELLO) is answered once the primary has adopted it, or sees EOF if the
 * primary refused it.
 */
struct cz_msg_attach {
	struct cz_msg_hdr hdr;
};

/*
 * HELLO: the first request on every control connection.  For logs only:
 * the worker is the one whose attach socket brought the connection.
 * Reply: err; with err == 0, the worker's open-connection counters (a
 * memfd of CZ_CONNS_SIZE bytes, struct cz_conns_page) attached, or no fd
 * when the primary has none for it.
 */
#define CZ_HELLO_F_NODE 0x1u     /* the process is node */
#define CZ_HELLO_F_NODE_IPC 0x2u /* ... and it has the launcher's channel */
struct cz_msg_hello {
	struct cz_msg_hdr hdr;
	int32_t pid;
	int32_t ppid;
	uint32_t flags;     /* CZ_HELLO_F_* */
	uint32_t pad;
	char exe[256];      /* NUL-terminated, possibly truncated */
};

/*
 * BIND: the app called bind() on an AF_INET/AF_INET6/AF_UNIX socket of type
 * SOCK_STREAM or SOCK_DGRAM that it did not mark SO_REUSEPORT.
 * The primary looks the key up (family, type, address, port, v6only; for
 * port 0 also this worker's ordinal, see sockets.c) and binds a socket of its
 * own if the key is new.  AF_UNIX paths are sent absolute (the shim resolves
 * a relative path against its cwd).
 * Reply: err = 0 or a negative errno (EADDRINUSE, EACCES, EADDRNOTAVAIL...;
 * EMFILE when the worker holds 256 keys already);
 * on success key != 0 and `bound` is the real address (with the real port).
 * For SOCK_DGRAM the reply carries the shared, bound socket's fd: the shim
 * installs it at once (UDP is always shared).  For SOCK_STREAM nothing is
 * attached; the app's socket stays unbound until listen().
 */
struct cz_msg_bind {
	struct cz_msg_hdr hdr;
	int32_t family;
	int32_t type;     /* SOCK_STREAM or SOCK_DGRAM, no flags */
	int32_t protocol;
	uint32_t pad;
	struct cz_addr addr;
	struct cz_sockopts opts;
};

/*
 * LISTEN: the app called listen() on a socket whose BIND succeeded (key), or
 * on an unbound socket (key == 0: the shim first sends a BIND of the
 * wildcard address with port 0 of the socket's family, as Linux's implicit
 * bind does).
 * Reply: err; mode; and one fd attached:
 *  - CZ_MODE_SHARED: the primary's listening socket (listen() already called
 *    with the first backlog it was given).  Never a socket the primary
 *    accepts on itself (rr): no worker can shut down the others' listener.
 *  - CZ_MODE_RR: the worker end of a new channel; `channel` names it.
 * `nonblock` tells the primary whether the app's socket was O_NONBLOCK, so
 * it can accept connections with the same blocking mode most of the time.
 * Errors besides listen()'s own: -ENOBUFS past CZ_MAX_CHANNELS.
 */
enum cz_mode { CZ_MODE_SHARED = 1, CZ_MODE_RR = 2 };
/* The app is sending the socket to another process before listening on
 * it (Node's own cluster in SCHED_NONE): it needs the socket itself.  The
 * reply is CZ_MODE_SHARED whatever the policy, and the key stays shared
 * for good (every later LISTEN of it gets the socket too); in rr, a key
 * the primary already accepts on gets -EADDRINUSE instead. */
#define CZ_LISTEN_F_SHARED 0x1u
struct cz_msg_listen {
	struct cz_msg_hdr hdr;
	uint32_t key;
	int32_t backlog;
	uint32_t nonblock;
	uint32_t flags;          /* CZ_LISTEN_F_* */
	struct cz_sockopts opts; /* re-read at listen() time */
};

/*
 * RELEASE: the app closed the last fd of a tracked socket in the process
 * that bound/listened it (and has not forked since), or connect()ed a
 * socket it had bound (a client binding its source address: the shim then
 * binds for real).  The primary drops this worker's hold on `key`; for rr
 * it stops routing to `channel` (0 = none) and gives every connection still
 * queued in it to another worker.  Reply: err only.
 */
struct cz_msg_release {
	struct cz_msg_hdr hdr;
	uint32_t key;
	uint32_t channel;
};

struct cz_msg_reply {
	struct cz_msg_hdr hdr;
	int32_t err;      /* 0 or negative errno */
	uint32_t key;     /* BIND: the key; LISTEN: echoed */
	uint32_t mode;    /* LISTEN: enum cz_mode; BIND: 0 */
	uint32_t channel; /* LISTEN in rr: the channel id */
	struct cz_addr bound; /* BIND/LISTEN: the real bound address */
};

/*
 * CONN: one accepted connection, its fd attached.  `peer` is what accept4()
 * returned in the primary, so the shim fills accept's addr without a
 * syscall.  `nonblock` says whether the attached fd is O_NONBLOCK.
 * hdr.seq numbers the connections of one channel: 1, 2, 3, ...
 */
struct cz_msg_conn {
	struct cz_msg_hdr hdr;
	uint32_t nonblock;
	uint32_t pad;
	struct cz_addr peer;
};

/* NUDGE: no fd.  Makes a stalled channel readable so the primary sees the
 * worker take something again.  The shim's accept skips it. */
struct cz_msg_nudge {
	struct cz_msg_hdr hdr;
};

/*
 * IDENT: the first message on a channel that is handed to a node worker
 * over Node's IPC channel (a queryServer reply) instead of in a LISTEN
 * reply.  Node decides what a received fd is with getsockname() and
 * getsockopt(SO_TYPE) as soon as it has it, so the shim's recvmsg() on
 * the launcher's Node channel reads the IDENT off every SOCK_SEQPACKET fd
 * it receives and records the fd as an rr channel first: node then listens
 * on it (a no-op), accepts from it and closes it as on a TCP (or unix)
 * listener.  The Node protocol's own `close` message releases it, so the
 * shim sends no RELEASE for it.
 */
struct cz_msg_ident {
	struct cz_msg_hdr hdr;
	uint32_t key;      /* for messages only */
	int32_t family;    /* AF_INET, AF_INET6 or AF_UNIX */
	struct cz_addr bound; /* the listening socket's address */
};

/* NACK: seq 0.  The worker cannot receive a connection now (it is at its
 * open-files limit): what is queued in the channel goes to other workers. */
struct cz_msg_nack {
	struct cz_msg_hdr hdr;
};

/*
 * Open connections: one page per worker, shared between the primary and
 * every process of the worker (a memfd the primary makes and sends with the
 * HELLO reply; the shim maps it MAP_SHARED, and a forked child inherits the
 * mapping).  Each process that holds accepted connections takes an entry
 * (pid: 0 -> its pid, by compare-and-swap) and keeps `open` equal to the
 * fds it holds that refer to connections it (or the process it was forked
 * from) accepted through the shim, rr or shared; it raises `used` to cover
 * its entry.  A process that finds an entry with its own pid (its image
 * before exec) takes that one over.  The primary sums `open` over
 * [0, used) to learn a worker's open connections without any message, and
 * frees the entries of processes that are gone.  Both sides use atomic
 * loads and stores (__atomic builtins); the primary trusts nothing in the
 * page but the sum, clamped to CZ_CONNS_ENTRIES entries.
 */
#define CZ_CONNS_MAGIC 0x736e6e63u /* "cnns" */
#define CZ_CONNS_ENTRIES 510
struct cz_conns_entry {
	int32_t pid;    /* 0: free */
	uint32_t open;  /* connections the process holds */
};
struct cz_conns_page {
	uint32_t magic; /* CZ_CONNS_MAGIC, set by the primary */
	uint32_t used;  /* entries [0, used) have been taken at some time */
	uint32_t pad[2];
	struct cz_conns_entry e[CZ_CONNS_ENTRIES];
};
#define CZ_CONNS_SIZE 4096u
_Static_assert(sizeof(struct cz_conns_page) <= CZ_CONNS_SIZE,
	"the counters fit their page");

/* The largest message; a receive buffer of this size holds any. */
#define CZ_MSG_MAX sizeof(struct cz_msg_hello)

/*
 * Fills hdr for a message of `type` (len from the type).  Returns 0, or
 * -EINVAL for an unknown type.
 */
int cz_proto_init(struct cz_msg_hdr *hdr, enum cz_msg_type type, uint32_t seq);

/* The size of a message of `type`, or 0 for an unknown type. */
size_t cz_proto_size(unsigned type);

/*
 * The lowest fd number the shim moves its own fds to, for a process whose
 * RLIMIT_NOFILE soft limit is `nofile` (0: unlimited): high enough to stay
 * out of the app's way, low enough to stay cheap.  The launcher puts the
 * attach socket just below it.
 */
int cz_proto_high_fd(unsigned long long nofile);

/*
 * Validates `n` received bytes: magic, version, known type, len == n ==
 * the size for the type, and the type's own fields (address lengths within
 * sockaddr_storage, families and types we know, NUL-terminated strings).
 * Returns the type (> 0) or -EPROTO/-EBADMSG.  Never reads past `n`.
 */
int cz_proto_check(const void *buf, size_t n);

#endif
