//! DNS messages (RFC 1035) over UDP and TCP: the header and the first question.
//!
//! The name and question are decoded by `hickory-proto`; ours are the plausibility rules
//! (counts, opcode, Z bit, class) that keep other binary payloads from passing for DNS.

use bulkhead_policy::l7::AppProtocol;
use hickory_proto::op::{Header, MessageType, Query};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use serde::Serialize;
use serde_json::json;

use crate::Check;
use crate::wire::{be16, detail, yes};

/// The first question of a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Question {
    /// Dotted, without the trailing dot; `.` for the root. Bytes outside printable
    /// ASCII are escaped as `\DDD` (decimal), as in zone files.
    pub name: String,
    /// Record type asked for (1 A, 28 AAAA, 16 TXT, ...).
    pub qtype: u16,
    /// Class without the mDNS unicast-response bit (1 IN).
    pub qclass: u16,
    pub id: u16,
    pub response: bool,
    /// Questions in the message (almost always 1).
    pub questions: u16,
}

/// Parse the header and first question of one whole DNS message (a UDP payload, or a
/// TCP message without its 2-byte length). None unless it is well-formed up to the end
/// of that question and plausible as DNS. Used for detection and for DNS-name rules.
pub fn question(m: &[u8]) -> Option<Question> {
    let flags = be16(m, 2)?;
    let counts = [be16(m, 4)?, be16(m, 6)?, be16(m, 8)?, be16(m, 10)?];
    let response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    // Real messages ask 1 question (a few at most); opcodes 0-2, 4, 5 exist; Z is 0.
    if counts[0] == 0
        || counts[0] > 4
        || !matches!(opcode, 0 | 1 | 2 | 4 | 5)
        || flags & 0x0040 != 0
    {
        return None;
    }
    // A query carries no answers (except an UPDATE's prerequisites, opcode 5).
    if counts[1..].iter().any(|&c| c > 512) || (!response && opcode == 0 && counts[1] > 0) {
        return None;
    }
    let mut d = BinDecoder::new(m);
    let header = Header::read(&mut d).ok()?;
    let q = Query::read(&mut d).ok()?;
    let qtype = u16::from(q.query_type());
    let qclass = u16::from(q.query_class()) & 0x7fff;
    // IN, CH, HS, NONE, ANY.
    if qtype == 0 || !matches!(qclass, 1 | 3 | 4 | 254 | 255) {
        return None;
    }
    let name = q.name().to_ascii();
    let name = match name.strip_suffix('.') {
        Some("") => ".".to_string(),
        Some(n) => n.to_string(),
        None if name.is_empty() => ".".to_string(),
        None => name,
    };
    Some(Question {
        name,
        qtype,
        qclass,
        id: header.metadata.id,
        response: header.metadata.message_type == MessageType::Response,
        questions: counts[0],
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

pub(crate) fn udp_query(m: &[u8]) -> Check {
    check(m, false)
}

pub(crate) fn udp_response(m: &[u8]) -> Check {
    check(m, true)
}

/// The smallest message: a header and a question for the root (12 + 1 + 4 bytes).
const MIN_MESSAGE: usize = 17;

/// Could these 12 bytes start a DNS message of this direction? Checked as soon as they
/// are in, so that another protocol whose first two bytes read as a large length (an
/// MQTT CONNECT, `10 0c`, is 4108) is not held until the detection timeout.
fn plausible_header(h: &[u8], response: bool) -> bool {
    let (Some(flags), Some(qd), Some(an)) = (be16(h, 2), be16(h, 4), be16(h, 6)) else {
        return true;
    };
    let opcode = (flags >> 11) & 0xf;
    (flags & 0x8000 != 0) == response
        && matches!(opcode, 0 | 1 | 2 | 4 | 5)
        && flags & 0x0040 == 0
        && (1..=4).contains(&qd)
        && an <= 512
        && (response || opcode != 0 || an == 0)
}

fn tcp(b: &[u8], response: bool) -> Check {
    let Some(len) = be16(b, 0) else {
        return Check::More;
    };
    let len = usize::from(len);
    if len < MIN_MESSAGE || !plausible_header(b.get(2..14).unwrap_or(&[]), response) {
        return Check::No;
    }
    match b.get(2..2 + len) {
        Some(m) => check(m, response),
        None => Check::More,
    }
}

/// A length-prefixed query (DNS over TCP).
pub(crate) fn tcp_query(b: &[u8]) -> Check {
    tcp(b, false)
}

pub(crate) fn tcp_response(b: &[u8]) -> Check {
    tcp(b, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUERY: &[u8] = b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01\x03www\x06google\x03com\x00\x00\x1c\x00\x01\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00";

    #[test]
    fn an_mqtt_connect_is_not_a_dns_message_in_waiting() {
        // 4108 "bytes" announced, but the header that follows is no DNS header.
        let connect = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00";
        assert!(matches!(tcp_query(connect), Check::No));
        let mut framed = (QUERY.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&QUERY[..20]);
        assert!(matches!(tcp_query(&framed), Check::More));
    }

    #[test]
    fn question_of_a_query() {
        let q = question(QUERY).unwrap();
        assert_eq!(
            (q.name.as_str(), q.qtype, q.qclass),
            ("www.google.com", 28, 1)
        );
        assert_eq!((q.id, q.response, q.questions), (0xabcd, false, 1));
    }

    #[test]
    fn root_and_escaped_labels() {
        let root = b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x01";
        assert_eq!(question(root).unwrap().name, ".");
        let binary =
            b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x02a\xff\x00\x00\x0a\x00\x01";
        let q = question(binary).unwrap();
        assert!(q.name.starts_with('a') && q.name.len() > 2, "{}", q.name);
    }

    #[test]
    fn over_tcp_waits_for_the_whole_message() {
        let mut t = (QUERY.len() as u16).to_be_bytes().to_vec();
        t.extend_from_slice(QUERY);
        for n in 0..t.len() {
            assert_eq!(tcp_query(&t[..n]), Check::More, "{n}");
        }
        assert!(matches!(tcp_query(&t), Check::Yes(..)));
        assert_eq!(tcp_response(&t), Check::No);
    }

    #[test]
    fn not_dns() {
        // No question.
        assert_eq!(
            question(b"\x00\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
            None
        );
        // A query with answers.
        let mut q = QUERY.to_vec();
        q[7] = 3;
        assert_eq!(question(&q), None);
        // Truncated name.
        assert_eq!(question(&QUERY[..20]), None);
        // Z bit set.
        let mut z = QUERY.to_vec();
        z[3] |= 0x40;
        assert_eq!(question(&z), None);
        // Text.
        assert_eq!(question(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), None);
    }
}
