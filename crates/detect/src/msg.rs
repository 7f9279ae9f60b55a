//! Messaging and directories: Kafka, LDAP, MQTT, AMQP.

use bulkhead_policy::l7::AppProtocol;
use serde_json::json;

use crate::{Check, be16, be32, detail, printable, yes};

/// Kafka API keys 0-74 by name (the ones clients send most are what events show).
const KAFKA_APIS: &[&str] = &[
    "Produce",
    "Fetch",
    "ListOffsets",
    "Metadata",
    "LeaderAndIsr",
    "StopReplica",
    "UpdateMetadata",
    "ControlledShutdown",
    "OffsetCommit",
    "OffsetFetch",
    "FindCoordinator",
    "JoinGroup",
    "Heartbeat",
    "LeaveGroup",
    "SyncGroup",
    "DescribeGroups",
    "ListGroups",
    "SaslHandshake",
    "ApiVersions",
    "CreateTopics",
    "DeleteTopics",
    "DeleteRecords",
    "InitProducerId",
    "OffsetForLeaderEpoch",
    "AddPartitionsToTxn",
    "AddOffsetsToTxn",
    "EndTxn",
    "WriteTxnMarkers",
    "TxnOffsetCommit",
    "DescribeAcls",
    "CreateAcls",
    "DeleteAcls",
    "DescribeConfigs",
    "AlterConfigs",
    "AlterReplicaLogDirs",
    "DescribeLogDirs",
    "SaslAuthenticate",
    "CreatePartitions",
    "CreateDelegationToken",
    "RenewDelegationToken",
    "ExpireDelegationToken",
    "DescribeDelegationToken",
    "DeleteGroups",
    "ElectLeaders",
    "IncrementalAlterConfigs",
    "AlterPartitionReassignments",
    "ListPartitionReassignments",
    "OffsetDelete",
    "DescribeClientQuotas",
    "AlterClientQuotas",
    "DescribeUserScramCredentials",
    "AlterUserScramCredentials",
];

/// A Kafka request header: size, api key, api version, correlation id, client id.
pub fn kafka_request(b: &[u8]) -> Check {
    if b.len() < 14 {
        return Check::More;
    }
    let size = be32(b, 0).unwrap_or(0) as usize;
    let (key, version) = (
        be16(b, 4).unwrap_or(u16::MAX),
        be16(b, 6).unwrap_or(u16::MAX),
    );
    let client_len = be16(b, 12).unwrap_or(0) as i16;
    if !(10..=100 << 20).contains(&size) || usize::from(key) >= KAFKA_APIS.len() || version > 20 {
        return Check::No;
    }
    if client_len < -1 || 10 + client_len.max(0) as usize > size {
        return Check::No;
    }
    let client = if client_len > 0 {
        let Some(id) = b.get(14..14 + client_len as usize) else {
            return Check::More;
        };
        if !printable(id) {
            return Check::No;
        }
        Some(String::from_utf8_lossy(id).into_owned())
    } else {
        None
    };
    yes(
        AppProtocol::Kafka,
        detail([
            ("api", json!(KAFKA_APIS[usize::from(key)])),
            ("api_version", json!(version)),
            ("client_id", json!(client)),
        ]),
    )
}

/// A BER length at `at`: (length, index after it).
fn ber_len(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let first = *b.get(at)?;
    if first < 0x80 {
        return Some((usize::from(first), at + 1));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = len << 8 | usize::from(*b.get(at + 1 + i)?);
    }
    Some((len, at + 1 + n))
}

/// LDAPMessage: SEQUENCE { messageID INTEGER, protocolOp [APPLICATION n] ... }.
pub fn ldap(b: &[u8]) -> Check {
    if b.len() < 7 {
        return if b.is_empty() || b[0] == 0x30 {
            Check::More
        } else {
            Check::No
        };
    }
    let Some((len, at)) = ber_len(b, 1).filter(|_| b[0] == 0x30) else {
        return Check::No;
    };
    if !(5..=1 << 24).contains(&len) || b.get(at) != Some(&0x02) {
        return Check::No;
    }
    let id_len = usize::from(*b.get(at + 1).unwrap_or(&0));
    if !(1..=4).contains(&id_len) {
        return Check::No;
    }
    let op_at = at + 2 + id_len;
    let Some(&op) = b.get(op_at) else {
        return Check::More;
    };
    let name = match op {
        0x60 => "bind",
        0x61 => "bindResponse",
        0x42 => "unbind",
        0x63 => "search",
        0x64 => "searchResEntry",
        0x65 => "searchResDone",
        0x73 => "searchResRef",
        0x66 => "modify",
        0x67 => "modifyResponse",
        0x68 => "add",
        0x69 => "addResponse",
        0x4a => "delete",
        0x6b => "delResponse",
        0x6c => "modifyDN",
        0x6d => "modDNResponse",
        0x6e => "compare",
        0x6f => "compareResponse",
        0x50 => "abandon",
        0x77 => "extended",
        0x78 => "extendedResponse",
        0x79 => "intermediateResponse",
        _ => return Check::No,
    };
    // The operation's own length must fit inside the message.
    let Some((op_len, op_body)) = ber_len(b, op_at + 1) else {
        return Check::More;
    };
    if op_body + op_len > at + len {
        return Check::No;
    }
    yes(AppProtocol::Ldap, detail([("operation", json!(name))]))
}

/// MQTT remaining length (1-4 bytes, 7 bits each): (length, index after it).
fn mqtt_len(b: &[u8], at: usize) -> Option<Option<(usize, usize)>> {
    let mut len = 0usize;
    for i in 0..4 {
        let Some(&c) = b.get(at + i) else {
            return Some(None);
        };
        len |= usize::from(c & 0x7f) << (7 * i);
        if c & 0x80 == 0 {
            return Some(Some((len, at + i + 1)));
        }
    }
    None
}

/// CONNECT with protocol name MQTT (3.1.1, 5) or MQIsdp (3.1); or (mid-connection)
/// PUBLISH / SUBSCRIBE packets with a printable topic.
pub fn mqtt_connect(b: &[u8]) -> Check {
    let Some(&first) = b.first() else {
        return Check::More;
    };
    let Some(len) = mqtt_len(b, 1) else {
        return Check::No;
    };
    let Some((len, at)) = len else {
        return Check::More;
    };
    match first {
        0x10 => {
            let Some(name_len) = be16(b, at) else {
                return Check::More;
            };
            let Some(name) = b.get(at + 2..at + 2 + usize::from(name_len)) else {
                return Check::More;
            };
            let Some(&level) = b.get(at + 2 + usize::from(name_len)) else {
                return Check::More;
            };
            let ok = (name == b"MQTT" && (level == 4 || level == 5))
                || (name == b"MQIsdp" && level == 3);
            let flags = b.get(at + 3 + usize::from(name_len)).copied().unwrap_or(0);
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
        // PUBLISH (any flags but QoS 3) and SUBSCRIBE (flags 0010): a topic, then the packet
        // ends where its length says and the next one (if any) starts with a valid type.
        0x30..=0x3d | 0x82 => {
            if first & 0x06 == 0x06 {
                return Check::No;
            }
            let topic_at = if first == 0x82 { at + 2 } else { at };
            let Some(tl) = be16(b, topic_at) else {
                return Check::More;
            };
            let Some(topic) = b.get(topic_at + 2..topic_at + 2 + usize::from(tl)) else {
                return Check::More;
            };
            if tl == 0 || !printable(topic) || topic_at + 2 + usize::from(tl) > at + len {
                return Check::No;
            }
            if let Some(&next) = b.get(at + len)
                && !(0x10..=0xe0).contains(&(next & 0xf0))
            {
                return Check::No;
            }
            yes(
                AppProtocol::Mqtt,
                detail([
                    (
                        "packet",
                        json!(if first == 0x82 {
                            "SUBSCRIBE"
                        } else {
                            "PUBLISH"
                        }),
                    ),
                    ("topic", json!(String::from_utf8_lossy(topic))),
                ]),
            )
        }
        _ => Check::No,
    }
}

/// CONNACK: 0x20, remaining length 2 (3.x: flags 0/1, return code 0-5) or more (5).
pub fn mqtt_connack(b: &[u8]) -> Check {
    if b.len() < 4 {
        return if b.first().is_none_or(|&c| c == 0x20) {
            Check::More
        } else {
            Check::No
        };
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

/// The AMQP protocol header (0-9-1, 0-10, 1.0, SASL), or AMQP 0-9-1 frames ending in
/// the frame-end octet.
pub fn amqp_header(b: &[u8]) -> Check {
    const P: &[u8] = b"AMQP";
    if b.len() < 8 {
        let n = b.len().min(4);
        return if b[..n] == P[..n] || frame_prefix(b) {
            Check::More
        } else {
            Check::No
        };
    }
    if b.starts_with(P) {
        let v = &b[4..8];
        return match v {
            [0, 0, 9, 1]
            | [1, 1, 0, 9]
            | [1, 1, 0, 10]
            | [0, 1, 0, 0]
            | [2, 1, 0, 0]
            | [3, 1, 0, 0] => yes(
                AppProtocol::Amqp,
                detail([(
                    "version",
                    json!(format!("{}-{}-{}-{}", v[0], v[1], v[2], v[3])),
                )]),
            ),
            _ => Check::No,
        };
    }
    // type (1 method, 2 header, 3 body, 8 heartbeat), channel, size, payload, 0xCE.
    if !matches!(b[0], 1 | 2 | 3 | 8) {
        return Check::No;
    }
    let size = be32(b, 3).unwrap_or(0) as usize;
    if size > 1 << 20 {
        return Check::No;
    }
    match b.get(7 + size) {
        Some(0xce) if b[0] != 1 || size >= 4 => {
            yes(AppProtocol::Amqp, detail([("frame", json!(b[0]))]))
        }
        Some(_) => Check::No,
        None => Check::More,
    }
}

fn frame_prefix(b: &[u8]) -> bool {
    b.first().is_some_and(|t| matches!(t, 1 | 2 | 3 | 8))
}
