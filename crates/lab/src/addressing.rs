//! Address plan: each node takes the i-th /24 of the IPv4 pool and the i-th /64 of the
//! IPv6 pool; its own address is the first of each, its pods get the next free ones in
//! workload order. Addresses a Pod's `status.podIPs` already gives are kept (policies
//! with `ipBlock` peers were written against them), and skipped by the allocator.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Result, bail};
use ipnet::{Ipv4Net, Ipv6Net};

pub const DEFAULT_POOL_V4: &str = "10.244.0.0/16";
pub const DEFAULT_POOL_V6: &str = "fd00:10:244::/48";

/// Every pod's gateway: on each node's loopback, answered for by proxy ARP (Calico's
/// trick: the same gateway on every node, nothing to configure per pod).
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The IPv6 gateway: the node end of every pod veth carries this link-local address.
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
/// The router's address (multi-node labs): nodes route to it on-link.
pub const ROUTER_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 2, 1);
/// The router end and the node end of a node's uplink (link-local, on that link only).
pub const ROUTER_LINK_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
pub const NODE_LINK_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);

/// One node's share of the pools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeNets {
    pub v4: Ipv4Net,
    pub v6: Ipv6Net,
}

impl NodeNets {
    /// The node's own addresses: the first of each subnet.
    pub fn node_v4(&self) -> Ipv4Addr {
        nth_v4(&self.v4, 1)
    }

    pub fn node_v6(&self) -> Ipv6Addr {
        nth_v6(&self.v6, 1)
    }
}

/// The subnets of `count` nodes.
pub fn node_nets(pool4: Ipv4Net, pool6: Ipv6Net, count: usize) -> Result<Vec<NodeNets>> {
    let v4: Vec<Ipv4Net> = pool4
        .subnets(24.max(pool4.prefix_len()))?
        .take(count)
        .collect();
    let v6: Vec<Ipv6Net> = pool6
        .subnets(64.max(pool6.prefix_len()))?
        .take(count)
        .collect();
    if v4.len() < count || v6.len() < count {
        bail!(
            "the pools {pool4} and {pool6} have room for {} nodes, the lab has {count}",
            v4.len().min(v6.len())
        );
    }
    Ok(v4
        .into_iter()
        .zip(v6)
        .map(|(v4, v6)| NodeNets { v4, v6 })
        .collect())
}

fn nth_v4(net: &Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).wrapping_add(n))
}

fn nth_v6(net: &Ipv6Net, n: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(net.network()).wrapping_add(u128::from(n)))
}

/// Hands out pod addresses from node subnets, skipping every address already taken.
pub struct Allocator {
    taken: BTreeSet<IpAddr>,
}

impl Allocator {
    /// `taken`: node addresses and addresses the input fixed.
    pub fn new(taken: impl IntoIterator<Item = IpAddr>) -> Self {
        Allocator {
            taken: taken.into_iter().collect(),
        }
    }

    /// The lowest free IPv4 address of `net` from its third (.0 is the network, .1 the
    /// node), not the broadcast address.
    pub fn v4(&mut self, net: &Ipv4Net) -> Result<Ipv4Addr> {
        let size = 1u64 << (32 - net.prefix_len());
        for n in 2..size.saturating_sub(1) {
            let a = nth_v4(net, n as u32);
            if self.taken.insert(IpAddr::V4(a)) {
                return Ok(a);
            }
        }
        bail!("no free IPv4 address left in {net}")
    }

    pub fn v6(&mut self, net: &Ipv6Net) -> Result<Ipv6Addr> {
        // A /64 never runs out in a lab; the bound only keeps a loop finite.
        for n in 2..1_000_000u32 {
            let a = nth_v6(net, n);
            if self.taken.insert(IpAddr::V6(a)) {
                return Ok(a);
            }
        }
        bail!("no free IPv6 address left in {net}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_take_consecutive_subnets_and_the_first_address() {
        let nets = node_nets(
            DEFAULT_POOL_V4.parse().unwrap(),
            DEFAULT_POOL_V6.parse().unwrap(),
            2,
        )
        .unwrap();
        assert_eq!(nets[1].v4.to_string(), "10.244.1.0/24");
        assert_eq!(nets[1].v6.to_string(), "fd00:10:244:1::/64");
        assert_eq!(nets[1].node_v4().to_string(), "10.244.1.1");
        assert_eq!(nets[1].node_v6().to_string(), "fd00:10:244:1::1");
    }

    #[test]
    fn small_pools_are_refused() {
        let err = node_nets(
            "10.0.0.0/23".parse().unwrap(),
            DEFAULT_POOL_V6.parse().unwrap(),
            3,
        )
        .unwrap_err();
        assert!(err.to_string().contains("room for 2 nodes"), "{err}");
    }

    #[test]
    fn the_allocator_skips_taken_addresses() {
        let net: Ipv4Net = "10.244.0.0/24".parse().unwrap();
        let mut a = Allocator::new(["10.244.0.3".parse().unwrap()]);
        assert_eq!(a.v4(&net).unwrap().to_string(), "10.244.0.2");
        assert_eq!(a.v4(&net).unwrap().to_string(), "10.244.0.4");
        let tiny: Ipv4Net = "10.0.0.0/30".parse().unwrap();
        let mut a = Allocator::new([]);
        assert_eq!(a.v4(&tiny).unwrap().to_string(), "10.0.0.2");
        assert!(a.v4(&tiny).is_err());
    }
}
