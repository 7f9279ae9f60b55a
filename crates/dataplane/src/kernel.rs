//! The only I/O of the data plane: read the `bulkhead` table and apply transactions, by
//! running `nft -j` (optionally inside a network namespace).
//!
//! Why `nft -j` and the `nftables` crate's JSON schema rather than netlink directly: the
//! JSON batch is applied by nft as one kernel transaction (all or nothing), the schema is
//! typed, and libnftables/libnftnl (GPL) stay in a separate process. The cost, one process
//! per transaction (a few ms), is why the agent batches changes.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::diff::Transaction;
use crate::names::TABLE;
use crate::ruleset::{ChainState, Elem, Hook, Ruleset, SetKind, SetState};

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("could not run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("nft failed ({what}): {stderr}")]
    Nft { what: &'static str, stderr: String },
    #[error("nft printed JSON bulkhead cannot read: {0}")]
    Json(#[from] serde_json::Error),
}

/// How to run nft: plainly, or inside a named network namespace.
#[derive(Clone, Debug)]
pub struct Nft {
    argv: Vec<String>,
}

impl Nft {
    /// `nft` in the current network namespace.
    pub fn local() -> Nft {
        Nft {
            argv: vec!["nft".into()],
        }
    }

    /// `ip netns exec NETNS nft`.
    pub fn in_netns(netns: &str) -> Nft {
        Nft {
            argv: vec![
                "ip".into(),
                "netns".into(),
                "exec".into(),
                netns.into(),
                "nft".into(),
            ],
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.argv[0]);
        c.args(&self.argv[1..]);
        c
    }

    /// Apply a transaction atomically.
    pub fn apply(&self, tx: &Transaction) -> Result<(), KernelError> {
        if tx.is_empty() {
            return Ok(());
        }
        self.run_file(&["-j", "-f", "-"], &tx.to_json())
    }

    /// Apply a script in nft's own syntax atomically (one transaction): for small tables
    /// kept outside `bulkhead`, such as the agent's socket-path table.
    pub fn apply_script(&self, script: &str) -> Result<(), KernelError> {
        self.run_file(&["-f", "-"], script)
    }

    fn run_file(&self, args: &[&str], input: &str) -> Result<(), KernelError> {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| KernelError::Spawn {
                program: self.argv.join(" "),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|source| KernelError::Spawn {
                program: self.argv.join(" "),
                source,
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(KernelError::Nft {
                what: "apply",
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// The raw JSON of the table, or None if it does not exist.
    pub fn list_raw(&self) -> Result<Option<Value>, KernelError> {
        let out = self
            .command()
            .args(["-j", "list", "table", "inet", TABLE])
            .output()
            .map_err(|source| KernelError::Spawn {
                program: self.argv.join(" "),
                source,
            })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("No such file or directory") {
                return Ok(None);
            }
            return Err(KernelError::Nft {
                what: "list",
                stderr: stderr.trim().to_string(),
            });
        }
        Ok(Some(serde_json::from_slice(&out.stdout)?))
    }

    /// What bulkhead finds in the kernel: its sets with their elements, its chains with
    /// the content hash stored in their first rule.
    pub fn read(&self) -> Result<Ruleset, KernelError> {
        Ok(match self.list_raw()? {
            Some(v) => parse_table(&v),
            None => Ruleset::default(),
        })
    }

    /// Remove the table (and with it every bulkhead rule) if it exists.
    pub fn delete_table(&self) -> Result<(), KernelError> {
        if self.list_raw()?.is_some() {
            self.apply(&crate::diff::delete_table())?;
        }
        Ok(())
    }
}

/// The set kind a name stands for (bulkhead names every object it creates).
pub(crate) fn kind_of(name: &str) -> Option<SetKind> {
    const PREFIXES: [(&str, SetKind); 9] = [
        ("s_", SetKind::Marks),
        ("n4_", SetKind::AddrPorts4),
        ("n6_", SetKind::AddrPorts6),
        ("c4_", SetKind::Nets4),
        ("x4_", SetKind::Nets4),
        ("c6_", SetKind::Nets6),
        ("x6_", SetKind::Nets6),
        ("d4_", SetKind::Addrs4),
        ("d6_", SetKind::Addrs6),
    ];
    match name {
        "id4" => Some(SetKind::AddrMarks4),
        "id6" => Some(SetKind::AddrMarks6),
        "dst4" => Some(SetKind::AddrMarks4),
        "dst6" => Some(SetKind::AddrMarks6),
        "e_dispatch" | "i_dispatch" => Some(SetKind::MarkVerdicts),
        "quarantine4" => Some(SetKind::Addrs4),
        "quarantine6" => Some(SetKind::Addrs6),
        _ => PREFIXES
            .iter()
            .find(|(p, _)| name.starts_with(p))
            .map(|(_, k)| *k),
    }
}

/// Parse `nft -j list table inet bulkhead`.
pub fn parse_table(v: &Value) -> Ruleset {
    let mut rs = Ruleset::default();
    let Some(items) = v.get("nftables").and_then(Value::as_array) else {
        return rs;
    };
    for item in items {
        if item.get("table").is_some() {
            rs.exists = true;
        }
        if let Some(c) = item.get("chain") {
            let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            let prio = c.get("prio").and_then(Value::as_i64).unwrap_or(0);
            let hook = c
                .get("hook")
                .and_then(Value::as_str)
                .and_then(|h| Hook::from_kernel(h, prio));
            rs.chains.insert(
                name.to_string(),
                ChainState {
                    hook,
                    rules: Default::default(),
                    hash: None,
                },
            );
        }
        if let Some(r) = item.get("rule") {
            let chain = r.get("chain").and_then(Value::as_str).unwrap_or_default();
            if let Some(c) = rs.chains.get_mut(chain) {
                // Only the first rule's comment counts; anything else makes the chain
                // look changed, which rewrites it (safe).
                if c.rules.is_empty() {
                    c.hash = r
                        .get("comment")
                        .and_then(Value::as_str)
                        .and_then(|s| s.strip_prefix("bh:"))
                        .and_then(|h| u64::from_str_radix(h, 16).ok());
                }
                std::sync::Arc::make_mut(&mut c.rules).push(Vec::new());
            }
        }
        for key in ["set", "map"] {
            if let Some(s) = item.get(key) {
                let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
                let Some(kind) = kind_of(name) else {
                    // Not ours to understand: listed as unreadable so the diff removes it.
                    rs.sets.insert(
                        name.to_string(),
                        SetState {
                            kind: SetKind::Marks,
                            elems: None,
                        },
                    );
                    continue;
                };
                let elems = match s.get("elem").and_then(Value::as_array) {
                    None => Some(Default::default()),
                    Some(list) => list
                        .iter()
                        .map(|e| Elem::from_json(kind, e))
                        .collect::<Option<_>>()
                        .map(std::sync::Arc::new),
                };
                rs.sets.insert(name.to_string(), SetState { kind, elems });
            }
        }
    }
    // Rules are only counted when observed; keep the hash as the chain's identity.
    rs
}
