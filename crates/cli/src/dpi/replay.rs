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
    let mut found = |request: Option<String>, fs: Vec<Finding>| {
        hits.extend(fs.into_iter().map(|f| Hit {
            src: c.flow.src.clone(),
            dst: c.flow.dst.clone(),
            protocol: c.flow.protocol.clone(),
            request: request.clone(),
            sensor: f.sensor,
            class: f.class,
            location: f.location,
            masked: f.masked,
        }));
    };
    for (from_client, data) in &c.turns {
        let out: Output = if *from_client {
            session.client_bytes(data, &mut |_| Verdict { allowed: true })
        } else {
            session.server_bytes(data)
        };
        for d in out.decided {
            let request = inspector.redact(&d.request.to_string());
            found(Some(request), d.findings);
        }
        found(None, out.findings);
        if out.close {
            break;
        }
    }
    hits
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
