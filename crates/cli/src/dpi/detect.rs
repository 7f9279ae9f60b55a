//! `bulkhead dpi detect FILE.pcap`: owned by the detection work (crates/detect).

use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct DetectArgs {
    /// A pcap or pcapng capture.
    pub file: PathBuf,
}

pub fn run(a: DetectArgs) -> Result<u8> {
    bail!("dpi detect {}: not built yet", a.file.display())
}
