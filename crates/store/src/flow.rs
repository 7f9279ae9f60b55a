//! Flow records in the store: the columns a record is filed under, and the filters the
//! usual questions ask (by workload, namespace, group, verdict, rule, violation, time).

use bulkhead_record::{Action, FlowRecord};

/// Which flow records to return. Every given condition must hold; `workload` and
/// `namespace` match either end.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlowFilter {
    /// `namespace/name`.
    pub workload: Option<String>,
    pub namespace: Option<String>,
    /// The group whose mode decided.
    pub group: Option<String>,
    pub verdict: Option<Action>,
    /// The deciding rule.
    pub rule: Option<RuleFilter>,
    /// Only violations: denied, or allowed only because a Monitor group let it through.
    pub violations: bool,
    /// Milliseconds since the epoch, inclusive.
    pub since_ms: Option<i64>,
    /// Milliseconds since the epoch, exclusive.
    pub until_ms: Option<i64>,
    /// Only the last N matching records.
    pub limit: Option<usize>,
}

/// A deciding rule: a policy (as flow records name it), and optionally its rule index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleFilter {
    pub policy: String,
    /// 1-based.
    pub rule: Option<u32>,
}

impl std::str::FromStr for RuleFilter {
    type Err = String;
    /// `POLICY` or `POLICY#N` (policy names may hold a `/`: `ns/name` of a NetworkPolicy).
    fn from_str(s: &str) -> Result<RuleFilter, String> {
        match s.rsplit_once('#') {
            Some((p, n)) => Ok(RuleFilter {
                policy: p.to_string(),
                rule: Some(
                    n.parse()
                        .map_err(|_| format!("{s}: expected POLICY or POLICY#RULE-NUMBER"))?,
                ),
            }),
            None => Ok(RuleFilter {
                policy: s.to_string(),
                rule: None,
            }),
        }
    }
}

impl FlowFilter {
    /// The same question asked of a record in memory (what the SQL means, for tests and
    /// for readers of records not in a store).
    pub fn matches(&self, r: &FlowRecord) -> bool {
        // The sender of a forged source is an end too (see `posting`).
        let ends = [Some(&r.src), Some(&r.dst), r.sender.as_ref()];
        let either = |want: &Option<String>, get: fn(&bulkhead_record::Peer) -> &Option<String>| {
            want.as_ref().is_none_or(|w| {
                (ends.iter().flatten()).any(|p| get(p).as_deref() == Some(w.as_str()))
            })
        };
        let decided = r.decided_by.as_ref();
        let rule = decided.and_then(|d| d.rule.as_ref());
        let t = crate::millis(&r.time);
        either(&self.workload, |p| &p.workload)
            && either(&self.namespace, |p| &p.namespace)
            && self
                .group
                .as_ref()
                .is_none_or(|g| decided.and_then(|d| d.group.as_ref()) == Some(g))
            && self.verdict.is_none_or(|v| r.verdict == v)
            && self.rule.as_ref().is_none_or(|f| {
                rule.is_some_and(|x| x.policy == f.policy && f.rule.is_none_or(|n| n == x.rule))
            })
            && (!self.violations || r.verdict == Action::Deny || r.violation)
            && self.since_ms.is_none_or(|s| t >= s)
            && self.until_ms.is_none_or(|u| t < u)
    }
}

/// The columns a record is filed under: its time, and the application protocol the
/// conversation graph keys on.
pub(crate) struct Columns<'a> {
    pub time_ms: i64,
    pub app: Option<&'a str>,
}

pub(crate) fn columns(r: &FlowRecord) -> Columns<'_> {
    Columns {
        time_ms: crate::millis(&r.time),
        app: r.l7.as_ref().and_then(|v| v["protocol"].as_str()),
    }
}
