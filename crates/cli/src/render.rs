//! Rendering results: `-o json` / `-o yaml` serialise the library's result types as they
//! are; `-o table` is written here for people.

use std::fmt::Write;
use std::io::IsTerminal;

use anyhow::Result;
use bulkhead_analyze::blast::BlastRadius;
use bulkhead_analyze::diff::MatrixDiff;
use bulkhead_analyze::lint::{Finding, Severity};
use bulkhead_analyze::policytest::TestReport;
use bulkhead_policy::Stats;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::args::Format;

pub fn emit<T: Serialize>(format: Format, value: &T, table: impl FnOnce() -> String) -> Result<()> {
    let text = match format {
        Format::Json => serde_json::to_string_pretty(value)? + "\n",
        Format::Yaml => serde_saphyr::to_string(value)?,
        Format::Table => table(),
    };
    print!("{text}");
    Ok(())
}

/// One YAML document: `---`, the value, a line end (for a stream of them).
pub fn yaml_document(value: &impl serde::Serialize) -> String {
    let mut s = String::from("---\n");
    s.push_str(&serde_saphyr::to_string(value).unwrap_or_default());
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// A progress bar on stderr for long work, only when stderr is a terminal and the work
/// is big enough to notice.
pub fn progress(total: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() || total < 200 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

pub fn diff(d: &MatrixDiff) -> String {
    let mut s = String::new();
    if d.is_empty() {
        s.push_str("no change: the same pairs and ports are allowed\n");
    }
    for c in &d.newly_allowed {
        let _ = writeln!(s, "+ allowed  {} -> {}  {}", c.from, c.to, c.probe);
    }
    for c in &d.newly_denied {
        let _ = writeln!(s, "- denied   {} -> {}  {}", c.from, c.to, c.probe);
    }
    for w in &d.only_old {
        let _ = writeln!(s, "  (only in old: {w})");
    }
    for w in &d.only_new {
        let _ = writeln!(s, "  (only in new: {w})");
    }
    let _ = writeln!(
        s,
        "{} newly allowed, {} newly denied",
        d.newly_allowed.len(),
        d.newly_denied.len()
    );
    s
}

pub fn blast(b: &BlastRadius) -> String {
    let mut s = String::new();
    let reach = b.direct.len() + b.transitive.len();
    let _ = writeln!(
        s,
        "if {} is compromised it can reach {reach} of {} other workloads ({} directly) on {}",
        b.origin,
        b.workloads_total.saturating_sub(1),
        b.direct.len(),
        b.probes.join(", ")
    );
    if !b.direct.is_empty() {
        s.push_str("\ndirectly:\n");
        for r in &b.direct {
            let via = r.path.last().map(|h| h.via.join(", ")).unwrap_or_default();
            let _ = writeln!(s, "  {}  via {via}", r.workload);
        }
    }
    if !b.transitive.is_empty() {
        s.push_str("\nthrough other workloads:\n");
        for r in &b.transitive {
            let path: Vec<String> = r
                .path
                .iter()
                .map(|h| format!("{} ({})", h.to, h.via.join(",")))
                .collect();
            let _ = writeln!(
                s,
                "  {} in {} hops: {} -> {}",
                r.workload,
                r.hops,
                b.origin,
                path.join(" -> ")
            );
        }
    }
    s
}

#[derive(Serialize)]
pub struct ResolveRow {
    pub replicas_per_workload: usize,
    pub resolve_ms: f64,
    pub resolved_size: u64,
    pub stats: Stats,
}

pub fn resolve(rows: &[ResolveRow]) -> String {
    let mut s = String::from(
        "REPLICAS  WORKLOADS  IDENTITIES  POLICIES  SELECTORS  RULES  SELECTOR-MEMBERS  ENDPOINT-ENTRIES  RESOLVED-SIZE  TIME\n",
    );
    for r in rows {
        let t = &r.stats;
        let _ = writeln!(
            s,
            "{:>8}  {:>9}  {:>10}  {:>8}  {:>9}  {:>5}  {:>16}  {:>16}  {:>13}  {:.1} ms",
            r.replicas_per_workload,
            t.workloads,
            t.identities,
            t.policies + t.network_policies,
            t.selectors,
            t.rules,
            t.selector_members,
            t.endpoint_entries,
            r.resolved_size,
            r.resolve_ms
        );
    }
    s
}

pub fn lint(findings: &[Finding]) -> String {
    let mut s = String::new();
    for f in findings {
        let sev = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(s, "{}: {sev}[{}]: {}", f.origin, f.code, f.message);
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let _ = writeln!(
        s,
        "{} error{}, {} warning{}",
        errors,
        if errors == 1 { "" } else { "s" },
        findings.len() - errors,
        if findings.len() - errors == 1 {
            ""
        } else {
            "s"
        }
    );
    s
}

pub fn tests(r: &TestReport) -> String {
    let mut s = String::new();
    for c in &r.results {
        let status = if c.passed { "PASS" } else { "FAIL" };
        let _ = writeln!(
            s,
            "{status}  {} / {}  (expect {:?}, {} connection{} checked)",
            c.test,
            c.case,
            c.expect,
            c.checked,
            if c.checked == 1 { "" } else { "s" }
        );
        if let Some(e) = &c.error {
            let _ = writeln!(s, "      {}: {e}", c.origin);
        }
        for f in &c.failures {
            let _ = writeln!(s, "      {f}");
        }
    }
    let _ = writeln!(s, "\n{} passed, {} failed", r.passed, r.failed);
    s
}
