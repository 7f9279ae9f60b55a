//! Cutting an HTTP/1 request into the locations a WAF inspects (ModSecurity's
//! REQUEST_FILENAME, ARGS_NAMES, ARGS, REQUEST_COOKIES, selected REQUEST_HEADERS),
//! each value decoded once as the server decodes it. The head is cut into lines and
//! fields here (see [`visit`] for why not by `httparse`), query strings, cookies and
//! form bodies by a single split on `&`/`;` and `=`; JSON bodies go through `serde_json`.
//!
//! Nothing is collected: [`visit`] hands each value to a callback, borrowed from the
//! request when it holds no escape (most values) and decoded into a fresh buffer only
//! when it does, and names its location with a [`Loc`] that is formatted into a string
//! only when a finding needs it. A benign request thus costs no allocation here.

use std::borrow::Cow;

use super::{Context, json, multipart, protobuf};
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

/// Where multipart file names are reported (`body:multipart:filename:NAME`).
pub(crate) const UPLOAD_NAME: &str = "body:multipart:filename";
/// Headers that name the file a request body uploads (raw-body upload APIs and their
/// JavaScript clients; CRS 932180 reads the same).
const UPLOAD_HEADERS: &[&str] = &["x-filename", "x_filename", "x-file-name"];

/// Is `n` one of [`UPLOAD_HEADERS`]? (Asked of every header value: the length and
/// first letter turn almost all away.)
fn upload_header(n: &str) -> bool {
    matches!(n.len(), 10 | 11)
        && n.as_bytes()[0].eq_ignore_ascii_case(&b'x')
        && UPLOAD_HEADERS.iter().any(|h| n.eq_ignore_ascii_case(h))
}

impl Loc<'_> {
    /// Is this an uploaded file's name, which the path traversal class also judges as
    /// an upload ([`crate::traversal::restricted_upload`])?
    pub(crate) fn is_upload_name(&self) -> bool {
        match self {
            Loc::Named(p, _) => *p == UPLOAD_NAME,
            Loc::Header(n) => upload_header(n),
            Loc::Str(s) => {
                s.strip_prefix(UPLOAD_NAME)
                    .is_some_and(|r| r.starts_with(':'))
                    || s.strip_prefix("header:").is_some_and(upload_header)
            }
            _ => false,
        }
    }

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
pub const MAX_ITEMS: usize = 512;

/// Headers whose values are protocol machinery, not application input: skipped. (Not
/// `Host`: applications put it in queries, links and logs.)
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

/// The callback side of [`visit`]: counts values so at most [`MAX_ITEMS`] are seen,
/// skips empty ones, and tells the callback which head line a value came from.
struct Sink<'f, F: ?Sized> {
    f: &'f mut F,
    n: usize,
    line: usize,
    /// A value came past the limit and was not seen.
    dropped: bool,
}

/// The line number [`visit`] gives the body's values.
pub const BODY: usize = usize::MAX;

impl<F: FnMut(usize, &Loc<'_>, &[u8], Context) + ?Sized> Sink<'_, F> {
    fn full(&self) -> bool {
        self.n >= MAX_ITEMS
    }
    fn push(&mut self, loc: &Loc<'_>, value: &[u8], ctx: Context) {
        if value.is_empty() {
        } else if self.full() {
            self.dropped = true;
        } else {
            self.n += 1;
            (self.f)(self.line, loc, value, ctx);
        }
    }
}

pub use crate::dlp::lines;

/// A header line's name and value: the name up to the first `:`, the value with its
/// leading and trailing blanks (and the line end) removed, as `httparse` gives them
/// for a head it accepts. `None` for a line with no `:` or an empty name.
pub fn field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = memchr::memchr(b':', line)?;
    let name = &line[..colon];
    let blank = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let value = &line[colon + 1..];
    let from = value.iter().position(|c| !blank(c)).unwrap_or(value.len());
    let to = value
        .iter()
        .rposition(|c| !blank(c))
        .map_or(from, |p| p + 1);
    (!name.is_empty()).then_some((name, &value[from..to]))
}

/// Every location of a request, in order: target, headers, body, each value with the
/// number of the head line it came from (0 for the request line, [`BODY`] for the
/// body). `skip(n, line)` is asked about each header line first, and a line it
/// returns true for is not cut up (a line the caller already knows to be clean).
///
/// The head is read line by line rather than by a full parser: a head the proxy
/// relays has been parsed already, and one that `httparse` would refuse (a stray
/// space before a colon, more than its header limit) is still inspected, line by
/// line, rather than only at its target.
///
/// True when values past [`MAX_ITEMS`] were left unread (the caller says so: a request
/// padded with values to push an attack past the limit must not pass as if read).
pub fn visit(
    head: &[u8],
    body: &[u8],
    skip: &mut impl FnMut(usize, &[u8]) -> bool,
    f: &mut impl FnMut(usize, &Loc<'_>, &[u8], Context),
) -> bool {
    let mut sink = Sink {
        f,
        n: 0,
        line: 0,
        dropped: false,
    };
    let mut head_lines = lines(head);
    let first = head_lines.next().unwrap_or(head);
    target_items(request_target(first), &mut sink);
    let mut content_type = None;
    let mut name: &[u8] = b"";
    for (i, line) in head_lines.enumerate() {
        let n = i + 1;
        if line.trim_ascii().is_empty() {
            break;
        }
        // A continuation line (obsolete folding) belongs to the field above it.
        let (this, value) = if matches!(line[0], b' ' | b'\t') {
            (name, line.trim_ascii())
        } else {
            match field(line) {
                Some(f) => f,
                None => continue,
            }
        };
        name = this;
        // The body's type is read even from a line the caller skips.
        if name.eq_ignore_ascii_case(b"content-type") {
            content_type = std::str::from_utf8(value).ok();
        }
        if sink.full() {
            sink.dropped = true;
            continue;
        }
        if skip(n, line) {
            continue;
        }
        sink.line = n;
        header_items(name, value, &mut sink);
    }
    sink.line = BODY;
    body_items(body, content_type, &mut sink);
    sink.dropped
}

/// The target of a request line. A line with blanks inside its target (`GET /?id=1'
/// OR '1'='1 HTTP/1.1`, as scanners write them raw) is read as the servers that take it
/// read it, everything between the method and the version, not only its first word: a
/// proxy refuses such a line, but offline tools and lenient servers see it whole.
pub(crate) fn request_target(line: &[u8]) -> &[u8] {
    let line = line.trim_ascii();
    let Some(sp) = memchr::memchr(b' ', line) else {
        return line;
    };
    let rest = line[sp + 1..].trim_ascii_start();
    match memchr::memrchr(b' ', rest) {
        Some(end) if rest[end + 1..].starts_with(b"HTTP/") => rest[..end].trim_ascii_end(),
        _ => rest.split(|&c| c == b' ').next().unwrap_or(rest),
    }
}

/// One header's values: each cookie's name and value, or the whole value of a header
/// that is application input.
fn header_items<F: FnMut(usize, &Loc<'_>, &[u8], Context) + ?Sized>(
    name: &[u8],
    value: &[u8],
    sink: &mut Sink<'_, F>,
) {
    if name.eq_ignore_ascii_case(b"cookie") {
        for pair in value.split(|&c| c == b';') {
            let pair = pair.trim_ascii();
            let (k, v) = split_pair(pair);
            let k = decode::percent_decode_cow(k);
            let loc = Loc::Named("cookie", &k);
            sink.push(&loc, &k, Context::Header);
            sink.push(&loc, &decode::percent_decode_cow(v), Context::Header);
        }
    } else if name.eq_ignore_ascii_case(b"referer") {
        // A URL: what precedes its query (the same page after page, so a value the
        // clean cache keeps) as one value, then the query's pairs, decoded as the
        // target's are (`header:referer:NAME`).
        let (url, query) = match memchr::memchr(b'?', value) {
            Some(i) => (&value[..i], &value[i + 1..]),
            None => (value, &b""[..]),
        };
        sink.push(&Loc::Header("referer"), url, Context::Header);
        form_pairs(query, "header:referer", Context::Header, sink);
    } else if name.eq_ignore_ascii_case(b"authorization") {
        // Basic credentials: the application decodes them and may put the user name
        // into a query (`PHP_AUTH_USER`, Flask's `request.authorization`).
        if let Some((user, password)) = basic_credentials(value) {
            sink.push(
                &Loc::Str("header:authorization:user"),
                &user,
                Context::Header,
            );
            sink.push(
                &Loc::Str("header:authorization:password"),
                &password,
                Context::Header,
            );
        } else if let Some(token) = bearer_token(value) {
            sink.push(
                &Loc::Str("header:authorization:token"),
                token,
                Context::Header,
            );
        }
    } else if let Ok(name) = std::str::from_utf8(name)
        && (!machinery(name) || expression_opener(value))
    {
        sink.push(&Loc::Header(name), value, Context::Header);
    }
}

/// Does a value open an OGNL, EL or SpEL expression (`%{`, `${`, `#{`, `*{`)? No
/// protocol machinery holds one, and Struts evaluates one in `Content-Type` (S2-045):
/// such a header is judged like application input.
pub(crate) fn expression_opener(value: &[u8]) -> bool {
    memchr::memchr_iter(b'{', value)
        .any(|i| i > 0 && matches!(value[i - 1], b'%' | b'$' | b'#' | b'*'))
}

/// A request body's declared charset when the detectors cannot read it as sent: not
/// one of the ASCII-compatible ones (EBCDIC `cp037`, UTF-16, UTF-7...), which Django,
/// ASP.NET and servlet containers decode before the application sees a value, so an
/// attack written in it is invisible in the bytes. None when there is none, or it is
/// readable.
pub fn unreadable_charset(head: &[u8]) -> Option<String> {
    memchr::memmem::find(head, b"harset=")?;
    let ct = lines(head)
        .skip(1)
        .filter_map(field)
        .find(|(n, _)| n.eq_ignore_ascii_case(b"content-type"))?
        .1;
    let ct = String::from_utf8_lossy(ct).to_ascii_lowercase();
    let cs = ct
        .split(';')
        .skip(1)
        .filter_map(|p| p.trim().strip_prefix("charset="))
        .next()?
        .trim_matches('"')
        .to_string();
    const READABLE: &[&str] = &[
        "utf-8",
        "utf8",
        "us-ascii",
        "ascii",
        "iso-8859-",
        "iso8859-",
        "latin",
        "windows-125",
        "cp125",
        "koi8",
        "gbk",
        "gb2312",
        "gb18030",
        "big5",
        "shift_jis",
        "sjis",
        "euc-",
        "tis-620",
    ];
    (!READABLE.iter().any(|r| cs.starts_with(r))).then_some(cs)
}

/// The token of a `Bearer` Authorization value (RFC 6750): applications that look tokens
/// up in a table put it into a query (FortiWeb's CVE-2025-25257, `Bearer x'or'1'='1`).
pub(crate) fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    credentials(value, b"bearer")
}

/// What follows an Authorization value's scheme, when it is `scheme` (any case).
fn credentials<'a>(value: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    let (name, rest) = value.split_at(value.iter().position(|&c| c == b' ')?);
    name.eq_ignore_ascii_case(scheme).then(|| rest.trim_ascii())
}

/// The user name and password of a `Basic` Authorization value (RFC 7617).
pub(crate) fn basic_credentials(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(credentials(value, b"basic")?)
        .ok()?;
    let colon = memchr::memchr(b':', &raw)?;
    Some((raw[..colon].to_vec(), raw[colon + 1..].to_vec()))
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

fn target_items<F: FnMut(usize, &Loc<'_>, &[u8], Context) + ?Sized>(
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
fn form_pairs<F: FnMut(usize, &Loc<'_>, &[u8], Context) + ?Sized>(
    qs: &[u8],
    prefix: &'static str,
    context: Context,
    sink: &mut Sink<'_, F>,
) {
    // Pairs as PHP, Express, Werkzeug and Go cut them (at `&`), and a pair holding a
    // `;` also as Rack 2 and older Python cut it (at `;` too): `ip=127.0.0.1;id` is a
    // value with a command separator to the one, two harmless pairs to the other.
    for whole in qs.split(|&c| c == b'&') {
        let semi = memchr::memchr(b';', whole).is_some();
        let cut = semi
            .then(|| whole.split(|&c| c == b';'))
            .into_iter()
            .flatten();
        for pair in std::iter::once(whole).chain(cut) {
            if sink.full() {
                if !pair.is_empty() {
                    sink.dropped = true;
                }
                return;
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
}

/// A query string's names and values, owned.
pub fn query_items(qs: &[u8]) -> Vec<Item> {
    collect(|sink| form_pairs(qs, "query", Context::Url, sink))
}

/// A body's locations, owned.
pub fn body_items_owned(body: &[u8], content_type: Option<&str>) -> Vec<Item> {
    collect(|sink| body_items(body, content_type, sink))
}

/// What [`visit`] calls back with: line number, location, value, context.
type Visitor<'a> = dyn FnMut(usize, &Loc<'_>, &[u8], Context) + 'a;

fn collect(run: impl FnOnce(&mut Sink<'_, Visitor<'_>>)) -> Vec<Item> {
    let mut out = Vec::new();
    let mut f = |_: usize, loc: &Loc<'_>, v: &[u8], context: Context| {
        out.push(Item {
            location: loc.name(),
            value: v.to_vec(),
            context,
        })
    };
    let f: &mut Visitor<'_> = &mut f;
    run(&mut Sink {
        f,
        n: 0,
        line: 0,
        dropped: false,
    });
    out
}

/// The longest piece of a body (or of a multipart field) judged as one value.
const MAX_BODY_VALUE: usize = 16 * 1024;
/// How much two pieces of a longer value overlap: an attack shorter than this that
/// straddles a cut is whole in one of them.
const OVERLAP: usize = 1024;

/// A body or field value in pieces of at most [`MAX_BODY_VALUE`], overlapping by
/// [`OVERLAP`]: judged whole, not on a prefix (16 KiB of padding, then the attack,
/// would pass otherwise). The proxy holds 64 KiB of a body, so five pieces at most.
pub(crate) fn pieces(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::once(&v[..v.len().min(MAX_BODY_VALUE)]).chain(crate::window::rest(
        v,
        MAX_BODY_VALUE,
        MAX_BODY_VALUE - OVERLAP,
    ))
}

/// A body: form fields, multipart fields and file names, JSON strings and keys, or
/// the whole text.
fn body_items<F: FnMut(usize, &Loc<'_>, &[u8], Context) + ?Sized>(
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
    // gRPC (and gRPC-Web): each message's text fields, or each JSON message.
    if ct.starts_with("application/grpc") && !ct.starts_with("application/grpc-web-text") {
        let json = ct.contains("+json");
        let framed = protobuf::grpc_messages(body, |m| {
            if json {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(m) {
                    json_items(&v, &mut String::new(), sink, 0);
                }
            } else {
                protobuf::strings(m, &mut |path, text| {
                    sink.push(
                        &Loc::Named("body:grpc", path.as_bytes()),
                        text,
                        Context::Body,
                    )
                });
            }
        });
        if framed {
            return;
        }
    }
    let first = body.iter().find(|c| !c.is_ascii_whitespace()).copied();
    let looks_json = matches!(first, Some(b'{' | b'['));
    // JSON whatever the type says: frameworks that parse every body as JSON (Express's
    // `type: '*/*'`) take `text/plain` JSON too, the type an attacker picks to send JSON
    // cross-site without a preflight. A form whose body is JSON is read both ways:
    // handlers that read the raw body (ASP.NET's AjaxPro, PHP's `php://input`) take
    // the JSON, the framework's form parser the pairs.
    let form = ct.contains("multipart/") || ct.contains("x-www-form-urlencoded");
    if ct.contains("json") || looks_json {
        // As the frameworks read it: a byte order mark dropped, UTF-16 transcoded.
        let text = json::text(body);
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) {
            json_items(&v, &mut String::new(), sink, 0);
            if !form {
                return;
            }
        } else if !form && (ct.contains("json") || json::text_start(&text)) {
            // JSON serde refuses but Node's or Python's parser takes (`1e400`, a lone
            // surrogate escape): its strings, unescaped, then the text as it is below.
            json::strings(&text, &mut |s| sink.push(&Loc::Json("?"), s, Context::Body));
        }
    }
    if super::xml::is_xml(&ct, first) {
        let parsed = super::xml::values(body, |path, v| {
            for piece in pieces(v) {
                sink.push(&Loc::Named("body:xml", path), piece, Context::Body);
            }
        });
        if parsed {
            return;
        }
    }
    if let Some(boundary) = content_type.and_then(multipart::boundary) {
        let mut parts = 0;
        multipart::parts(body, boundary, |p| {
            parts += 1;
            let loc = Loc::Named("body:multipart", p.name);
            sink.push(&loc, p.name, Context::Body);
            if p.is_file() {
                let loc = Loc::Named(UPLOAD_NAME, p.name);
                for f in p.filenames.iter().flatten() {
                    sink.push(&loc, f, Context::Body);
                }
            }
            if p.may_be_field() {
                for piece in pieces(p.content) {
                    sink.push(&loc, piece, Context::Body);
                }
            }
        });
        if parts > 0 {
            return;
        }
    }
    if ct.contains("x-www-form-urlencoded")
        || (ct.is_empty() && memchr::memchr(b'=', body).is_some())
    {
        form_pairs(body, "body:form", Context::Body, sink);
        return;
    }
    // Anything else is judged as one value, in bounded pieces.
    for piece in pieces(body) {
        sink.push(&Loc::Str("body"), piece, Context::Body);
    }
}

fn json_items<F: FnMut(usize, &Loc<'_>, &[u8], Context) + ?Sized>(
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

#[cfg(test)]
mod tests {
    use super::{field, lines};
    use proptest::prelude::*;

    /// Names and values as `httparse` cuts them, for a head it accepts.
    fn parsed(head: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => Some(
                req.headers
                    .iter()
                    .map(|h| (h.name.as_bytes().to_vec(), h.value.to_vec()))
                    .collect(),
            ),
            _ => None,
        }
    }

    fn ours(head: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        lines(head)
            .skip(1)
            .take_while(|l| !l.trim_ascii().is_empty())
            .filter_map(field)
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect()
    }

    fn piece() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "a", "Z", "-", " ", "\t", ":", ";", "=", "\"", "(", "é", "x y", "  ", "0",
        ])
        .prop_map(str::to_string)
    }

    /// Mostly token characters (a name `httparse` accepts), now and then not.
    fn name_piece() -> impl Strategy<Value = String> {
        prop_oneof![
            9 => prop::sample::select(vec!["a", "Z", "-", "0", "_", "!"]).prop_map(str::to_string),
            1 => piece(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        /// On every head `httparse` accepts, the line cutter gives its fields.
        #[test]
        fn fields_are_httparse_fields(
            fields in proptest::collection::vec(
                (proptest::collection::vec(name_piece(), 1..4), proptest::collection::vec(piece(), 0..6)),
                0..6,
            ),
            lf_only in any::<bool>(),
        ) {
            let eol = if lf_only { "\n" } else { "\r\n" };
            let mut head = format!("GET /p?q=1 HTTP/1.1{eol}");
            for (n, v) in &fields {
                head.push_str(&format!("{}:{}{eol}", n.concat(), v.concat()));
            }
            head.push_str(eol);
            match parsed(head.as_bytes()) {
                Some(want) => prop_assert_eq!(ours(head.as_bytes()), want),
                // Refused heads are still cut, and the cut never panics.
                None => drop(ours(head.as_bytes())),
            }
        }
    }
}
