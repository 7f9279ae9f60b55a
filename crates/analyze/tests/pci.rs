//! The PCI report on the bundled example (the `payments` namespace is labelled
//! `compliance: pci`): what it lists is exactly what the engine allows, port by port.

use bulkhead_analyze::pci;
use bulkhead_model::{L4, Protocol, Selector};
use bulkhead_policy::{Connection, Endpoint, Engine};
use proptest::prelude::*;

fn engine() -> Engine {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let b = bulkhead_manifest::load(&[dir.into()], false).unwrap();
    Engine::new(&b).unwrap()
}

fn cde() -> Selector {
    bulkhead_model::selector::parse("compliance == \"pci\"").unwrap()
}

/// Is `port` inside one of the report's services for `protocol`?
fn listed(services: &[String], protocol: Protocol, port: u16) -> bool {
    services.iter().any(|s| {
        let Some((p, range)) = s.split_once('/') else {
            return false;
        };
        if p != protocol.as_str() {
            return false;
        }
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        match (lo.parse::<u16>(), hi.parse::<u16>()) {
            (Ok(lo), Ok(hi)) => (lo..=hi).contains(&port),
            _ => false,
        }
    })
}

#[test]
fn the_example_has_a_cde_and_crossings() {
    let e = engine();
    let r = pci::report(&e, &cde(), []);
    assert!(!r.cde_workloads.is_empty(), "{r:?}");
    assert!(
        !r.allowed.is_empty(),
        "the example lets something in: {r:?}"
    );
    let md = pci::markdown(&r);
    assert!(md.contains("| in |"), "{md}");
    let html = pci::html(&r);
    assert!(html.starts_with("<!doctype html>") && html.ends_with("</html>\n"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Every crossing's services are exactly the ports the engine allows between its
    /// two example workloads.
    #[test]
    fn services_are_exactly_what_the_engine_allows(port in 1u16..=65535, tcp in any::<bool>()) {
        let e = engine();
        let r = pci::report(&e, &cde(), []);
        let protocol = if tcp { Protocol::Tcp } else { Protocol::Udp };
        let ep = |name: &str| -> Option<Endpoint> {
            let w = e.workloads().into_iter().find(|(_, w)| w.key.to_string() == name)?;
            Some(Endpoint::Workload { id: w.0, addr: None })
        };
        for c in &r.allowed {
            let (Some(src), Some(dst)) = (ep(&c.src), ep(&c.dst)) else { continue };
            let allowed = e
                .verdict(&Connection { src: &src, dst: &dst, l4: L4::Port { protocol, port }, l7: None })
                .allowed;
            prop_assert_eq!(allowed, listed(&c.services, protocol, port), "{:?} {}/{}", c, protocol.as_str(), port);
        }
    }
}

/// The edges of every listed range, and the ports just outside them, agree with the
/// engine (where a random port rarely lands).
#[test]
fn range_edges_agree_with_the_engine() {
    let e = engine();
    let r = pci::report(&e, &cde(), []);
    let ep = |name: &str| -> Option<Endpoint> {
        let w = e
            .workloads()
            .into_iter()
            .find(|(_, w)| w.key.to_string() == name)?;
        Some(Endpoint::Workload {
            id: w.0,
            addr: None,
        })
    };
    let mut checked = 0;
    for c in &r.allowed {
        let (Some(src), Some(dst)) = (ep(&c.src), ep(&c.dst)) else {
            continue;
        };
        for s in &c.services {
            let Some((p, range)) = s.split_once('/') else {
                continue;
            };
            let protocol = match p {
                "TCP" => Protocol::Tcp,
                "UDP" => Protocol::Udp,
                "SCTP" => Protocol::Sctp,
                _ => continue,
            };
            let (lo, hi) = range.split_once('-').unwrap_or((range, range));
            let (lo, hi): (u16, u16) = (lo.parse().unwrap(), hi.parse().unwrap());
            for port in [lo.saturating_sub(1), lo, hi, hi.saturating_add(1)] {
                if port == 0 {
                    continue;
                }
                let l4 = L4::Port { protocol, port };
                let allowed = e
                    .verdict(&Connection {
                        src: &src,
                        dst: &dst,
                        l4,
                        l7: None,
                    })
                    .allowed;
                assert_eq!(
                    allowed,
                    listed(&c.services, protocol, port),
                    "{c:?} {p}/{port}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 0);
}
