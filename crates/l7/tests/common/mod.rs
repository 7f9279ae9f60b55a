//! Shared by the session tests.

/// `data` cut into pieces of the sizes in `cuts` (the rest in one piece).
#[allow(dead_code)]
pub fn pieces(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    let (mut at, mut k) = (0, 0);
    while at < data.len() {
        let n = cuts.get(k).copied().unwrap_or(data.len()).max(1);
        let n = n.min(data.len() - at);
        v.push(data[at..at + n].to_vec());
        at += n;
        k += 1;
    }
    v
}

/// A sensor that finds `SECRET` in whatever bytes it is fed (`packet` context): enough
/// to see which bytes a session's scanners are given and what a finding does. The real
/// sensors are tested in `bulkhead-sensor` and, wired up, in the agent's lab tests.
#[allow(dead_code)]
pub struct Secret(pub bool);

impl bulkhead_l7::StreamInspector for Secret {
    fn feed(&mut self, data: &[u8]) -> Vec<bulkhead_l7::Finding> {
        if data.windows(6).any(|w| w == b"SECRET") {
            vec![bulkhead_l7::Finding {
                sensor: "dlp".into(),
                class: "secret".into(),
                location: "packet".into(),
                masked: "SE****".into(),
                block: self.0,
            }]
        } else {
            Vec::new()
        }
    }
}

/// Sensors whose stream scanners are [`Secret`] (`true`: they block).
#[allow(dead_code)]
pub struct Sensors(pub bool);

impl bulkhead_l7::Inspector for Sensors {
    fn http_request(&self, _: &[u8], _: &[u8]) -> Vec<bulkhead_l7::Finding> {
        Vec::new()
    }
    fn sql(&self, _: &[u8]) -> Vec<bulkhead_l7::Finding> {
        Vec::new()
    }
    fn stream(&self, _: bool) -> Box<dyn bulkhead_l7::StreamInspector> {
        Box::new(Secret(self.0))
    }
}

/// HTTP/2 frames: (type, flags, stream, payload).
#[allow(dead_code)]
pub type Frames = Vec<(u8, u8, u32, Vec<u8>)>;

/// `b` cut into whole HTTP/2 frames (it must end on a frame boundary).
#[allow(dead_code)]
pub fn frames(mut b: &[u8]) -> Frames {
    let mut out = Vec::new();
    while b.len() >= 9 {
        let len = usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]);
        let stream = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
        out.push((b[3], b[4], stream, b[9..9 + len].to_vec()));
        b = &b[9 + len..];
    }
    assert!(b.is_empty(), "a partial frame");
    out
}

/// Sensors that find nothing but refuse what they cannot read whole (`oversize: Block`).
#[allow(dead_code)]
pub struct Whole;

impl bulkhead_l7::Inspector for Whole {
    fn http_request(&self, _: &[u8], _: &[u8]) -> Vec<bulkhead_l7::Finding> {
        Vec::new()
    }
    fn sql(&self, _: &[u8]) -> Vec<bulkhead_l7::Finding> {
        Vec::new()
    }
    fn stream(&self, _: bool) -> Box<dyn bulkhead_l7::StreamInspector> {
        Box::new(Secret(false))
    }
    fn oversize(&self, held: usize) -> Vec<bulkhead_l7::Finding> {
        vec![bulkhead_l7::Finding {
            sensor: "waf".into(),
            class: "oversize".into(),
            location: "body".into(),
            masked: format!("larger than {held}"),
            block: true,
        }]
    }
    fn unreadable(&self, what: &str) -> Vec<bulkhead_l7::Finding> {
        vec![bulkhead_l7::Finding {
            sensor: "waf".into(),
            class: "oversize".into(),
            location: "response body".into(),
            masked: what.into(),
            block: true,
        }]
    }
}
