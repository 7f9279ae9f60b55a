//! `bulkhead dpi inspect --sensor NAME`: run one sensor of `bulkhead-sensor` over
//! payloads read one per line on stdin, one JSON verdict per line on stdout, so the
//! detectors can be measured on any corpus and compared with other tools.

use std::io::{BufRead, Write};

use anyhow::{Result, bail};
use bulkhead_sensor::{Attack, DlpKind, Finding, Sensor, SensorSpec, decode};
use clap::{Args, ValueEnum};

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The sensor to run: sqli, xss, cmdi, path_traversal, credit_card, ssn,
    /// aws_access_key, private_key, email, dlp (every DLP kind) or all.
    #[arg(long, value_parser = sensor_arg)]
    pub sensor: String,
    /// What one line is.
    #[arg(long, value_enum, default_value_t = InspectContext::Param)]
    pub context: InspectContext,
    /// Lines are percent-escaped (as the corpora's payload columns): decode `%XX`
    /// first, with no `+`-to-space step.
    #[arg(long)]
    pub escaped: bool,
    /// Inspect the connections of this capture (pcap or pcapng) instead of lines on
    /// stdin: each TCP flow replayed through the proxy's session for its protocol, one
    /// finding per line.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["context", "escaped"])]
    pub capture: Option<std::path::PathBuf>,
    /// With --capture: `json` (one finding per line), `table` or `yaml`.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = super::detect::DetectFormat::Json, requires = "capture")]
    pub format: super::detect::DetectFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InspectContext {
    /// One parameter value.
    Param,
    /// A query string (`a=1&b=2`).
    Query,
    /// A request body; form, JSON or XML guessed from the bytes.
    Body,
    /// A whole raw HTTP request (head, blank line, body).
    Request,
    /// A whole SQL statement, as the PostgreSQL and MySQL proxies see one on the wire
    /// (the marks of an injection that already happened; DLP over its text).
    Sql,
}

/// An unknown sensor name is a usage error (exit 2), found as the command line is read.
fn sensor_arg(name: &str) -> std::result::Result<String, String> {
    spec(name)
        .map(|_| name.to_string())
        .map_err(|e| e.to_string())
}

pub(super) fn spec(name: &str) -> Result<SensorSpec> {
    let (attacks, dlp) = match name {
        "all" => (Attack::ALL.to_vec(), DlpKind::ALL.to_vec()),
        "dlp" => (vec![], DlpKind::ALL.to_vec()),
        n => {
            if let Ok(a) = n.parse::<Attack>() {
                (vec![a], vec![])
            } else if let Ok(k) = n.parse::<DlpKind>() {
                (vec![], vec![k])
            } else {
                bail!(
                    "unknown sensor {n:?}: sqli, xss, cmdi, path_traversal, credit_card, ssn, \
                     aws_access_key, private_key, email, dlp or all"
                )
            }
        }
    };
    Ok(SensorSpec {
        name: name.to_string(),
        block: false,
        attacks,
        dlp,
        patterns: vec![],
    })
}

/// A raw request cut at its blank line (CRLF or bare LF).
fn split_request(r: &[u8]) -> (&[u8], &[u8]) {
    if let Some(i) = r.windows(4).position(|w| w == b"\r\n\r\n") {
        return r.split_at(i + 4);
    }
    if let Some(i) = r.windows(2).position(|w| w == b"\n\n") {
        return r.split_at(i + 2);
    }
    (r, b"")
}

fn verdict(sensor: &Sensor, line: &[u8], ctx: InspectContext) -> serde_json::Value {
    let findings: Vec<Finding> = match ctx {
        InspectContext::Param => sensor.value("param", line),
        InspectContext::Query => sensor.query(line),
        InspectContext::Body => sensor.body(line, None),
        InspectContext::Request => {
            let (head, body) = split_request(line);
            sensor.http_request(head, body)
        }
        InspectContext::Sql => sensor.sql(line),
    };
    // A request with more values than are read is no match of its own: it is said
    // (`unread`), and the agent decides it with the sensor's `oversize` setting.
    let (notes, findings): (Vec<Finding>, Vec<Finding>) = findings
        .into_iter()
        .partition(|f| f.class == bulkhead_sensor::OVERSIZE && !f.block);
    let Some(first) = findings.first() else {
        let mut v = serde_json::json!({"match": false, "sensor": sensor.name(), "detail": null});
        if let Some(n) = notes.first() {
            v["unread"] = n.masked.clone().into();
        }
        return v;
    };
    let mut detail = serde_json::json!({
        "class": first.class,
        "location": first.location,
        "masked": first.masked,
    });
    // Why, for one value: SQL's token fingerprint and signals, the program a command
    // line runs, how a file name escapes (as the value was sent, or deep-decoded).
    if ctx == InspectContext::Param {
        let decoded = || decode::url_decode_deep(line);
        match first.class.as_str() {
            "sqli" => {
                let m = bulkhead_sensor::sqli::detect(line)
                    .or_else(|| bulkhead_sensor::sqli::detect(&decoded()));
                if let Some(m) = m {
                    detail["fingerprint"] = m.fingerprint.into();
                    detail["signals"] = m.signals.into();
                }
            }
            "cmdi" => {
                let m = bulkhead_sensor::cmdi::detect(line)
                    .or_else(|| bulkhead_sensor::cmdi::detect(&decoded()));
                if let Some(m) = m {
                    detail["command"] = m.command.into();
                }
            }
            "path_traversal" => {
                let m = bulkhead_sensor::traversal::detect(line)
                    .or_else(|| bulkhead_sensor::traversal::detect(&decoded()));
                if let Some(m) = m {
                    detail["reason"] = m.reason.into();
                }
            }
            _ => {}
        }
    }
    if findings.len() > 1 {
        detail["also"] = findings[1..]
            .iter()
            .map(|f| serde_json::json!({"class": f.class, "location": f.location}))
            .collect();
    }
    let mut v = serde_json::json!({"match": true, "sensor": sensor.name(), "detail": detail});
    if let Some(n) = notes.first() {
        v["unread"] = n.masked.clone().into();
    }
    v
}

pub fn run(a: InspectArgs) -> Result<u8> {
    let sensor = Sensor::new(&spec(&a.sensor)?)?;
    if let Some(file) = &a.capture {
        return super::replay::run(file, sensor, a.format);
    }
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for line in stdin.lock().split(b'\n') {
        let mut line = line?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let payload = if a.escaped {
            decode::percent_decode(&line)
        } else {
            line
        };
        serde_json::to_writer(&mut out, &verdict(&sensor, &payload, a.context))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(0)
}
