/* Node's IPC channel, the primary's end (node_chan.h). */
#include "node_chan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdpass.h"
#include "json.h"

#define READ_CHUNK (64u << 10)
#define READS_PER_EVENT 16
#define PENDING_FDS_MAX 4
#define HANDLE_SENDS_MAX 4 /* the first send and Node's three retransmissions */

/* A message to write. */
struct out {
	struct out *next;
	char *buf;
	size_t len, off;
	int fd;          /* a duplicate to attach (NODE_HANDLE), or -1 */
	unsigned sends;  /* of this handle */
	bool ack;        /* NODE_HANDLE_ACK/NACK: never waits */
};

struct cz_node_chan {
	uv_poll_t poll;
	struct cz_node_chan_ops ops;
	int fd;
	int events;        /* what is polled */
	bool ended;        /* EOF or an error: no more callbacks */
	bool closing;
	bool skipping;     /* dropping the rest of a line too long */
	char *in;
	size_t in_len, in_cap, scanned;
	int pending[PENDING_FDS_MAX]; /* fds received, not yet claimed */
	unsigned npending;
	struct out *head;  /* to write, in order */
	struct out *inflight; /* a NODE_HANDLE written, not acknowledged */
	size_t queued;     /* bytes waiting in head... */
};

static void out_free(struct out *o)
{
	if (o->fd >= 0) {
		close(o->fd);
	}
	free(o->buf);
	free(o);
}

static void end(struct cz_node_chan *ch, int err)
{
	if (ch->ended) {
		return;
	}
	ch->ended = true;
	if (!ch->closing) {
		uv_poll_stop(&ch->poll);
		ch->ops.closed(ch->ops.data, err);
	}
}

static void bad(struct cz_node_chan *ch, const char *why)
{
	if (!ch->ended && !ch->closing) {
		ch->ops.bad(ch->ops.data, why);
	}
}

/* --- writing ------------------------------------------------------------ */

static bool can_send(const struct cz_node_chan *ch)
{
	const struct out *o = ch->head;

	/* A message half written goes on; the rest waits for the handle. */
	return o != NULL && (o->ack || o->off > 0 || ch->inflight == NULL);
}

static void update_poll(struct cz_node_chan *ch);

/* The handle goes with the line's first bytes. */
static ssize_t send_out(struct cz_node_chan *ch, struct out *o)
{
	return cz_fdpass_send(ch->fd, o->buf + o->off, o->len - o->off,
		o->off == 0 ? o->fd : -1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void flush(struct cz_node_chan *ch)
{
	while (!ch->ended && can_send(ch)) {
		struct out *o = ch->head;
		ssize_t n = send_out(ch, o);

		if (n == -EAGAIN || n == -EWOULDBLOCK) {
			break;
		}
		if (n < 0) {
			end(ch, (int)n);
			return;
		}
		o->off += (size_t)n;
		if (o->off < o->len) {
			continue;
		}
		ch->head = o->next;
		ch->queued -= o->len;
		if (o->fd >= 0) {
			/* Kept, with its fd, until the ACK: a NACK resends it. */
			o->sends++;
			o->next = NULL;
			ch->inflight = o;
		} else {
			out_free(o);
		}
	}
	update_poll(ch);
}

/* After the message being written, behind the acks already there. */
static void push_front(struct cz_node_chan *ch, struct out *o)
{
	struct out **pp = &ch->head;

	if (*pp != NULL && (*pp)->off > 0) {
		pp = &(*pp)->next;
	}
	while (*pp != NULL && (*pp)->ack) {
		pp = &(*pp)->next;
	}
	o->next = *pp;
	*pp = o;
	ch->queued += o->len;
}

static void push_back(struct cz_node_chan *ch, struct out *o)
{
	struct out **pp = &ch->head;

	while (*pp != NULL) {
		pp = &(*pp)->next;
	}
	o->next = NULL;
	*pp = o;
	ch->queued += o->len;
}

/* A line for `msg`, newline included; NULL when out of memory. */
static struct out *out_new(const json_t *msg, int fd)
{
	struct out *o = calloc(1, sizeof(*o));
	char *line = cz_json_line(msg, 0);
	size_t n;

	if (o == NULL || line == NULL) {
		free(o);
		free(line);
		return NULL;
	}
	n = strlen(line);
	o->buf = realloc(line, n + 1);
	if (o->buf == NULL) {
		free(line);
		free(o);
		return NULL;
	}
	o->buf[n] = '\n';
	o->len = n + 1;
	o->fd = fd;
	return o;
}

static void send_ack(struct cz_node_chan *ch, const char *cmd)
{
	json_t *m = json_pack("{s:s}", "cmd", cmd);
	struct out *o = m != NULL ? out_new(m, -1) : NULL;

	json_decref(m);
	if (o == NULL) {
		bad(ch, "out of memory for a handle's acknowledgement");
		return;
	}
	o->ack = true;
	push_front(ch, o);
}

int cz_node_chan_send(struct cz_node_chan *ch, const json_t *msg, int fd,
	const char *type)
{
	json_t *wrap = NULL;
	struct out *o;
	int dup = -1;

	if (ch->ended || ch->closing) {
		return -EPIPE;
	}
	if (ch->queued > CZ_NODE_CHAN_QUEUE_MAX) {
		return -ENOBUFS;
	}
	if (fd >= 0) {
		dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (dup < 0) {
			return -errno;
		}
		wrap = json_pack("{s:s, s:s, s:O}", "cmd", "NODE_HANDLE",
			"type", type, "msg", msg);
	}
	o = (fd < 0 || wrap != NULL) ? out_new(wrap != NULL ? wrap : msg, dup) :
		NULL;
	json_decref(wrap);
	if (o == NULL) {
		if (dup >= 0) {
			close(dup);
		}
		return -ENOMEM;
	}
	push_back(ch, o);
	flush(ch);
	return 0;
}

/* The other side took the handle in flight (or could not: NACK). */
static void handle_answered(struct cz_node_chan *ch, bool taken)
{
	struct out *o = ch->inflight;

	if (o == NULL) {
		bad(ch, taken ? "a NODE_HANDLE_ACK for no handle" :
			"a NODE_HANDLE_NACK for no handle");
		return;
	}
	ch->inflight = NULL;
	if (taken) {
		out_free(o);
	} else if (o->sends >= HANDLE_SENDS_MAX) {
		out_free(o);
		bad(ch, "a socket did not reach the worker after 4 tries "
			"(at its open-files limit?): dropped");
	} else {
		o->off = 0;
		push_front(ch, o);
	}
	flush(ch);
}

/* --- reading ------------------------------------------------------------ */

static int take_pending(struct cz_node_chan *ch)
{
	int fd;

	if (ch->npending == 0) {
		return -1;
	}
	fd = ch->pending[0];
	memmove(ch->pending, ch->pending + 1,
		--ch->npending * sizeof(ch->pending[0]));
	return fd;
}

static const char *cmd_of(const json_t *msg)
{
	const char *cmd = json_string_value(json_object_get(msg, "cmd"));

	return cmd != NULL ? cmd : "";
}

/* One parsed message: the handle protocol here, the rest to the owner. */
static void dispatch(struct cz_node_chan *ch, json_t *msg)
{
	const char *cmd = cmd_of(msg);
	json_t *inner;
	int fd;

	if (strcmp(cmd, "NODE_HANDLE_ACK") == 0) {
		handle_answered(ch, true);
		return;
	}
	if (strcmp(cmd, "NODE_HANDLE_NACK") == 0) {
		handle_answered(ch, false);
		return;
	}
	if (strcmp(cmd, "NODE_HANDLE") != 0) {
		ch->ops.message(ch->ops.data, msg, -1);
		return;
	}
	fd = take_pending(ch);
	send_ack(ch, fd >= 0 ? "NODE_HANDLE_ACK" : "NODE_HANDLE_NACK");
	flush(ch);
	inner = json_object_get(msg, "msg");
	if (fd < 0) {
		return; /* Node resends it */
	}
	if (inner == NULL) {
		close(fd);
		bad(ch, "a NODE_HANDLE without msg");
		return;
	}
	ch->ops.message(ch->ops.data, inner, fd);
}

static void parse_line(struct cz_node_chan *ch, const char *line, size_t len)
{
	json_error_t e;
	json_t *msg;
	char why[JSON_ERROR_TEXT_LENGTH + 128];

	msg = json_loadb(line, len, CZ_JSON_LOAD_FLAGS, &e);
	if (msg == NULL) {
		snprintf(why, sizeof(why), "a line that is not JSON (%s, at "
			"byte %d of %zu): dropped", e.text, e.position, len);
		bad(ch, why);
		return;
	}
	dispatch(ch, msg);
	json_decref(msg);
}

/* Every complete line in the buffer; the rest stays for the next read. */
static void parse_lines(struct cz_node_chan *ch)
{
	size_t start = 0;
	char *nl;

	while (!ch->ended && !ch->closing &&
	       (nl = memchr(ch->in + ch->scanned, '\n',
			ch->in_len - ch->scanned)) != NULL) {
		size_t stop = (size_t)(nl - ch->in);

		if (ch->skipping) {
			ch->skipping = false;
		} else if (stop > start) {
			parse_line(ch, ch->in + start, stop - start);
		}
		start = ch->scanned = stop + 1;
	}
	memmove(ch->in, ch->in + start, ch->in_len - start);
	ch->in_len -= start;
	/* What is left holds no newline. */
	ch->scanned = ch->in_len;
	if (!ch->skipping && ch->in_len > CZ_NODE_CHAN_LINE_MAX) {
		bad(ch, "a line longer than 1 MiB: dropped");
		ch->skipping = true;
	}
	if (ch->skipping) {
		ch->in_len = ch->scanned = 0;
	}
}

static void keep_fds(struct cz_node_chan *ch, struct msghdr *mh)
{
	struct cmsghdr *cm;

	for (cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
		size_t i, n;
		int fd;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
			continue;
		}
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (ch->npending < PENDING_FDS_MAX) {
				ch->pending[ch->npending++] = fd;
			} else {
				close(fd);
				bad(ch, "too many fds without their message: closed");
			}
		}
	}
	if (mh->msg_flags & MSG_CTRUNC) {
		bad(ch, "fds the launcher could not receive (at its limit?)");
	}
}

/* Room for one more read; false when out of memory. */
static bool in_reserve(struct cz_node_chan *ch)
{
	size_t cap = ch->in_cap;
	char *p;

	if (cap - ch->in_len >= READ_CHUNK) {
		return true;
	}
	while (cap - ch->in_len < READ_CHUNK) {
		cap = cap != 0 ? cap * 2 : READ_CHUNK;
	}
	p = realloc(ch->in, cap);
	if (p == NULL) {
		return false;
	}
	ch->in = p;
	ch->in_cap = cap;
	return true;
}

/* One recvmsg: > 0 read, 0 nothing more for now, < 0 ended. */
static int read_once(struct cz_node_chan *ch)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * PENDING_FDS_MAX)];
	} u;
	struct iovec iov;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	ssize_t n;

	if (!in_reserve(ch)) {
		end(ch, -ENOMEM);
		return -1;
	}
	iov = (struct iovec){ ch->in + ch->in_len, READ_CHUNK };
	do {
		n = recvmsg(ch->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		return 0;
	}
	if (n <= 0) {
		end(ch, n < 0 ? -errno : 0);
		return -1;
	}
	keep_fds(ch, &mh);
	ch->in_len += (size_t)n;
	parse_lines(ch);
	return 1;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct cz_node_chan *ch = h->data;

	if (status < 0) {
		end(ch, status);
		return;
	}
	if (events & UV_WRITABLE) {
		flush(ch);
	}
	for (int i = 0; i < READS_PER_EVENT && (events & UV_READABLE) &&
	     !ch->ended && !ch->closing; i++) {
		if (read_once(ch) <= 0) {
			break;
		}
	}
}

static void update_poll(struct cz_node_chan *ch)
{
	int want = UV_READABLE | (can_send(ch) ? UV_WRITABLE : 0);

	if (ch->ended || ch->closing || want == ch->events) {
		return;
	}
	if (uv_poll_start(&ch->poll, want, on_poll) == 0) {
		ch->events = want;
	}
}

/* --- life ----------------------------------------------------------------- */

int cz_node_chan_open(uv_loop_t *loop, int fd, const struct cz_node_chan_ops *ops,
	struct cz_node_chan **out)
{
	struct cz_node_chan *ch = calloc(1, sizeof(*ch));
	int err;

	if (ch == NULL) {
		close(fd);
		return -ENOMEM;
	}
	err = uv_poll_init(loop, &ch->poll, fd);
	if (err < 0) {
		close(fd);
		free(ch);
		return err;
	}
	ch->poll.data = ch;
	ch->fd = fd;
	ch->ops = *ops;
	update_poll(ch);
	*out = ch;
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	struct cz_node_chan *ch = h->data;

	while (ch->head != NULL) {
		struct out *o = ch->head;

		ch->head = o->next;
		out_free(o);
	}
	if (ch->inflight != NULL) {
		out_free(ch->inflight);
	}
	while (ch->npending > 0) {
		close(ch->pending[--ch->npending]);
	}
	free(ch->in);
	free(ch);
}

void cz_node_chan_close(struct cz_node_chan *ch)
{
	if (ch == NULL || ch->closing) {
		return;
	}
	ch->closing = true;
	uv_close((uv_handle_t *)&ch->poll, on_closed);
	close(ch->fd);
}
