//! `bulkhead quarantine list|add|release`: the agents' quarantine lists
//! (`quarantine.json` in each state directory). An agent programs a change within half a
//! second: a quarantined workload sends and receives nothing, its live connections are
//! cut; released, policy decides again.

use std::path::PathBuf;

use anyhow::{Result, bail};
use bulkhead_agent::respond::{QuarantineList, Quarantined, key};
use clap::{Args, Subcommand};
use comfy_table::Table;

use crate::flows::state_dirs;

#[derive(Args, Debug)]
pub struct Where {
    /// The agent's state directory.
    #[arg(long, value_name = "DIR", required_unless_present = "lab")]
    pub state_dir: Option<PathBuf>,
    /// Every agent of this lab (`bulkhead lab up --name NAME`).
    #[arg(long, value_name = "NAME", conflicts_with = "state_dir")]
    pub lab: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum QuarantineCmd {
    /// Quarantined workloads, with the rule or person that put them there and why.
    List {
        #[command(flatten)]
        at: Where,
        #[arg(short = 'o', long = "output", default_value = "table", value_parser = ["table", "json", "yaml"])]
        output: String,
    },
    /// Quarantine a workload now (NAMESPACE/NAME).
    Add {
        workload: String,
        #[arg(long, default_value = "by hand")]
        reason: String,
        #[command(flatten)]
        at: Where,
    },
    /// Let a workload talk again (policy decides).
    Release {
        workload: String,
        #[command(flatten)]
        at: Where,
    },
}

/// Exit codes: 0 done, 1 nothing to do (already quarantined / not quarantined).
pub fn run(c: QuarantineCmd) -> Result<u8> {
    match c {
        QuarantineCmd::List { at, output } => {
            let mut all: Vec<Quarantined> = Vec::new();
            for d in state_dirs(at.state_dir.as_ref(), at.lab.as_deref())? {
                for q in QuarantineList::load(&d).workloads {
                    if !all.iter().any(|x| x.workload == q.workload) {
                        all.push(q);
                    }
                }
            }
            if output == "json" {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if output == "yaml" {
                print!("{}", serde_saphyr::to_string(&all)?);
            } else {
                let mut t = Table::new();
                t.load_preset(comfy_table::presets::NOTHING);
                t.set_header(["WORKLOAD", "SINCE", "RULE", "REASON"]);
                for q in &all {
                    t.add_row([
                        q.workload.as_str(),
                        q.since.as_str(),
                        q.rule.as_deref().unwrap_or("-"),
                        q.reason.as_str(),
                    ]);
                }
                println!("{t}");
            }
            Ok(0)
        }
        QuarantineCmd::Add {
            workload,
            reason,
            at,
        } => edit(&at, &workload, |l| {
            l.add(Quarantined {
                workload: workload.clone(),
                rule: None,
                reason: reason.clone(),
                since: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            })
        }),
        QuarantineCmd::Release { workload, at } => edit(&at, &workload, |l| l.release(&workload)),
    }
}

fn edit(at: &Where, workload: &str, f: impl Fn(&mut QuarantineList) -> bool) -> Result<u8> {
    if key(workload).is_none() {
        bail!("{workload}: expected NAMESPACE/NAME");
    }
    let mut changed = false;
    for d in state_dirs(at.state_dir.as_ref(), at.lab.as_deref())? {
        let mut l = QuarantineList::load(&d);
        if f(&mut l) {
            l.save(&d)?;
            changed = true;
        }
    }
    Ok(if changed { 0 } else { 1 })
}
