#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct key { __u32 sip, dip; __u32 sport, dport; };
struct { __uint(type, BPF_MAP_TYPE_SOCKHASH); __uint(max_entries, 65536); __type(key, struct key); __type(value, __u64); } socks SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4); __type(key, __u32); __type(value, __u64); } stats SEC(".maps");

#define PORT 6390

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

static __always_inline void count(__u32 i) { __u64 *v = bpf_map_lookup_elem(&stats, &i); if (v) __sync_fetch_and_add(v, 1); }

SEC("sk_msg")
int verdict(struct sk_msg_md *m) {
  struct key k = { .sip = m->remote_ip4, .dip = m->local_ip4, .sport = bpf_ntohl(m->remote_port), .dport = m->local_port };
  if (k.sport == PORT) {
    /* client -> server: the command name is the first bulk string of "*N\r\n$L\r\nNAME\r\n" */
    __u32 end = m->size < 64 ? m->size : 64;
    if (bpf_msg_pull_data(m, 0, end, 0)) { count(3); return SK_PASS; }
    unsigned char *d = m->data, *e = m->data_end;
    if (d + 16 > e) { count(3); return SK_PASS; }
    if (d[0] != '*') { count(3); return SK_PASS; }
    /* skip "*N\r\n" */
    int i = 1;
    #pragma unroll
    for (int j = 0; j < 4; j++) { if (d[i] == '\r') break; i++; }
    if (d + i + 12 > e) return SK_PASS;
    if (d[i] != '\r' || d[i+1] != '\n' || d[i+2] != '$') { count(3); return SK_PASS; }
    /* FLUSHALL is denied: pass (to nowhere) */
    unsigned char *n = d + i + 3;
    if (n + 12 > e) return SK_PASS;
    if (n[0] == '8' && (n[3] | 0x20) == 'f' && (n[4] | 0x20) == 'l' && (n[5] | 0x20) == 'u') { count(2); return SK_DROP; }
    count(0);
  } else count(1);
  return bpf_msg_redirect_hash(m, &socks, &k, BPF_F_INGRESS);
}
char LICENSE[] SEC("license") = "GPL";
