//! The L7 proxy's added latency, as histograms by stage and protocol: how long it held
//! a connection's first bytes to detect its protocol (`detect`), and how long deciding
//! the requests of one read took (`request`). Kept since the agent started and written
//! to `status.json` (`proxy_latency`); the server exports them as the Prometheus
//! histogram `bulkhead_proxy_latency_seconds`.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Upper bounds of the buckets, seconds: 10 us to the detection timeout (3 s).
pub const BUCKETS: [f64; 16] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 1.0, 3.0,
];

/// One histogram of `status.json`'s `proxy_latency`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    /// `detect` or `request`.
    pub stage: String,
    /// The application protocol (`unknown` when detection named none).
    pub protocol: String,
    /// Upper bounds of the buckets, seconds.
    pub le: Vec<f64>,
    /// Observations per bucket (not cumulative), one more than `le`: the last counts
    /// those above every bound.
    pub counts: Vec<u64>,
    pub count: u64,
    /// Sum of the observations, seconds.
    pub sum: f64,
}

impl LatencyHistogram {
    fn new(stage: &str, protocol: &str) -> Self {
        LatencyHistogram {
            stage: stage.to_string(),
            protocol: protocol.to_string(),
            le: BUCKETS.to_vec(),
            counts: vec![0; BUCKETS.len() + 1],
            count: 0,
            sum: 0.0,
        }
    }

    fn observe(&mut self, seconds: f64) {
        let i = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[i] += 1;
        self.count += 1;
        self.sum += seconds;
    }
}

/// The histograms, shared by the proxy's threads (a handful of stage and protocol
/// pairs: a short list, searched in place, no allocation per observation).
#[derive(Debug, Default)]
pub struct ProxyLatency {
    hists: Mutex<Vec<LatencyHistogram>>,
}

impl ProxyLatency {
    pub fn observe(&self, stage: &str, protocol: &str, seconds: f64) {
        let mut hists = self.hists.lock().unwrap_or_else(|e| e.into_inner());
        match hists
            .iter_mut()
            .find(|h| h.stage == stage && h.protocol == protocol)
        {
            Some(h) => h.observe(seconds),
            None => {
                let mut h = LatencyHistogram::new(stage, protocol);
                h.observe(seconds);
                hists.push(h);
            }
        }
    }

    /// Every histogram, sorted by stage and protocol.
    pub fn snapshot(&self) -> Vec<LatencyHistogram> {
        let mut v = self.hists.lock().unwrap_or_else(|e| e.into_inner()).clone();
        v.sort_by(|a, b| (&a.stage, &a.protocol).cmp(&(&b.stage, &b.protocol)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_buckets() {
        let l = ProxyLatency::default();
        l.observe("detect", "redis", 0.000_02);
        l.observe("detect", "redis", 0.002);
        l.observe("detect", "redis", 5.0);
        l.observe("request", "http", 0.000_01);
        let s = l.snapshot();
        assert_eq!(s.len(), 2);
        let d = &s[0];
        assert_eq!((d.stage.as_str(), d.protocol.as_str()), ("detect", "redis"));
        assert_eq!(d.count, 3);
        assert!((d.sum - 5.002_02).abs() < 1e-9);
        assert_eq!(d.counts.len(), d.le.len() + 1);
        assert_eq!(d.counts[1], 1, "20 us: the 25 us bucket");
        assert_eq!(d.counts[7], 1, "2 ms: the 2.5 ms bucket");
        assert_eq!(d.counts[16], 1, "above 3 s");
        assert_eq!(d.counts.iter().sum::<u64>(), d.count);
        assert_eq!(s[1].counts[0], 1, "a bound is inclusive");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            serde_json::from_str::<Vec<LatencyHistogram>>(&json).unwrap(),
            s
        );
    }
}
