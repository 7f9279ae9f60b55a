//! The DNS sets of FQDN egress (`d4_*`/`d6_*`) are filled at run time by the agent's DNS
//! path and emptied by the kernel (element timeouts). The reconcile diff, whose desired
//! state comes from policy alone, must never add, delete or flush their elements, and
//! must create them with `flags timeout`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use bulkhead_dataplane::diff::{diff, element_ops};
use bulkhead_dataplane::names::{dns_set_names, is_dns_set};
use bulkhead_dataplane::ruleset::{ChainState, Elem, Ruleset, SetKind, SetState};
use nftables::schema::{NfCmd, NfListObject, SetFlag};
use proptest::prelude::*;

fn set(kind: SetKind, elems: impl IntoIterator<Item = Elem>) -> SetState {
    SetState {
        kind,
        elems: Some(Arc::new(elems.into_iter().collect())),
    }
}

fn v4(n: u32) -> Elem {
    Elem::Addr(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | n)))
}

fn v6(n: u32) -> Elem {
    Elem::Addr(IpAddr::V6(Ipv6Addr::new(
        0xfd00, 0, 0, 0, 0, 0, 0, n as u16,
    )))
}

/// A ruleset with one DNS set pair (kernel-side elements `dns`), a quarantine set and
/// a selector set (elements from policy), and a chain.
fn ruleset(pattern: &str, dns: &[u32], quarantine: &[u32], marks: &[u32]) -> Ruleset {
    let (d4, d6) = dns_set_names(pattern);
    let mut sets = BTreeMap::new();
    sets.insert(d4, set(SetKind::Addrs4, dns.iter().map(|&n| v4(n))));
    sets.insert(d6, set(SetKind::Addrs6, dns.iter().map(|&n| v6(n))));
    sets.insert(
        "quarantine4".to_string(),
        set(SetKind::Addrs4, quarantine.iter().map(|&n| v4(n))),
    );
    sets.insert(
        "s_000000000001".to_string(),
        set(SetKind::Marks, marks.iter().map(|&m| Elem::Mark(m))),
    );
    let mut chains = BTreeMap::new();
    chains.insert(
        "e_p_000000000001".to_string(),
        ChainState {
            hook: None,
            rules: Arc::new(Vec::new()),
            hash: Some(7),
        },
    );
    Ruleset {
        exists: true,
        sets,
        chains,
    }
}

/// The sets whose elements a transaction touches (add, delete or flush).
fn touched(tx: &bulkhead_dataplane::Transaction) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for c in &tx.cmds {
        match c {
            NfCmd::Add(NfListObject::Element(e)) | NfCmd::Delete(NfListObject::Element(e)) => {
                out.insert(e.name.to_string());
            }
            NfCmd::Flush(nftables::schema::FlushObject::Set(s)) => {
                out.insert(s.name.to_string());
            }
            _ => {}
        }
    }
    out
}

proptest! {
    /// Whatever the kernel holds in the DNS sets (observed) and whatever else changes,
    /// neither the full diff nor the element path writes a DNS set's elements; the
    /// other sets are still reconciled.
    #[test]
    fn the_diff_never_touches_dns_elements(
        kernel_dns in proptest::collection::vec(0u32..64, 0..12),
        q_old in proptest::collection::vec(0u32..8, 0..4),
        q_new in proptest::collection::vec(0u32..8, 0..4),
        m_old in proptest::collection::vec(16u32..32, 0..4),
        m_new in proptest::collection::vec(16u32..32, 0..4),
    ) {
        let observed = ruleset("*.example.com", &kernel_dns, &q_old, &m_old);
        // The desired state from policy: the DNS sets exist, empty.
        let desired = ruleset("*.example.com", &[], &q_new, &m_new);
        let tx = diff(&observed, &desired);
        let t = touched(&tx);
        prop_assert!(t.iter().all(|s| !is_dns_set(s)), "{t:?}");
        let q_changed = q_old.iter().collect::<BTreeSet<_>>() != q_new.iter().collect();
        prop_assert_eq!(t.contains("quarantine4"), q_changed);
        // No set is deleted or re-created either.
        prop_assert!(!tx.cmds.iter().any(|c| matches!(
            c,
            NfCmd::Add(NfListObject::Set(_)) | NfCmd::Delete(NfListObject::Set(_))
        )));
        let ops = element_ops(&observed, &desired).expect("element-only change");
        prop_assert!(ops.iter().all(|o| !is_dns_set(&o.set)), "{ops:?}");
        // And the other way round: a desired state that (wrongly) lists elements does
        // not make the diff add them either.
        let tx = diff(&desired, &observed);
        prop_assert!(touched(&tx).iter().all(|s| !is_dns_set(s)));
    }
}

#[test]
fn dns_sets_are_created_with_timeouts_and_removed_with_their_pattern() {
    let empty = Ruleset {
        exists: true,
        ..Ruleset::default()
    };
    let with = ruleset("api.example.com", &[], &[], &[]);
    let tx = diff(&empty, &with);
    let (d4, d6) = dns_set_names("api.example.com");
    let mut created = BTreeSet::new();
    for c in &tx.cmds {
        if let NfCmd::Add(NfListObject::Set(s)) = c {
            let timeout = s
                .flags
                .as_ref()
                .is_some_and(|f| f.contains(&SetFlag::Timeout));
            assert_eq!(timeout, is_dns_set(&s.name), "{}", s.name);
            created.insert(s.name.to_string());
        }
    }
    assert!(
        created.contains(&d4) && created.contains(&d6),
        "{created:?}"
    );
    // The pattern goes: its sets go (with whatever elements the kernel held).
    let observed = ruleset("api.example.com", &[1, 2], &[], &[]);
    let other = ruleset("*.example.org", &[], &[], &[]);
    let tx = diff(&observed, &other);
    let deleted: BTreeSet<String> = tx
        .cmds
        .iter()
        .filter_map(|c| match c {
            NfCmd::Delete(NfListObject::Set(s)) => Some(s.name.to_string()),
            _ => None,
        })
        .collect();
    assert!(
        deleted.contains(&d4) && deleted.contains(&d6),
        "{deleted:?}"
    );
    // The names are versioned: the pre-timeout layout's `d4_<hash of the pattern>` is
    // not adopted.
    assert_ne!(
        d4,
        bulkhead_dataplane::names::content_name("d4_", b"api.example.com")
    );
}
