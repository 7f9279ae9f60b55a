//! The agent's side of the L7 proxy: verdicts from the same engine and node scope the
//! kernel's rules come from, and the proxy's events kept in the agent's store, where
//! `bulkhead flows` (decisions, as flow records) and `bulkhead events` (all) read them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

use bulkhead_model::{L4, Protocol};
use bulkhead_policy::engine::AddrOwner;
use bulkhead_policy::l7::L7Request;
use bulkhead_proxy::{Authority, Decision, Event, EventKind};
use bulkhead_store::{Record, Sink};
use serde_json::json;

use crate::flows::{self, Action, Observed};
use crate::reconcile::Shared;

pub struct ProxyAuthority {
    pub shared: Arc<Shared>,
    /// Events and flow records go to the store's writer thread (never blocking a
    /// connection on the disk).
    pub store: Option<Arc<Sink>>,
    pub log_allowed: bool,
    pub sensors: crate::sensors::SensorCache,
}

impl Authority for ProxyAuthority {
    fn decide(&self, client: SocketAddr, server: SocketAddr, l7: Option<&L7Request>) -> Decision {
        self.decide_l4(Protocol::Tcp, client, server, l7)
    }

    fn decide_datagram(
        &self,
        client: SocketAddr,
        server: SocketAddr,
        l7: Option<&L7Request>,
    ) -> Decision {
        self.decide_l4(Protocol::Udp, client, server, l7)
    }

    fn generation(&self) -> u64 {
        self.shared
            .generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    fn learns_dns(&self, client: SocketAddr) -> bool {
        let engine = self.shared.engine.read().unwrap_or_else(|e| e.into_inner());
        self.shared.fqdn.learns(&engine, client.ip())
    }

    fn dns_answers(
        &self,
        client: SocketAddr,
        answers: &bulkhead_proxy::DnsAnswers,
    ) -> Option<bulkhead_proxy::oneshot::Receiver<()>> {
        let engine = self.shared.engine.read().unwrap_or_else(|e| e.into_inner());
        self.shared.fqdn.learn(&engine, client.ip(), answers)
    }

    fn dns_late(&self) {
        self.shared.fqdn.late();
    }

    fn inspector(
        &self,
        _client: SocketAddr,
        server: SocketAddr,
    ) -> Option<Arc<dyn bulkhead_l7::Inspector>> {
        let engine = self.shared.engine.read().unwrap_or_else(|e| e.into_inner());
        let Some(AddrOwner::Workload(w)) = engine.owner_of(&server.ip()) else {
            return None;
        };
        let sensors = engine.sensors_of(w);
        self.sensors.get(&engine, self.generation(), sensors)
    }

    fn latency(&self, stage: bulkhead_proxy::authority::Stage, protocol: &str, seconds: f64) {
        self.shared
            .counters
            .proxy_latency
            .observe(stage.as_str(), protocol, seconds);
    }

    fn record(&self, event: Event) {
        let c = &self.shared.counters;
        match &event.kind {
            EventKind::Connection { decision } => {
                c.proxy_connections.fetch_add(1, Relaxed);
                if !decision.allowed {
                    c.proxy_refusals.fetch_add(1, Relaxed);
                }
            }
            EventKind::Protocol { decision, .. } | EventKind::Request { decision, .. } => {
                if !decision.allowed {
                    c.proxy_refusals.fetch_add(1, Relaxed);
                }
            }
            EventKind::Closed { requests, .. } => {
                c.proxy_requests.fetch_add(*requests, Relaxed);
            }
            EventKind::Sensor { blocked, .. } => {
                c.sensor_findings.fetch_add(1, Relaxed);
                if *blocked {
                    c.proxy_refusals.fetch_add(1, Relaxed);
                }
            }
        }
        let line = match &event.kind {
            // Sensor events carry no policy decision to name the workloads: name them.
            EventKind::Sensor { .. } => self.with_workloads(&event),
            _ => serde_json::to_value(&event).unwrap_or_default(),
        };
        crate::respond::event(&self.shared, &line);
        let Some(store) = &self.store else { return };
        // A connection taken only to detect its protocol keeps its flow record alone.
        let quiet = match &event.kind {
            EventKind::Connection { decision } | EventKind::Protocol { decision, .. } => {
                decision.quiet && decision.allowed
            }
            _ => false,
        };
        if !quiet {
            let _ = store.send(Record::Event(line));
        }
        // Decisions also become flow records, like the kernel's: the connection's verdict
        // (the kernel never saw it: it was diverted) and every L7 denial.
        // A connection whose protocol is detected for its record (Discover: learning) is
        // recorded at detection, as a new connection with the protocol.
        let mut event_name = None;
        let (decision, l7) = match &event.kind {
            EventKind::Connection { decision } => {
                if decision.allowed && (!self.log_allowed || decision.detect) {
                    return;
                }
                (decision, None)
            }
            EventKind::Protocol {
                protocol, decision, ..
            } if !decision.allowed => (decision, Some(json!({ "protocol": protocol }))),
            EventKind::Protocol {
                protocol,
                detail,
                decision,
                ..
            } if decision.detect && self.log_allowed => {
                event_name = Some("new");
                let mut l7 = json!({ "protocol": protocol });
                if !detail.is_null() {
                    l7["detail"] = detail.clone();
                }
                (decision, Some(l7))
            }
            EventKind::Request {
                protocol,
                request,
                decision,
                refusal,
                pcap,
            } if !decision.allowed || decision.violation => (
                decision,
                Some(json!({
                    "protocol": protocol,
                    "request": request,
                    "refusal": refusal,
                    "pcap": pcap,
                })),
            ),
            _ => return,
        };
        let Ok(mut r) = serde_json::from_value::<flows::FlowRecord>(decision.detail.clone()) else {
            return;
        };
        r.time = event.time.clone();
        r.event = event_name
            .unwrap_or(if l7.is_some() { "l7" } else { "new" })
            .into();
        r.l7 = l7.map(|mut v| {
            v["proxy_conn"] = json!(event.conn);
            v
        });
        crate::respond::flow(&self.shared, &r);
        let _ = store.send(Record::Flow(Box::new(r)));
    }
}

impl ProxyAuthority {
    /// The verdict from the node's view, for TCP or UDP.
    fn decide_l4(
        &self,
        protocol: Protocol,
        client: SocketAddr,
        server: SocketAddr,
        l7: Option<&L7Request>,
    ) -> Decision {
        let engine = self.shared.engine.read().unwrap_or_else(|e| e.into_inner());
        let scope = self.shared.scope.read().unwrap_or_else(|e| e.into_inner());
        let l4 = L4::Port {
            protocol,
            port: server.port(),
        };
        let nv = scope.decide_l7(&engine, client.ip(), server.ip(), l4, l7);
        let v = &nv.verdict;
        let (e, i) = (nv.egress_here, nv.ingress_here);
        let needs_l7 =
            nv.allowed && ((e && !v.egress.gated.is_empty()) || (i && !v.ingress.gated.is_empty()));
        let allowed_without_l7 =
            (!e || v.egress.allowed_without_gated) && (!i || v.ingress.allowed_without_gated);
        // Allowed requests are the hot path (every Redis command): no record, no
        // explanation. Everything that can end up in a record gets the full treatment.
        if l7.is_some_and(|r| r.detail != bulkhead_policy::l7::L7Detail::None)
            && nv.allowed
            && !v.is_violation()
        {
            return Decision {
                allowed: true,
                needs_l7,
                allowed_without_l7,
                violation: false,
                detect: false,
                quiet: false,
                decided_by: String::new(),
                detail: serde_json::Value::Null,
            };
        }
        let observed = Observed {
            time: SystemTime::now(),
            action: if nv.allowed {
                Action::Allow
            } else {
                Action::Deny
            },
            src: client.ip(),
            dst: server.ip(),
            protocol: if protocol == Protocol::Udp { 17 } else { 6 },
            sport: Some(client.port()),
            dport: Some(server.port()),
            icmp: None,
            len: None,
        };
        let record = flows::enrich_l7(
            &flows::Enrich {
                engine: &engine,
                scope: &scope,
                generation: self
                    .shared
                    .generation
                    .load(std::sync::atomic::Ordering::Acquire),
                settled: false,
                fail_closed: false,
            },
            &observed,
            l7,
        );
        // The protocol goes into the record of the connection: one a Discover workload's
        // mode allowed (the divert chain sends those here for it: learning), and any TCP
        // connection taken for its L7 rules or sensors when allowed connections are
        // recorded (the proxy detects its protocol anyway), so that learning from a
        // group with sensors, or with L7 rules, also writes `app:`.
        let detect = protocol == Protocol::Tcp
            && ((record.learned && engine.compiled().discover_detect_protocols)
                || self.log_allowed);
        Decision {
            allowed: nv.allowed,
            needs_l7,
            allowed_without_l7,
            violation: record.violation,
            detect,
            quiet: false,
            decided_by: record
                .decided_by
                .as_ref()
                .map(|d| d.display())
                .unwrap_or_default(),
            detail: serde_json::to_value(&record).unwrap_or_default(),
        }
    }

    /// The event with `src`/`dst` workload names (`ns/name`), as flow records have them.
    fn with_workloads(&self, event: &Event) -> serde_json::Value {
        let mut v = serde_json::to_value(event).unwrap_or_default();
        let engine = self.shared.engine.read().unwrap_or_else(|e| e.into_inner());
        for (key, addr) in [("src", event.client), ("dst", event.server)] {
            if let Some(AddrOwner::Workload(id)) = engine.owner_of(&addr.ip())
                && let Some(w) = engine.workload(id)
            {
                v[key] = json!({ "workload": w.key.to_string() });
            }
        }
        v
    }
}
