//! What the proxy asks of the node agent: verdicts from the shared engine, and a place to
//! put what happened. The proxy never decides on its own; keeping the engine behind this
//! trait keeps the proxy free of the agent's files, watchers and kernel state.

use std::net::SocketAddr;
use std::sync::Arc;

use bulkhead_l7::Inspector;
use bulkhead_policy::l7::L7Request;
use serde::Serialize;

use crate::event::Event;

/// The verdict for a connection, or for one request on it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    /// May it go on (the connection open, the request reach the server)?
    pub allowed: bool,
    /// With no request known: do rules wait for requests (must the proxy look inside)?
    pub needs_l7: bool,
    /// With no request known: the answer if no rule that looks at requests can match,
    /// i.e. for a protocol nobody can name (`unknown`).
    pub allowed_without_l7: bool,
    /// Allowed only because a Monitor group lets it through: report it.
    pub violation: bool,
    /// With no request known: detect the protocol even though no rule needs it, so that
    /// the connection's record carries it (a workload in Discover mode: learning), then
    /// splice the connection unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub detect: bool,
    /// Set by the proxy on the events of a connection it takes only to detect its
    /// protocol: the flow record they carry is all there is to keep (no `connection`,
    /// `protocol` or `closed` events for every connection of a Discover workload).
    #[serde(skip)]
    pub quiet: bool,
    /// The deciding rule or mode, for people (`ingress: Policy redis-from-node ingress rule 1`).
    pub decided_by: String,
    /// Whatever else the agent wants in the record (workloads, labels, rule origin...).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

pub trait Authority: Send + Sync + 'static {
    /// Decide `client -> server` with what is known at layer 7 (None: nothing yet).
    fn decide(&self, client: SocketAddr, server: SocketAddr, l7: Option<&L7Request>) -> Decision;
    /// [`Authority::decide`] for a UDP datagram `client -> server` (DNS).
    fn decide_datagram(
        &self,
        client: SocketAddr,
        server: SocketAddr,
        l7: Option<&L7Request>,
    ) -> Decision;
    /// Record an event (called from the proxy's threads; must not block for long).
    fn record(&self, event: Event);
    /// Changes whenever the answers of [`Authority::decide`] may change (a new policy or
    /// inventory): connections cache request verdicts until it moves.
    fn generation(&self) -> u64;
    /// Does the agent learn from `client`'s DNS answers (FQDN egress: an egress rule
    /// of the client names a `dns:` peer)? The proxy then reads every DNS response it
    /// relays to it, over UDP and TCP.
    fn learns_dns(&self, _client: SocketAddr) -> bool {
        false
    }
    /// A DNS response from the resolver `server`, about to be relayed to `client`: the
    /// agent learns the addresses of names that `dns:` peers match (when it trusts the
    /// resolver). The receiver completes once the kernel holds them; None: nothing to
    /// wait for (no name matched, already programmed, or a resolver not trusted).
    fn dns_answers(
        &self,
        _client: SocketAddr,
        _server: SocketAddr,
        _answers: &crate::DnsAnswers,
    ) -> Option<tokio::sync::oneshot::Receiver<()>> {
        None
    }
    /// An answer was relayed before the agent confirmed its addresses (the hold's bound
    /// passed): counted.
    fn dns_late(&self) {}
    /// The sensors that inspect `client -> server` (None: no sensor applies).
    fn inspector(&self, _client: SocketAddr, _server: SocketAddr) -> Option<Arc<dyn Inspector>> {
        None
    }
    /// How long the proxy held a connection's bytes at `stage`, for `protocol` (the
    /// proxy's added latency; called from the proxy's threads, must be cheap).
    fn latency(&self, _stage: Stage, _protocol: &str, _seconds: f64) {}
}

/// Where the proxy adds latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// What the connection's first bytes spent in the proxy: held from the first byte
    /// (either side) until the protocol was decided, when rules look at it; read, shown
    /// to the detector and written, when only the record wants it (Discover).
    Detect,
    /// From client bytes read to the requests in them decided (parsing, policy, sensors):
    /// one observation per read that completed at least one request.
    Request,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Detect => "detect",
            Stage::Request => "request",
        }
    }
}

/// Authorities for the proxy's own tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// A policy that changes when the test says: its generation, and whether the
    /// connection is then allowed and needs its requests decided.
    #[derive(Default)]
    pub(crate) struct Changing {
        pub generation: AtomicU64,
        pub refused: AtomicBool,
        pub needs_l7: AtomicBool,
    }

    impl Authority for Changing {
        fn decide(
            &self,
            _: SocketAddr,
            _: SocketAddr,
            _: Option<&bulkhead_policy::l7::L7Request>,
        ) -> Decision {
            Decision {
                allowed: !self.refused.load(Ordering::Relaxed),
                needs_l7: self.needs_l7.load(Ordering::Relaxed),
                allowed_without_l7: true,
                violation: false,
                detect: false,
                quiet: false,
                decided_by: "test".into(),
                detail: serde_json::Value::Null,
            }
        }
        fn decide_datagram(
            &self,
            c: SocketAddr,
            s: SocketAddr,
            l7: Option<&bulkhead_policy::l7::L7Request>,
        ) -> Decision {
            self.decide(c, s, l7)
        }
        fn record(&self, _: crate::event::Event) {}
        fn generation(&self) -> u64 {
            self.generation.load(Ordering::Relaxed)
        }
    }
}
