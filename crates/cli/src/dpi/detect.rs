//! `bulkhead dpi detect FILE.pcap`: the application protocol of every flow of a capture,
//! from the bytes only (bulkhead-detect), one JSON object per flow.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bulkhead_detect::capture::{FlowResult, read_capture};
use clap::{Args, ValueEnum};
use serde::Serialize;

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
    let bytes = read_file(&a.file)?;
    let capture = read_capture(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", a.file.display()))?;
    print(a.format, &capture.flows, table)?;
    warn_damage(&a.file, capture.damage, "flows");
    Ok(0)
}

/// A capture file's bytes (the error names the file).
pub(super) fn read_file(file: &Path) -> Result<Vec<u8>> {
    std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
}

/// Items (flows, findings) in `format`: one JSON object per line, a table, or one YAML
/// document each.
pub(super) fn print<T: Serialize>(
    format: DetectFormat,
    items: &[T],
    table: impl Fn(&[T]) -> String,
) -> Result<()> {
    match format {
        DetectFormat::Json => {
            for i in items {
                println!("{}", serde_json::to_string(i)?);
            }
        }
        DetectFormat::Table => print!("{}", table(items)),
        DetectFormat::Yaml => {
            for i in items {
                print!("{}", crate::render::yaml_document(i));
            }
        }
    }
    Ok(())
}

/// As Wireshark does: what was read is shown, and where reading stopped is said.
pub(super) fn warn_damage(file: &Path, damage: Option<String>, what: &str) {
    if let Some(damage) = damage {
        eprintln!(
            "warning: {}: {damage}; the {what} above are those of the packets before it",
            file.display()
        );
    }
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
