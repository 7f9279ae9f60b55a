//! `bulkhead dpi detect FILE.pcap`: the application protocol of every flow of a capture,
//! from the bytes only (bulkhead-detect), one JSON object per flow.

use std::path::PathBuf;

use anyhow::{Context, Result};
use bulkhead_detect::capture::{FlowResult, read_capture};
use clap::{Args, ValueEnum};

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum DetectFormat {
    /// One JSON object per line (a flow, or a finding).
    #[default]
    Json,
    /// Aligned columns, one line each.
    Table,
    /// One YAML document each.
    Yaml,
}

#[derive(Args, Debug)]
pub struct DetectArgs {
    /// A pcap or pcapng capture.
    pub file: PathBuf,
    /// `json`: one object per flow per line: {"l4", "src", "dst", "protocol", "detail"}.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = DetectFormat::Json)]
    pub format: DetectFormat,
}

pub fn run(a: DetectArgs) -> Result<u8> {
    let bytes =
        std::fs::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    let capture = read_capture(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", a.file.display()))?;
    let flows = capture.flows;
    match a.format {
        DetectFormat::Json => {
            for f in &flows {
                println!("{}", serde_json::to_string(f)?);
            }
        }
        DetectFormat::Table => print!("{}", table(&flows)),
        DetectFormat::Yaml => {
            for f in &flows {
                print!("{}", crate::render::yaml_document(f));
            }
        }
    }
    // As Wireshark does: what was read is shown, and the file's state is said.
    if let Some(damage) = capture.damage {
        eprintln!(
            "warning: {}: {damage}; the flows above are those of the packets before it",
            a.file.display()
        );
    }
    Ok(0)
}

fn table(flows: &[FlowResult]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    t.set_header(["L4", "SOURCE", "DESTINATION", "PROTOCOL", "DETAIL"]);
    for f in flows {
        let detail = f
            .detail
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_string)
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        t.add_row([f.l4.as_str(), &f.src, &f.dst, &f.protocol, &detail]);
    }
    format!("{t}\n")
}
