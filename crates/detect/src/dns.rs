//! DNS messages (RFC 1035) over UDP and TCP: the question.

use bulkhead_policy::l7::AppProtocol;
use serde::Serialize;
use serde_json::json;

use crate::{Check, be16, detail, yes};

/// The first question of a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Question {
    /// Dotted, without the trailing dot; `.` for the root.
    pub name: String,
    pub qtype: u16,
    pub id: u16,
    pub response: bool,
    pub questions: u16,
}

/// Parse a DNS message's header and first question. None unless it is well-formed up to
/// the end of that question.
pub fn question(m: &[u8]) -> Option<Question> {
    let id = be16(m, 0)?;
    let flags = be16(m, 2)?;
    let (qd, an, ns, ar) = (be16(m, 4)?, be16(m, 6)?, be16(m, 8)?, be16(m, 10)?);
    let opcode = (flags >> 11) & 0xf;
    // Real queries ask 1 question (a few at most); opcodes 0-2, 4, 5 exist; Z bit is 0.
    if qd == 0 || qd > 4 || !matches!(opcode, 0 | 1 | 2 | 4 | 5) || flags & 0x0040 != 0 {
        return None;
    }
    if an > 512 || ns > 512 || ar > 512 {
        return None;
    }
    let response = flags & 0x8000 != 0;
    if !response && an > 0 && opcode == 0 {
        return None;
    }
    let mut at = 12;
    let mut labels: Vec<String> = Vec::new();
    let mut total = 0;
    loop {
        let n = usize::from(*m.get(at)?);
        at += 1;
        if n == 0 {
            break;
        }
        // No compression in the first question name (nothing precedes it).
        if n > 63 {
            return None;
        }
        let label = m.get(at..at + n)?;
        total += n + 1;
        if total > 255 {
            return None;
        }
        labels.push(String::from_utf8_lossy(label).into_owned());
        at += n;
    }
    let qtype = be16(m, at)?;
    let qclass = be16(m, at + 2)?;
    // IN, CH, HS, NONE, ANY; mDNS sets the top bit (unicast response).
    if !matches!(qclass & 0x7fff, 1 | 3 | 4 | 254 | 255) || qtype == 0 {
        return None;
    }
    Some(Question {
        name: if labels.is_empty() {
            ".".into()
        } else {
            labels.join(".")
        },
        qtype,
        id,
        response,
        questions: qd,
    })
}

fn check(m: &[u8], response: bool) -> Check {
    match question(m) {
        Some(q) if q.response == response => yes(
            AppProtocol::Dns,
            detail([("query", json!(q.name)), ("qtype", json!(q.qtype))]),
        ),
        _ => Check::No,
    }
}

pub fn udp_query(m: &[u8]) -> Check {
    check(m, false)
}

pub fn udp_response(m: &[u8]) -> Check {
    check(m, true)
}

fn tcp(b: &[u8], response: bool) -> Check {
    let Some(len) = be16(b, 0) else {
        return Check::More;
    };
    let len = usize::from(len);
    if len < 17 {
        return Check::No;
    }
    if b.len() < 2 + 12 {
        return Check::More;
    }
    let m = &b[2..(2 + len).min(b.len())];
    match check(m, response) {
        Check::No if b.len() < 2 + len => Check::More,
        c => c,
    }
}

/// A length-prefixed query (DNS over TCP).
pub fn tcp_query(b: &[u8]) -> Check {
    tcp(b, false)
}

pub fn tcp_response(b: &[u8]) -> Check {
    tcp(b, true)
}
