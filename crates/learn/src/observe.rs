//! Observed flows, aggregated: one entry per distinct conversation (source, destination,
//! layer-4 service, what was known at layer 7) with how many records said it was allowed
//! or denied. A million records over a few thousand conversations cost a few thousand
//! entries; everything after this step works on the entries, never on the records.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use bulkhead_model::{L4, Labels, Protocol, WorkloadKey};
use bulkhead_policy::l7::{AppProtocol, L7Detail, L7Request, parse_request};
use bulkhead_record::{Action, FlowRecord, Peer};
use rustc_hash::FxHashMap;

/// One end of an observed flow.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum End {
    /// A workload, by its index in [`Observations::workloads`].
    Workload(u32),
    /// A node's address.
    Host(IpAddr),
    /// Any other address (an outside address, or a workload's address the record did not
    /// name: resolved against the inventory when the flows are evaluated).
    Addr(IpAddr),
}

/// A workload as the flow records named it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenWorkload {
    pub key: WorkloadKey,
    pub labels: Labels,
    pub ips: BTreeSet<IpAddr>,
    /// RFC 3339 time of the last record naming it (records carry UTC milliseconds, so
    /// the text orders like the time).
    pub last_seen: String,
}

/// A distinct conversation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: End,
    pub dst: End,
    pub l4: L4,
    /// What the L7 proxy knew: the protocol, and the request when it reported one.
    pub l7: Option<L7Request>,
}

/// How many records saw a conversation, by verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Allowed (and `log`: a Log rule matched and evaluation went on to allow or deny;
    /// the kernel logs the allow or deny separately, so a `log` record counts as seen).
    pub allowed: u64,
    pub denied: u64,
    /// RFC 3339 time of the first record of this conversation.
    pub first_seen: String,
}

impl Tally {
    pub fn total(&self) -> u64 {
        self.allowed + self.denied
    }
}

/// How much was observed: records counted and skipped, distinct conversations, the time
/// span.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub records: u64,
    pub skipped: u64,
    pub conversations: usize,
    pub first: Option<String>,
    pub last: Option<String>,
}

/// Every flow record seen so far, aggregated. Feed records with [`Observations::add`].
#[derive(Clone, Debug, Default)]
pub struct Observations {
    pub workloads: Vec<SeenWorkload>,
    index: FxHashMap<String, u32>,
    pub flows: FxHashMap<FlowKey, Tally>,
    /// Records counted in `flows`.
    pub records: u64,
    /// Records not counted: connection-end records (the `new` record of the same
    /// connection is counted), and records without a usable service or address.
    pub skipped: u64,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
}

impl Observations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Aggregate any iterator of records.
    pub fn from_records<'a>(records: impl IntoIterator<Item = &'a FlowRecord>) -> Self {
        let mut o = Self::new();
        for r in records {
            o.add(r);
        }
        o
    }

    /// Count one record.
    pub fn add(&mut self, r: &FlowRecord) {
        if r.event == "end" {
            self.skipped += 1;
            return;
        }
        let Some(l4) = l4_of(r) else {
            self.skipped += 1;
            return;
        };
        let (Some(src), Some(dst)) = (self.end(&r.src, &r.time), self.end(&r.dst, &r.time)) else {
            self.skipped += 1;
            return;
        };
        let l7 = r.l7.as_ref().and_then(l7_of);
        let t = self.flows.entry(FlowKey { src, dst, l4, l7 }).or_default();
        if t.first_seen.is_empty() || r.time < t.first_seen {
            t.first_seen.clone_from(&r.time);
        }
        match r.verdict {
            Action::Allow | Action::Log => t.allowed += 1,
            Action::Deny => t.denied += 1,
        }
        self.records += 1;
        // `clone_from` reuses the buffer: no allocation per record.
        match &mut self.first_time {
            Some(f) if r.time < *f => f.clone_from(&r.time),
            None => self.first_time = Some(r.time.clone()),
            _ => {}
        }
        match &mut self.last_time {
            Some(l) if r.time > *l => l.clone_from(&r.time),
            None => self.last_time = Some(r.time.clone()),
            _ => {}
        }
    }

    fn end(&mut self, p: &Peer, time: &str) -> Option<End> {
        let ip: Option<IpAddr> = p.ip.parse().ok();
        if let Some(w) = &p.workload {
            let i = match self.index.get(w.as_str()) {
                Some(&i) => i,
                None => {
                    let key = match (&p.namespace, &p.name) {
                        (Some(ns), Some(n)) => WorkloadKey::new(ns, n),
                        _ => match w.split_once('/') {
                            Some((ns, n)) => WorkloadKey::new(ns, n),
                            None => WorkloadKey::new("default", w),
                        },
                    };
                    let mut labels = Labels::new();
                    for (k, v) in &p.labels {
                        labels.insert(k, v);
                    }
                    let i = self.workloads.len() as u32;
                    self.workloads.push(SeenWorkload {
                        key,
                        labels,
                        ips: BTreeSet::new(),
                        last_seen: String::new(),
                    });
                    self.index.insert(w.clone(), i);
                    i
                }
            };
            let s = &mut self.workloads[i as usize];
            if let Some(ip) = ip {
                s.ips.insert(ip);
            }
            if time > s.last_seen.as_str() {
                s.last_seen.clear();
                s.last_seen.push_str(time);
            }
            return Some(End::Workload(i));
        }
        let ip = ip?;
        Some(if p.entity.as_deref() == Some("host") {
            End::Host(ip)
        } else {
            End::Addr(ip)
        })
    }

    /// How much was observed, for reports.
    pub fn summary(&self) -> Summary {
        Summary {
            records: self.records,
            skipped: self.skipped,
            conversations: self.flows.len(),
            first: self.first_time.clone(),
            last: self.last_time.clone(),
        }
    }

    /// Every conversation, sorted.
    pub fn sorted(&self) -> Vec<(&FlowKey, &Tally)> {
        let mut v: Vec<_> = self.flows.iter().collect();
        v.sort_by(|a, b| order(a.0, b.0));
        v
    }

    /// The last time each workload (by `ns/name`) was in a record.
    pub fn last_seen(&self) -> BTreeMap<String, String> {
        self.workloads
            .iter()
            .map(|w| (w.key.to_string(), w.last_seen.clone()))
            .collect()
    }

    /// `ns/name`, `host 10.0.0.1` or the address.
    pub fn display(&self, e: &End) -> String {
        match e {
            End::Workload(i) => self.workloads[*i as usize].key.to_string(),
            End::Host(ip) => format!("host {ip}"),
            End::Addr(ip) => ip.to_string(),
        }
    }
}

fn order(a: &FlowKey, b: &FlowKey) -> std::cmp::Ordering {
    (&a.src, &a.dst, a.l4)
        .cmp(&(&b.src, &b.dst, b.l4))
        .then_with(|| {
            let s = |k: &FlowKey| k.l7.as_ref().map(|r| r.to_string());
            s(a).cmp(&s(b))
        })
}

/// The record's layer-4 service as the engine names it.
pub fn l4_of(r: &FlowRecord) -> Option<L4> {
    let protocol: Protocol = r.protocol.parse().ok()?;
    if protocol.has_ports() {
        return Some(L4::Port {
            protocol,
            port: r.dport.filter(|p| *p != 0)?,
        });
    }
    Some(L4::Icmp {
        v6: protocol == Protocol::Icmpv6,
        icmp_type: r.icmp_type?,
        code: r.icmp_code.unwrap_or(0),
    })
}

/// What the L7 proxy knew: `{"protocol": "redis", "request": "redis GET"}`.
pub fn l7_of(v: &serde_json::Value) -> Option<L7Request> {
    if let Some(req) = v.get("request").and_then(|r| r.as_str())
        && let Ok(r) = parse_request(req)
    {
        return Some(r);
    }
    let app: AppProtocol = v.get("protocol")?.as_str()?.parse().ok()?;
    Some(L7Request {
        app,
        detail: L7Detail::None,
    })
}
