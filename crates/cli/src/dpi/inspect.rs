//! `bulkhead dpi inspect --sensor NAME`: owned by the sensor work (crates/sensor).

use anyhow::{Result, bail};
use clap::Args;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The sensor to run.
    #[arg(long)]
    pub sensor: String,
}

pub fn run(a: InspectArgs) -> Result<u8> {
    bail!("dpi inspect --sensor {}: not built yet", a.sensor)
}
