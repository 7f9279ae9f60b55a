//! Masking what DLP finds in text that is kept or sent on: an event's request line
//! (`http GET /pay?card=4111...`) must not carry whole the very value its finding
//! reports masked. The text is read as sent and percent/`+`-decoded, as the sensors
//! read a query: a card written `4111%201111...` is masked where it is spelt.

use super::DlpScanner;

impl DlpScanner {
    /// `text` with each match replaced by its masked form.
    pub fn redact(&self, text: &str) -> String {
        let raw = text.as_bytes();
        // The decoded bytes, and for each the raw bytes it was read from.
        let mut decoded = Vec::with_capacity(raw.len());
        let mut from = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            let escape = (raw[i] == b'%')
                .then(|| raw.get(i + 1..i + 3))
                .flatten()
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let (byte, n) = match (escape, raw[i]) {
                (Some(b), _) => (b, 3),
                (None, b'+') => (b' ', 1),
                (None, b) => (b, 1),
            };
            decoded.push(byte);
            from.push((i, i + n));
            i += n;
        }
        let mut spans: Vec<(usize, usize, String)> = self
            .scan(&decoded)
            .into_iter()
            .filter(|f| f.len > 0)
            .map(|f| {
                let start = f.offset as usize;
                (from[start].0, from[start + f.len - 1].1, f.masked)
            })
            .collect();
        if spans.is_empty() {
            return text.to_string();
        }
        spans.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end, masked) in spans {
            if start < at {
                continue; // inside a span already masked
            }
            out.push_str(&String::from_utf8_lossy(&raw[at..start]));
            out.push_str(&masked);
            at = end;
        }
        out.push_str(&String::from_utf8_lossy(&raw[at..]));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_are_masked_where_they_are_spelt() {
        let d = DlpScanner::builtin();
        let r = d.redact("http GET /pay?card=4111111111111111&n=2 header:host=shop");
        assert!(!r.contains("4111111111111111"), "{r}");
        assert!(r.starts_with("http GET /pay?card=") && r.ends_with("&n=2 header:host=shop"));
        // Escaped and plus-separated, as forms and queries write them.
        for text in [
            "q=4111%201111%201111%201111",
            "q=4111+1111+1111+1111",
            "/cards/4111-1111-1111-1111/x",
        ] {
            let r = d.redact(text);
            assert!(
                !r.contains("1111%201111%201111") && !r.contains("1111+1111+1111"),
                "{r}"
            );
            assert!(r.contains("****"), "{text} -> {r}");
        }
        let clean = "http GET /items?page=2&ssn=no header:x=123-45";
        assert_eq!(d.redact(clean), clean);
    }

    proptest! {
        /// Any text: no panic, and text without a match comes back as it was.
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let d = DlpScanner::builtin();
            let r = d.redact(&text);
            if d.scan(text.as_bytes()).is_empty() && !text.contains('%') && !text.contains('+') {
                prop_assert_eq!(r, text);
            }
        }
    }
}
