//! Cutting an HTTP/1 request into the locations a WAF inspects (ModSecurity's
//! REQUEST_FILENAME, ARGS_NAMES, ARGS, REQUEST_COOKIES, selected REQUEST_HEADERS),
//! each value decoded once as the server decodes it. The head is parsed by `httparse`;
//! query strings, cookies and form bodies are split here because their grammar is a
//! single split on `&`/`;` and `=`; JSON bodies go through `serde_json`.

use super::Context;
use crate::decode;

/// One value at one location.
pub struct Item {
    pub location: String,
    pub value: Vec<u8>,
    pub context: Context,
}

pub struct Request {
    pub items: Vec<Item>,
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

pub fn parse(head: &[u8], body: &[u8]) -> Request {
    let mut items = Vec::new();
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = req.parse(head);
    let Some(target) = req.path.filter(|_| parsed.is_ok()) else {
        // Not a head httparse accepts: still inspect the request line's target.
        let line = head.split(|&c| c == b'\n').next().unwrap_or(head);
        let target = line.split(|&c| c == b' ').nth(1).unwrap_or(line);
        target_items(target, &mut items);
        return Request { items };
    };
    target_items(target.as_bytes(), &mut items);
    let mut content_type = None;
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if name == "content-type" {
            content_type = std::str::from_utf8(h.value).ok().map(str::to_string);
        }
        if name == "cookie" {
            for pair in h.value.split(|&c| c == b';') {
                let pair = pair.trim_ascii();
                let (k, v) = split_pair(pair);
                let k = decode::percent_decode(k);
                let loc = format!("cookie:{}", lossy(&k));
                push(&mut items, loc.clone(), k, Context::Header);
                push(&mut items, loc, decode::percent_decode(v), Context::Header);
            }
        } else if !MACHINERY.contains(&name.as_str()) && !name.starts_with("sec-") {
            push(
                &mut items,
                format!("header:{name}"),
                h.value.to_vec(),
                Context::Header,
            );
        }
    }
    items.extend(body_items(body, content_type.as_deref()));
    items.truncate(MAX_ITEMS);
    Request { items }
}

fn lossy(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    s.chars().take(64).collect()
}

fn push(items: &mut Vec<Item>, location: String, value: Vec<u8>, context: Context) {
    if items.len() < MAX_ITEMS && !value.is_empty() {
        items.push(Item {
            location,
            value,
            context,
        });
    }
}

fn split_pair(p: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b'=', p) {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (p, b""),
    }
}

fn target_items(target: &[u8], items: &mut Vec<Item>) {
    let (path, query) = match memchr::memchr(b'?', target) {
        Some(i) => (&target[..i], &target[i + 1..]),
        None => (target, &b""[..]),
    };
    // Paths keep `+` literally; only `%XX` is decoded here (deeper layers later).
    push(
        items,
        "path".into(),
        decode::percent_decode(path),
        Context::Url,
    );
    for it in form_pairs(query, "query", Context::Url) {
        push(items, it.location, it.value, it.context);
    }
}

/// `a=1&b=2` as items: each name and each value, form-decoded.
fn form_pairs(qs: &[u8], prefix: &str, context: Context) -> Vec<Item> {
    let mut out = Vec::new();
    for pair in qs.split(|&c| c == b'&' || c == b';') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = split_pair(pair);
        let k = decode::form_decode(k);
        let loc = format!("{prefix}:{}", lossy(&k));
        push(&mut out, loc.clone(), k, context);
        push(&mut out, loc, decode::form_decode(v), context);
        if out.len() >= MAX_ITEMS {
            break;
        }
    }
    out
}

pub fn query_items(qs: &[u8]) -> Vec<Item> {
    form_pairs(qs, "query", Context::Url)
}

/// A body: form fields, JSON strings and keys, or the whole text.
pub fn body_items(body: &[u8], content_type: Option<&str>) -> Vec<Item> {
    if body.is_empty() {
        return Vec::new();
    }
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    let first = body.iter().find(|c| !c.is_ascii_whitespace()).copied();
    let looks_json = matches!(first, Some(b'{' | b'['));
    if (ct.contains("json") || (ct.is_empty() && looks_json))
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
    {
        let mut out = Vec::new();
        json_items(&v, &mut String::new(), &mut out, 0);
        return out;
    }
    if ct.contains("x-www-form-urlencoded")
        || (ct.is_empty() && memchr::memchr(b'=', body).is_some())
    {
        return form_pairs(body, "body:form", Context::Body);
    }
    // Anything else is judged as one value, on a bounded prefix.
    vec![Item {
        location: "body".into(),
        value: body[..body.len().min(16 * 1024)].to_vec(),
        context: Context::Body,
    }]
}

fn json_items(v: &serde_json::Value, path: &mut String, out: &mut Vec<Item>, depth: usize) {
    use serde_json::Value;
    if out.len() >= MAX_ITEMS || depth > 64 {
        return;
    }
    let loc = |p: &str| format!("body:json:{}", if p.is_empty() { "$" } else { p });
    match v {
        Value::String(s) => push(out, loc(path), s.as_bytes().to_vec(), Context::Body),
        Value::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                json_items(e, path, out, depth + 1);
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
                push(out, loc(path), k.as_bytes().to_vec(), Context::Body);
                json_items(e, path, out, depth + 1);
                path.truncate(len);
            }
        }
        _ => {}
    }
}
