//! The sensors the proxy runs: the policy's `Sensor` documents compiled with
//! `bulkhead-sensor`, one inspector per distinct set of sensors (the groups of a
//! destination decide which), rebuilt when the policy changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bulkhead_l7::{Finding, Inspector, StreamInspector};
use bulkhead_policy::engine::Engine;
use bulkhead_policy::sensor::{
    Oversize, PatternContext, Sensor as SensorDoc, SensorAction, SensorClass,
};
use bulkhead_sensor::{Attack, Context, DlpKind, PatternSpec, Sensor, SensorSpec, SensorStream};
use smallvec::SmallVec;

/// What a sensor document asks of the detectors.
pub fn spec_of(doc: &SensorDoc) -> SensorSpec {
    let attack = |c: SensorClass| match c {
        SensorClass::Sqli => Some(Attack::Sqli),
        SensorClass::Xss => Some(Attack::Xss),
        SensorClass::Cmdi => Some(Attack::Cmdi),
        SensorClass::PathTraversal => Some(Attack::PathTraversal),
        _ => None,
    };
    let dlp = |c: SensorClass| match c {
        SensorClass::CreditCard => Some(DlpKind::CreditCard),
        SensorClass::Ssn => Some(DlpKind::Ssn),
        SensorClass::AwsAccessKey => Some(DlpKind::AwsAccessKey),
        SensorClass::PrivateKey => Some(DlpKind::PrivateKey),
        SensorClass::Email => Some(DlpKind::Email),
        _ => None,
    };
    SensorSpec {
        name: doc.name.clone(),
        block: doc.action == SensorAction::Block,
        attacks: doc.detect.iter().filter_map(|&c| attack(c)).collect(),
        dlp: doc.detect.iter().filter_map(|&c| dlp(c)).collect(),
        patterns: doc
            .patterns
            .iter()
            .map(|p| PatternSpec {
                name: p.name.clone(),
                regex: p.regex.clone(),
                contexts: p
                    .context
                    .iter()
                    .map(|c| match c {
                        PatternContext::Url => Context::Url,
                        PatternContext::Header => Context::Header,
                        PatternContext::Body => Context::Body,
                        PatternContext::Packet => Context::Packet,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Several sensors as one inspector.
pub struct SensorSet {
    sensors: Vec<Sensor>,
    /// The sensors that refuse what they cannot read whole (`oversize: Block`).
    oversize: Vec<String>,
}

fn convert(f: bulkhead_sensor::Finding) -> Finding {
    Finding {
        sensor: f.sensor,
        class: f.class,
        location: f.location,
        masked: f.masked,
        block: f.block,
    }
}

impl SensorSet {
    /// These sensors as one inspector; `oversize` names those that refuse what they
    /// cannot read whole.
    pub fn new(sensors: Vec<Sensor>, oversize: Vec<String>) -> SensorSet {
        SensorSet { sensors, oversize }
    }

    /// What cannot be read whole, at `location`: a blocking finding of each sensor that
    /// says `oversize: Block`, none under `Partial`.
    fn unread(&self, location: &str, what: &str) -> Vec<Finding> {
        (self.oversize.iter())
            .map(|name| Finding {
                sensor: name.clone(),
                class: "oversize".into(),
                location: location.into(),
                masked: what.to_string(),
                block: true,
            })
            .collect()
    }

    /// What every sensor of the set finds, as the proxy's findings. A sensor's note
    /// that it did not read a request whole (more values than it reads) blocks when
    /// that sensor says `oversize: Block`, and is dropped under `Partial` (documented:
    /// the rest passes unread).
    fn each(&self, f: impl Fn(&Sensor) -> Vec<bulkhead_sensor::Finding>) -> Vec<Finding> {
        (self.sensors.iter().flat_map(f))
            .filter_map(|mut x| {
                if x.class == bulkhead_sensor::OVERSIZE && !x.block {
                    x.block = self.oversize.contains(&x.sensor);
                    if !x.block {
                        return None;
                    }
                }
                Some(convert(x))
            })
            .collect()
    }
}

impl Inspector for SensorSet {
    fn http_request(&self, head: &[u8], body: &[u8]) -> Vec<Finding> {
        self.each(|s| s.http_request(head, body))
    }

    fn sql(&self, text: &[u8]) -> Vec<Finding> {
        self.each(|s| s.sql(text))
    }

    fn message(&self, payload: &[u8]) -> Vec<Finding> {
        self.each(|s| s.message(payload))
    }

    fn response_head(&self, head: &[u8]) -> Vec<Finding> {
        self.each(|s| s.response_head(head))
    }

    fn oversize(&self, held: usize) -> Vec<Finding> {
        self.unread("body", &format!("larger than the {held} bytes inspected"))
    }

    fn unreadable(&self, what: &str) -> Vec<Finding> {
        self.unread("response body", what)
    }

    fn redact(&self, text: &str) -> String {
        (self.sensors.iter()).fold(text.to_string(), |t, s| s.redact(&t))
    }

    fn stream(&self, from_server: bool) -> Box<dyn StreamInspector> {
        Box::new(Streams(
            self.sensors.iter().map(|s| s.stream(from_server)).collect(),
        ))
    }
}

struct Streams(Vec<SensorStream>);

impl StreamInspector for Streams {
    fn feed(&mut self, data: &[u8]) -> Vec<Finding> {
        self.0
            .iter_mut()
            .flat_map(|s| s.feed(data))
            .map(convert)
            .collect()
    }
}

/// Inspectors by set of sensor indices.
type BySet = HashMap<SmallVec<[u32; 2]>, Arc<SensorSet>>;

/// Inspectors by set of sensor indices, valid for one policy generation.
#[derive(Default)]
pub struct SensorCache {
    inner: Mutex<(u64, BySet)>,
}

impl SensorCache {
    /// The inspector for connections to a workload with these sensors (None if none).
    pub fn get(
        &self,
        engine: &Engine,
        generation: u64,
        sensors: SmallVec<[u32; 2]>,
    ) -> Option<Arc<dyn Inspector>> {
        if sensors.is_empty() {
            return None;
        }
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 != generation {
            *g = (generation, HashMap::new());
        }
        if let Some(s) = g.1.get(&sensors) {
            return Some(s.clone());
        }
        let docs = &engine.policy().sensors;
        let oversize = sensors
            .iter()
            .filter_map(|&i| docs.get(i as usize))
            .filter(|d| d.oversize == Oversize::Block)
            .map(|d| d.name.clone())
            .collect();
        let compiled: Vec<Sensor> = sensors
            .iter()
            .filter_map(|&i| docs.get(i as usize))
            .filter_map(|d| match Sensor::new(&spec_of(d)) {
                Ok(s) => Some(s),
                Err(e) => {
                    // The manifest checked every pattern; an error here is a limit of the
                    // sensor engine. The others still run.
                    tracing::warn!(sensor = %d.name, "sensor not compiled: {e}");
                    None
                }
            })
            .collect();
        let set = Arc::new(SensorSet {
            sensors: compiled,
            oversize,
        });
        g.1.insert(sensors, set.clone());
        Some(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(oversize_block: bool) -> SensorSet {
        let spec = SensorSpec {
            name: "waf".into(),
            block: true,
            attacks: vec![bulkhead_sensor::Attack::Sqli],
            dlp: vec![],
            patterns: vec![],
        };
        SensorSet {
            sensors: vec![Sensor::new(&spec).unwrap()],
            oversize: if oversize_block {
                vec!["waf".into()]
            } else {
                vec![]
            },
        }
    }

    /// A request padded with more values than the sensors read, the attack after them:
    /// refused under `oversize: Block`, passed unread (as documented) under `Partial`.
    /// (Before, `Block` let it through too: no finding said anything went unread.)
    #[test]
    fn a_request_with_more_values_than_are_read_follows_oversize() {
        let pad: String = (0..600).map(|i| format!("a{i}=1&")).collect();
        let head = format!(
            "GET /s?{pad}q=1'+UNION+SELECT+password+FROM+users-- HTTP/1.1\r\nHost: a\r\n\r\n"
        );
        let blocked = set(true).http_request(head.as_bytes(), b"");
        assert_eq!(blocked.len(), 1, "{blocked:?}");
        assert_eq!(
            (blocked[0].class.as_str(), blocked[0].block),
            ("oversize", true)
        );
        assert!(set(false).http_request(head.as_bytes(), b"").is_empty());
        // Within the limit, the attack itself is found either way.
        let head =
            "GET /s?a=1&b=2&q=1'+UNION+SELECT+password+FROM+users-- HTTP/1.1\r\nHost: a\r\n\r\n";
        for s in [set(true), set(false)] {
            let f = s.http_request(head.as_bytes(), b"");
            assert_eq!(f.len(), 1, "{f:?}");
            assert_eq!(f[0].class, "sqli");
        }
    }
}
