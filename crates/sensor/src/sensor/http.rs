//! Cutting an HTTP/1 request into the locations a WAF inspects (ModSecurity's
//! REQUEST_FILENAME, ARGS_NAMES, ARGS, REQUEST_COOKIES, selected REQUEST_HEADERS),
//! each value decoded once as the server decodes it. The head is parsed by `httparse`;
//! query strings, cookies and form bodies are split here because their grammar is a
//! single split on `&`/`;` and `=`; JSON bodies go through `serde_json`.
//!
//! Nothing is collected: [`visit`] hands each value to a callback, borrowed from the
//! request when it holds no escape (most values) and decoded into a fresh buffer only
//! when it does, and names its location with a [`Loc`] that is formatted into a string
//! only when a finding needs it. A benign request thus costs no allocation here.

use std::borrow::Cow;

use super::Context;
use crate::decode;

/// One value at one location (the owned form, for the value-list entry points).
pub struct Item {
    pub location: String,
    pub value: Vec<u8>,
    pub context: Context,
}

/// Where a value sits, formatted lazily by [`Loc::name`].
pub enum Loc<'a> {
    /// `path`, `body`, or a caller's own location string.
    Str(&'a str),
    /// `query:NAME`, `body:form:NAME`, `cookie:NAME` (prefix, decoded name).
    Named(&'static str, &'a [u8]),
    /// `header:NAME`, lower-cased.
    Header(&'a str),
    /// `body:json:PATH` (`$` for the root).
    Json(&'a str),
}

impl Loc<'_> {
    pub fn name(&self) -> String {
        match self {
            Loc::Str(s) => (*s).to_string(),
            Loc::Named(p, n) => format!("{p}:{}", lossy(n)),
            Loc::Header(n) => format!("header:{}", n.to_ascii_lowercase()),
            Loc::Json(p) => format!("body:json:{}", if p.is_empty() { "$" } else { p }),
        }
    }
}

/// Most values one request yields; beyond this the rest is not cut out (DLP still
/// sees the raw bytes), so a hostile request costs bounded work.
const MAX_ITEMS: usize = 512;
const MAX_HEADERS: usize = 100;

/// Headers whose values are protocol machinery, not application input: skipped.
const MACHINERY: &[&str] = &[
    "host",
    "accept",
    "accept-encoding",
    "accept-language",
    "accept-charset",
    "connection",
    "content-length",
    "content-type",
    "transfer-encoding",
    "cache-control",
    "pragma",
    "upgrade-insecure-requests",
    "if-modified-since",
    "if-none-match",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
    "te",
    "upgrade",
    "keep-alive",
    "dnt",
    "origin",
    "priority",
    "expect",
    "authorization",
    "content-encoding",
];

/// The callback side of [`visit`]: counts values so at most [`MAX_ITEMS`] are seen,
/// and skips empty ones.
struct Sink<'f, F: ?Sized> {
    f: &'f mut F,
    n: usize,
}

impl<F: FnMut(&Loc<'_>, &[u8], Context) + ?Sized> Sink<'_, F> {
    fn full(&self) -> bool {
        self.n >= MAX_ITEMS
    }
    fn push(&mut self, loc: &Loc<'_>, value: &[u8], ctx: Context) {
        if !self.full() && !value.is_empty() {
            self.n += 1;
            (self.f)(loc, value, ctx);
        }
    }
}

/// Every location of a request, in order: target, headers, body.
pub fn visit(head: &[u8], body: &[u8], f: &mut impl FnMut(&Loc<'_>, &[u8], Context)) {
    let mut sink = Sink { f, n: 0 };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = req.parse(head);
    let Some(target) = req.path.filter(|_| parsed.is_ok()) else {
        // Not a head httparse accepts: still inspect the request line's target.
        let line = head.split(|&c| c == b'\n').next().unwrap_or(head);
        let target = line.split(|&c| c == b' ').nth(1).unwrap_or(line);
        target_items(target, &mut sink);
        return;
    };
    target_items(target.as_bytes(), &mut sink);
    let mut content_type = None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-type") {
            content_type = std::str::from_utf8(h.value).ok();
        }
        if name.eq_ignore_ascii_case("cookie") {
            for pair in h.value.split(|&c| c == b';') {
                let pair = pair.trim_ascii();
                let (k, v) = split_pair(pair);
                let k = decode::percent_decode_cow(k);
                let loc = Loc::Named("cookie", &k);
                sink.push(&loc, &k, Context::Header);
                sink.push(&loc, &decode::percent_decode_cow(v), Context::Header);
            }
        } else if !machinery(name) {
            sink.push(&Loc::Header(name), h.value, Context::Header);
        }
    }
    body_items(body, content_type, &mut sink);
}

/// A header that is protocol machinery (or a browser's `Sec-*` metadata).
fn machinery(name: &str) -> bool {
    let n = name.as_bytes();
    if n.len() >= 4 && n[..4].eq_ignore_ascii_case(b"sec-") {
        return true;
    }
    // Lower-cased on the stack, then one `contains` over names of that length only.
    let mut buf = [0u8; 32];
    let Some(lower) = buf.get_mut(..n.len()) else {
        return false;
    };
    for (d, s) in lower.iter_mut().zip(n) {
        *d = s.to_ascii_lowercase();
    }
    MACHINERY
        .iter()
        .any(|m| m.len() == lower.len() && m.as_bytes() == &*lower)
}

fn lossy(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    s.chars().take(64).collect()
}

fn split_pair(p: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b'=', p) {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (p, b""),
    }
}

fn target_items<F: FnMut(&Loc<'_>, &[u8], Context) + ?Sized>(
    target: &[u8],
    sink: &mut Sink<'_, F>,
) {
    let (path, query) = match memchr::memchr(b'?', target) {
        Some(i) => (&target[..i], &target[i + 1..]),
        None => (target, &b""[..]),
    };
    // Paths keep `+` literally; only `%XX` is decoded here (deeper layers later).
    sink.push(
        &Loc::Str("path"),
        &decode::percent_decode_cow(path),
        Context::Url,
    );
    form_pairs(query, "query", Context::Url, sink);
}

/// `a=1&b=2`: each name and each value, form-decoded.
fn form_pairs<F: FnMut(&Loc<'_>, &[u8], Context) + ?Sized>(
    qs: &[u8],
    prefix: &'static str,
    context: Context,
    sink: &mut Sink<'_, F>,
) {
    for pair in qs.split(|&c| c == b'&' || c == b';') {
        if sink.full() {
            break;
        }
        if pair.is_empty() {
            continue;
        }
        let (k, v) = split_pair(pair);
        let k = decode::form_decode_cow(k);
        let loc = Loc::Named(prefix, &k);
        sink.push(&loc, &k, context);
        sink.push(&loc, &decode::form_decode_cow(v), context);
    }
}

/// A query string's names and values, owned.
pub fn query_items(qs: &[u8]) -> Vec<Item> {
    collect(|sink| form_pairs(qs, "query", Context::Url, sink))
}

/// A body's locations, owned.
pub fn body_items_owned(body: &[u8], content_type: Option<&str>) -> Vec<Item> {
    collect(|sink| body_items(body, content_type, sink))
}

fn collect(run: impl FnOnce(&mut Sink<'_, dyn FnMut(&Loc<'_>, &[u8], Context) + '_>)) -> Vec<Item> {
    let mut out = Vec::new();
    let mut f = |loc: &Loc<'_>, v: &[u8], context: Context| {
        out.push(Item {
            location: loc.name(),
            value: v.to_vec(),
            context,
        })
    };
    let f: &mut (dyn FnMut(&Loc<'_>, &[u8], Context) + '_) = &mut f;
    run(&mut Sink { f, n: 0 });
    out
}

/// A body: form fields, JSON strings and keys, or the whole text.
fn body_items<F: FnMut(&Loc<'_>, &[u8], Context) + ?Sized>(
    body: &[u8],
    content_type: Option<&str>,
    sink: &mut Sink<'_, F>,
) {
    if body.is_empty() {
        return;
    }
    let ct: Cow<'_, str> = match content_type {
        Some(c) if c.bytes().any(|b| b.is_ascii_uppercase()) => c.to_ascii_lowercase().into(),
        Some(c) => c.into(),
        None => "".into(),
    };
    let first = body.iter().find(|c| !c.is_ascii_whitespace()).copied();
    let looks_json = matches!(first, Some(b'{' | b'['));
    if (ct.contains("json") || (ct.is_empty() && looks_json))
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
    {
        json_items(&v, &mut String::new(), sink, 0);
        return;
    }
    if ct.contains("x-www-form-urlencoded")
        || (ct.is_empty() && memchr::memchr(b'=', body).is_some())
    {
        form_pairs(body, "body:form", Context::Body, sink);
        return;
    }
    // Anything else is judged as one value, on a bounded prefix.
    sink.push(
        &Loc::Str("body"),
        &body[..body.len().min(16 * 1024)],
        Context::Body,
    );
}

fn json_items<F: FnMut(&Loc<'_>, &[u8], Context) + ?Sized>(
    v: &serde_json::Value,
    path: &mut String,
    sink: &mut Sink<'_, F>,
    depth: usize,
) {
    use serde_json::Value;
    if sink.full() || depth > 64 {
        return;
    }
    match v {
        Value::String(s) => sink.push(&Loc::Json(path), s.as_bytes(), Context::Body),
        Value::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                json_items(e, path, sink, depth + 1);
                path.truncate(len);
            }
        }
        Value::Object(m) => {
            for (k, e) in m {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&k.chars().take(64).collect::<String>());
                sink.push(&Loc::Json(path), k.as_bytes(), Context::Body);
                json_items(e, path, sink, depth + 1);
                path.truncate(len);
            }
        }
        _ => {}
    }
}
