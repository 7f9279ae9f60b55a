//! The two engines the proxy drives, behind traits: protocol detection from the first
//! bytes (`bulkhead-detect`) and per-protocol request sessions (`bulkhead-l7`). Both are
//! pure state machines; the proxy owns every socket, buffer limit and timeout.

use std::sync::Arc;

use bulkhead_l7::Inspector;
use bulkhead_policy::l7::AppProtocol;

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
    /// How many of the client's first bytes are a PROXY protocol header (a load
    /// balancer's) before the protocol detected: passed to the server as they are, and
    /// not fed to the session.
    fn prefix(&self) -> usize {
        0
    }
}

pub use bulkhead_l7::{Decided, Output, Session, Verdict};

/// Where detectors and sessions come from.
pub trait Protocols: Send + Sync + 'static {
    fn detector(&self) -> Box<dyn Detector>;
    /// A session for `app`, with the sensors that inspect the connection; None when
    /// bulkhead cannot parse its requests (the connection is then decided on its
    /// protocol alone, and sensors see its raw bytes).
    fn session(
        &self,
        app: AppProtocol,
        inspector: Option<Arc<dyn Inspector>>,
    ) -> Option<Box<dyn Session>>;
}

/// Detection by `bulkhead-detect`, sessions by `bulkhead-l7`.
pub struct Builtin {
    /// Bytes detection buffers per direction.
    pub limit: usize,
}

struct Detect(bulkhead_detect::Detector);

impl Detector for Detect {
    fn feed(&mut self, from_client: bool, data: &[u8]) -> Detection {
        let dir = if from_client {
            bulkhead_detect::Dir::ToServer
        } else {
            bulkhead_detect::Dir::ToClient
        };
        convert(self.0.feed(dir, data))
    }

    fn finish(&mut self) -> Detection {
        convert(self.0.finish())
    }

    fn prefix(&self) -> usize {
        self.0.prefix()
    }
}

fn convert(d: bulkhead_detect::Detection) -> Detection {
    match d {
        bulkhead_detect::Detection::NeedMore => Detection::NeedMore,
        bulkhead_detect::Detection::Unknown => Detection::Unknown,
        bulkhead_detect::Detection::Known { app, detail } => Detection::Known {
            app,
            detail: serde_json::Value::Object(detail),
        },
    }
}

impl Protocols for Builtin {
    fn detector(&self) -> Box<dyn Detector> {
        Box::new(Detect(bulkhead_detect::Detector::new(self.limit)))
    }

    fn session(
        &self,
        app: AppProtocol,
        inspector: Option<Arc<dyn Inspector>>,
    ) -> Option<Box<dyn Session>> {
        bulkhead_l7::session_for(app, inspector)
    }
}
