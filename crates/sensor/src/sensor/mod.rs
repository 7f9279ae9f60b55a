//! The sensor the node agent runs: a policy's attack classes, DLP kinds and patterns,
//! compiled once and shared by every connection.
//!
//! [`Sensor::http_request`] inspects like a WAF: the request is cut into locations
//! (path, query names and values, cookies, selected and custom headers, form and JSON
//! body fields, see [`http`]), each value is decoded as the application will see it,
//! and each location gets its own findings, deduplicated per (class, location).

mod clean;
mod http;
mod json;
pub mod multipart;
mod protobuf;
#[cfg(test)]
mod reference;
mod stream;
mod xml;

use std::collections::HashSet;
use std::sync::Arc;

use crate::attack::{self, Attack};
use crate::dlp::{CustomPattern, DlpFinding, DlpKind, DlpScanner};
use crate::profile::{Profile, class};
use crate::{SensorError, decode};
use http::Loc;

pub use crate::dlp::PatternContext as Context;
pub use stream::SensorStream;

/// A user-defined pattern and where it looks.
#[derive(Clone, Debug, PartialEq)]
pub struct PatternSpec {
    pub name: String,
    pub regex: String,
    pub contexts: Vec<Context>,
}

/// One sensor of a policy.
#[derive(Clone, Debug, PartialEq)]
pub struct SensorSpec {
    pub name: String,
    pub block: bool,
    pub attacks: Vec<Attack>,
    pub dlp: Vec<DlpKind>,
    pub patterns: Vec<PatternSpec>,
}

/// One thing a sensor found.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Finding {
    pub sensor: String,
    /// `sqli`, `xss`, `cmdi`, `path_traversal`, a DLP kind, or a pattern's name.
    pub class: String,
    /// `query:id`, `path`, `cookie:session`, `header:user-agent`, `body:form:q`,
    /// `body:json:user.name`, `response body`, `sql`.
    pub location: String,
    /// At most [`MAX_MASKED`] characters; secrets masked, attack values shown.
    pub masked: String,
    pub block: bool,
}

/// The JSON of a Socket.IO message (`42["search","..."]`, `451-/chat,[...]`: Engine.IO
/// and Socket.IO packet types, an attachment count, a namespace, then the JSON the
/// server hands to `JSON.parse`), so its strings are read unescaped; None for others.
fn socket_io_json(m: &[u8]) -> Option<&[u8]> {
    let digits = m.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut rest = &m[digits..];
    if let Some(r) = rest.strip_prefix(b"-") {
        rest = r;
    }
    if rest.first() == Some(&b'/') {
        rest = &rest[memchr::memchr(b',', rest)? + 1..];
    }
    matches!(rest.first(), Some(b'[' | b'{')).then_some(rest)
}

/// The class of the finding that says a request had more values than are read: whether
/// it blocks is the caller's `oversize` setting, not the sensor's action.
pub const OVERSIZE: &str = "oversize";

/// Longest `masked` text, in characters.
pub const MAX_MASKED: usize = 96;

/// A compiled sensor; `Send + Sync`.
#[derive(Debug)]
pub struct Sensor {
    name: String,
    block: bool,
    attacks: Vec<Attack>,
    /// Built-in kinds and user patterns in one automaton; `None` when neither is on.
    dlp: Option<Arc<DlpScanner>>,
    /// The contexts of each user pattern, by name.
    patterns: Vec<(String, Vec<Context>)>,
    /// Header lines in which every check of this sensor found nothing (see [`clean`]).
    clean_lines: clean::CleanCache,
    /// Values every attack detector found clean (a path, a Referer's page, a cookie
    /// that come back in other requests whose lines differ).
    clean_values: clean::CleanCache,
}

impl Sensor {
    /// Compile a spec; a pattern that does not compile is an error naming it.
    pub fn new(spec: &SensorSpec) -> Result<Sensor, SensorError> {
        let custom: Vec<CustomPattern> = spec
            .patterns
            .iter()
            .map(|p| CustomPattern {
                name: p.name.clone(),
                regex: p.regex.clone(),
                context: p.contexts.clone(),
            })
            .collect();
        let dlp = if spec.dlp.is_empty() && custom.is_empty() {
            None
        } else {
            Some(Arc::new(DlpScanner::new(&spec.dlp, &custom)?))
        };
        let mut attacks = spec.attacks.clone();
        attacks.dedup();
        Ok(Sensor {
            name: spec.name.clone(),
            block: spec.block,
            attacks,
            dlp,
            patterns: spec
                .patterns
                .iter()
                .map(|p| (p.name.clone(), p.contexts.clone()))
                .collect(),
            clean_lines: clean::CleanCache::default(),
            clean_values: clean::CleanCache::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// One HTTP/1 request: raw head (request line + headers, as on the wire) and body
    /// payload (already de-chunked).
    pub fn http_request(&self, head: &[u8], body: &[u8]) -> Vec<Finding> {
        let mut out = Findings::default();
        if self.attacks.is_empty() && self.dlp.is_none() {
            return out.list;
        }
        // Header lines repeat from request to request (a browser's `User-Agent`,
        // `Accept`, `Cookie`): a line every check found clean before is skipped by all
        // of them, before it is even cut up. The request line changes every time and
        // is never looked up.
        // (Both passes of one request note what they found here; a `RefCell`, as the
        // passes' two callbacks each need it.)
        let lines = std::cell::RefCell::new(clean::HeadLines::default());
        if self.attacks.is_empty() {
            lines.borrow_mut().no_attacks();
        } else {
            let dropped = http::visit(
                head,
                body,
                &mut |n, line| lines.borrow_mut().attack_skip(&self.clean_lines, n, line),
                &mut |n, loc, value, _| {
                    if !self.attacks_on(loc, value, &mut out) {
                        lines.borrow_mut().dirty(n);
                    }
                },
            );
            if !body.is_empty()
                && let Some(charset) = http::unreadable_charset(head)
            {
                out.push(Finding {
                    sensor: self.name.clone(),
                    class: "unreadable_charset".to_string(),
                    location: "body".to_string(),
                    masked: format!("charset={}", truncate(&charset)),
                    block: self.block,
                });
            }
            if dropped {
                // Not a finding of its own: the caller's `oversize` setting says
                // whether what was not read whole passes (`Partial`) or not (`Block`).
                out.push(Finding {
                    sensor: self.name.clone(),
                    class: OVERSIZE.to_string(),
                    location: "request".to_string(),
                    masked: format!("more than {} values: the rest not read", http::MAX_ITEMS),
                    block: false,
                });
            }
        }
        if let Some(dlp) = &self.dlp {
            if !dlp.skips_lines() {
                // User patterns: every head is scanned whole, whatever the cache says,
                // so the cache only speaks for the attack detectors.
                lines.borrow_mut().no_dlp();
            }
            // One pass over the raw bytes first: most requests hold nothing, and then no
            // location is scanned on its own.
            let head_hits = dlp.scan_decoded_lines(
                head,
                |n, line| lines.borrow_mut().known_clean(&self.clean_lines, n, line),
                |n, _| lines.borrow_mut().dlp_clean(n),
            );
            let body_hits = dlp.scan_decoded(body);
            if !head_hits.is_empty() || !body_hits.is_empty() {
                // Only the lines where the raw pass found something (or did not look) are
                // cut up again, to name where: a line it found clean holds no value it
                // would find anything in.
                let quiet = |n: usize| dlp.skips_lines() && lines.borrow().dlp_quiet(n);
                http::visit(
                    head,
                    body,
                    &mut |n, _| quiet(n),
                    &mut |_, loc, value, ctx| {
                        let mut name = None;
                        for f in dlp.scan_decoded(value) {
                            if self.applies(&f.kind, ctx) {
                                let name = name.get_or_insert_with(|| loc.name());
                                self.push_dlp(name, &f, &mut out);
                            }
                        }
                    },
                );
                // What only the raw bytes showed (a header we do not cut out, a body
                // of another type) is reported at the level of the whole head or body.
                for (loc, ctx, hits) in [
                    ("head", Context::Header, head_hits),
                    ("body", Context::Body, body_hits),
                ] {
                    for f in hits {
                        if self.applies(&f.kind, ctx) && !out.has_class(&f.kind) {
                            self.push_dlp(loc, &f, &mut out);
                        }
                    }
                }
            }
        } else {
            lines.borrow_mut().no_dlp();
        }
        lines.borrow().remember(&self.clean_lines);
        out.list
    }

    /// SQL text sent on a PostgreSQL/MySQL connection.
    pub fn sql(&self, text: &[u8]) -> Vec<Finding> {
        let mut out = Findings::default();
        if self.attacks.contains(&Attack::Sqli) && crate::sqli::query::injected(text).is_some() {
            out.push(self.finding("sqli", "sql", mask_value(text)));
        }
        if let Some(dlp) = &self.dlp {
            for f in dlp.scan_decoded(text) {
                if self.applies(&f.kind, Context::Packet) {
                    self.push_dlp("sql", &f, &mut out);
                }
            }
        }
        out.list
    }

    /// `text` (an event's request line, say) with what this sensor's DLP kinds and
    /// patterns match in it masked, in any context: what a finding reports masked must
    /// not travel whole beside it.
    pub fn redact(&self, text: &str) -> String {
        match &self.dlp {
            Some(dlp) => dlp.redact(text),
            None => text.to_string(),
        }
    }

    /// A stream scanner for one direction's payload (DLP kinds + Body/Packet patterns),
    /// chunk-boundary safe.
    pub fn stream(&self, from_server: bool) -> SensorStream {
        SensorStream::new(
            self.dlp.clone(),
            self.name.clone(),
            self.block,
            if from_server {
                "response body"
            } else {
                "request body"
            },
            self.patterns.clone(),
        )
    }

    /// One decoded parameter value at `location` (what `http_request` does for each
    /// location, for callers that already cut the request up).
    pub fn value(&self, location: &str, value: &[u8]) -> Vec<Finding> {
        let mut out = Findings::default();
        let _ = self.attacks_on(&Loc::Str(location), value, &mut out);
        if let Some(dlp) = &self.dlp {
            for f in dlp.scan_decoded(value) {
                if self.applies(&f.kind, Context::Body) {
                    self.push_dlp(location, &f, &mut out);
                }
            }
        }
        out.list
    }

    /// A response's head (status line and header fields, as on the wire): DLP and the
    /// patterns with the header context on each field's value, at `response
    /// header:NAME` (a key in `X-Debug-Token`, a card number in a cookie a server sets).
    /// The attack detectors judge what clients send, not this.
    pub fn response_head(&self, head: &[u8]) -> Vec<Finding> {
        let mut out = Findings::default();
        let Some(dlp) = &self.dlp else {
            return out.list;
        };
        for line in http::lines(head).skip(1) {
            let Some((name, value)) = http::field(line) else {
                continue;
            };
            let mut location = None;
            for f in dlp.scan_decoded(value) {
                if self.applies(&f.kind, Context::Header) {
                    let location = location.get_or_insert_with(|| {
                        format!(
                            "response header:{}",
                            String::from_utf8_lossy(name).to_ascii_lowercase()
                        )
                    });
                    self.push_dlp(location, &f, &mut out);
                }
            }
        }
        out.list
    }

    /// A message a client sent on an upgraded connection (a WebSocket message): judged
    /// as a request body without a type is (JSON or form as the bytes suggest, else one
    /// value), at `websocket`, `websocket:json:PATH`, `websocket:form:NAME`.
    pub fn message(&self, payload: &[u8]) -> Vec<Finding> {
        let mut found = self.body(socket_io_json(payload).unwrap_or(payload), None);
        for f in &mut found {
            if let Some(rest) = f.location.strip_prefix("body") {
                f.location = format!("websocket{rest}");
            }
        }
        found
    }

    /// A query string (`a=1&b=2`): each name and value as `query:NAME`.
    pub fn query(&self, qs: &[u8]) -> Vec<Finding> {
        self.items(http::query_items(qs))
    }

    /// A request body, form or JSON as `content_type` says or the bytes suggest.
    pub fn body(&self, body: &[u8], content_type: Option<&str>) -> Vec<Finding> {
        let mut out = Findings::default();
        for f in self.items(http::body_items_owned(body, content_type)) {
            out.push(f);
        }
        if let Some(dlp) = &self.dlp {
            for f in dlp.scan_decoded(body) {
                if self.applies(&f.kind, Context::Body) && !out.has_class(&f.kind) {
                    self.push_dlp("body", &f, &mut out);
                }
            }
        }
        out.list
    }

    fn items(&self, items: Vec<http::Item>) -> Vec<Finding> {
        let mut out = Findings::default();
        for item in &items {
            let _ = self.attacks_on(&Loc::Str(&item.location), &item.value, &mut out);
            if let Some(dlp) = &self.dlp {
                for f in dlp.scan_decoded(&item.value) {
                    if self.applies(&f.kind, item.context) {
                        self.push_dlp(&item.location, &f, &mut out);
                    }
                }
            }
        }
        out.list
    }

    /// Every attack detector on one value; true when all of them ran and found nothing.
    fn attacks_on(&self, loc: &Loc<'_>, value: &[u8], out: &mut Findings) -> bool {
        if self.attacks.is_empty() {
            return true;
        }
        // An upload's file name is also judged as one: by where it came from, so before
        // the value cache, which speaks for what the value says wherever it is.
        let upload = loc.is_upload_name() && self.upload(loc, value, out);
        // One pass over the value's bytes, shared by the filter below and every
        // detector's own opening test.
        let profile = Profile::of(value);
        let base64 = Base64Reading::of(value, profile);
        if base64.is_none() && !suspicious(value, profile) {
            return !upload;
        }
        // The detectors are pure functions of the value (the location only names a
        // finding): one found clean before is clean now. Looked up only for values the
        // detectors would read, where the hash is cheap next to them.
        let tag = (value.len() <= clean::MAX_LEN).then(|| self.clean_values.tag(value));
        if tag.is_some_and(|t| self.clean_values.contains(t)) {
            return !upload;
        }
        // Clean only when every detector ran (none skipped as already found at this
        // location) and none fired.
        let mut clean = true;
        // The location's name is needed only for a finding, or to deduplicate against
        // one: formatted at most once, and never for a clean value.
        let mut location: Option<String> = None;
        // A value decoded once by the server may be decoded again by the application.
        let others: Vec<(Vec<u8>, Profile)> = decode::other_readings(value, profile)
            .into_iter()
            .map(|d| {
                let p = Profile::of(&d);
                (d, p)
            })
            .collect();
        for &a in &self.attacks {
            if !out.list.is_empty() {
                let location = location.get_or_insert_with(|| loc.name());
                if out.has(a.as_str(), location) {
                    clean = false;
                    continue;
                }
            }
            let found = |d: &[u8], p: Profile| attack::detect_profiled(a, d, p).is_some();
            // Found in the base64 reading only: what it stands for is what the user
            // needs to see.
            let masked = if found(value, profile) || others.iter().any(|(d, p)| found(d, *p)) {
                Some(mask_value(value))
            } else {
                base64
                    .as_ref()
                    .filter(|b| found(&b.bytes, b.profile))
                    .map(Base64Reading::shown)
            };
            if let Some(masked) = masked {
                clean = false;
                let location = location.get_or_insert_with(|| loc.name());
                out.push(self.finding(a.as_str(), location, masked));
            }
        }
        if let Some(t) = tag
            && clean
        {
            self.clean_values.insert(t);
        }
        clean && !upload
    }

    /// An upload's file name that a server would run or obey: a path traversal finding
    /// at its location. (Out of line: rare, and [`Sensor::attacks_on`] runs for every
    /// value.)
    #[inline(never)]
    fn upload(&self, loc: &Loc<'_>, name: &[u8], out: &mut Findings) -> bool {
        let kind = Attack::PathTraversal;
        if !self.attacks.contains(&kind) || crate::traversal::restricted_upload(name).is_none() {
            return false;
        }
        let location = loc.name();
        if !out.has(kind.as_str(), &location) {
            out.push(self.finding(kind.as_str(), &location, mask_value(name)));
        }
        true
    }

    /// Does the finding `kind` apply in `ctx`? Built-in kinds apply everywhere; a user
    /// pattern where it says (`Packet` everywhere too).
    fn applies(&self, kind: &str, ctx: Context) -> bool {
        match self.patterns.iter().find(|(n, _)| n == kind) {
            None => true,
            Some((_, cs)) => cs.contains(&ctx) || cs.contains(&Context::Packet),
        }
    }

    fn push_dlp(&self, location: &str, f: &DlpFinding, out: &mut Findings) {
        out.push(self.finding(&f.kind, location, truncate(&f.masked)));
    }

    fn finding(&self, class: &str, location: &str, masked: String) -> Finding {
        Finding {
            sensor: self.name.clone(),
            class: class.to_string(),
            location: location.to_string(),
            masked,
            block: self.block,
        }
    }
}

/// Findings deduplicated per (class, location).
#[derive(Default)]
struct Findings {
    list: Vec<Finding>,
    seen: HashSet<(String, String)>,
}

impl Findings {
    fn push(&mut self, f: Finding) {
        if self.seen.insert((f.class.clone(), f.location.clone())) {
            self.list.push(f);
        }
    }
    fn has(&self, class: &str, location: &str) -> bool {
        self.list
            .iter()
            .any(|f| f.class == class && f.location == location)
    }
    fn has_class(&self, class: &str) -> bool {
        self.list.iter().any(|f| f.class == class)
    }
}

/// Bytes that no attack can do without. A value made only of letters, digits and
/// `_ . - @ ,` (ids, names, numbers, dates, e-mail addresses: most of real traffic)
/// is one token to every detector, and one token is never an injection, except for
/// what the detectors read inside such a token: `--` and `@@` (SQL comment, system
/// variable), `..` (`....etcpasswd`), SQL catalog names (`information_schema`),
/// separators written out as hex (`0x2e0x2e0x2fboot.ini`, which traversal decodes), and
/// a leading dot (`.htaccess`, `.env`: restricted dot-files).
fn suspicious(v: &[u8], p: Profile) -> bool {
    if p.any(class::UNSAFE) {
        return true;
    }
    if p.any(class::ZERO) && p.any(class::X) && crate::traversal::written_separator(v) {
        return true;
    }
    // A dot-file name on its own (`.htaccess`, `.env`), a restricted file's
    // (`wp-config.php`), or a class's qualified name (`com.sun.rowset.JdbcRowSetImpl`).
    if v.first() == Some(&b'.')
        || (p.any(class::PATH)
            && (crate::traversal::opens_with_restricted_name(v) || crate::cmdi::qualified_shape(v)))
    {
        return true;
    }
    // Only letters, digits and `_ . - @ ,` from here: one loop finds the pairs (two
    // equal separators in a row) and the words (runs between separators).
    let catalog = |w: &[u8]| {
        w.len() >= 6 && crate::sqli::words::classify(w) == crate::sqli::words::Word::Catalog
    };
    let mut prev = 0u8;
    let mut start = 0;
    for (i, &b) in v.iter().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'_' {
            prev = b;
            continue;
        }
        if (b == prev && b != b',') || catalog(&v[start..i]) {
            return true;
        }
        start = i + 1;
        prev = b;
    }
    catalog(&v[start..])
}

/// What a value in base64 stands for, read as an application that decodes it reads it:
/// printable text (`Li4vLi4vY29uZmln` is `../../config`), or a serialized object (Java's
/// `rO0AB...` or `aced0005...`, a Python pickle, Ruby Marshal data), whose gadget
/// classes and functions are plain bytes.
struct Base64Reading {
    bytes: Vec<u8>,
    profile: Profile,
    /// How a serialized object's finding shows it (`base64: a Python pickle`).
    serialized: Option<&'static str>,
}

impl Base64Reading {
    fn of(value: &[u8], profile: Profile) -> Option<Base64Reading> {
        // Most values are short, or hold a byte neither reading takes (an object's
        // base64 may be wrapped in lines, so only the text's test is the profile's).
        if value.len() < decode::BASE64_MIN {
            return None;
        }
        let text = if profile.any(class::NOT_BASE64) {
            None
        } else {
            decode::base64_text(value)
        };
        let (bytes, serialized) = match text {
            Some(text) => (text, None),
            // (`rO0AB`, `gA`, `BAh`, `aced`, or blanks first: a wrapped text element's.)
            None if matches!(
                value[0],
                b'r' | b'g' | b'B' | b'a' | b'A' | b' ' | b'\t' | b'\r' | b'\n'
            ) =>
            {
                let (bytes, shown) = decode::serialized(value)?;
                (bytes, Some(shown))
            }
            None => return None,
        };
        let profile = Profile::of(&bytes);
        Some(Base64Reading {
            bytes,
            profile,
            serialized,
        })
    }

    /// A finding's value when only this reading holds the attack.
    fn shown(&self) -> String {
        match self.serialized {
            Some(shown) => shown.to_string(),
            None => format!("base64: {}", mask_value(&self.bytes)),
        }
    }
}

/// An attack value as shown: printable, at most [`MAX_MASKED`] characters.
fn mask_value(v: &[u8]) -> String {
    let s: String = String::from_utf8_lossy(v)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate(&s)
}

fn truncate(s: &str) -> String {
    if s.chars().count() <= MAX_MASKED {
        return s.to_string();
    }
    let mut t: String = s.chars().take(MAX_MASKED - 1).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod suspicious_tests {
    use super::{Profile, suspicious};
    use proptest::prelude::*;

    /// The filter as first written: a scan for the pairs, then a split into words.
    fn two_scans(v: &[u8]) -> bool {
        let safe =
            |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'@' | b',');
        if !v.iter().all(|&b| safe(b)) || v.windows(2).any(|w| matches!(w, b"--" | b"@@" | b"..")) {
            return true;
        }
        v.split(|&b| !(b.is_ascii_alphanumeric() || b == b'_'))
            .any(|w| {
                w.len() >= 6 && crate::sqli::words::classify(w) == crate::sqli::words::Word::Catalog
            })
            || crate::traversal::written_separator(v)
            || v.first() == Some(&b'.')
            || (v.contains(&b'.')
                && (crate::traversal::opens_with_restricted_name(v)
                    || crate::cmdi::qualified_shape(v)))
    }

    /// Up to 11 of `pieces`, glued.
    fn glued(pieces: Vec<&'static str>) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(prop::sample::select(pieces), 0..12)
            .prop_map(|v| v.concat().into_bytes())
    }

    fn safe_text() -> impl Strategy<Value = Vec<u8>> {
        glued(vec![
            "a",
            "Z9",
            "_",
            ".",
            "-",
            "@",
            ",",
            "northwind",
            "NorthWind",
            "sysobjects",
            "information_schema",
            "master",
            "mysql",
            "user",
            "xp_cmdshell",
            "abcdef",
            "1",
            " ",
            "0x2e",
            "0X2F",
            "0x5c",
            "0x41",
            "wp-config.php",
            "win.ini",
            ".Jdbc",
            "com.sun.rowset.JdbcRowSetImpl",
        ])
    }

    /// wfuzz's `0x2e0x2e0x2fboot.ini`: letters, digits and a dot, which traversal reads
    /// as `../boot.ini`.
    #[test]
    fn written_out_separators_are_suspicious() {
        for v in ["0x2e0x2e0x2fboot.ini", "0x2E0x2E0x5Cwin.ini", "0x2f"] {
            let v = v.as_bytes();
            assert!(suspicious(v, Profile::of(v)));
        }
        assert!(crate::traversal::detect(b"0x2e0x2e0x2fboot.ini").is_some());
        assert!(!suspicious(b"0x41", Profile::of(b"0x41")));
    }

    /// A dot-file name on its own (`.htaccess`, `.env`) is one token, and restricted.
    #[test]
    fn dot_files_are_suspicious() {
        for v in [".htaccess", ".env", ".bash_history", ".htpasswd"] {
            let v = v.as_bytes();
            assert!(crate::traversal::detect(v).is_some());
            assert!(suspicious(v, Profile::of(v)));
        }
    }

    /// Letters, digits and `_ . - ,`: words the path, shell and HTML detectors look
    /// for, and separators written out as hex.
    fn one_token_text() -> impl Strategy<Value = Vec<u8>> {
        glued(vec![
            "a",
            "Z9",
            "_",
            ".",
            "-",
            ",",
            "1",
            "0",
            "x",
            "abcdef",
            "0x2e",
            "0X2F",
            "0x5c",
            "0x41",
            "2e",
            "etc",
            "passwd",
            "boot.ini",
            "win.ini",
            "htaccess",
            "env",
            "....",
            "cat",
            "id",
            "ls",
            "javascript",
            "alert",
            "script",
            "onload",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]
        #[test]
        fn one_loop_is_the_two_scans(v in safe_text()) {
            prop_assert_eq!(suspicious(&v, Profile::of(&v)), two_scans(&v));
        }

        /// What the filter lets go is clean to every detector, raw and deep-decoded.
        /// (Left out: SQL words and `@`. `sqli` reads more than one token into some
        /// such values, as MySQL does (`1union` is `1 union`, `select@x` selects a
        /// variable, catalog names count inside words), where the filter sees an id or
        /// an e-mail address; no query can be built without a blank or a bracket.)
        #[test]
        fn skipped_values_are_clean(v in one_token_text()) {
            if !suspicious(&v, Profile::of(&v)) {
                let deep = crate::decode::url_decode_deep(&v);
                for a in crate::Attack::ALL {
                    prop_assert!(crate::attack::detect(a, &v).is_none(), "{a} {:?}", v);
                    prop_assert!(crate::attack::detect(a, &deep).is_none(), "{a} {:?}", v);
                }
            }
        }
    }
}
