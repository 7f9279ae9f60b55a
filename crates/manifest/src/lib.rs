//! Turns YAML manifests into the engine's input ([`Bundle`]): Kubernetes inventory
//! (Namespace, Pod, Node, workload controllers), Kubernetes NetworkPolicy, bulkhead's
//! own kinds (Group, Policy, Settings) and the `PolicyTest` assertions of `bulkhead test`.
//!
//! The decoder decodes and validates what each document says on its own (syntax, types,
//! local constraints), and reports every problem of every file with
//! `FILE:LINE:COL: PATH: MESSAGE`. It applies no policy semantics and no cross-document
//! checks beyond duplicate inventory objects and a second `Settings`; see
//! `docs/reference/manifests.md` for every kind and field.
//!
//! ```
//! use bulkhead_manifest::{Source, parse_sources};
//! let src = Source {
//!     name: "demo.yaml".into(),
//!     text: "apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}\n".into(),
//! };
//! let bundle = parse_sources(&[src]).unwrap();
//! assert_eq!(bundle.inventory.workloads[0].key.to_string(), "default/web");
//! ```
#![forbid(unsafe_code)]

mod bulkhead;
mod decode;
mod diag;
mod document;
mod io;
mod k8s;
mod l7;
mod lab;
mod names;
mod netpol;
mod policytest;
mod port;
mod response;
mod selector;
mod sensor;
mod yaml;

use std::collections::HashMap;
use std::path::PathBuf;

use bulkhead_model::WorkloadKey;
use bulkhead_policy::spec::{Bundle, Origin};

pub use diag::{Diagnostic, Diagnostics};
pub use io::read_paths;

use decode::{Cx, Problem};
use document::Item;
use yaml::Pos;

/// One input: its name (a path, or `-` for standard input) and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// Read and parse: [`read_paths`] then [`parse_sources`].
pub fn load(paths: &[PathBuf], recursive: bool) -> Result<Bundle, Diagnostics> {
    parse_sources(&read_paths(paths, recursive)?)
}

/// Decode every document of every source. Pure. On any problem, returns all of them
/// (in file order, then reading order) and no bundle.
pub fn parse_sources(sources: &[Source]) -> Result<Bundle, Diagnostics> {
    let mut problems: Vec<(usize, Problem)> = Vec::new();
    let mut items: Vec<(usize, Item)> = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        let stream = yaml::parse(&src.text);
        let mut cx = Cx::new(src.name.as_str(), &src.text);
        let mut out = Vec::new();
        for doc in &stream.docs {
            document::decode(&mut cx, doc, &mut out);
        }
        if let Some(e) = stream.error {
            cx.problems.push(Problem {
                pos: e.pos,
                path: String::new(),
                message: e.message,
            });
        }
        problems.extend(cx.problems.into_iter().map(|p| (i, p)));
        items.extend(out.into_iter().map(|it| (i, it)));
    }
    let bundle = assemble(sources, items, &mut problems);
    if problems.is_empty() {
        return Ok(bundle);
    }
    problems.sort_by_key(|(i, p)| (*i, p.pos));
    Err(Diagnostics(
        problems
            .into_iter()
            .map(|(i, p)| Diagnostic {
                file: sources[i].name.clone(),
                line: p.pos.line,
                column: p.pos.column,
                path: p.path,
                message: p.message,
            })
            .collect(),
    ))
}

/// Where something was first defined, for "also defined at" messages.
struct Seen<K> {
    first: HashMap<K, String>,
}

impl<K: std::hash::Hash + Eq> Seen<K> {
    fn new() -> Self {
        Seen {
            first: HashMap::new(),
        }
    }

    /// `None` the first time; the first place on later times.
    fn check(&mut self, key: K, at: String) -> Option<&String> {
        use std::collections::hash_map::Entry;
        match self.first.entry(key) {
            Entry::Vacant(v) => {
                v.insert(at);
                None
            }
            Entry::Occupied(o) => Some(o.into_mut()),
        }
    }
}

/// Put the documents together: expand controllers, and report duplicate inventory
/// objects and a second Settings, each at the later occurrence, naming the first.
fn assemble(
    sources: &[Source],
    items: Vec<(usize, Item)>,
    problems: &mut Vec<(usize, Problem)>,
) -> Bundle {
    let mut b = Bundle::default();
    let place = |i: usize, pos: Pos| format!("{}:{}:{}", sources[i].name, pos.line, pos.column);
    let mut dup = |i: usize, pos: Pos, message: String| {
        problems.push((
            i,
            Problem {
                pos,
                path: String::new(),
                message,
            },
        ))
    };
    // Nodes first: DaemonSets put one pod on each.
    let mut nodes = Seen::new();
    for (i, item) in &items {
        if let Item::Node(n, pos) = item {
            if let Some(first) = nodes.check(n.name.clone(), place(*i, *pos)) {
                dup(
                    *i,
                    *pos,
                    format!("duplicate Node {}; also defined at {first}", n.name),
                );
                continue;
            }
            b.inventory.nodes.push(n.clone());
        }
    }
    let node_names: Vec<String> = b.inventory.nodes.iter().map(|n| n.name.clone()).collect();
    let mut pods: Seen<WorkloadKey> = Seen::new();
    let mut namespaces = Seen::new();
    let mut settings: Option<Origin> = None;
    let mut lab: Option<String> = None;
    for (i, item) in items {
        match item {
            Item::Node(..) => {}
            Item::Namespace(ns, pos) => match namespaces.check(ns.name.clone(), place(i, pos)) {
                Some(first) => dup(
                    i,
                    pos,
                    format!("duplicate Namespace {}; also defined at {first}", ns.name),
                ),
                None => b.inventory.namespaces.push(ns),
            },
            Item::Pod(w, pos) => match pods.check(w.key.clone(), place(i, pos)) {
                Some(first) => dup(
                    i,
                    pos,
                    format!("duplicate Pod {}; also defined at {first}", w.key),
                ),
                None => b.inventory.workloads.push(w),
            },
            Item::Controller(c) => {
                for w in c.expand(&node_names) {
                    match pods.check(w.key.clone(), place(i, c.pos)) {
                        Some(first) => dup(
                            i,
                            c.pos,
                            format!(
                                "{} {} creates Pod {}, also defined at {first}",
                                c.kind, c.template.key.name, w.key
                            ),
                        ),
                        None => b.inventory.workloads.push(w),
                    }
                }
            }
            Item::Group(g) => b.policy.groups.push(g),
            Item::Sensor(s) => b.policy.sensors.push(s),
            Item::Response(r) => b.policy.responses.push(r),
            Item::Policy(p) => b.policy.policies.push(p),
            Item::NetworkPolicy(np) => b.policy.network_policies.push(np),
            Item::PolicyTest(t) => b.tests.push(t),
            Item::Lab(l) => {
                let at = |o: &Origin| Pos {
                    line: o.line,
                    column: o.column,
                };
                if let Some(first) = &lab {
                    let msg = format!("only one Lab document is allowed; the first is at {first}");
                    dup(i, at(&l.origin), msg);
                    continue;
                }
                lab = Some(place(i, at(&l.origin)));
                // Lab workloads are workloads like Pods: same names, same duplicates.
                for w in &l.workloads {
                    let key = w.workload.key.clone();
                    match pods.check(key.clone(), place(i, at(&w.origin))) {
                        Some(first) => dup(
                            i,
                            at(&w.origin),
                            format!("duplicate workload {key}; also defined at {first}"),
                        ),
                        None => b.inventory.workloads.push(w.workload.clone()),
                    }
                }
                b.lab = Some(l);
            }
            Item::Settings(s) => {
                let origin = s.origin.clone().unwrap_or_default();
                match &settings {
                    Some(first) => dup(
                        i,
                        Pos {
                            line: origin.line,
                            column: origin.column,
                        },
                        format!("only one Settings document is allowed; the first is at {first}"),
                    ),
                    None => {
                        settings = Some(origin);
                        b.policy.settings = s;
                    }
                }
            }
        }
    }
    b
}
