//! TLS: the connection is decided once, on the server name (SNI) of the client's first
//! ClientHello, before any byte reaches the server. Allowed, both directions then pass
//! untouched (the proxy holds no keys: what follows is encrypted). Denied, the client gets
//! a fatal `access_denied` alert and the connection closes.
//!
//! The ClientHello is parsed by `bulkhead-detect` (tls-parser underneath), the same code
//! that detected the protocol, so detection and enforcement cannot disagree on the name.

use bulkhead_detect::ParseError;
use bulkhead_detect::tls::client_hello;
use bulkhead_policy::l7::{AppProtocol, L7Detail, L7Request};

use crate::{Decided, Output, Session, Verdict};

/// A ClientHello larger than this (records included) is refused: real ones are a few
/// hundred bytes, post-quantum key shares bring them to a few KiB.
pub const MAX_HELLO: usize = 64 * 1024;

/// `alert(21) TLS1.2 len 2: fatal(2) access_denied(49)`.
const ACCESS_DENIED: [u8; 7] = [21, 3, 3, 0, 2, 2, 49];

enum State {
    Hello(Vec<u8>),
    Pass,
    Closed,
}

pub struct TlsSession {
    state: State,
}

impl Default for TlsSession {
    fn default() -> Self {
        TlsSession::new()
    }
}

impl TlsSession {
    pub fn new() -> TlsSession {
        TlsSession {
            state: State::Hello(Vec::new()),
        }
    }
}

impl Session for TlsSession {
    fn client_bytes(
        &mut self,
        data: &[u8],
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> Output {
        let mut out = Output::default();
        let held = match &mut self.state {
            State::Pass => {
                out.to_server.extend_from_slice(data);
                return out;
            }
            State::Closed => return out,
            State::Hello(held) => held,
        };
        held.extend_from_slice(data);
        let sni = match client_hello(held) {
            Err(ParseError::Incomplete) if held.len() < MAX_HELLO => return out,
            Ok(hello) => Some(hello.sni),
            // Not a ClientHello (or one too large to hold): nothing to decide a name on.
            Err(_) => None,
        };
        let request = L7Request {
            app: AppProtocol::Tls,
            detail: L7Detail::Tls {
                sni: sni.clone().flatten(),
            },
        };
        let allowed = sni.is_some() && decide(&request).allowed;
        if allowed {
            out.to_server = std::mem::take(held);
            self.state = State::Pass;
        } else {
            out.to_client.extend_from_slice(&ACCESS_DENIED);
            out.close = true;
            self.state = State::Closed;
        }
        out.decided.push(Decided {
            request,
            allowed,
            refusal: (!allowed).then(|| "TLS alert access_denied".to_string()),
            findings: Vec::new(),
        });
        out
    }

    fn server_bytes(&mut self, data: &[u8]) -> Output {
        let mut out = Output::default();
        if !matches!(self.state, State::Closed) {
            out.to_client.extend_from_slice(data);
        }
        out
    }
}
