//! Recorded flows under a policy, decided by the one engine: coverage of a proposal and
//! what-if replay (which recorded flows a new policy would newly deny or allow, by rule
//! and by workload).

use std::collections::BTreeMap;

use bulkhead_model::Inventory;
use bulkhead_policy::engine::AddrOwner;
use bulkhead_policy::explain::{Explanation, SideExplanation};
use bulkhead_policy::spec::{Bundle, PolicySet};
use bulkhead_policy::{CompileError, Connection, Endpoint, Engine};
use serde::Serialize;

use crate::observe::{End, FlowKey, Observations};

/// An engine over an inventory and a policy.
pub fn engine(inventory: &Inventory, policy: &PolicySet) -> Result<Engine, Vec<CompileError>> {
    Engine::new(&Bundle {
        inventory: inventory.clone(),
        policy: policy.clone(),
        ..Bundle::default()
    })
}

/// The engine's view of a recorded end.
pub fn endpoint(engine: &Engine, obs: &Observations, e: &End) -> Endpoint {
    match e {
        End::Workload(i) => {
            let s = &obs.workloads[*i as usize];
            match engine.workload_id(&s.key) {
                Some(id) => Endpoint::Workload {
                    id,
                    addr: s.ips.iter().next().copied(),
                },
                None => Endpoint::External {
                    addr: s.ips.iter().next().copied(),
                    names: Vec::new(),
                },
            }
        }
        End::Host(ip) => Endpoint::Host { addr: *ip },
        End::Addr(ip) => match engine.owner_of(ip) {
            Some(AddrOwner::Workload(id)) => Endpoint::Workload {
                id,
                addr: Some(*ip),
            },
            Some(AddrOwner::Host) => Endpoint::Host { addr: *ip },
            None => Endpoint::External {
                addr: Some(*ip),
                names: Vec::new(),
            },
        },
    }
}

fn allowed(engine: &Engine, obs: &Observations, k: &FlowKey) -> bool {
    let (s, d) = (endpoint(engine, obs, &k.src), endpoint(engine, obs, &k.dst));
    engine
        .verdict(&Connection {
            src: &s,
            dst: &d,
            l4: k.l4,
            l7: k.l7.as_ref(),
        })
        .allowed
}

fn explain(engine: &Engine, obs: &Observations, k: &FlowKey) -> Explanation {
    let (s, d) = (endpoint(engine, obs, &k.src), endpoint(engine, obs, &k.dst));
    engine.explain(&Connection {
        src: &s,
        dst: &d,
        l4: k.l4,
        l7: k.l7.as_ref(),
    })
}

/// One recorded conversation, for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Seen {
    pub src: String,
    pub dst: String,
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    pub flows: u64,
}

fn seen(obs: &Observations, k: &FlowKey, flows: u64) -> Seen {
    Seen {
        src: obs.display(&k.src),
        dst: obs.display(&k.dst),
        service: k.l4.to_string(),
        request: k.l7.as_ref().map(|r| r.to_string()),
        flows,
    }
}

/// How much of what was observed a policy allows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Coverage {
    /// Records of allowed flows, and how many of them the policy allows.
    pub allowed_flows: u64,
    pub covered_flows: u64,
    /// `covered_flows / allowed_flows` in percent (100 when nothing was observed).
    pub percent: f64,
    /// Records of denied flows, and how many of them the policy would allow.
    pub denied_flows: u64,
    pub denied_but_allowed_flows: u64,
    /// Allowed conversations the policy does not allow (at most 20, most flows first).
    pub uncovered: Vec<Seen>,
    /// Denied conversations the policy would allow (at most 20).
    pub opened: Vec<Seen>,
}

/// Evaluate every observed conversation under `policy` (use a proposal's
/// [`crate::Proposal::enforced`] policy to measure what its rules allow).
pub fn coverage(
    obs: &Observations,
    inventory: &Inventory,
    policy: &PolicySet,
) -> Result<Coverage, Vec<CompileError>> {
    let e = engine(inventory, policy)?;
    let mut c = Coverage {
        allowed_flows: 0,
        covered_flows: 0,
        percent: 100.0,
        denied_flows: 0,
        denied_but_allowed_flows: 0,
        uncovered: Vec::new(),
        opened: Vec::new(),
    };
    for (k, t) in obs.sorted() {
        let ok = allowed(&e, obs, k);
        c.allowed_flows += t.allowed;
        c.denied_flows += t.denied;
        if ok {
            c.covered_flows += t.allowed;
            c.denied_but_allowed_flows += t.denied;
            if t.denied > 0 {
                c.opened.push(seen(obs, k, t.denied));
            }
        } else if t.allowed > 0 {
            c.uncovered.push(seen(obs, k, t.allowed));
        }
    }
    if c.allowed_flows > 0 {
        c.percent = c.covered_flows as f64 * 100.0 / c.allowed_flows as f64;
    }
    for v in [&mut c.uncovered, &mut c.opened] {
        v.sort_by_key(|s| std::cmp::Reverse(s.flows));
        v.truncate(20);
    }
    Ok(c)
}

/// One conversation whose verdict changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    #[serde(flatten)]
    pub seen: Seen,
    /// `allowed` or `denied`: what it becomes.
    pub becomes: &'static str,
    /// What decided it under the current policy.
    pub was: String,
    /// What decides it under the new policy.
    pub now: String,
    /// The workload whose side decides under the new policy (`ns/name`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
}

/// Changes counted under one key (a rule or a workload).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Bucket {
    pub key: String,
    pub newly_allowed_flows: u64,
    pub newly_denied_flows: u64,
    /// Distinct conversations.
    pub newly_allowed: usize,
    pub newly_denied: usize,
}

/// What replaying the recorded flows against a new policy changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Replay {
    pub flows: u64,
    pub conversations: usize,
    pub unchanged_flows: u64,
    pub newly_allowed_flows: u64,
    pub newly_denied_flows: u64,
    pub newly_allowed: Vec<Change>,
    pub newly_denied: Vec<Change>,
    /// By the rule (or mode) that decides under the new policy, most flows first.
    pub by_rule: Vec<Bucket>,
    /// By the workload whose side decides under the new policy, most flows first.
    pub by_workload: Vec<Bucket>,
}

impl Replay {
    pub fn is_empty(&self) -> bool {
        self.newly_allowed.is_empty() && self.newly_denied.is_empty()
    }
}

/// The side that decided: the one that denied; for an allow, the one a rule decided.
fn deciding(x: &Explanation) -> &SideExplanation {
    if !x.allowed {
        return if !x.egress.allowed {
            &x.egress
        } else {
            &x.ingress
        };
    }
    if x.ingress.rule.is_some() || x.egress.rule.is_none() && x.ingress.decided_at == "mode" {
        &x.ingress
    } else if x.egress.rule.is_some() || x.egress.decided_at == "mode" {
        &x.egress
    } else {
        &x.ingress
    }
}

/// `Policy web egress rule 2 (name)`, `Protect mode (group db)`, ...
pub fn decided_by(s: &SideExplanation) -> String {
    let words = |r: &bulkhead_policy::explain::RuleRef| {
        let name = r
            .rule_name
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        format!(
            "{} {} {} rule {}{name}",
            r.kind, r.policy, r.direction, r.rule
        )
    };
    if let Some(r) = &s.rule {
        return words(r);
    }
    // Open only because an L7 rule may allow its requests (what no L7 rule matches, the
    // mode or isolation refuses): those rules decide, request by request.
    let l7_allows: Vec<String> = (s.l7.iter())
        .filter(|g| g.rule.action == "Allow")
        .map(|g| words(&g.rule))
        .collect();
    let refused_otherwise =
        s.mode == Some(bulkhead_policy::spec::Mode::Protect) || s.decided_at == "network-policy";
    if s.allowed && refused_otherwise && !l7_allows.is_empty() {
        return format!("{} (per request)", l7_allows.join(", "));
    }
    match s.decided_at {
        "mode" => match (&s.mode, &s.group) {
            (Some(m), Some(g)) => format!("{m} mode (group {g})"),
            (Some(m), None) => format!("{m} mode (ungrouped)"),
            _ => "mode".into(),
        },
        "network-policy" => format!("NetworkPolicy isolation ({})", s.isolated_by.join(", ")),
        "host" => "node traffic (no rule)".into(),
        other => other.to_string(),
    }
}

fn subject(x: &Explanation, s: &SideExplanation) -> Option<String> {
    let w = if std::ptr::eq(s, &x.egress) {
        &x.src
    } else {
        &x.dst
    };
    w.contains('/').then(|| w.clone())
}

/// Replay every recorded conversation under `current` and `new` (both over the same
/// inventory): which would be newly denied or newly allowed, grouped by the deciding
/// rule and by workload.
pub fn replay(
    obs: &Observations,
    inventory: &Inventory,
    current: &PolicySet,
    new: &PolicySet,
) -> Result<Replay, Vec<CompileError>> {
    let old_e = engine(inventory, current)?;
    let new_e = engine(inventory, new)?;
    let mut r = Replay::default();
    let mut by_rule: BTreeMap<String, Bucket> = BTreeMap::new();
    let mut by_workload: BTreeMap<String, Bucket> = BTreeMap::new();
    for (k, t) in obs.sorted() {
        let flows = t.total();
        r.flows += flows;
        r.conversations += 1;
        let (a, b) = (allowed(&old_e, obs, k), allowed(&new_e, obs, k));
        if a == b {
            r.unchanged_flows += flows;
            continue;
        }
        let (xo, xn) = (explain(&old_e, obs, k), explain(&new_e, obs, k));
        let side = deciding(&xn);
        let c = Change {
            seen: seen(obs, k, flows),
            becomes: if b { "allowed" } else { "denied" },
            was: decided_by(deciding(&xo)),
            now: decided_by(side),
            workload: subject(&xn, side),
        };
        let bump = |m: &mut BTreeMap<String, Bucket>, key: &str| {
            let e = m.entry(key.to_string()).or_insert_with(|| Bucket {
                key: key.to_string(),
                ..Bucket::default()
            });
            if b {
                e.newly_allowed_flows += flows;
                e.newly_allowed += 1;
            } else {
                e.newly_denied_flows += flows;
                e.newly_denied += 1;
            }
        };
        bump(&mut by_rule, &c.now);
        bump(
            &mut by_workload,
            c.workload.as_deref().unwrap_or("(outside or node)"),
        );
        if b {
            r.newly_allowed_flows += flows;
            r.newly_allowed.push(c);
        } else {
            r.newly_denied_flows += flows;
            r.newly_denied.push(c);
        }
    }
    let sorted = |m: BTreeMap<String, Bucket>| {
        let mut v: Vec<Bucket> = m.into_values().collect();
        v.sort_by(|a, b| {
            (b.newly_allowed_flows + b.newly_denied_flows)
                .cmp(&(a.newly_allowed_flows + a.newly_denied_flows))
                .then_with(|| a.key.cmp(&b.key))
        });
        v
    };
    r.by_rule = sorted(by_rule);
    r.by_workload = sorted(by_workload);
    Ok(r)
}
