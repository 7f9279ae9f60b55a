//! Decoding before inspection. Attackers encode what a filter looks for; each decoder
//! here undoes one layer the way a server or browser would, never fails, and never
//! produces more bytes than it reads, so work stays linear and bounded.
//!
//! Hand-written rather than `percent-encoding`/`html-escape`: those crates decode one
//! well-formed layer, while inspection needs the tolerant superset attackers rely on
//! (`%uXXXX`, double encoding, overlong UTF-8 such as `%c0%af`, entities without `;`).

/// How many nested layers of percent-encoding are undone (`%252e` -> `%2e` -> `.`).
pub const MAX_LAYERS: usize = 3;

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn push_char(out: &mut Vec<u8>, cp: u32) {
    let c = char::from_u32(cp).unwrap_or('\u{FFFD}');
    let mut b = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
}

/// Plain `%XX` decoding (no `+`): the corpora's escaping, and paths.
pub fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    percent_into(s, false, &mut out);
    out
}

/// `%XX` (and `+` as a space when `plus`) into `out`. Plain runs between escapes are
/// copied whole (found with `memchr`), not byte by byte: most text has few escapes.
fn percent_into(s: &[u8], plus: bool, out: &mut Vec<u8>) {
    let mut i = 0;
    loop {
        let next = if plus {
            memchr::memchr2(b'%', b'+', &s[i..])
        } else {
            memchr::memchr(b'%', &s[i..])
        };
        let Some(off) = next else {
            out.extend_from_slice(&s[i..]);
            return;
        };
        out.extend_from_slice(&s[i..i + off]);
        i += off;
        if s[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else if let (Some(h), Some(l)) = (
            s.get(i + 1).copied().and_then(hex),
            s.get(i + 2).copied().and_then(hex),
        ) {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(b'%');
            i += 1;
        }
    }
}

/// `application/x-www-form-urlencoded` and query strings: `+` is a space, then `%XX`.
pub fn form_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    percent_into(s, true, &mut out);
    out
}

/// [`percent_decode`] that borrows when there is nothing to decode (most values).
pub fn percent_decode_cow(s: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if memchr::memchr(b'%', s).is_none() {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(percent_decode(s))
    }
}

/// [`form_decode`] that borrows when there is nothing to decode (most values).
pub fn form_decode_cow(s: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if memchr::memchr2(b'%', b'+', s).is_none() {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(form_decode(s))
    }
}

/// One layer of `%XX` and IIS-style `%uXXXX`.
fn percent_u_layer(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if matches!(s.get(i + 1), Some(b'u' | b'U'))
                && let Some(cp) = hex4(&s[(i + 2).min(s.len())..])
            {
                push_char(&mut out, cp);
                i += 6;
                continue;
            }
            if let (Some(h), Some(l)) = (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

fn hex4(s: &[u8]) -> Option<u32> {
    if s.len() < 4 {
        return None;
    }
    s[..4]
        .iter()
        .try_fold(0u32, |a, &c| hex(c).map(|v| a << 4 | u32::from(v)))
}

/// Everything a URL component can hide behind: repeated `%XX`/`%uXXXX` layers (up to
/// [`MAX_LAYERS`]), then overlong UTF-8 forms of ASCII folded to ASCII.
pub fn url_decode_deep(s: &[u8]) -> Vec<u8> {
    let mut cur = s.to_vec();
    for _ in 0..MAX_LAYERS {
        if !cur.contains(&b'%') {
            break;
        }
        let next = percent_u_layer(&cur);
        if next == cur {
            break;
        }
        cur = next;
    }
    // Folding changes only the lead bytes C0, C1, E0: without one, skip its copy.
    if !cur.iter().any(|&c| matches!(c, 0xC0 | 0xC1 | 0xE0)) {
        return cur;
    }
    fold_overlong(&cur)
}

/// The other readings of a value the server decoded once, as an application may decode
/// it again, each only when the value holds what it undoes:
/// - deeper URL decoding (`%25`-layers, `%uXXXX`) and overlong UTF-8 folded (`%C0%A0`
///   for a blank, as old IIS and Java decoders read it), when a `%` or an overlong lead
///   byte is left; and that without the `%` signs that start no escape (ASP, IIS);
/// - HTML character references (`&#39;`, `&#x27;`, `&apos;`), when a `&` and a `;` are;
/// - backslash escapes (`\u0027`, `\x27`) and escaped quotes (`\'`, as `stripslashes`
///   undoes them), when a `\` is.
pub fn other_readings(value: &[u8], profile: crate::profile::Profile) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    // Most values hold none of these bytes: one bit of the profile says so.
    if !profile.any(crate::profile::class::REREAD) {
        return out;
    }
    if profile.any(crate::profile::class::PERCENT)
        || memchr::memchr3(0xC0, 0xC1, 0xE0, value).is_some()
    {
        let deep = url_decode_deep(value);
        if let Some(asp) = drop_stray_percent(&deep) {
            out.push(asp);
        }
        if deep != value {
            out.push(deep);
        }
    }
    if memchr::memchr(b'&', value).is_some() && memchr::memchr(b';', value).is_some() {
        let h = html_decode(value);
        if h != value {
            out.push(h);
        }
    }
    if memchr::memchr(b'\\', value).is_some() {
        let unquoted = strip_quote_escapes(&backslash_unescape(value));
        if unquoted != value {
            out.push(unquoted);
        }
    }
    out
}

/// The shortest value read as base64: 12 bytes of text, room for `' or 1=1--`.
pub const BASE64_MIN: usize = 16;
/// The longest: a value longer than a request head is a file or a blob, not a
/// parameter an application decodes and uses.
const BASE64_MAX: usize = 8192;

/// The text a base64 value stands for, when it stands for text: applications that
/// pass file names, filters or whole queries base64-encoded (`file=Li4vLi4vY29uZmln`,
/// `par=W2dyb3VwXTpbMSB1bmlvbiBzZWxlY3Q...`) decode them before use, so a filter that
/// reads only the encoded form never sees the attack. Standard or URL-safe alphabet,
/// padded or not, canonical (as every encoder writes it); the text must be printable
/// ASCII, blanks and line ends, which every attack is. Random tokens, hashes and
/// identifiers decode to other bytes, and most are turned away before decoding: in
/// each quantum of four symbols, ASCII text leaves the high bit of each of its three
/// bytes clear, which fixes one bit of three of the symbols (a random token's quanta
/// pass with odds of one in eight each).
pub fn base64_text(v: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    if !(BASE64_MIN..=BASE64_MAX).contains(&v.len()) {
        return None;
    }
    let body = v
        .strip_suffix(b"==")
        .or_else(|| v.strip_suffix(b"="))
        .unwrap_or(v);
    let (mut standard, mut url_safe) = (false, false);
    for (i, &c) in body.iter().enumerate() {
        let sextet = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'/' => {
                standard = true;
                62 + (c == b'/') as u8
            }
            b'-' | b'_' => {
                url_safe = true;
                62 + (c == b'_') as u8
            }
            _ => return None,
        };
        // Bit 7 of byte 1 is bit 5 of symbol 0; of byte 2, bit 3 of symbol 1; of byte
        // 3, bit 1 of symbol 2.
        let high = [0b10_0000, 0b00_1000, 0b00_0010, 0][i % 4];
        if sextet & high != 0 {
            return None;
        }
    }
    // Padding makes whole quanta; and no encoder mixes the two alphabets.
    if (standard && url_safe) || (body.len() < v.len() && !v.len().is_multiple_of(4)) {
        return None;
    }
    let engine = if url_safe {
        URL_SAFE_NO_PAD
    } else {
        STANDARD_NO_PAD
    };
    let bytes = engine.decode(body).ok()?;
    let readable = bytes
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) || matches!(b, b'\t' | b'\n' | b'\r'));
    readable.then_some(bytes)
}

/// A serialized object a value carries, decoded, with how a finding shows it: what
/// applications that take one from a parameter, a cookie or an XML-RPC
/// `<serializable>` element hand to a deserializer, where a gadget chain names its
/// classes or functions in plain bytes. Java's stream (`AC ED 00 05`) in base64
/// (`rO0AB...`) or hex (`aced0005...`), Python's pickle (protocols 2 to 5, `80 0N`:
/// base64 `gA...`) and Ruby's Marshal format (`04 08`: `BAh...`). Line breaks inside the
/// base64 (as MIME wraps it) are dropped first; either alphabet is read.
pub fn serialized(v: &[u8]) -> Option<(Vec<u8>, &'static str)> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let v = v.trim_ascii();
    if v.len() < BASE64_MIN || v.len() > BASE64_MAX * 8 {
        return None;
    }
    if v.len() >= 8 && v[..8].eq_ignore_ascii_case(b"aced0005") {
        let bytes = hex_bytes(v)?;
        return Some((bytes, "hex: a Java serialized object"));
    }
    let shown = match v {
        [b'r', b'O', b'0', b'A', b'B', ..] => "base64: a Java serialized object",
        [b'g', b'A', b'I'..=b'X', ..] => "base64: a Python pickle",
        [b'B', b'A', b'g'..=b'j', ..] => "base64: Ruby Marshal data",
        _ => return None,
    };
    let compact: Vec<u8> = v
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let body = compact
        .strip_suffix(b"==")
        .or_else(|| compact.strip_suffix(b"="))
        .unwrap_or(&compact);
    let bytes = STANDARD_NO_PAD
        .decode(body)
        .or_else(|_| URL_SAFE_NO_PAD.decode(body))
        .ok()?;
    let magic = match bytes.as_slice() {
        [0xac, 0xed, 0x00, 0x05, ..] | [0x04, 0x08, ..] => true,
        [0x80, protocol, ..] => (2..=5).contains(protocol),
        _ => false,
    };
    magic.then_some((bytes, shown))
}

/// Hex digits as the bytes they spell (an even number of them, nothing else).
fn hex_bytes(v: &[u8]) -> Option<Vec<u8>> {
    if !v.len().is_multiple_of(2) {
        return None;
    }
    v.chunks(2)
        .map(|pair| Some(hex(pair[0])? << 4 | hex(pair[1])?))
        .collect()
}

/// `\'` and `\"` as the quotes they escape.
fn strip_quote_escapes(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' && matches!(s.get(i + 1), Some(b'\'' | b'"')) {
            i += 1;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// `s` without the `%` signs that start no `%XX` escape, as ASP's and IIS's query
/// parsers drop them (`%S%E%L%E%C%T` is `SELECT`), or `None` when there is none.
pub fn drop_stray_percent(s: &[u8]) -> Option<Vec<u8>> {
    let stray = |i: usize| {
        !(s.get(i + 1).copied().and_then(hex).is_some()
            && s.get(i + 2).copied().and_then(hex).is_some())
    };
    let first = memchr::memchr_iter(b'%', s).find(|&i| stray(i))?;
    let mut out = Vec::with_capacity(s.len());
    out.extend_from_slice(&s[..first]);
    for (i, &c) in s.iter().enumerate().skip(first) {
        if c != b'%' || !stray(i) {
            out.push(c);
        }
    }
    Some(out)
}

/// Overlong UTF-8 encodings of ASCII (`C0 AF` = `/`, `E0 80 AE` = `.`) are invalid
/// UTF-8, but old decoders accepted them: fold them to the ASCII they spell.
pub fn fold_overlong(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if (c == 0xC0 || c == 0xC1) && s.get(i + 1).is_some_and(|&n| n & 0xC0 == 0x80) {
            out.push(((c & 0x1F) << 6) | (s[i + 1] & 0x3F));
            i += 2;
            continue;
        }
        if c == 0xE0
            && s.get(i + 1).is_some_and(|&n| n & 0xE0 == 0x80)
            && s.get(i + 2).is_some_and(|&n| n & 0xC0 == 0x80)
        {
            let cp = (u32::from(s[i + 1] & 0x3F) << 6) | u32::from(s[i + 2] & 0x3F);
            if cp < 0x80 {
                out.push(cp as u8);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// `\uXXXX`, `\u{X...}` (a code point, any number of hex digits) and `\xXX` escapes
/// (JavaScript, JSON, many template languages), and JavaScript's legacy three-digit octal
/// (`\141` is `a`).
pub fn backslash_unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' {
            match s.get(i + 1) {
                Some(b'u') if s.get(i + 2) == Some(&b'{') => {
                    // Leading zeros are allowed without limit (`\u{00000061}`).
                    let digits = s[i + 3..].iter().take_while(|&&c| hex(c).is_some()).count();
                    let value = s[i + 3..i + 3 + digits]
                        .iter()
                        .skip_while(|&&c| c == b'0')
                        .try_fold(0u32, |v, &c| {
                            let v = v.checked_mul(16)? + u32::from(hex(c)?);
                            (v <= 0x10FFFF).then_some(v)
                        });
                    if digits > 0
                        && s.get(i + 3 + digits) == Some(&b'}')
                        && let Some(cp) = value.and_then(char::from_u32)
                    {
                        push_char(&mut out, cp as u32);
                        i += 4 + digits;
                        continue;
                    }
                }
                Some(b'u') => {
                    if let Some(cp) = hex4(&s[(i + 2).min(s.len())..]) {
                        push_char(&mut out, cp);
                        i += 6;
                        continue;
                    }
                }
                Some(b'0'..=b'3')
                    if s.get(i + 2).is_some_and(|c| (b'0'..=b'7').contains(c))
                        && s.get(i + 3).is_some_and(|c| (b'0'..=b'7').contains(c)) =>
                {
                    out.push((s[i + 1] - b'0') << 6 | (s[i + 2] - b'0') << 3 | (s[i + 3] - b'0'));
                    i += 4;
                    continue;
                }
                Some(b'x') => {
                    if let (Some(h), Some(l)) = (
                        s.get(i + 2).copied().and_then(hex),
                        s.get(i + 3).copied().and_then(hex),
                    ) {
                        out.push(h << 4 | l);
                        i += 4;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// JSON string escapes (`\n`, `\"`, `\uXXXX` with surrogate pairs). Tolerant: an
/// invalid escape is kept as written.
pub fn json_unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        // Copy the plain run up to the next backslash in one go.
        let Some(off) = memchr::memchr(b'\\', &s[i..]) else {
            out.extend_from_slice(&s[i..]);
            break;
        };
        out.extend_from_slice(&s[i..i + off]);
        i += off;
        if s[i] == b'\\' && i + 1 < s.len() {
            let simple = match s[i + 1] {
                b'n' => Some(b'\n'),
                b'r' => Some(b'\r'),
                b't' => Some(b'\t'),
                b'b' => Some(8),
                b'f' => Some(12),
                b'"' => Some(b'"'),
                b'\\' => Some(b'\\'),
                b'/' => Some(b'/'),
                _ => None,
            };
            if let Some(c) = simple {
                out.push(c);
                i += 2;
                continue;
            }
            if s[i + 1] == b'u'
                && let Some(hi) = hex4(&s[(i + 2).min(s.len())..])
            {
                if (0xD800..0xDC00).contains(&hi)
                    && s.get(i + 6) == Some(&b'\\')
                    && s.get(i + 7) == Some(&b'u')
                    && let Some(lo) = hex4(&s[(i + 8).min(s.len())..])
                    && (0xDC00..0xE000).contains(&lo)
                {
                    push_char(&mut out, 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
                    i += 12;
                    continue;
                }
                push_char(&mut out, hi);
                i += 6;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// CSS escapes (`\28`: a code point in up to six hex digits and one blank after it;
/// `\x`: `x`) decoded and comments dropped (CSS Syntax 4.3.7).
pub fn css_unescape(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'/' if v.get(i + 1) == Some(&b'*') => {
                i = memchr::memmem::find(&v[i + 2..], b"*/").map_or(v.len(), |p| i + 2 + p + 2);
            }
            b'\\' if i + 1 < v.len() => {
                let hex = v[i + 1..]
                    .iter()
                    .take(6)
                    .take_while(|c| c.is_ascii_hexdigit())
                    .count();
                if hex == 0 {
                    out.push(v[i + 1]);
                    i += 2;
                    continue;
                }
                let digits = std::str::from_utf8(&v[i + 1..i + 1 + hex]).unwrap_or("0");
                let cp = u32::from_str_radix(digits, 16).unwrap_or(0);
                let c = char::from_u32(cp)
                    .filter(|&c| c != '\0')
                    .unwrap_or('\u{fffd}');
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                i += 1 + hex;
                if v.get(i).is_some_and(|&c| c <= b' ') {
                    i += 1;
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// HTML character references as browsers read them in attributes and text:
/// `&#60;`, `&#x3C;`, `&lt;` (with or without `;`, leading zeros allowed).
pub fn html_decode(s: &[u8]) -> Vec<u8> {
    const NAMED: &[(&[u8], &[u8])] = &[
        (b"lt", b"<"),
        (b"gt", b">"),
        (b"amp", b"&"),
        (b"quot", b"\""),
        (b"apos", b"'"),
        (b"colon", b":"),
        (b"lpar", b"("),
        (b"rpar", b")"),
        (b"sol", b"/"),
        (b"bsol", b"\\"),
        (b"tab", b"\t"),
        (b"newline", b"\n"),
        (b"nbsp", b" "),
        (b"equals", b"="),
        (b"grave", b"`"),
        (b"semi", b";"),
        (b"comma", b","),
        (b"period", b"."),
        (b"excl", b"!"),
    ];
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    'outer: while i < s.len() {
        if s[i] == b'&' {
            if s.get(i + 1) == Some(&b'#') {
                let hexa = matches!(s.get(i + 2), Some(b'x' | b'X'));
                let mut j = i + if hexa { 3 } else { 2 };
                let mut cp: u32 = 0;
                let start = j;
                while j < s.len() && j - start < 10 {
                    let d = if hexa {
                        hex(s[j]).map(u32::from)
                    } else {
                        s[j].is_ascii_digit().then(|| u32::from(s[j] - b'0'))
                    };
                    let Some(d) = d else { break };
                    cp = cp
                        .saturating_mul(if hexa { 16 } else { 10 })
                        .saturating_add(d);
                    j += 1;
                }
                if j > start {
                    if s.get(j) == Some(&b';') {
                        j += 1;
                    }
                    push_char(&mut out, cp.min(0x10FFFF));
                    i = j;
                    continue;
                }
            } else {
                for (name, val) in NAMED {
                    let end = i + 1 + name.len();
                    if s.len() >= end && s[i + 1..end].eq_ignore_ascii_case(name) {
                        out.extend_from_slice(val);
                        i = if s.get(end) == Some(&b';') {
                            end + 1
                        } else {
                            end
                        };
                        continue 'outer;
                    }
                }
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// `s` after `prefix`, compared without ASCII case.
pub(crate) fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decoders as first written, byte by byte: the reference for the fast ones.
    mod slow {
        use super::super::hex;
        use super::super::{hex4, push_char};

        /// Plain `%XX` decoding (no `+`): the corpora's escaping, and paths.
        pub fn percent_decode(s: &[u8]) -> Vec<u8> {
            let mut out = Vec::with_capacity(s.len());
            let mut i = 0;
            while i < s.len() {
                if s[i] == b'%'
                    && let (Some(h), Some(l)) = (
                        s.get(i + 1).copied().and_then(hex),
                        s.get(i + 2).copied().and_then(hex),
                    )
                {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                out.push(s[i]);
                i += 1;
            }
            out
        }

        /// `application/x-www-form-urlencoded` and query strings: `+` is a space, then `%XX`.
        pub fn form_decode(s: &[u8]) -> Vec<u8> {
            let plus: Vec<u8> = s
                .iter()
                .map(|&c| if c == b'+' { b' ' } else { c })
                .collect();
            percent_decode(&plus)
        }

        /// JSON string escapes (`\n`, `\"`, `\uXXXX` with surrogate pairs). Tolerant: an
        /// invalid escape is kept as written.
        pub fn json_unescape(s: &[u8]) -> Vec<u8> {
            let mut out = Vec::with_capacity(s.len());
            let mut i = 0;
            while i < s.len() {
                if s[i] == b'\\' && i + 1 < s.len() {
                    let simple = match s[i + 1] {
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        b'b' => Some(8),
                        b'f' => Some(12),
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        _ => None,
                    };
                    if let Some(c) = simple {
                        out.push(c);
                        i += 2;
                        continue;
                    }
                    if s[i + 1] == b'u'
                        && let Some(hi) = hex4(&s[(i + 2).min(s.len())..])
                    {
                        if (0xD800..0xDC00).contains(&hi)
                            && s.get(i + 6) == Some(&b'\\')
                            && s.get(i + 7) == Some(&b'u')
                            && let Some(lo) = hex4(&s[(i + 8).min(s.len())..])
                            && (0xDC00..0xE000).contains(&lo)
                        {
                            push_char(&mut out, 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
                            i += 12;
                            continue;
                        }
                        push_char(&mut out, hi);
                        i += 6;
                        continue;
                    }
                }
                out.push(s[i]);
                i += 1;
            }
            out
        }
    }

    #[test]
    fn stray_percent_signs_are_dropped_as_asp_drops_them() {
        assert_eq!(
            drop_stray_percent(b"%S%E%L%E%C%T").as_deref(),
            Some(&b"SELECT"[..])
        );
        assert_eq!(
            drop_stray_percent(b"%1%)%0A%A").as_deref(),
            Some(&b"1)%0AA"[..])
        );
        assert_eq!(drop_stray_percent(b"50%"), Some(b"50".to_vec()));
        assert_eq!(drop_stray_percent(b"a%20b"), None);
        assert_eq!(drop_stray_percent(b"plain"), None);
    }

    #[test]
    fn fast_decoders_equal_slow_ones() {
        let alphabet = b"%+\\u0aF9x\"ngz\xc0 ";
        let mut seed = 0x9e3779b97f4a7c15u64;
        for len in 0..400 {
            let mut v = Vec::new();
            for _ in 0..len % 40 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                v.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            assert_eq!(percent_decode(&v), slow::percent_decode(&v), "{v:?}");
            assert_eq!(form_decode(&v), slow::form_decode(&v), "{v:?}");
            assert_eq!(json_unescape(&v), slow::json_unescape(&v), "{v:?}");
        }
    }

    #[test]
    fn base64_text_of_values() {
        let t = |v: &str| base64_text(v.as_bytes()).map(|b| String::from_utf8(b).unwrap());
        assert_eq!(
            t("Li4vLi4vY29uZmlndXJhdGlvbi5waHA="),
            Some("../../configuration.php".into())
        );
        assert_eq!(
            t("Li4vLi4vY29uZmlndXJhdGlvbi5waHA"),
            Some("../../configuration.php".into())
        );
        // URL-safe alphabet: `?>` encodes to `Pz4` and `_-` shows up
        assert_eq!(
            t("PD9waHAgZWNobyAxOz8-Pz4_"),
            Some("<?php echo 1;?>?>?".into())
        );
        // padding on a length that is no whole quantum; mixed alphabets; too short
        assert_eq!(t("Li4vLi4vY29uZmlndXJhdGlvbi5waH="), None);
        assert_eq!(t("Li4vLi4vY29uZm+ndXJhdGlvbi5wa_A"), None);
        assert_eq!(t("Li4vZXRj"), None);
        // random bytes, hex digests, words, and non-ASCII text
        assert_eq!(t("3q2+7w8fFzY0ZWFkYmVlZg=="), None);
        assert_eq!(t("d41d8cd98f00b204e9800998ecf8427e"), None);
        assert_eq!(t("ProductCategoryListView"), None);
        assert_eq!(t("w6nDqcOpw6nDqcOpw6nDqQ=="), None);
    }

    #[test]
    fn layers() {
        assert_eq!(percent_decode(b"a%20b%zz%4"), b"a b%zz%4");
        assert_eq!(form_decode(b"a+b%2B"), b"a b+");
        assert_eq!(url_decode_deep(b"%252e%252e%252f"), b"../");
        assert_eq!(url_decode_deep(b"%c0%ae%c0%ae%c0%af"), b"../");
        assert_eq!(
            url_decode_deep(b"%u002e%u002e%u2215"),
            "..\u{2215}".as_bytes()
        );
        assert_eq!(backslash_unescape(br"\u003cscript\x3e"), b"<script>");
        // code points (any count of leading zeros), legacy octal; not past U+10FFFF
        assert_eq!(backslash_unescape(br"\u{61}l\u{0000065}rt"), b"alert");
        assert_eq!(backslash_unescape(br"\141\154\145\162\164"), b"alert");
        assert_eq!(
            backslash_unescape(br"\u{110000}\u{}\8"),
            br"\u{110000}\u{}\8"
        );
        assert_eq!(backslash_unescape(br"\u{"), br"\u{");
        assert_eq!(
            json_unescape(br#"a\nb\"\ud83d\ude00"#),
            "a\nb\"\u{1F600}".as_bytes()
        );
        assert_eq!(html_decode(b"&lt;a&#x3C;&#0000060&colon;"), b"<a<<:");
    }
}
