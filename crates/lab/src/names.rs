//! How everything a lab creates is named. Every network namespace, link, container and
//! file carries `bh-<lab>.` (or, for 15-character link names, `bh` and a hash of the lab)
//! so that `lab down` finds the leftovers of a crashed run by name alone and never
//! touches anything without the prefix.
//!
//! Lab names are DNS labels (no `.`), so the `.` after the lab name ends it: the prefix
//! of lab `a` (`bh-a.`) is never a prefix of lab `a-b`'s names (`bh-a-b.`).

use std::path::PathBuf;

use anyhow::{Result, bail};
use bulkhead_model::WorkloadKey;

/// Where lab state lives: `<LABS_DIR>/<lab>/state.json`, logs, generated files.
pub const LABS_DIR: &str = "/run/bulkhead/labs";
/// Named network namespaces, where `ip netns` keeps them.
pub const NETNS_DIR: &str = "/run/netns";
/// The busybox root file system shared by every lab container (built once, read-only).
pub const ROOTFS_DIR: &str = "/var/lib/bulkhead/rootfs";

/// The longest lab name: it is part of namespace names and container ids.
pub const MAX_LAB_NAME: usize = 32;

/// A lab name: a DNS label of at most [`MAX_LAB_NAME`] characters.
pub fn check_lab(name: &str) -> Result<()> {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = !name.is_empty()
        && name.len() <= MAX_LAB_NAME
        && name.chars().all(|c| alnum(c) || c == '-')
        && name.starts_with(alnum)
        && name.ends_with(alnum);
    if !ok {
        bail!(
            "invalid lab name {name:?}: lower-case letters, digits and '-', starting and ending \
             with a letter or digit, at most {MAX_LAB_NAME} characters"
        );
    }
    Ok(())
}

/// `bh-<lab>.`: the start of every namespace and container name of the lab.
pub fn prefix(lab: &str) -> String {
    format!("bh-{lab}.")
}

pub fn node_netns(lab: &str, node: &str) -> String {
    format!("bh-{lab}.node.{node}")
}

pub fn router_netns(lab: &str) -> String {
    format!("bh-{lab}.router")
}

/// `bh-<lab>.pod.<namespace>.<name>`: readable in `ip netns list`. Namespaces are DNS
/// labels (no `.`), so the name stays unambiguous even when the pod name has dots.
/// Very long names (longer than a file name may be) fall back to a hash.
pub fn pod_netns(lab: &str, key: &WorkloadKey) -> String {
    let name = format!("bh-{lab}.pod.{}.{}", key.namespace, key.name);
    if name.len() <= 200 {
        name
    } else {
        format!("bh-{lab}.pod.{:016x}", fnv(&key.to_string()))
    }
}

/// The runc container id of a workload: its namespace's name (runc accepts `.`).
pub fn container_id(lab: &str, key: &WorkloadKey) -> String {
    pod_netns(lab, key)
}

/// The lab a namespace or container name belongs to, if it has the form of ours.
pub fn lab_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("bh-")?;
    let (lab, kind) = rest.split_once('.')?;
    let ours = kind == "router" || kind.starts_with("node.") || kind.starts_with("pod.");
    (ours && check_lab(lab).is_ok()).then_some(lab)
}

/// What a link connects, as one letter of its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkRole {
    /// The node end of a pod's veth (the pod end is `eth0`).
    Pod,
    /// The node end of a node's veth to the router.
    Uplink,
    /// The router end of a node's veth.
    Router,
}

/// A link name: `bh` + 4 hex digits of the lab + role letter + 8 hex digits of what it
/// connects = 15 characters, the most a Linux interface name may have.
pub fn link(lab: &str, role: LinkRole, what: &str) -> String {
    let role = match role {
        LinkRole::Pod => 'p',
        LinkRole::Uplink => 'u',
        LinkRole::Router => 'r',
    };
    let lab_hash = fnv(lab) as u16;
    let what_hash = fnv(what) as u32;
    format!("bh{lab_hash:04x}{role}{what_hash:08x}")
}

/// The glob matching the node ends of this lab's workload links: the agent denies what
/// comes from (or goes to) such a link for a workload it does not know (fail-closed).
pub fn pod_link_glob(lab: &str) -> String {
    format!("bh{:04x}p*", fnv(lab) as u16)
}

pub fn lab_dir(lab: &str) -> PathBuf {
    PathBuf::from(LABS_DIR).join(lab)
}

/// FNV-1a: a stable hash (the same on every run and every machine), which std's
/// hasher does not promise.
pub fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_lab_and_links_fit_in_fifteen_characters() {
        let key = WorkloadKey::new("x", "a.b");
        assert_eq!(pod_netns("demo", &key), "bh-demo.pod.x.a.b");
        assert_eq!(node_netns("demo", "node-1"), "bh-demo.node.node-1");
        let l = link("demo", LinkRole::Pod, "x/a.b");
        assert_eq!(l.len(), 15);
        assert!(l.starts_with("bh"));
        assert_ne!(l, link("other", LinkRole::Pod, "x/a.b"));
        assert_ne!(l, link("demo", LinkRole::Uplink, "x/a.b"));
    }

    #[test]
    fn one_labs_prefix_is_never_another_labs() {
        assert_eq!(lab_of("bh-a.pod.x.y"), Some("a"));
        assert_eq!(lab_of("bh-a-b.router"), Some("a-b"));
        assert!(!"bh-a-b.router".starts_with(&prefix("a")));
        assert_eq!(lab_of("bh-a.other"), None);
        assert_eq!(lab_of("bhx-a.router"), None);
        assert_eq!(lab_of("something"), None);
    }

    #[test]
    fn lab_names_are_short_dns_labels() {
        assert!(check_lab("demo-1").is_ok());
        assert!(check_lab("Demo").is_err());
        assert!(check_lab("a.b").is_err());
        assert!(check_lab("-a").is_err());
        assert!(check_lab(&"a".repeat(33)).is_err());
    }
}
