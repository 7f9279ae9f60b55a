//! MQTT 3.1 / 3.1.1 / 5: CONNECT and CONNACK open a connection; mid-connection, a chain
//! of control packets whose fixed headers and lengths all agree.
//!
//! Hand-written: the MQTT crates (`mqttbytes`, `rumqttc`) are client codecs that need
//! the protocol version up front; detection judges prefixes of either version.

use bulkhead_policy::l7::AppProtocol;
use serde_json::{Value, json};

use crate::Check;
use crate::wire::{be16, detail, printable, yes};

const CONNECT: u8 = 1;
const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const SUBSCRIBE: u8 = 8;
const UNSUBSCRIBE: u8 = 10;
const PINGREQ: u8 = 12;
const PINGRESP: u8 = 13;
/// The largest remaining length 4 bytes can encode.
const MAX_REMAINING: usize = 268_435_455;
/// Packets read mid-connection before concluding.
const MAX_PACKETS: usize = 16;
/// Acknowledgements in a row, each of the packet after the one before, that prove MQTT
/// without a topic.
const ACK_RUN: usize = 4;

/// The remaining length (1-4 bytes, 7 bits each) at `at`: Ok(Some((length, index after
/// it))), Ok(None) when the bytes end inside it, Err when it is malformed.
fn remaining(b: &[u8], at: usize) -> Result<Option<(usize, usize)>, ()> {
    let mut len = 0usize;
    for i in 0..4 {
        let Some(&c) = b.get(at + i) else {
            return Ok(None);
        };
        len |= usize::from(c & 0x7f) << (7 * i);
        if c & 0x80 == 0 {
            // The shortest encoding is required: no trailing zero continuation byte.
            return if i > 0 && c == 0 {
                Err(())
            } else {
                Ok(Some((len, at + i + 1)))
            };
        }
    }
    Err(())
}

/// CONNECT with protocol name MQTT (3.1.1, 5) or MQIsdp (3.1).
pub(crate) fn connect(b: &[u8]) -> Check {
    match b.first() {
        None => return Check::More,
        Some(&0x10) => {}
        Some(_) => return Check::No,
    }
    let (len, at) = match remaining(b, 1) {
        Err(()) => return Check::No,
        Ok(None) => return Check::More,
        Ok(Some(r)) => r,
    };
    let Some(name_len) = be16(b, at).map(usize::from) else {
        return Check::More;
    };
    if name_len != 4 && name_len != 6 {
        return Check::No;
    }
    let (Some(name), Some(&level), Some(&flags)) = (
        b.get(at + 2..at + 2 + name_len),
        b.get(at + 2 + name_len),
        b.get(at + 3 + name_len),
    ) else {
        let got = &b[(at + 2).min(b.len())..];
        return if b"MQTT".starts_with(got) || b"MQIsdp".starts_with(got) || got.starts_with(b"MQ") {
            Check::More
        } else {
            Check::No
        };
    };
    let ok = (name == b"MQTT" && (level == 4 || level == 5)) || (name == b"MQIsdp" && level == 3);
    // Flag bit 0 is reserved; variable header is 10 bytes in 3.1.1 (12 in 3.1).
    if !ok || flags & 1 != 0 || len < 10 {
        return Check::No;
    }
    let version = match level {
        3 => "3.1",
        4 => "3.1.1",
        _ => "5",
    };
    yes(
        AppProtocol::Mqtt,
        detail([("packet", json!("CONNECT")), ("version", json!(version))]),
    )
}

/// CONNACK: 0x20, remaining length 2 (3.x: session-present 0/1, return code 0-5) or more
/// (5: reason code 0 or >= 0x80, then properties).
pub(crate) fn connack(b: &[u8]) -> Check {
    if b.len() < 4 {
        let ok = b.first().is_none_or(|&c| c == 0x20) && b.get(2).is_none_or(|&c| c <= 1);
        return if ok { Check::More } else { Check::No };
    }
    if b[0] != 0x20 || b[2] > 1 {
        return Check::No;
    }
    if (b[1] == 2 && b[3] <= 5) || (3..=64).contains(&b[1]) && (b[3] == 0 || b[3] >= 0x80) {
        yes(AppProtocol::Mqtt, detail([("packet", json!("CONNACK"))]))
    } else {
        Check::No
    }
}

/// Is this fixed header (type, flags, remaining length) valid in MQTT 3.1.1 or 5?
fn header_ok(kind: u8, flags: u8, len: usize) -> bool {
    match kind {
        CONNECT => flags == 0 && len >= 10,
        CONNACK => flags == 0 && len >= 2,
        // QoS 3 does not exist.
        PUBLISH => flags & 0x06 != 0x06 && len >= 2,
        // PUBACK, PUBREC, PUBCOMP: 2 bytes in 3.x, more with a reason in 5.
        4 | 5 | 7 => flags == 0 && len >= 2,
        // PUBREL, SUBSCRIBE, UNSUBSCRIBE carry flags 0010.
        6 => flags == 2 && len >= 2,
        SUBSCRIBE | UNSUBSCRIBE => flags == 2 && len >= 5,
        // SUBACK, UNSUBACK
        9 => flags == 0 && len >= 3,
        11 => flags == 0 && len >= 2,
        PINGREQ | PINGRESP => flags == 0 && len == 0,
        // DISCONNECT (5 may add a reason), AUTH (5 only).
        14 => flags == 0 && len <= 64,
        15 => flags == 0,
        _ => false,
    }
}

/// A topic at `at` within a packet ending at `end`: printable, no wildcards in PUBLISH.
fn topic(b: &[u8], at: usize, end: usize, publish: bool) -> Option<&[u8]> {
    let n = usize::from(be16(b, at)?);
    let t = b.get(at + 2..at + 2 + n)?;
    let ok = n > 0
        && at + 2 + n <= end
        && printable(t)
        && !(publish && t.iter().any(|&c| c == b'+' || c == b'#'));
    ok.then_some(t)
}

/// Mid-connection: consecutive control packets from the start of the bytes, each with a
/// valid fixed header, until one carrying a topic (PUBLISH, SUBSCRIBE, UNSUBSCRIBE) or a
/// CONNECT proves MQTT. A topic-carrying packet alone is not enough: another whole packet
/// must precede or follow it, so both ends of its length are confirmed; alone, and
/// ending exactly where the bytes do (a subscriber's capture that begins with one
/// PUBLISH before the connection closes), it is likely MQTT. Without a topic,
/// [`ACK_RUN`] acknowledgements (PUBACK, PUBREC, PUBREL, PUBCOMP) in a row whose packet
/// ids go up by one prove it too: a QoS 1 or 2 subscriber's side of a connection whose
/// other side the capture missed (an asymmetric route) is nothing but those.
pub(crate) fn packets(b: &[u8]) -> Check {
    let mut at = 0;
    let mut whole = 0;
    // The acknowledgements in a row so far, and the packet id of the last one.
    let (mut acks, mut last_id) = (0, 0u16);
    let mut found: Option<(&'static str, Value)> = None;
    for _ in 0..MAX_PACKETS {
        let Some(&first) = b.get(at) else {
            return Check::More;
        };
        let (kind, flags) = (first >> 4, first & 0x0f);
        let (len, body) = match remaining(b, at + 1) {
            Err(()) => return Check::No,
            Ok(None) => return Check::More,
            Ok(Some(r)) => r,
        };
        if len > MAX_REMAINING || !header_ok(kind, flags, len) {
            return Check::No;
        }
        let end = body + len;
        if found.is_none() {
            let publish = kind == PUBLISH;
            match kind {
                PUBLISH | SUBSCRIBE | UNSUBSCRIBE => {
                    // SUBSCRIBE / UNSUBSCRIBE: packet id first.
                    let t_at = if publish { body } else { body + 2 };
                    if b.len() < (t_at + 2).min(end) {
                        return Check::More;
                    }
                    let Some(t) = topic(b, t_at, end, publish) else {
                        return if b.len()
                            < end.min(t_at + 2 + usize::from(be16(b, t_at).unwrap_or(0)))
                        {
                            Check::More
                        } else {
                            Check::No
                        };
                    };
                    let name = match kind {
                        PUBLISH => "PUBLISH",
                        SUBSCRIBE => "SUBSCRIBE",
                        _ => "UNSUBSCRIBE",
                    };
                    found = Some((name, json!(String::from_utf8_lossy(t))));
                }
                CONNECT => found = Some(("CONNECT", Value::Null)),
                _ => {}
            }
        }
        if b.len() < end {
            return Check::More;
        }
        whole += 1;
        at = end;
        if (4..=7).contains(&kind) && len == 2 {
            let id = be16(b, body).unwrap_or(0);
            acks = if acks > 0 && id == last_id.wrapping_add(1) {
                acks + 1
            } else {
                1
            };
            last_id = id;
            if acks >= ACK_RUN && found.is_none() {
                let name = ["PUBACK", "PUBREC", "PUBREL", "PUBCOMP"][usize::from(kind - 4)];
                return yes(AppProtocol::Mqtt, detail([("packet", json!(name))]));
            }
        } else {
            acks = 0;
        }
        if let Some((packet, topic)) = &found {
            let d = || detail([("packet", json!(packet)), ("topic", topic.clone())]);
            if whole >= 2 || *packet == "CONNECT" {
                return yes(AppProtocol::Mqtt, d());
            }
            // A topic packet that is all this side sent so far: its end is the end of
            // the bytes. Likely, if the connection says nothing more precise.
            if at == b.len() {
                return Check::Likely(AppProtocol::Mqtt, d());
            }
        }
    }
    Check::No
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNECT_311: &[u8] = b"\x10\x1a\x00\x04MQTT\x04\x02\x00\x3c\x00\x0emosquitto_pub1";

    #[test]
    fn connect_versions() {
        match connect(CONNECT_311) {
            Check::Yes(_, d) => assert_eq!(d["version"], "3.1.1"),
            c => panic!("{c:?}"),
        }
        let v31 = b"\x10\x40\x00\x06MQIsdp\x03\xc2\x00\x14\x00\x16cbaabcbabacbbbbbaaaaab";
        match connect(v31) {
            Check::Yes(_, d) => assert_eq!(d["version"], "3.1"),
            c => panic!("{c:?}"),
        }
        // The protocol level and flags (byte 10) decide.
        for n in 0..10 {
            assert_eq!(connect(&CONNECT_311[..n]), Check::More, "{n}");
        }
    }

    #[test]
    fn connack() {
        assert!(matches!(
            super::connack(b"\x20\x02\x00\x00"),
            Check::Yes(..)
        ));
        assert_eq!(super::connack(b"\x20\x02\x00\x09"), Check::No);
    }

    #[test]
    fn packets_mid_connection() {
        // PINGREQ, PUBACK, then a QoS 1 retained PUBLISH.
        let mut b = b"\xc0\x00\x40\x02\x00\x02\x33\x10\x00\x09Bus17Info\x00\x05hi!".to_vec();
        match packets(&b) {
            Check::Yes(_, d) => {
                assert_eq!(d["packet"], "PUBLISH");
                assert_eq!(d["topic"], "Bus17Info");
            }
            c => panic!("{c:?}"),
        }
        // A PUBLISH alone is likely MQTT (the answer if no more bytes come), and waits
        // for a second packet to say yes; cut short, it is a prefix.
        let publish = b.split_off(6);
        assert!(matches!(packets(&publish), Check::Likely(..)));
        assert_eq!(packets(&publish[..publish.len() - 1]), Check::More);
        let mut two = publish.clone();
        two.extend_from_slice(b"\xe0\x00");
        assert!(matches!(packets(&two), Check::Yes(..)));
    }

    #[test]
    fn acknowledgements_in_a_row() {
        // A QoS 1 subscriber's PUBACKs for packets 1 to 4 (pypacker's
        // mqtt_over_linuxcc.pcap has 21 such, and not the broker's side).
        let acks = b"\x40\x02\x00\x01\x40\x02\x00\x02\x40\x02\x00\x03\x40\x02\x00\x04";
        match packets(acks) {
            Check::Yes(_, d) => assert_eq!(d["packet"], "PUBACK"),
            c => panic!("{c:?}"),
        }
        // Three are not enough yet; ids that skip, or come back, never are.
        assert_eq!(packets(&acks[..12]), Check::More);
        let skipping = b"\x40\x02\x00\x01\x40\x02\x00\x03\x40\x02\x00\x04\x40\x02\x00\x05";
        assert_eq!(packets(skipping), Check::More);
        let mut same = b"\x40\x02\x00\x07".repeat(MAX_PACKETS);
        assert_eq!(packets(&same), Check::No);
        same.truncate(16);
        assert_eq!(packets(&same), Check::More);
        // QoS 2's PUBREC, PUBREL, PUBCOMP run too, across the wrap of the id.
        let qos2 = b"\x50\x02\xff\xfe\x62\x02\xff\xff\x70\x02\x00\x00\x50\x02\x00\x01";
        assert!(matches!(packets(qos2), Check::Yes(..)));
    }

    #[test]
    fn not_mqtt() {
        // CONNECT for another protocol name.
        assert_eq!(
            connect(b"\x10\x10\x00\x04AMQP\x04\x02\x00\x3c\x00\x00"),
            Check::No
        );
        // Reserved flag set.
        assert_eq!(
            connect(b"\x10\x10\x00\x04MQTT\x04\x03\x00\x3c\x00\x00"),
            Check::No
        );
        // PINGREQ with a body; SUBSCRIBE with wrong flags.
        assert_eq!(packets(b"\xc0\x01\x00"), Check::No);
        assert_eq!(packets(b"\x80\x05\x00\x01\x00\x01a"), Check::No);
        // PUBLISH with a wildcard topic.
        assert_eq!(packets(b"\x30\x05\x00\x03a/#\xe0\x00"), Check::No);
        // TLS application data.
        assert_eq!(packets(b"\x17\x03\x03\x00\x20"), Check::No);
    }
}
