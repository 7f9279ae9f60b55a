// RESP framing in sk_msg: every command of a client's byte stream gets its own verdict,
// whatever the sendmsg boundaries (pipelines, commands split across writes, values of
// any size). Allowed commands go straight into the server socket's receive queue;
// FLUSHALL is dropped. State between sendmsg calls lives in socket storage.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct key { __u32 sip, dip; __u32 sport, dport; };
struct { __uint(type, BPF_MAP_TYPE_SOCKHASH); __uint(max_entries, 65536); __type(key, struct key); __type(value, __u64); } socks SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 8); __type(key, __u32); __type(value, __u64); } stats SEC(".maps");

// Where the client's stream is when a command continues into the next sendmsg.
struct cont {
  __u32 args;      // bulk strings of the current command not yet started
  __u32 bulk;      // bytes of the current bulk string (with its CRLF) still to come
  __u32 deny;      // the current command's verdict
  __u32 open;      // a command is under way
};
struct { __uint(type, BPF_MAP_TYPE_SK_STORAGE); __uint(map_flags, BPF_F_NO_PREALLOC); __type(key, int); __type(value, struct cont); } conts SEC(".maps");

#define PORT 6390
#define MAX_TOKENS 32

static __always_inline void count(__u32 i) { __u64 *v = bpf_map_lookup_elem(&stats, &i); if (v) __sync_fetch_and_add(v, 1); }

SEC("sockops")
int ops(struct bpf_sock_ops *s) {
  if (s->family != 2) return 0;
  if (s->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && s->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) return 0;
  __u32 lport = s->local_port, rport = bpf_ntohl(s->remote_port);
  if (lport != PORT && rport != PORT) return 0;
  struct key k = { .sip = s->local_ip4, .dip = s->remote_ip4, .sport = lport, .dport = rport };
  bpf_sock_hash_update(s, &socks, &k, BPF_NOEXIST);
  return 0;
}

// A header line "<c><digits>\r\n" at `off`: its number and length, 0 if not whole here,
// -1 if malformed.
static __always_inline int header(struct sk_msg_md *m, __u32 off, char c, __u32 *num) {
  __u32 end = off + 16 < m->size ? off + 16 : m->size;
  if (end <= off + 3) return 0;
  if (bpf_msg_pull_data(m, off, end, 0)) return -1;
  unsigned char *d = m->data, *e = m->data_end;
  if (d + 1 > e || d[0] != c) return -1;
  __u32 n = 0;
  #pragma unroll
  for (int i = 1; i < 14; i++) {
    if (d + i + 2 > e) return 0;
    unsigned char b = d[i];
    if (b == '\r') {
      if (d[i + 1] != '\n' || i == 1) return -1;
      *num = n;
      return i + 2;
    }
    if (b < '0' || b > '9') return -1;
    n = n * 10 + (b - '0');
  }
  return -1;
}

// Is the command at `off` (its name's bulk string, `len` bytes) refused?
static __always_inline int refused(struct sk_msg_md *m, __u32 off, __u32 len) {
  if (len != 8) return 0;
  if (bpf_msg_pull_data(m, off, off + 8, 0)) return 0;
  unsigned char *d = m->data, *e = m->data_end;
  if (d + 8 > e) return 0;
  const char *f = "FLUSHALL";
  #pragma unroll
  for (int i = 0; i < 8; i++) if ((d[i] & 0xdf) != f[i]) return 0;
  return 1;
}

static __always_inline int verdict_for(struct sk_msg_md *m, struct key *peer, __u32 deny) {
  if (deny) { count(2); return SK_DROP; }
  return bpf_msg_redirect_hash(m, &socks, peer, BPF_F_INGRESS);
}

SEC("sk_msg")
int verdict(struct sk_msg_md *m) {
  struct key peer = { .sip = m->remote_ip4, .dip = m->local_ip4, .sport = bpf_ntohl(m->remote_port), .dport = m->local_port };
  if (peer.sport != PORT) { count(1); return bpf_msg_redirect_hash(m, &socks, &peer, BPF_F_INGRESS); }
  struct bpf_sock *sk = m->sk;
  if (!sk) return SK_DROP;
  struct cont *c = bpf_sk_storage_get(&conts, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  if (!c) return SK_DROP;
  // One verdict per run of commands that share it: a pipeline of allowed commands is
  // one program run. The run ends at a command with the other verdict, or where this
  // sendmsg ends; bpf_msg_apply_bytes gives the run its bytes and the kernel runs the
  // program again on what follows.
  __u32 size = m->size, off = 0, deny = c->deny;
  for (int t = 0; t < MAX_TOKENS; t++) {
    if (c->bulk) {
      __u32 take = c->bulk < size - off ? c->bulk : size - off;
      c->bulk -= take;
      off += take;
      if (c->bulk) break;
    }
    if (c->open && !c->args) c->open = 0;
    if (off >= size) break;
    __u32 len;
    if (c->open) {
      int h = header(m, off, '$', &len);
      if (h < 0) { count(3); return SK_DROP; }
      if (h == 0) goto split;
      off += h;
      c->args--;
      c->bulk = len + 2;
      continue;
    }
    // A command starts: "*N\r\n$L\r\nNAME\r\n..."
    __u32 nargs;
    int h1 = header(m, off, '*', &nargs);
    if (h1 < 0 || (h1 > 0 && nargs == 0)) { count(3); return SK_DROP; } // not RESP: refused
    if (h1 == 0) goto split;
    int h2 = header(m, off + h1, '$', &len);
    if (h2 < 0 || len > 64) { count(3); return SK_DROP; }
    if (h2 == 0 || off + h1 + h2 + len + 2 > size) goto split;
    __u32 d = refused(m, off + h1 + h2, len);
    count(d ? 4 : 0);
    if (off > 0 && d != deny) break; // the run ends before this command
    deny = d;
    c->deny = d;
    c->open = 1;
    c->args = nargs - 1;
    off += h1 + h2 + len + 2;
  }
  if (off == 0) { count(3); return SK_DROP; }
  bpf_msg_apply_bytes(m, off < size ? off : size);
  return verdict_for(m, &peer, deny);
split:
  // A header cut by the end of this sendmsg: the bytes before it go now; with none,
  // wait for one more byte (the client always completes its command).
  if (off > 0) {
    bpf_msg_apply_bytes(m, off);
    return verdict_for(m, &peer, deny);
  }
  bpf_msg_cork_bytes(m, size + 1);
  return SK_PASS;
}
char LICENSE[] SEC("license") = "GPL";
