//! Payload streams (responses, request bodies beyond the inspected prefix).
//!
//! A proxy writes each chunk on once it is inspected, so a finding must be reported
//! with the chunk that completes it, not one window later. Each feed therefore scans
//! the carried tail of the previous chunks plus the new chunk and keeps only matches
//! that end in the new bytes; the tail is as long as the longest match, so nothing
//! that spans a boundary is lost, and each class is reported once per stream (one
//! location). A match still growing at the end of a chunk is reported as soon as its
//! prefix is valid: over-reporting that rare case beats writing a secret out.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use super::{Context, Finding, truncate};
use crate::dlp::DlpScanner;

pub struct SensorStream {
    dlp: Option<Arc<DlpScanner>>,
    sensor: String,
    block: bool,
    location: &'static str,
    patterns: Vec<(String, Vec<Context>)>,
    carry: Vec<u8>,
    reported: HashSet<String>,
}

/// Bytes carried between feeds: longer than any built-in match (and the 1 KiB assumed
/// for user patterns).
const CARRY: usize = crate::dlp::CUSTOM_MAX_LEN + 1;

impl SensorStream {
    pub(super) fn new(
        dlp: Option<Arc<DlpScanner>>,
        sensor: String,
        block: bool,
        location: &'static str,
        patterns: Vec<(String, Vec<Context>)>,
    ) -> SensorStream {
        SensorStream {
            dlp,
            sensor,
            block,
            location,
            patterns,
            carry: Vec::new(),
            reported: HashSet::new(),
        }
    }

    /// Feed the next chunk; returns what it completes.
    pub fn feed(&mut self, data: &[u8]) -> Vec<Finding> {
        let Some(dlp) = self.dlp.clone() else {
            return Vec::new();
        };
        let old = self.carry.len();
        self.carry.extend_from_slice(data);
        let mut out = Vec::new();
        for f in dlp.scan(&blanked_escapes(&self.carry)) {
            let ends_in_new = f.offset as usize + f.len > old;
            let applies = match self.patterns.iter().find(|(n, _)| *n == f.kind) {
                None => true,
                Some((_, cs)) => cs.contains(&Context::Body) || cs.contains(&Context::Packet),
            };
            if ends_in_new && applies && self.reported.insert(f.kind.clone()) {
                out.push(Finding {
                    sensor: self.sensor.clone(),
                    class: f.kind.clone(),
                    location: self.location.to_string(),
                    masked: truncate(&f.masked),
                    block: self.block,
                });
            }
        }
        let keep = self.carry.len().saturating_sub(CARRY);
        self.carry.drain(..keep);
        out
    }
}

/// Text as DLP scans a stream: a backslash escape of a control character (`\n`, `\r`,
/// `\t`, `\b`, `\f`: how JSON and C strings write line ends) read as the blanks it
/// stands for, so a card number at the start of an escaped line keeps the word
/// boundary its patterns need (`"Card:\n4111..."` in a JSON response: the client's
/// parser gets the number on a line of its own). Same length, so offsets stay; an
/// escaped backslash stays what it is.
fn blanked_escapes(b: &[u8]) -> Cow<'_, [u8]> {
    let escape = |at: usize| matches!(b.get(at + 1), Some(b'n' | b'r' | b't' | b'b' | b'f'));
    // Most bodies have none (a backslash alone, as in `\\` or `\/`, changes nothing):
    // no copy then.
    if !memchr::memchr_iter(b'\\', b).any(escape) {
        return Cow::Borrowed(b);
    }
    let mut v = b.to_vec();
    let mut i = 0;
    while let Some(p) = memchr::memchr(b'\\', &v[i..]) {
        let at = i + p;
        match v.get(at + 1) {
            Some(b'n' | b'r' | b't' | b'b' | b'f') => {
                v[at] = b' ';
                v[at + 1] = b' ';
                i = at + 2;
            }
            Some(_) => i = at + 2,
            None => break,
        }
    }
    Cow::Owned(v)
}
