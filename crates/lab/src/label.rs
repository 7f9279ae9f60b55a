//! `lab label`: change a workload's labels, with kubectl's syntax and rules
//! (`KEY=VALUE` sets, `KEY-` removes; changing a label's value needs `--overwrite`).
//!
//! Only the workload's file in the inventory directory (and `inventory.yaml`) is
//! rewritten: its agents re-read that one file and apply the new identity in one
//! transaction, so the workload goes from what its old labels allow to what its new
//! ones allow with nothing in between. What runs in it is not restarted (labels do not
//! restart a Kubernetes pod either). The command does not wait for the agents (see
//! [`crate::enforced`] for why it cannot tell); they apply a change within their
//! latency, well under a second.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bulkhead_manifest::{Source, parse_sources};
use bulkhead_model::{Labels, WorkloadKey};

use crate::{inventory, lock};

/// Label edits as `kubectl label` takes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelEdits {
    pub set: BTreeMap<String, String>,
    pub remove: Vec<String>,
    /// Allow changing the value of a label the workload already has.
    pub overwrite: bool,
}

impl LabelEdits {
    /// `KEY=VALUE` and `KEY-` arguments.
    pub fn parse(args: &[String], overwrite: bool) -> Result<LabelEdits> {
        let mut e = LabelEdits {
            overwrite,
            ..LabelEdits::default()
        };
        for a in args {
            if let Some((k, v)) = a.split_once('=') {
                if k.is_empty() {
                    bail!("invalid label spec: {a:?} (KEY=VALUE or KEY-)");
                }
                e.set.insert(k.to_string(), v.to_string());
            } else if let Some(k) = a.strip_suffix('-').filter(|k| !k.is_empty()) {
                e.remove.push(k.to_string());
            } else {
                bail!("invalid label spec: {a:?} (KEY=VALUE or KEY-)");
            }
        }
        if e.set.is_empty() && e.remove.is_empty() {
            bail!("at least one label update is required (KEY=VALUE or KEY-)");
        }
        let both: Vec<&str> = e
            .remove
            .iter()
            .filter(|k| e.set.contains_key(*k))
            .map(String::as_str)
            .collect();
        if !both.is_empty() {
            bail!(
                "can not both modify and remove the following label(s) in the same command: {}",
                both.join(", ")
            );
        }
        Ok(e)
    }

    /// The labels after the edits; notes for labels to remove that are not there.
    pub fn apply(&self, labels: &Labels) -> Result<(Labels, Vec<String>)> {
        let mut out = labels.clone();
        let mut notes = Vec::new();
        let mut refused = Vec::new();
        for (k, v) in &self.set {
            match labels.get(k) {
                Some(old) if old != v && !self.overwrite => refused.push(format!(
                    "{k:?} already has a value ({old}), and --overwrite is false"
                )),
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        if !refused.is_empty() {
            bail!("{}", refused.join("; "));
        }
        for k in &self.remove {
            if out.remove(k).is_none() {
                notes.push(format!("label {k:?} not found"));
            }
        }
        Ok((out, notes))
    }
}

/// What `lab label` did.
#[derive(Clone, Debug)]
pub struct LabelReport {
    pub workload: WorkloadKey,
    pub labels: Labels,
    /// False when the labels were already so (nothing was written).
    pub changed: bool,
    pub notes: Vec<String>,
    pub elapsed: Duration,
}

/// Apply kubectl-style edits to a workload's labels.
pub fn label(lab: &str, workload: &str, edits: &LabelEdits) -> Result<LabelReport> {
    set_labels(lab, workload, |old| edits.apply(old))
}

/// Give a workload exactly `labels`.
pub fn relabel(lab: &str, workload: &str, labels: Labels) -> Result<LabelReport> {
    set_labels(lab, workload, |_| Ok((labels, Vec::new())))
}

fn set_labels(
    lab: &str,
    workload: &str,
    edit: impl FnOnce(&Labels) -> Result<(Labels, Vec<String>)>,
) -> Result<LabelReport> {
    let started = Instant::now();
    crate::require_root()?;
    let _lock = lock::lock(lab)?;
    let mut st = crate::load(lab)?;
    let w = st.workload(workload)?;
    let key = w.key.clone();
    let (labels, notes) = edit(&w.labels)?;
    let changed = labels != w.labels;
    if changed {
        check(&key, &labels)?;
        let w = st
            .plan
            .workloads
            .iter_mut()
            .find(|w| w.key == key)
            .context("the workload went away")?;
        w.labels = labels.clone();
        let w = w.clone();
        st.save()?;
        inventory::publish(&st.plan, false, &[&w], &[]).context("writing the inventory")?;
    }
    Ok(LabelReport {
        workload: key,
        labels,
        changed,
        notes,
        elapsed: started.elapsed(),
    })
}

/// Keys must be qualified names and values label values, as everywhere else: checked
/// by reading a Pod with these labels the way every input is read.
fn check(key: &WorkloadKey, labels: &Labels) -> Result<()> {
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": key.name, "namespace": key.namespace, "labels": labels},
    });
    let source = Source {
        name: "labels".into(),
        text: pod.to_string(),
    };
    match parse_sources(&[source]) {
        Ok(_) => Ok(()),
        Err(d) => {
            let why: Vec<String> = d
                .iter()
                .map(|x| format!("{}: {}", x.path, x.message))
                .collect();
            bail!("invalid labels: {}", why.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kubectl_syntax_and_overwrite() {
        let old: Labels = [("role", "intruder"), ("tier", "x")].into_iter().collect();
        let e = LabelEdits::parse(&args(&["role=guest", "tier-", "new="]), false).unwrap();
        let err = e.apply(&old).unwrap_err().to_string();
        assert!(
            err.contains("\"role\" already has a value (intruder), and --overwrite is false"),
            "{err}"
        );
        let e = LabelEdits {
            overwrite: true,
            ..e
        };
        let (new, notes) = e.apply(&old).unwrap();
        assert_eq!(
            new.to_string(),
            Labels::from_iter([("new", ""), ("role", "guest")]).to_string()
        );
        assert!(notes.is_empty());
        // Setting a label to the value it has is no change, and needs no --overwrite.
        let same = LabelEdits::parse(&args(&["role=intruder", "gone-"]), false).unwrap();
        let (new, notes) = same.apply(&old).unwrap();
        assert_eq!(new, old);
        assert_eq!(notes, ["label \"gone\" not found"]);
        for bad in [&["x"][..], &[], &["=v"], &["-"], &["a=1", "a-"]] {
            assert!(LabelEdits::parse(&args(bad), false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn labels_are_checked_like_every_input() {
        let key = WorkloadKey::new("x", "a");
        assert!(
            check(
                &key,
                &Labels::from_iter([("app.kubernetes.io/name", "a-1")])
            )
            .is_ok()
        );
        let e = check(&key, &Labels::from_iter([("bad key", "v")])).unwrap_err();
        assert!(e.to_string().contains("invalid labels"), "{e}");
        assert!(check(&key, &Labels::from_iter([("k", "no spaces")])).is_err());
    }
}
