/* The agent of the test guests: forkd's agent wire protocol over
 * virtio-vsock, as agent.h describes it. */
#include "agent/agent.h"

#include "rt/guest.h"
#include "rt/user.h"
#include "rt/virtio.h"

#define VMCTL	  0x610
#define HOST_CID  2
#define HDR_LEN	  44
#define LINE_MAX  4096
#define MAX_CONNS 64
#define MAX_DEPTH 32

#define OP_REQUEST	  1
#define OP_RESPONSE	  2
#define OP_RST		  3
#define OP_SHUTDOWN	  4
#define OP_RW		  5
#define OP_CREDIT_UPDATE  6
#define OP_CREDIT_REQUEST 7

#define RX_BUFS	    16
#define RX_BUF_SIZE (HDR_LEN + 4096)
#define TX_CHUNK    4096
#define BUF_ALLOC   (64 * 1024)
#define OUT_SIZE    (4 * LINE_MAX) /* replies to one batch of input */

struct conn {
	bool open;
	uint32_t peer_port;
	uint32_t fwd_cnt, fwd_sent;		       /* our receive side */
	uint32_t tx_cnt, peer_buf_alloc, peer_fwd_cnt; /* our send side */
	char line[LINE_MAX];
	uint32_t line_len;
	bool overflow; /* the line in progress passed LINE_MAX: discard to '\n' */
};

static struct vdev dev;
static struct vq rxq, txq, evq;
static uint8_t rxbuf[RX_BUFS][RX_BUF_SIZE];
static uint8_t evbuf[4][8];
static struct virtio_vsock_hdr txhdr;
static uint64_t cid;
static struct conn conns[MAX_CONNS];

/* Shared with the CPL3 handler: input, the connection, the replies. */
static const uint8_t *in_data;
static uint32_t in_len;
static struct conn *in_conn;
static char out[OUT_SIZE];
static uint32_t out_len;
static int64_t child_index = -1;

/* What the last after_fork handed over (reset by a restore). */
static bool af_done;
static uint64_t af_index;
static uint32_t af_fnv, af_bytes;

/* ---- CPL3: lines, JSON, replies ---- */

static uint32_t slen(const char *s)
{
	uint32_t n = 0;

	while (s[n])
		n++;
	return n;
}

static void emit(const char *s, uint32_t n)
{
	memcpy(out + out_len, s, n);
	out_len += n;
}

static void emits(const char *s)
{
	emit(s, slen(s));
}

static void emit_dec(uint64_t v)
{
	char b[24];
	int i = 24;

	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	emit(b + i, (uint32_t)(24 - i));
}

struct span {
	const char *p;
	uint32_t n;
};

static const char *ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

static bool hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A JSON string at p (RFC 8259 §7): the position after it, or 0. */
static const char *jstring(const char *p, const char *e)
{
	if (p >= e || *p != '"')
		return 0;
	for (p++; p < e; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return 0;
		if (c == '\\') {
			if (++p >= e)
				return 0;
			if (*p == 'u') {
				if (e - p < 5 || !hex(p[1]) || !hex(p[2]) || !hex(p[3]) ||
				    !hex(p[4]))
					return 0;
				p += 4;
			} else if (!(*p == '"' || *p == '\\' || *p == '/' || *p == 'b' ||
				     *p == 'f' || *p == 'n' || *p == 'r' || *p == 't')) {
				return 0;
			}
		}
	}
	return 0;
}

static const char *jnumber(const char *p, const char *e)
{
	const char *d;

	if (p < e && *p == '-')
		p++;
	if (p < e && *p == '0') {
		p++;
	} else {
		for (d = p; p < e && *p >= '0' && *p <= '9';)
			p++;
		if (p == d)
			return 0;
	}
	if (p < e && *p == '.') {
		for (d = ++p; p < e && *p >= '0' && *p <= '9';)
			p++;
		if (p == d)
			return 0;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		for (d = p; p < e && *p >= '0' && *p <= '9';)
			p++;
		if (p == d)
			return 0;
	}
	return p;
}

static const char *jword(const char *p, const char *e, const char *w)
{
	uint32_t n = slen(w);

	return (uint32_t)(e - p) >= n && !memcmp(p, w, n) ? p + n : 0;
}

/* The top-level members a request may carry. */
struct req {
	struct span op, id, entropy, unix_time, index;
};

static void member(struct req *r, const char *k, const char *ke, struct span v)
{
	static const struct {
		const char *key;
		unsigned off;
	} keys[] = {
	    {"\"op\"", __builtin_offsetof(struct req, op)},
	    {"\"id\"", __builtin_offsetof(struct req, id)},
	    {"\"entropy\"", __builtin_offsetof(struct req, entropy)},
	    {"\"unix_time\"", __builtin_offsetof(struct req, unix_time)},
	    {"\"index\"", __builtin_offsetof(struct req, index)},
	};

	for (unsigned i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if ((uint32_t)(ke - k) == slen(keys[i].key) && !memcmp(k, keys[i].key, ke - k))
			*(struct span *)((char *)r + keys[i].off) = v;
}

/* Any JSON value; for the top-level object (r set), its known members. */
static const char *jvalue(const char *p, const char *e, int depth, struct req *r)
{
	const char *k, *ke, *v;

	p = ws(p, e);
	if (p >= e || depth > MAX_DEPTH)
		return 0;
	switch (*p) {
	case '"':
		return jstring(p, e);
	case 't':
		return jword(p, e, "true");
	case 'f':
		return jword(p, e, "false");
	case 'n':
		return jword(p, e, "null");
	case '[':
		p = ws(p + 1, e);
		if (p < e && *p == ']')
			return p + 1;
		for (;;) {
			if (!(p = jvalue(p, e, depth + 1, 0)))
				return 0;
			p = ws(p, e);
			if (p < e && *p == ']')
				return p + 1;
			if (p >= e || *p != ',')
				return 0;
			p++;
		}
	case '{':
		p = ws(p + 1, e);
		if (p < e && *p == '}')
			return p + 1;
		for (;;) {
			k = ws(p, e);
			if (!(ke = p = jstring(k, e)))
				return 0;
			p = ws(p, e);
			if (p >= e || *p++ != ':')
				return 0;
			v = ws(p, e);
			if (!(p = jvalue(v, e, depth + 1, 0)))
				return 0;
			if (r)
				member(r, k, ke, (struct span){v, (uint32_t)(p - v)});
			p = ws(p, e);
			if (p < e && *p == '}')
				return p + 1;
			if (p >= e || *p != ',')
				return 0;
			p++;
		}
	default:
		return jnumber(p, e);
	}
}

static void reply_error(const struct span *id, const char *msg)
{
	emits("{\"id\":");
	if (id->n)
		emit(id->p, id->n);
	else
		emits("null");
	emits(",\"ok\":false,\"error\":\"agent_stub: ");
	emits(msg);
	emits("\"}\n");
}

static bool is_op(const struct span *op, const char *name)
{
	uint32_t n = slen(name);

	return op->n == n + 2 && !memcmp(op->p + 1, name, n);
}

static void reply_ok(const struct span *id)
{
	emits("{\"id\":");
	if (id->n)
		emit(id->p, id->n);
	else
		emits("null");
	emits(",\"ok\":true");
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decode the JSON string s (base64, padded, no escapes) and hash it:
 * FNV-1a over the bytes. The byte count, or -1 when it is not base64. */
static int64_t b64_fnv(const struct span *s, uint32_t *fnv)
{
	uint32_t h = 2166136261u, acc = 0, bits = 0, n, i, pad = 0;
	int64_t bytes = 0;

	if (s->n < 2 || s->p[0] != '"' || s->p[s->n - 1] != '"')
		return -1;
	n = s->n - 2;
	if (n % 4)
		return -1;
	for (i = 0; i < n; i++) {
		char c = s->p[1 + i];
		int v = b64_value(c);

		if (c == '=' && i >= n - 2) {
			pad++;
			continue;
		}
		if (v < 0 || pad)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			h = (h ^ (uint8_t)(acc >> bits)) * 16777619u;
			bytes++;
		}
	}
	*fnv = h;
	return bytes;
}

/* A non-negative JSON integer below 2^32. */
static bool uint_of(const struct span *s, uint64_t *v)
{
	*v = 0;
	if (!s->n || s->n > 10)
		return false;
	for (uint32_t i = 0; i < s->n; i++) {
		if (s->p[i] < '0' || s->p[i] > '9' || (i == 0 && s->p[0] == '0' && s->n > 1))
			return false;
		*v = *v * 10 + (uint64_t)(s->p[i] - '0');
	}
	return *v <= 0xffffffffULL;
}

static void after_fork(const struct req *r)
{
	uint64_t index;
	uint32_t fnv = 0;
	int64_t bytes = r->entropy.n ? b64_fnv(&r->entropy, &fnv) : -1;

	if (!uint_of(&r->index, &index)) {
		reply_error(&r->id,
			    "after_fork needs \\\"index\\\", an integer from 0 to 4294967295");
		return;
	}
	if (bytes < 32) {
		reply_error(&r->id,
			    "after_fork needs \\\"entropy\\\", base64 of at least 32 bytes");
		return;
	}
	if (!r->unix_time.n ||
	    !((r->unix_time.p[0] >= '0' && r->unix_time.p[0] <= '9') || r->unix_time.p[0] == '-')) {
		reply_error(&r->id, "after_fork needs \\\"unix_time\\\", a number");
		return;
	}
	af_done = true;
	af_index = index;
	af_fnv = fnv;
	af_bytes = (uint32_t)bytes;
	reply_ok(&r->id);
	emits(",\"reseeded\":[],\"entropy_bytes\":");
	emit_dec(af_bytes);
	emits("}\n");
}

static void ping(const struct req *r)
{
	static const char hexd[] = "0123456789abcdef";

	reply_ok(&r->id);
	emits(",\"pong\":true,\"pid\":1,\"numpy\":\"none\",\"warm\":true,\"index\":");
	if (af_done)
		emit_dec(af_index);
	else if (child_index >= 0)
		emit_dec((uint64_t)child_index);
	else
		emits("null");
	emits(af_done ? ",\"after_fork\":true" : ",\"after_fork\":false");
	emits(",\"vmctl_index\":");
	if (child_index >= 0)
		emit_dec((uint64_t)child_index);
	else
		emits("null");
	emits(",\"entropy_fnv\":");
	if (af_done) {
		char h[10];

		h[0] = h[9] = '"';
		for (int i = 0; i < 8; i++)
			h[1 + i] = hexd[af_fnv >> (28 - 4 * i) & 15];
		emit(h, 10);
	} else {
		emits("null");
	}
	emits("}\n");
}

/* One complete request line (without its '\n'). */
static void handle_line(const char *line, uint32_t n)
{
	const char *e = line + n, *end;
	struct req r;

	memset(&r, 0, sizeof(r));
	end = ws(line, e);
	if (end == e)
		return; /* blank lines are not requests */
	if (*end != '{' || !(end = jvalue(line, e, 0, &r)) || ws(end, e) != e) {
		r.id.n = 0;
		reply_error(&r.id, "request is not a JSON object");
		return;
	}
	if (!r.op.n || r.op.p[0] != '"') {
		reply_error(&r.id, "request has no \\\"op\\\" string");
		return;
	}
	if (is_op(&r.op, "ping"))
		ping(&r);
	else if (is_op(&r.op, "after_fork"))
		after_fork(&r);
	else
		reply_error(&r.id, "op not supported");
}

/* Consume in_data[0..in_len) into in_conn's line, replying to each full
 * line into out[]. Stops early while out[] could not hold another reply;
 * returns how many input bytes it took. */
static uint64_t user_feed(uint64_t unused)
{
	struct conn *c = in_conn;
	uint32_t i;

	for (i = 0; i < in_len; i++) {
		char ch = (char)in_data[i];

		if (ch == '\n') {
			if (OUT_SIZE - out_len < LINE_MAX + 256)
				break;
			if (c->overflow) {
				struct span none = {0, 0};

				reply_error(&none,
					    "request line over 4096 bytes (this stub's limit)");
			} else {
				handle_line(c->line, c->line_len);
			}
			c->line_len = 0;
			c->overflow = false;
		} else if (c->line_len < LINE_MAX) {
			c->line[c->line_len++] = ch;
		} else {
			c->overflow = true;
		}
	}
	return i;
}

/* ---- CPL0: virtio-vsock (virtio 1.2 §5.10.6) ---- */

static void rx_add(unsigned i)
{
	struct vq_buf b = {rxbuf[i], RX_BUF_SIZE, true};

	CHECK(vq_add(&rxq, &b, 1) >= 0);
}

/* From guest port AGENT_PORT when c is a connection; a reset for a
 * packet that has none comes from the port that packet was sent to
 * (rst_port), so the host can tell which of its connections was refused. */
static uint32_t rst_port;

static void send_pkt(struct conn *c, uint32_t peer_port, uint16_t op, const void *data,
		     uint32_t len)
{
	struct vq_buf b[2] = {{&txhdr, HDR_LEN, false}, {(void *)data, len, false}};

	txhdr = (struct virtio_vsock_hdr){.src_cid = cid,
					  .dst_cid = HOST_CID,
					  .src_port = c ? AGENT_PORT : rst_port,
					  .dst_port = peer_port,
					  .len = len,
					  .type = 1,
					  .op = op,
					  .buf_alloc = BUF_ALLOC,
					  .fwd_cnt = c ? c->fwd_cnt : 0};
	if (c) {
		c->fwd_sent = c->fwd_cnt;
		if (op == OP_RW)
			c->tx_cnt += len;
	}
	CHECK(vq_transfer(&dev, &txq, b, len ? 2 : 1) == 0);
}

static void drop(struct conn *c, bool rst)
{
	if (rst)
		send_pkt(c, c->peer_port, OP_RST, 0, 0);
	c->open = false;
}

/* Send out[] within the host's credit; a host that stopped reading loses
 * the connection rather than the whole agent. */
static void flush_out(struct conn *c)
{
	uint32_t off = 0;

	while (off < out_len && c->open) {
		uint32_t credit = c->peer_buf_alloc - (c->tx_cnt - c->peer_fwd_cnt);
		uint32_t n = out_len - off;

		if (credit > c->peer_buf_alloc || credit < n) {
			puts_("agent_stub: host out of credit, resetting the connection\n");
			drop(c, true);
			break;
		}
		if (n > TX_CHUNK)
			n = TX_CHUNK;
		send_pkt(c, c->peer_port, OP_RW, out + off, n);
		off += n;
	}
	out_len = 0;
}

static void on_data(struct conn *c, const uint8_t *p, uint32_t len)
{
	uint32_t done = 0;

	while (done < len && c->open) {
		in_data = p + done;
		in_len = len - done;
		in_conn = c;
		done += (uint32_t)user_call(user_feed, 0);
		flush_out(c);
	}
	c->fwd_cnt += len;
	if (c->open && c->fwd_cnt - c->fwd_sent >= BUF_ALLOC / 2)
		send_pkt(c, c->peer_port, OP_CREDIT_UPDATE, 0, 0);
}

static struct conn *find(uint32_t peer_port)
{
	for (unsigned i = 0; i < MAX_CONNS; i++)
		if (conns[i].open && conns[i].peer_port == peer_port)
			return &conns[i];
	return 0;
}

static void on_packet(const struct virtio_vsock_hdr *h, const uint8_t *data)
{
	struct conn *c;

	if (h->dst_cid != cid || h->src_cid != HOST_CID || h->type != 1)
		return;
	rst_port = h->dst_port;
	c = h->dst_port == AGENT_PORT ? find(h->src_port) : 0;
	if (h->op == OP_REQUEST) {
		if (c || h->dst_port != AGENT_PORT) {
			if (c)
				drop(c, false);
			send_pkt(0, h->src_port, OP_RST, 0, 0);
			return;
		}
		for (unsigned i = 0; i < MAX_CONNS && !c; i++)
			if (!conns[i].open)
				c = &conns[i];
		if (!c) {
			send_pkt(0, h->src_port, OP_RST, 0, 0); /* table full */
			return;
		}
		*c = (struct conn){.open = true, .peer_port = h->src_port};
		c->peer_buf_alloc = h->buf_alloc;
		c->peer_fwd_cnt = h->fwd_cnt;
		send_pkt(c, c->peer_port, OP_RESPONSE, 0, 0);
		return;
	}
	if (!c) {
		if (h->op != OP_RST)
			send_pkt(0, h->src_port, OP_RST, 0, 0);
		return;
	}
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	switch (h->op) {
	case OP_RW:
		on_data(c, data, h->len);
		break;
	case OP_SHUTDOWN:
		drop(c, true);
		break;
	case OP_RST:
		drop(c, false);
		break;
	case OP_CREDIT_REQUEST:
		send_pkt(c, c->peer_port, OP_CREDIT_UPDATE, 0, 0);
		break;
	default:
		break; /* credit updates only refresh the numbers above */
	}
}

static void read_identity(void)
{
	virtio_config_read(&dev, 0, &cid, 8);
	/* vmctl (src/devices/vmctl.h): a generation above 0 means this VM was
	 * restored, and the index register then holds the child's index. An
	 * after_fork from before the restore is not this VM's. */
	child_index = inl(VMCTL + 4) ? (int64_t)inl(VMCTL + 8) : -1;
	af_done = false;
}

void agent_serve(bool (*idle)(void))
{
	uint32_t len;
	int id;

	for (;;) {
		__asm__ volatile("cli");
		if ((id = vq_poll(&evq, &len)) >= 0) {
			/* Transport reset (a restore): every connection is gone
			 * and the CID may have changed (§5.10.6, Device Events). */
			for (unsigned i = 0; i < MAX_CONNS; i++)
				conns[i].open = false;
			read_identity();
			/* A chain taken back is re-added at once, so descriptor
			 * i stays evbuf[i] (as rx_add() keeps rxbuf[i]). */
			CHECK(id < 4);
			struct vq_buf b = {evbuf[id], sizeof(evbuf[0]), true};
			CHECK(vq_add(&evq, &b, 1) == id);
			vq_kick(&dev, &evq);
			continue;
		}
		if ((id = vq_poll(&rxq, &len)) >= 0) {
			struct virtio_vsock_hdr h;

			CHECK(id < RX_BUFS);
			if (len >= HDR_LEN) {
				memcpy(&h, rxbuf[id], HDR_LEN);
				if (h.len <= len - HDR_LEN)
					on_packet(&h, rxbuf[id] + HDR_LEN);
			}
			rx_add((unsigned)id);
			vq_kick(&dev, &rxq);
			continue;
		}
		CHECK(!(virtio_status(&dev) & VIRTIO_STATUS_NEEDS_RESET));
		if (idle && idle())
			continue;
		__asm__ volatile("sti; hlt" ::: "memory");
	}
}

/* ---- without a vsock device: check the handler on sample lines ---- */

static void expect(const char *input, const char *want)
{
	static struct conn c;
	uint32_t n = slen(want);

	c = (struct conn){.open = true};
	in_data = (const uint8_t *)input;
	in_len = slen(input);
	in_conn = &c;
	out_len = 0;
	CHECK(user_call(user_feed, 0) == in_len);
	if (out_len != n || memcmp(out, want, n)) {
		out[out_len < OUT_SIZE ? out_len : OUT_SIZE - 1] = 0;
		puts_("agent_stub: for ");
		puts_(input);
		puts_("agent_stub: got  ");
		puts_(out);
		puts_("agent_stub: want ");
		puts_(want);
		guest_exit(2);
	}
}

void agent_self_test(void)
{
	static char big[LINE_MAX + 64];
	const char *pong = ",\"ok\":true,\"pong\":true,\"pid\":1,\"numpy\":\"none\",\"warm\":true,"
			   "\"index\":null,\"after_fork\":false,\"vmctl_index\":null,"
			   "\"entropy_fnv\":null}\n";
	static char want[1024];
	uint32_t i;

	out_len = 0;
	emits("{\"id\":7");
	emits(pong);
	memcpy(want, out, out_len);
	want[out_len] = 0;
	expect("{\"op\":\"ping\",\"id\":7}\n", want);

	out_len = 0;
	emits("{\"id\":{\"a\":[1,2.5e3,\"x\\\"}\"]}");
	emits(pong);
	emits("{\"id\":null");
	emits(pong);
	memcpy(want, out, out_len);
	want[out_len] = 0;
	expect(" { \"id\" : {\"a\":[1,2.5e3,\"x\\\"}\"]}, \"op\":\"ping\" }\n\n{\"op\":\"ping\"}\n",
	       want);

	expect("{\"op\":\"exec\",\"id\":\"e\",\"argv\":[\"ls\"]}\n",
	       "{\"id\":\"e\",\"ok\":false,\"error\":\"agent_stub: op not supported\"}\n");
	expect(
	    "{\"op\":\"ping\",\n",
	    "{\"id\":null,\"ok\":false,\"error\":\"agent_stub: request is not a JSON object\"}\n");
	expect(
	    "[1]\n",
	    "{\"id\":null,\"ok\":false,\"error\":\"agent_stub: request is not a JSON object\"}\n");
	expect("{\"id\":3}\n", "{\"id\":3,\"ok\":false,\"error\":\"agent_stub: request has no "
			       "\\\"op\\\" string\"}\n");
	expect(
	    "{\"op\":\"ping\"} x\n",
	    "{\"id\":null,\"ok\":false,\"error\":\"agent_stub: request is not a JSON object\"}\n");
	for (i = 0; i < sizeof(big) - 2; i++)
		big[i] = 'x';
	big[i] = '\n';
	expect(big, "{\"id\":null,\"ok\":false,\"error\":\"agent_stub: request line over 4096 "
		    "bytes (this stub's limit)\"}\n");
	/* after_fork: bad fields are named; a good one is recorded (bytes 0..31,
	 * whose FNV-1a is 0913ad65) and ping reports it. */
	expect("{\"op\":\"after_fork\",\"id\":1,\"entropy\":\"AAAA\",\"unix_time\":1.5,"
	       "\"index\":2}\n",
	       "{\"id\":1,\"ok\":false,\"error\":\"agent_stub: after_fork needs \\\"entropy\\\", "
	       "base64 of at least 32 bytes\"}\n");
	expect("{\"op\":\"after_fork\",\"id\":2,\"unix_time\":1.5,\"index\":-1,\"entropy\":"
	       "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}\n",
	       "{\"id\":2,\"ok\":false,\"error\":\"agent_stub: after_fork needs \\\"index\\\", an "
	       "integer from 0 to 4294967295\"}\n");
	expect("{\"op\":\"after_fork\",\"id\":3,\"index\":5,\"entropy\":"
	       "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}\n",
	       "{\"id\":3,\"ok\":false,\"error\":\"agent_stub: after_fork needs \\\"unix_time\\\", "
	       "a number\"}\n");
	expect("{\"op\":\"after_fork\",\"id\":4,\"unix_time\":1767225600.25,\"index\":5,"
	       "\"entropy\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}\n",
	       "{\"id\":4,\"ok\":true,\"reseeded\":[],\"entropy_bytes\":32}\n");
	expect("{\"op\":\"ping\",\"id\":5}\n",
	       "{\"id\":5,\"ok\":true,\"pong\":true,\"pid\":1,\"numpy\":\"none\",\"warm\":true,"
	       "\"index\":5,\"after_fork\":true,\"vmctl_index\":null,\"entropy_fnv\":"
	       "\"0913ad65\"}\n");
	puts_("agent_stub: no vsock device; request handler checked on 14 sample lines\n");
}

int64_t agent_child_index(void)
{
	return child_index;
}

bool agent_after_fork_done(void)
{
	return af_done;
}

bool agent_start(void)
{
	if (virtio_find(VIRTIO_ID_VSOCK, 0, &dev) < 0)
		return false;
	CHECK(virtio_init(&dev, 0) == 0);
	CHECK(virtio_queue_setup(&dev, 0, &rxq, RX_BUFS) == 0);
	CHECK(virtio_queue_setup(&dev, 1, &txq, 8) == 0);
	CHECK(virtio_queue_setup(&dev, 2, &evq, 4) == 0);
	virtio_irq_enable(&dev);
	virtio_driver_ok(&dev);
	read_identity();
	for (unsigned i = 0; i < RX_BUFS; i++)
		rx_add(i);
	vq_kick(&dev, &rxq);
	for (unsigned i = 0; i < 4; i++) {
		struct vq_buf b = {evbuf[i], sizeof(evbuf[i]), true};

		CHECK(vq_add(&evq, &b, 1) >= 0);
	}
	vq_kick(&dev, &evq);
	puts_("agent_stub: listening on vsock port 8888, guest CID ");
	put_dec(cid);
	putc_('\n');
	return true;
}
