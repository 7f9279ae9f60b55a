//! From what the agent records to what response rules see: an incident (type,
//! severity, namespaces, groups, sensor, deciding policy) with both ends named, a one-
//! line summary, and the record itself as the detail.

use bulkhead_policy::response::{EventType, Incident, Severity};
use bulkhead_record::{Action, FlowRecord};
use serde::Serialize;
use serde_json::Value;

/// Both ends of an alert.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Ends {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_workload: Option<String>,
    pub src_ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_workload: Option<String>,
    pub dst_ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dport: Option<u16>,
    pub protocol: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub time: String,
    pub incident: Incident,
    pub ends: Ends,
    pub summary: String,
    /// The flow record or event it came from.
    pub detail: Value,
}

fn namespace(workload: Option<&str>) -> Option<String> {
    workload
        .and_then(|w| w.split_once('/'))
        .map(|(ns, _)| ns.to_string())
}

impl Alert {
    /// A flow record that is an incident: a denial, an L7 refusal or a Monitor
    /// violation (allowed and logged flows are not). `group` names a workload's group.
    pub fn from_flow(r: &FlowRecord, group: &dyn Fn(&str) -> Option<String>) -> Option<Alert> {
        let l7 = r.event == "l7";
        let forged = r
            .decided_by
            .as_ref()
            .is_some_and(|d| d.tier == "source-check");
        let kind = match (r.verdict, r.violation) {
            (Action::Deny, _) if forged => EventType::Spoof,
            (Action::Deny, _) if l7 => EventType::L7Denial,
            (Action::Deny, _) => EventType::Deny,
            (Action::Allow, true) => EventType::Violation,
            _ => return None,
        };
        // Ended connections repeat what their first packet reported.
        if r.event == "end" {
            return None;
        }
        let severity = match kind {
            EventType::Violation => Severity::Low,
            // Forging another workload's address is what an intruder does, not a
            // misconfiguration.
            EventType::Spoof => Severity::High,
            _ => Severity::Medium,
        };
        let ends = Ends {
            // The workload that did it: for a forged address, the one it came from.
            src_workload: match &r.sender {
                Some(s) if forged => s.workload.clone(),
                _ => r.src.workload.clone(),
            },
            src_ip: r.src.ip.clone(),
            dst_workload: r.dst.workload.clone(),
            dst_ip: r.dst.ip.clone(),
            dport: r.dport,
            protocol: r.protocol.clone(),
        };
        let request =
            r.l7.as_ref()
                .and_then(|v| v.get("request").and_then(Value::as_str))
                .map(|q| format!(" ({q})"))
                .unwrap_or_default();
        let why = r
            .decided_by
            .as_ref()
            .map(|d| format!(": {}", d.display()))
            .unwrap_or_default();
        let summary = format!(
            "{kind} {} -> {} {}{request}{why}",
            r.source_display(),
            r.dst.display(),
            r.service()
        );
        Some(Alert {
            time: r.time.clone(),
            incident: Incident {
                types: vec![kind],
                severity: Some(severity),
                namespaces: ends_list(&ends, namespace),
                groups: ends_list(&ends, |w| w.and_then(group)),
                sensor: None,
                policy: r
                    .decided_by
                    .as_ref()
                    .and_then(|d| d.rule.as_ref())
                    .map(|rule| rule.policy.clone()),
            },
            ends,
            summary,
            detail: serde_json::to_value(r).unwrap_or_default(),
        })
    }

    /// A proxy event that is an incident: a sensor finding (one alert per finding's
    /// sensor, the most severe first). Other events reach responders as flow records.
    pub fn from_event(e: &Value, group: &dyn Fn(&str) -> Option<String>) -> Vec<Alert> {
        if e.get("event").and_then(Value::as_str) != Some("sensor") {
            return Vec::new();
        }
        let s = |v: &Value| v.as_str().map(str::to_string);
        let addr = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default();
        let (client, server) = (addr("client"), addr("server"));
        let (src_ip, _) = client.rsplit_once(':').unwrap_or((client, ""));
        let (dst_ip, dport) = server.rsplit_once(':').unwrap_or((server, ""));
        let ends = Ends {
            src_workload: e.pointer("/src/workload").and_then(s),
            src_ip: src_ip.trim_matches(['[', ']']).to_string(),
            dst_workload: e.pointer("/dst/workload").and_then(s),
            dst_ip: dst_ip.trim_matches(['[', ']']).to_string(),
            dport: dport.parse().ok(),
            protocol: "TCP".into(),
        };
        let blocked = e.get("blocked").and_then(Value::as_bool).unwrap_or(false);
        let request = e.get("request").and_then(Value::as_str);
        let findings = e
            .get("findings")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut by_sensor: Vec<(String, Severity, Vec<&Value>)> = Vec::new();
        for f in &findings {
            let Some(sensor) = f.get("sensor").and_then(Value::as_str) else {
                continue;
            };
            let class = f.get("class").and_then(Value::as_str).unwrap_or("");
            let sev = severity(class, blocked);
            match by_sensor.iter_mut().find(|(n, ..)| n == sensor) {
                Some((_, s, fs)) => {
                    *s = (*s).max(sev);
                    fs.push(f);
                }
                None => by_sensor.push((sensor.to_string(), sev, vec![f])),
            }
        }
        by_sensor.sort_by_key(|s| std::cmp::Reverse(s.1));
        by_sensor
            .into_iter()
            .map(|(sensor, sev, fs)| {
                let what: Vec<String> = fs
                    .iter()
                    .map(|f| {
                        format!(
                            "{} in {}: {}",
                            f.get("class").and_then(Value::as_str).unwrap_or("?"),
                            f.get("location").and_then(Value::as_str).unwrap_or("?"),
                            f.get("masked").and_then(Value::as_str).unwrap_or("")
                        )
                    })
                    .collect();
                let summary = format!(
                    "sensor {sensor}{} {} -> {}{}: {}",
                    if blocked { " blocked" } else { "" },
                    ends.src_workload.as_deref().unwrap_or(&ends.src_ip),
                    ends.dst_workload.as_deref().unwrap_or(&ends.dst_ip),
                    request.map(|r| format!(" ({r})")).unwrap_or_default(),
                    what.join("; ")
                );
                Alert {
                    time: e.get("time").and_then(s).unwrap_or_default(),
                    incident: Incident {
                        types: vec![EventType::Sensor],
                        severity: Some(sev),
                        namespaces: ends_list(&ends, namespace),
                        groups: ends_list(&ends, |w| w.and_then(group)),
                        sensor: Some(sensor),
                        policy: None,
                    },
                    ends: ends.clone(),
                    summary,
                    detail: e.clone(),
                }
            })
            .collect()
    }

    /// What identifies "the same incident again" for suppression.
    pub fn key(&self) -> String {
        format!(
            "{:?}|{}|{}|{}|{:?}|{:?}",
            self.incident.types,
            self.ends
                .src_workload
                .as_deref()
                .unwrap_or(&self.ends.src_ip),
            self.ends
                .dst_workload
                .as_deref()
                .unwrap_or(&self.ends.dst_ip),
            self.ends.protocol,
            self.ends.dport,
            self.incident.sensor,
        )
    }

    /// The JSON a webhook receives.
    pub fn body(&self, rule: &str, node: &str, suppressed: u64) -> Value {
        serde_json::json!({
            "time": self.time,
            "node": node,
            "rule": rule,
            "type": self.incident.types.first().map(|t| t.as_str()),
            "severity": self.incident.severity.map(|s| s.as_str()),
            "summary": self.summary,
            "src": {"workload": self.ends.src_workload, "ip": self.ends.src_ip},
            "dst": {"workload": self.ends.dst_workload, "ip": self.ends.dst_ip, "port": self.ends.dport},
            "protocol": self.ends.protocol,
            "sensor": self.incident.sensor,
            "policy": self.incident.policy,
            "suppressed_since_last": suppressed,
            "detail": self.detail,
        })
    }
}

/// Attacks are high; a finding that was blocked is critical; personal data that is
/// not a secret (an e-mail address) and user patterns are medium.
fn severity(class: &str, blocked: bool) -> Severity {
    if blocked {
        return Severity::Critical;
    }
    match class {
        "sqli" | "xss" | "cmdi" | "path_traversal" | "path-traversal" | "credit_card"
        | "credit-card" | "ssn" | "aws_access_key" | "aws-access-key" | "private_key"
        | "private-key" => Severity::High,
        _ => Severity::Medium,
    }
}

/// One value per end that has one, source first, without repeats.
fn ends_list(ends: &Ends, f: impl Fn(Option<&str>) -> Option<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in [ends.src_workload.as_deref(), ends.dst_workload.as_deref()] {
        if let Some(v) = f(w)
            && !out.contains(&v)
        {
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_record::{Decided, Peer};

    fn peer(ip: &str, workload: Option<&str>) -> Peer {
        Peer {
            ip: ip.into(),
            workload: workload.map(str::to_string),
            ..Peer::default()
        }
    }

    fn decided(tier: &str) -> Decided {
        Decided {
            side: "egress".into(),
            tier: tier.into(),
            rule: None,
            mode: None,
            group: None,
            isolated_by: Vec::new(),
        }
    }

    #[test]
    fn a_forged_source_is_a_spoof_by_the_workload_that_sent_it() {
        let dst = peer("10.0.0.1", Some("platform/ldap-blue-0"));
        let mut r = FlowRecord::new(
            "t".into(),
            Action::Deny,
            "TCP",
            Peer {
                entity: Some("forged".into()),
                ..peer("10.0.0.2", None)
            },
            dst.clone(),
        );
        r.decided_by = Some(decided("source-check"));
        r.sender = Some(peer("10.0.0.3", Some("platform/ldap-client-red-0")));
        let a = Alert::from_flow(&r, &|_| None).expect("an incident");
        assert_eq!(a.incident.types, vec![EventType::Spoof]);
        assert_eq!(a.incident.severity, Some(Severity::High));
        // Quarantine and capture act on the sender, not on the address it forged.
        assert_eq!(
            a.ends.src_workload.as_deref(),
            Some("platform/ldap-client-red-0")
        );
        assert!(
            a.summary
                .starts_with("spoof forged 10.0.0.2 from platform/ldap-client-red-0 -> "),
            "{}",
            a.summary
        );
        // The same denial by policy stays a denial of its source.
        let mut d = FlowRecord::new(
            "t".into(),
            Action::Deny,
            "TCP",
            peer("10.0.0.3", Some("platform/ldap-client-red-0")),
            dst,
        );
        d.decided_by = Some(decided("policy"));
        let a = Alert::from_flow(&d, &|_| None).expect("an incident");
        assert_eq!(a.incident.types, vec![EventType::Deny]);
        assert_eq!(a.incident.severity, Some(Severity::Medium));
    }
}
