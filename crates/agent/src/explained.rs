//! Explanations of flows, memoised. Explaining a verdict (rule words, labels, skipped
//! rules) costs tens of microseconds, far more than proxying or logging the connection,
//! and a busy client opens the same connection thousands of times a second: its records
//! differ only in time, source port and length. So the kernel's logged flows, the ends
//! conntrack reports and the proxy's allowed connections are explained once per what
//! the explanation depends on and per policy generation.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use bulkhead_policy::l7::{AppProtocol, L7Detail, L7Request};

use crate::flows::{self, Action, Enrich, FlowRecord, Observed};

/// Explanations kept at most (cleared when full: a scan touches many keys once).
const CAPACITY: usize = 4096;

/// Everything a flow's explanation depends on besides the policy generation (the
/// source port is not: rules select destination ports).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub dport: Option<u16>,
    pub icmp: Option<(u8, u8)>,
    pub action: Action,
    /// Whether the kernel had caught up with the engine (a record says if they agree
    /// only then).
    pub settled: bool,
    pub app: Option<AppProtocol>,
    pub forged: bool,
}

impl Key {
    /// The key of an observation with no request detail (None when it has one: requests
    /// are too varied to keep).
    pub fn of(o: &Observed, settled: bool, l7: Option<&L7Request>) -> Option<Key> {
        l7.is_none_or(|r| r.detail == L7Detail::None).then(|| Key {
            src: o.src,
            dst: o.dst,
            protocol: o.protocol,
            dport: o.dport,
            icmp: o.icmp,
            action: o.action,
            settled,
            app: l7.map(|r| r.app),
            forged: o.forged.is_some(),
        })
    }
}

#[derive(Default)]
pub struct Explained {
    map: Mutex<(u64, HashMap<Key, FlowRecord>)>,
}

impl Explained {
    /// The record explained for `key` in `generation`, with the source port of the
    /// caller's connection; its time and length are the caller's to set.
    pub fn get(&self, generation: u64, key: &Key, sport: Option<u16>) -> Option<FlowRecord> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut r = (map.0 == generation).then(|| map.1.get(key))??.clone();
        r.sport = sport;
        Some(r)
    }

    /// Keep `r` for `key`, unless it names an address outside the inventory (the DNS
    /// names it carries change without a new generation) or was explained by another
    /// generation than `generation`.
    pub fn put(&self, generation: u64, key: Key, r: &FlowRecord) {
        let external = |p: &flows::Peer| p.entity.as_deref() == Some("world");
        if r.generation != generation || external(&r.src) || external(&r.dst) {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.0 != generation || map.1.len() >= CAPACITY {
            map.1.clear();
            map.0 = generation;
        }
        map.1.insert(key, r.clone());
    }

    /// [`flows::enrich_l7`], from the memo when the same flow was explained before.
    pub fn enrich_l7(&self, cx: &Enrich, o: &Observed, l7: Option<&L7Request>) -> FlowRecord {
        let Some(key) = Key::of(o, cx.settled, l7) else {
            return flows::enrich_l7(cx, o, l7);
        };
        if let Some(mut r) = self.get(cx.generation, &key, o.sport) {
            r.time = flows::format_time(o.time);
            r.len = o.len;
            return r;
        }
        let r = flows::enrich_l7(cx, o, l7);
        self.put(cx.generation, key, &r);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::Peer;
    use bulkhead_policy::l7::L7Detail;

    fn observed(sport: u16) -> Observed {
        Observed {
            time: std::time::SystemTime::UNIX_EPOCH,
            action: Action::Allow,
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            protocol: 6,
            sport: Some(sport),
            dport: Some(6379),
            icmp: None,
            len: None,
            forged: None,
        }
    }

    fn record(generation: u64, dst_entity: Option<&str>) -> FlowRecord {
        let peer = |ip: &str, entity: Option<&str>| Peer {
            ip: ip.into(),
            entity: entity.map(str::to_string),
            ..Peer::default()
        };
        FlowRecord {
            generation,
            sport: Some(40000),
            ..FlowRecord::new(
                "t".into(),
                Action::Allow,
                "TCP",
                peer("10.0.0.1", None),
                peer("10.0.0.2", dst_entity),
            )
        }
    }

    #[test]
    fn a_record_is_reused_only_in_its_generation_and_with_the_callers_port() {
        let memo = Explained::default();
        let key = Key::of(&observed(40000), false, None).unwrap();
        memo.put(3, key.clone(), &record(3, None));
        let hit = memo.get(3, &key, Some(40001)).expect("kept");
        assert_eq!(hit.sport, Some(40001));
        // Another generation: the policy may have changed.
        assert!(memo.get(4, &key, Some(40001)).is_none());
        // The same flow as the kernel settled on it is another key.
        let settled = Key::of(&observed(40000), true, None).unwrap();
        assert!(memo.get(3, &settled, None).is_none());
    }

    #[test]
    fn world_peers_stale_generations_and_requests_are_not_kept() {
        let memo = Explained::default();
        let key = Key::of(&observed(40000), false, None).unwrap();
        memo.put(3, key.clone(), &record(3, Some("world")));
        assert!(memo.get(3, &key, None).is_none());
        // Explained while the policy changed: kept under neither generation.
        memo.put(4, key.clone(), &record(3, None));
        assert!(memo.get(4, &key, None).is_none());
        let request = L7Request {
            app: AppProtocol::Redis,
            detail: L7Detail::Redis {
                command: "GET".into(),
            },
        };
        assert!(Key::of(&observed(1), false, Some(&request)).is_none());
    }
}
