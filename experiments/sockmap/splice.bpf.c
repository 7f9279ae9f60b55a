#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct { __uint(type, BPF_MAP_TYPE_SOCKMAP); __uint(max_entries, 65536); __type(key, __u32); __type(value, __u64); } socks SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 65536); __type(key, __u64); __type(value, __u32); } peer SEC(".maps");

SEC("sk_skb/stream_parser")
int parser(struct __sk_buff *skb) { return skb->len; }

SEC("sk_skb/stream_verdict")
int verdict(struct __sk_buff *skb) {
  __u64 c = bpf_get_socket_cookie(skb);
  __u32 *p = bpf_map_lookup_elem(&peer, &c);

  if (!p) return SK_PASS;
  return bpf_sk_redirect_map(skb, &socks, *p, 0);
}
char LICENSE[] SEC("license") = "GPL";
