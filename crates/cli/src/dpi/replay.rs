//! `bulkhead dpi inspect --sensor NAME --capture FILE.pcap`: what the sensors would have
//! found in the connections of a capture. Each TCP flow is named by detection (as `dpi
//! detect` does), then its bytes are replayed, in the order they were delivered,
//! through the proxy's own session for that protocol with the sensor attached (HTTP/1
//! and HTTP/2 requests and responses, SQL on the PostgreSQL and MySQL wire, the raw
//! scanners of the other protocols): the code the agent runs on live connections,
//! with every request allowed and the sensor reporting rather than blocking.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use bulkhead_agent::sensors::SensorSet;
use bulkhead_detect::capture::{Conversation, read_conversations};
use bulkhead_l7::{Finding, Inspector, Output, Verdict, session_for};
use bulkhead_policy::l7::AppProtocol;
use bulkhead_sensor::Sensor;
use serde::Serialize;

use super::detect::{DetectFormat, print, read_file, warn_damage};

/// Bytes of each flow replayed at most (both sides together).
const PER_FLOW: usize = 64 << 20;

/// One thing a sensor found in a flow of the capture.
#[derive(Debug, Serialize)]
struct Hit {
    src: String,
    dst: String,
    protocol: String,
    /// The request it was found in (as events show it, DLP masked), or none for a
    /// response or a raw stream.
    request: Option<String>,
    sensor: String,
    class: String,
    location: String,
    masked: String,
}

pub fn run(file: &Path, sensor: Sensor, format: DetectFormat) -> Result<u8> {
    let bytes = read_file(file)?;
    let (conversations, damage) = read_conversations(&bytes, PER_FLOW)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let inspector: Arc<dyn Inspector> = Arc::new(SensorSet::new(vec![sensor], vec![]));
    let mut hits = Vec::new();
    let mut cut = 0;
    for c in &conversations {
        hits.extend(replay(c, &inspector));
        cut += usize::from(c.cut.is_some());
    }
    print(format, &hits, table)?;
    warn_damage(file, damage, "findings");
    if cut > 0 {
        eprintln!(
            "note: {cut} of {} TCP flows were inspected only up to bytes the capture lost \
             (or the first {} MiB)",
            conversations.len(),
            PER_FLOW >> 20
        );
    }
    Ok(0)
}

/// The findings of one flow, replayed through its protocol's session.
fn replay(c: &Conversation, inspector: &Arc<dyn Inspector>) -> Vec<Hit> {
    let Ok(app) = c.flow.protocol.parse::<AppProtocol>() else {
        return Vec::new();
    };
    let Some(mut session) = session_for(app, Some(inspector.clone())) else {
        return Vec::new();
    };
    let mut hits = Vec::new();
    let found = |hits: &mut Vec<Hit>, request: Option<String>, fs: Vec<Finding>| {
        hits.extend(
            fs.into_iter()
                .map(|f| Hit::new(c, request.clone(), f.sensor, f.class, f.location, f.masked)),
        );
    };
    for (from_client, data) in &c.turns {
        let out: Output = if *from_client {
            session.client_bytes(data, &mut |_| Verdict { allowed: true })
        } else {
            session.server_bytes(data)
        };
        let quiet = out.findings.is_empty() && out.decided.iter().all(|d| d.findings.is_empty());
        for d in out.decided {
            let request = inspector.redact(&d.request.to_string());
            found(&mut hits, Some(request), d.findings);
        }
        found(&mut hits, None, out.findings);
        if out.close {
            // The proxy ends the connection here for a reason of its own (a request it
            // cannot read as the protocol, one too large): nothing past this point
            // reaches the server, which a report of findings alone would not show.
            // (Only on a connection replayed from its start: one the capture joined
            // midway, the proxy would not have read from there.)
            if quiet && c.opened && !out.to_client.is_empty() {
                hits.push(refused(c, *from_client, data, &out.to_client, inspector));
            }
            break;
        }
    }
    hits
}

/// The row for a connection the proxy would close without a finding: the first line of
/// its answer (`HTTP/1.1 400 Bad Request`) and of the client's bytes it came on (with
/// requests pipelined ahead of the refused one, theirs).
fn refused(
    c: &Conversation,
    from_client: bool,
    data: &[u8],
    answer: &[u8],
    inspector: &Arc<dyn Inspector>,
) -> Hit {
    let line = |b: &[u8]| {
        let first = b.split(|&x| x == b'\n').next().unwrap_or(b);
        // Escaped, as binary protocols' answers (a TLS alert) are no text.
        let text = first.trim_ascii_end().escape_ascii().to_string();
        match text.char_indices().nth(200) {
            Some((i, _)) => format!("{}...", &text[..i]),
            None => text.to_string(),
        }
    };
    let request = from_client.then(|| inspector.redact(&line(data)));
    let location = if from_client { "request" } else { "response" };
    Hit::new(
        c,
        request,
        "proxy".into(),
        "refused".into(),
        location.into(),
        line(answer),
    )
}

impl Hit {
    fn new(
        c: &Conversation,
        request: Option<String>,
        sensor: String,
        class: String,
        location: String,
        masked: String,
    ) -> Hit {
        Hit {
            src: c.flow.src.clone(),
            dst: c.flow.dst.clone(),
            protocol: c.flow.protocol.clone(),
            request,
            sensor,
            class,
            location,
            masked,
        }
    }
}

/// A request as one table cell: its line without the headers, at most 80 characters.
fn short(request: &str) -> String {
    let line = request.split(" header:").next().unwrap_or(request);
    match line.char_indices().nth(79) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line.to_string(),
    }
}

fn table(hits: &[Hit]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    t.set_header([
        "SOURCE",
        "DESTINATION",
        "PROTOCOL",
        "FOUND",
        "WHERE",
        "MATCH",
        "REQUEST",
    ]);
    for h in hits {
        t.add_row([
            h.src.as_str(),
            &h.dst,
            &h.protocol,
            &h.class,
            &h.location,
            &h.masked,
            &h.request.as_deref().map_or("-".into(), short),
        ]);
    }
    format!("{t}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_detect::capture::FlowResult;

    fn http(turns: &[&[u8]], opened: bool) -> Vec<Hit> {
        let c = Conversation {
            flow: FlowResult {
                l4: "TCP".into(),
                src: "10.0.0.1:40000".into(),
                dst: "10.0.0.2:80".into(),
                protocol: "http".into(),
                detail: Default::default(),
            },
            turns: turns.iter().map(|t| (true, t.to_vec())).collect(),
            cut: None,
            opened,
        };
        let sensor = Sensor::new(&super::super::inspect::spec("all").unwrap()).unwrap();
        let inspector: Arc<dyn Inspector> = Arc::new(SensorSet::new(vec![sensor], vec![]));
        replay(&c, &inspector)
    }

    /// A request the proxy answers with 400 (nmap's `http-passwd` sends targets that are
    /// no path) never reaches the server: a `refused` row says so, and nothing after it
    /// is replayed; a connection the capture joined midway gets no such row.
    #[test]
    fn a_request_the_proxy_refuses_is_a_row() {
        let bad = b"GET %2E%2E%2Fetc%2Fpasswd HTTP/1.1\r\nHost: a\r\n\r\n";
        let after = b"GET /?q=1'%20or%201=1--%20 HTTP/1.1\r\nHost: a\r\n\r\n";
        let hits = http(&[bad, after], true);
        assert_eq!(hits.len(), 1, "{hits:?}");
        let h = &hits[0];
        assert_eq!((h.sensor.as_str(), h.class.as_str()), ("proxy", "refused"));
        assert_eq!(h.masked, "HTTP/1.1 400 Bad Request");
        assert_eq!(
            h.request.as_deref(),
            Some("GET %2E%2E%2Fetc%2Fpasswd HTTP/1.1")
        );
        assert!(http(&[bad], false).is_empty());
        // The same request in a path is judged, not refused.
        let hits = http(&[after], true);
        assert!(hits.iter().all(|h| h.class == "sqli"), "{hits:?}");
        assert!(!hits.is_empty());
    }
}
