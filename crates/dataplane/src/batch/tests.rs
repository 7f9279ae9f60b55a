//! The pure encoder: framing, what is refused, and no panic on anything the renderer
//! produces (the kernel comparison is in `tests/batch.rs`).

use std::borrow::Cow;

use nftables::expr::Expression;
use nftables::schema::{NfCmd, NfListObject, Rule};
use nftables::stmt::{Counter, Statement};
use nftables::types::NfFamily;
use proptest::prelude::*;

use super::*;
use crate::rules::{accept, addr_field, eq, nfproto};
use crate::{KernelIds, RenderOptions, Ruleset, diff, render};

/// Walk the netlink framing: every message and every attribute (nested ones included)
/// lies within its parent, and the batch is BATCH_BEGIN .. BATCH_END. Returns the
/// message types.
fn frames(bytes: &[u8]) -> Vec<u16> {
    fn attrs(b: &[u8]) {
        let mut off = 0;
        while off < b.len() {
            assert!(off + 4 <= b.len(), "truncated attribute header");
            let len = u16::from_ne_bytes([b[off], b[off + 1]]) as usize;
            let ty = u16::from_ne_bytes([b[off + 2], b[off + 3]]);
            assert!(
                len >= 4 && off + len <= b.len(),
                "attribute overruns its parent"
            );
            if ty & 0x8000 != 0 {
                attrs(&b[off + 4..off + len]);
            }
            off += (len + 3) & !3;
        }
    }
    let mut types = Vec::new();
    let mut off = 0;
    while off < bytes.len() {
        let len = u32::from_ne_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
        assert!(
            len >= 20 && off + len <= bytes.len(),
            "message overruns the batch"
        );
        types.push(u16::from_ne_bytes([bytes[off + 4], bytes[off + 5]]));
        attrs(&bytes[off + 20..off + len]);
        off += len;
    }
    assert_eq!(types.first(), Some(&16), "starts with BATCH_BEGIN");
    assert_eq!(types.last(), Some(&17), "ends with BATCH_END");
    types
}

fn rule(stmts: Vec<Statement<'static>>) -> Transaction {
    Transaction {
        cmds: vec![NfCmd::Add(NfListObject::Rule(Rule {
            family: NfFamily::INet,
            table: Cow::Borrowed("bulkhead"),
            chain: Cow::Borrowed("c"),
            expr: Cow::Owned(stmts),
            handle: None,
            index: None,
            comment: None,
        }))],
        verdict_maps: Default::default(),
    }
}

#[test]
fn delete_table_is_one_message_between_the_markers() {
    let bytes = encode(&crate::diff::delete_table()).unwrap();
    assert_eq!(frames(&bytes), vec![16, (10 << 8) | 2, 17]);
    // DELTABLE: header (16) + nfgenmsg inet (4) + NAME "bulkhead\0" padded (16); it
    // alone asks for an ACK (REQUEST | ACK).
    let msg = &bytes[20..56];
    assert_eq!(u32::from_ne_bytes(msg[0..4].try_into().unwrap()), 36);
    assert_eq!(u16::from_ne_bytes([msg[6], msg[7]]), 0x5);
    assert_eq!(&msg[16..20], &[1, 0, 0, 0]);
    assert_eq!(&msg[24..33], b"bulkhead\0");
}

#[test]
fn what_nft_would_do_differently_is_refused() {
    let counter = rule(vec![Statement::Counter(Counter::Anonymous(None)), accept()]);
    assert!(matches!(encode(&counter), Err(BatchError::Unsupported(_))));
    // `ip saddr` after `meta nfproto ipv6`: nft refuses the rule; so do we.
    let conflict = rule(vec![
        nfproto(true),
        eq(
            addr_field(false, "saddr"),
            Expression::String("10.0.0.1".into()),
        ),
    ]);
    assert!(matches!(encode(&conflict), Err(BatchError::Unsupported(_))));
    // A set nobody declared and whose name says nothing of its type.
    let unknown = rule(vec![eq(
        addr_field(false, "saddr"),
        Expression::String("@mystery".into()),
    )]);
    assert!(matches!(encode(&unknown), Err(BatchError::Unsupported(_))));
}

#[test]
fn implicit_dependency_comes_first() {
    // `ip saddr 10.0.0.1` alone: meta nfproto ipv4 is inserted before the load.
    let tx = rule(vec![eq(
        addr_field(false, "saddr"),
        Expression::String("10.0.0.1".into()),
    )]);
    let bytes = encode(&tx).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let (meta, payload) = (text.find("meta").unwrap(), text.find("payload").unwrap());
    assert!(meta < payload);
}

fn options() -> Vec<RenderOptions> {
    vec![
        RenderOptions::default(),
        RenderOptions {
            node: None,
            pod_interfaces: Some("bh*".into()),
            log_allowed: true,
            silent_drop: true,
            l7_proxy: Some(15001),
            quarantine: ["10.9.9.9", "fd00::9"]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect(),
        },
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the renderer produces, from nothing and from another render, encodes
    /// (nothing it emits is unsupported) into a well-formed batch.
    #[test]
    fn every_rendered_transaction_encodes(
        seed in 0u64..1000,
        workloads in 5usize..120,
        policies in 1usize..25,
        opt in 0usize..2,
    ) {
        let opts = &options()[opt];
        let b = bulkhead_synth::cluster(workloads, policies, seed);
        let engine = bulkhead_policy::Engine::new(&b).unwrap();
        let mut ids = KernelIds::new();
        let first = render(&engine, opts, &mut ids);
        let tx = diff(&Ruleset::default(), &first);
        let bytes = encode(&tx).unwrap_or_else(|e| panic!("{e}"));
        frames(&bytes);
        let b2 = bulkhead_synth::cluster(workloads, policies, seed + 1);
        let engine2 = bulkhead_policy::Engine::new(&b2).unwrap();
        let second = render(&engine2, opts, &mut ids);
        let bytes = encode(&diff(&first, &second)).unwrap_or_else(|e| panic!("{e}"));
        frames(&bytes);
    }
}
