//! PostgreSQL frontend messages: the startup packet family (StartupMessage, SSLRequest,
//! GSSENCRequest, CancelRequest), and mid-connection Query / Parse messages.
//!
//! Hand-written: `pgwire` decodes whole messages of a session it drives; detection needs
//! the first packet judged from a prefix, with no session state.

use bulkhead_policy::l7::AppProtocol;
use serde_json::{Value, json};

use crate::Check;
use crate::wire::{be32, detail, printable, text_like, yes};

const V3: u32 = 196_608;
const SSL: u32 = 80_877_103;
const GSS: u32 = 80_877_104;
const CANCEL: u32 = 80_877_102;
/// Servers refuse startup packets over 10,000 bytes.
const MAX_STARTUP: usize = 10_000;

/// A StartupMessage, SSLRequest, GSSENCRequest or CancelRequest.
pub(crate) fn startup(b: &[u8]) -> Check {
    let Some(len) = be32(b, 0).map(|l| l as usize) else {
        // Lengths start with 0x00 (at most 10,000).
        return if b.first().is_none_or(|&c| c == 0) && b.get(1).is_none_or(|&c| c == 0) {
            Check::More
        } else {
            Check::No
        };
    };
    if !(8..=MAX_STARTUP).contains(&len) {
        return Check::No;
    }
    let Some(code) = be32(b, 4) else {
        return Check::More;
    };
    let pg = |what: &str, user: Value, db: Value| {
        yes(
            AppProtocol::Postgresql,
            detail([("message", json!(what)), ("user", user), ("database", db)]),
        )
    };
    match code {
        SSL if len == 8 => pg("SSLRequest", Value::Null, Value::Null),
        GSS if len == 8 => pg("GSSENCRequest", Value::Null, Value::Null),
        CANCEL if len == 16 => pg("CancelRequest", Value::Null, Value::Null),
        V3 | 0x0003_0001..=0x0003_00ff if len > 8 => {
            let Some(body) = b.get(8..len) else {
                return Check::More;
            };
            // key\0value\0 ... \0
            let Some(pairs) = body.strip_suffix(&[0]) else {
                return Check::No;
            };
            let parts: Vec<&[u8]> = pairs.split(|&c| c == 0).collect();
            if parts.len() % 2 != 1 || !parts.iter().all(|p| printable(p)) {
                return Check::No;
            }
            let get = |k: &[u8]| {
                parts
                    .chunks_exact(2)
                    .find(|kv| kv[0] == k)
                    .map_or(Value::Null, |kv| json!(String::from_utf8_lossy(kv[1])))
            };
            pg("StartupMessage", get(b"user"), get(b"database"))
        }
        _ => Check::No,
    }
}

/// Mid-connection: a simple Query ('Q') or an extended-protocol Parse ('P') holding SQL.
pub(crate) fn message(b: &[u8]) -> Check {
    let Some(&t) = b.first() else {
        return Check::More;
    };
    if t != b'Q' && t != b'P' {
        return Check::No;
    }
    let Some(len) = be32(b, 1).map(|l| l as usize) else {
        return Check::More;
    };
    if !(6..=1 << 24).contains(&len) {
        return Check::No;
    }
    let Some(body) = b.get(5..1 + len) else {
        return if text_like(&b[5..]) {
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
        Some(s) if !s.is_empty() && text_like(s) => yes(
            AppProtocol::Postgresql,
            detail([("message", json!(if t == b'Q' { "Query" } else { "Parse" }))]),
        ),
        _ => Check::No,
    }
}

/// Backend message types (protocol 3.0): Authentication, BackendKeyData, BindComplete,
/// CloseComplete, CommandComplete, CopyData, CopyDone, CopyIn/Out/BothResponse, DataRow,
/// EmptyQueryResponse, ErrorResponse, FunctionCallResponse, NegotiateProtocolVersion,
/// NoData, NoticeResponse, NotificationResponse, ParameterDescription, ParameterStatus,
/// ParseComplete, PortalSuspended, ReadyForQuery, RowDescription.
const BACKEND: &[u8] = b"RK23CdcGHWDIEVvnNAtS1sZT";
/// Messages read mid-connection before concluding.
const MAX_REPLIES: usize = 16;
/// Larger messages are refused by servers (1 GiB).
const MAX_MESSAGE: usize = 1 << 30;

/// Mid-connection, from the server: whole backend messages from the start of the bytes,
/// each of a backend type and a sane length, until a ReadyForQuery (length 5, status
/// idle / in a transaction / failed), a CommandComplete (a printable tag such as
/// `SELECT 1`), a ParameterStatus (`name\0value\0`) or an Authentication message of a
/// defined kind proves PostgreSQL, behind at least one other message. A capture that
/// starts after a query was sent sees its answer first; one that starts during the
/// log-in sees the authentication exchange and the parameters.
pub(crate) fn replies(b: &[u8]) -> Check {
    let mut at = 0;
    for n in 0..MAX_REPLIES {
        let Some(&t) = b.get(at) else {
            return Check::More;
        };
        if !BACKEND.contains(&t) {
            return Check::No;
        }
        let Some(len) = be32(b, at + 1).map(|l| l as usize) else {
            return Check::More;
        };
        if !(4..=MAX_MESSAGE).contains(&len) {
            return Check::No;
        }
        let Some(body) = b.get(at + 5..at + 1 + len) else {
            return Check::More;
        };
        let proof = match t {
            b'Z' => {
                if len != 5 || !matches!(body[0], b'I' | b'T' | b'E') {
                    return Check::No;
                }
                Some(("ReadyForQuery", Value::Null))
            }
            b'C' => {
                let tag = body.strip_suffix(&[0]).filter(|tag| {
                    tag.first().is_some_and(u8::is_ascii_uppercase) && printable(tag)
                });
                let Some(tag) = tag else {
                    return Check::No;
                };
                Some(("CommandComplete", json!(String::from_utf8_lossy(tag))))
            }
            // A run-time parameter (`client_encoding` = `UTF8`), as a server reports
            // after authentication and on SET.
            b'S' => {
                let mut parts = body.split(|&c| c == 0);
                let (name, value, end) = (parts.next(), parts.next(), parts.next());
                let ok = name.is_some_and(|n| {
                    !n.is_empty() && n.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
                }) && value.is_some_and(printable)
                    && end == Some(&[][..])
                    && parts.next().is_none();
                if !ok {
                    return Check::No;
                }
                Some((
                    "ParameterStatus",
                    json!(String::from_utf8_lossy(name.unwrap_or_default())),
                ))
            }
            // An authentication request or result of a defined kind (ok, cleartext,
            // MD5, GSS, SSPI, SASL and its continuation and end).
            b'R' => {
                let kind = be32(body, 0);
                if len < 8
                    || !kind.is_some_and(|k| matches!(k, 0 | 2 | 3 | 5 | 7 | 8 | 9 | 10 | 11 | 12))
                {
                    return Check::No;
                }
                Some(("Authentication", json!(kind)))
            }
            _ => None,
        };
        at += 1 + len;
        if let Some((what, tag)) = proof
            && n > 0
        {
            return yes(
                AppProtocol::Postgresql,
                detail([("message", json!(what)), ("tag", tag)]),
            );
        }
    }
    Check::No
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup_message(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut body = V3.to_be_bytes().to_vec();
        for (k, v) in pairs {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut m = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        m.extend(body);
        m
    }

    #[test]
    fn startup_with_user_and_database() {
        let m = startup_message(&[
            ("user", "app"),
            ("database", "orders"),
            ("application_name", "psql"),
        ]);
        match startup(&m) {
            Check::Yes(AppProtocol::Postgresql, d) => {
                assert_eq!(d["user"], "app");
                assert_eq!(d["database"], "orders");
            }
            c => panic!("{c:?}"),
        }
        for n in 0..m.len() {
            assert_eq!(startup(&m[..n]), Check::More, "{n}");
        }
    }

    #[test]
    fn ssl_and_cancel_requests() {
        assert!(matches!(
            startup(b"\x00\x00\x00\x08\x04\xd2\x16\x2f"),
            Check::Yes(..)
        ));
        assert!(matches!(
            startup(b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x00\x01\x00\x00\x00\x02"),
            Check::Yes(..)
        ));
        // SSLRequest code with the wrong length.
        assert_eq!(
            startup(b"\x00\x00\x00\x0c\x04\xd2\x16\x2f\x00\x00\x00\x00"),
            Check::No
        );
    }

    #[test]
    fn queries_mid_connection() {
        assert!(matches!(
            message(b"Q\x00\x00\x00\x0eSELECT 1;\x00"),
            Check::Yes(..)
        ));
        assert!(matches!(
            message(b"P\x00\x00\x00\x13s1\x00SELECT $1\x00\x00\x00"),
            Check::Yes(..)
        ));
        assert_eq!(message(b"Q\x00\x00\x00\x0eSELECT\x01 1\x00"), Check::No);
    }

    #[test]
    fn replies_mid_connection() {
        // psql's `SELECT 1;` answered: RowDescription, DataRow, CommandComplete,
        // ReadyForQuery (recorded from PostgreSQL 15).
        let answer = b"T\x00\x00\x00\x21\x00\x01?column?\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00D\x00\x00\x00\x0b\x00\x01\x00\x00\x00\x011C\x00\x00\x00\x0dSELECT 1\x00Z\x00\x00\x00\x05I";
        match replies(answer) {
            Check::Yes(AppProtocol::Postgresql, d) => {
                assert_eq!(d["message"], "CommandComplete");
                assert_eq!(d["tag"], "SELECT 1");
            }
            c => panic!("{c:?}"),
        }
        let proof = answer.len() - 6;
        for n in 0..proof {
            assert_eq!(replies(&answer[..n]), Check::More, "{n}");
        }
        // One message alone proves nothing; a bad status, tag or type breaks the chain.
        assert_eq!(replies(b"Z\x00\x00\x00\x05I"), Check::More);
        assert_eq!(replies(b"1\x00\x00\x00\x04Z\x00\x00\x00\x05X"), Check::No);
        assert_eq!(
            replies(b"1\x00\x00\x00\x04C\x00\x00\x00\x06\x01\x00"),
            Check::No
        );
        assert_eq!(replies(b"1\x00\x00\x00\x04Q\x00\x00\x00\x05I"), Check::No);
        assert!(matches!(
            replies(b"1\x00\x00\x00\x04Z\x00\x00\x00\x05T"),
            Check::Yes(..)
        ));
    }

    #[test]
    fn a_log_in_mid_connection() {
        // SCRAM's last step, AuthenticationOk, then the parameters (PostgreSQL 15).
        let login = b"R\x00\x00\x00\x36\x00\x00\x00\x0cv=oXQKIQUx2LQ1DI3/nKy9sKoXMajy/Q2JXXlZiTT/lzM=R\x00\x00\x00\x08\x00\x00\x00\x00S\x00\x00\x00\x1aapplication_name\x00psql\x00";
        match replies(login) {
            Check::Yes(_, d) => assert_eq!(d["message"], "Authentication"),
            c => panic!("{c:?}"),
        }
        match replies(&login[55..64]) {
            Check::More => {}
            c => panic!("{c:?}"),
        }
        // An undefined authentication kind, a parameter that is not `name\0value\0`.
        assert_eq!(replies(b"R\x00\x00\x00\x08\x00\x00\x00\x04"), Check::No);
        assert_eq!(
            replies(b"1\x00\x00\x00\x04S\x00\x00\x00\x0ba b\x00c\x00\x00"),
            Check::No
        );
        assert!(matches!(
            replies(b"1\x00\x00\x00\x04S\x00\x00\x00\x11TimeZone\x00UTC\x00"),
            Check::Yes(..)
        ));
    }

    #[test]
    fn not_postgres() {
        assert_eq!(startup(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc"), Check::No);
        // Startup pairs that are not text.
        let mut m = startup_message(&[("user", "a")]);
        m[10] = 0x01;
        assert_eq!(startup(&m), Check::No);
    }
}
