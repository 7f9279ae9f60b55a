//! Names and numbers shared by the renderer, the diff and the agent.

/// The one table bulkhead owns (family inet: IPv4 and IPv6 in one place).
pub const TABLE: &str = "bulkhead";

/// The 32-bit marks of a new connection: `meta mark` describes the source, `ct mark` the
/// destination. Bits 0-17: the identity number (cluster-wide); bits 18-29: the number of
/// the endpoint's policy signature on this node (0: not a workload of this node); bit 31
/// (egress) and bit 30 (ingress) of `meta mark`: a Pass rule matched.
pub const ID_MASK: u32 = 0x0003_ffff;
pub const SIG_SHIFT: u32 = 18;
pub const SIG_MASK: u32 = 0x3ffc_0000;
/// Signature numbers run from 1 to this; the last one is reserved for workloads beyond
/// the node's capacity of signatures, and dispatches to `deny` (fail closed).
pub const SIG_MAX: u32 = 0xfff;
pub const SIG_OVERFLOW: u32 = SIG_MAX;
pub const PASS_EGRESS: u32 = 0x8000_0000;
pub const PASS_INGRESS: u32 = 0x4000_0000;

/// Identity number of addresses nobody knows: the `world` entity.
pub const ID_WORLD: u32 = 0;
/// Identity number of node addresses: the `host` entity.
pub const ID_HOST: u32 = 1;
/// Kernel identity numbers of workload identities start here (see `ids`), leaving room
/// for reserved identities.
pub const ID_BASE: u32 = 16;

/// NFLOG group the agent listens to, and the prefixes that say what happened.
pub const LOG_GROUP: u32 = 1;
pub const LOG_ALLOW: &str = "bh:allow ";
pub const LOG_DENY: &str = "bh:deny ";
pub const LOG_RULE: &str = "bh:log ";
/// A packet from a workload interface whose source address that interface does not
/// route back to (another workload's address, forged): dropped before conntrack.
pub const LOG_SPOOF: &str = "bh:spoof ";

/// Stable 64-bit FNV-1a, for content-addressed chain and set names that must not change
/// between runs or builds (so an agent restart finds its own objects).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `prefix` + 12 hex digits of the content's hash.
pub fn content_name(prefix: &str, content: &[u8]) -> String {
    format!("{prefix}{:012x}", stable_hash(content) & 0xffff_ffff_ffff)
}

/// The sets of addresses a `dns:` peer's pattern stands for (IPv4, IPv6): `d4_`/`d6_` +
/// a hash of the pattern. They are *dynamic*: created empty (`flags timeout`) by the
/// render, filled only by the agent's DNS path (FQDN egress) with elements that the
/// kernel expires at the answer's TTL, and never touched by the diff (see
/// [`is_dns_set`]). The hashed text carries a version so that sets of an older layout
/// (no timeout flag) are replaced rather than adopted.
pub fn dns_set_names(pattern: &str) -> (String, String) {
    let content = format!("fqdn-ttl|{pattern}");
    (
        content_name("d4_", content.as_bytes()),
        content_name("d6_", content.as_bytes()),
    )
}

/// Is this one of the dynamic DNS sets, whose elements belong to the DNS path?
pub fn is_dns_set(name: &str) -> bool {
    name.starts_with("d4_") || name.starts_with("d6_")
}

/// `meta mark` of packets diverted to the L7 proxy (set in prerouting). The agent adds a
/// policy route `fwmark DIVERT_MARK lookup DIVERT_TABLE` with a local default route, so
/// they are delivered to the proxy's transparent socket. Chosen far from the values the
/// filter chains write (identity | signature), and only ever compared whole.
pub const DIVERT_MARK: u32 = 0x00b1_0000;
/// The routing table of that policy route.
pub const DIVERT_TABLE: u32 = 100;
/// `SO_MARK` of the proxy's own connections to servers: the output chain accepts them
/// (the proxy has already decided) and prerouting never diverts them again.
pub const PROXY_MARK: u32 = 0x00b2_0000;
/// `ct mark` of the proxy's own connections to servers and its UDP flows: DIVERT_MARK
/// with the low bit set. The divert chain matches both under [`DIVERTED_MASK`] (the
/// packets go to the proxy's sockets either way); the agent tells them apart, since a
/// proxied connection has two conntrack entries, the client's (diverted) and the
/// proxy's own to the server, and only the client's is a connection someone made: only
/// its end is recorded.
pub const PROXY_CT_MARK: u32 = DIVERT_MARK | 1;
/// `ct mark & DIVERTED_MASK == DIVERT_MARK`: an entry of the proxy's (either kind).
pub const DIVERTED_MASK: u32 = !1;
/// `meta mark` the agent's socket-path table (`bulkhead_sockpath`, an earlier prerouting
/// chain) sets on the SYN of a Redis connection whose commands the kernel decides at
/// the socket (`bulkhead-sockops`): the divert chain leaves it to that path instead of
/// the proxy, and the forward chain allows it (the filter chains leave out L7 rules).
/// Pods cannot forge it: a packet's mark is cleared when it leaves their namespace.
pub const SOCKPATH_MARK: u32 = 0x00b3_0000;
/// `meta mark` the socket path's `tc` check (`bulkhead_sockops::vouch`) gives a SYN that
/// another node's programs vouched for; the socket-path table turns it into
/// [`SOCKPATH_MARK`] for the pairs this node's plan lets the client's node decide.
pub const VOUCH_MARK: u32 = 0x00b4_0000;
