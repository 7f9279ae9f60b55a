// SPDX-License-Identifier: GPL-2.0
// Redis command rules at the socket: the client's RESP stream is framed at sendmsg and
// every command decided by a table the agent computes with the policy engine; allowed
// bytes go straight into the server socket's receive queue when both ends are on this
// node (no TCP at all), or on to TCP when the server is elsewhere. See src/lib.rs.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define NAME 24        // command names are shorter; longer ones are "any other"
#define MAX_HEADERS 16 // per program run: the verifier's bound (32 is over its 1M); the kernel runs us again
#define PBUF 48        // a command's headers and a short name fit (see `save_partial`)
#define TAIL 80        // what `resume` reads of the next write

// Addresses are 16 bytes: IPv6, or IPv4 mapped (::ffff:a.b.c.d), as the agent writes them.
struct ip { __u32 w[4]; };
struct tuple { struct ip lip, rip; __u32 lport, rport; };  // as the socket sees itself
struct addr { struct ip ip; __u32 port; };
struct pair { __u32 client, server, port; };            // identities and the server port
struct command { __u32 table; char name[NAME]; };       // an empty name: any other

// Both ends of each connection to a server address the agent named.
struct { __uint(type, BPF_MAP_TYPE_SOCKHASH); __uint(max_entries, 65536); __type(key, struct tuple); __type(value, __u64); } socks SEC(".maps");
// 1: a server of this node, 2: of another node (its end is not taken here).
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 65536); __type(key, struct addr); __type(value, __u32); } servers SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 262144); __type(key, struct ip); __type(value, __u32); } identities SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 262144); __type(key, struct pair); __type(value, __u32); } tables SEC(".maps");
// 1: allowed, 2: refused, 3: allowed and reported (a Monitor group's violation).
// A key whose last name byte is 1 (no command read from a stream has one) holds the
// verdict for a stream that is not RESP: refused unless it is 3 (passed unframed).
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 262144); __type(key, struct command); __type(value, __u32); } verdicts SEC(".maps");
// Command names a connection's first line may name inline to count as Redis (the
// proxy's protocol detector's list; filled at load).
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 256); __type(key, char[NAME]); __type(value, __u32); } inline_names SEC(".maps");
// Refused commands, for the agent's events (`Refusal` in src/lib.rs).
// kind 0: a refused command; 1: a stream that is not RESP; 2: a client with no table;
// 3: a connection taken (not a refusal: its record); 4: a command allowed and reported
// (a Monitor violation: its event); 5: a stream that is not RESP, passed and reported.
struct refusal { struct ip client_ip, server_ip; __u32 client_port, server_port, table, kind; char name[NAME]; };
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 256 * 1024); } refusals SEC(".maps");
// Counters, see `Counters` in src/lib.rs.
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 12); __type(key, __u32); __type(value, __u64); } counters SEC(".maps");
// Vouching (see "A client node vouches" below): [0] the key (two words) the nodes share,
// [1] the mark `vouched` gives a verified SYN (word 0; 0: vouching off).
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2); __type(key, __u32); __type(value, __u64[2]); } vouch SEC(".maps");
// Tags verified lately: a SYN seen again (a replay, or a retransmission) is not vouched
// for twice and takes the proxy.
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 65536); __type(key, __u64); __type(value, __u64); } vouched_tags SEC(".maps");

// A client socket's place in its stream, between sendmsg calls.
struct stream {
  __u32 args;   // bulk strings of the current command not begun
  __u32 bulk;   // bytes of the current bulk string (CRLF included) still to come
  __u32 deny;   // the current command's verdict
  __u32 open;   // a command is under way
  __u32 reported; // the stream's refusal (not RESP, no table) was reported
  __u32 seen;   // a first command was read: the stream is Redis
  __u32 raw;    // not RESP, and its table lets such a stream through: passed unframed
  __u32 multi;  // inside MULTI (an allowed one), until EXEC or DISCARD
  __u32 tx_refusal; // this program run's refused command is inside a transaction
  __u64 last_report; // the name (a tag of it) of the command last reported as allowed
  // The guard (see "Only what the program read leaves" below), on a client's end:
  __u32 watched;      // taken when it connected: its bytes leave only as approved
  __u32 established;  // approved_end is set
  __u32 approved_end; // the TCP sequence number up to which bytes were passed on to TCP
  __u32 tainted;      // bytes reached TCP past what was passed: none leave any more
  __u32 via_tcp;      // bytes went on to TCP: the rest follow them there (see `send`)
  __u32 held;         // the last run held the write back (corked): the next has it all
  __u32 held_run;     // this run is on bytes held back
  // A write that ended inside a header (see "Cut inside a header" below):
  __u32 pkind;        // 1: an argument's header, 2: a command's headers and name; 0: none
  __u32 plen;         // bytes of it kept in pbuf
  __u32 ptotal;       // bytes of it passed (more than plen past a long name's start)
  __u32 name_at;      // where this run's last command's name starts
  unsigned char pbuf[PBUF];
};
struct { __uint(type, BPF_MAP_TYPE_SK_STORAGE); __uint(map_flags, BPF_F_NO_PREALLOC); __type(key, int); __type(value, struct stream); } streams SEC(".maps");

enum { ALLOWED, REFUSED, REPLIES, MALFORMED, NO_TABLE, REPORTED, LOST, VOUCHED, VERIFIED, UNVERIFIED, REPLAYED, UNREAD };

// A command's effect on the connection's transaction (`r` as `decide` returns it): an
// allowed MULTI opens one, an allowed EXEC or DISCARD closes it. Without branches: each
// would double the paths the verifier walks through the framing loop. (Kept in the
// socket's storage, not in a register: the verifier does not split paths on what a map
// value holds.)
static __always_inline void track_tx(struct stream *c, __u32 r) {
  __u32 ok = (r & 1) ^ 1, multi = c->multi & 1;
  c->multi = (multi | ((r >> 1) & ok)) & ~((r >> 2) & ok) & 1;
}

// Command names are matched upper case (Redis's are case-insensitive).
static __always_inline unsigned char upper(unsigned char b) { return (b >= 'a' && b <= 'z') ? b - 32 : b; }

static __always_inline void count(__u32 i, __u64 n) {
  __u64 *v = bpf_map_lookup_elem(&counters, &i);
  if (v) *v += n;
}

#define AF_INET 2
#define AF_INET6 10
// A context field read where it is: without `volatile`, clang may pick one of two
// fields' addresses and load once, and the verifier refuses a computed context address.
#define CTX(x) (*(volatile typeof(x) *)&(x))

static __always_inline struct ip v4(__u32 a) {
  struct ip r = { .w = { 0, 0, bpf_htonl(0xffff), a } };
  return r;
}

static __always_inline int same(struct ip *a, struct ip *b) {
  return a->w[0] == b->w[0] && a->w[1] == b->w[1] && a->w[2] == b->w[2] && a->w[3] == b->w[3];
}

// A client node vouches for a connection its programs decide: the SYN carries a TCP
// option (kind 253, RFC 6994 experiment id 0xB1C0) with an 8-byte SipHash-2-4 tag, under
// the nodes' shared key, of the addresses, ports, initial sequence number and a 2.1 s
// epoch of TAI time; the server's node checks it at tc ingress (`vouched`) and marks
// the SYN, so that its nftables let it past the L7 proxy (experiments/synmark).
#define VOUCH_KIND 253
#define VOUCH_LEN 12
#define VOUCH_EXID 0xB1C0
#define EPOCH_SHIFT 31

struct vouch_opt { __u8 kind, len; __u16 exid; __u64 tag; } __attribute__((packed));

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                          \
  v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                              \
  v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                 \
  v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                 \
  v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);

// SipHash-2-4 of six 64-bit words: both addresses (16 bytes each), ports and sequence
// number, epoch. A global function: verified once.
__noinline __u64 vouch_tag(const struct ip *client, const struct ip *server, __u32 ports, __u32 seq, __u64 epoch) {
  __u32 zero = 0;
  __u64 *k = bpf_map_lookup_elem(&vouch, &zero);
  if (!k || !client || !server) return 0;
  __u64 v0 = 0x736f6d6570736575ULL ^ k[0], v1 = 0x646f72616e646f6dULL ^ k[1];
  __u64 v2 = 0x6c7967656e657261ULL ^ k[0], v3 = 0x7465646279746573ULL ^ k[1];
  __u64 m[7] = {
    ((__u64)client->w[0] << 32) | client->w[1], ((__u64)client->w[2] << 32) | client->w[3],
    ((__u64)server->w[0] << 32) | server->w[1], ((__u64)server->w[2] << 32) | server->w[3],
    ((__u64)ports << 32) | seq, epoch, 48ULL << 56,
  };
#pragma unroll
  for (int i = 0; i < 7; i++) {
    v3 ^= m[i];
    SIPROUND SIPROUND
    v0 ^= m[i];
  }
  v2 ^= 0xff;
  SIPROUND SIPROUND SIPROUND SIPROUND
  return v0 ^ v1 ^ v2 ^ v3;
}

static __always_inline __u64 epoch_now(void) { return bpf_ktime_get_tai_ns() >> EPOCH_SHIFT; }

static __always_inline int vouching(void) {
  __u32 one = 1;
  __u64 *c = bpf_map_lookup_elem(&vouch, &one);
  return c && c[0];
}

// The option in the SYN of a connection `take` asked it for (and in no other segment).
// The table of the connection from `client` to `server`:`port` (the identities of
// both ends and the port), or none.
static __always_inline __u32 *table_for(struct ip *client, struct ip *server, __u32 port) {
  __u32 *ci = bpf_map_lookup_elem(&identities, client), *si = bpf_map_lookup_elem(&identities, server);
  if (!ci || !si) return 0;
  struct pair p = { .client = *ci, .server = *si, .port = port };
  return bpf_map_lookup_elem(&tables, &p);
}

// Whether this program's tables cover the connection from `client` to `server`:`port`
// (the flag that asks for these callbacks is the socket's, so every program attached to
// the socket's cgroups is called: only the one that took it vouches).
static __always_inline int covered(struct ip *client, struct ip *server, __u32 port) {
  struct addr to = { .ip = *server, .port = port };
  return bpf_map_lookup_elem(&servers, &to) && table_for(client, server, port);
}

static __always_inline int write_vouch(struct bpf_sock_ops *s, __u32 op) {
  if ((s->skb_tcp_flags & 0x12) != 0x02) return 1;
  __u32 l4 = CTX(s->local_ip4), r4 = CTX(s->remote_ip4);
  struct ip l6 = { .w = { CTX(s->local_ip6[0]), CTX(s->local_ip6[1]), CTX(s->local_ip6[2]), CTX(s->local_ip6[3]) } };
  struct ip r6 = { .w = { CTX(s->remote_ip6[0]), CTX(s->remote_ip6[1]), CTX(s->remote_ip6[2]), CTX(s->remote_ip6[3]) } };
  struct ip client = s->family == AF_INET ? v4(l4) : l6, server = s->family == AF_INET ? v4(r4) : r6;
  if (!covered(&client, &server, bpf_ntohl(s->remote_port))) return 1;
  if (op == BPF_SOCK_OPS_HDR_OPT_LEN_CB) {
    bpf_reserve_hdr_opt(s, VOUCH_LEN, 0);
    return 1;
  }
  struct tcphdr *th = (void *)(long)s->skb_data;
  if ((void *)(th + 1) > (void *)(long)s->skb_data_end) return 1;
  struct vouch_opt o = { .kind = VOUCH_KIND, .len = VOUCH_LEN, .exid = bpf_htons(VOUCH_EXID) };
  o.tag = vouch_tag(&client, &server, ((__u32)th->source << 16) | th->dest, th->seq, epoch_now());
  if (bpf_store_hdr_opt(s, &o, sizeof(o), 0) == 0) count(VOUCHED, 1);
  return 1;
}

SEC("sockops")
int take(struct bpf_sock_ops *s) {
  if (s->family != AF_INET && s->family != AF_INET6) return 1;
  __u32 op = s->op;
  if (op == BPF_SOCK_OPS_HDR_OPT_LEN_CB || op == BPF_SOCK_OPS_WRITE_HDR_OPT_CB)
    return write_vouch(s, op);
  int connect = op == BPF_SOCK_OPS_TCP_CONNECT_CB;
  int active = op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB;
  if (!active && !connect && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) return 1;
  active |= connect;
  struct tuple t = { .lport = s->local_port, .rport = bpf_ntohl(s->remote_port) };
  // Every address field read, straight, before any branch uses one (see CTX).
  __u32 l4 = CTX(s->local_ip4), r4 = CTX(s->remote_ip4);
  struct ip l6 = { .w = { CTX(s->local_ip6[0]), CTX(s->local_ip6[1]), CTX(s->local_ip6[2]), CTX(s->local_ip6[3]) } };
  struct ip r6 = { .w = { CTX(s->remote_ip6[0]), CTX(s->remote_ip6[1]), CTX(s->remote_ip6[2]), CTX(s->remote_ip6[3]) } };
  t.lip = s->family == AF_INET ? v4(l4) : l6;
  t.rip = s->family == AF_INET ? v4(r4) : r6;
  // A workload's connection to itself is never policed.
  if (same(&t.lip, &t.rip)) return 1;
  // The client's end (active) or the server's (passive) of a connection whose pair has
  // a table: exactly the connections the agent's nftables rules leave to this path.
  struct addr server = active ? (struct addr){ .ip = t.rip, .port = t.rport } : (struct addr){ .ip = t.lip, .port = t.lport };
  struct ip cip = active ? t.lip : t.rip, sip = server.ip;
  __u32 *where = bpf_map_lookup_elem(&servers, &server);
  if (!where) return 1;
  // A server on another node (2): its end is not this node's to take.
  if (*where == 2 && !active) return 1;
  __u32 *tp = table_for(&cip, &sip, server.port);
  if (!tp) return 1;
  __u32 table = *tp;
  // The client's end is guarded from its SYN on (see `guard`).
  struct bpf_sock *sk = active ? s->sk : 0;
  struct stream *c = sk ? bpf_sk_storage_get(&streams, sk, 0, BPF_SK_STORAGE_GET_F_CREATE) : 0;
  if (c) c->watched = 1;
  if (connect) {
    // The SYN is about to be sent: vouch for the connection in it.
    if (vouching())
      bpf_sock_ops_cb_flags_set(s, s->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
    return 1;
  }
  // The handshake is over: no more segment needs the vouching callbacks (with the flag
  // set, the kernel would call us for every segment the connection sends).
  if (active && (s->bpf_sock_ops_cb_flags & BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG))
    bpf_sock_ops_cb_flags_set(s, s->bpf_sock_ops_cb_flags & ~BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
  if (c && !c->established) {
    // What the server acknowledged (the SYN; data in it, only from a connection not
    // guarded at its SYN) is behind; from here on only what `frame` passes may leave.
    c->approved_end = s->snd_una;
    c->established = 1;
  }
  if (bpf_sock_hash_update(s, &socks, &t, BPF_NOEXIST) == 0 && active) {
    // The connection's record (its protocol, for flows and learning): kind 3.
    struct refusal *r = bpf_ringbuf_reserve(&refusals, sizeof(*r), 0);
    if (r) {
      __builtin_memset(r, 0, sizeof(*r));
      r->client_ip = t.lip;
      r->server_ip = t.rip;
      r->client_port = t.lport;
      r->server_port = t.rport;
      r->table = table;
      r->kind = 3;
      bpf_ringbuf_submit(r, 0);
    }
  }
  return 1;
}

// A header "<c><digits>\r\n" at `off`: (its number << 8) | its length, 0 when this
// sendmsg ends inside it, -1 when it is not one. A global function: the verifier checks
// it once, not once per path through the framing loop.
__noinline __s64 header(struct sk_msg_md *m, __u32 off, __u32 c) {
  if (!m) return -1;
  __u32 size = m->size;
  __u32 end = off + 16 < size ? off + 16 : size;
  if (end <= off + 3) return 0;
  if (bpf_msg_pull_data(m, off, end, 0)) return -1;
  unsigned char *d = m->data, *e = m->data_end;
  if (d + 1 > e || d[0] != c) return -1;
  __s64 n = 0;
#pragma unroll
  for (int i = 1; i < 14; i++) {
    if (d + i + 2 > e) return 0;
    unsigned char b = d[i];
    if (b == '\r') {
      if (d[i + 1] != '\n' || i == 1) return -1;
      return (n << 8) | (i + 2);
    }
    if (b < '0' || b > '9') return -1;
    n = n * 10 + (b - '0');
  }
  return -1;
}

// Inline commands ("NAME args\r\n": what telnet and nc send, and what the proxy decides
// too). Each scan is a global function with one exit per iteration: verified once, on its
// own, rather than once per way the scan before it could end.
#define INLINE_MAX 256
static __always_inline int blank(unsigned char b) {
  return b == ' ' || b == '\t' || b == '\r' || b == '\n' || b == '\f' || b == '\v';
}

// Where the line at `off` ends (its LF, from `off`); -2 when this sendmsg ends first; -1
// when there is none within INLINE_MAX (too long: refused).
__noinline __s32 scan_lf(struct sk_msg_md *m, __u32 off) {
  if (!m) return -1;
  __u32 size = m->size;
  if (off >= size) return -2;
  __u32 end = off + INLINE_MAX < size ? off + INLINE_MAX : size;
  if (bpf_msg_pull_data(m, off, end, 0)) return -1;
  unsigned char *d = m->data, *e = m->data_end;
  for (__u32 i = 0; i < INLINE_MAX; i++) {
    if (d + i + 1 > e) return end == size ? -2 : -1;
    if (d[i] == '\n') return i;
  }
  return -1;
}

// The first i in [from, to) whose byte is blank (`want` 1) or not (0); `to` if none. The
// pulled window is exactly [from, to): the loop compares with nothing else (comparing
// with unknown bounds makes the verifier walk every bound apart).
__noinline __s32 scan_word(struct sk_msg_md *m, __u32 off, __u32 from, __u32 to, __u32 want) {
  if (!m || to > INLINE_MAX || from >= to) return to;
  if (bpf_msg_pull_data(m, off + from, off + to, 0)) return to;
  unsigned char *d = m->data, *e = m->data_end;
  for (__u32 i = 0; i < INLINE_MAX; i++) {
    if (d + i + 1 > e) break;
    if (blank(d[i]) == (int)want) return from + i;
  }
  return to;
}

// The first i in [from, to) whose byte is a quote; `to` if none, `from` if the bytes
// cannot be read (so a name that cannot be checked counts as quoted).
__noinline __s32 scan_quote(struct sk_msg_md *m, __u32 off, __u32 from, __u32 to) {
  if (!m || to > INLINE_MAX || from >= to) return to;
  if (bpf_msg_pull_data(m, off + from, off + to, 0)) return from;
  unsigned char *d = m->data, *e = m->data_end;
  for (__u32 i = 0; i < INLINE_MAX; i++) {
    if (d + i + 1 > e) break;
    if (d[i] == '"' || d[i] == '\'') return from + i;
  }
  return to;
}

// The inline command at `off`: (name start << 24) | (name length << 16) | line length; 0
// when this sendmsg ends inside it; -1 when it is not one (RESP, too long, or a name
// with a quote: Redis unquotes words, so `"FLUSH"ALL` runs FLUSHALL).
static __always_inline __s64 inline_line(struct sk_msg_md *m, __u32 off) {
  if (off >= m->size) return 0;
  if (bpf_msg_pull_data(m, off, off + 1, 0)) return -1;
  unsigned char *d = m->data, *e = m->data_end;
  if (d + 1 > e || d[0] == '*') return -1;
  __s32 nl = scan_lf(m, off);
  if (nl == -2) return 0;
  if (nl < 0 || nl >= INLINE_MAX) return -1;
  __s32 start = scan_word(m, off, 0, nl, 0);
  __s32 stop = scan_word(m, off, start, nl, 1);
  if (start < 0 || stop < start || start > 255 || stop - start > 255) return -1;
  if (scan_quote(m, off, start, stop) < stop) return -1;
  return ((__s64)start << 24) | ((__s64)(stop - start) << 16) | (nl + 1);
}

// Does the name at `off` (`len` bytes) name a command of `inline_names`?
__noinline int inline_name_listed(struct sk_msg_md *m, __u32 off, __u32 len) {
  if (!m || len == 0 || len >= NAME) return 0;
  if (bpf_msg_pull_data(m, off, off + len, 0)) return 0;
  unsigned char *d = m->data, *e = m->data_end;
  char k[NAME] = {};
  for (__u32 i = 0; i < NAME - 1; i++) {
    if (d + i + 1 > e) break;
    k[i] = upper(d[i]);
  }
  return bpf_map_lookup_elem(&inline_names, k) != 0;
}

// Is the inline line at `off` (its LF at `nl`, its name `len` bytes at its start) a first
// line the proxy's detector calls Redis? CRLF-terminated, printable, naming a command of
// `inline_names`, and not an HTTP request line (" HTTP/" anywhere: a little stricter
// than the detector's last word, on first lines only).
__noinline int redis_first_line(struct sk_msg_md *m, __u32 off, __u32 nl, __u32 len) {
  if (!m || nl == 0 || nl >= INLINE_MAX) return 0;
  if (bpf_msg_pull_data(m, off + nl - 1, off + nl, 0)) return 0;
  unsigned char *d = m->data, *e = m->data_end;
  if (d + 1 > e || d[0] != '\r') return 0;
  // The line before its CR, exactly.
  if (nl > 1) {
    if (bpf_msg_pull_data(m, off, off + nl - 1, 0)) return 0;
    d = m->data;
    e = m->data_end;
    for (__u32 i = 0; i < INLINE_MAX; i++) {
      if (d + i + 1 > e) break;
      if (d[i] < 0x20 || d[i] > 0x7e) return 0;
      if (d + i + 6 <= e && d[i] == ' ' && d[i + 1] == 'H' && d[i + 2] == 'T' &&
          d[i + 3] == 'T' && d[i + 4] == 'P' && d[i + 5] == '/')
        return 0;
    }
  }
  return inline_name_listed(m, off, len);
}

// Report a refusal (a command's name upper-cased, empty when too long to keep).
// A message's local and remote addresses, 16 bytes each.
static __always_inline void ends(struct sk_msg_md *m, struct ip *local, struct ip *remote) {
  // Every address field read, straight, before any branch uses one (see CTX).
  __u32 l4 = CTX(m->local_ip4), r4 = CTX(m->remote_ip4), family = CTX(m->family);
  struct ip l6 = { .w = { CTX(m->local_ip6[0]), CTX(m->local_ip6[1]), CTX(m->local_ip6[2]), CTX(m->local_ip6[3]) } };
  struct ip r6 = { .w = { CTX(m->remote_ip6[0]), CTX(m->remote_ip6[1]), CTX(m->remote_ip6[2]), CTX(m->remote_ip6[3]) } };
  *local = family == AF_INET ? v4(l4) : l6;
  *remote = family == AF_INET ? v4(r4) : r6;
}

static __always_inline void report(struct sk_msg_md *m, __u32 table, __u32 kind, char *name) {
  struct refusal *r = bpf_ringbuf_reserve(&refusals, sizeof(*r), 0);
  if (!r) {
    // The agent is behind: the report is lost, and counted.
    count(LOST, 1);
    return;
  }
  ends(m, &r->client_ip, &r->server_ip);
  r->client_port = m->local_port;
  r->server_port = bpf_ntohl(m->remote_port);
  r->table = table;
  r->kind = kind;
  if (name) __builtin_memcpy(r->name, name, NAME);
  else __builtin_memset(r->name, 0, NAME);
  bpf_ringbuf_submit(r, 0);
}

// The verdict of the command named by the `len` bytes at `off`: bit 0 set when refused;
// bit 1 when the command is MULTI, bit 2 when it is EXEC or DISCARD (a transaction's end).
// `run` says where it stands: RUN_START, it begins the program run; RUN_DENY, the run's
// verdict so far is "refused". A refused command is reported when it starts its run:
// one that ends a run of allowed commands is decided again as the first of the next.
// An allowed one the table marks for reporting is reported unless it ends a refused run,
// which decides it again too. Global, like `header` (and so at most five arguments).
#define RUN_START 1
#define RUN_DENY 2
__noinline __u32 judge(struct sk_msg_md *m, struct command *k, __u32 run);

__noinline __u32 decide(struct sk_msg_md *m, __u32 table, __u32 run, __u32 off, __u32 len) {
  if (!m) return 1;
  struct command k = { .table = table };
  if (len < NAME) {
    if (bpf_msg_pull_data(m, off, off + len, 0)) return 1;
    unsigned char *d = m->data, *e = m->data_end;
    for (int i = 0; i < NAME - 1; i++) {
      if (i >= len || d + i + 1 > e) break;
      k.name[i] = upper(d[i]);
    }
  }
  return judge(m, &k, run);
}

// The verdict of the command `k` names (upper case; empty: longer than NAME), as for
// `decide`.
__noinline __u32 judge(struct sk_msg_md *m, struct command *k, __u32 run) {
  if (!m || !k) return 1;
  __u32 refused = 1, reported = 0, tx = 0, table = k->table;
  if (k->name[0]) {
    __u64 w0;
    __builtin_memcpy(&w0, k->name, sizeof(w0));
    // "MULTI", "EXEC", "DISCARD" with the rest of the name zero (little-endian words).
    if (w0 == 0x49544c554dULL) tx = 2;
    else if (w0 == 0x43455845ULL || w0 == 0x44524143534944ULL) tx = 4;
    __u32 *v = bpf_map_lookup_elem(&verdicts, k);
    if (v) {
      refused = *v != 1 && *v != 3;
      reported = *v == 3;
      goto out;
    }
  }
  struct command other = { .table = table };
  __u32 *v = bpf_map_lookup_elem(&verdicts, &other);
  refused = !v || (*v != 1 && *v != 3);
  reported = v && *v == 3;
out:
  if (refused && (run & RUN_START)) report(m, table, 0, k->name);
  if (reported && (run & RUN_START || !(run & RUN_DENY))) {
    // Reported once per run of the same command on a connection (a client repeating
    // one unlisted command would otherwise flood the ring); counted every time.
    count(REPORTED, 1);
    __u64 w[3];
    __builtin_memcpy(w, k->name, sizeof(w));
    __u64 tag = (w[0] * 0x9e3779b97f4a7c15ULL) ^ (w[1] * 0xc2b2ae3d27d4eb4fULL) ^ w[2];
    struct bpf_sock *sk = m->sk;
    struct stream *c = sk ? bpf_sk_storage_get(&streams, sk, 0, 0) : 0;
    if (!c || c->last_report != tag) {
      if (c) c->last_report = tag;
      report(m, table, 4, k->name);
    }
  }
  return refused | tx;
}

// Does the table pass a stream that is not RESP (reporting it)? Global, so that the
// framing loop's many ways into `malformed` do not each verify it again.
__noinline int raw_passes(struct sk_msg_md *m, __u32 table) {
  if (!m) return 0;
  struct command k = { .table = table };
  k.name[NAME - 1] = 1;
  __u32 *v = bpf_map_lookup_elem(&verdicts, &k);
  return v && *v == 3;
}

// What a refused command becomes: a script the server answers with Redis's own refusal,
// so the client reads it in order, after the replies of the commands before it (the
// proxy's wording; the event says which command and rule).
// In .rodata (a string literal's own section would not load).
const volatile char REFUSAL[] = "*3\r\n$4\r\nEVAL\r\n$82\r\n"
    "return redis.error_reply('NOPERM bulkhead: this command is not allowed by policy')"
    "\r\n$1\r\n0\r\n";
#define REFUSAL_LEN (sizeof(REFUSAL) - 1)

// Inside a transaction the refusal must make Redis discard it, as its own ACL refusal
// does: a command Redis does not know is refused while queued and flags the
// transaction, so EXEC answers EXECABORT (the EVAL above would be queued and run).
const volatile char REFUSAL_TX[] = "*1\r\n$26\r\nbulkhead-refused-by-policy\r\n";
#define REFUSAL_TX_LEN (sizeof(REFUSAL_TX) - 1)

// Replace the first `len` bytes (one whole refused command) by REFUSAL, or REFUSAL_TX
// inside a transaction. The refusal's length when done, 0 when not.
__noinline __u32 refuse(struct sk_msg_md *m, __u32 len, __u32 tx) {
  if (!m) return 0;
  __u32 n = tx ? REFUSAL_TX_LEN : REFUSAL_LEN;
  if (bpf_msg_push_data(m, 0, n, 0)) return 0;
  if (bpf_msg_pop_data(m, n, len, 0)) return 0;
  if (bpf_msg_pull_data(m, 0, n, 0)) return 0;
  unsigned char *d = m->data, *e = m->data_end;
  if (tx) {
    if (d + REFUSAL_TX_LEN > e) return 0;
    for (__u32 i = 0; i < REFUSAL_TX_LEN; i++) d[i] = REFUSAL_TX[i];
    return REFUSAL_TX_LEN;
  }
  if (d + REFUSAL_LEN > e) return 0;
  for (__u32 i = 0; i < REFUSAL_LEN; i++) d[i] = REFUSAL[i];
  return REFUSAL_LEN;
}

static __always_inline int send(struct sk_msg_md *m, struct stream *c, struct tuple *peer, __u32 deny, __u32 bytes) {
  bpf_msg_apply_bytes(m, bytes);
  if (deny) return SK_DROP;
  // Bytes held back go whole into the server's socket, or this kernel drops what the
  // verdict does not cover (it frees a held message after its first redirect): part of
  // them goes on to TCP, which takes the rest too.
  if (c->held_run && bytes < m->size) c->via_tcp = 1;
  // The server on this node: straight into its socket. Elsewhere (no such socket, the
  // redirect is not set up): on to TCP, which may send them (see `guard`). Once bytes
  // went on to TCP (a first write before the server's end of the handshake was done),
  // the rest follow them: the server's socket reads what comes straight in before what
  // TCP queued, so the two ways would reorder the stream.
  if (!c->via_tcp && bpf_msg_redirect_hash(m, &socks, peer, BPF_F_INGRESS) == SK_PASS) return SK_PASS;
  c->via_tcp = 1;
  c->approved_end += bytes;
  return SK_PASS;
}

// Only what the program read leaves. Bytes written while the connection was still being
// set up (a blocking send after a non-blocking connect, TCP Fast Open data) went to TCP
// before the socket joined the sockhash, unread. `frame` passes bytes on to TCP at the
// end of its send queue (write_seq) and counts them in `approved_end`; `guard` lets no
// segment leave with a byte past it. Send-queue bytes the program did not pass taint the
// connection: nothing more leaves, and its writes fail.
struct tcp_sock { __u32 write_seq; } __attribute__((preserve_access_index));

static __always_inline int unread_bytes(struct bpf_sock *sk, struct stream *c) {
  if (!c->established || c->tainted) return 1;
  struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
  if (!tp) return 1;
  __u32 queued = tp->write_seq;
  if ((__s32)(queued - c->approved_end) > 0) return 1;
  // Behind: a push that failed. Approve no more than TCP holds.
  c->approved_end = queued;
  return 0;
}

// Cut inside a header. A write that ends inside a header passes it on (holding it back,
// corked, until the rest comes would be the way to wait, but this kernel appends the
// next write at a stale place in a message corked after part of its write was passed:
// the stream came out garbled, and a client writing a long pipeline in pieces lost its
// connection) and its bytes are kept here, so that the next write's run reads the header
// to its end (`resume`). A command's headers, and the start of its name, so pass before
// its verdict is known: when it is refused, `resume` spoils a byte of its name in the
// next write (which has one: the framing loop decides a command as soon as its name is
// whole), and Redis, which runs nothing before a command's last byte, answers an
// unknown command. `kind`: 1, an argument's header; 2, a command's. -1: not kept (an
// inline command's start, which is held back as before).
__noinline int save_partial(struct sk_msg_md *m, __u32 off, __u32 kind) {
  if (!m) return -1;
  struct bpf_sock *sk = m->sk;
  if (!sk) return -1;
  struct stream *c = bpf_sk_storage_get(&streams, sk, 0, 0);
  if (!c) return -1;
  __u32 size = m->size;
  if (off >= size) return -1;
  __u32 n = size - off, keep = n < PBUF ? n : PBUF;
  if (bpf_msg_pull_data(m, off, off + keep, 0)) return -1;
  unsigned char *d = m->data, *e = m->data_end;
  if (d + 1 > e || d[0] != (kind == 1 ? '$' : '*')) return -1;
  for (__u32 i = 0; i < PBUF; i++) {
    if (i >= keep || d + i + 1 > e) break;
    c->pbuf[i] = d[i];
  }
  c->plen = keep;
  c->ptotal = n;
  c->pkind = kind;
  return 0;
}

// An index into a `struct hbuf`, masked where the verifier sees it (clang would drop a
// mask it can prove redundant and index from a pointer computed before the bound check).
static __always_inline __u32 hidx(__u32 j) {
  barrier_var(j);
  return j & (PBUF + TAIL - 1);
}

// What `resume` reads: the bytes kept, then the start of the write. In a map: the
// stack (512 bytes for `frame` and the functions it calls) has no room for it.
struct hbuf { unsigned char b[PBUF + TAIL]; };
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, struct hbuf); } scratch SEC(".maps");

// A header "<ch><digits>\r\n" at `at` of `h` (`len` bytes read): as `header`. Global,
// like it: `resume` goes on from one state, not from one per way the header can end.
__noinline __s64 buf_header(struct hbuf *h, __u32 len, __u32 at, __u32 ch) {
  if (!h) return -1;
  if (at >= len) return 0;
  if (at >= PBUF + TAIL || h->b[hidx(at)] != ch) return -1;
  __s64 n = 0;
  for (__u32 i = 1; i < 14; i++) {
    __u32 j = at + i;
    if (j + 1 >= len) return 0;
    if (j + 1 >= PBUF + TAIL) return -1;
    unsigned char x = h->b[hidx(j)];
    if (x == '\r') {
      if (h->b[hidx(j + 1)] != '\n' || i == 1) return -1;
      return (n << 8) | (i + 2);
    }
    if (x < '0' || x > '9') return -1;
    n = n * 10 + (x - '0');
  }
  return -1;
}

// Spoil the byte at `at` (a refused command's name), so that Redis does not know it.
__noinline int spoil(struct sk_msg_md *m, __u32 at) {
  if (!m) return -1;
  if (bpf_msg_pull_data(m, at, at + 1, 0)) return -1;
  unsigned char *d = m->data, *e = m->data_end;
  if (d + 1 > e) return -1;
  d[0] = '#';
  return 0;
}

// The header cut by the end of the last write, read to its end from the start of this
// one (see `save_partial`): how many bytes of this write it takes (the framing goes on
// from there); -2 when this write ends inside it too (it is kept as well, and passes);
// -1 when it is not a header.
__noinline __s32 resume(struct sk_msg_md *m, __u32 table) {
  if (!m) return -1;
  struct bpf_sock *sk = m->sk;
  if (!sk) return -1;
  struct stream *c = bpf_sk_storage_get(&streams, sk, 0, 0);
  if (!c) return -1;
  __u32 kind = c->pkind, plen = c->plen, ptotal = c->ptotal, size = m->size;
  c->pkind = 0;
  if (plen > PBUF || ptotal < plen) return -1;
  __u32 zero = 0;
  struct hbuf *hb = bpf_map_lookup_elem(&scratch, &zero);
  if (!hb) return -1;
  unsigned char *b = hb->b;
  __builtin_memcpy(b, c->pbuf, PBUF);
  __u32 blen = plen;
  // Past a long name's start (ptotal > plen) this write does not follow the bytes kept:
  // the headers are among them, and the name is not read.
  if (ptotal == plen) {
    __u32 tail = size < TAIL ? size : TAIL;
    if (bpf_msg_pull_data(m, 0, tail, 0)) return -1;
    unsigned char *d = m->data, *e = m->data_end;
    for (__u32 i = 0; i < TAIL; i++) {
      __u32 j = plen + i;
      if (d + i + 1 > e || j >= PBUF + TAIL) break;
      b[hidx(j)] = d[i];
      blen = j + 1;
    }
  }
  __u32 at = 0, n = 1;
  if (kind == 2) {
    __s64 h = buf_header(hb, blen, 0, '*');
    if (h < 0) return -1;
    if (h == 0) goto more;
    n = h >> 8;
    at = h & 0xff;
    if (!n) return -1;
  }
  __s64 h = buf_header(hb, blen, at, '$');
  if (h < 0) return -1;
  if (h == 0) goto more;
  __u32 len = h >> 8;
  at += h & 0xff;
  if (kind == 1) {
    if (at <= ptotal) return -1;
    c->args--;
    c->bulk = len + 2;
    return at - ptotal;
  }
  if (len > 4096) return -1;
  struct command k = { .table = table };
  if (len < NAME) {
    if (at + len > blen) goto more;
    for (__u32 i = 0; i < NAME - 1; i++) {
      __u32 j = at + i;
      if (i >= len || j >= PBUF + TAIL) break;
      k.name[i] = upper(b[hidx(j)]);
    }
  }
  // Decided as soon as its name is whole: a byte of it is in this write.
  if (at + len <= ptotal) return -1;
  __u32 r = judge(m, &k, RUN_START), d = r & 1;
  track_tx(c, r);
  count(d ? REFUSED : ALLOWED, 1);
  if (d && spoil(m, at > ptotal ? at - ptotal : 0)) return -1;
  // Allowed, or spoiled: the rest of the command goes.
  c->deny = 0;
  c->seen = 1;
  c->open = 1;
  c->args = n - 1;
  if (at >= ptotal) {
    c->bulk = len + 2;
    return at - ptotal;
  }
  c->bulk = len + 2 - (ptotal - at);
  return 0;
more:
  if (ptotal != plen || plen + size > PBUF) return -1;
  __builtin_memcpy(c->pbuf, b, PBUF);
  c->plen = plen + size;
  c->ptotal = plen + size;
  c->pkind = kind;
  return -2;
}

// The framing loop's ways out, as global functions: the verifier checks each once, not
// once for every state the loop can end in. `off`: where the run's commands end;
// `deny`: their verdict; `commands`: how many began in it.
static __always_inline void peer_of(struct sk_msg_md *m, struct tuple *peer) {
  struct ip local, far;
  ends(m, &local, &far);
  *peer = (struct tuple){ .lip = far, .rip = local, .lport = bpf_ntohl(m->remote_port), .rport = m->local_port };
}

// What the run's tail needs again (a global function is verified on its own, with
// nothing known of its caller's values): the stream's state and the peer's key.
static __always_inline struct stream *stream_of(struct sk_msg_md *m, struct tuple *peer) {
  if (!m || !m->sk) return 0;
  peer_of(m, peer);
  return bpf_sk_storage_get(&streams, m->sk, 0, 0);
}

// The run's commands end at `off`, or the write ended inside a bulk string.
__noinline int finish(struct sk_msg_md *m, __u32 off, __u32 deny, __u32 commands) {
  struct tuple peer;
  struct stream *c = stream_of(m, &peer);
  if (!c) return SK_DROP;
  __u32 size = m->size;
  // The write ended in the CRLF after a name: the next one starts with the rest of it.
  if (off > size) {
    c->bulk = off - size;
    off = size;
  }
  count(deny ? REFUSED : ALLOWED, commands);
  // A whole refused command gets the server's refusal in order. One that goes on in the
  // next write gets its name spoiled (see "Cut inside a header"), and the rest of it goes.
  if (deny && commands) {
    if (!c->open && !c->bulk) {
      __u32 n = refuse(m, off, c->tx_refusal);
      if (n) return send(m, c, &peer, 0, n);
    }
    if (!spoil(m, c->name_at)) {
      c->deny = 0;
      return send(m, c, &peer, 0, off);
    }
  }
  return send(m, c, &peer, deny, off);
}

// The write ended inside a header.
__noinline int cut_here(struct sk_msg_md *m, __u32 off, __u32 deny, __u32 commands) {
  struct tuple peer;
  struct stream *c = stream_of(m, &peer);
  if (!c) return SK_DROP;
  __u32 size = m->size;
  // This sendmsg ends inside a header: kept, and passed with what comes before it
  // (see "Cut inside a header"). Inside a refused command begun in this run: its name
  // is spoiled first.
  if (c->open && deny) {
    if (!commands || spoil(m, c->name_at)) return send(m, c, &peer, 1, size);
    count(REFUSED, commands);
    c->deny = 0;
    if (!save_partial(m, off, 1)) return send(m, c, &peer, 0, size);
    return send(m, c, &peer, 0, off);
  }
  if (!save_partial(m, off, c->open ? 1 : 2)) {
    count(deny ? REFUSED : ALLOWED, commands);
    return send(m, c, &peer, 0, size);
  }
  // An inline command's start: what comes before it goes now; with nothing before it,
  // wait for more bytes (a client always completes its command).
  if (off > 0) {
    count(deny ? REFUSED : ALLOWED, commands);
    return send(m, c, &peer, deny, off);
  }
  bpf_msg_cork_bytes(m, size + 1);
  c->held = 1;
  return SK_PASS;
}

SEC("sk_msg")
int frame(struct sk_msg_md *m) {
  struct ip local, far;
  ends(m, &local, &far);
  struct tuple peer = { .lip = far, .rip = local, .lport = bpf_ntohl(m->remote_port), .rport = m->local_port };
  struct addr remote = { .ip = far, .port = bpf_ntohl(m->remote_port) };
  if (!bpf_map_lookup_elem(&servers, &remote)) {
    // The server's replies: not decided, and sent straight to a local client.
    count(REPLIES, 1);
    bpf_msg_redirect_hash(m, &socks, &peer, BPF_F_INGRESS);
    return SK_PASS;
  }
  struct bpf_sock *sk = m->sk;
  if (!sk) return SK_DROP;
  struct stream *c = bpf_sk_storage_get(&streams, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  if (!c) return SK_DROP;
  c->held_run = c->held;
  c->held = 0;
  if (unread_bytes(sk, c)) {
    count(UNREAD, 1);
    if (!c->tainted) { c->tainted = 1; report(m, 0, 6, 0); }
    return SK_DROP;
  }
  // The table, looked up on every write (three hash lookups): a policy change, a
  // quarantine or a removed workload applies to live connections from their next write.
  __u32 *tp = table_for(&local, &far, remote.port);
  if (!tp) {
    count(NO_TABLE, 1);
    if (!c->reported) { c->reported = 1; report(m, 0, 2, 0); }
    return SK_DROP;
  }
  __u32 table = *tp;
  if (c->raw) {
    // A stream let through unframed: still, as long as its table says so.
    if (raw_passes(m, table)) return send(m, c, &peer, 0, m->size);
    count(MALFORMED, 1);
    return SK_DROP;
  }
  // One verdict per run of commands that share it; the run ends at a command with the
  // other verdict or where this sendmsg ends, and the kernel runs us again on the rest.
  if (c->pkind) {
    // The end of a header the last write cut: passed on its own (the kernel runs us
    // again on what follows it).
    __s32 r = resume(m, table);
    if (r == -2) return send(m, c, &peer, 0, m->size);
    if (r < 0) goto malformed;
    if (r > 0) return send(m, c, &peer, 0, r);
  }
  __u32 size = m->size, off = 0, deny = c->deny, commands = 0;
  c->tx_refusal = 0;
  for (int t = 0; t < MAX_HEADERS; t++) {
    if (c->bulk) {
      __u32 take = c->bulk < size - off ? c->bulk : size - off;
      c->bulk -= take;
      off += take;
      if (c->bulk) break;
    }
    if (c->open && !c->args) c->open = 0;
    // A refused command begun in this run ends the run: it is rewritten on its own.
    if (!c->open && deny && commands) break;
    if (off >= size) break;
    __u32 len;
    if (c->open) {
      __s64 h = header(m, off, '$');
      if (h < 0) goto malformed;
      if (h == 0) goto cut;
      len = h >> 8;
      off += h & 0xff;
      c->args--;
      c->bulk = len + 2;
      continue;
    }
    // A command: "*N\r\n$L\r\nNAME\r\n..."
    __s64 r1 = header(m, off, '*');
    if (r1 < 0) {
      // Or an inline one (a line of words): decided alone, at the start of a run (the
      // kernel runs us again on what follows the commands before it).
      if (off == 0) goto inline_command;
      break;
    }
    if (r1 > 0 && (r1 >> 8) == 0) goto malformed;
    if (r1 == 0) goto cut;
    __u32 n = r1 >> 8, h1 = r1 & 0xff;
    __s64 r2 = header(m, off + h1, '$');
    if (r2 < 0 || (r2 >> 8) > 4096) goto malformed;
    if (r2 == 0) goto cut;
    __u32 h2 = r2 & 0xff;
    len = r2 >> 8;
    // Decided once the name is whole (see "Cut inside a header").
    if (off + h1 + h2 + len > size) goto cut;
    // A refused command always starts a run: it is reported from there.
    __u32 r = decide(m, table, (off == 0 ? RUN_START : 0) | (deny ? RUN_DENY : 0), off + h1 + h2, len);
    __u32 d = r & 1;
    if (off > 0 && d != deny) break;
    // A refused command inside a transaction is rewritten for it (see REFUSAL_TX).
    c->tx_refusal = (c->tx_refusal | (d & c->multi)) & 1;
    track_tx(c, r);
    deny = d;
    commands++;
    c->deny = d;
    c->seen = 1;
    c->open = 1;
    c->args = n - 1;
    c->name_at = off + h1 + h2;
    off += h1 + h2 + len + 2;
  }
  if (off == 0) goto malformed;
  return finish(m, off, deny, commands) & 1;
inline_command: {
    __s64 li = inline_line(m, 0);
    if (li < 0) goto malformed;
    if (li == 0) goto cut;
    __u32 line = li & 0xffff, nlen = (li >> 16) & 0xff, at = (li >> 24) & 0xff;
    // A connection's first line must look like Redis to the proxy's detector too.
    if (!c->seen && (at || !redis_first_line(m, 0, line - 1, nlen))) goto malformed;
    // An empty line: Redis ignores it (so does the proxy).
    __u32 r = nlen ? decide(m, table, RUN_START, at, nlen) : 0;
    __u32 d = r & 1, tx = d && c->multi;
    track_tx(c, r);
    c->seen = 1;
    c->deny = d;
    c->open = 0;
    c->args = 0;
    count(d ? REFUSED : ALLOWED, 1);
    if (d) {
      __u32 n = refuse(m, line, tx);
      if (n) return send(m, c, &peer, 0, n);
    }
    return send(m, c, &peer, d, line);
  }
cut:
  return cut_here(m, off, deny, commands) & 1;
malformed: {
    // Not RESP, nor an inline command this program can read: refused, or (a Monitor
    // group's) passed unframed from here on, and reported once.
    __u32 raw = raw_passes(m, table);
    c->raw = raw;
    count(raw ? REPORTED : MALFORMED, 1);
    if (!c->reported) { c->reported = 1; report(m, table, raw ? 5 : 1, 0); }
    if (raw) return send(m, c, &peer, 0, size);
    return SK_DROP;
  }
}

// The server's node: a SYN to a server on the path that carries a valid tag (this
// epoch or the one before) not seen lately gets the mark in `vouch[1]`; nftables decide
// what a marked SYN may skip. Everything else passes unmarked, to the proxy.
SEC("tc")
int vouched(struct __sk_buff *skb) {
  __u32 one = 1;
  __u64 *cfg = bpf_map_lookup_elem(&vouch, &one);
  if (!cfg || !cfg[0]) return TC_ACT_OK;
  void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end) return TC_ACT_OK;
  struct ip client, server;
  __u32 l4 = sizeof(*eth);
  if (eth->h_proto == bpf_htons(ETH_P_IP)) {
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end || ip->protocol != 6 || ip->ihl != 5) return TC_ACT_OK;
    client = v4(ip->saddr);
    server = v4(ip->daddr);
    l4 += sizeof(*ip);
  } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end || ip->nexthdr != 6) return TC_ACT_OK;
    __builtin_memcpy(&client, &ip->saddr, 16);
    __builtin_memcpy(&server, &ip->daddr, 16);
    l4 += sizeof(*ip);
  } else {
    return TC_ACT_OK;
  }
  // The flags byte straight from the packet: most packets are not SYNs and stop here.
  __u8 *flags = data + l4 + 13;
  if ((void *)(flags + 1) > end || (*flags & 0x12) != 0x02) return TC_ACT_OK;
  struct tcphdr th;
  if (bpf_skb_load_bytes(skb, l4, &th, sizeof(th))) return TC_ACT_OK;
  struct addr to = { .ip = server, .port = bpf_ntohs(th.dest) };
  if (!bpf_map_lookup_elem(&servers, &to)) return TC_ACT_OK;
  // The options, copied out and walked (a 64-byte buffer: any read the walk makes stays
  // in it, which the verifier can see).
  __u32 olen = th.doff * 4 - sizeof(th);
  __u8 opts[64] = {};
  if (olen > 40 || olen < VOUCH_LEN || bpf_skb_load_bytes(skb, l4 + sizeof(th), opts, olen)) {
    count(UNVERIFIED, 1);
    return TC_ACT_OK;
  }
  __u32 i = 0;
#pragma unroll
  for (int n = 0; n < 10; n++) {
    if (i >= olen || i > 38) break;
    __u8 kind = opts[i];
    if (kind == 0) break;
    if (kind == 1) { i++; continue; }
    __u8 len = opts[i + 1];
    if (len < 2) break;
    if (kind == VOUCH_KIND && len == VOUCH_LEN && i + VOUCH_LEN <= olen) {
      struct vouch_opt o;
      __builtin_memcpy(&o, &opts[i], sizeof(o));
      if (o.exid != bpf_htons(VOUCH_EXID)) break;
      __u32 ports = ((__u32)th.source << 16) | th.dest;
      __u64 now = epoch_now();
      if (o.tag != vouch_tag(&client, &server, ports, th.seq, now) &&
          o.tag != vouch_tag(&client, &server, ports, th.seq, now - 1))
        break;
      __u64 *when = bpf_map_lookup_elem(&vouched_tags, &o.tag);
      if (when && now - *when <= 1) {
        count(REPLAYED, 1);
        return TC_ACT_OK;
      }
      bpf_map_update_elem(&vouched_tags, &o.tag, &now, BPF_ANY);
      skb->mark = (__u32)cfg[0];
      count(VERIFIED, 1);
      return TC_ACT_OK;
    }
    i += len;
  }
  count(UNVERIFIED, 1);
  return TC_ACT_OK;
}

// Every segment a guarded client socket sends (see `unread_bytes`): one whose bytes
// reach past what `frame` passed is dropped, and so is data in a SYN (TCP Fast Open:
// sent before the socket could join the sockhash) and urgent data. TCP keeps them queued, retrying; the
// connection carries nothing more. Other sockets pass at the cost of one lookup.
SEC("cgroup_skb/egress")
int guard(struct __sk_buff *skb) {
  struct bpf_sock *sk = skb->sk;
  if (!sk) return 1;
  sk = bpf_sk_fullsock(sk);
  if (!sk) return 1;
  struct stream *c = bpf_sk_storage_get(&streams, sk, 0, 0);
  if (!c || !c->watched) return 1;
  __u8 first;
  if (bpf_skb_load_bytes(skb, 0, &first, 1)) return 0;
  struct refusal r = {};
  __u32 l4;
  if (first >> 4 == 4) {
    struct iphdr ip;
    if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) || ip.protocol != 6) return 0;
    r.client_ip = v4(ip.saddr);
    r.server_ip = v4(ip.daddr);
    l4 = ip.ihl * 4;
  } else if (first >> 4 == 6) {
    // A TCP socket's segments carry no extension headers unless it asked for them: a
    // segment whose TCP header cannot be found here does not leave.
    struct ipv6hdr ip;
    if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) || ip.nexthdr != 6) return 0;
    __builtin_memcpy(&r.client_ip, &ip.saddr, 16);
    __builtin_memcpy(&r.server_ip, &ip.daddr, 16);
    l4 = sizeof(ip);
  } else {
    return 0;
  }
  struct tcphdr th;
  if (l4 > 60 || bpf_skb_load_bytes(skb, l4, &th, sizeof(th))) return 0;
  __u32 headers = l4 + th.doff * 4;
  if (skb->len <= headers) return 1;
  __u32 end = bpf_ntohl(th.seq) + (skb->len - headers);
  // Urgent data (`send(MSG_OOB)`) is taken out of the stream the server reads, though the
  // program read it in the stream: the two would part. It never leaves either.
  if (!th.syn && !th.urg && c->established && !c->tainted && (__s32)(end - c->approved_end) <= 0)
    return 1;
  count(UNREAD, 1);
  if (!c->tainted) {
    c->tainted = 1;
    struct refusal *e = bpf_ringbuf_reserve(&refusals, sizeof(*e), 0);
    if (e) {
      __builtin_memcpy(e, &r, sizeof(r));
      e->client_port = bpf_ntohs(th.source);
      e->server_port = bpf_ntohs(th.dest);
      e->kind = 6;
      bpf_ringbuf_submit(e, 0);
    } else {
      count(LOST, 1);
    }
  }
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
