//! The engine's verdict as this node's kernel applies it.
//!
//! The ruleset of one node checks the egress side only for its local workloads and the
//! ingress side only for its local workloads (the other node checks the rest), and it
//! sees this node's own addresses as the `host` entity. Conntrack cutting and flow
//! records must ask the same question, or they would cut connections this node never
//! polices and call correct kernel decisions inconsistent.

use std::collections::HashSet;
use std::net::IpAddr;

use bulkhead_model::L4;
use bulkhead_policy::compile::Direction;
use bulkhead_policy::engine::AddrOwner;
use bulkhead_policy::l7::L7Request;
use bulkhead_policy::{Connection, Endpoint, Engine, Verdict};
use smallvec::SmallVec;

/// Who is local, and which addresses are this node's own.
#[derive(Clone, Debug, Default)]
pub struct NodeScope {
    /// None: every workload is local.
    pub node: Option<String>,
    /// The node namespace's own addresses (they are `host`, declared as a Node or not).
    pub host_addrs: HashSet<IpAddr>,
    /// Names external addresses are known by (DNS answers the proxy relayed: FQDN
    /// egress), for `dns:` peers.
    pub dns: std::sync::Arc<crate::fqdn::DnsNames>,
    /// Give external addresses their expired names too (conntrack cutting: a connection
    /// opened while the name was known is not cut because the TTL ran out since).
    pub dns_remembered: bool,
}

/// The engine's answer for one connection, seen from this node.
#[derive(Clone, Debug)]
pub struct NodeVerdict {
    pub verdict: Verdict,
    /// The source is a local workload: its egress is checked here.
    pub egress_here: bool,
    /// The destination is a local workload: its ingress is checked here.
    pub ingress_here: bool,
    pub allowed: bool,
    /// Neither address is known to the engine (nor this node's): the kernel's
    /// fail-closed rules may apply.
    pub unknown_src: bool,
    pub unknown_dst: bool,
}

impl NodeVerdict {
    /// Must this node's proxy see the connection's requests (an allowed connection that
    /// a rule on requests of a local end's side matches)?
    pub fn needs_l7(&self) -> bool {
        let v = &self.verdict;
        self.allowed
            && ((self.egress_here && !v.egress.gated.is_empty())
                || (self.ingress_here && !v.ingress.gated.is_empty()))
    }
}

impl NodeScope {
    /// The sensors of this node's ends of a connection `client -> server`: the server's
    /// groups that inspect what reaches it and the client's that inspect what leaves it
    /// (sorted, without repeats; empty for most policies, which have none).
    pub fn sensors(&self, engine: &Engine, client: IpAddr, server: IpAddr) -> SmallVec<[u32; 2]> {
        let mut sensors = SmallVec::new();
        if engine
            .compiled()
            .groups
            .iter()
            .all(|g| g.sensors.is_empty())
        {
            return sensors;
        }
        for (addr, dir) in [(server, Direction::Ingress), (client, Direction::Egress)] {
            let end = self.endpoint(engine, addr);
            if let Endpoint::Workload { id, .. } = end
                && self.is_local(engine, &end)
            {
                sensors.extend(engine.sensors_of(id, dir));
            }
        }
        sensors.sort_unstable();
        sensors.dedup();
        sensors
    }

    pub fn endpoint(&self, engine: &Engine, ip: IpAddr) -> Endpoint {
        match engine.owner_of(&ip) {
            Some(AddrOwner::Workload(id)) => Endpoint::Workload { id, addr: Some(ip) },
            Some(AddrOwner::Host) => Endpoint::Host { addr: ip },
            None if self.host_addrs.contains(&ip) => Endpoint::Host { addr: ip },
            None => Endpoint::External {
                addr: Some(ip),
                names: if self.dns_remembered {
                    self.dns.remembered(ip)
                } else {
                    self.dns.names(ip)
                },
            },
        }
    }

    pub fn is_local(&self, engine: &Engine, e: &Endpoint) -> bool {
        let Endpoint::Workload { id, .. } = e else {
            return false;
        };
        match &self.node {
            None => true,
            Some(n) => engine
                .workload(*id)
                .is_some_and(|w| w.node.as_deref() == Some(n.as_str())),
        }
    }

    /// Decide `src -> dst` on `l4` as this node's kernel does.
    pub fn decide(&self, engine: &Engine, src: IpAddr, dst: IpAddr, l4: L4) -> NodeVerdict {
        self.decide_l7(engine, src, dst, l4, None)
    }

    /// The same, with what the L7 proxy knows of the connection (its protocol, or one
    /// request on it).
    pub fn decide_l7(
        &self,
        engine: &Engine,
        src: IpAddr,
        dst: IpAddr,
        l4: L4,
        l7: Option<&L7Request>,
    ) -> NodeVerdict {
        let s = self.endpoint(engine, src);
        let d = self.endpoint(engine, dst);
        let verdict = engine.verdict(&Connection {
            src: &s,
            dst: &d,
            l4,
            l7,
        });
        let egress_here = self.is_local(engine, &s);
        let ingress_here = self.is_local(engine, &d);
        let allowed =
            (!egress_here || verdict.egress.allowed) && (!ingress_here || verdict.ingress.allowed);
        NodeVerdict {
            egress_here,
            ingress_here,
            allowed,
            unknown_src: matches!(s, Endpoint::External { .. }),
            unknown_dst: matches!(d, Endpoint::External { .. }),
            verdict,
        }
    }
}

/// The addresses of the current network namespace's interfaces.
pub fn local_addresses() -> HashSet<IpAddr> {
    let mut out = HashSet::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(sa) = a.address else { continue };
            if let Some(v4) = sa.as_sockaddr_in() {
                out.insert(IpAddr::V4(v4.ip()));
            } else if let Some(v6) = sa.as_sockaddr_in6() {
                out.insert(IpAddr::V6(v6.ip()));
            }
        }
    }
    out
}
