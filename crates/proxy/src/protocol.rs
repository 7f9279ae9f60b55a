//! The two engines the proxy drives, behind traits: protocol detection from the first
//! bytes (`bulkhead-detect`) and per-protocol request sessions (`bulkhead-l7`). Both are
//! pure state machines; the proxy owns every socket, buffer limit and timeout.

use bulkhead_policy::l7::{AppProtocol, L7Request};

/// What detection knows so far.
#[derive(Clone, Debug, PartialEq)]
pub enum Detection {
    NeedMore,
    Known {
        app: AppProtocol,
        /// What detection saw (SNI, method, server version...), for events.
        detail: serde_json::Value,
    },
    /// Not a protocol bulkhead can name.
    Unknown,
}

/// Protocol detection over one connection.
pub trait Detector: Send {
    /// Bytes from the client (`from_client`) or the server, in order per direction.
    fn feed(&mut self, from_client: bool, data: &[u8]) -> Detection;
    /// No more bytes will come before a decision is needed (timeout, budget, close).
    fn finish(&mut self) -> Detection;
}

/// The verdict on one request, as the session needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
}

/// What to do after feeding a session some bytes.
#[derive(Debug, Default)]
pub struct Output {
    pub to_server: Vec<u8>,
    pub to_client: Vec<u8>,
    /// Close both sides after writing what is above.
    pub close: bool,
    /// Requests decided in this step, with the refusal the client got when denied.
    pub decided: Vec<Decided>,
}

#[derive(Debug)]
pub struct Decided {
    pub request: L7Request,
    pub allowed: bool,
    /// A short description of what the client got instead (`-ERR ...`, `403`, `closed`).
    pub refusal: Option<String>,
}

/// One protocol's request-by-request enforcement on one connection.
pub trait Session: Send {
    fn client_bytes(
        &mut self,
        data: &[u8],
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> Output;
    fn server_bytes(&mut self, data: &[u8]) -> Output;
}

/// Where detectors and sessions come from.
pub trait Protocols: Send + Sync + 'static {
    fn detector(&self) -> Box<dyn Detector>;
    /// A session for `app`; None when bulkhead cannot parse its requests (the
    /// connection is then decided on its protocol alone).
    fn session(&self, app: AppProtocol) -> Option<Box<dyn Session>>;
}
