//! `lab status`: nodes, workloads with their addresses and what runs in them, agents,
//! and whether each process is alive.

use std::fmt::Write;
use std::path::PathBuf;

use serde::Serialize;

use crate::netns;
use crate::runner;
use crate::state::State;

#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub lab: String,
    pub created: u64,
    pub directory: PathBuf,
    pub nodes: Vec<NodeStatus>,
    pub workloads: Vec<WorkloadStatus>,
    pub agents: Vec<AgentStatus>,
    /// Why no agent runs, when none does.
    pub agent_note: Option<String>,
    /// Namespaces of the plan that do not exist (a broken or half-removed lab).
    pub missing_namespaces: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub netns: String,
    pub ipv4: String,
    pub ipv6: String,
    pub pod_cidrs: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WorkloadStatus {
    pub name: String,
    pub node: String,
    pub ipv4: String,
    pub ipv6: String,
    pub ports: Vec<String>,
    pub labels: bulkhead_model::Labels,
    pub run: String,
    /// The process serving the workload (none for a responder without ports).
    pub pid: Option<i32>,
    pub alive: Option<bool>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AgentStatus {
    pub node: String,
    pub pid: i32,
    pub alive: bool,
    pub log: PathBuf,
}

pub fn of(st: &State) -> Status {
    let plan = &st.plan;
    let proc_of = |owner: &str, agent: bool| {
        st.processes
            .iter()
            .find(|p| p.owner == owner && (p.role == "agent") == agent)
    };
    Status {
        lab: plan.lab.clone(),
        created: st.created,
        directory: st.dir(),
        nodes: plan
            .nodes
            .iter()
            .map(|n| NodeStatus {
                name: n.name.clone(),
                netns: n.netns.clone(),
                ipv4: n.ipv4.to_string(),
                ipv6: n.ipv6.to_string(),
                pod_cidrs: vec![n.pod_cidr_v4.to_string(), n.pod_cidr_v6.to_string()],
            })
            .collect(),
        workloads: plan
            .workloads
            .iter()
            .map(|w| {
                let p = proc_of(&w.key.to_string(), false);
                WorkloadStatus {
                    name: w.key.to_string(),
                    node: w.node.clone(),
                    ipv4: w.ipv4.to_string(),
                    ipv6: w.ipv6.to_string(),
                    ports: w
                        .ports
                        .iter()
                        .map(|p| format!("{}/{}", p.protocol, p.port))
                        .collect(),
                    labels: w.labels.clone(),
                    run: runner::describe(&w.run),
                    pid: p.map(|p| p.pid),
                    alive: p.map(|p| p.alive()),
                }
            })
            .collect(),
        agents: st
            .processes
            .iter()
            .filter(|p| p.role == "agent")
            .map(|p| AgentStatus {
                node: p.owner.clone(),
                pid: p.pid,
                alive: p.alive(),
                log: p.log.clone(),
            })
            .collect(),
        agent_note: st.agent_note.clone(),
        missing_namespaces: crate::topology::namespaces(plan)
            .into_iter()
            .filter(|n| !netns::exists(n))
            .collect(),
    }
}

impl Status {
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "lab {} ({})", self.lab, self.directory.display());
        let _ = writeln!(s, "\nNODE  NAMESPACE  ADDRESSES  POD CIDRS");
        for n in &self.nodes {
            let _ = writeln!(
                s,
                "{}  {}  {} {}  {}",
                n.name,
                n.netns,
                n.ipv4,
                n.ipv6,
                n.pod_cidrs.join(" ")
            );
        }
        s.push('\n');
        s.push_str(&workload_rows(&self.workloads));
        s.push('\n');
        if self.agents.is_empty() {
            let note = self.agent_note.as_deref().unwrap_or("no agent runs");
            let _ = writeln!(s, "agents: none ({note})");
        }
        for a in &self.agents {
            let alive = if a.alive { "running" } else { "EXITED" };
            let _ = writeln!(
                s,
                "agent of {}: pid {} {alive} (log: {})",
                a.node,
                a.pid,
                a.log.display()
            );
        }
        if !self.missing_namespaces.is_empty() {
            let _ = writeln!(
                s,
                "MISSING namespaces: {} (run lab down, then lab up again)",
                self.missing_namespaces.join(", ")
            );
        }
        align(&s)
    }
}

/// `lab add`'s answer: the table of `workloads` alone.
pub fn workloads_table(workloads: &[WorkloadStatus]) -> String {
    align(&workload_rows(workloads))
}

fn workload_rows(workloads: &[WorkloadStatus]) -> String {
    let mut s = String::from("WORKLOAD  NODE  IPV4  IPV6  PORTS  RUNS  PROCESS  LABELS\n");
    // `align` finds the cells by their two blanks: a cell holds none (a command line
    // may), and is never empty.
    let or_dash = |v: String| {
        let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
        if v.is_empty() { "-".to_string() } else { v }
    };
    for w in workloads {
        let process = match (w.pid, w.alive) {
            (Some(pid), Some(true)) => format!("{pid} running"),
            (Some(pid), _) => format!("{pid} EXITED"),
            _ => "-".to_string(),
        };
        let labels: Vec<String> = w.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            s,
            "{}  {}  {}  {}  {}  {}  {}  {}",
            or_dash(w.name.clone()),
            or_dash(w.node.clone()),
            or_dash(w.ipv4.clone()),
            or_dash(w.ipv6.clone()),
            or_dash(w.ports.join(",")),
            or_dash(w.run.clone()),
            process,
            or_dash(labels.join(","))
        );
    }
    s
}

/// Align the columns of each block of lines that share a header (two spaces between
/// columns in the input mark the cells).
fn align(text: &str) -> String {
    let mut out = String::new();
    for block in text.split("\n\n") {
        let rows: Vec<Vec<&str>> = block.lines().map(|l| l.split("  ").collect()).collect();
        let tabular =
            rows.len() > 1 && rows.iter().all(|r| r.len() == rows[0].len() && r.len() > 1);
        if !tabular {
            out.push_str(block);
        } else {
            let widths: Vec<usize> = (0..rows[0].len())
                .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
                .collect();
            for (i, r) in rows.iter().enumerate() {
                let line: Vec<String> = r
                    .iter()
                    .zip(&widths)
                    .map(|(cell, w)| format!("{cell:w$}"))
                    .collect();
                out.push_str(line.join("  ").trim_end());
                if i + 1 < rows.len() {
                    out.push('\n');
                }
            }
        }
        out.push_str("\n\n");
    }
    out.trim_end().to_string() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_columns_line_up_whatever_the_cells_hold() {
        let w = |name: &str, ipv6: &str, run: &str| WorkloadStatus {
            name: name.into(),
            node: "node-1".into(),
            ipv4: "10.244.0.2".into(),
            ipv6: ipv6.into(),
            ports: vec!["TCP/6379".into()],
            labels: Default::default(),
            run: run.into(),
            pid: Some(7),
            alive: Some(true),
        };
        let t = workloads_table(&[
            w("platform/redis-0", "", "redis-server  --port 6379"),
            w("eu/a-0", "fd00:10:244::2", ""),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        let col = |l: &str| l.find("PROCESS").or_else(|| l.find("7 running"));
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines.iter().all(|l| col(l) == col(lines[0])), "{t}");
        assert!(t.contains("redis-server --port 6379"), "{t}");
    }
}
