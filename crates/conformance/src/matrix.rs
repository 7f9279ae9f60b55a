//! Probes (`TCP/80`) and reachability matrices, plus a readable diff of two matrices.
//!
//! A matrix answers, for every ordered pair of distinct pods and every probe, "may
//! the first pod open a connection to the second on this protocol and port?". Its
//! JSON form is the contract other bulkhead tests compare against:
//!
//! ```json
//! {"probes": ["TCP/80", "UDP/53"],
//!  "allowed": {"x/a -> x/b": ["TCP/80"], "x/b -> x/a": []}}
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The probes a scenario uses when its `expected.yaml` does not list its own.
pub const DEFAULT_PROBES: [&str; 4] = ["TCP/80", "TCP/81", "UDP/53", "SCTP/80"];

/// A layer-4 protocol, spelled in YAML exactly as Kubernetes spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One connection attempt's protocol and destination port, written `PROTO/PORT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Probe {
    pub protocol: Protocol,
    pub port: u16,
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol, self.port)
    }
}

impl FromStr for Probe {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!("probe {text:?} is not PROTO/PORT (e.g. \"TCP/80\", \"UDP/53\", \"SCTP/80\")")
        };
        let (protocol, port) = text.split_once('/').ok_or_else(bad)?;
        let protocol = match protocol {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            _ => return Err(bad()),
        };
        match port.parse::<u16>() {
            Ok(port) if port > 0 => Ok(Probe { protocol, port }),
            _ => Err(bad()),
        }
    }
}

/// Parses a list of probe strings, failing on the first malformed or repeated one.
pub fn parse_probes<S: AsRef<str>>(texts: &[S]) -> Result<Vec<Probe>, String> {
    let mut probes = Vec::with_capacity(texts.len());
    for text in texts {
        let probe: Probe = text.as_ref().parse()?;
        if probes.contains(&probe) {
            return Err(format!("probe {probe} is listed twice"));
        }
        probes.push(probe);
    }
    Ok(probes)
}

/// The key of one ordered pair in [`Matrix::allowed`]: `"ns/src -> ns/dst"`.
pub fn pair_key(source: &str, destination: &str) -> String {
    format!("{source} -> {destination}")
}

/// Reachability between every ordered pair of distinct pods, per probe.
///
/// `allowed` has one entry per ordered pair of distinct pods (a pod talking to
/// itself is never part of a matrix), listing the allowed probes in the order of
/// `probes`; a pair with nothing allowed maps to an empty list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matrix {
    pub probes: Vec<String>,
    pub allowed: BTreeMap<String, Vec<String>>,
}

impl Matrix {
    /// Builds a matrix over `pods` (named by `key`, `"ns/name"`) by asking
    /// `is_allowed` about every ordered pair of distinct pods and every probe.
    pub fn build<P>(
        pods: &[P],
        key: impl Fn(&P) -> String,
        probes: &[Probe],
        mut is_allowed: impl FnMut(&P, &P, Probe) -> bool,
    ) -> Matrix {
        let mut allowed = BTreeMap::new();
        for (i, source) in pods.iter().enumerate() {
            for (j, destination) in pods.iter().enumerate() {
                // A pod talking to itself is never policed, so never in a matrix.
                if i == j {
                    continue;
                }
                let cell = probes
                    .iter()
                    .filter(|probe| is_allowed(source, destination, **probe))
                    .map(Probe::to_string)
                    .collect();
                allowed.insert(pair_key(&key(source), &key(destination)), cell);
            }
        }
        Matrix {
            probes: probes.iter().map(Probe::to_string).collect(),
            allowed,
        }
    }

    /// The matrix as compact JSON, in the documented shape.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a map of strings always serialises")
    }

    /// Whether `probe` is allowed for the pair `"src -> dst"` (false for unknown pairs).
    pub fn allows(&self, pair: &str, probe: &str) -> bool {
        self.allowed
            .get(pair)
            .is_some_and(|cell| cell.iter().any(|p| p == probe))
    }
}

/// Every difference between `expected` and `got`, one readable line each, e.g.
/// `x/b -> x/a TCP/80: expected allow, got deny`. Empty when the matrices agree.
pub fn diff(expected: &Matrix, got: &Matrix) -> Vec<String> {
    let mut lines = Vec::new();
    if expected.probes != got.probes {
        lines.push(format!(
            "probe lists differ: expected {:?}, got {:?}",
            expected.probes, got.probes
        ));
    }
    // Compare over the union of both probe lists, in expected's order first, so a
    // probe missing from one side still shows up cell by cell.
    let mut probes: Vec<&String> = expected.probes.iter().collect();
    probes.extend(got.probes.iter().filter(|p| !expected.probes.contains(p)));

    let pairs: BTreeSet<&String> = expected.allowed.keys().chain(got.allowed.keys()).collect();
    for pair in pairs {
        match (
            expected.allowed.contains_key(pair),
            got.allowed.contains_key(pair),
        ) {
            (true, false) => lines.push(format!("{pair}: pair missing from the result")),
            (false, true) => lines.push(format!("{pair}: pair not expected in the result")),
            _ => {
                for probe in &probes {
                    let want = expected.allows(pair, probe);
                    let have = got.allows(pair, probe);
                    if want != have {
                        lines.push(format!(
                            "{pair} {probe}: expected {}, got {}",
                            verdict(want),
                            verdict(have)
                        ));
                    }
                }
            }
        }
    }
    lines
}

fn verdict(allowed: bool) -> &'static str {
    if allowed { "allow" } else { "deny" }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PODS: [&str; 2] = ["x/a", "x/b"];

    fn key(pod: &&str) -> String {
        pod.to_string()
    }

    fn probes(texts: &[&str]) -> Vec<Probe> {
        parse_probes(texts).unwrap()
    }

    #[test]
    fn probe_round_trips_and_rejects_garbage() {
        assert_eq!("SCTP/80".parse::<Probe>().unwrap().to_string(), "SCTP/80");
        for bad in ["tcp/80", "TCP80", "TCP/0", "TCP/65536", "ICMP/1", "TCP/x"] {
            assert!(bad.parse::<Probe>().is_err(), "{bad} should be rejected");
        }
        assert!(parse_probes(&["TCP/80", "TCP/80"]).is_err());
    }

    #[test]
    fn build_covers_distinct_pairs_in_probe_order() {
        let m = Matrix::build(&PODS, key, &probes(&["UDP/53", "TCP/80"]), |src, _, p| {
            *src == "x/a" || p.protocol == Protocol::Tcp
        });
        assert_eq!(
            m.to_json(),
            r#"{"probes":["UDP/53","TCP/80"],"allowed":{"x/a -> x/b":["UDP/53","TCP/80"],"x/b -> x/a":["TCP/80"]}}"#
        );
    }

    #[test]
    fn diff_names_pair_probe_and_both_verdicts() {
        let all = Matrix::build(&PODS, key, &probes(&["TCP/80"]), |_, _, _| true);
        let some = Matrix::build(&PODS, key, &probes(&["TCP/80"]), |src, _, _| *src == "x/a");
        assert!(diff(&all, &all).is_empty());
        assert_eq!(
            diff(&all, &some),
            ["x/b -> x/a TCP/80: expected allow, got deny"]
        );
    }
}
