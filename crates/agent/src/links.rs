//! Which workload sits behind an interface: the addresses the node routes through it.
//!
//! A packet the source check dropped carries a forged address, so its sender is known
//! only by the interface it came in on. Each workload's address is a host route through
//! its own interface (that is what the check relies on), so the host routes through
//! that interface name the real sender. Read from `/proc/thread-self/net/{route,
//! ipv6_route}` of the agent's network namespace: forged packets are rare, and the
//! text tables need no netlink dump.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// [`host_routes_via`], remembered per interface for a second: a workload that forges
/// addresses may send many packets a second, each logged, and the routes of its
/// interface do not change between them.
#[derive(Default)]
pub struct Senders(HashMap<u32, (Instant, Vec<IpAddr>)>);

impl Senders {
    pub fn of(&mut self, ifindex: u32) -> Vec<IpAddr> {
        let now = Instant::now();
        // Interfaces come and go with workloads: forget what is stale.
        if self.0.len() > 1024 {
            self.0
                .retain(|_, (t, _)| now.duration_since(*t) < Duration::from_secs(1));
        }
        match self.0.get(&ifindex) {
            Some((t, ips)) if now.duration_since(*t) < Duration::from_secs(1) => ips.clone(),
            _ => {
                let ips = host_routes_via(ifindex);
                self.0.insert(ifindex, (now, ips.clone()));
                ips
            }
        }
    }
}

/// The addresses with a host route (/32, /128) through interface `ifindex`.
pub fn host_routes_via(ifindex: u32) -> Vec<IpAddr> {
    let Some(name) = nix::net::if_::if_nameindex().ok().and_then(|links| {
        (links.iter())
            .find(|l| l.index() == ifindex)
            .map(|l| l.name().to_string_lossy().into_owned())
    }) else {
        return Vec::new();
    };
    let read = |f: &str| std::fs::read_to_string(format!("/proc/thread-self/net/{f}"));
    let mut out = read("route").map_or_else(|_| Vec::new(), |t| ipv4_host_routes(&t, &name));
    out.extend(read("ipv6_route").map_or_else(|_| Vec::new(), |t| ipv6_host_routes(&t, &name)));
    out
}

/// `/proc/net/route`: `Iface Destination Gateway Flags RefCnt Use Metric Mask ...`, the
/// destination and mask as 8 hex digits in the kernel's (little-endian) byte order.
pub fn ipv4_host_routes(table: &str, iface: &str) -> Vec<IpAddr> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (dev, dst, mask) = (f.first()?, f.get(1)?, f.get(7)?);
            if *dev != iface || *mask != "FFFFFFFF" {
                return None;
            }
            let n = u32::from_str_radix(dst, 16).ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(n.to_le_bytes())))
        })
        .collect()
}

/// `/proc/net/ipv6_route`: `dst plen src plen next_hop metric refcnt use flags iface`,
/// addresses as 32 hex digits in network order, prefix lengths in hex.
pub fn ipv6_host_routes(table: &str, iface: &str) -> Vec<IpAddr> {
    table
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (dst, plen, dev) = (f.first()?, f.get(1)?, f.get(9)?);
            if *dev != iface || *plen != "80" || dst.len() != 32 {
                return None;
            }
            let n = u128::from_str_radix(dst, 16).ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(n)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_routes_of_one_interface() {
        let v4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            bhfa87u20787b76\t00000000\t0102FEA9\t0007\t0\t0\t0\t00000000\t0\t0\t0\n\
            bhfa87pd989aa72\t0201F40A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n\
            bhfa87pccad4172\t0301F40A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n\
            bhfa87pd989aa72\t0000F40A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        assert_eq!(
            ipv4_host_routes(v4, "bhfa87pd989aa72"),
            vec!["10.244.1.2".parse::<IpAddr>().unwrap()]
        );
        let v6 = "fd00001002440001000000000000000e 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000400 00000001 00000000 00000001 bhfa87pd989aa72\n\
            fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 bhfa87pd989aa72\n\
            fd00001002440001000000000000000f 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000400 00000001 00000000 00000001 other\n";
        assert_eq!(
            ipv6_host_routes(v6, "bhfa87pd989aa72"),
            vec!["fd00:10:244:1::e".parse::<IpAddr>().unwrap()]
        );
        // Garbage lines are skipped, never a panic.
        assert!(ipv4_host_routes("x\n\n1 2\nbh zz 0 0 0 0 0 FFFFFFFF", "bh").is_empty());
        assert!(ipv6_host_routes("zz 80 1 2 3 4 5 6 7 bh", "bh").is_empty());
    }
}
