//! `bulkhead test`: run `PolicyTest` assertions against the engine, for CI pipelines.

use bulkhead_policy::compile::workload_selector;
use bulkhead_policy::l7::parse_request;
use bulkhead_policy::spec::{Expect, Origin, PolicyTest, TestCase, TestEndpoint};
use bulkhead_policy::{Connection, Endpoint, Engine};
use serde::Serialize;

use crate::endpoint::resolve;

#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    pub test: String,
    pub case: String,
    pub passed: bool,
    pub expect: Expect,
    /// Connections checked (selectors expand to every matching workload).
    pub checked: usize,
    /// One line per connection that did not behave as expected, with why.
    pub failures: Vec<String>,
    /// The case could not run (unknown workload, selector matching nothing, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub origin: Origin,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct TestReport {
    pub passed: usize,
    pub failed: usize,
    pub results: Vec<CaseResult>,
}

impl TestReport {
    pub fn ok(&self) -> bool {
        self.failed == 0
    }
}

pub fn run(engine: &Engine, tests: &[PolicyTest]) -> TestReport {
    let mut report = TestReport::default();
    for t in tests {
        for (i, case) in t.cases.iter().enumerate() {
            let r = run_case(engine, t, i, case);
            if r.passed {
                report.passed += 1;
            } else {
                report.failed += 1;
            }
            report.results.push(r);
        }
    }
    report
}

fn run_case(engine: &Engine, t: &PolicyTest, i: usize, case: &TestCase) -> CaseResult {
    let mut r = CaseResult {
        test: t.name.clone(),
        case: case
            .name
            .clone()
            .unwrap_or_else(|| format!("case {}", i + 1)),
        passed: false,
        expect: case.expect,
        checked: 0,
        failures: Vec::new(),
        error: None,
        origin: case.origin.clone(),
    };
    let ends = expand(engine, &case.from).and_then(|from| Ok((from, expand(engine, &case.to)?)));
    let request = case.request.as_deref().map(parse_request).transpose();
    let ((from, to), request) = match (ends, request) {
        (Ok(e), Ok(req)) => (e, req),
        (Err(e), _) | (_, Err(e)) => {
            r.error = Some(e);
            return r;
        }
    };
    for (sname, src) in &from {
        for (dname, dst) in &to {
            if sname == dname {
                continue;
            }
            let conn = Connection {
                src,
                dst,
                l4: case.service,
                l7: request.as_ref(),
            };
            let v = engine.verdict(&conn);
            r.checked += 1;
            if v.allowed != (case.expect == Expect::Allow) {
                let x = engine.explain_verdict(&conn, &v);
                let why: Vec<String> = [&x.egress, &x.ingress]
                    .iter()
                    .filter(|s| s.allowed != (case.expect == Expect::Allow) || !v.allowed)
                    .filter_map(|s| {
                        let t = s.text.get(s.decision_line)?;
                        Some(format!("{}: {t}", s.subject))
                    })
                    .collect();
                r.failures.push(format!(
                    "{sname} -> {dname} {}: {} ({})",
                    case.service,
                    if v.allowed { "allowed" } else { "denied" },
                    why.join("; ")
                ));
            }
        }
    }
    if r.checked == 0 {
        r.error = Some("no connection to check: from and to select only the same workload".into());
        return r;
    }
    r.passed = r.failures.is_empty();
    r
}

/// A test end as named endpoints.
fn expand(engine: &Engine, e: &TestEndpoint) -> Result<Vec<(String, Endpoint)>, String> {
    match e {
        TestEndpoint::Named(n) => resolve(engine, n)
            .map(|ep| vec![(n.clone(), ep)])
            .map_err(|e| e.to_string()),
        TestEndpoint::Workloads(ws) => {
            let sel = workload_selector(ws, None);
            let v: Vec<(String, Endpoint)> = engine
                .workloads()
                .into_iter()
                .filter(|(_, w)| {
                    engine
                        .namespace_labels(&w.key.namespace)
                        .is_some_and(|nl| sel.matches(&w.key.namespace, nl, &w.labels))
                })
                .map(|(id, w)| (w.key.to_string(), Endpoint::Workload { id, addr: None }))
                .collect();
            if v.is_empty() {
                Err(format!("{sel} selects no workload"))
            } else {
                Ok(v)
            }
        }
    }
}
