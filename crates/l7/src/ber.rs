//! The subset of BER that LDAP uses (RFC 4511 section 5.1): one-byte tags, definite
//! lengths only, long-form lengths of at most four bytes.

/// Why an element could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ber {
    /// The bytes end inside it.
    More,
    /// It is not valid LDAP BER.
    Bad(&'static str),
}

/// One element's header: its tag and where its content starts and ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tlv {
    pub tag: u8,
    pub start: usize,
    pub end: usize,
}

/// The header of the element at `at`, whose content must end by `limit` (the end of
/// the element that holds it). The content itself need not be present yet.
pub(crate) fn header(b: &[u8], at: usize, limit: usize) -> Result<Tlv, Ber> {
    if at >= limit {
        return Err(Ber::Bad("element missing"));
    }
    let tag = *b.get(at).ok_or(Ber::More)?;
    if tag & 0x1f == 0x1f {
        // LDAP defines no high tag numbers; accepting them would only widen what a
        // hostile peer can make us parse.
        return Err(Ber::Bad("multi-byte tag"));
    }
    let first = *b.get(at + 1).ok_or(Ber::More)?;
    let (len, start) = if first < 0x80 {
        (usize::from(first), at + 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 {
            return Err(Ber::Bad("indefinite length"));
        }
        if n > 4 {
            return Err(Ber::Bad("length longer than four bytes"));
        }
        let mut len = 0usize;
        for i in 0..n {
            len = len << 8 | usize::from(*b.get(at + 2 + i).ok_or(Ber::More)?);
        }
        (len, at + 2 + n)
    };
    let end = start.checked_add(len).ok_or(Ber::Bad("length overflow"))?;
    if end > limit {
        return Err(Ber::Bad("element overruns what holds it"));
    }
    Ok(Tlv { tag, start, end })
}

/// The content of the element at `at` with tag `tag`, all of it present.
pub(crate) fn content(b: &[u8], at: usize, limit: usize, tag: u8) -> Result<(&[u8], usize), Ber> {
    let t = header(b, at, limit)?;
    if t.tag != tag {
        return Err(Ber::Bad("unexpected tag"));
    }
    let c = b.get(t.start..t.end).ok_or(Ber::More)?;
    Ok((c, t.end))
}

/// Append the element `tag`, `content` to `out` (shortest length form).
pub(crate) fn put(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|&&x| x == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

/// The element `tag`, `content`.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(content.len() + 6);
    put(&mut v, tag, content);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_short_long_and_refused() {
        assert_eq!(
            header(b"\x04\x03abc", 0, 5),
            Ok(Tlv {
                tag: 4,
                start: 2,
                end: 5
            })
        );
        assert_eq!(header(b"\x30\x82\x01\x00", 0, 1000).map(|t| t.end), Ok(260));
        assert_eq!(header(b"\x30\x82\x01", 0, 1000), Err(Ber::More));
        assert_eq!(
            header(b"\x30\x80", 0, 10),
            Err(Ber::Bad("indefinite length"))
        );
        assert!(matches!(
            header(b"\x30\x85\0\0\0\0\x01", 0, 99),
            Err(Ber::Bad(_))
        ));
        assert!(matches!(header(b"\x04\x05abc", 0, 4), Err(Ber::Bad(_))));
    }

    #[test]
    fn encoding_round_trips() {
        for n in [0, 1, 127, 128, 255, 256, 70_000] {
            let v = tlv(0x04, &vec![7; n]);
            let t = header(&v, 0, v.len()).unwrap();
            assert_eq!((t.tag, t.end - t.start, t.end), (0x04, n, v.len()));
        }
    }
}
