//! The attack classes and one entry point over the detectors.

use serde::{Deserialize, Serialize};

/// An attack class a sensor can look for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attack {
    Sqli,
    Xss,
    Cmdi,
    PathTraversal,
}

impl Attack {
    pub const ALL: [Attack; 4] = [
        Attack::Sqli,
        Attack::Xss,
        Attack::Cmdi,
        Attack::PathTraversal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Attack::Sqli => "sqli",
            Attack::Xss => "xss",
            Attack::Cmdi => "cmdi",
            Attack::PathTraversal => "path_traversal",
        }
    }
}

impl std::fmt::Display for Attack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Attack {
    type Err = String;

    /// `sqli`, `xss`, `cmdi`, `path_traversal`; kebab-case (`path-traversal`) too.
    fn from_str(s: &str) -> Result<Attack, String> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        Attack::ALL
            .into_iter()
            .find(|a| a.as_str() == norm)
            .ok_or_else(|| format!("unknown attack class {s:?} (sqli, xss, cmdi, path_traversal)"))
    }
}

/// What a detector saw: a short reason, and for SQL injection its token fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detection {
    pub reason: String,
    pub fingerprint: Option<String>,
}

/// Run one detector on one decoded value.
pub fn detect(attack: Attack, value: &[u8]) -> Option<Detection> {
    detect_profiled(attack, value, crate::profile::Profile::of(value))
}

/// [`detect`] with the value's byte classes already known (one pass shared by every
/// detector run on the value).
pub(crate) fn detect_profiled(
    attack: Attack,
    value: &[u8],
    p: crate::profile::Profile,
) -> Option<Detection> {
    match attack {
        Attack::Sqli => crate::sqli::detect_profiled(value, p).map(|m| Detection {
            reason: m.signals.join(","),
            fingerprint: Some(m.fingerprint),
        }),
        Attack::Xss => crate::xss::detect_profiled(value, p).map(|m| Detection {
            reason: m.reason.to_string(),
            fingerprint: None,
        }),
        Attack::Cmdi => crate::cmdi::detect_profiled(value, p).map(|m| Detection {
            reason: m.command,
            fingerprint: None,
        }),
        Attack::PathTraversal => crate::traversal::detect_profiled(value, p).map(|m| Detection {
            reason: m.reason.to_string(),
            fingerprint: None,
        }),
    }
}
