//! What the data-plane tests share: a scratch network namespace, the bundled examples,
//! and the policy edit they make (one rule's port).
#![allow(dead_code)] // each test file uses its own part

use std::process::Command;

use bulkhead_model::{PortRange, Protocol};
use bulkhead_policy::spec::{Bundle, PolicySet, PortSel, PortSpec};

/// A network namespace for one test, deleted when dropped (also on failure). None when
/// namespaces cannot be made here (not root), which fails the test under
/// BULKHEAD_REQUIRE_PRIVILEGED (CI).
pub struct Netns(pub String);

impl Netns {
    pub fn new(name: &str) -> Option<Netns> {
        // A leftover of an earlier, killed run would make `add` fail.
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        let privileged = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .is_ok_and(|s| s.success());
        if !privileged {
            assert!(
                std::env::var("BULKHEAD_REQUIRE_PRIVILEGED").is_err(),
                "cannot create a network namespace (root and iproute2 needed) but BULKHEAD_REQUIRE_PRIVILEGED is set"
            );
            eprintln!("skipping: cannot create network namespaces (not root?)");
            return None;
        }
        Some(Netns(name.to_string()))
    }

    /// `nft list chain inet bulkhead CHAIN` in this namespace.
    pub fn list_chain(&self, chain: &str) -> String {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &self.0, "nft", "list", "chain", "inet", "bulkhead", chain,
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A directory of the repository, loaded as `bulkhead -f` would.
pub fn bundle(dir: &str) -> Bundle {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    bulkhead_manifest::load(&[format!("{root}/{dir}").into()], false).unwrap()
}

/// examples/ with `replicas` of every workload (addresses for everyone), spread over
/// `node-1` and `node-2`.
pub fn examples_on_two_nodes(replicas: usize) -> Bundle {
    let mut b = bulkhead_synth::scaled(&bundle("examples"), replicas);
    for (i, w) in b.inventory.workloads.iter_mut().enumerate() {
        w.node = Some(if i % 2 == 0 { "node-1" } else { "node-2" }.into());
    }
    b
}

/// Policy `i` (modulo their number)'s first rule, ingress else egress, now allows
/// TCP/`port` only. False when there is no such rule.
pub fn set_first_rule_port(set: &mut PolicySet, i: usize, port: u16) -> bool {
    let n = set.policies.len();
    if n == 0 {
        return false;
    }
    let p = &mut set.policies[i % n];
    let Some(r) = p.ingress.first_mut().or(p.egress.first_mut()) else {
        return false;
    };
    r.ports = vec![PortSpec {
        protocol: Some(Protocol::Tcp),
        port: PortSel::Range(PortRange { lo: port, hi: port }),
    }];
    true
}
