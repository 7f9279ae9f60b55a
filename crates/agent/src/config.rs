//! What the agent is told to do: the command line, already parsed (the CLI crate owns
//! the flags; this crate owns their meaning).

use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Config {
    /// Network namespace (a name under /run/netns) the whole process enters at start.
    pub netns: Option<String>,
    /// This node's name: workloads with that `spec.nodeName` are local. None: all are.
    pub node: Option<String>,
    /// Inventory inputs (files or directories): only inventory kinds are taken.
    pub inventory: Vec<PathBuf>,
    /// Policy inputs (files or directories): only policy kinds are taken.
    pub policy: Vec<PathBuf>,
    pub state_dir: PathBuf,
    /// Glob of the node's workload interfaces (fail-closed for unknown senders).
    pub pod_interfaces: Option<String>,
    /// Log every allowed new connection (flow records for allows, violations, learning).
    pub log_allowed: bool,
    /// Keep live connections a change forbids (default: cut them).
    pub keep_connections: bool,
    /// Drop denied packets silently (default: TCP reset / ICMP unreachable).
    pub silent_drop: bool,
    /// Program once and exit.
    pub once: bool,
    /// Remove bulkhead's table and exit.
    pub uninstall: bool,
    pub debounce: Debounce,
    pub flows: Rotation,
    /// Run the L7 proxy and divert connections that L7 rules decide to it.
    pub l7_proxy: Option<L7Proxy>,
    /// Decide Redis commands between this node's workloads in the kernel, at the
    /// client's socket, instead of in the proxy (see `crate::sockpath`). Needs the proxy
    /// (for everything else).
    pub redis_socket_path: bool,
    /// The key the nodes share to vouch for socket-path connections between them (16
    /// bytes; see `bulkhead_sockops::vouch`). None: connections between nodes keep the
    /// proxy.
    pub vouch_key: Option<[u8; 16]>,
    /// FQDN egress: addresses learnt from DNS answers stay allowed at least this long
    /// (shorter TTLs are raised to it).
    pub dns_min_ttl: Duration,
    /// FQDN egress: only answers from resolvers in these networks teach addresses
    /// (empty: answers from any resolver a workload may query).
    pub dns_resolvers: Vec<ipnet::IpNet>,
}

/// The node's transparent L7 proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L7Proxy {
    /// Where diverted connections arrive (TPROXY target port, IPv4 and IPv6).
    pub port: u16,
    /// How long a proxy thread keeps polling after it wakes (zero: it sleeps at once).
    pub busy_poll: Duration,
}

impl Default for L7Proxy {
    fn default() -> Self {
        L7Proxy {
            port: 15001,
            busy_poll: Duration::ZERO,
        }
    }
}

impl Config {
    pub fn new(state_dir: PathBuf) -> Config {
        Config {
            netns: None,
            node: None,
            inventory: Vec::new(),
            policy: Vec::new(),
            state_dir,
            pod_interfaces: None,
            log_allowed: true,
            keep_connections: false,
            silent_drop: false,
            once: false,
            uninstall: false,
            debounce: Debounce::default(),
            flows: Rotation::default(),
            l7_proxy: None,
            redis_socket_path: false,
            vouch_key: None,
            dns_min_ttl: crate::fqdn::DEFAULT_MIN_TTL,
            dns_resolvers: Vec::new(),
        }
    }
}

/// How file events are batched: a change is applied once the inputs have been quiet for
/// `quiet` (`settled` when every file of the batch is known to be completely written),
/// or `max` after its first event, whichever comes first (a writer that never stops
/// cannot starve the data plane). Every transaction has a fixed cost, so batching a
/// burst of small edits into one transaction is what keeps up with bursts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Debounce {
    pub quiet: Duration,
    pub settled: Duration,
    pub max: Duration,
}

impl Default for Debounce {
    fn default() -> Self {
        Debounce {
            // A file being written in place: 10 ms of quiet still batches a burst and
            // costs little latency.
            quiet: Duration::from_millis(10),
            // Every file renamed into place or closed after writing: events of the same
            // burst (a `git checkout`, a `cp -r`) arrive within a millisecond, and those
            // already queued join the batch anyway.
            settled: Duration::from_millis(1),
            max: Duration::from_millis(100),
        }
    }
}

/// Size-based rotation of `flows.jsonl`: `flows.jsonl.1` is the newest old file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub max_bytes: u64,
    pub keep: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_bytes: 16 << 20,
            keep: 5,
        }
    }
}
