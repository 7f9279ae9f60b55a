//! `multipart/form-data` bodies (RFC 7578: what an HTML form with a file input sends):
//! each part's field name, a field's value and an uploaded file's name, as the
//! application's framework hands them over (ModSecurity's multipart processor fills
//! ARGS and FILES_NAMES from them). An uploaded file's content is no parameter and is
//! left to DLP, which reads the raw body.
//!
//! Hand-written: the crates that parse multipart (`multer`, `multipart`) stream from an
//! async body or a `Read` and copy each part; this borrows every slice of a prefix
//! already in memory and takes the truncated last part such a prefix ends in.

use memchr::memmem::Finder;

/// RFC 2046 limits a boundary to 70 characters.
const MAX_BOUNDARY: usize = 70;

/// One part: its field name, its file names (`filename` and RFC 5987's `filename*`)
/// when it is an upload, and its content.
pub struct Part<'a> {
    pub name: &'a [u8],
    pub filenames: [Option<&'a [u8]>; 2],
    pub content: &'a [u8],
}

impl Part<'_> {
    pub fn is_file(&self) -> bool {
        self.filenames.iter().any(Option::is_some)
    }

    /// Whether its content is a field's value to some framework: it has no plain
    /// `filename` (PHP ignores `filename*` and hands such a part over as a field).
    pub fn may_be_field(&self) -> bool {
        self.filenames[0].is_none()
    }
}

/// The boundary a `multipart/...` content type names (case kept: it is compared as
/// bytes), or None for any other type. Read in place, without a lower-cased copy: every
/// request with a body asks. Only a parameter named `boundary` counts (not the tail of
/// `xboundary=`), and two that differ name none: frameworks differ on which they take.
pub fn boundary(content_type: &str) -> Option<&str> {
    let ct = content_type.trim_start();
    if !ct.get(..10)?.eq_ignore_ascii_case("multipart/") {
        return None;
    }
    let mut found: Option<&[u8]> = None;
    for (key, value) in params(ct.as_bytes()) {
        if key.eq_ignore_ascii_case(b"boundary") {
            if found.is_some_and(|f| f != value) {
                return None;
            }
            found = Some(value);
        }
    }
    let b = std::str::from_utf8(found?).ok()?;
    (!b.is_empty() && b.len() <= MAX_BOUNDARY).then_some(b)
}

/// Each part of `body` in order; nothing when the first delimiter is not there.
pub fn parts<'a>(body: &'a [u8], boundary: &str, mut each: impl FnMut(Part<'a>)) {
    let delimiter = [b"--", boundary.as_bytes()].concat();
    let finder = Finder::new(&delimiter);
    // A delimiter starts a line (or the body).
    let next = |from: usize| -> Option<usize> {
        let mut at = from;
        loop {
            let i = at + finder.find(body.get(at..)?)?;
            if i == 0 || body[i - 1] == b'\n' {
                return Some(i);
            }
            at = i + 1;
        }
    };
    let Some(mut at) = next(0) else {
        return;
    };
    loop {
        let after = at + delimiter.len();
        // `--boundary--` closes the body.
        if body.get(after..after + 2) == Some(b"--") {
            return;
        }
        let Some(eol) = body.get(after..).and_then(|r| memchr::memchr(b'\n', r)) else {
            return;
        };
        let mut p = after + eol + 1;
        let (mut name, mut filenames) = (&b""[..], [None, None]);
        // Only its first Content-Disposition counts, as PHP, busboy, Werkzeug and Go
        // read it: a second that adds a file name must not hide a field's value.
        let mut disposition = false;
        // The part's header lines, up to a blank one.
        loop {
            let Some(le) = memchr::memchr(b'\n', &body[p..]) else {
                return;
            };
            let line = &body[p..p + le];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            p += le + 1;
            if line.is_empty() {
                break;
            }
            if let Some((n, v)) = super::http::field(line)
                && n.eq_ignore_ascii_case(b"content-disposition")
                && !std::mem::replace(&mut disposition, true)
            {
                for (key, value) in params(v) {
                    match key.to_ascii_lowercase().as_slice() {
                        b"name" => name = value,
                        b"filename" => filenames[0] = Some(value),
                        b"filename*" => filenames[1] = Some(ext_value(value)),
                        _ => {}
                    }
                }
            }
        }
        let end = next(p);
        let mut content = &body[p..end.unwrap_or(body.len())];
        if end.is_some() {
            // The line end before a delimiter belongs to the delimiter.
            content = content.strip_suffix(b"\n").unwrap_or(content);
            content = content.strip_suffix(b"\r").unwrap_or(content);
        }
        each(Part {
            name,
            filenames,
            content,
        });
        match end {
            Some(e) => at = e,
            None => return,
        }
    }
}

/// `form-data; name="a"; filename="b"`: the parameters after the first `;`, quoted
/// values without their quotes. A backslash is kept as it is: browsers escape a quote
/// in a file name as `%22`, and `..\x` must reach the detectors as sent.
fn params(v: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut rest = memchr::memchr(b';', v).map_or(&b""[..], |i| &v[i + 1..]);
    std::iter::from_fn(move || {
        loop {
            rest = rest.trim_ascii_start();
            if rest.is_empty() {
                return None;
            }
            let eq = rest.iter().position(|&c| c == b'=' || c == b';');
            let Some(eq) = eq.filter(|&i| rest[i] == b'=') else {
                // A parameter without a value: skipped.
                rest = eq.map_or(&b""[..], |i| &rest[i + 1..]);
                continue;
            };
            let key = rest[..eq].trim_ascii();
            let after = &rest[eq + 1..];
            let (value, tail) = match after.strip_prefix(b"\"") {
                Some(q) => match memchr::memchr(b'"', q) {
                    Some(i) => (&q[..i], &q[i + 1..]),
                    None => (q, &b""[..]),
                },
                None => match memchr::memchr(b';', after) {
                    Some(i) => (after[..i].trim_ascii(), &after[i..]),
                    None => (after.trim_ascii(), &b""[..]),
                },
            };
            rest = memchr::memchr(b';', tail).map_or(&b""[..], |i| &tail[i + 1..]);
            return Some((key, value));
        }
    })
}

/// RFC 5987 `charset'language'value`: the value (still percent-encoded; the
/// detectors decode it).
fn ext_value(v: &[u8]) -> &[u8] {
    let mut quotes = v.iter().enumerate().filter(|(_, c)| **c == b'\'');
    match (quotes.next(), quotes.next()) {
        (Some(_), Some((i, _))) => &v[i + 1..],
        _ => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(body: &[u8], b: &str) -> Vec<(String, Vec<String>, String)> {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut out = Vec::new();
        parts(body, b, |p| {
            out.push((
                s(p.name),
                p.filenames.iter().flatten().map(|f| s(f)).collect(),
                s(p.content),
            ))
        });
        out
    }

    #[test]
    fn boundaries() {
        assert_eq!(
            boundary("multipart/form-data; boundary=----WebKitFormBoundaryAbC"),
            Some("----WebKitFormBoundaryAbC")
        );
        assert_eq!(
            boundary("Multipart/Form-Data; BOUNDARY=\"a b;c\"; charset=utf-8"),
            Some("a b;c")
        );
        assert_eq!(boundary("application/x-www-form-urlencoded"), None);
        assert_eq!(boundary("multipart/form-data"), None);
        assert_eq!(boundary("multipart/form-data; boundary="), None);
        assert_eq!(
            boundary(&format!("multipart/mixed; boundary={}", "x".repeat(71))),
            None
        );
    }

    #[test]
    fn fields_and_files_with_either_line_end() {
        for eol in ["\r\n", "\n"] {
            let body = [
                "--XyZ",
                "Content-Disposition: form-data; name=\"q\"",
                "",
                "1' OR '1'='1",
                "--XyZ",
                "content-disposition: form-data; name=upload; filename=\"..\\1.7z\"",
                "Content-Type: application/octet-stream",
                "",
                "BINARY",
                "DATA",
                "--XyZ",
                "Content-Disposition: form-data; name=\"f\"; filename*=UTF-8''%2e%2e%2fx",
                "",
                "",
                "--XyZ--",
                "",
            ]
            .join(eol);
            let got = all(body.as_bytes(), "XyZ");
            let bin = format!("BINARY{eol}DATA");
            assert_eq!(
                got,
                vec![
                    ("q".into(), vec![], "1' OR '1'='1".into()),
                    ("upload".into(), vec!["..\\1.7z".into()], bin),
                    ("f".into(), vec!["%2e%2e%2fx".into()], "".into()),
                ]
            );
        }
    }

    #[test]
    fn a_prefix_ends_inside_a_part() {
        let body =
            b"preamble\r\n--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue cut he";
        assert_eq!(
            all(body, "b"),
            vec![("a".into(), vec![], "value cut he".into())]
        );
        // Inside the headers: no part.
        assert!(all(b"--b\r\nContent-Disposition: form-da", "b").is_empty());
        // The boundary inside a line is content, not a delimiter.
        let body = b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx--b y\r\n--b--";
        assert_eq!(all(body, "b"), vec![("a".into(), vec![], "x--b y".into())]);
    }

    proptest::proptest! {
        /// Bodies of delimiters, header fragments and line ends in any order: the
        /// parser never panics, and every part's content is a slice of the body.
        #[test]
        fn never_panics(pieces in proptest::collection::vec(proptest::sample::select(vec![
            "--b", "--b--", "\r\n", "\n", "\r", "Content-Disposition:", " form-data", ";",
            " name=", "\"", "filename=", "filename*=", "'", "=", "x", "--", "b",
        ]), 0..40)) {
            let body = pieces.concat();
            parts(body.as_bytes(), "b", |p| {
                let range = body.as_bytes().as_ptr_range();
                assert!(p.content.is_empty() || range.contains(&p.content.as_ptr()));
            });
        }
    }

    #[test]
    fn no_delimiter_no_parts() {
        assert!(all(b"just text", "b").is_empty());
        assert!(all(b"", "b").is_empty());
    }
}
