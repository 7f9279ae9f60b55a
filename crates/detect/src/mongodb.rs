//! MongoDB wire protocol: requests from a client (responseTo 0) and replies from a
//! server (responseTo naming the request), validated to the first BSON document.
//!
//! Hand-written: the `bson` crate's raw document reader checks the same length and
//! terminator (lazily) and would bring its serde/time/uuid stack for two checks; the
//! message header and sections are ours in any case.

use bulkhead_policy::l7::AppProtocol;
use serde_json::json;

use crate::Check;
use crate::wire::{detail, le32, printable, yes};

const OP_REPLY: u32 = 1;
const OP_UPDATE: u32 = 2001;
const OP_INSERT: u32 = 2002;
const OP_QUERY: u32 = 2004;
const OP_GET_MORE: u32 = 2005;
const OP_DELETE: u32 = 2006;
const OP_KILL_CURSORS: u32 = 2007;
const OP_COMPRESSED: u32 = 2012;
const OP_MSG: u32 = 2013;
/// The server's default maxMessageSizeBytes.
const MAX_MESSAGE: usize = 48_000_000;
/// Header (16) + at least a minimal document (5).
const MIN_MESSAGE: usize = 21;

fn opname(op: u32) -> &'static str {
    match op {
        OP_REPLY => "OP_REPLY",
        OP_UPDATE => "OP_UPDATE",
        OP_INSERT => "OP_INSERT",
        OP_QUERY => "OP_QUERY",
        OP_GET_MORE => "OP_GET_MORE",
        OP_DELETE => "OP_DELETE",
        OP_KILL_CURSORS => "OP_KILL_CURSORS",
        OP_COMPRESSED => "OP_COMPRESSED",
        _ => "OP_MSG",
    }
}

/// A client's message: an opcode clients send, and responseTo 0 (drivers never set it on
/// a request; a nonzero one is a reply or not MongoDB).
pub(crate) fn request(b: &[u8]) -> Check {
    message(b, true)
}

/// A server's reply: OP_REPLY / OP_MSG / OP_COMPRESSED answering a request id.
pub(crate) fn reply(b: &[u8]) -> Check {
    message(b, false)
}

/// Opcodes a client sends.
fn client_op(op: u32) -> bool {
    matches!(
        op,
        OP_UPDATE
            | OP_INSERT
            | OP_QUERY
            | OP_GET_MORE
            | OP_DELETE
            | OP_KILL_CURSORS
            | OP_COMPRESSED
            | OP_MSG
    )
}

/// Opcodes a server answers with.
fn server_op(op: u32) -> bool {
    matches!(op, OP_REPLY | OP_COMPRESSED | OP_MSG)
}

/// Could a header that is not all in yet start a message of this direction? Each field
/// is judged on the bytes of it that are in: a short message of another protocol (an
/// LDAP bind is 14 bytes) must not wait for a 16th byte that never comes.
fn partial_header_ok(b: &[u8], from_client: bool) -> bool {
    // The length is little-endian and below 48 MB: its last byte is small.
    let len_ok = b.get(3).is_none_or(|&c| c <= 2);
    // A request's responseTo is 0.
    let response_to_ok = !from_client || b.iter().take(12).skip(8).all(|&c| c == 0);
    // Every opcode is below 2^16; those whose low 16 bits are in must be known.
    let op_ok = b.get(14).is_none_or(|&c| c == 0)
        && match (b.get(12), b.get(13)) {
            (Some(&lo), Some(&hi)) => {
                let op = u32::from(u16::from_le_bytes([lo, hi]));
                if from_client {
                    client_op(op)
                } else {
                    server_op(op)
                }
            }
            _ => true,
        };
    len_ok && response_to_ok && op_ok
}

fn message(b: &[u8], from_client: bool) -> Check {
    if b.len() < 16 {
        return if partial_header_ok(b, from_client) {
            Check::More
        } else {
            Check::No
        };
    }
    let len = le32(b, 0).unwrap_or(0) as usize;
    let response_to = le32(b, 8).unwrap_or(0);
    let op = le32(b, 12).unwrap_or(0);
    let op_ok = if from_client {
        response_to == 0 && client_op(op)
    } else {
        response_to != 0 && server_op(op)
    };
    if !(MIN_MESSAGE..=MAX_MESSAGE).contains(&len) || !op_ok {
        return Check::No;
    }
    // Only a whole message is proof: TLS records and other binary pass a header check.
    let Some(m) = b.get(..len) else {
        return Check::More;
    };
    if body_ok(m, op) {
        yes(
            AppProtocol::Mongodb,
            detail([("opcode", json!(opname(op)))]),
        )
    } else {
        Check::No
    }
}

/// A BSON document at `at` that ends inside `m` with its terminating zero, and whose
/// first element (if any) has a known type.
fn document_at(m: &[u8], at: usize) -> Option<usize> {
    let len = le32(m, at)? as usize;
    let end = at.checked_add(len)?;
    if len < 5 || end > m.len() || m[end - 1] != 0 {
        return None;
    }
    let first = m[at + 4];
    let known = matches!(first, 0x00..=0x13 | 0x7f | 0xff);
    (known && (first != 0 || len == 5)).then_some(end)
}

fn body_ok(m: &[u8], op: u32) -> bool {
    match op {
        // flags (only bits 0, 1 and 16 are defined), then sections to the end (or a
        // 4-byte checksum when bit 0 is set).
        OP_MSG => {
            let flags = le32(m, 16).unwrap_or(u32::MAX);
            if flags & !0x0001_0003 != 0 {
                return false;
            }
            let end = m.len() - if flags & 1 != 0 { 4 } else { 0 };
            let mut at = 20;
            let mut body = false;
            while at < end {
                match m[at] {
                    0 => match document_at(&m[..end], at + 1) {
                        Some(next) => (at, body) = (next, true),
                        None => return false,
                    },
                    1 => {
                        // size (including itself), identifier cstring, documents.
                        let Some(size) = le32(m, at + 1).map(|s| s as usize) else {
                            return false;
                        };
                        if size < 5 || at + 1 + size > end {
                            return false;
                        }
                        at += 1 + size;
                    }
                    _ => return false,
                }
            }
            body
        }
        // flags, "db.collection\0", skip, return, then the query document.
        OP_QUERY => {
            let name = &m[20.min(m.len())..];
            let Some(nul) = name.iter().position(|&c| c == 0) else {
                return false;
            };
            name[..nul].contains(&b'.')
                && printable(&name[..nul])
                && document_at(m, 20 + nul + 1 + 8).is_some()
        }
        // flags, cursor id (8), starting from, number returned, documents.
        OP_REPLY => {
            let returned = le32(m, 32).unwrap_or(u32::MAX);
            returned == 0 && m.len() == 36 || document_at(m, 36).is_some()
        }
        // original opcode, uncompressed size, compressor id (noop, snappy, zlib, zstd).
        OP_COMPRESSED => {
            matches!(le32(m, 16), Some(OP_QUERY | OP_MSG | OP_REPLY))
                && m.get(24).is_some_and(|&c| c <= 3)
        }
        // Legacy writes and cursor ops: a namespace or a cursor count; the header and
        // length are the evidence.
        _ => m.len() >= 24,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op_msg(response_to: u32, doc: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(&7u32.to_le_bytes());
        m.extend_from_slice(&response_to.to_le_bytes());
        m.extend_from_slice(&OP_MSG.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.push(0);
        m.extend_from_slice(doc);
        let n = m.len() as u32;
        m[..4].copy_from_slice(&n.to_le_bytes());
        m
    }

    /// {"ping": 1, "$db": "admin"}
    const PING: &[u8] =
        b"\x1e\x00\x00\x00\x10ping\x00\x01\x00\x00\x00\x02$db\x00\x06\x00\x00\x00admin\x00\x00";

    #[test]
    fn op_msg_request_and_reply() {
        let req = op_msg(0, PING);
        assert!(matches!(request(&req), Check::Yes(..)));
        assert_eq!(reply(&req), Check::No);
        let rep = op_msg(
            7,
            b"\x11\x00\x00\x00\x01ok\x00\x00\x00\x00\x00\x00\x00\xf0\x3f\x00",
        );
        assert!(matches!(reply(&rep), Check::Yes(..)));
        for n in 0..req.len() {
            assert_eq!(request(&req[..n]), Check::More, "{n}");
        }
    }

    #[test]
    fn op_query_with_a_nonzero_response_to_is_not_a_request() {
        // A getnonce OP_QUERY whose responseTo is -1: not what a driver sends.
        let mut q = Vec::new();
        q.extend_from_slice(&[0x49, 0, 0, 0, 0x87, 0x91, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        q.extend_from_slice(&OP_QUERY.to_le_bytes());
        q.extend_from_slice(&[0; 4]);
        q.extend_from_slice(b"InactiveUserIdentity.$cmd\x00\x00\x00\x00\x00\x01\x00\x00\x00");
        q.extend_from_slice(b"\x13\x00\x00\x00\x10getnonce\x00\x01\x00\x00\x00\x00");
        q[0] = q.len() as u8;
        assert_eq!(request(&q), Check::No);
        q[8..12].copy_from_slice(&[0; 4]);
        assert!(matches!(request(&q), Check::Yes(..)));
    }

    #[test]
    fn a_short_message_of_another_protocol_is_not_a_header_in_waiting() {
        // ldapsearch's anonymous simple bind: 14 bytes, whose responseTo bytes are not 0.
        let bind = b"\x30\x0c\x02\x01\x01\x60\x07\x02\x01\x03\x04\x00\x80\x00";
        assert_eq!(request(bind), Check::No);
        // Prefixes of a reply, and of a request up to its opcode, still wait.
        let rep = op_msg(7, PING);
        for n in 0..16 {
            assert_eq!(reply(&rep[..n]), Check::More, "{n}");
        }
        // An unknown opcode is refused once its low bytes are in.
        let mut odd = op_msg(0, PING);
        odd[12] = 0x99;
        assert_eq!(request(&odd[..14]), Check::No);
    }

    #[test]
    fn not_mongodb() {
        // TLS records: length and opcode do not fit.
        assert_eq!(
            request(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\x00\x00\x00\x00"),
            Check::No
        );
        // A document without its terminator.
        let mut bad = op_msg(0, PING);
        let last = bad.len() - 1;
        bad[last] = 1;
        assert_eq!(request(&bad), Check::No);
    }
}
