//! `kind: Sensor`: what to look for inside connections that policy allowed, and what to
//! do about it. Groups attach sensors by name (`Group.spec.sensors`); every TCP
//! connection to a member of such a group goes through the L7 proxy, which runs the
//! sensors on what it carries (see `bulkhead-sensor` for the detectors themselves).
//!
//! Only the vocabulary lives here, so that documents are validated where they are read;
//! the policy core never looks inside payloads.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::spec::Origin;

/// What a sensor does with a finding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SensorAction {
    /// Report it (an event with the masked match and a capture); let the traffic pass.
    #[default]
    Alert,
    /// Report it and stop it: the request is refused with the protocol's own error, or
    /// the connection is closed before the bytes that carried it are delivered.
    Block,
}

/// What a sensor does with a message larger than the proxy holds for it (64 KiB of a
/// request body, of an HTTP/2 request's body, of a WebSocket message).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Oversize {
    /// Judge the first 64 KiB; the rest passes unread (ModSecurity's ProcessPartial,
    /// AWS WAF's CONTINUE). An attack placed past the padding goes unseen.
    #[default]
    Partial,
    /// Refuse it, as a blocking finding would be (ModSecurity's Reject): what cannot be
    /// read whole does not pass.
    Block,
}

/// A built-in detector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SensorClass {
    Sqli,
    Xss,
    Cmdi,
    PathTraversal,
    CreditCard,
    Ssn,
    AwsAccessKey,
    PrivateKey,
    Email,
}

impl SensorClass {
    pub const ALL: [SensorClass; 9] = [
        SensorClass::Sqli,
        SensorClass::Xss,
        SensorClass::Cmdi,
        SensorClass::PathTraversal,
        SensorClass::CreditCard,
        SensorClass::Ssn,
        SensorClass::AwsAccessKey,
        SensorClass::PrivateKey,
        SensorClass::Email,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SensorClass::Sqli => "sqli",
            SensorClass::Xss => "xss",
            SensorClass::Cmdi => "cmdi",
            SensorClass::PathTraversal => "path-traversal",
            SensorClass::CreditCard => "credit-card",
            SensorClass::Ssn => "ssn",
            SensorClass::AwsAccessKey => "aws-access-key",
            SensorClass::PrivateKey => "private-key",
            SensorClass::Email => "email",
        }
    }

    /// Attacks look at requests; the others are data-loss prevention.
    pub fn is_attack(self) -> bool {
        matches!(
            self,
            SensorClass::Sqli | SensorClass::Xss | SensorClass::Cmdi | SensorClass::PathTraversal
        )
    }
}

impl fmt::Display for SensorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SensorClass {
    type Err = String;

    /// `path-traversal` and `path_traversal` both name it (the corpora use underscores).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.to_ascii_lowercase().replace('_', "-");
        SensorClass::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown detector {s:?}"))
    }
}

/// Where a user-defined pattern looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PatternContext {
    /// The request line: path and query (decoded).
    Url,
    /// Header values.
    Header,
    /// Message bodies (requests and responses).
    Body,
    /// Every byte of the connection, whatever the protocol.
    Packet,
}

impl PatternContext {
    pub const ALL: [(&'static str, PatternContext); 4] = [
        ("url", PatternContext::Url),
        ("header", PatternContext::Header),
        ("body", PatternContext::Body),
        ("packet", PatternContext::Packet),
    ];
}

/// A user-defined pattern: a regular expression (Rust `regex` syntax) and where it looks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SensorPattern {
    pub name: String,
    pub regex: String,
    pub context: Vec<PatternContext>,
}

/// `kind: Sensor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sensor {
    pub name: String,
    pub action: SensorAction,
    #[serde(default)]
    pub oversize: Oversize,
    pub detect: Vec<SensorClass>,
    pub patterns: Vec<SensorPattern>,
    pub origin: Origin,
}
