//! The agent's side of the L7 proxy: verdicts from the same engine and node scope the
//! kernel's rules come from, and the proxy's events kept in the agent's store, where
//! `bulkhead flows` (decisions, as flow records) and `bulkhead events` (all) read them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

use bulkhead_model::{L4, Protocol};
use bulkhead_policy::engine::AddrOwner;
use bulkhead_policy::l7::{AppProtocol, L7Detail, L7Request};
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
    /// Explanations of allowed connections, by what decides them (see
    /// [`crate::explained`]).
    pub explained: crate::explained::Explained,
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
        server: SocketAddr,
        answers: &bulkhead_proxy::DnsAnswers,
    ) -> Option<bulkhead_proxy::oneshot::Receiver<()>> {
        let engine = self.shared.engine.read().unwrap_or_else(|e| e.into_inner());
        (self.shared.fqdn).learn(&engine, client.ip(), server.ip(), answers)
    }

    fn dns_late(&self) {
        self.shared.fqdn.late();
    }

    /// The sensors of this node's ends of the connection: the server's groups that
    /// inspect what reaches it and the client's that inspect what leaves it. A
    /// connection between two nodes may go through both nodes' proxies (each diverts for
    /// its own workloads' sensors, as for their rules): each reads with its own side's
    /// sensors only, never with the other node's.
    fn inspector(
        &self,
        client: SocketAddr,
        server: SocketAddr,
    ) -> Option<Arc<dyn bulkhead_l7::Inspector>> {
        let engine = self.shared.engine.read().unwrap_or_else(|e| e.into_inner());
        let scope = self.shared.scope.read().unwrap_or_else(|e| e.into_inner());
        let sensors = scope.sensors(&engine, client.ip(), server.ip());
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
            EventKind::Flow { decision, .. }
            | EventKind::Protocol { decision, .. }
            | EventKind::Request { decision, .. } => {
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
        // Only what is worth keeping is serialized and stored: an allowed connection's
        // verdict and protocol are its flow record, below.
        if event.kind.noteworthy() {
            let line = match &event.kind {
                // Sensor events carry no policy decision to name the workloads: name them.
                EventKind::Sensor { .. } => {
                    let line = self.with_workloads(&event);
                    crate::respond::event(&self.shared, &line);
                    line
                }
                _ => serde_json::to_value(&event).unwrap_or_default(),
            };
            if let Some(store) = &self.store {
                let _ = store.send(Record::Event(line));
            }
        }
        // Decisions also become flow records, like the kernel's: the connection's verdict
        // (the kernel never saw it: it was diverted) and every L7 denial.
        // A connection whose protocol is detected for its record (Discover: learning) is
        // recorded at detection, as a new connection with the protocol.
        let mut event_name = None;
        let mut l4 = Protocol::Tcp;
        let (decision, l7, app) = match &event.kind {
            EventKind::Connection { decision } => {
                if decision.allowed && (!self.log_allowed || decision.detect) {
                    return;
                }
                (decision, None, None)
            }
            // A UDP flow the proxy opened: the record the kernel would have written for
            // it (it never saw the flow: diverted), with the protocol read.
            EventKind::Flow { protocol, decision } => {
                if decision.allowed && !self.log_allowed && !decision.violation {
                    return;
                }
                (event_name, l4) = (Some("new"), Protocol::Udp);
                let l7 = json!({ "protocol": protocol });
                (decision, Some(l7), protocol.parse::<AppProtocol>().ok())
            }
            EventKind::Protocol {
                protocol, decision, ..
            } if !decision.allowed => (decision, Some(json!({ "protocol": protocol })), None),
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
                (decision, Some(l7), protocol.parse::<AppProtocol>().ok())
            }
            EventKind::Request {
                protocol,
                request,
                decision,
                refusal,
                pcap,
            } if !decision.allowed || decision.violation => {
                let mut l7 = json!({
                    "protocol": protocol,
                    "request": request,
                    "refusal": refusal,
                    "pcap": pcap,
                });
                if let Some(f) = &event.forwarded_for {
                    l7["forwarded_for"] = json!(f);
                }
                (decision, Some(l7), None)
            }
            _ => return,
        };
        let Some(store) = &self.store else { return };
        let mut r = if decision.detail.is_null() {
            // An allowed decision comes without its explanation (the hot path): explain
            // it now, once, for the record.
            let l7 = app.map(|app| L7Request {
                app,
                detail: L7Detail::None,
            });
            self.explain(
                l4,
                event.client,
                event.server,
                l7.as_ref(),
                decision.allowed,
            )
        } else {
            match serde_json::from_value::<flows::FlowRecord>(decision.detail.clone()) {
                Ok(r) => r,
                Err(_) => return,
            }
        };
        // The proxy's verdict (a protocol whose requests cannot be inspected is refused
        // though the rules allow the connection).
        if !decision.allowed {
            r.verdict = Action::Deny;
        }
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
        let needs_l7 = nv.needs_l7();
        let allowed_without_l7 =
            (!e || v.egress.allowed_without_gated) && (!i || v.ingress.allowed_without_gated);
        let violation =
            nv.allowed && ((e && v.egress.is_violation()) || (i && v.ingress.is_violation()));
        let learned = nv.allowed && ((e && v.egress.is_learned()) || (i && v.ingress.is_learned()));
        // The protocol goes into the record of the connection: one a Discover workload's
        // mode allowed (the divert chain sends those here for it: learning), and any TCP
        // connection taken for its L7 rules or sensors when allowed connections are
        // recorded (the proxy detects its protocol anyway), so that learning from a
        // group with sensors, or with L7 rules, also writes `app:`.
        let detect = protocol == Protocol::Tcp
            && ((learned && engine.compiled().discover_detect_protocols) || self.log_allowed);
        let mut d = Decision {
            allowed: nv.allowed,
            needs_l7,
            allowed_without_l7,
            violation,
            detect,
            quiet: false,
            decided_by: String::new(),
            detail: serde_json::Value::Null,
        };
        // An allowed decision is the hot path (every connection, every Redis command):
        // it is not explained here. The one that ends up in a flow record is explained
        // when it is recorded ([`Authority::record`]), once per connection.
        if nv.allowed && !violation {
            return d;
        }
        let record = self.explain_with(
            &engine,
            &scope,
            &observed(protocol, client, server, nv.allowed),
            l7,
        );
        d.decided_by = record
            .decided_by
            .as_ref()
            .map(|d| d.display())
            .unwrap_or_default();
        d.detail = serde_json::to_value(&record).unwrap_or_default();
        d
    }

    /// The flow record of `client -> server`, with the engine's explanation (its time is
    /// the caller's to set: the event's).
    fn explain(
        &self,
        protocol: Protocol,
        client: SocketAddr,
        server: SocketAddr,
        l7: Option<&L7Request>,
        allowed: bool,
    ) -> flows::FlowRecord {
        // Only allowed connections with no request detail come here (denials are
        // explained when decided). A memoised record's time is the caller's to set.
        let generation = self.generation();
        let o = observed(protocol, client, server, allowed);
        let key = crate::explained::Key::of(&o, false, l7).filter(|_| allowed);
        if let Some(key) = &key
            && let Some(r) = self.explained.get(generation, key, o.sport)
        {
            return r;
        }
        let r = {
            let engine = self.shared.engine.read().unwrap_or_else(|e| e.into_inner());
            let scope = self.shared.scope.read().unwrap_or_else(|e| e.into_inner());
            self.explain_with(&engine, &scope, &o, l7)
        };
        if let Some(key) = key {
            self.explained.put(generation, key, &r);
        }
        r
    }

    fn explain_with(
        &self,
        engine: &bulkhead_policy::engine::Engine,
        scope: &crate::decide::NodeScope,
        o: &Observed,
        l7: Option<&L7Request>,
    ) -> flows::FlowRecord {
        flows::enrich_l7(
            &flows::Enrich {
                engine,
                scope,
                generation: self.generation(),
                settled: false,
                fail_closed: false,
            },
            o,
            l7,
        )
    }
}

/// What the proxy saw of `client -> server`, as the kernel's observations are written.
fn observed(protocol: Protocol, client: SocketAddr, server: SocketAddr, allowed: bool) -> Observed {
    Observed {
        time: SystemTime::now(),
        action: if allowed { Action::Allow } else { Action::Deny },
        src: client.ip(),
        dst: server.ip(),
        protocol: if protocol == Protocol::Udp { 17 } else { 6 },
        sport: Some(client.port()),
        dport: Some(server.port()),
        icmp: None,
        len: None,
        forged: None,
    }
}

impl ProxyAuthority {
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
