/*
 * Node's cluster protocol, the primary's side (node_ipc.h).  Messages are
 * NODE_CLUSTER objects with a per-sender `seq`; a reply is one with
 * `ack` = the request's seq.  How Node's own primary answers, field by
 * field: reference/node-cluster-internals.md §1 and §4.
 */
#include "node_ipc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "escape.h"
#include "json.h"
#include "log.h"
#include "node_chan.h"

/* Node's default when listen() is given no backlog (net.js). */
#define DEFAULT_BACKLOG 511
/* libuv's flags, as Node puts them in a queryServer. */
#define UV_TCP_IPV6ONLY 1
#define UV_UDP_IPV6ONLY 1
#define UV_UDP_REUSEADDR 4

/* A server of the worker: what Node calls a handle, by its key. */
struct grant {
	struct grant *next;
	char key[32];
	struct cz_control_grant g;
};

/* The first queryServer's `data` for a socket (TLS ticket keys), echoed to
 * every worker that listens on it, as long as one of them does. */
struct keydata {
	struct keydata *next;
	uint32_t key;
	json_t *data;
	unsigned refs;
};

struct nworker {
	struct nworker *next;
	struct cz_node_ipc *n;
	struct cz_node_chan *ch;
	uint32_t id;
	int pid;            /* its node process once known, else the worker's */
	uint32_t seq;       /* of our next message */
	uint32_t grants_made;
	struct grant *grants;
	bool spoke;         /* a NODE_CLUSTER message came: node is there */
	bool disconnecting; /* we sent disconnect */
	bool asked_exit;    /* it sent exitedAfterDisconnect */
	bool ended;         /* its channel is gone */
};

struct cz_node_ipc {
	uv_loop_t *loop;
	struct cz_control *control;
	struct cz_node_ipc_events ev;
	struct nworker *workers;
	struct keydata *data;
	int *adopted;
	unsigned n_adopted;
};

/* --- workers ---------------------------------------------------------- */

static struct nworker *find(const struct cz_node_ipc *n, uint32_t id)
{
	struct nworker *w;

	for (w = n != NULL ? n->workers : NULL; w != NULL; w = w->next) {
		if (w->id == id) {
			return w;
		}
	}
	return NULL;
}

/* Bad input from a worker: a line, rate-limited per worker (log.h). */
static void report_bad(struct nworker *w, const char *why)
{
	char safe[512];

	cz_escape_str(safe, sizeof(safe), why);
	cz_log_peer(w->id, CZ_LOG_WARN, "worker %u (pid %d): Node channel: %s",
		w->id, w->pid, safe);
}

/* {cmd:'NODE_CLUSTER', ...fields, seq}; `fields` is stolen. */
static int send_cluster(struct nworker *w, json_t *fields, int fd,
	const char *type)
{
	int err;

	if (fields == NULL) {
		return -ENOMEM;
	}
	json_object_set_new(fields, "cmd", json_string("NODE_CLUSTER"));
	json_object_set_new(fields, "seq", json_integer(w->seq++));
	err = w->ch != NULL ? cz_node_chan_send(w->ch, fields, fd, type) : -EPIPE;
	json_decref(fields);
	if (err < 0) {
		cz_log(CZ_LOG_DEBUG, "worker %u: Node channel: send: %s", w->id,
			strerror(-err));
	}
	return err;
}

/* --- the data of a socket (TLS ticket keys) ---------------------------- */

static struct keydata *data_find(struct cz_node_ipc *n, uint32_t key)
{
	struct keydata *d;

	for (d = n->data; d != NULL; d = d->next) {
		if (d->key == key) {
			return d;
		}
	}
	return NULL;
}

/* The data to echo for `key`: the first listener's; NULL when OOM. */
static json_t *data_hold(struct cz_node_ipc *n, uint32_t key, json_t *mine)
{
	struct keydata *d = data_find(n, key);

	if (d == NULL) {
		d = calloc(1, sizeof(*d));
		if (d == NULL) {
			return NULL;
		}
		d->key = key;
		d->data = json_incref(mine != NULL ? mine : json_null());
		d->next = n->data;
		n->data = d;
	}
	d->refs++;
	return d->data;
}

static void data_drop(struct cz_node_ipc *n, uint32_t key)
{
	struct keydata **pp, *d;

	for (pp = &n->data; (d = *pp) != NULL; pp = &d->next) {
		if (d->key == key) {
			if (--d->refs == 0) {
				*pp = d->next;
				json_decref(d->data);
				free(d);
			}
			return;
		}
	}
}

/* --- queryServer -------------------------------------------------------- */

/* What a queryServer asks for, as the shim's BIND would (up to two tries:
 * `listen(port)` with no host tries [::] first, then 0.0.0.0, as Node). */
struct query {
	struct cz_msg_bind try[2];
	unsigned ntries;
	int backlog;
	const char *handle_type;
};

static void bind_init(struct cz_msg_bind *b, int family, int type)
{
	struct cz_sockopts *o = &b->opts;

	memset(b, 0, sizeof(*b));
	cz_proto_init(&b->hdr, CZ_MSG_BIND, 0);
	b->family = family;
	b->type = type;
	o->reuseaddr = o->v6only = o->rcvbuf = o->sndbuf = CZ_OPT_UNSET;
	o->nodelay = o->keepalive = o->defer_accept = CZ_OPT_UNSET;
	o->freebind = CZ_OPT_UNSET;
}

/* An inet address and port into b; -EINVAL if the host is not numeric. */
static int inet_addr_of(struct cz_msg_bind *b, const char *host, long port)
{
	if (port < 0 || port > 65535) {
		return -EINVAL;
	}
	if (b->family == AF_INET) {
		struct sockaddr_in *sin = (void *)&b->addr.ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		b->addr.len = sizeof(*sin);
		return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? 0 : -EINVAL;
	}
	struct sockaddr_in6 *sin6 = (void *)&b->addr.ss;

	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons((uint16_t)port);
	b->addr.len = sizeof(*sin6);
	return inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1 ? 0 : -EINVAL;
}

/* TCP 4/6: `address` null means any address, dual-stack first. */
static int query_tcp(struct query *q, const char *address, long type,
	long port, long flags)
{
	int err;

	q->handle_type = "net.Native";
	if (address == NULL) {
		bind_init(&q->try[0], AF_INET6, SOCK_STREAM);
		bind_init(&q->try[1], AF_INET, SOCK_STREAM);
		q->try[0].opts.v6only = (flags & UV_TCP_IPV6ONLY) != 0;
		q->try[0].opts.reuseaddr = q->try[1].opts.reuseaddr = 1;
		q->ntries = 2;
		err = inet_addr_of(&q->try[0], "::", port);
		return err < 0 ? err : inet_addr_of(&q->try[1], "0.0.0.0", port);
	}
	bind_init(&q->try[0], type == 6 ? AF_INET6 : AF_INET, SOCK_STREAM);
	q->try[0].opts.reuseaddr = 1;
	if (type == 6) {
		q->try[0].opts.v6only = (flags & UV_TCP_IPV6ONLY) != 0;
	}
	q->ntries = 1;
	return inet_addr_of(&q->try[0], address, port);
}

static int query_udp(struct query *q, const char *address, bool v6,
	long port, long flags)
{
	struct cz_msg_bind *b = &q->try[0];

	q->handle_type = "dgram.Native";
	q->ntries = 1;
	bind_init(b, v6 ? AF_INET6 : AF_INET, SOCK_DGRAM);
	if (v6 && (flags & UV_UDP_IPV6ONLY)) {
		b->opts.v6only = 1;
	}
	if (flags & UV_UDP_REUSEADDR) {
		b->opts.reuseaddr = 1;
	}
	return inet_addr_of(b, address != NULL ? address : v6 ? "::" : "0.0.0.0",
		port);
}

/*
 * A unix path, absolute (the worker resolved it).  Too long for sun_path,
 * it is taken relative to our cwd when it lies under it, as Node's primary
 * does.
 */
static int query_unix(struct query *q, const char *path)
{
	struct sockaddr_un *sun = (void *)&q->try[0].addr.ss;
	char cwd[PATH_MAX];
	size_t n;

	q->handle_type = "net.Native";
	q->ntries = 1;
	bind_init(&q->try[0], AF_UNIX, SOCK_STREAM);
	if (path == NULL || path[0] != '/') {
		return -EINVAL;
	}
	n = strlen(path);
	if (n >= sizeof(sun->sun_path) && getcwd(cwd, sizeof(cwd)) != NULL &&
	    strncmp(path, cwd, strlen(cwd)) == 0 && path[strlen(cwd)] == '/') {
		path += strlen(cwd) + 1;
		n = strlen(path);
	}
	if (n >= sizeof(sun->sun_path)) {
		return -ENAMETOOLONG;
	}
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, n + 1);
	q->try[0].addr.len = (uint32_t)(offsetof(struct sockaddr_un, sun_path) +
		n + 1);
	return 0;
}

/* listen({fd: N}): the primary's fd N, which must be an adopted socket. */
static int query_fd(struct cz_node_ipc *n, struct query *q, long fd)
{
	struct cz_msg_bind *b = &q->try[0];
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss), tlen = sizeof(int);
	int type = 0;
	unsigned i;

	for (i = 0; i < n->n_adopted && n->adopted[i] != fd; i++) {
	}
	if (fd < 0 || i == n->n_adopted) {
		return -EBADF;
	}
	if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 ||
	    getsockname((int)fd, (struct sockaddr *)&ss, &len) < 0) {
		return -errno;
	}
	bind_init(b, ss.ss_family, type);
	memcpy(&b->addr.ss, &ss, len);
	b->addr.len = len;
	q->ntries = 1;
	q->handle_type = type == SOCK_DGRAM ? "dgram.Native" : "net.Native";
	return 0;
}

static long int_or(const json_t *v, long dflt)
{
	return json_is_integer(v) ? (long)json_integer_value(v) : dflt;
}

/* The query's fields into q; -EINVAL for a shape Node never sends. */
static int parse_query(struct cz_node_ipc *n, const json_t *m, struct query *q)
{
	const json_t *at = json_object_get(m, "addressType");
	const char *address = json_string_value(json_object_get(m, "address"));
	const char *udp = json_string_value(at);
	long port = int_or(json_object_get(m, "port"), 0);
	long flags = int_or(json_object_get(m, "flags"), 0);
	long fd = int_or(json_object_get(m, "fd"), -1);

	memset(q, 0, sizeof(*q));
	q->backlog = (int)int_or(json_object_get(m, "backlog"), 0);
	if (q->backlog <= 0) {
		q->backlog = DEFAULT_BACKLOG;
	}
	if (fd >= 0) {
		return query_fd(n, q, fd);
	}
	if (udp != NULL && (strcmp(udp, "udp4") == 0 || strcmp(udp, "udp6") == 0)) {
		return query_udp(q, address, udp[3] == '6', port, flags);
	}
	switch (int_or(at, 0)) {
	case 4:
	case 6:
		return query_tcp(q, address, int_or(at, 0), port, flags);
	case -1:
		return query_unix(q, address);
	default:
		return -EINVAL;
	}
}

static int grant_add(struct nworker *w, const struct query *q,
	struct grant **out)
{
	struct grant *g = calloc(1, sizeof(*g));
	int err = -EINVAL;

	if (g == NULL) {
		return -ENOMEM;
	}
	for (unsigned i = 0; i < q->ntries; i++) {
		err = cz_control_grant(w->n->control, w->id, w->pid, &q->try[i],
			q->backlog, &g->g);
		if (err == 0) {
			break;
		}
	}
	if (err < 0) {
		free(g);
		return err;
	}
	snprintf(g->key, sizeof(g->key), "%u:%u", g->g.key, ++w->grants_made);
	g->next = w->grants;
	w->grants = g;
	*out = g;
	return 0;
}

static void grant_drop(struct nworker *w, struct grant *g, bool release)
{
	struct grant **pp;

	for (pp = &w->grants; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	}
	if (release) {
		cz_control_ungrant(w->n->control, w->id, &g->g);
	}
	data_drop(w->n, g->g.key);
	free(g);
}

/*
 * The answer, as Node's primary gives it: {ack, errno, key, data}, with
 * the socket (or channel) attached on success.  Node's worker then takes
 * the shared-handle path for both policies: it calls listen() on what it
 * got (the shim makes that a no-op on a channel) and accepts from it.
 */
static void on_query(struct nworker *w, const json_t *m, json_int_t seq)
{
	struct grant *g = NULL;
	struct query q;
	json_t *data = NULL, *r;
	int err;

	/* Node drops a disconnecting worker's queries, unanswered. */
	if (w->disconnecting || w->asked_exit) {
		return;
	}
	err = parse_query(w->n, m, &q);
	if (err == 0) {
		err = grant_add(w, &q, &g);
	}
	if (err == 0) {
		data = data_hold(w->n, g->g.key, json_object_get(m, "data"));
		if (data == NULL) {
			grant_drop(w, g, true);
			err = -ENOMEM;
		}
	}
	r = json_pack("{s:I, s:i, s:s?, s:O?}", "ack", seq, "errno", err,
		"key", g != NULL && err == 0 ? g->key : NULL, "data",
		err == 0 ? data : json_object_get(m, "data"));
	if (send_cluster(w, r, err == 0 ? g->g.fd : -1, q.handle_type) < 0 &&
	    err == 0) {
		grant_drop(w, g, true);
	}
}

static void on_close(struct nworker *w, const json_t *m)
{
	const char *key = json_string_value(json_object_get(m, "key"));
	struct grant *g;

	for (g = w->grants; key != NULL && g != NULL; g = g->next) {
		if (strcmp(g->key, key) == 0) {
			grant_drop(w, g, true);
			return;
		}
	}
	report_bad(w, "close of a server it does not have");
}

/* --- messages ----------------------------------------------------------- */

static void on_cluster(struct nworker *w, const json_t *m)
{
	const char *act = json_string_value(json_object_get(m, "act"));
	const json_t *seq = json_object_get(m, "seq");

	w->spoke = true;
	if (act == NULL) {
		return; /* a reply (ack) to one of ours */
	}
	if (!json_is_integer(seq)) {
		report_bad(w, "a cluster message without seq");
		return;
	}
	if (strcmp(act, "queryServer") == 0) {
		on_query(w, m, json_integer_value(seq));
	} else if (strcmp(act, "close") == 0) {
		on_close(w, m);
	} else if (strcmp(act, "exitedAfterDisconnect") == 0) {
		w->asked_exit = true;
		cz_log(CZ_LOG_DEBUG, "worker %u (pid %d) disconnects itself",
			w->id, w->pid);
		send_cluster(w, json_pack("{s:I}", "ack", json_integer_value(seq)),
			-1, NULL);
	} else if (strcmp(act, "online") == 0 || strcmp(act, "listening") == 0) {
		cz_log(CZ_LOG_DEBUG, "worker %u (pid %d): Node says %s", w->id,
			w->pid, act);
	}
	/* Other acts are ignored, as Node's primary does. */
}

/* Node's test (internal/child_process.js): a cmd "NODE_" + something. */
static bool internal(const json_t *m)
{
	const char *cmd = json_string_value(json_object_get(m, "cmd"));

	return cmd != NULL && strlen(cmd) > 5 && strncmp(cmd, "NODE_", 5) == 0;
}

static void on_message(void *data, json_t *m, int fd)
{
	struct nworker *w = data;
	const char *cmd = json_string_value(json_object_get(m, "cmd"));

	if (fd >= 0) {
		/* A handle the app sent us: nothing here can use it. */
		close(fd);
		report_bad(w, "a handle sent to the primary: closed");
	}
	if (cmd != NULL && strcmp(cmd, "NODE_CLUSTER") == 0) {
		on_cluster(w, m);
	} else if (!internal(m) && w->n->ev.message != NULL) {
		w->n->ev.message(w->n->ev.data, w->id, w->pid, m);
	}
}

static void on_bad(void *data, const char *why)
{
	report_bad(data, why);
}

/*
 * The channel ended (the worker's EOF, or an error here): as Node's
 * primary, the worker's servers go, and the channel is closed, so a node
 * still there sees it broken and exits, as Node's workers do.
 */
static void on_closed(void *data, int err)
{
	struct nworker *w = data;

	w->ended = true;
	cz_node_chan_close(w->ch);
	w->ch = NULL;
	cz_log(CZ_LOG_DEBUG, "worker %u (pid %d): Node channel closed%s%s",
		w->id, w->pid, err < 0 ? ": " : "", err < 0 ? strerror(-err) : "");
	while (w->grants != NULL) {
		grant_drop(w, w->grants, true);
	}
}

/* --- the interface ------------------------------------------------------ */

int cz_node_ipc_create(uv_loop_t *loop, struct cz_control *control,
	const int *adopted, unsigned n_adopted,
	const struct cz_node_ipc_events *ev, struct cz_node_ipc **out)
{
	struct cz_node_ipc *n = calloc(1, sizeof(*n));

	if (n == NULL || (n_adopted > 0 &&
			  (n->adopted = calloc(n_adopted, sizeof(int))) == NULL)) {
		free(n);
		return -ENOMEM;
	}
	n->loop = loop;
	n->control = control;
	if (ev != NULL) {
		n->ev = *ev;
	}
	if (n_adopted > 0) {
		memcpy(n->adopted, adopted, n_adopted * sizeof(int));
	}
	n->n_adopted = n_adopted;
	*out = n;
	return 0;
}

int cz_node_ipc_attach(struct cz_node_ipc *n, uint32_t worker_id, int pid,
	int fd)
{
	static const struct cz_node_chan_ops ops_template = {
		.message = on_message, .bad = on_bad, .closed = on_closed,
	};
	struct cz_node_chan_ops ops = ops_template;
	struct nworker *w = calloc(1, sizeof(*w));
	int err;

	if (w == NULL) {
		close(fd);
		return -ENOMEM;
	}
	w->n = n;
	w->id = worker_id;
	w->pid = pid;
	ops.data = w;
	err = cz_node_chan_open(n->loop, fd, &ops, &w->ch);
	if (err < 0) {
		free(w);
		return err;
	}
	w->next = n->workers;
	n->workers = w;
	return 0;
}

void cz_node_ipc_set_pid(struct cz_node_ipc *n, uint32_t worker_id, int pid)
{
	struct nworker *w = find(n, worker_id);

	if (w != NULL) {
		w->pid = pid;
	}
}

bool cz_node_ipc_is_node(const struct cz_node_ipc *n, uint32_t worker_id)
{
	const struct nworker *w = find(n, worker_id);

	return w != NULL && w->spoke;
}

bool cz_node_ipc_disconnect(struct cz_node_ipc *n, uint32_t worker_id)
{
	struct nworker *w = find(n, worker_id);

	if (w == NULL || !w->spoke || w->ended) {
		return false;
	}
	if (!w->disconnecting) {
		w->disconnecting = true;
		cz_log(CZ_LOG_DEBUG, "worker %u (pid %d): disconnect", w->id,
			w->pid);
		send_cluster(w, json_pack("{s:s}", "act", "disconnect"), -1, NULL);
	}
	return true;
}

bool cz_node_ipc_asked_exit(const struct cz_node_ipc *n, uint32_t worker_id)
{
	const struct nworker *w = find(n, worker_id);

	return w != NULL && w->asked_exit;
}

int cz_node_ipc_send(struct cz_node_ipc *n, uint32_t worker_id,
	const json_t *msg)
{
	struct nworker *w = find(n, worker_id);

	if (w == NULL || !w->spoke || w->ended || w->ch == NULL) {
		return -ENOENT;
	}
	return cz_node_chan_send(w->ch, msg, -1, NULL);
}

static void worker_free(struct nworker *w, bool release)
{
	while (w->grants != NULL) {
		grant_drop(w, w->grants, release);
	}
	cz_node_chan_close(w->ch);
	free(w);
}

void cz_node_ipc_worker_exited(struct cz_node_ipc *n, uint32_t worker_id)
{
	struct nworker **pp, *w;

	for (pp = n != NULL ? &n->workers : NULL; pp != NULL && (w = *pp) != NULL;
	     pp = &w->next) {
		if (w->id == worker_id) {
			*pp = w->next;
			worker_free(w, false);
			return;
		}
	}
}

void cz_node_ipc_destroy(struct cz_node_ipc *n)
{
	if (n == NULL) {
		return;
	}
	while (n->workers != NULL) {
		struct nworker *w = n->workers;

		n->workers = w->next;
		worker_free(w, false);
	}
	while (n->data != NULL) {
		struct keydata *d = n->data;

		n->data = d->next;
		json_decref(d->data);
		free(d);
	}
	free(n->adopted);
	free(n);
}
