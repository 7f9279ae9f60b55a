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

/// A message's fixed header (RFC 1035 4.1.1), when plausible for any DNS message:
/// the Z bit clear and no section of more than 512 records.
struct Fixed {
    id: u16,
    response: bool,
    opcode: u16,
    /// Questions, answers, authority and additional records.
    counts: [u16; 4],
}

impl Fixed {
    fn read(m: &[u8]) -> Option<Fixed> {
        let flags = be16(m, 2)?;
        let counts = [be16(m, 4)?, be16(m, 6)?, be16(m, 8)?, be16(m, 10)?];
        (flags & 0x0040 == 0 && counts[1..].iter().all(|&c| c <= 512)).then_some(Fixed {
            id: be16(m, 0)?,
            response: flags & 0x8000 != 0,
            opcode: (flags >> 11) & 0xf,
            counts,
        })
    }
}

/// Parse the header and first question of one whole DNS message (a UDP payload, or a
/// TCP message without its 2-byte length). None unless it is well-formed up to the end
/// of that question and plausible as DNS. Used for detection and for DNS-name rules.
pub fn question(m: &[u8]) -> Option<Question> {
    let Fixed {
        id,
        response,
        opcode,
        counts,
    } = Fixed::read(m)?;
    // Real messages ask 1 question (a few at most); opcodes 0-2, 4, 5 exist.
    if counts[0] == 0 || counts[0] > 4 || !matches!(opcode, 0 | 1 | 2 | 4 | 5) {
        return None;
    }
    // A query carries no answers, except an UPDATE's prerequisites (opcode 5) and the
    // answers a multicast DNS query already knows (RFC 6762 7.1), whose id is 0 (18.1).
    if !response && opcode == 0 && counts[1] > 0 && id != 0 {
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

/// What a response says a name resolves to: the first question's name and every
/// address (A, AAAA) the answer section gives for it, directly or through its CNAME
/// chain, with the record's TTL in seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Answers {
    /// As in [`Question::name`], lower-cased.
    pub name: String,
    pub addrs: Vec<(std::net::IpAddr, u32)>,
}

fn plain_name(n: &hickory_proto::rr::Name) -> String {
    let s = n.to_lowercase().to_ascii();
    match s.trim_end_matches('.') {
        "" => ".".to_string(),
        t => t.to_string(),
    }
}

/// The addresses a successful (NOERROR) response carries for its question; None for
/// anything else (a query, an error, a malformed message). Records for other names
/// (not reached by a CNAME from the question) are ignored: a server cannot teach the
/// proxy addresses for names that were not asked.
pub fn answers(m: &[u8]) -> Option<Answers> {
    use hickory_proto::op::{Message, ResponseCode};
    use hickory_proto::rr::RData;
    let q = question(m)?;
    if !q.response {
        return None;
    }
    let msg = Message::from_vec(m).ok()?;
    if msg.metadata.response_code != ResponseCode::NoError {
        return None;
    }
    let name = q.name.to_ascii_lowercase();
    let mut owners = vec![name.clone()];
    let mut addrs = Vec::new();
    // CNAMEs usually come first and in order; a few passes cover any order.
    for _ in 0..8 {
        let before = owners.len();
        for r in &msg.answers {
            if let RData::CNAME(c) = &r.data {
                let owner = plain_name(&r.name);
                let target = plain_name(&c.0);
                if owners.contains(&owner) && !owners.contains(&target) {
                    owners.push(target);
                }
            }
        }
        if owners.len() == before {
            break;
        }
    }
    for r in &msg.answers {
        let ip = match &r.data {
            RData::A(a) => std::net::IpAddr::V4(a.0),
            RData::AAAA(a) => std::net::IpAddr::V6(a.0),
            _ => continue,
        };
        if owners.contains(&plain_name(&r.name)) {
            addrs.push((ip, r.ttl));
        }
    }
    Some(Answers { name, addrs })
}

/// NetBIOS Name Service (RFC 1002) speaks DNS's message format, but it is another
/// protocol: its questions name a NetBIOS name "first-level encoded", one label of 32
/// letters from A to P (a nibble each), which no DNS name has (a hex digest uses
/// digits too).
fn netbios(name: &str) -> bool {
    let first = name.split('.').next().unwrap_or_default();
    first.len() == 32 && (first.bytes()).all(|b| (b'A'..=b'P').contains(&b.to_ascii_uppercase()))
}

/// Messages with records but no question: a multicast DNS response (RFC 6762 6: it
/// "MUST NOT contain any questions"; its id is 0, 18.1) and the obsolete inverse query
/// (opcode 1, RFC 1035 6.4.1: one answer record). The first record's name and type
/// stand for the question.
fn questionless(m: &[u8], response: bool) -> Option<(String, u16)> {
    use hickory_proto::rr::Record;
    let h = Fixed::read(m)?;
    let kind = if response {
        h.opcode == 0 && h.id == 0
    } else {
        h.opcode == 1 && h.counts[1] == 1
    };
    if !kind || h.response != response || h.counts[0] != 0 || h.counts[1] == 0 {
        return None;
    }
    let mut d = BinDecoder::new(m);
    Header::read(&mut d).ok()?;
    let r = Record::read(&mut d).ok()?;
    // IN, with or without mDNS's cache-flush bit.
    if u16::from(r.dns_class) & 0x7fff != 1 {
        return None;
    }
    Some((plain_name(&r.name), u16::from(r.record_type())))
}

fn check(m: &[u8], response: bool) -> Check {
    let (name, qtype) = match question(m) {
        Some(q) if q.response == response => (q.name, q.qtype),
        Some(_) => return Check::No,
        None => match questionless(m, response) {
            Some(nt) => nt,
            None => return Check::No,
        },
    };
    if netbios(&name) {
        return Check::No;
    }
    yes(
        AppProtocol::Dns,
        detail([("query", json!(name)), ("qtype", json!(qtype))]),
    )
}

pub(crate) fn udp_query(m: &[u8]) -> Check {
    check(m, false)
}

pub(crate) fn udp_response(m: &[u8]) -> Check {
    check(m, true)
}

/// The smallest message: a header and a question for the root (12 + 1 + 4 bytes).
const MIN_MESSAGE: usize = 17;

/// Could these bytes (up to 12) start a DNS message of this direction? Each field is
/// checked as soon as its bytes are in, so that another protocol whose first two bytes
/// read as a large length (an MQTT CONNECT, `10 0c`, is 4108; a Redis inline `PING`,
/// `PI`, is 20553) is not held until the detection timeout.
fn plausible_header(h: &[u8], response: bool) -> bool {
    let flags = be16(h, 2);
    let opcode = flags.map(|f| (f >> 11) & 0xf);
    let flags_ok = flags.is_none_or(|f| {
        // RCODE is set in responses (RFC 1035 4.1.1): a query's is 0.
        (f & 0x8000 != 0) == response
            && (response || f & 0x000f == 0)
            && opcode.is_some_and(|o| matches!(o, 0 | 1 | 2 | 4 | 5))
            && f & 0x0040 == 0
    });
    flags_ok
        && be16(h, 4).is_none_or(|qd| (1..=4).contains(&qd))
        && be16(h, 6).is_none_or(|an| an <= 512 && (response || opcode != Some(0) || an == 0))
}

fn tcp(b: &[u8], response: bool) -> Check {
    let Some(len) = be16(b, 0) else {
        return Check::More;
    };
    let len = usize::from(len);
    let header = &b[2..b.len().min(14)];
    if len < MIN_MESSAGE || !plausible_header(header, response) {
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

    /// A response to `API.example.com A`: a CNAME to edge.cdn.net, its A and AAAA, and
    /// an A record of a name nobody asked for.
    fn response(rcode: u8) -> Vec<u8> {
        let mut m = b"\x12\x34\x81\x80\x00\x01\x00\x04\x00\x00\x00\x00".to_vec();
        m[3] |= rcode;
        m.extend_from_slice(b"\x03API\x07example\x03com\x00\x00\x01\x00\x01");
        // api.example.com CNAME edge.cdn.net (the owner by pointer to the question).
        m.extend_from_slice(b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x01\x2c\x00\x0e");
        m.extend_from_slice(b"\x04edge\x03cdn\x03net\x00");
        // edge.cdn.net A 192.0.2.10, TTL 30 (owner by pointer to the CNAME's target).
        m.extend_from_slice(b"\xc0\x2d\x00\x01\x00\x01\x00\x00\x00\x1e\x00\x04\xc0\x00\x02\x0a");
        // edge.cdn.net AAAA 2001:db8::a, TTL 20.
        m.extend_from_slice(b"\xc0\x2d\x00\x1c\x00\x01\x00\x00\x00\x14\x00\x10");
        m.extend_from_slice(
            &"2001:db8::a"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        // evil.org A 198.51.100.66: not on the question's chain.
        m.extend_from_slice(
            b"\x04evil\x03org\x00\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\xc6\x33\x64\x42",
        );
        m
    }

    #[test]
    fn answers_follow_the_cname_chain_of_the_question_only() {
        let a = answers(&response(0)).expect("answers");
        assert_eq!(a.name, "api.example.com");
        assert_eq!(
            a.addrs,
            vec![
                ("192.0.2.10".parse().unwrap(), 30),
                ("2001:db8::a".parse().unwrap(), 20)
            ]
        );
        // NXDOMAIN, a query, garbage: nothing learnt.
        assert_eq!(answers(&response(3)), None);
        assert_eq!(answers(QUERY), None);
        assert_eq!(answers(b"\x00\x01garbage"), None);
        // Any truncation is refused or yields a prefix of the records, never a panic.
        let full = response(0);
        for n in 0..full.len() {
            if let Some(a) = answers(&full[..n]) {
                assert!(a.addrs.len() <= 2);
            }
        }
    }

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
    fn a_header_is_judged_field_by_field_as_it_arrives() {
        // Redis inline commands: `PI` announces 20553 bytes, and the flags that follow
        // (`\r\n`) carry an RCODE, which no query has.
        for inline in [&b"PING\r\n"[..], b"INFO\r\n", b"QUIT\r\n"] {
            assert_eq!(tcp_query(inline), Check::No, "{inline:?}");
        }
        // A real query's prefixes still wait, whatever the split.
        let mut framed = (QUERY.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(QUERY);
        for n in 0..14 {
            assert_eq!(tcp_query(&framed[..n]), Check::More, "{n}");
        }
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

    fn hex(h: &str) -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Multicast DNS as Apple devices send it (nDPI's `skype.pcap`, `telegram.pcap`): a
    /// query with four questions and the answers it already knows, and an unsolicited
    /// response with no question. Then the obsolete inverse query (opcode 1) with one
    /// answer record and no question (`dns_invert_query.pcapng`).
    #[test]
    fn multicast_dns_and_inverse_queries() {
        let query = hex(concat!(
            "0000000000040003000000000b5f6166706f766572746370045f746370056c6f63616c00000c",
            "8001045f736d62c018000c8001045f726662c018000c8001065f616469736bc018000c8001c00c",
            "000c000100000fbc0016134c756361e2809973204d6163426f6f6b50726fc00cc00c000c000100",
            "000c0e00100d4c756361e280997320694d6163c00cc028000c000100000c0e00100d4c756361e2",
            "80997320694d6163c028"
        ));
        assert_eq!(
            udp_query(&query),
            yes(
                AppProtocol::Dns,
                detail([
                    ("query", json!("_afpovertcp._tcp.local")),
                    ("qtype", json!(12))
                ])
            )
        );
        // The same with a unicast DNS id: a query that carries answers is no DNS query.
        let mut unicast = query.clone();
        unicast[0] = 0x12;
        assert_eq!(udp_query(&unicast), Check::No);
        let announce = hex(concat!(
            "0000840000000001000000040f5f636f6d70616e696f6e2d6c696e6b045f746370056c6f6361",
            "6c00000c00010000119400100d4c756361e280997320694d6163c00c"
        ));
        assert!(matches!(
            udp_response(&announce),
            Check::Yes(AppProtocol::Dns, d) if d["query"] == "_companion-link._tcp.local"
        ));
        // ... but only with id 0, and as a response.
        let mut with_id = announce.clone();
        with_id[1] = 7;
        assert_eq!(udp_response(&with_id), Check::No);
        assert_eq!(udp_query(&announce), Check::No);
        let inverse =
            hex("77fc09000000000100000000033231360235380332303201340000010001000000000000");
        assert!(matches!(
            udp_query(&inverse),
            Check::Yes(AppProtocol::Dns, _)
        ));
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
