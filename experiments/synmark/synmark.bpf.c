// A client node vouches for a connection it decides at the socket, in its SYN: a TCP
// option (kind 253, RFC 6994 experiment id 0xB1C0) carrying a keyed hash of the
// connection's addresses, ports, initial sequence number and a ~2 s time epoch. The
// server node checks it at tc ingress, before netfilter, and marks the SYN; its
// nftables rules then let marked SYNs past the L7 proxy. See README.md.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define OPT_KIND 253
#define OPT_LEN 12
#define EXID 0xB1C0
#define MARK 0x5eed
#define EPOCH_SHIFT 31 // TAI nanoseconds >> 31: 2.1 s

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64[2]); } key SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64); __type(key, __u16); __type(value, __u8); } ports SEC(".maps");
// Tags verified in the last epochs: a SYN seen again (a replay, or the client's own
// retransmission) is not vouched for a second time and takes the proxy.
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 65536); __type(key, __u64); __type(value, __u64); } seen SEC(".maps");
// 0: SYNs tagged, 1: verified, 2: bad tag, 3: no tag, 4: seen before
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 5); __type(key, __u32); __type(value, __u64); } counts SEC(".maps");

static __always_inline void count(__u32 i) {
  __u64 *c = bpf_map_lookup_elem(&counts, &i);
  if (c) __sync_fetch_and_add(c, 1);
}

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define ROUND                                                                             \
  v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                              \
  v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                 \
  v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                 \
  v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);

// SipHash-2-4 of three 64-bit words (24 bytes).
static __always_inline __u64 siphash3(const __u64 k[2], __u64 a, __u64 b, __u64 c) {
  __u64 v0 = 0x736f6d6570736575ULL ^ k[0], v1 = 0x646f72616e646f6dULL ^ k[1];
  __u64 v2 = 0x6c7967656e657261ULL ^ k[0], v3 = 0x7465646279746573ULL ^ k[1];
  __u64 m[4] = { a, b, c, 24ULL << 56 };
#pragma unroll
  for (int i = 0; i < 4; i++) {
    v3 ^= m[i];
    ROUND ROUND
    v0 ^= m[i];
  }
  v2 ^= 0xff;
  ROUND ROUND ROUND ROUND
  return v0 ^ v1 ^ v2 ^ v3;
}

// Addresses and ports as on the wire (network order), the same words on both sides.
static __always_inline __u64 tag(const __u64 k[2], __u32 saddr, __u32 daddr, __u16 sport,
                                 __u16 dport, __u32 seq, __u64 epoch) {
  return siphash3(k, ((__u64)saddr << 32) | daddr,
                  ((__u64)sport << 48) | ((__u64)dport << 32) | seq, epoch);
}

struct opt {
  __u8 kind, len;
  __u16 exid;
  __u64 tag;
} __attribute__((packed));

SEC("sockops")
int vouch(struct bpf_sock_ops *s) {
  if (s->family != 2) return 1;
  switch (s->op) {
  case BPF_SOCK_OPS_TCP_CONNECT_CB: {
    __u16 port = (__u16)bpf_ntohl(s->remote_port);
    if (bpf_map_lookup_elem(&ports, &port))
      bpf_sock_ops_cb_flags_set(s, s->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
    return 1;
  }
  case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
    // Only the SYN carries it.
    if ((s->skb_tcp_flags & 0x12) == 0x02) bpf_reserve_hdr_opt(s, OPT_LEN, 0);
    return 1;
  case BPF_SOCK_OPS_WRITE_HDR_OPT_CB: {
    if ((s->skb_tcp_flags & 0x12) != 0x02) return 1;
    struct tcphdr *th = (void *)(long)s->skb_data;
    if ((void *)(th + 1) > (void *)(long)s->skb_data_end) return 1;
    __u32 zero = 0;
    __u64 *k = bpf_map_lookup_elem(&key, &zero);
    if (!k) return 1;
    struct opt o = { .kind = OPT_KIND, .len = OPT_LEN, .exid = bpf_htons(EXID) };
    // Each context field read on its own (clang would merge the two into one 8-byte
    // load, which the verifier refuses).
    __u32 local = *(volatile __u32 *)&s->local_ip4, remote = *(volatile __u32 *)&s->remote_ip4;
    o.tag = tag(k, local, remote, th->source, th->dest, th->seq,
                bpf_ktime_get_tai_ns() >> EPOCH_SHIFT);
    if (bpf_store_hdr_opt(s, &o, sizeof(o), 0) == 0) count(0);
    return 1;
  }
  }
  return 1;
}

SEC("tc")
int check(struct __sk_buff *skb) {
  void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP)) return TC_ACT_OK;
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > end || ip->protocol != 6 || ip->ihl != 5) return TC_ACT_OK;
  struct tcphdr *th = (void *)(ip + 1);
  if ((void *)(th + 1) > end || !th->syn || th->ack) return TC_ACT_OK;
  __u16 port = bpf_ntohs(th->dest);
  if (!bpf_map_lookup_elem(&ports, &port)) return TC_ACT_OK;
  // The options (at most 40 bytes) copied out, then walked for ours.
  __u32 olen = th->doff * 4 - 20;
  __u8 opts[64] = {}; // room for a 12-byte read at any offset the walk reaches
  if (olen > 40 || olen < OPT_LEN) { count(3); return TC_ACT_OK; }
  if (bpf_skb_load_bytes(skb, sizeof(*eth) + sizeof(*ip) + sizeof(*th), opts, olen)) return TC_ACT_OK;
  __u32 i = 0;
#pragma unroll
  for (int n = 0; n < 10; n++) {
    if (i >= olen || i > 38) break;
    __u8 kind = opts[i];
    if (kind == 0) break;
    if (kind == 1) { i++; continue; }
    __u8 len = opts[i + 1];
    if (len < 2) break;
    if (kind == OPT_KIND && len == OPT_LEN && i + OPT_LEN <= olen && i <= 40 - OPT_LEN) {
      struct opt o;
      __builtin_memcpy(&o, &opts[i], sizeof(o));
      if (o.exid != bpf_htons(EXID)) break;
      __u32 zero = 0;
      __u64 *k = bpf_map_lookup_elem(&key, &zero);
      if (!k) return TC_ACT_OK;
      __u64 now = bpf_ktime_get_tai_ns() >> EPOCH_SHIFT;
      if (o.tag == tag(k, ip->saddr, ip->daddr, th->source, th->dest, th->seq, now) ||
          o.tag == tag(k, ip->saddr, ip->daddr, th->source, th->dest, th->seq, now - 1)) {
        __u64 *when = bpf_map_lookup_elem(&seen, &o.tag);
        if (when && now - *when <= 1) {
          count(4);
          return TC_ACT_OK;
        }
        bpf_map_update_elem(&seen, &o.tag, &now, BPF_ANY);
        skb->mark = MARK;
        count(1);
      } else {
        count(2);
      }
      return TC_ACT_OK;
    }
    i += len;
  }
  count(3);
  return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
