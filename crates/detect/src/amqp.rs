//! AMQP: the protocol header that opens a connection (0-9-1, 0-10, 1.0, and the 1.0
//! SASL / TLS layers), and mid-connection 0-9-1 frames that end in the frame-end octet.

use bulkhead_policy::l7::AppProtocol;
use serde_json::json;

use crate::Check;
use crate::wire::{be32, detail, yes};

const FRAME_END: u8 = 0xce;
/// Frames beyond this are refused by brokers (frame_max defaults to 128 KiB).
const MAX_FRAME: usize = 1 << 20;

/// `AMQP` + version bytes. A server answers an unsupported version with its own header,
/// so this works for either side.
pub(crate) fn header(b: &[u8]) -> Check {
    if b.len() < 8 {
        // The first version byte is a protocol id 0-3.
        let ok = b"AMQP".starts_with(&b[..b.len().min(4)]) && b.get(4).is_none_or(|&c| c <= 3);
        return if ok { Check::More } else { Check::No };
    }
    if !b.starts_with(b"AMQP") {
        return Check::No;
    }
    let v = &b[4..8];
    match v {
        // 0-9-1, 0-10 (1.1.0.10), 0-9 (1.1.0.9), 1.0 (0.1.0.0), 1.0 TLS (2.1.0.0), SASL (3.1.0.0)
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
    }
}

/// Mid-connection 0-9-1 frames: type (1 method, 2 header, 3 body, 8 heartbeat), channel,
/// size, payload, 0xCE; the next frame (if any) starts with a valid type.
pub(crate) fn frames(b: &[u8]) -> Check {
    let Some(&kind) = b.first() else {
        return Check::More;
    };
    if !matches!(kind, 1 | 2 | 3 | 8) {
        return Check::No;
    }
    let Some(size) = be32(b, 3).map(|s| s as usize) else {
        return Check::More;
    };
    // A method frame holds class and method ids (4 bytes); a heartbeat is empty on
    // channel 0.
    let shape_ok = match kind {
        1 => size >= 4,
        8 => size == 0 && b[1] == 0 && b[2] == 0,
        _ => true,
    };
    if size > MAX_FRAME || !shape_ok {
        return Check::No;
    }
    match b.get(7 + size) {
        Some(&FRAME_END) => {}
        Some(_) => return Check::No,
        None => return Check::More,
    }
    match b.get(8 + size) {
        None | Some(1 | 2 | 3 | 8) => yes(AppProtocol::Amqp, detail([("frame", json!(kind))])),
        Some(_) => Check::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_headers() {
        match header(b"AMQP\x00\x00\x09\x01") {
            Check::Yes(_, d) => assert_eq!(d["version"], "0-0-9-1"),
            c => panic!("{c:?}"),
        }
        assert!(matches!(header(b"AMQP\x03\x01\x00\x00"), Check::Yes(..)));
        for n in 0..8 {
            assert_eq!(header(&b"AMQP\x00\x00\x09\x01"[..n]), Check::More, "{n}");
        }
    }

    #[test]
    fn method_frame_mid_connection() {
        // Basic.Publish on channel 1, then a content header frame starts.
        let f = b"\x01\x00\x01\x00\x00\x00\x08\x00\x3c\x00\x28\x00\x00\x00\x00\xce\x02";
        assert!(matches!(frames(f), Check::Yes(..)));
    }

    #[test]
    fn not_amqp() {
        assert_eq!(header(b"AMQP\x09\x09\x09\x09"), Check::No);
        assert_eq!(header(b"AMQX"), Check::No);
        // Missing frame end.
        assert_eq!(
            frames(b"\x01\x00\x01\x00\x00\x00\x04\x00\x0a\x00\x0a\x00"),
            Check::No
        );
        // Heartbeat with a payload.
        assert_eq!(frames(b"\x08\x00\x00\x00\x00\x00\x01\x00\xce"), Check::No);
    }
}
