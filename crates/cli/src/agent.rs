//! `bulkhead agent`: flags -> `bulkhead_agent::Config`; the agent crate does the rest.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// Enter this network namespace (/run/netns/NAME) first: nftables, NFLOG and
    /// conntrack are all programmed there. Default: the current namespace.
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// This node's name: workloads with that spec.nodeName are local. Default: all are.
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// Inventory (Namespaces, Nodes, Pods): a YAML file or a directory of them.
    /// Repeatable. Only inventory kinds are taken from these inputs.
    #[arg(long, value_name = "FILE|DIR", required_unless_present = "uninstall")]
    pub inventory: Vec<PathBuf>,
    /// Policy (Groups, Policies, Settings, NetworkPolicies): a YAML file or a directory.
    /// Repeatable. Only policy kinds are taken from these inputs.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR")]
    pub policy: Vec<PathBuf>,
    /// Where status.json, latency.jsonl and the store (store.db) go.
    #[arg(long, value_name = "DIR", required_unless_present = "uninstall")]
    pub state_dir: Option<PathBuf>,
    /// Interface-name glob of the node's workload interfaces (e.g. 'v-*'): packets
    /// from or to such an interface whose address the agent does not know are denied.
    #[arg(long, value_name = "GLOB")]
    pub pod_interfaces: Option<String>,
    /// Do not log allowed connections (deny records only; no Monitor/Discover records).
    #[arg(long)]
    pub no_log_allowed: bool,
    /// Leave live connections a change forbids alone (default: cut them).
    #[arg(long)]
    pub keep_connections: bool,
    /// Drop denied packets silently (default: answer with a TCP reset or an ICMP
    /// unreachable, so clients fail fast).
    #[arg(long)]
    pub drop: bool,
    /// Program the kernel once (adopting what is there) and exit.
    #[arg(long)]
    pub once: bool,
    /// Delete bulkhead's nftables table and exit.
    #[arg(long)]
    pub uninstall: bool,
    /// Run the transparent L7 proxy on this port and divert to it the connections that
    /// rules with `app:` or L7 conditions decide (default port 15001).
    #[arg(long, value_name = "PORT", num_args = 0..=1, default_missing_value = "15001")]
    pub l7_proxy: Option<u16>,
    /// After each wake-up, the proxy's threads keep polling their sockets this long
    /// (e.g. `100us`) before they sleep again: on a virtual machine, a server's answer
    /// that arrives meanwhile does not have to wake a halted vCPU (tens of microseconds
    /// at the tail). Costs up to that much CPU per wake-up when traffic is sparse, none
    /// when the proxy is idle or busy. Off by default (HAProxy's `busy-polling`, bounded).
    #[arg(long, value_name = "DURATION", requires = "l7_proxy", value_parser = busy_poll)]
    pub proxy_busy_poll: Option<std::time::Duration>,
    /// Decide Redis commands between this node's workloads in the kernel, at the
    /// client's socket (sockops and sk_msg programs; Redis at the speed of a direct
    /// connection), instead of in the proxy (Monitor violations run and are reported, as
    /// there), over IPv4 and IPv6. Connections it cannot decide alone (sensors, Log rules)
    /// keep the proxy; so do clients on other nodes, unless the nodes share a
    /// --vouch-key.
    #[arg(long, requires = "l7_proxy")]
    pub redis_socket_path: bool,
    /// With --redis-socket-path: a file holding the key (32 hex digits) every node of
    /// the cluster shares. The client's node then decides Redis connections to servers on
    /// other nodes at the client's socket and vouches for each in its SYN; the server's
    /// node lets exactly those past its proxy (`bulkhead lab up` writes one).
    #[arg(long, requires = "redis_socket_path", value_name = "FILE")]
    pub vouch_key: Option<std::path::PathBuf>,
    /// FQDN egress: addresses learnt from DNS answers stay allowed at least this many
    /// seconds, whatever the answer's TTL (Cilium's tofqdns-min-ttl).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 60,
        env = "BULKHEAD_DNS_MIN_TTL"
    )]
    pub dns_min_ttl: u64,
    /// FQDN egress: learn only from answers of resolvers at these addresses or networks
    /// (repeat, or separate with commas: the cluster's DNS service, a node-local cache).
    /// An answer from any other resolver is relayed if the workload may query it, but
    /// teaches nothing, so a workload cannot open an address for a `dns:` peer by asking
    /// a resolver it runs itself. Default: every resolver a workload may query.
    #[arg(
        long = "dns-resolver",
        value_name = "ADDR|CIDR",
        value_delimiter = ',',
        value_parser = resolver,
        env = "BULKHEAD_DNS_RESOLVERS"
    )]
    pub dns_resolvers: Vec<ipnet::IpNet>,
}

pub fn run(a: AgentArgs) -> Result<u8> {
    let mut cfg = bulkhead_agent::Config::new(a.state_dir.unwrap_or_else(|| ".".into()));
    cfg.netns = a.netns;
    cfg.node = a.node;
    cfg.inventory = a.inventory;
    cfg.policy = a.policy;
    cfg.pod_interfaces = a.pod_interfaces;
    cfg.log_allowed = !a.no_log_allowed;
    cfg.keep_connections = a.keep_connections;
    cfg.silent_drop = a.drop;
    cfg.once = a.once;
    cfg.uninstall = a.uninstall;
    cfg.l7_proxy = a.l7_proxy.map(|port| bulkhead_agent::config::L7Proxy {
        port,
        busy_poll: a.proxy_busy_poll.unwrap_or_default(),
    });
    cfg.redis_socket_path = a.redis_socket_path;
    if let Some(f) = &a.vouch_key {
        cfg.vouch_key = Some(read_vouch_key(f)?);
    }
    cfg.dns_min_ttl = std::time::Duration::from_secs(a.dns_min_ttl);
    cfg.dns_resolvers = a.dns_resolvers;
    bulkhead_agent::run(cfg)
}

/// `--dns-resolver`: an address (a network of one) or a CIDR.
pub fn resolver(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| {
            format!("expected an IP address or a CIDR (10.96.0.10, 10.96.0.0/12), got {s:?}")
        })
}

/// `--proxy-busy-poll`: a duration up to 10 ms (longer is a spinning proxy, not a
/// latency setting).
pub fn busy_poll(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (expected e.g. 100us)"))?;
    if d > std::time::Duration::from_millis(10) {
        return Err("at most 10ms".into());
    }
    Ok(d)
}

/// A vouching key file: 32 hex digits (blanks and a newline around them allowed).
fn read_vouch_key(f: &std::path::Path) -> anyhow::Result<[u8; 16]> {
    let text = std::fs::read_to_string(f)
        .map_err(|e| anyhow::anyhow!("{}: cannot read the vouching key: {e}", f.display()))?;
    let hex = text.trim();
    let mut key = [0u8; 16];
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        anyhow::bail!(
            "{}: expected 32 hexadecimal digits (16 bytes), found {:?}",
            f.display(),
            hex.chars().take(40).collect::<String>()
        );
    }
    for (i, k) in key.iter_mut().enumerate() {
        *k = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::read_vouch_key;

    #[test]
    fn vouch_keys_are_32_hex_digits() {
        let dir = std::env::temp_dir().join(format!("bulkhead-vouch-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        std::fs::write(&file, "00112233445566778899aabbccddeeff\n").unwrap();
        assert_eq!(
            read_vouch_key(&file).unwrap(),
            [
                0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                0xee, 0xff
            ]
        );
        for bad in ["0011", "zz112233445566778899aabbccddeeff", ""] {
            std::fs::write(&file, bad).unwrap();
            let e = read_vouch_key(&file).unwrap_err().to_string();
            assert!(e.contains("expected 32 hexadecimal digits"), "{e}");
            assert!(e.contains(&file.display().to_string()), "{e}");
        }
        let e = read_vouch_key(&dir.join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read the vouching key"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
