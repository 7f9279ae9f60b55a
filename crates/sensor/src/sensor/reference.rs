//! The request path as it was before the fast path (kept for tests only): every
//! location extracted into an owned `Item`, every detector on every value. The
//! equivalence test below runs it and [`Sensor::http_request`] on the corpora and
//! demands the same findings, so the fast path provably loses no detection there.
//!
//! Cutting an HTTP/1 request into the locations a WAF inspects (ModSecurity's
//! REQUEST_FILENAME, ARGS_NAMES, ARGS, REQUEST_COOKIES, selected REQUEST_HEADERS),
//! each value decoded once as the server decodes it. The head is parsed by `httparse`;
//! query strings, cookies and form bodies are split here because their grammar is a
//! single split on `&`/`;` and `=`; JSON bodies go through `serde_json`.

use super::{Context, Finding, Findings, Loc, Sensor};
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
    "accept",
    "accept-encoding",
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
        target_items(super::http::request_target(line), &mut items);
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
        } else if name == "referer" {
            // A URL: what precedes its query as one value, then the query's pairs.
            let (url, query) = match h.value.iter().position(|&c| c == b'?') {
                Some(i) => (&h.value[..i], &h.value[i + 1..]),
                None => (h.value, &b""[..]),
            };
            push(
                &mut items,
                "header:referer".into(),
                url.to_vec(),
                Context::Header,
            );
            items.extend(form_pairs(query, "header:referer", Context::Header));
        } else if name == "authorization" {
            if let Some((user, password)) = super::http::basic_credentials(h.value) {
                push(
                    &mut items,
                    "header:authorization:user".into(),
                    user,
                    Context::Header,
                );
                let loc = "header:authorization:password".into();
                push(&mut items, loc, password, Context::Header);
            } else if let Some(token) = super::http::bearer_token(h.value) {
                let loc = "header:authorization:token".into();
                push(&mut items, loc, token.to_vec(), Context::Header);
            }
        } else if !MACHINERY.contains(&name.as_str()) && !name.starts_with("sec-")
            || super::http::expression_opener(h.value)
        {
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
    // At `&`, and a pair holding a `;` also at `;` (see the fast path's `form_pairs`).
    for whole in qs.split(|&c| c == b'&') {
        let semi = whole.contains(&b';');
        let cut = semi
            .then(|| whole.split(|&c| c == b';'))
            .into_iter()
            .flatten();
        for pair in std::iter::once(whole).chain(cut) {
            if pair.is_empty() {
                continue;
            }
            let (k, v) = split_pair(pair);
            let k = decode::form_decode(k);
            let loc = format!("{prefix}:{}", lossy(&k));
            push(&mut out, loc.clone(), k, context);
            push(&mut out, loc, decode::form_decode(v), context);
            if out.len() >= MAX_ITEMS {
                return out;
            }
        }
    }
    out
}

#[allow(dead_code)]
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
    if super::xml::is_xml(&ct, first) {
        let mut out = Vec::new();
        let parsed = super::xml::values(body, |path, v| {
            let loc = format!("body:xml:{}", lossy(path));
            for piece in super::http::pieces(v) {
                push(&mut out, loc.clone(), piece.to_vec(), Context::Body);
            }
        });
        if parsed {
            return out;
        }
    }
    if let Some(boundary) = content_type.and_then(super::multipart::boundary) {
        let mut out = Vec::new();
        let mut parts = 0;
        super::multipart::parts(body, boundary, |p| {
            parts += 1;
            let loc = format!("body:multipart:{}", lossy(p.name));
            push(&mut out, loc.clone(), p.name.to_vec(), Context::Body);
            if p.is_file() {
                let loc = format!("body:multipart:filename:{}", lossy(p.name));
                for f in p.filenames.iter().flatten() {
                    push(&mut out, loc.clone(), f.to_vec(), Context::Body);
                }
            }
            if p.may_be_field() {
                for piece in super::http::pieces(p.content) {
                    push(&mut out, loc.clone(), piece.to_vec(), Context::Body);
                }
            }
        });
        if parts > 0 {
            return out;
        }
    }
    if ct.contains("x-www-form-urlencoded")
        || (ct.is_empty() && memchr::memchr(b'=', body).is_some())
    {
        return form_pairs(body, "body:form", Context::Body);
    }
    // Anything else is judged as one value, in bounded pieces.
    super::http::pieces(body)
        .map(|piece| Item {
            location: "body".into(),
            value: piece.to_vec(),
            context: Context::Body,
        })
        .collect()
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

/// `Sensor::http_request` as it was: attacks on every item, then DLP.
pub fn http_request(s: &Sensor, head: &[u8], body: &[u8]) -> Vec<Finding> {
    let mut out = Findings::default();
    let req = parse(head, body);
    for item in &req.items {
        s.attacks_on(&Loc::Str(&item.location), &item.value, &mut out);
    }
    if let Some(dlp) = &s.dlp {
        let head_hits = dlp.scan_decoded(head);
        let body_hits = dlp.scan_decoded(body);
        if !head_hits.is_empty() || !body_hits.is_empty() {
            for item in &req.items {
                for f in dlp.scan_decoded(&item.value) {
                    if s.applies(&f.kind, item.context) {
                        s.push_dlp(&item.location, &f, &mut out);
                    }
                }
            }
            for (loc, ctx, hits) in [
                ("head", Context::Header, head_hits),
                ("body", Context::Body, body_hits),
            ] {
                for f in hits {
                    if s.applies(&f.kind, ctx) && !out.has_class(&f.kind) {
                        s.push_dlp(loc, &f, &mut out);
                    }
                }
            }
        }
    }
    out.list
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attack, DlpKind, SensorSpec};

    fn corpora() -> Option<std::path::PathBuf> {
        let ws = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let found = [
            std::env::var_os("BULKHEAD_CORPORA").map(Into::into),
            Some(ws.join("../shared/corpora")),
            Some("/work/shared/corpora".into()),
        ]
        .into_iter()
        .flatten()
        .find(|p: &std::path::PathBuf| p.is_dir());
        assert!(
            found.is_some() || std::env::var("BULKHEAD_REQUIRE_CORPORA").as_deref() != Ok("1"),
            "corpora not found"
        );
        found
    }

    fn escape(v: &[u8], keep: &[u8]) -> String {
        let mut s = String::new();
        for &b in v {
            if b.is_ascii_alphanumeric() || keep.contains(&b) {
                s.push(b as char);
            } else if b == b' ' {
                s.push('+');
            } else {
                s.push_str(&format!("%{b:02X}"));
            }
        }
        s
    }

    /// The value placed, by turn, in a query, a cookie, the User-Agent, the Referer, a
    /// form body and a JSON body of a browser-like request.
    fn request(v: &[u8], turn: usize) -> (Vec<u8>, Vec<u8>) {
        let q = escape(v, b"-_.");
        let raw: String = String::from_utf8_lossy(v)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let mut head = String::from("GET /shop/items/7?a=1&b=x HTTP/1.1\r\nHost: h\r\n");
        let mut body = Vec::new();
        match turn % 6 {
            0 => head = format!("GET /shop/items/7?p0=red&p1={q}&p2=42 HTTP/1.1\r\nHost: h\r\n"),
            1 => head.push_str(&format!(
                "Cookie: session=abc; v={}\r\n",
                escape(v, b"-_.'\"()<>/")
            )),
            2 => head.push_str(&format!("User-Agent: Mozilla/5.0 {raw}\r\n")),
            3 => head.push_str(&format!(
                "Referer: https://h/p?x={}\r\n",
                escape(v, b"-_.'\"()<>/:")
            )),
            4 => {
                head = "POST /f HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                    .into();
                body = format!("a=1&{q}={q}").into_bytes();
            }
            _ => {
                head = "POST /f HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n".into();
                body = serde_json::json!({"k": {"v": raw}, "n": 1})
                    .to_string()
                    .into_bytes();
            }
        }
        head.push_str(
            "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\nAccept: */*\r\n\r\n",
        );
        (head.into_bytes(), body)
    }

    /// The fast path finds exactly what the reference finds, on every attack row of
    /// the corpora and a sample of the benign ones, in six placements.
    #[test]
    fn same_findings_as_reference() {
        let Some(root) = corpora() else { return };
        let s = Sensor::new(&SensorSpec {
            name: "eq".into(),
            block: true,
            attacks: Attack::ALL.to_vec(),
            dlp: DlpKind::ALL.to_vec(),
            patterns: vec![],
        })
        .unwrap();
        let mut n = 0;
        for file in [
            "attacks/httpparams.tsv",
            "attacks/libinjection.tsv",
            "attacks/crs_942_sqli.tsv",
            "attacks/crs_932_rce.tsv",
            "attacks/crs_930_lfi.tsv",
            "dlp/sample.tsv",
        ] {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            for (i, line) in text.lines().skip(1).enumerate() {
                let mut f = line.split('\t');
                let label = f.next().unwrap_or("");
                let v = crate::decode::percent_decode(f.next().unwrap_or("").as_bytes());
                if label == "benign" && file.starts_with("attacks/httpparams") && i % 5 != 0 {
                    continue;
                }
                let (head, body) = request(&v, i);
                let want = http_request(&s, &head, &body);
                let got = s.http_request(&head, &body);
                assert_eq!(
                    got,
                    want,
                    "{file} row {i}: {}",
                    String::from_utf8_lossy(&head)
                );
                n += 1;
            }
        }
        assert!(n > 10_000, "{n} requests compared");
    }
}
