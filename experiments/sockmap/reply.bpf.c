// Replies in the kernel: a user-space relay carries the client's requests to the
// server; the server's replies skip the relay (sk_msg on the server's socket sends them
// straight out of the relay's client-side socket).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct key { __u32 lip, rip, lport, rport; };
// Server sockets (sockops adds them), by their own tuple.
struct { __uint(type, BPF_MAP_TYPE_SOCKHASH); __uint(max_entries, 65536); __type(key, struct key); __type(value, __u64); } servers SEC(".maps");
// The relay's client-side sockets, by slot.
struct { __uint(type, BPF_MAP_TYPE_SOCKMAP); __uint(max_entries, 65536); __type(key, __u32); __type(value, __u64); } clients SEC(".maps");
// Server socket tuple -> slot of the client-side socket its replies go out of.
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 65536); __type(key, struct key); __type(value, __u32); } reply_to SEC(".maps");

#define PORT 6390

SEC("sockops")
int ops(struct bpf_sock_ops *s) {
  if (s->family != 2 || s->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB || s->local_port != PORT) return 0;
  struct key k = { .lip = s->local_ip4, .rip = s->remote_ip4, .lport = s->local_port, .rport = bpf_ntohl(s->remote_port) };
  bpf_sock_hash_update(s, &servers, &k, BPF_NOEXIST);
  return 0;
}

SEC("sk_msg")
int verdict(struct sk_msg_md *m) {
  struct key k = { .lip = m->local_ip4, .rip = m->remote_ip4, .lport = m->local_port, .rport = bpf_ntohl(m->remote_port) };
  __u32 *slot = bpf_map_lookup_elem(&reply_to, &k);
  if (!slot) return SK_PASS;
  return bpf_msg_redirect_map(m, &clients, *slot, 0);
}
char LICENSE[] SEC("license") = "GPL";
