//! Expanding a scenario's hand-written `expected.yaml` into a [`Matrix`].
//!
//! ```yaml
//! description: "what the scenario tests and which doc section or e2e test it mirrors"
//! probes: ["TCP/80", "TCP/81", "UDP/53", "SCTP/80"]   # optional; this is the default
//! rules:
//!   - {from: "*", to: "x/a", allow: false}
//!   - {from: "x/b", to: "x/a", probes: ["TCP/80"], allow: true}
//! ```
//!
//! Every ordered pair of distinct pods starts allowed on every probe; the rules
//! then apply in order, a later rule overriding earlier ones on the cells it
//! covers. `from` and `to` are `"ns/pod"`, `"ns/*"`, `"*/pod"` or `"*"`.

use std::path::Path;

use serde::Deserialize;

use crate::matrix::{DEFAULT_PROBES, Matrix, Probe, parse_probes};
use crate::scenario::{Error, Pod, load_scenario};

/// The name of the expectation file in a scenario directory.
pub const EXPECTED_FILE: &str = "expected.yaml";

/// A parsed `expected.yaml`.
#[derive(Clone, Debug)]
pub struct Expectation {
    pub description: String,
    pub probes: Vec<Probe>,
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectationFile {
    description: String,
    probes: Option<Vec<String>>,
    #[serde(default)]
    rules: Vec<RuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    from: String,
    to: String,
    probes: Option<Vec<String>>,
    allow: bool,
}

#[derive(Clone, Debug)]
struct Rule {
    from: Pattern,
    to: Pattern,
    /// `None` covers every probe of the scenario.
    probes: Option<Vec<Probe>>,
    allow: bool,
}

/// `"ns/pod"`, `"ns/*"`, `"*/pod"` or `"*"`; `None` in a part is the wildcard.
#[derive(Clone, Debug)]
struct Pattern {
    namespace: Option<String>,
    name: Option<String>,
}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, String> {
        let part = |p: &str| (p != "*").then(|| p.to_string());
        match text.split_once('/') {
            _ if text == "*" => Ok(Pattern {
                namespace: None,
                name: None,
            }),
            Some((ns, pod)) if !ns.is_empty() && !pod.is_empty() && !pod.contains('/') => {
                Ok(Pattern {
                    namespace: part(ns),
                    name: part(pod),
                })
            }
            _ => Err(format!(
                "{text:?} is not \"ns/pod\", \"ns/*\", \"*/pod\" or \"*\""
            )),
        }
    }

    fn matches(&self, pod: &Pod) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|ns| *ns == pod.namespace)
            && self.name.as_ref().is_none_or(|name| *name == pod.name)
    }
}

impl Expectation {
    /// Reads and checks `dir/expected.yaml` against the scenario's pods: every
    /// pattern must name at least one pod and every probe must be one of the
    /// scenario's, so a typo cannot silently expect nothing.
    pub fn load(dir: impl AsRef<Path>, pods: &[Pod]) -> Result<Expectation, Error> {
        let path = dir.as_ref().join(EXPECTED_FILE);
        let file = path.display().to_string();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::new(&file, format!("cannot read: {e}")))?;
        Expectation::parse(&text, pods).map_err(|message| Error::new(&file, message))
    }

    /// Parses the text of an `expected.yaml`; see [`Expectation::load`].
    pub fn parse(text: &str, pods: &[Pod]) -> Result<Expectation, String> {
        let options = serde_saphyr::options! { strict_booleans: true };
        let raw: ExpectationFile = serde_saphyr::from_str_with_options(text, options)
            .map_err(|e| format!("invalid expectation: {e}"))?;
        let probes = match &raw.probes {
            Some(probes) if probes.is_empty() => return Err("`probes` is empty".into()),
            Some(probes) => parse_probes(probes)?,
            None => parse_probes(&DEFAULT_PROBES)?,
        };
        let mut rules = Vec::new();
        for (index, rule) in raw.rules.into_iter().enumerate() {
            let rule =
                Rule::parse(rule, &probes, pods).map_err(|m| format!("rules[{index}]: {m}"))?;
            rules.push(rule);
        }
        Ok(Expectation {
            description: raw.description,
            probes,
            rules,
        })
    }

    /// The expected matrix over `pods`.
    pub fn matrix(&self, pods: &[Pod]) -> Matrix {
        Matrix::build(
            pods,
            Pod::key,
            &self.probes,
            |source, destination, probe| {
                // The last rule covering a cell decides it; with none, it stays allowed.
                self.rules
                    .iter()
                    .rev()
                    .find(|rule| rule.covers(source, destination, probe))
                    .is_none_or(|rule| rule.allow)
            },
        )
    }
}

impl Rule {
    fn covers(&self, source: &Pod, destination: &Pod, probe: Probe) -> bool {
        self.from.matches(source)
            && self.to.matches(destination)
            && self
                .probes
                .as_ref()
                .is_none_or(|probes| probes.contains(&probe))
    }

    fn parse(raw: RuleFile, scenario_probes: &[Probe], pods: &[Pod]) -> Result<Rule, String> {
        let from = Pattern::parse(&raw.from)?;
        let to = Pattern::parse(&raw.to)?;
        for (field, pattern, text) in [("from", &from, &raw.from), ("to", &to, &raw.to)] {
            if !pods.iter().any(|pod| pattern.matches(pod)) {
                return Err(format!("{field} {text:?} matches no pod of the scenario"));
            }
        }
        let probes = match raw.probes {
            None => None,
            Some(texts) => {
                let probes = parse_probes(&texts)?;
                if let Some(stray) = probes.iter().find(|p| !scenario_probes.contains(p)) {
                    return Err(format!("probe {stray} is not among the scenario's probes"));
                }
                Some(probes)
            }
        };
        Ok(Rule {
            from,
            to,
            probes,
            allow: raw.allow,
        })
    }
}

/// The hand-written expected matrix of the scenario in `dir`.
pub fn expected_matrix(dir: impl AsRef<Path>) -> Result<Matrix, Error> {
    let dir = dir.as_ref();
    let scenario = load_scenario(dir)?;
    Ok(Expectation::load(dir, &scenario.pods)?.matrix(&scenario.pods))
}
