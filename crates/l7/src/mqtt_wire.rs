//! MQTT wire helpers for [`crate::mqtt`]: variable byte integers, fixed headers, strings,
//! version 5 properties, and the acknowledgements the proxy writes itself.
//!
//! Every reader takes the bytes held so far and says "need more" (`Ok(None)`) or "not
//! MQTT" (`Err`), never panics: the input is whatever the peer sent.

/// Packet types (high nibble of the first byte).
pub const CONNECT: u8 = 1;
pub const PUBLISH: u8 = 3;
pub const SUBSCRIBE: u8 = 8;

pub type Bad = &'static str;

/// A variable byte integer at `at`: (value, its length). At most 4 bytes (MQTT 1.5.5).
pub fn varint(b: &[u8], at: usize) -> Result<Option<(usize, usize)>, Bad> {
    let mut v = 0usize;
    for k in 0..4 {
        let Some(&c) = b.get(at + k) else {
            return Ok(None);
        };
        v |= usize::from(c & 0x7f) << (7 * k);
        if c & 0x80 == 0 {
            return Ok(Some((v, k + 1)));
        }
    }
    Err("malformed remaining length")
}

/// The fixed header: (first byte, remaining length, header length).
pub fn fixed(b: &[u8]) -> Result<Option<(u8, usize, usize)>, Bad> {
    let Some(&b0) = b.first() else {
        return Ok(None);
    };
    Ok(varint(b, 1)?.map(|(rem, n)| (b0, rem, 1 + n)))
}

pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// A length-prefixed UTF-8 string at `at` in a complete buffer: (text, next offset).
pub fn string(b: &[u8], at: usize) -> Result<(String, usize), Bad> {
    let n = usize::from(u16_at(b, at).ok_or("truncated string")?);
    let s = b.get(at + 2..at + 2 + n).ok_or("truncated string")?;
    let s = std::str::from_utf8(s).map_err(|_| "string is not UTF-8")?;
    Ok((s.to_string(), at + 2 + n))
}

/// The Topic Alias (0x23) among version 5 properties, skipping the others by their type
/// (MQTT 5 section 2.2.2.2): an unknown identifier means we cannot read the rest.
pub fn topic_alias(props: &[u8]) -> Result<Option<u16>, Bad> {
    let mut at = 0;
    let mut alias = None;
    while at < props.len() {
        let id = props[at];
        at += 1;
        let len = match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2a => 1,
            0x13 | 0x21 | 0x22 | 0x23 => 2,
            0x02 | 0x11 | 0x18 | 0x27 => 4,
            0x0b => varint(props, at)?.ok_or("truncated property")?.1,
            0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1a | 0x1c | 0x1f => {
                2 + usize::from(u16_at(props, at).ok_or("truncated property")?)
            }
            0x26 => {
                let k = 2 + usize::from(u16_at(props, at).ok_or("truncated property")?);
                k + 2 + usize::from(u16_at(props, at + k).ok_or("truncated property")?)
            }
            _ => return Err("unknown property"),
        };
        if id == 0x23 {
            alias = u16_at(props, at);
        }
        at += len;
        if at > props.len() {
            return Err("truncated property");
        }
    }
    Ok(alias)
}

/// A packet of type `first` with `body` as its variable header and payload.
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut n = body.len();
    loop {
        let mut c = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            c |= 0x80;
        }
        out.push(c);
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// Reason code Not authorized (MQTT 5); 3.1.1 has only 0x80 for a failed subscription.
pub const NOT_AUTHORIZED: u8 = 0x87;

/// SUBACK refusing every one of `n` filters.
pub fn suback_failure(pid: u16, n: usize, v5: bool) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    if v5 {
        body.push(0); // no properties
    }
    body.resize(body.len() + n, if v5 { NOT_AUTHORIZED } else { 0x80 });
    packet(0x90, &body)
}

/// PUBACK (0x40) or PUBREC (0x50) for `pid`, with Not authorized in version 5.
pub fn ack(first: u8, pid: u16, v5: bool) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    if v5 {
        body.push(NOT_AUTHORIZED);
    }
    packet(first, &body)
}
