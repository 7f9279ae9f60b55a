//! Request-by-request enforcement, one pure state machine per protocol.
//!
//! A [`Session`] sits in the middle of one connection whose protocol is known. The proxy
//! feeds it what each side sends; it parses requests into
//! [`L7Request`](bulkhead_policy::l7::L7Request)s, asks the caller's decision function, and
//! says what to write to each side: allowed bytes unchanged, and for a denied request
//! the protocol's own refusal, injected *in order* after the server's answers to the
//! requests before it, while the denied request never reaches the server. Buffers are
//! bounded: large values stream through without being held.

mod ber;
mod body;
pub mod coding;
pub mod datagram;
mod dns;
mod form;
pub mod h2;
mod h2_request;
mod h2_response;
mod h2_wire;
mod http;
mod inspect;
pub mod kafka;
mod ldap;
mod ldap_msg;
mod mqtt;
mod mqtt_wire;
mod mysql;
mod mysql_reply;
mod postgres;
mod redis;
pub mod resp;
mod sql;
mod sql_split;
mod tls;
pub mod websocket;

use std::sync::Arc;

use bulkhead_policy::l7::{AppProtocol, L7Request};

pub use inspect::{Finding, Inspector, StreamInspector};

pub use dns::{DnsSession, dns_refused, dns_request};
pub use h2::H2Session;
pub use http::HttpSession;
pub use kafka::KafkaSession;
pub use ldap::LdapSession;
pub use mqtt::MqttSession;
pub use mysql::MysqlSession;
pub use postgres::PostgresSession;
pub use redis::RedisSession;
pub use tls::TlsSession;

/// The verdict on one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
}

/// A request the session decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decided {
    pub request: L7Request,
    pub allowed: bool,
    /// What the client got instead, when denied.
    pub refusal: Option<String>,
    /// What sensors found in the request (it is refused when one of them blocks).
    pub findings: Vec<Finding>,
}

/// What to do after a step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub to_server: Vec<u8>,
    pub to_client: Vec<u8>,
    /// Close both sides after writing the above (a protocol error, an oversized request).
    pub close: bool,
    pub decided: Vec<Decided>,
    /// What sensors found outside any request (responses, raw streams). A blocking
    /// finding here closes the connection before the bytes that carried it are written.
    pub findings: Vec<Finding>,
}

impl Output {
    pub fn merge(&mut self, other: Output) {
        self.to_server.extend(other.to_server);
        self.to_client.extend(other.to_client);
        self.close |= other.close;
        self.decided.extend(other.decided);
        self.findings.extend(other.findings);
    }
}

/// One protocol's enforcement on one connection.
pub trait Session: Send {
    fn client_bytes(
        &mut self,
        data: &[u8],
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> Output;
    fn server_bytes(&mut self, data: &[u8]) -> Output;
}

/// A session for `app`, if bulkhead parses its requests, with the sensors that inspect
/// what the connection carries (None: no sensor applies).
pub fn session_for(
    app: AppProtocol,
    inspector: Option<Arc<dyn Inspector>>,
) -> Option<Box<dyn Session>> {
    match app {
        // Sessions whose payloads the sensors do not parse (Redis values, LDAP and MQTT
        // messages, DNS names over TCP) still go through their raw scanners: a card number
        // SET into Redis or published on a topic is found like one on a plain connection.
        AppProtocol::Redis => Some(scanned(Box::new(RedisSession::new()), inspector)),
        AppProtocol::Http => Some(Box::new(HttpSession::new().with_inspector(inspector))),
        AppProtocol::Tls => Some(Box::new(TlsSession::new())),
        AppProtocol::Dns => Some(scanned(Box::new(DnsSession::new()), inspector)),
        AppProtocol::Postgresql => Some(Box::new(PostgresSession::new().with_inspector(inspector))),
        AppProtocol::Mysql => Some(Box::new(MysqlSession::new().with_inspector(inspector))),
        AppProtocol::Ldap => Some(scanned(Box::new(LdapSession::new()), inspector)),
        AppProtocol::Mqtt => Some(scanned(Box::new(MqttSession::new()), inspector)),
        AppProtocol::Kafka => Some(scanned(Box::new(KafkaSession::new()), inspector)),
        // HTTP/2 requests are cut up and inspected like HTTP/1's by the session, and
        // response bodies scanned stream by stream.
        AppProtocol::Http2 | AppProtocol::Grpc => {
            Some(Box::new(H2Session::new().with_inspector(inspector)))
        }
        _ => None,
    }
}

/// `session` with the sensors' raw scanners over what it forwards, if sensors apply.
fn scanned(session: Box<dyn Session>, inspector: Option<Arc<dyn Inspector>>) -> Box<dyn Session> {
    match inspector {
        None => session,
        Some(i) => Box::new(Scanned {
            inner: session,
            up: i.stream(false),
            down: i.stream(true),
        }),
    }
}

/// A session whose payloads the sensors do not parse (Kafka records,
/// Redis values, LDAP and MQTT messages, DNS over TCP):
/// the bytes it passes each way go through the sensors' raw scanners (`packet`
/// context), as on a connection without a session, and a blocking finding closes the
/// connection before the bytes that carried it are written.
struct Scanned {
    inner: Box<dyn Session>,
    up: Box<dyn StreamInspector>,
    down: Box<dyn StreamInspector>,
}

impl Scanned {
    fn scan(&mut self, mut out: Output) -> Output {
        let mut found = Vec::new();
        if !out.to_server.is_empty() {
            found.extend(self.up.feed(&out.to_server));
        }
        if !out.to_client.is_empty() {
            found.extend(self.down.feed(&out.to_client));
        }
        if found.iter().any(|f| f.block) {
            out.to_server.clear();
            out.to_client.clear();
            out.close = true;
        }
        out.findings.extend(found);
        out
    }
}

impl Session for Scanned {
    fn client_bytes(
        &mut self,
        data: &[u8],
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> Output {
        let out = self.inner.client_bytes(data, decide);
        self.scan(out)
    }

    fn server_bytes(&mut self, data: &[u8]) -> Output {
        let out = self.inner.server_bytes(data);
        self.scan(out)
    }
}
