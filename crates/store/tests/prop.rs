//! The store answers every filter as a plain scan over the inserted records would.

mod common;

use bulkhead_record::{Action, FlowRecord};
use bulkhead_store::{FlowFilter, RuleFilter, Store};
use common::*;
use proptest::prelude::*;

const WORKLOADS: &[&str] = &["shop/web-0", "shop/db-0", "infra/cache-0", "infra/dns-0"];
const GROUPS: &[&str] = &["db", "cache"];
const POLICIES: &[&str] = &["db-access", "shop/np"];

fn record() -> impl Strategy<Value = FlowRecord> {
    (
        0..WORKLOADS.len() + 1,
        0..WORKLOADS.len() + 1,
        0..3u8,
        0..4u8,
        0..POLICIES.len(),
        1..3u32,
        0..GROUPS.len(),
        any::<bool>(),
        0..100u64,
    )
        .prop_map(|(s, d, v, how, p, rule, g, violation, t)| {
            let end = |i: usize| match WORKLOADS.get(i) {
                Some(w) => pod(w, w.split('/').nth(1).unwrap_or(""), "10.0.0.1"),
                None => world("192.0.2.1"),
            };
            let verdict = [Action::Allow, Action::Deny, Action::Log][v as usize];
            let mut r = flow(t, verdict, end(s), end(d), 80);
            r.violation = violation;
            r.decided_by = match how {
                0 => None,
                1 => Some(by_mode("Monitor", GROUPS[g])),
                _ => Some(by_rule(POLICIES[p], rule)),
            };
            if how == 3 && s < WORKLOADS.len() {
                // A forged source: the address only, and the workload that sent it.
                r.sender = Some(r.src.clone());
                r.src = world("10.0.0.9");
            }
            r
        })
}

fn filter() -> impl Strategy<Value = FlowFilter> {
    let pick = |n: usize| proptest::option::of(0..n);
    (
        pick(WORKLOADS.len() + 1),
        proptest::option::of(prop_oneof![Just("shop"), Just("infra"), Just("none")]),
        pick(GROUPS.len()),
        proptest::option::of(0..3u8),
        proptest::option::of((0..POLICIES.len(), proptest::option::of(1..3u32))),
        any::<bool>(),
        proptest::option::of(0..100u64),
        proptest::option::of(0..100u64),
        proptest::option::of(0..20usize),
    )
        .prop_map(
            |(w, ns, g, v, rule, violations, since, until, limit)| FlowFilter {
                workload: w.map(|i| WORKLOADS.get(i).unwrap_or(&"x/y").to_string()),
                namespace: ns.map(str::to_string),
                group: g.map(|i| GROUPS[i].to_string()),
                verdict: v.map(|i| [Action::Allow, Action::Deny, Action::Log][i as usize]),
                rule: rule.map(|(p, n)| RuleFilter {
                    policy: POLICIES[p].to_string(),
                    rule: n,
                }),
                violations,
                since_ms: since.map(|s| bulkhead_store::millis(&at(s))),
                until_ms: until.map(|s| bulkhead_store::millis(&at(s))),
                limit,
            },
        )
}

/// The filter's meaning, written out against the record's fields.
fn naive(f: &FlowFilter, all: &[FlowRecord]) -> Vec<FlowRecord> {
    let mut out: Vec<FlowRecord> = all
        .iter()
        .filter(|r| {
            let ends: Vec<_> = [&r.src, &r.dst].into_iter().chain(&r.sender).collect();
            let d = r.decided_by.as_ref();
            let t = humantime::parse_rfc3339(&r.time).unwrap();
            let t = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
            f.workload
                .as_ref()
                .is_none_or(|w| ends.iter().any(|p| p.workload.as_ref() == Some(w)))
                && f.namespace
                    .as_ref()
                    .is_none_or(|n| ends.iter().any(|p| p.namespace.as_ref() == Some(n)))
                && f.group
                    .as_ref()
                    .is_none_or(|g| d.and_then(|d| d.group.as_ref()) == Some(g))
                && f.verdict.is_none_or(|v| v == r.verdict)
                && f.rule.as_ref().is_none_or(|x| {
                    d.and_then(|d| d.rule.as_ref())
                        .is_some_and(|y| y.policy == x.policy && x.rule.is_none_or(|n| n == y.rule))
                })
                && (!f.violations || r.verdict == Action::Deny || r.violation)
                && f.since_ms.is_none_or(|s| t >= s)
                && f.until_ms.is_none_or(|u| t < u)
        })
        .cloned()
        .collect();
    if let Some(n) = f.limit {
        out.drain(..out.len().saturating_sub(n));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_query_equals_a_scan(
        batches in proptest::collection::vec(proptest::collection::vec(record(), 0..40), 1..4),
        filters in proptest::collection::vec(filter(), 1..12),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("store.db")).unwrap();
        for b in &batches {
            s.write_flows(b).unwrap();
        }
        let all: Vec<FlowRecord> = batches.concat();
        for f in &filters {
            let got: Vec<FlowRecord> = s.flows(f).unwrap().into_iter().map(|x| x.1).collect();
            let want = naive(f, &all);
            prop_assert_eq!(&got, &want, "{:?}", f);
            prop_assert!(all.iter().filter(|r| f.matches(r)).count() >= want.len());
            let unlimited = FlowFilter { limit: None, ..f.clone() };
            // Paging from the start: the oldest first.
            let page: Vec<FlowRecord> =
                s.flows_after(f, 0, i64::MAX, 5).unwrap().into_iter().map(|x| x.1).collect();
            let mut first = naive(&unlimited, &all);
            first.truncate(5);
            prop_assert_eq!(&page, &first, "page of {:?}", f);
            prop_assert_eq!(
                all.iter().filter(|r| f.matches(r)).count(),
                naive(&unlimited, &all).len()
            );
        }
    }
}
