//! `kind: ResponseRule`: what to do when something crosses the line. A rule names the
//! events it is about (type, namespace, group, severity, sensor, deciding policy) and
//! the actions to take: tell someone (webhook, syslog), isolate the workload that did it
//! (quarantine), or record its packets (capture).
//!
//! Only the vocabulary and the matching live here (pure, so that documents are checked
//! where they are read and matching can be tested without I/O); `bulkhead-respond`
//! carries the actions out.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::spec::Origin;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventType {
    /// The data plane refused a connection (a Protect group, a Deny rule).
    Deny,
    /// A Monitor group let through a connection nothing allowed.
    Violation,
    /// The L7 proxy refused a request or a protocol.
    L7Denial,
    /// A sensor found an attack or sensitive data in allowed traffic.
    Sensor,
    /// A workload sent with another's source address (dropped by the source check).
    Spoof,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::Deny,
        EventType::Violation,
        EventType::L7Denial,
        EventType::Sensor,
        EventType::Spoof,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Deny => "deny",
            EventType::Violation => "violation",
            EventType::L7Denial => "l7-denial",
            EventType::Sensor => "sensor",
            EventType::Spoof => "spoof",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("{s}: expected deny, violation, l7-denial, sensor or spoof"))
    }
}

/// How bad it is, in increasing order (syslog severities follow from it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Severity::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("{s}: expected low, medium, high or critical"))
    }
}

/// Which events a rule is about. Every list that is not empty must match (an empty
/// list matches anything); within a list, any entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventMatch {
    pub types: Vec<EventType>,
    /// Namespaces of either end.
    pub namespaces: Vec<String>,
    /// Groups of either end.
    pub groups: Vec<String>,
    pub min_severity: Option<Severity>,
    /// Sensor names (sensor events only).
    pub sensors: Vec<String>,
    /// Names of the policies whose rule decided.
    pub policies: Vec<String>,
}

/// How a syslog message travels (RFC 5426 over UDP, RFC 6587 octet counting over TCP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResponseAction {
    /// POST the event as JSON; retried with backoff on errors and 5xx answers.
    Webhook {
        url: String,
        headers: Vec<(String, String)>,
        retries: u32,
        timeout_ms: u64,
    },
    /// One RFC 5424 message per event.
    Syslog {
        address: String,
        transport: Transport,
        /// 16 (local0) to 23 (local7), or any RFC 5424 facility number.
        facility: u8,
    },
    /// Isolate the source workload at once: nothing in or out, live connections cut,
    /// until `bulkhead quarantine release`.
    Quarantine,
    /// Record the source workload's packets (pcap), for `seconds` or `max_bytes`.
    Capture {
        filter: Option<String>,
        seconds: u32,
        max_bytes: u64,
    },
}

impl ResponseAction {
    pub fn kind(&self) -> &'static str {
        match self {
            ResponseAction::Webhook { .. } => "webhook",
            ResponseAction::Syslog { .. } => "syslog",
            ResponseAction::Quarantine => "quarantine",
            ResponseAction::Capture { .. } => "capture",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResponseRule {
    pub name: String,
    pub on: EventMatch,
    pub actions: Vec<ResponseAction>,
    pub origin: Origin,
}

/// An event as response rules see it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub types: Vec<EventType>,
    pub severity: Option<Severity>,
    /// Namespaces and groups of the two ends (source first).
    pub namespaces: Vec<String>,
    pub groups: Vec<String>,
    pub sensor: Option<String>,
    pub policy: Option<String>,
}

impl EventMatch {
    pub fn matches(&self, i: &Incident) -> bool {
        let any = |want: &[String], have: &[String]| {
            want.is_empty() || want.iter().any(|w| have.contains(w))
        };
        (self.types.is_empty() || self.types.iter().any(|t| i.types.contains(t)))
            && any(&self.namespaces, &i.namespaces)
            && any(&self.groups, &i.groups)
            && self
                .min_severity
                .is_none_or(|m| i.severity.is_some_and(|s| s >= m))
            && any(&self.sensors, i.sensor.as_slice())
            && any(&self.policies, i.policy.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident() -> Incident {
        Incident {
            types: vec![EventType::Sensor],
            severity: Some(Severity::High),
            namespaces: vec!["shop".into(), "db".into()],
            groups: vec!["web".into()],
            sensor: Some("sqli".into()),
            policy: None,
        }
    }

    #[test]
    fn empty_match_matches_everything() {
        assert!(EventMatch::default().matches(&incident()));
        assert!(EventMatch::default().matches(&Incident::default()));
    }

    #[test]
    fn every_given_list_must_match() {
        let i = incident();
        let m = |f: fn(&mut EventMatch)| {
            let mut m = EventMatch::default();
            f(&mut m);
            m.matches(&i)
        };
        assert!(m(|m| m.types = vec![EventType::Deny, EventType::Sensor]));
        assert!(!m(|m| m.types = vec![EventType::Deny]));
        assert!(m(|m| m.namespaces = vec!["db".into()]));
        assert!(!m(|m| m.namespaces = vec!["other".into()]));
        assert!(m(|m| m.groups = vec!["web".into()]));
        assert!(!m(|m| m.groups = vec!["db".into()]));
        assert!(m(|m| m.min_severity = Some(Severity::High)));
        assert!(!m(|m| m.min_severity = Some(Severity::Critical)));
        assert!(m(|m| m.sensors = vec!["sqli".into()]));
        assert!(!m(|m| m.sensors = vec!["dlp".into()]));
        // No deciding policy: a rule about policies does not match.
        assert!(!m(|m| m.policies = vec!["p".into()]));
    }
}
