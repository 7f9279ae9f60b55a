//! RFC 5424 messages: one per alert, with the alert's fields as structured data, sent
//! as one UDP datagram (RFC 5426) or octet-counted over TCP (RFC 6587, which every
//! modern collector reads: rsyslog, syslog-ng, Vector, Fluent Bit).

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use bulkhead_policy::response::{ResponseAction, Severity, Transport};

use crate::Alert;

/// The enterprise number RFC 5612 reserves for documentation and examples; ours until
/// bulkhead has its own.
const SD_ID: &str = "bulkhead@32473";

/// The message for `alert` under `rule`, if `action` is a syslog action.
pub fn message(alert: &Alert, rule: &str, node: &str, action: &ResponseAction) -> Option<String> {
    let ResponseAction::Syslog { facility, .. } = action else {
        return None;
    };
    // Syslog severities: 2 critical, 3 error, 4 warning, 5 notice.
    let severity = match alert.incident.severity {
        Some(Severity::Critical) => 2,
        Some(Severity::High) => 3,
        Some(Severity::Medium) => 4,
        _ => 5,
    };
    let pri = u32::from(*facility) * 8 + severity;
    let time = if alert.time.is_empty() {
        humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
    } else {
        alert.time.clone()
    };
    let kind = alert
        .incident
        .types
        .first()
        .map(|t| t.as_str())
        .unwrap_or("-");
    let mut sd = format!("[{SD_ID} rule=\"{}\" type=\"{kind}\"", param(rule));
    let mut add = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            sd.push_str(&format!(" {k}=\"{}\"", param(v)));
        }
    };
    add("severity", alert.incident.severity.map(|s| s.as_str()));
    add("src", alert.ends.src_workload.as_deref());
    add("srcIP", Some(&alert.ends.src_ip));
    add("dst", alert.ends.dst_workload.as_deref());
    add("dstIP", Some(&alert.ends.dst_ip));
    let port = alert.ends.dport.map(|p| p.to_string());
    add("dport", port.as_deref());
    add("protocol", Some(&alert.ends.protocol));
    add("sensor", alert.incident.sensor.as_deref());
    add("policy", alert.incident.policy.as_deref());
    sd.push(']');
    Some(format!(
        "<{pri}>1 {time} {} bulkhead {} {} {sd} \u{feff}{}",
        header_field(node, 255),
        std::process::id(),
        header_field(kind, 32),
        alert.summary
    ))
}

/// PARAM-VALUE escaping: `"`, `\` and `]` are escaped with a backslash.
fn param(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Header fields are printable US-ASCII without spaces, bounded; `-` when empty.
fn header_field(v: &str, max: usize) -> String {
    let s: String = v
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if s.is_empty() { "-".into() } else { s }
}

/// Send one message.
pub fn send(address: &str, transport: Transport, msg: &str) -> std::io::Result<()> {
    let addr: SocketAddr = address
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?;
    match transport {
        Transport::Udp => {
            let bind = if addr.is_ipv6() {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            };
            let s = UdpSocket::bind(bind)?;
            s.send_to(msg.as_bytes(), addr)?;
        }
        Transport::Tcp => {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            s.set_write_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(format!("{} {msg}", msg.len()).as_bytes())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_policy::response::{EventType, Incident};

    #[test]
    fn messages_follow_rfc5424() {
        let alert = Alert {
            time: "2026-12-03T04:00:00.123Z".into(),
            incident: Incident {
                types: vec![EventType::Sensor],
                severity: Some(Severity::High),
                sensor: Some("sqli".into()),
                ..Incident::default()
            },
            ends: crate::Ends {
                src_workload: Some("shop/web-1".into()),
                src_ip: "10.0.0.1".into(),
                dst_ip: "10.0.0.2".into(),
                dport: Some(5432),
                protocol: "TCP".into(),
                ..Default::default()
            },
            summary: "sensor sqli: 1' OR \"1\"=\"1".into(),
            detail: serde_json::Value::Null,
        };
        let action = ResponseAction::Syslog {
            address: "127.0.0.1:514".into(),
            transport: Transport::Udp,
            facility: 16,
        };
        let m = message(&alert, "r]1", "node 1", &action).unwrap();
        // local0 (16) * 8 + error (3).
        assert!(
            m.starts_with("<131>1 2026-12-03T04:00:00.123Z node1 bulkhead "),
            "{m}"
        );
        assert!(
            m.contains(" sensor [bulkhead@32473 rule=\"r\\]1\" type=\"sensor\""),
            "{m}"
        );
        assert!(m.contains("dport=\"5432\""), "{m}");
        assert!(m.ends_with("\u{feff}sensor sqli: 1' OR \"1\"=\"1"), "{m}");
    }
}
