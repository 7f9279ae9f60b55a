//! memcached: text commands (with their argument shapes checked), the binary
//! protocol's 24-byte request and response headers, and mid-connection the text
//! protocol's multi-line answers (`VALUE` blocks, `STAT` lines).

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

/// STAT lines that prove a statistics answer.
const STATS: usize = 2;

/// Mid-connection, from the server: answers to text commands the capture did not see.
/// A `VALUE <key> <flags> <bytes> [<cas>]` block whose data is exactly `<bytes>` long
/// and is followed by `END` or the next `VALUE`, or [`STATS`] lines of `STAT <name>
/// <value>` (the answer to `stats`). One-line answers (`STORED`, `END`) are too
/// common in other protocols' text to say anything.
pub(crate) fn replies(b: &[u8]) -> Check {
    let (mut at, mut stats) = (0, 0);
    loop {
        let Some((l, next)) = crlf_line(b, at) else {
            let rest = &b[at..];
            let prefix =
                |w: &[u8]| rest.len() < 512 && (w.starts_with(rest) || rest.starts_with(w));
            return if printable(rest.strip_suffix(b"\r").unwrap_or(rest))
                && (prefix(b"VALUE ") || prefix(b"STAT ") || (at > 0 && prefix(b"END")))
            {
                Check::More
            } else {
                Check::No
            };
        };
        let words: Vec<&[u8]> = l.split(|&c| c == b' ').collect();
        match words.first().copied() {
            Some(b"STAT") if words.len() >= 3 && printable(l) && stat_name(words[1]) => {
                stats += 1;
                if stats >= STATS {
                    return yes(AppProtocol::Memcached, detail([("reply", json!("STAT"))]));
                }
                at = next;
            }
            Some(b"VALUE") if stats == 0 && (4..=5).contains(&words.len()) && printable(l) => {
                return value_block(b, &words, next);
            }
            _ => return Check::No,
        }
    }
}

/// A `VALUE <key> <flags> <bytes> [<cas>]` line (`words`, ending at `next`): its data
/// must be `<bytes>` long, then CR LF, then `END` or the next `VALUE`.
fn value_block(b: &[u8], words: &[&[u8]], next: usize) -> Check {
    let numbers = words[2..]
        .iter()
        .all(|w| decimal(w).is_some_and(|n| n >= 0));
    let Some(n) = decimal(words[3]).and_then(|n| usize::try_from(n).ok()) else {
        return Check::No;
    };
    if !numbers || words[1].is_empty() || words[1].len() > MAX_KEY {
        return Check::No;
    }
    let end = next.saturating_add(n);
    match b.get(end..end.saturating_add(2)) {
        Some(b"\r\n") => {}
        Some(_) => return Check::No,
        None if b.len() < end + 2 && n <= 1 << 20 => return Check::More,
        None => return Check::No,
    }
    let after = &b[end + 2..];
    match crlf_line(after, 0) {
        Some((l, _)) if l == b"END" || l.starts_with(b"VALUE ") => yes(
            AppProtocol::Memcached,
            detail([
                ("reply", json!("VALUE")),
                ("key", json!(String::from_utf8_lossy(words[1]))),
            ]),
        ),
        Some(_) => Check::No,
        None => {
            let a = after.strip_suffix(b"\r").unwrap_or(after);
            if b"END".starts_with(a) || b"VALUE ".starts_with(a) || a.starts_with(b"VALUE ") {
                Check::More
            } else {
                Check::No
            }
        }
    }
}

/// A statistic's name: `pid`, `curr_connections`, `1:chunk_size` (per slab class).
fn stat_name(w: &[u8]) -> bool {
    !w.is_empty()
        && w.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
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

/// memcached over UDP: each datagram opens with an 8-byte frame header (request id,
/// sequence number, datagrams in the message, two reserved zero bytes; protocol.txt
/// "UDP protocol"). A request fits in one datagram.
fn udp_frame(b: &[u8], request: bool) -> Option<&[u8]> {
    let (seq, total, reserved) = (be16(b, 2)?, be16(b, 4)?, be16(b, 6)?);
    let ok = reserved == 0 && seq < total && (!request || (seq == 0 && total == 1));
    ok.then(|| &b[8..])
}

/// A client's datagram: the frame header, then one whole text command or binary
/// request.
pub(crate) fn udp_request(b: &[u8]) -> Check {
    match udp_frame(b, true).map(request) {
        Some(c @ Check::Yes(..)) => c,
        _ => Check::No,
    }
}

/// A server's datagram: the frame header, then (the first part of) an answer: a binary
/// response, `VALUE` blocks or `STAT` lines, or `VERSION`.
pub(crate) fn udp_response(b: &[u8]) -> Check {
    let Some(body) = udp_frame(b, false) else {
        return Check::No;
    };
    if body.starts_with(b"VERSION ") && crlf_line(body, 0).is_some_and(|(l, _)| printable(l)) {
        return yes(
            AppProtocol::Memcached,
            detail([("reply", json!("VERSION"))]),
        );
    }
    match response(body) {
        c @ Check::Yes(..) => c,
        // A long answer is cut across datagrams: its first part is enough.
        _ => match replies(body) {
            c @ Check::Yes(..) => c,
            Check::More if body.starts_with(b"VALUE ") || body.starts_with(b"STAT ") => {
                yes(AppProtocol::Memcached, detail([("reply", json!("VALUE"))]))
            }
            _ => Check::No,
        },
    }
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

    #[test]
    fn text_replies_mid_connection() {
        let stats = b"STAT pid 8837\r\nSTAT uptime 193\r\nSTAT time 1534343744\r\n";
        assert!(matches!(replies(stats), Check::Yes(..)));
        let value = b"VALUE user:42 0 5\r\nhello\r\nEND\r\n";
        match replies(value) {
            Check::Yes(_, d) => assert_eq!(d["key"], "user:42"),
            c => panic!("{c:?}"),
        }
        for n in 0..value.len() {
            assert_eq!(replies(&value[..n]), Check::More, "{n}");
        }
        // The data must be as long as announced; one STAT line is not enough.
        assert_eq!(replies(b"VALUE k 0 4\r\nhello\r\nEND\r\n"), Check::No);
        assert_eq!(replies(b"STAT pid 1\r\nUSER bob\r\n"), Check::No);
        assert_eq!(replies(b"STORED\r\n"), Check::No);
        assert_eq!(replies(b"VALUE of the week\r\n"), Check::No);
    }
}
