//! Data stores: Redis (RESP2/3), PostgreSQL, MySQL/MariaDB, MongoDB, memcached.

use bulkhead_policy::l7::AppProtocol;
use serde_json::{Value, json};

use crate::{Check, be32, detail, le32, printable, yes};

/// One CRLF-terminated line at `at`: (line, index after CRLF). None if incomplete.
fn line(b: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = b.get(at..)?;
    let i = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..i], at + i + 2))
}

fn number(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Commands Redis clients send inline (telnet style) often enough to matter.
const INLINE: &[&str] = &[
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
];

/// A RESP array of bulk strings whose first element is a command name, or an inline
/// command.
pub fn redis_request(b: &[u8]) -> Check {
    match b.first() {
        None => return Check::More,
        Some(b'*') => {}
        Some(_) => return redis_inline(b),
    }
    let Some((head, mut at)) = line(b, 0) else {
        return if b.len() < 16 && b[1..].iter().all(u8::is_ascii_digit) {
            Check::More
        } else {
            Check::No
        };
    };
    let Some(n) = number(&head[1..]).filter(|n| (1..=1_048_576).contains(n)) else {
        return Check::No;
    };
    let Some((len_line, start)) = line(b, at) else {
        return if b.len() - at < 16 && b.get(at).is_none_or(|&c| c == b'$') {
            Check::More
        } else {
            Check::No
        };
    };
    if len_line.first() != Some(&b'$') {
        return Check::No;
    }
    let Some(len) = number(&len_line[1..]).filter(|l| (1..=64).contains(l)) else {
        return Check::No;
    };
    at = start;
    let Some(cmd) = b.get(at..at + len as usize) else {
        return Check::More;
    };
    if b.get(at + len as usize..at + len as usize + 2)
        .is_some_and(|e| e != b"\r\n")
    {
        return Check::No;
    }
    if !cmd
        .iter()
        .all(|c| c.is_ascii_alphabetic() || *c == b'|' || *c == b'-' || *c == b'_')
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

fn redis_inline(b: &[u8]) -> Check {
    let Some((l, _)) = line(b, 0) else {
        let word: Vec<u8> = b
            .iter()
            .take_while(|c| c.is_ascii_alphabetic())
            .copied()
            .collect();
        let up = String::from_utf8_lossy(&word).to_ascii_uppercase();
        let prefix =
            b.len() == word.len() && b.len() <= 10 && INLINE.iter().any(|c| c.starts_with(&up));
        return if prefix { Check::More } else { Check::No };
    };
    let word = l.split(|&c| c == b' ').next().unwrap_or_default();
    let up = String::from_utf8_lossy(word).to_ascii_uppercase();
    // `GET /path HTTP/1.1` is an HTTP request line, not an inline GET.
    let http = l
        .rsplit(|&c| c == b' ')
        .next()
        .is_some_and(|w| w.starts_with(b"HTTP/"));
    if !printable(l) || !INLINE.contains(&up.as_str()) || http {
        return Check::No;
    }
    yes(
        AppProtocol::Redis,
        detail([("command", json!(up)), ("inline", json!(true))]),
    )
}

/// A complete RESP2/RESP3 reply's first line.
pub fn redis_reply(b: &[u8]) -> Check {
    let Some(&t) = b.first() else {
        return Check::More;
    };
    if !b"+-:$*%_,#~>|(=!".contains(&t) {
        return Check::No;
    }
    let Some((l, _)) = line(b, 0) else {
        return if b.len() < 64 && printable(&b[1..]) {
            Check::More
        } else {
            Check::No
        };
    };
    let body = &l[1..];
    let ok = match t {
        b'+' => !body.is_empty() && printable(body),
        b'-' => body.len() >= 3 && body[..3].iter().all(u8::is_ascii_uppercase) && printable(body),
        b'_' => body.is_empty(),
        b'#' => body == b"t" || body == b"f",
        b',' | b'(' => !body.is_empty() && printable(body),
        _ => number(body).is_some_and(|n| n >= -1),
    };
    if ok {
        yes(AppProtocol::Redis, detail([]))
    } else {
        Check::No
    }
}

const PG_V3: u32 = 196_608;
const PG_SSL: u32 = 80_877_103;
const PG_GSS: u32 = 80_877_104;
const PG_CANCEL: u32 = 80_877_102;

/// A StartupMessage, SSLRequest, GSSENCRequest or CancelRequest; or (mid-connection) a
/// simple Query / Parse message.
pub fn postgres_startup(b: &[u8]) -> Check {
    if b.len() < 8 {
        return if b.len() < 4 || be32(b, 0).is_some_and(|l| (8..=10_000).contains(&l)) {
            Check::More
        } else {
            pg_message(b)
        };
    }
    let (len, code) = (be32(b, 0).unwrap_or(0) as usize, be32(b, 4).unwrap_or(0));
    let pg = |what: &str, user: Value, db: Value| {
        yes(
            AppProtocol::Postgresql,
            detail([("message", json!(what)), ("user", user), ("database", db)]),
        )
    };
    match code {
        PG_SSL if len == 8 => pg("SSLRequest", Value::Null, Value::Null),
        PG_GSS if len == 8 => pg("GSSENCRequest", Value::Null, Value::Null),
        PG_CANCEL if len == 16 => pg("CancelRequest", Value::Null, Value::Null),
        PG_V3 if (9..=10_000).contains(&len) => {
            let Some(body) = b.get(8..len) else {
                return Check::More;
            };
            // key\0value\0 ... \0
            if body.last() != Some(&0) {
                return Check::No;
            }
            let parts: Vec<&[u8]> = body[..body.len() - 1].split(|&c| c == 0).collect();
            if parts.len() % 2 != 1 || !parts.iter().all(|p| printable(p)) {
                return Check::No;
            }
            let get = |k: &[u8]| {
                parts
                    .chunks(2)
                    .find(|kv| kv[0] == k && kv.len() == 2)
                    .map_or(Value::Null, |kv| json!(String::from_utf8_lossy(kv[1])))
            };
            pg("StartupMessage", get(b"user"), get(b"database"))
        }
        _ => pg_message(b),
    }
}

/// A frontend Query ('Q') or Parse ('P') message holding printable SQL.
fn pg_message(b: &[u8]) -> Check {
    let Some(&t) = b.first() else {
        return Check::More;
    };
    if t != b'Q' && t != b'P' {
        return Check::No;
    }
    let Some(len) = be32(b, 1) else {
        return Check::More;
    };
    let len = len as usize;
    if !(5..=1 << 24).contains(&len) {
        return Check::No;
    }
    let Some(body) = b.get(5..1 + len) else {
        return if printable_sql(&b[5.min(b.len())..]) {
            Check::More
        } else {
            Check::No
        };
    };
    let sql = if t == b'Q' {
        body.strip_suffix(&[0])
    } else {
        // Parse: statement name \0, query \0, parameter types.
        body.iter().position(|&c| c == 0).and_then(|i| {
            let rest = &body[i + 1..];
            rest.iter().position(|&c| c == 0).map(|j| &rest[..j])
        })
    };
    match sql {
        Some(s) if !s.is_empty() && printable_sql(s) => yes(
            AppProtocol::Postgresql,
            detail([("message", json!(if t == b'Q' { "Query" } else { "Parse" }))]),
        ),
        _ => Check::No,
    }
}

fn printable_sql(s: &[u8]) -> bool {
    s.iter()
        .all(|&c| c >= 0x20 || c == b'\n' || c == b'\r' || c == b'\t')
}

/// The MySQL/MariaDB server greeting (protocol 10), or an error packet instead of one.
pub fn mysql_greeting(b: &[u8]) -> Check {
    if b.len() < 5 {
        return if b.len() < 4 || b[3] == 0 {
            Check::More
        } else {
            Check::No
        };
    }
    let len = usize::from(b[0]) | usize::from(b[1]) << 8 | usize::from(b[2]) << 16;
    if b[3] != 0 || !(10..=1024).contains(&len) {
        return Check::No;
    }
    let Some(p) = b.get(4..4 + len) else {
        return if b[4] == 0x0a || b[4] == 0xff {
            Check::More
        } else {
            Check::No
        };
    };
    match p[0] {
        0x0a => {
            let Some(end) = p[1..].iter().position(|&c| c == 0) else {
                return Check::No;
            };
            let version = &p[1..1 + end];
            // thread id (4), auth data (8), filler 0.
            if version.is_empty()
                || version.len() > 64
                || !printable(version)
                || p.get(1 + end + 1 + 4 + 8) != Some(&0)
            {
                return Check::No;
            }
            yes(
                AppProtocol::Mysql,
                detail([("server_version", json!(String::from_utf8_lossy(version)))]),
            )
        }
        0xff if len >= 9 && printable(&p[3..]) => {
            yes(AppProtocol::Mysql, detail([("error", json!(true))]))
        }
        _ => Check::No,
    }
}

/// Mid-connection client packets: the handshake response (23 zero filler bytes) or a
/// COM_QUERY with printable SQL.
pub fn mysql_client(b: &[u8]) -> Check {
    if b.len() < 5 {
        return Check::More;
    }
    let len = usize::from(b[0]) | usize::from(b[1]) << 8 | usize::from(b[2]) << 16;
    let Some(p) = b.get(4..4 + len) else {
        return Check::More;
    };
    let seq = b[3];
    if seq == 1 && len >= 32 {
        let caps = le32(p, 0).unwrap_or(0);
        // CLIENT_PROTOCOL_41 set, then max packet (4), charset (1), 23 zero bytes.
        if caps & 0x200 != 0 && p[9..32].iter().all(|&c| c == 0) {
            return yes(
                AppProtocol::Mysql,
                detail([("message", json!("HandshakeResponse"))]),
            );
        }
    }
    if seq == 0 && p.first() == Some(&0x03) && len > 1 && printable_sql(&p[1..]) {
        return yes(
            AppProtocol::Mysql,
            detail([("message", json!("COM_QUERY"))]),
        );
    }
    Check::No
}

/// MongoDB wire messages (a request or a reply), validated to the first document.
pub fn mongodb(b: &[u8]) -> Check {
    if b.len() < 16 {
        return Check::More;
    }
    let len = le32(b, 0).unwrap_or(0) as usize;
    let op = le32(b, 12).unwrap_or(0);
    if !(21..=48 << 20).contains(&len)
        || !matches!(
            op,
            1 | 2001 | 2002 | 2004 | 2005 | 2006 | 2007 | 2012 | 2013
        )
    {
        return Check::No;
    }
    // Only a whole message is proof (TLS records and other binary can pass a header check).
    let Some(m) = b.get(..len) else {
        return Check::More;
    };
    doc_ok(m, op)
}

fn doc_ok(m: &[u8], op: u32) -> Check {
    let doc_at = match op {
        // OP_MSG: flags (only bits 0, 1, 16 may be set), section kind 0 or 1.
        2013 => {
            let flags = le32(m, 16).unwrap_or(u32::MAX);
            if flags & !0x0001_0003 != 0 || !matches!(m.get(20), Some(0) | Some(1)) {
                return Check::No;
            }
            if m[20] == 1 { None } else { Some(21) }
        }
        // OP_QUERY: flags, "db.collection\0", skip, return, document.
        2004 => {
            let name = &m[20..];
            let Some(end) = name.iter().position(|&c| c == 0) else {
                return Check::No;
            };
            if !name[..end].contains(&b'.') || !printable(&name[..end]) {
                return Check::No;
            }
            Some(20 + end + 1 + 8)
        }
        // OP_REPLY: flags, cursor id (8), starting from, number returned, documents.
        1 => Some(36),
        2012 => {
            // OP_COMPRESSED: original opcode, size, compressor id 0-3.
            return if matches!(le32(m, 16), Some(2004 | 2013 | 1))
                && m.get(24).is_some_and(|&c| c <= 3)
            {
                yes(AppProtocol::Mongodb, detail([("compressed", json!(true))]))
            } else {
                Check::No
            };
        }
        _ => None,
    };
    if let Some(at) = doc_at {
        // A BSON document: int32 length >= 5, ending in 0 when whole.
        let Some(dl) = le32(m, at) else {
            return Check::No;
        };
        let dl = dl as usize;
        let whole = m.len() >= le32(m, 0).unwrap_or(0) as usize;
        match m.get(at + dl.max(5) - 1) {
            // The document is all there: it must end with its terminating zero.
            Some(&end) if dl >= 5 && end == 0 => {}
            // It runs past what we have: only acceptable if the message is not whole.
            None if dl >= 5 && !whole => {}
            _ => return Check::No,
        }
    }
    yes(AppProtocol::Mongodb, detail([("opcode", json!(op))]))
}

const MEMCACHED_STORE: &[&str] = &["set", "add", "replace", "append", "prepend", "cas"];
const MEMCACHED_OTHER: &[&str] = &[
    "get",
    "gets",
    "gat",
    "gats",
    "delete",
    "incr",
    "decr",
    "touch",
    "stats",
    "version",
    "flush_all",
    "verbosity",
    "quit",
    "mg",
    "ms",
    "md",
    "ma",
    "mn",
    "me",
];

/// A memcached text command line, or a binary-protocol request.
pub fn memcached_request(b: &[u8]) -> Check {
    if b.first() == Some(&0x80) {
        return memcached_binary(b);
    }
    let Some((l, _)) = line(b, 0) else {
        return if b.len() < 256
            && printable(b)
            && b.iter()
                .take_while(|c| c.is_ascii_lowercase() || **c == b'_')
                .count()
                >= b.len().min(2)
        {
            Check::More
        } else {
            Check::No
        };
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
    let ok = if MEMCACHED_STORE.contains(&cmd.as_str()) {
        // <cmd> <key> <flags> <exptime> <bytes> [cas] [noreply]
        words.len() >= 5 && words[2..5].iter().all(|w| number(w).is_some())
    } else {
        MEMCACHED_OTHER.contains(&cmd.as_str())
            && (words.len() > 1
                || matches!(
                    cmd.as_str(),
                    "stats" | "version" | "flush_all" | "quit" | "mn"
                ))
    };
    if ok {
        yes(AppProtocol::Memcached, detail([("command", json!(cmd))]))
    } else {
        Check::No
    }
}

fn memcached_binary(b: &[u8]) -> Check {
    if b.len() < 24 {
        return Check::More;
    }
    let (opcode, key_len, extras, data_type) = (b[1], u16::from_be_bytes([b[2], b[3]]), b[4], b[5]);
    let body = be32(b, 8).unwrap_or(0);
    if opcode > 0x48
        || data_type != 0
        || body > 1 << 20
        || u32::from(key_len) + u32::from(extras) > body
    {
        return Check::No;
    }
    yes(
        AppProtocol::Memcached,
        detail([("binary", json!(true)), ("opcode", json!(opcode))]),
    )
}
