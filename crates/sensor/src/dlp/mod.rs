//! Data-loss prevention: payment cards, US SSNs, AWS access key ids, private keys,
//! e-mail addresses and user-defined patterns, found in ONE pass over the bytes.
//!
//! Every pattern of a [`DlpScanner`] is compiled into one `regex-automata` meta regex
//! (`new_many`: a single lazy DFA over all patterns, with a literal prefilter where
//! the patterns allow it); a hit is then checked by its validator (Luhn and issuer
//! ranges, SSN allocation rules, e-mail label rules) and reported masked. Nothing
//! ever leaves this module in clear.
//!
//! Every built-in pattern has a bounded length, so a stream can be scanned chunk by
//! chunk with a bounded carry-over ([`DlpStream`]) and finds exactly what a scan of the
//! whole stream finds.

mod mask;
mod prefilter;
mod redact;
pub mod validate;

use regex_automata::{Input, meta::Regex, util::syntax};
use serde::{Deserialize, Serialize};

use crate::SensorError;
use mask::validate_and_mask;

/// The built-in kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DlpKind {
    CreditCard,
    Ssn,
    AwsAccessKey,
    PrivateKey,
    Email,
}

impl DlpKind {
    pub const ALL: [DlpKind; 5] = [
        DlpKind::CreditCard,
        DlpKind::Ssn,
        DlpKind::AwsAccessKey,
        DlpKind::PrivateKey,
        DlpKind::Email,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DlpKind::CreditCard => "credit_card",
            DlpKind::Ssn => "ssn",
            DlpKind::AwsAccessKey => "aws_access_key",
            DlpKind::PrivateKey => "private_key",
            DlpKind::Email => "email",
        }
    }

    /// `credit_card`, and kebab-case (`credit-card`) too.
    pub fn parse(s: &str) -> Option<DlpKind> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        DlpKind::ALL.into_iter().find(|k| k.as_str() == norm)
    }
}

impl std::fmt::Display for DlpKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DlpKind {
    type Err = String;

    fn from_str(s: &str) -> Result<DlpKind, String> {
        DlpKind::parse(s).ok_or_else(|| {
            format!("unknown DLP kind {s:?} (credit_card, ssn, aws_access_key, private_key, email)")
        })
    }
}

// ASCII word boundaries: a token glued to letters or digits is part of a longer token.
const B: &str = r"(?-u:\b)";
const SEP: &str = r"(?:[ +]|%20)";

fn builtin_patterns(kind: DlpKind) -> Vec<(String, Check)> {
    match kind {
        DlpKind::CreditCard => vec![(format!(r"{B}[0-9](?:[ -]?[0-9]){{11,18}}{B}"), Check::Card)],
        DlpKind::Ssn => vec![
            (
                format!(r"{B}[0-9]{{3}}[- ][0-9]{{2}}[- ][0-9]{{4}}{B}"),
                Check::SsnWritten,
            ),
            // Nine plain digits count only right after an SSN keyword.
            (
                format!(
                    r"(?i:{B}(?:ssn|social[ _-]?security(?:[ _-]?(?:number|no\.?|#))?|soc\.?[ _-]?sec\.?)){B}[^0-9A-Za-z\n]{{0,6}}[0-9]{{9}}{B}"
                ),
                Check::SsnKeyword,
            ),
        ],
        // Long-term (AKIA) and temporary (ASIA) key ids; the other four-letter
        // prefixes AWS uses (AIDA users, AROA roles, ABIA bearer tokens...) are no keys.
        DlpKind::AwsAccessKey => vec![(format!(r"{B}(?:AKIA|ASIA)[A-Z2-7]{{16}}{B}"), Check::None)],
        // PEM headers whatever names the key (RSA, EC, OPENSSH, ENCRYPTED, PGP ... and
        // none: PKCS#8), ssh.com's `---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----`, PuTTY's
        // `.ppk` files (`PuTTY-User-Key-File-3: ssh-ed25519`). Windows: `LITERALS`.
        DlpKind::PrivateKey => vec![
            (
                format!(
                    r"-----BEGIN{SEP}(?:[A-Z0-9]{{1,12}}{SEP}){{0,3}}PRIVATE{SEP}KEY(?:{SEP}BLOCK)?-----"
                ),
                Check::None,
            ),
            (
                format!(r"----{SEP}BEGIN{SEP}SSH2{SEP}(?:ENCRYPTED{SEP})?PRIVATE{SEP}KEY{SEP}----"),
                Check::None,
            ),
            (
                format!(r"PuTTY-User-Key-File-[0-9]{{1,2}}:{SEP}?[A-Za-z0-9@.-]{{1,40}}"),
                Check::None,
            ),
        ],
        DlpKind::Email => vec![(
            format!(
                r"{B}[A-Za-z0-9._%+-]{{1,64}}@[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?){{0,8}}\.[A-Za-z]{{2,24}}{B}"
            ),
            Check::Email,
        )],
    }
}

/// Longest match of any built-in pattern, in bytes (email: 64 + 1 + 10 labels of 63).
const BUILTIN_MAX_LEN: usize = 64 + 1 + 10 * 64 + 25;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    None,
    Card,
    SsnWritten,
    SsnKeyword,
    Email,
}

/// Where a user-defined pattern applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatternContext {
    /// The request target (path and query), decoded.
    Url,
    /// Header values.
    Header,
    /// Request and response bodies (decoded form fields and JSON strings too).
    Body,
    /// Raw bytes of any protocol.
    Packet,
}

/// A user-defined pattern.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomPattern {
    pub name: String,
    /// A regular expression (Rust `regex` syntax; `(?-u:\b)` for ASCII word boundaries).
    pub regex: String,
    #[serde(default = "default_contexts")]
    pub context: Vec<PatternContext>,
}

fn default_contexts() -> Vec<PatternContext> {
    vec![PatternContext::Body]
}

/// One finding, always masked.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct DlpFinding {
    /// `credit_card`, `ssn`, ..., or the custom pattern's name.
    pub kind: String,
    /// Byte offset in the scanned data (in the stream for [`DlpStream`]).
    pub offset: u64,
    pub len: usize,
    /// The match with its secret part replaced by `*`.
    pub masked: String,
    /// Card brand, key type: what the validator learned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Clone, Debug)]
struct Rule {
    name: String,
    kind: Option<DlpKind>,
    check: Check,
}

/// A compiled set of DLP patterns; `Send + Sync`, share it across connections.
#[derive(Clone, Debug)]
pub struct DlpScanner {
    re: Regex,
    rules: Vec<Rule>,
    /// Longest possible match plus one byte of look-ahead: the stream carry-over.
    window: usize,
    /// No user patterns: the regex runs only around triggers ([`prefilter`]).
    builtin_only: bool,
}

/// Longest match assumed for user patterns when streaming; longer matches that span a
/// chunk boundary can be missed (documented limit, keeps memory bounded).
pub const CUSTOM_MAX_LEN: usize = 1024;

impl DlpScanner {
    /// Built-in `kinds` plus `custom` patterns, all in one automaton.
    pub fn new(kinds: &[DlpKind], custom: &[CustomPattern]) -> Result<Self, SensorError> {
        let mut patterns = Vec::new();
        let mut rules = Vec::new();
        for &k in kinds {
            for (p, check) in builtin_patterns(k) {
                patterns.push(p);
                rules.push(Rule {
                    name: k.as_str().to_string(),
                    kind: Some(k),
                    check,
                });
            }
        }
        for c in custom {
            // Each pattern must compile on its own so the error names it.
            Regex::new(&c.regex).map_err(|e| SensorError::Pattern {
                name: c.name.clone(),
                message: e.to_string(),
            })?;
            patterns.push(c.regex.clone());
            rules.push(Rule {
                name: c.name.clone(),
                kind: None,
                check: Check::None,
            });
        }
        let re = Regex::builder()
            .syntax(syntax::Config::new().utf8(false).unicode(false))
            .configure(
                Regex::config()
                    .utf8_empty(false)
                    .hybrid_cache_capacity(16 << 20),
            )
            .build_many(&patterns)
            .map_err(|e| SensorError::Pattern {
                name: "dlp".into(),
                message: e.to_string(),
            })?;
        let window = if custom.is_empty() {
            BUILTIN_MAX_LEN
        } else {
            CUSTOM_MAX_LEN.max(BUILTIN_MAX_LEN)
        } + 1;
        Ok(DlpScanner {
            re,
            rules,
            window,
            builtin_only: custom.is_empty(),
        })
    }

    /// Every built-in kind.
    pub fn builtin() -> Self {
        DlpScanner::new(&DlpKind::ALL, &[]).expect("built-in patterns compile")
    }

    /// Scan `data` in one pass.
    pub fn scan(&self, data: &[u8]) -> Vec<DlpFinding> {
        let mut out = Vec::new();
        self.scan_range(data, 0, data.len(), 0, |f| out.push(f));
        out
    }

    /// Scan `data` and, when it holds escapes, its percent/`+`/JSON-decoded form as
    /// well: a card in a form body is `4111+1111+...`, a key in JSON has `\n`.
    /// Findings are de-duplicated by kind and masked text.
    pub fn scan_decoded(&self, data: &[u8]) -> Vec<DlpFinding> {
        if self.nothing_to_find(data) {
            return Vec::new();
        }
        let mut out = self.scan(data);
        if let Some(decoded) = decoded_form(data) {
            for f in self.scan(&decoded) {
                if !out.iter().any(|o| o.kind == f.kind && o.masked == f.masked) {
                    out.push(f);
                }
            }
        }
        out
    }

    /// [`scan_decoded`](Self::scan_decoded) of a request head, one line at a time, so
    /// that lines a caller knows to be clean (the same `User-Agent`, `Accept` lines on
    /// every request) are not scanned again: `known_clean(index, line)` skips a line,
    /// `found_clean(index, line)` is told of each line that held nothing.
    ///
    /// Same findings as the whole-head scan: no built-in pattern matches a `\n` (nor
    /// does decoding consume one), each line keeps its `\n` so the look-around at its
    /// end is the same, and the start of a line (after a `\n`) is a word boundary as
    /// the start of the text is. Raw findings come first, then decoded ones, each
    /// deduplicated as `scan_decoded` does. With user patterns (which may span
    /// lines) the whole head is scanned.
    pub fn scan_decoded_lines(
        &self,
        data: &[u8],
        mut known_clean: impl FnMut(usize, &[u8]) -> bool,
        mut found_clean: impl FnMut(usize, &[u8]),
    ) -> Vec<DlpFinding> {
        if !self.builtin_only {
            return self.scan_decoded(data);
        }
        let mut out = Vec::new();
        let mut decoded_hits = Vec::new();
        let mut start = 0;
        for (i, line) in lines(data).enumerate() {
            let base = start as u64;
            start += line.len();
            if known_clean(i, line) {
                continue;
            }
            if self.nothing_to_find(line) {
                found_clean(i, line);
                continue;
            }
            let before = out.len() + decoded_hits.len();
            self.scan_range(line, 0, line.len(), base, |f| out.push(f));
            if let Some(decoded) = decoded_form(line) {
                decoded_hits.extend(self.scan(&decoded));
            }
            if out.len() + decoded_hits.len() == before {
                found_clean(i, line);
            }
        }
        for f in decoded_hits {
            if !out.iter().any(|o| o.kind == f.kind && o.masked == f.masked) {
                out.push(f);
            }
        }
        out
    }

    /// Does [`Self::scan_decoded_lines`] skip lines (no user patterns)? When not, it
    /// scans every line of every head and never asks about one.
    pub fn skips_lines(&self) -> bool {
        self.builtin_only
    }

    /// Built-in kinds only, and neither `data` nor its decoded form (no `%` or `\\`
    /// to decode, `+` read as the blank it decodes to) holds a trigger: no scan of either
    /// can find anything ([`prefilter::windows`] would be empty for both).
    fn nothing_to_find(&self, data: &[u8]) -> bool {
        self.builtin_only && prefilter::nothing_to_decode_or_find(data)
    }

    /// Start scanning a stream chunk by chunk.
    pub fn stream(&self) -> DlpStream<'_> {
        DlpStream {
            scanner: self,
            buf: Vec::new(),
            buf_start: 0,
            resume: 0,
        }
    }

    /// Report the matches in `data[from..]` that start before `final_before`, with
    /// offsets shifted by `base`; returns where scanning must resume.
    fn scan_range(
        &self,
        data: &[u8],
        from: usize,
        final_before: usize,
        base: u64,
        mut emit: impl FnMut(DlpFinding),
    ) -> usize {
        let mut resume = from;
        let spans = if self.builtin_only {
            prefilter::windows(&data[from..])
                .into_iter()
                .map(|(s, e)| (from + s, from + e))
                .collect()
        } else {
            vec![(from, data.len())]
        };
        'spans: for (s, e) in spans {
            let s = s.max(resume);
            if s >= e {
                continue;
            }
            // Look-around at a window's edges sees the real neighbouring bytes.
            for m in self.re.find_iter(Input::new(data).range(s..e)) {
                if m.start() >= final_before {
                    // Not final, and not a safe resume point either: with more bytes a
                    // match may start earlier (a local part that meets its `@` later).
                    break 'spans;
                }
                resume = m.end();
                let rule = &self.rules[m.pattern().as_usize()];
                let text = &data[m.start()..m.end()];
                if let Some((masked, detail)) = validate_and_mask(rule, text) {
                    emit(DlpFinding {
                        kind: rule.name.clone(),
                        offset: base + m.start() as u64,
                        len: text.len(),
                        masked,
                        detail,
                    });
                }
            }
        }
        resume.max(final_before.min(data.len()))
    }
}

/// The percent/`+`/JSON-decoded form of `data`, when it holds an escape.
/// A head's lines with their `\n`, as `split_inclusive` cuts them (memchr finds the
/// ends). The sensor's request cutter numbers lines the same way, so that a line's
/// number and bytes mean the same to it and to [`DlpScanner::scan_decoded_lines`].
pub fn lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut from = 0;
    std::iter::from_fn(move || {
        if from >= head.len() {
            return None;
        }
        let end = memchr::memchr(b'\n', &head[from..]).map_or(head.len(), |p| from + p + 1);
        let line = &head[from..end];
        from = end;
        Some(line)
    })
}

fn decoded_form(data: &[u8]) -> Option<Vec<u8>> {
    memchr::memchr3(b'%', b'+', b'\\', data)?;
    let mut decoded = crate::decode::form_decode(data);
    // JSON unescaping changes nothing without a backslash: skip its copy.
    if memchr::memchr(b'\\', &decoded).is_some() {
        decoded = crate::decode::json_unescape(&decoded);
    }
    Some(decoded)
}

/// Chunked scanning with a bounded carry-over: at most the scanner's window (the
/// longest match plus one byte) is kept between chunks.
pub struct DlpStream<'a> {
    scanner: &'a DlpScanner,
    /// Carried bytes, the first of which is at stream offset `buf_start`.
    buf: Vec<u8>,
    buf_start: u64,
    /// Stream offset where the next search starts.
    resume: u64,
}

impl DlpStream<'_> {
    /// Feed the next chunk; returns the findings that are now final.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<DlpFinding> {
        self.buf.extend_from_slice(chunk);
        let w = self.scanner.window;
        // A match starting here or later could still grow with the next chunk.
        let final_before = self.buf.len().saturating_sub(w);
        self.run(final_before)
    }

    /// The stream ended: report what is left.
    pub fn finish(mut self) -> Vec<DlpFinding> {
        let end = self.buf.len();
        self.run(end + 1)
    }

    fn run(&mut self, final_before: usize) -> Vec<DlpFinding> {
        let mut out = Vec::new();
        let from = (self.resume - self.buf_start) as usize;
        let resume = self
            .scanner
            .scan_range(&self.buf, from, final_before, self.buf_start, |f| {
                out.push(f)
            });
        self.resume = self.buf_start + resume.min(self.buf.len()) as u64;
        // Keep one byte before the resume point for the word-boundary look-behind.
        let keep_from = resume.min(self.buf.len()).saturating_sub(1);
        self.buf.drain(..keep_from);
        self.buf_start += keep_from as u64;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(data: &str) -> Vec<(String, String)> {
        DlpScanner::builtin()
            .scan_decoded(data.as_bytes())
            .into_iter()
            .map(|f| (f.kind, f.masked))
            .collect()
    }

    #[test]
    fn finds_and_masks_each_kind() {
        assert_eq!(
            kinds("card 4111 1111 1111 1111 ok"),
            vec![("credit_card".into(), "4111 **** **** 1111".into())]
        );
        assert_eq!(
            kinds("ssn 123-45-6789"),
            vec![("ssn".into(), "***-**-6789".into())]
        );
        assert_eq!(kinds("SSN: 123456789")[0].1, "SSN: *****6789");
        assert_eq!(
            kinds("id=AKIAIOSFODNN7EXAMPLE;"),
            vec![("aws_access_key".into(), "AKIA************MPLE".into())]
        );
        assert_eq!(
            kinds("mail bob.smith@example.com now")[0].1,
            "b********@example.com"
        );
        assert_eq!(
            kinds("k=-----BEGIN+RSA+PRIVATE+KEY-----%0AMIIE")[0].0,
            "private_key"
        );
    }

    #[test]
    fn decoys_are_not_findings() {
        for d in [
            "123456789",
            "666-45-6789",
            "XAKIAIOSFODNN7EXAMPLE",
            "akiaiosfodnn7example",
            "pkg@1.2.3",
            "image@sha256:abcdef",
            "@handle",
            "4111 1111 1111 1112",
            "-----BEGIN PUBLIC KEY-----",
            "2024-09-17T10:20:00Z 415-555-0134",
        ] {
            assert!(kinds(d).is_empty(), "{d}: {:?}", kinds(d));
        }
    }

    #[test]
    fn custom_patterns_join_the_pass() {
        let s = DlpScanner::new(
            &[DlpKind::Email],
            &[CustomPattern {
                name: "employee_id".into(),
                regex: r"(?-u:\b)EMP-[0-9]{6}(?-u:\b)".into(),
                context: vec![PatternContext::Body],
            }],
        )
        .unwrap();
        let f = s.scan(b"EMP-123456 and a@b.example.org");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].masked, "EM******56");
        assert!(
            DlpScanner::new(
                &[],
                &[CustomPattern {
                    name: "bad".into(),
                    regex: "(".into(),
                    context: vec![]
                }]
            )
            .is_err()
        );
    }

    #[test]
    fn stream_equals_whole() {
        let s = DlpScanner::builtin();
        let data =
            b"x 4111-1111-1111-1111 y 123 45 6789 z AKIAIOSFODNN7EXAMPLE q a.b@c.example.com";
        let whole = s.scan(data);
        for size in [1, 2, 3, 7, 16, 64] {
            let mut st = s.stream();
            let mut got = Vec::new();
            for c in data.chunks(size) {
                got.extend(st.feed(c));
            }
            got.extend(st.finish());
            assert_eq!(got, whole, "chunk size {size}");
        }
    }
}
