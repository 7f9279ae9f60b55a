//! The policy routes that deliver diverted packets to the proxy's sockets: packets marked
//! `DIVERT_MARK` in prerouting look up a table whose only route says every address is
//! local (the TPROXY recipe in shared/design/linux-notes.md), for IPv4 and IPv6. Runs
//! `ip` in the current network namespace; idempotent, and removable.

use std::process::Command;

use anyhow::{Context, Result, bail};

fn ip(args: &[&str]) -> Result<std::process::Output> {
    Command::new("ip")
        .args(args)
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))
}

/// Install the rule and the local route (both families) unless present.
pub fn install(mark: u32, table: u32) -> Result<()> {
    let mark = format!("{mark:#x}/{:#x}", u32::MAX);
    let table = table.to_string();
    for fam in ["-4", "-6"] {
        let rules = ip(&[fam, "rule", "show"])?;
        let have = String::from_utf8_lossy(&rules.stdout).contains(&format!("lookup {table}"));
        if !have {
            let out = ip(&[fam, "rule", "add", "fwmark", &mark, "lookup", &table])?;
            if !out.status.success() {
                bail!(
                    "ip {fam} rule add: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        let default = if fam == "-4" { "0.0.0.0/0" } else { "::/0" };
        let out = ip(&[
            fam, "route", "replace", "local", default, "dev", "lo", "table", &table,
        ])?;
        if !out.status.success() {
            bail!(
                "ip {fam} route replace: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

/// Remove what [`install`] added (missing pieces are fine).
pub fn remove(mark: u32, table: u32) {
    let mark = format!("{mark:#x}/{:#x}", u32::MAX);
    let table = table.to_string();
    for fam in ["-4", "-6"] {
        let _ = ip(&[fam, "rule", "del", "fwmark", &mark, "lookup", &table]);
        let _ = ip(&[fam, "route", "flush", "table", &table]);
    }
}
