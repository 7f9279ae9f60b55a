//! Inspection of allowed traffic: the sensors' side of a session.
//!
//! A session hands what it has parsed to an [`Inspector`] (HTTP requests with their
//! bodies, SQL text) and streams payload bytes through a [`StreamInspector`] (DLP on
//! responses). The implementation lives elsewhere (`bulkhead-sensor`, wired by the
//! agent): this crate only knows where in each protocol there is something to inspect
//! and what to do when a finding blocks (refuse the request, or close the connection).

use serde::Serialize;

/// One thing a sensor found.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Finding {
    /// The sensor (its name in policy).
    pub sensor: String,
    /// What was found: `sqli`, `xss`, `cmdi`, `path_traversal`, `credit_card`, a
    /// user-defined pattern's name...
    pub class: String,
    /// Where: `query:id`, `header:cookie`, `body:json:user.name`, `sql`, `response body`...
    pub location: String,
    /// The matched content, masked for sensitive data and bounded in length.
    pub masked: String,
    /// Does the sensor block (Block) or only report (Alert)?
    pub block: bool,
}

/// What a session asks of the sensors that apply to its connection.
pub trait Inspector: Send + Sync {
    /// An allowed HTTP/1 request: its raw head and (a bounded prefix of) its body.
    fn http_request(&self, head: &[u8], body: &[u8]) -> Vec<Finding>;
    /// The text of an allowed SQL statement (PostgreSQL Query/Parse, MySQL COM_QUERY...).
    fn sql(&self, text: &[u8]) -> Vec<Finding>;
    /// A scanner for one direction's payload bytes (`from_server`: responses), fed in
    /// order; it finds what spans chunk boundaries.
    fn stream(&self, from_server: bool) -> Box<dyn StreamInspector>;
    /// One whole message a client sent on an upgraded connection (a WebSocket text or
    /// binary message, unmasked): judged as a request body is.
    fn message(&self, payload: &[u8]) -> Vec<Finding> {
        let _ = payload;
        Vec::new()
    }
    /// A response's head (status line and fields, as on the wire), before any byte of
    /// it reaches the client.
    fn response_head(&self, head: &[u8]) -> Vec<Finding> {
        let _ = head;
        Vec::new()
    }
    /// `text` as it may be kept beside a finding (an event's request line): what the
    /// sensors' DLP would find in it, masked.
    fn redact(&self, text: &str) -> String {
        text.to_string()
    }
    /// A body or message was larger than the session holds: only its first `held`
    /// bytes were inspected. The findings of sensors that refuse what they cannot read
    /// whole (`oversize: Block`).
    fn oversize(&self, held: usize) -> Vec<Finding> {
        let _ = held;
        Vec::new()
    }
    /// A body the session cannot read at all (`what` says why: a response in a coding
    /// it does not inflate): the findings of sensors that refuse what they cannot read
    /// whole (`oversize: Block`), as for [`Inspector::oversize`].
    fn unreadable(&self, what: &str) -> Vec<Finding> {
        let _ = what;
        Vec::new()
    }
}

/// Payload bytes of one direction, chunk by chunk.
pub trait StreamInspector: Send {
    fn feed(&mut self, data: &[u8]) -> Vec<Finding>;
}
