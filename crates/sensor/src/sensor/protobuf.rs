//! gRPC request bodies for the sensors: length-prefixed messages (gRPC's framing over
//! HTTP/2, and gRPC-Web's), each read in protobuf's wire format without a schema. Every
//! length-delimited field that reads as text is a value, named by its field numbers from
//! the outer message in (`1.2`: field 2 of the message in field 1); one that reads as a
//! whole message is walked into; numbers and bytes that are neither are skipped. This is
//! where an injection sits in a gRPC call (`GetUser{name: "1' OR '1'='1"}`).
//!
//! Written by hand: a schema-less walk over the wire format is a few dozen lines, where
//! the protobuf crates decode into generated types the proxy does not have.

/// Nesting followed; deeper messages are not read (protobuf's own default limit is 100).
const MAX_DEPTH: usize = 32;

/// Calls `f(path, text)` for every text field of every message in a gRPC body, and
/// `whole(message)` for each message of a `+json` body. False when `body` does not start
/// as gRPC framing of uncompressed messages (the caller then judges it as one value);
/// a body cut short (the sensors read a bounded prefix) is read as far as it goes.
pub fn grpc_messages(body: &[u8], mut each: impl FnMut(&[u8])) -> bool {
    let mut at = 0;
    let mut any = false;
    while let Some(h) = body.get(at..at + 5) {
        // Flag: bit 0 compressed (not readable here), bit 7 gRPC-Web's trailers frame.
        if h[0] & 0x01 != 0 || h[0] & !0x81 != 0 {
            return false;
        }
        let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
        let end = (at + 5).saturating_add(len).min(body.len());
        if h[0] & 0x80 == 0 {
            each(&body[at + 5..end]);
        }
        any = true;
        at = end;
    }
    any
}

/// Every text field of one protobuf message (as far as it parses), with its path.
pub fn strings(msg: &[u8], f: &mut impl FnMut(&str, &[u8])) {
    walk(msg, &mut String::new(), 0, f);
}

/// One field: its number and what it holds (a length-delimited payload, or nothing
/// for numbers); None when the bytes are no field.
fn field(b: &[u8], at: &mut usize) -> Option<(u64, Option<std::ops::Range<usize>>)> {
    let key = varint(b, at)?;
    let number = key >> 3;
    if number == 0 || number > (1 << 29) - 1 {
        return None;
    }
    let payload = match key & 7 {
        0 => {
            varint(b, at)?;
            None
        }
        1 => {
            *at = at.checked_add(8).filter(|&e| e <= b.len())?;
            None
        }
        5 => {
            *at = at.checked_add(4).filter(|&e| e <= b.len())?;
            None
        }
        2 => {
            let len = usize::try_from(varint(b, at)?).ok()?;
            let start = *at;
            *at = start.checked_add(len).filter(|&e| e <= b.len())?;
            Some(start..*at)
        }
        // Groups (deprecated) and wire types 6 and 7 do not occur in what we read.
        _ => return None,
    };
    Some((number, payload))
}

fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Does `b` parse, whole, as a message (at least one field)?
fn is_message(b: &[u8], depth: usize) -> bool {
    if b.is_empty() || depth > MAX_DEPTH {
        return false;
    }
    let mut at = 0;
    while at < b.len() {
        if field(b, &mut at).is_none() {
            return false;
        }
    }
    true
}

/// Text as an application would take a `string` field: UTF-8 without control
/// characters other than blanks and line breaks.
fn is_text(b: &[u8]) -> bool {
    std::str::from_utf8(b).is_ok_and(|s| {
        !s.chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    })
}

fn walk(b: &[u8], path: &mut String, depth: usize, f: &mut impl FnMut(&str, &[u8])) {
    let mut at = 0;
    while at < b.len() {
        let Some((number, payload)) = field(b, &mut at) else {
            return;
        };
        let Some(r) = payload else { continue };
        let v = &b[r];
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(&number.to_string());
        // Text first: a short string can also parse as a message by accident, a
        // message almost never reads as text (its keys and lengths are control bytes).
        if is_text(v) {
            f(path, v);
        } else if is_message(v, depth + 1) {
            walk(v, path, depth + 1, f);
        }
        path.truncate(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ld(number: u8, v: &[u8]) -> Vec<u8> {
        [vec![number << 3 | 2, v.len() as u8], v.to_vec()].concat()
    }

    fn all(msg: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        strings(msg, &mut |p, v| {
            out.push((p.to_string(), String::from_utf8_lossy(v).into_owned()))
        });
        out
    }

    #[test]
    fn text_fields_with_their_paths_numbers_skipped() {
        // GetUser { id: 7 (varint), name: "...", address: { city: "Paris", zip: 75001 } }
        let address = [ld(1, b"Paris"), vec![2 << 3, 0xe9, 0xca, 0x04]].concat();
        let msg = [
            vec![1 << 3, 7],
            ld(2, b"1' OR '1'='1"),
            ld(3, &address),
            vec![4 << 3 | 5, 0, 0, 0x80, 0x3f],
        ]
        .concat();
        assert_eq!(
            all(&msg),
            [
                ("2".to_string(), "1' OR '1'='1".to_string()),
                ("3.1".to_string(), "Paris".to_string())
            ]
        );
    }

    #[test]
    fn grpc_framing() {
        let m1 = ld(1, b"bob");
        let m2 = ld(1, b"alice");
        let body = [
            vec![0, 0, 0, 0, m1.len() as u8],
            m1.clone(),
            vec![0, 0, 0, 0, m2.len() as u8],
            m2,
        ]
        .concat();
        let mut seen = Vec::new();
        assert!(grpc_messages(&body, |m| seen.push(m.to_vec())));
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], m1);
        // Cut short: the part there is.
        let mut seen = Vec::new();
        assert!(grpc_messages(&body[..9], |m| seen.push(m.to_vec())));
        assert_eq!(seen, [m1[..4].to_vec()]);
        // Compressed, or not gRPC at all.
        assert!(!grpc_messages(&[1, 0, 0, 0, 1, 0], |_| {}));
        assert!(!grpc_messages(b"user=bob", |_| {}));
        assert!(!grpc_messages(b"", |_| {}));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = all(&b);
            let _ = grpc_messages(&b, |m| { let _ = all(m); });
        }

        /// Deep nesting stops at the limit instead of recursing on.
        #[test]
        fn deep_nesting_is_bounded(depth in 0usize..200) {
            let mut m = ld(1, b"x");
            for _ in 0..depth.min(120) {
                let mut outer = vec![1 << 3 | 2];
                let mut n = m.len();
                while n >= 0x80 { outer.push((n as u8 & 0x7f) | 0x80); n >>= 7; }
                outer.push(n as u8);
                outer.extend(m);
                m = outer;
            }
            let _ = all(&m);
        }
    }
}
