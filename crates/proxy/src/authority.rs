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
    /// The sensors that inspect `client -> server` (None: no sensor applies).
    fn inspector(&self, _client: SocketAddr, _server: SocketAddr) -> Option<Arc<dyn Inspector>> {
        None
    }
}
