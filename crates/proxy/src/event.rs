//! What the proxy reports: every diverted connection (its L4 verdict, the protocol it
//! turned out to speak), every request it decided, and how the connection ended.

use std::net::SocketAddr;
use std::path::PathBuf;

use bulkhead_l7::Finding;
use serde::Serialize;

use crate::authority::Decision;

#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// RFC 3339 time.
    pub time: String,
    /// The proxy's connection number (events of one connection share it).
    pub conn: u64,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// The client a load balancer's PROXY protocol header named (`client` is then the
    /// balancer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_for: Option<String>,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum EventKind {
    /// The connection's verdict before any byte was read.
    Connection { decision: Decision },
    /// A client's datagrams to a server, allowed: the first one of the UDP flow the
    /// proxy opened for them (each datagram is decided; the flow is to UDP what the
    /// connection is to TCP, and becomes its flow record).
    Flow {
        protocol: String,
        decision: Decision,
    },
    /// The application protocol detected from the first bytes, and what policy says of
    /// a connection speaking it.
    Protocol {
        protocol: String,
        #[serde(skip_serializing_if = "serde_json::Value::is_null")]
        detail: serde_json::Value,
        decision: Decision,
        /// The first bytes of the connection (refusals only).
        #[serde(skip_serializing_if = "Option::is_none")]
        pcap: Option<PathBuf>,
    },
    /// One request or command, decided.
    Request {
        protocol: String,
        /// In the one-line request syntax of `explain --request` (`redis FLUSHALL`).
        request: String,
        decision: Decision,
        /// What the client got instead, when denied (`-ERR ...`, `403`, `closed`).
        #[serde(skip_serializing_if = "Option::is_none")]
        refusal: Option<String>,
        /// Packets of the connection around it (denials only).
        #[serde(skip_serializing_if = "Option::is_none")]
        pcap: Option<PathBuf>,
    },
    /// Sensors found something in traffic that policy allowed.
    Sensor {
        protocol: String,
        /// The request that carried it, if it was in one (`http GET /search`).
        #[serde(skip_serializing_if = "Option::is_none")]
        request: Option<String>,
        findings: Vec<Finding>,
        /// Was the request refused or the connection closed (a finding of a Block sensor)?
        blocked: bool,
        /// What the client got instead (`403 Forbidden`, `closed`).
        #[serde(skip_serializing_if = "Option::is_none")]
        refusal: Option<String>,
        /// Packets of the connection up to the finding.
        #[serde(skip_serializing_if = "Option::is_none")]
        pcap: Option<PathBuf>,
    },
    /// The connection is over.
    Closed {
        /// Bytes from the client to the server, and back.
        bytes_up: u64,
        bytes_down: u64,
        /// Requests decided on the connection (0 when only its protocol mattered).
        requests: u64,
        duration_ms: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Keep this event: the connection had a noteworthy one before (see
        /// [`EventKind::noteworthy`]); a clean connection's end is not worth a row.
        #[serde(skip)]
        keep: bool,
    },
}

impl EventKind {
    /// Worth keeping as an event: a refusal, a Monitor violation, a denied or violating
    /// request, a sensor finding, or the end of a connection that had one of those.
    /// An allowed connection's verdict and protocol are in its flow record already;
    /// storing them again as events tripled the bookkeeping of every connection.
    pub fn noteworthy(&self) -> bool {
        match self {
            EventKind::Connection { decision }
            | EventKind::Flow { decision, .. }
            | EventKind::Protocol { decision, .. } => !decision.allowed || decision.violation,
            EventKind::Request { .. } | EventKind::Sensor { .. } => true,
            EventKind::Closed { keep, .. } => *keep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(allowed: bool, violation: bool) -> EventKind {
        EventKind::Flow {
            protocol: "dns".into(),
            decision: Decision {
                allowed,
                needs_l7: false,
                allowed_without_l7: allowed,
                violation,
                detect: false,
                quiet: false,
                decided_by: String::new(),
                detail: serde_json::Value::Null,
            },
        }
    }

    /// A UDP flow is kept as an event only when it violates a Monitor group's policy:
    /// an allowed one is its flow record.
    #[test]
    fn a_flow_is_an_event_only_when_it_violates() {
        assert!(!flow(true, false).noteworthy());
        assert!(flow(true, true).noteworthy());
        let json = serde_json::to_value(flow(true, true)).unwrap();
        assert_eq!(json["event"], "flow");
    }
}
