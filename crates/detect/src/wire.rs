//! Small readers over untrusted bytes that every protocol check shares. Each returns
//! `None` when the bytes are too short, so no check ever indexes out of bounds.

use bulkhead_policy::l7::AppProtocol;
use serde_json::Value;

use crate::{Check, Detail};

pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

pub(crate) fn be24(b: &[u8], at: usize) -> Option<usize> {
    let s = b.get(at..at.checked_add(3)?)?;
    Some(usize::from(s[0]) << 16 | usize::from(s[1]) << 8 | usize::from(s[2]))
}

pub(crate) fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

pub(crate) fn le24(b: &[u8], at: usize) -> Option<usize> {
    let s = b.get(at..at.checked_add(3)?)?;
    Some(usize::from(s[0]) | usize::from(s[1]) << 8 | usize::from(s[2]) << 16)
}

pub(crate) fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Printable ASCII (and space) only.
pub(crate) fn printable(b: &[u8]) -> bool {
    b.iter().all(|c| (0x20..0x7f).contains(c))
}

/// Text as protocols carry it in commands and queries: printable plus tab and line ends.
pub(crate) fn text_like(b: &[u8]) -> bool {
    b.iter()
        .all(|&c| c >= 0x20 && c != 0x7f || matches!(c, b'\t' | b'\n' | b'\r'))
}

/// One CRLF-terminated line at `at`: (line, index after the CRLF). None if incomplete.
pub(crate) fn crlf_line(b: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = b.get(at..)?;
    let i = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..i], at + i + 2))
}

/// The first LF-terminated line, without its CR. None if incomplete.
pub(crate) fn first_line(b: &[u8]) -> Option<&[u8]> {
    let i = b.iter().position(|&c| c == b'\n')?;
    Some(b[..i].strip_suffix(b"\r").unwrap_or(&b[..i]))
}

/// A decimal integer written as text.
pub(crate) fn decimal(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

pub(crate) fn lossy(b: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(b).into_owned())
}

/// A detail object from (key, value) pairs; null values are left out.
pub(crate) fn detail<const N: usize>(pairs: [(&str, Value); N]) -> Detail {
    pairs
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

pub(crate) fn yes(app: AppProtocol, d: Detail) -> Check {
    Check::Yes(app, d)
}

/// `More` while `b` is a prefix of `magic`, `No` once it departs from it. For callers
/// that have fewer bytes than `magic`.
pub(crate) fn prefix_of(b: &[u8], magic: &[u8]) -> Check {
    if magic.starts_with(b) {
        Check::More
    } else {
        Check::No
    }
}
