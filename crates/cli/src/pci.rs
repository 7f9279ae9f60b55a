//! `bulkhead analyze pci`: the PCI-DSS segmentation report (see docs/pci.md).

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use bulkhead_analyze::pci;
use bulkhead_record::FlowRecord;
use clap::{Args, ValueEnum};

use crate::args::Input;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum PciFormat {
    /// The report as Markdown text, for a terminal (the same as `markdown`).
    Table,
    Markdown,
    Html,
    Json,
    Yaml,
}

#[derive(Args, Debug)]
pub struct PciArgs {
    #[command(flatten)]
    pub input: Input,
    /// The cardholder data environment: a selector over workload and namespace labels
    /// (`compliance == "pci"`, `app in {"vault", "payments"}`).
    #[arg(long, value_name = "SELECTOR")]
    pub cde: String,
    /// Flow records to check for crossings: an agent's state directory, a store file,
    /// JSON lines (`-` for stdin). Repeatable.
    #[arg(long, value_name = "DIR|FILE")]
    pub flows: Vec<PathBuf>,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = PciFormat::Table)]
    pub format: PciFormat,
}

pub fn run(a: PciArgs) -> Result<u8> {
    let cde =
        bulkhead_model::selector::parse(&a.cde).map_err(|e| anyhow!("--cde {:?}: {e}", a.cde))?;
    let engine = crate::engine(&a.input.load()?)?;
    let mut records: Vec<FlowRecord> = Vec::new();
    let bad = crate::learn::read_flows(&a.flows, &mut |r| records.push(r.clone()))?;
    crate::learn::no_records_at_all(records.len() as u64, bad)?;
    let report = pci::report(&engine, &cde, &records);
    let text = match a.format {
        PciFormat::Table | PciFormat::Markdown => pci::markdown(&report),
        PciFormat::Html => pci::html(&report),
        PciFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        PciFormat::Yaml => serde_saphyr::to_string(&report)?,
    };
    print!("{text}");
    Ok(0)
}
