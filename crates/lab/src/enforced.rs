//! Has every agent caught up with an inventory change? Asked of the kernels, not of the
//! agents: an agent maps every workload address it knows to an identity in the `id4` and
//! `id6` maps of its node's `inet bulkhead` table (see docs/dataplane.md), and changes
//! them in the same transaction as everything else a change needs. So once a node's
//! maps hold an added workload's addresses, its agent enforces the workload; once they
//! hold none of a removed workload's, it has forgotten it (and the address can go to
//! another workload without the kernel taking the newcomer for the old one).
//!
//! A relabel keeps the addresses and may even keep the identity number (a number freed
//! in a change can be given again in the same change), so it cannot be observed this way:
//! `lab label` does not wait.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::netns;
use crate::state::State;

/// How long agents may take to apply an inventory change (they take well under a
/// second; a loaded machine running many labs may be slower).
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Addresses the `inet bulkhead` table of namespace `ns` maps to an identity; empty when
/// there is no such table yet.
pub fn mapped(ns: &str) -> Result<BTreeSet<IpAddr>> {
    let outputs = netns::enter(ns, || {
        ["id4", "id6"]
            .iter()
            .map(|map| {
                Command::new("nft")
                    .args(["-j", "list", "map", "inet", "bulkhead", map])
                    .output()
                    .context("running nft (Debian package nftables)")
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let mut out = BTreeSet::new();
    for o in outputs {
        if !o.status.success() {
            // No table (an agent that has not programmed anything yet): nothing mapped.
            continue;
        }
        let v: Value = serde_json::from_slice(&o.stdout).context("reading nft -j output")?;
        out.extend(elements(&v));
    }
    Ok(out)
}

/// The keys of the map in `nft -j list map` output: `"elem": [[KEY, VALUE], ...]`, where
/// a key may also come wrapped as `{"elem": {"val": KEY, ...}}`.
fn elements(v: &Value) -> Vec<IpAddr> {
    let items = v["nftables"].as_array().into_iter().flatten();
    items
        .filter_map(|i| i["map"]["elem"].as_array())
        .flatten()
        .filter_map(|e| {
            let key = &e[0];
            let key = key["elem"]["val"].as_str().or(key.as_str())?;
            key.parse().ok()
        })
        .collect()
}

/// Wait until the kernel of every node whose agent runs maps each of `present` and none
/// of `absent`. Nodes without a running agent are skipped (returned as notes): nothing
/// enforces there, so there is nothing to wait for.
pub fn wait(st: &State, present: &[IpAddr], absent: &[IpAddr]) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let mut nodes = Vec::new();
    for node in &st.plan.nodes {
        let agent = st
            .processes
            .iter()
            .find(|p| p.role == "agent" && p.owner == node.name);
        match agent {
            Some(p) if p.alive() => nodes.push((node, p)),
            Some(p) => notes.push(format!(
                "the agent of node {} has exited (log: {}): not waiting for it",
                node.name,
                p.log.display()
            )),
            None => {}
        }
    }
    let deadline = Instant::now() + TIMEOUT;
    for (node, agent) in nodes {
        loop {
            let now = mapped(&node.netns)?;
            let missing: Vec<&IpAddr> = present.iter().filter(|a| !now.contains(a)).collect();
            let stale: Vec<&IpAddr> = absent.iter().filter(|a| now.contains(a)).collect();
            if missing.is_empty() && stale.is_empty() {
                break;
            }
            if !agent.alive() {
                bail!(
                    "the agent of node {} exited before applying the change; the end of {}:\n{}",
                    node.name,
                    agent.log.display(),
                    crate::state::tail(&agent.log, 15)
                );
            }
            if Instant::now() > deadline {
                let status = st.dir().join("agents").join(&node.name).join("status.json");
                let error = std::fs::read(&status)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                    .and_then(|v| v["last_error"].as_str().map(String::from))
                    .unwrap_or_else(|| "none".into());
                bail!(
                    "the agent of node {} has not applied the change after {} s \
                     (still to add: {missing:?}, still to remove: {stale:?}; its last error: \
                     {error}); the end of {}:\n{}",
                    node.name,
                    TIMEOUT.as_secs(),
                    agent.log.display(),
                    crate::state::tail(&agent.log, 15)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn map_elements_plain_and_wrapped() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
                {"map": {"family": "inet", "name": "id4", "table": "bulkhead", "type": "ipv4_addr",
                 "map": "mark", "elem": [["10.0.0.1", 1025], [{"elem": {"val": "10.0.0.2"}}, 5]]}}]}"#,
        )
        .unwrap();
        let got: Vec<String> = super::elements(&v).iter().map(|a| a.to_string()).collect();
        assert_eq!(got, ["10.0.0.1", "10.0.0.2"]);
        let empty: serde_json::Value =
            serde_json::from_str(r#"{"nftables": [{"map": {"name": "id6"}}]}"#).unwrap();
        assert!(super::elements(&empty).is_empty());
    }
}
