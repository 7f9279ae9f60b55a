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
        time,
        event: "new".into(),
        verdict: Action::Allow,
        protocol: protocol.into(),
        src,
        dst,
        sport: Some(40000),
        dport: Some(dport),
        icmp_type: None,
        icmp_code: None,
        decided_by: None,
        mode: None,
        violation: false,
        learned: true,
        logged: Vec::new(),
        consistent: None,
        len: None,
        packets: None,
        bytes: None,
        generation: 1,
        l7,
    }
}
