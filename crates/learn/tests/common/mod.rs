//! A flow record the agent would write for a new allowed connection.

use bulkhead_record::{Action, FlowRecord, Peer};

pub fn allowed(
    time: String,
    src: Peer,
    dst: Peer,
    protocol: &str,
    dport: u16,
    l7: Option<serde_json::Value>,
) -> FlowRecord {
    FlowRecord {
        sport: Some(40000),
        dport: Some(dport),
        learned: true,
        generation: 1,
        l7,
        ..FlowRecord::new(time, Action::Allow, protocol, src, dst)
    }
}
