//! `bulkhead dpi`: the L7 engine's offline tools. `detect` names the application
//! protocol of every flow in a capture; `inspect` runs a sensor over payloads, or over
//! the connections of a capture through the proxy's protocol sessions (`replay`).

mod detect;
mod inspect;
mod replay;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum DpiCmd {
    /// Name the application protocol of every flow in a pcap/pcapng file, from the bytes.
    Detect(detect::DetectArgs),
    /// Run a sensor (SQL injection, DLP, ...) over payloads read one per line on stdin,
    /// or over the connections of a capture (--capture).
    Inspect(inspect::InspectArgs),
}

pub fn run(cmd: DpiCmd) -> Result<u8> {
    match cmd {
        DpiCmd::Detect(a) => detect::run(a),
        DpiCmd::Inspect(a) => inspect::run(a),
    }
}
