//! memcached: text commands (with their argument shapes checked) and the binary
//! protocol's 24-byte request and response headers.

use bulkhead_policy::l7::AppProtocol;
use serde_json::json;

use crate::Check;
use crate::wire::{be16, be32, crlf_line, decimal, detail, printable, yes};

const STORE: &[&str] = &["set", "add", "replace", "append", "prepend", "cas"];
/// Commands that take at least one argument (a key, a number).
const WITH_ARGS: &[&str] = &[
    "get",
    "gets",
    "gat",
    "gats",
    "delete",
    "incr",
    "decr",
    "touch",
    "verbosity",
    "mg",
    "ms",
    "md",
    "ma",
    "me",
];
/// Commands that may come alone.
const ALONE: &[&str] = &["stats", "version", "flush_all", "quit", "mn"];
const REQUEST_MAGIC: u8 = 0x80;
const RESPONSE_MAGIC: u8 = 0x81;
/// Opcodes 0x00-0x48 are defined (get ... gatkq, SASL, ranges, touch).
const MAX_OPCODE: u8 = 0x48;
/// Keys are at most 250 bytes.
const MAX_KEY: usize = 250;

/// A text command line, or a binary-protocol request header.
pub(crate) fn request(b: &[u8]) -> Check {
    if b.first() == Some(&REQUEST_MAGIC) {
        return binary(b, REQUEST_MAGIC);
    }
    let Some((l, _)) = crlf_line(b, 0) else {
        let word = b
            .iter()
            .take_while(|c| c.is_ascii_lowercase() || **c == b'_')
            .count();
        let rest = &b[word..];
        let ok = b.len() < 512
            && printable(rest.strip_suffix(b"\r").unwrap_or(rest))
            && (word == b.len() || rest.first() == Some(&b' '))
            && word <= 9;
        return if ok { Check::More } else { Check::No };
    };
    if !printable(l) {
        return Check::No;
    }
    let words: Vec<&[u8]> = l.split(|&c| c == b' ').filter(|w| !w.is_empty()).collect();
    let Some(cmd) = words
        .first()
        .map(|w| String::from_utf8_lossy(w).into_owned())
    else {
        return Check::No;
    };
    let key_ok = |w: &&[u8]| w.len() <= MAX_KEY;
    let ok = if STORE.contains(&cmd.as_str()) {
        // <cmd> <key> <flags> <exptime> <bytes> [cas] [noreply]
        words.len() >= 5 && key_ok(&words[1]) && words[2..5].iter().all(|w| decimal(w).is_some())
    } else if WITH_ARGS.contains(&cmd.as_str()) {
        words.len() > 1 && words[1..].iter().all(key_ok)
    } else {
        ALONE.contains(&cmd.as_str()) && words.len() <= 3
    };
    if ok {
        yes(AppProtocol::Memcached, detail([("command", json!(cmd))]))
    } else {
        Check::No
    }
}

/// A binary response header from a server.
pub(crate) fn response(b: &[u8]) -> Check {
    match b.first() {
        None => Check::More,
        Some(&RESPONSE_MAGIC) => binary(b, RESPONSE_MAGIC),
        Some(_) => Check::No,
    }
}

/// magic, opcode, key length (2), extras length, data type (0), vbucket / status (2),
/// total body (4), opaque (4), cas (8).
fn binary(b: &[u8], magic: u8) -> Check {
    if b.len() < 24 {
        return if b.get(1).is_none_or(|&op| op <= MAX_OPCODE) && b.get(5).is_none_or(|&t| t == 0) {
            Check::More
        } else {
            Check::No
        };
    }
    let (opcode, key, extras, data_type) = (b[1], be16(b, 2).unwrap_or(0), b[4], b[5]);
    let status = be16(b, 6).unwrap_or(0);
    let body = be32(b, 8).unwrap_or(0) as usize;
    let status_ok = magic == REQUEST_MAGIC
        || status <= 0x08
        || (0x20..=0x24).contains(&status)
        || (0x81..=0x86).contains(&status);
    if opcode > MAX_OPCODE
        || data_type != 0
        || !status_ok
        || body > 1 << 20
        || usize::from(key) > MAX_KEY
        || usize::from(key) + usize::from(extras) > body
    {
        return Check::No;
    }
    yes(
        AppProtocol::Memcached,
        detail([("binary", json!(true)), ("opcode", json!(opcode))]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_commands() {
        for c in [
            &b"get user:42\r\n"[..],
            b"set k 0 900 5\r\nhello\r\n",
            b"stats\r\n",
            b"version\r\n",
            b"mg foo v\r\n",
        ] {
            assert!(matches!(request(c), Check::Yes(..)), "{c:?}");
        }
        assert_eq!(request(b"get"), Check::More);
        assert_eq!(request(b"set k 0 9"), Check::More);
    }

    #[test]
    fn binary_get() {
        let mut get = vec![0x80, 0x00, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 3];
        get.extend_from_slice(&[0; 12]);
        get.extend_from_slice(b"foo");
        match request(&get) {
            Check::Yes(_, d) => assert_eq!(d["binary"], true),
            c => panic!("{c:?}"),
        }
        let mut resp = get.clone();
        resp[0] = 0x81;
        assert!(matches!(response(&resp), Check::Yes(..)));
    }

    #[test]
    fn not_memcached() {
        // Store command without numbers.
        assert_eq!(request(b"set key value\r\n"), Check::No);
        assert_eq!(request(b"get\r\n"), Check::No);
        assert_eq!(request(b"GET / HTTP/1.1\r\n"), Check::No);
        // Binary with a key longer than the body.
        let mut bad = vec![0x80, 0x00, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 3];
        bad.extend_from_slice(&[0; 12]);
        assert_eq!(request(&bad), Check::No);
    }
}
