//! Turning what users type (`shop/web-1`, `web-1`, `10.0.0.7`, `api.example.com`) into
//! engine endpoints.

use std::net::IpAddr;

use bulkhead_model::WorkloadKey;
use bulkhead_policy::{Endpoint, Engine};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error("no workload named {0:?}{1}")]
    Unknown(String, String),
    #[error("{0:?} is ambiguous: {1}; write NAMESPACE/NAME")]
    Ambiguous(String, String),
}

/// Resolve a user's endpoint: `NAMESPACE/NAME`, a unique `NAME`, an IP address (a
/// workload's or node's address is that workload or node), or a DNS name (an external
/// destination for `dns` peers).
pub fn resolve(engine: &Engine, text: &str) -> Result<Endpoint, EndpointError> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(Endpoint::External {
            addr: Some(ip),
            names: Vec::new(),
        });
    }
    if let Some((ns, name)) = text.split_once('/') {
        return match engine.workload_id(&WorkloadKey::new(ns, name)) {
            Some(id) => Ok(Endpoint::Workload { id, addr: None }),
            None => Err(EndpointError::Unknown(
                text.to_string(),
                suggest(engine, name),
            )),
        };
    }
    let matches: Vec<_> = engine
        .workloads()
        .into_iter()
        .filter(|(_, w)| w.key.name == text)
        .collect();
    match matches.as_slice() {
        [(id, _)] => Ok(Endpoint::Workload {
            id: *id,
            addr: None,
        }),
        [] if text.contains('.') => Ok(Endpoint::External {
            addr: None,
            names: vec![text.to_string()],
        }),
        [] => Err(EndpointError::Unknown(
            text.to_string(),
            suggest(engine, text),
        )),
        many => Err(EndpointError::Ambiguous(
            text.to_string(),
            many.iter()
                .map(|(_, w)| w.key.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

/// `; did you mean shop/web-1?` when a workload name is close.
fn suggest(engine: &Engine, name: &str) -> String {
    let workloads = engine.workloads();
    let keys: Vec<String> = workloads.iter().map(|(_, w)| w.key.to_string()).collect();
    let names: Vec<&str> = workloads.iter().map(|(_, w)| w.key.name.as_str()).collect();
    match bulkhead_policy::compile::closest(name, &names) {
        Some(n) => {
            let full = keys
                .iter()
                .find(|k| k.ends_with(&format!("/{n}")))
                .cloned()
                .unwrap_or_default();
            format!("; did you mean {full}?")
        }
        None => String::new(),
    }
}
