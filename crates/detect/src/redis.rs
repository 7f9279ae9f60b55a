//! Redis: RESP2/RESP3 requests (an array of bulk strings naming a command), inline
//! commands, and replies.
//!
//! Hand-written: `redis-protocol` decodes whole frames, but detection must also say
//! "a valid prefix, wait" and judge a command name before its arguments arrive.

use bulkhead_policy::l7::AppProtocol;
use serde_json::json;

use crate::Check;
use crate::wire::{crlf_line, decimal, detail, printable, yes};

/// Commands Redis clients send inline (telnet style): an inline line must name one of
/// these to count as Redis, since any text protocol has lines. (The socket path applies
/// the same test to a connection's first line: `bulkhead-sockops`.)
pub const INLINE: &[&str] = &[
    "PING",
    "AUTH",
    "HELLO",
    "ECHO",
    "INFO",
    "SELECT",
    "QUIT",
    "GET",
    "SET",
    "DEL",
    "KEYS",
    "EXISTS",
    "INCR",
    "DECR",
    "FLUSHALL",
    "FLUSHDB",
    "CONFIG",
    "CLIENT",
    "MONITOR",
    "SUBSCRIBE",
    "PUBLISH",
    "LPUSH",
    "RPUSH",
    "LRANGE",
    "HGET",
    "HSET",
    "HGETALL",
    "SCAN",
    "TYPE",
    "TTL",
    "DBSIZE",
    "SLAVEOF",
    "REPLICAOF",
    "SAVE",
];

/// A RESP array of bulk strings whose first element is a command name, or an inline
/// command.
pub(crate) fn request(b: &[u8]) -> Check {
    match b.first() {
        None => return Check::More,
        Some(b'*') => {}
        Some(_) => return inline(b),
    }
    let Some((head, at)) = crlf_line(b, 0) else {
        let digits = b[1..].strip_suffix(b"\r").unwrap_or(&b[1..]);
        return if b.len() < 16 && digits.iter().all(u8::is_ascii_digit) {
            Check::More
        } else {
            Check::No
        };
    };
    let Some(n) = decimal(&head[1..]).filter(|n| (1..=1_048_576).contains(n)) else {
        return Check::No;
    };
    let Some((len_line, start)) = crlf_line(b, at) else {
        let rest = &b[at..];
        return if rest.len() < 16
            && rest.first().is_none_or(|&c| c == b'$')
            && rest
                .iter()
                .skip(1)
                .all(|c| c.is_ascii_digit() || *c == b'\r')
        {
            Check::More
        } else {
            Check::No
        };
    };
    let Some(len) = len_line
        .strip_prefix(b"$")
        .and_then(decimal)
        .filter(|l| (1..=64).contains(l))
    else {
        return Check::No;
    };
    let len = len as usize;
    let Some(cmd) = b.get(start..start + len) else {
        return Check::More;
    };
    let end = b.get(start + len..(start + len + 2).min(b.len()));
    if end.is_some_and(|e| !b"\r\n".starts_with(e)) {
        return Check::No;
    }
    if !cmd
        .iter()
        .all(|c| c.is_ascii_alphabetic() || matches!(c, b'|' | b'-' | b'_'))
    {
        return Check::No;
    }
    yes(
        AppProtocol::Redis,
        detail([
            (
                "command",
                json!(String::from_utf8_lossy(cmd).to_ascii_uppercase()),
            ),
            ("arguments", json!(n - 1)),
        ]),
    )
}

fn inline(b: &[u8]) -> Check {
    let Some((l, _)) = crlf_line(b, 0) else {
        let word = b.iter().take_while(|c| c.is_ascii_alphabetic()).count();
        let up = String::from_utf8_lossy(&b[..word]).to_ascii_uppercase();
        let prefix = b.len() == word && b.len() <= 10 && INLINE.iter().any(|c| c.starts_with(&up));
        return if prefix { Check::More } else { Check::No };
    };
    let word = l.split(|&c| c == b' ').next().unwrap_or_default();
    let up = String::from_utf8_lossy(word).to_ascii_uppercase();
    // `GET /path HTTP/1.1` is an HTTP request line, not an inline GET.
    let http = l
        .rsplit(|&c| c == b' ')
        .next()
        .is_some_and(|w| w.starts_with(b"HTTP/"));
    // `HELLO` takes a protocol version (`HELLO 3`), not a word: `HELLO WORLD` is some
    // other protocol's greeting.
    let hello_word = up == "HELLO"
        && l.split(|&c| c == b' ')
            .nth(1)
            .is_some_and(|a| !a.is_empty() && !a.iter().all(u8::is_ascii_digit));
    if !printable(l) || !INLINE.contains(&up.as_str()) || http || hello_word {
        return Check::No;
    }
    yes(
        AppProtocol::Redis,
        detail([("command", json!(up)), ("inline", json!(true))]),
    )
}

/// Do these bytes, from the other side of a connection thought to be Redis, say it is
/// not? A whole first line of text that no Redis peer writes: neither RESP nor a
/// command Redis clients send inline (`USER bob`, `CAPA`), or a numbered status line
/// (`220 ...`, `331 ...`: FTP, SMTP, NNTP).
pub(crate) fn contradicted(b: &[u8]) -> bool {
    let Some((l, _)) = crlf_line(b, 0) else {
        return false;
    };
    if l.is_empty() || !printable(l) || TYPES.contains(&l[0]) {
        return false;
    }
    let word = l.split(|&c| c == b' ').next().unwrap_or_default();
    let numbered = word.len() == 3 && word.iter().all(u8::is_ascii_digit);
    let command = word.iter().all(u8::is_ascii_alphabetic)
        && INLINE.contains(&String::from_utf8_lossy(word).to_ascii_uppercase().as_str());
    numbered || !command
}

/// The first byte of every RESP2/RESP3 element.
const TYPES: &[u8] = b"+-:$*%_,#~>|(=!";

/// Is `body` what an element line of type `t` (one of [`TYPES`]) may hold?
fn element_line(t: u8, body: &[u8]) -> bool {
    match t {
        b'+' => !body.is_empty() && printable(body),
        // Errors start with an upper-case code: ERR, WRONGTYPE, NOAUTH, NOPERM...
        b'-' => body.len() >= 3 && body[..3].iter().all(u8::is_ascii_uppercase) && printable(body),
        b'_' => body.is_empty(),
        b'#' => body == b"t" || body == b"f",
        b',' | b'(' => !body.is_empty() && printable(body),
        // Integers, and the lengths of bulk strings and aggregates (-1: null).
        _ => decimal(body).is_some_and(|n| n >= -1),
    }
}

/// A RESP2/RESP3 reply's first line.
pub(crate) fn reply(b: &[u8]) -> Check {
    let Some(&t) = b.first() else {
        return Check::More;
    };
    if !TYPES.contains(&t) {
        return Check::No;
    }
    let Some((l, _)) = crlf_line(b, 0) else {
        let body = b[1..].strip_suffix(b"\r").unwrap_or(&b[1..]);
        return if b.len() < 64 && printable(body) {
            Check::More
        } else {
            Check::No
        };
    };
    if element_line(t, &l[1..]) {
        yes(
            AppProtocol::Redis,
            detail([("reply", json!(char::from(t).to_string()))]),
        )
    } else {
        Check::No
    }
}

/// Whole RESP elements in a row, at least two of them bulk strings of the announced
/// length, that prove a resynchronised stream.
const RESYNC_ELEMENTS: usize = 6;
/// Line ends tried as the first element boundary (a bulk string's data may hold some).
const RESYNC_STARTS: usize = 4;

/// Mid-connection, bytes that begin inside a message (a capture started during a large
/// reply or pipeline): from the start or just after one of the first line ends, a run
/// of whole RESP2/RESP3 elements, each a valid type line, bulk strings exactly as long
/// as they say. Either side: requests are RESP too.
pub(crate) fn resync(b: &[u8]) -> Check {
    let mut start = 0;
    let mut more = false;
    for _ in 0..=RESYNC_STARTS {
        match elements(b, start) {
            Check::No => {}
            Check::More => more = true,
            c => return c,
        }
        match crlf_line(b, start) {
            Some((_, next)) if next < 2048 => start = next,
            _ => break,
        }
    }
    if more { Check::More } else { Check::No }
}

/// [`resync`] from one candidate boundary.
fn elements(b: &[u8], mut at: usize) -> Check {
    let (mut whole, mut bulks) = (0, 0);
    while whole < RESYNC_ELEMENTS || bulks < 2 {
        let Some((l, next)) = crlf_line(b, at) else {
            // Nothing yet from this boundary, or an element line still coming.
            let started = whole > 0 || b.get(at).is_some_and(|t| TYPES.contains(t));
            return if started && b.len() - at < 512 {
                Check::More
            } else {
                Check::No
            };
        };
        let Some((&t, body)) = l.split_first() else {
            return Check::No;
        };
        if !TYPES.contains(&t) || !element_line(t, body) {
            return Check::No;
        }
        let n = decimal(body);
        at = next;
        if matches!(t, b'$' | b'=' | b'!') && n.is_some_and(|n| n >= 0) {
            let end = at.saturating_add(n.unwrap_or(0) as usize);
            match b.get(end..end.saturating_add(2)) {
                Some(b"\r\n") => {}
                Some(_) => return Check::No,
                None => {
                    return if n.is_some_and(|n| n <= 1 << 20) {
                        Check::More
                    } else {
                        Check::No
                    };
                }
            }
            at = end + 2;
            bulks += 1;
        }
        whole += 1;
        if whole > 4 * RESYNC_ELEMENTS {
            return Check::No;
        }
    }
    yes(
        AppProtocol::Redis,
        detail([("resynchronised", json!(true))]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_command() {
        match request(b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n") {
            Check::Yes(AppProtocol::Redis, d) => {
                assert_eq!(d["command"], "SET");
                assert_eq!(d["arguments"], 2);
            }
            c => panic!("{c:?}"),
        }
        // The command name is enough; arguments may still be coming.
        assert!(matches!(request(b"*2\r\n$4\r\nhget\r\n$"), Check::Yes(..)));
    }

    #[test]
    fn prefixes_wait() {
        let full = b"*1\r\n$4\r\nPING\r\n";
        for n in 0..10 {
            assert_eq!(request(&full[..n]), Check::More, "{n}");
        }
    }

    #[test]
    fn inline_commands() {
        assert!(matches!(request(b"PING\r\n"), Check::Yes(..)));
        assert!(matches!(request(b"set k v\r\n"), Check::Yes(..)));
        assert_eq!(request(b"GET / HTTP/1.1\r\n"), Check::No);
        assert_eq!(request(b"HELO mail\r\n"), Check::No);
        assert!(matches!(request(b"HELLO 3\r\n"), Check::Yes(..)));
        assert_eq!(request(b"HELLO WORLD\r\n"), Check::No);
    }

    #[test]
    fn replies() {
        for r in [
            &b"+OK\r\n"[..],
            b"-ERR unknown command\r\n",
            b":42\r\n",
            b"$-1\r\n",
            b"_\r\n",
            b"%2\r\n",
        ] {
            assert!(matches!(reply(r), Check::Yes(..)), "{r:?}");
        }
        assert_eq!(reply(b"-1\r\n"), Check::No);
        assert_eq!(reply(b"+\r\n"), Check::No);
    }

    #[test]
    fn not_redis() {
        assert_eq!(request(b"*0\r\n"), Check::No);
        assert_eq!(request(b"*2\r\n$3\r\nG\x01T\r\n"), Check::No);
        assert_eq!(request(b"*2\r\n:3\r\n"), Check::No);
        assert_eq!(request(b"*2\r\n$3\r\nGETxx"), Check::No);
    }
    #[test]
    fn resync_inside_a_reply() {
        // The middle of COMMAND DOCS' reply, cut inside a bulk string.
        let b = b"key\r\n:-1\r\n$7\r\nkeystep\r\n:2\r\n$5\r\nlimit\r\n:0\r\n*0\r\n*10\r\n$13\r\nzrangebyscore\r\n";
        assert!(matches!(resync(b), Check::Yes(..)));
        // Cut short: a valid prefix.
        assert_eq!(resync(&b[..30]), Check::More);
        // A bulk string longer than announced, or lines of some other text.
        assert_eq!(
            resync(b"x\r\n$3\r\nkeys\r\n:1\r\n:2\r\n:3\r\n$1\r\na\r\nhello world\r\n"),
            Check::No
        );
        assert_eq!(
            resync(b"+added\r\n+more\r\n+lines\r\n-REMOVED\r\n+x\r\n+y\r\n+z\r\n"),
            Check::More
        );
        assert_eq!(
            resync(b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n"),
            Check::No
        );
    }
}
