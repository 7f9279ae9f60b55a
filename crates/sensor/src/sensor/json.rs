//! JSON bodies as the frameworks behind the proxy read them, where `serde_json` is
//! stricter: a byte order mark is dropped and UTF-16 transcoded (Express, Flask and
//! Jackson take both), and text `serde_json` refuses but Node's `JSON.parse` or
//! Python's `json` takes (`1e400`, a lone surrogate `\udc00`) still yields its strings.
//! Hand-written: what is wanted is the strings of text a strict parser refuses, which
//! no JSON crate hands over.

use std::borrow::Cow;

/// The body as UTF-8 JSON text: without a UTF-8 byte order mark, and transcoded from
/// UTF-16 when it has that mark or JSON's UTF-16 pattern (a zero byte beside each of
/// its first two ASCII characters, RFC 4627 section 3).
pub fn text(body: &[u8]) -> Cow<'_, [u8]> {
    if let Some(rest) = body.strip_prefix(b"\xef\xbb\xbf") {
        return Cow::Borrowed(rest);
    }
    let little = match body {
        [0xff, 0xfe, ..] => Some((true, 2)),
        [0xfe, 0xff, ..] => Some((false, 2)),
        [a, 0, b, 0, ..] if *a != 0 && *b != 0 => Some((true, 0)),
        [0, a, 0, b, ..] if *a != 0 && *b != 0 => Some((false, 0)),
        _ => None,
    };
    let Some((little, skip)) = little else {
        return Cow::Borrowed(body);
    };
    let units = body[skip..].chunks_exact(2).map(|c| {
        if little {
            u16::from_le_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], c[1]])
        }
    });
    let text: String = char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    Cow::Owned(text.into_bytes())
}

/// Whether `text` starts as a JSON object or array does.
pub fn text_start(text: &[u8]) -> bool {
    matches!(
        text.iter().find(|c| !c.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

/// Each string of JSON-like `text` (keys and values), unescaped as the parsers do:
/// `\uXXXX` (a surrogate pair as one character, a lone surrogate as U+FFFD) and the
/// one-letter escapes; an unknown escape keeps its letter. An unterminated string ends
/// the text.
pub fn strings(text: &[u8], f: &mut dyn FnMut(&[u8])) {
    let mut i = 0;
    let mut s = Vec::new();
    while let Some(start) = memchr::memchr(b'"', &text[i..]) {
        i += start + 1;
        s.clear();
        loop {
            let Some(&c) = text.get(i) else {
                return;
            };
            i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = text.get(i) else {
                        return;
                    };
                    i += 1;
                    match e {
                        b'n' => s.push(b'\n'),
                        b't' => s.push(b'\t'),
                        b'r' => s.push(b'\r'),
                        b'b' => s.push(8),
                        b'f' => s.push(12),
                        b'u' => {
                            let (ch, used) = unicode(&text[i..]);
                            i += used;
                            let mut buf = [0; 4];
                            s.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        other => s.push(other),
                    }
                }
                c => s.push(c),
            }
        }
        f(&s);
    }
}

/// The character `\u` escapes name, from the text after `\u`, and how many bytes of it
/// they took (a high surrogate followed by `\uDC00`-`\uDFFF` is one character).
fn unicode(t: &[u8]) -> (char, usize) {
    let hex = |t: &[u8]| {
        let h = std::str::from_utf8(t.get(..4)?).ok()?;
        u16::from_str_radix(h, 16).ok()
    };
    let Some(hi) = hex(t) else {
        return (char::REPLACEMENT_CHARACTER, 0);
    };
    if (0xd800..0xdc00).contains(&hi)
        && t.get(4..6) == Some(b"\\u")
        && let Some(lo) = hex(&t[6..]).filter(|lo| (0xdc00..0xe000).contains(lo))
    {
        let c = 0x10000 + ((u32::from(hi) - 0xd800) << 10) + (u32::from(lo) - 0xdc00);
        return (char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER), 10);
    }
    (
        char::from_u32(u32::from(hi)).unwrap_or(char::REPLACEMENT_CHARACTER),
        4,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(text: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        strings(text, &mut |s| {
            out.push(String::from_utf8_lossy(s).into_owned())
        });
        out
    }

    #[test]
    fn strings_of_what_serde_refuses() {
        let t = br#"{"n":1e400,"q":"1\u0027 UNION SELECT \"x\"","s":"\udc00a","p":"\ud83d\ude00"}"#;
        assert!(serde_json::from_slice::<serde_json::Value>(t).is_err());
        assert_eq!(
            all(t),
            [
                "n",
                "q",
                "1' UNION SELECT \"x\"",
                "s",
                "\u{fffd}a",
                "p",
                "\u{1f600}"
            ]
        );
    }

    #[test]
    fn byte_order_marks_and_utf16() {
        assert_eq!(&*text(b"\xef\xbb\xbf{\"a\":1}"), b"{\"a\":1}");
        let utf16: Vec<u8> = "{\"q\":\"1' OR 1=1\"}"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(&*text(&utf16), b"{\"q\":\"1' OR 1=1\"}");
        let be: Vec<u8> = [0xfe, 0xff]
            .into_iter()
            .chain("[\"x\"]".encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(&*text(&be), b"[\"x\"]");
        assert_eq!(&*text(b"{\"a\":1}"), b"{\"a\":1}");
    }

    proptest! {
        /// Any bytes: no panic, and valid JSON's strings are serde's.
        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = all(&b);
            let _ = text(&b);
        }

        #[test]
        fn agrees_with_serde_on_valid_json(v in proptest::collection::vec(".{0,12}", 0..6)) {
            let j = serde_json::to_vec(&v).unwrap();
            prop_assert_eq!(all(&j), v);
        }
    }
}
