//! The bytes of each TCP flow of a capture, in order, for replaying them through the
//! proxy's protocol sessions offline (`bulkhead dpi inspect --capture`): what the
//! sensors would have found in a connection, from a capture of it.
//!
//! The reader is detection's ([`super::read_capture`]): the same flows, reassembly and
//! protocol. Each flow keeps up to a limit of bytes as the ordered turns of its two
//! sides; a gap the capture never filled ends what is kept (bytes after it cannot be
//! framed), and says so.

use super::{FlowResult, Flows, judged, read_into};

/// One TCP flow's bytes in the order they were delivered, side by side.
#[derive(Clone, Debug, Default)]
pub(super) struct Kept {
    turns: Vec<(bool, Vec<u8>)>,
    bytes: usize,
    /// Why keeping stopped early: bytes lost to a gap, or the limit reached.
    cut: Option<&'static str>,
}

impl Kept {
    pub(super) fn open(&self) -> bool {
        self.cut.is_none()
    }

    /// In-order bytes from one side (`from_first`: the side fed to the detector as
    /// the client), up to `limit` bytes in all.
    pub(super) fn push(&mut self, from_first: bool, data: &[u8], limit: usize) {
        if data.is_empty() || self.cut.is_some() {
            return;
        }
        let room = limit.saturating_sub(self.bytes);
        let data = &data[..data.len().min(room)];
        self.bytes += data.len();
        match self.turns.last_mut() {
            Some((side, b)) if *side == from_first => b.extend_from_slice(data),
            _ => self.turns.push((from_first, data.to_vec())),
        }
        if self.bytes >= limit {
            self.cut = Some("the bytes kept per flow ran out");
        }
    }

    /// The capture lost bytes of this flow: what follows would be misread.
    pub(super) fn lose(&mut self) {
        self.cut.get_or_insert("the capture lost bytes of it");
    }
}

/// One TCP flow: its detection result and its bytes.
#[derive(Clone, Debug)]
pub struct Conversation {
    pub flow: FlowResult,
    /// The turns of the conversation in order: `true` for the client's bytes.
    pub turns: Vec<(bool, Vec<u8>)>,
    /// Why the turns stop before the flow's end, if they do.
    pub cut: Option<&'static str>,
    /// The capture holds the connection's handshake, so the turns are its first bytes
    /// (not a connection the capture joined midway).
    pub opened: bool,
}

/// Every TCP flow of a capture with up to `limit` of its bytes, and why reading the
/// file stopped early, if it did (as [`super::Capture::damage`]).
pub fn read_conversations(
    bytes: &[u8],
    limit: usize,
) -> Result<(Vec<Conversation>, Option<String>), String> {
    let mut flows = Flows {
        keep: limit.max(1),
        ..Flows::default()
    };
    let damage = read_into(bytes, &mut flows)?;
    let conversations = flows
        .finished()
        .map(|f| (f.handshake, judged(f)))
        .filter(|(_, (f, _, _))| f.l4 == "TCP")
        .map(|(opened, (flow, swapped, kept))| Conversation {
            flow,
            // Turns were kept by the side fed as the client; the result may say the
            // other side is.
            turns: (kept.turns.into_iter())
                .map(|(first, b)| (first != swapped, b))
                .collect(),
            cut: kept.cut,
            opened,
        })
        .collect();
    Ok((conversations, damage))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::tests::pcap;
    use etherparse::PacketBuilder;

    /// A segment of 10.0.0.1:40000 <-> 10.0.0.2:80: the client's if `client`.
    fn segment(client: bool, seq: u32, syn: bool, data: &[u8]) -> Vec<u8> {
        let (a, b, pa, pb) = if client {
            ([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80)
        } else {
            ([10, 0, 0, 2], [10, 0, 0, 1], 80, 40000)
        };
        let mut out = Vec::new();
        let t = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(a, b, 64)
            .tcp(pa, pb, seq, 8192);
        let t = if syn { t.syn() } else { t.ack(1) };
        t.write(&mut out, data).unwrap();
        out
    }

    #[test]
    fn turns_in_order_and_a_gap_cuts_them() {
        let req = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        let req2 = b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
        let r1 = req.len() as u32;
        let frames = [
            segment(true, 0, true, b""),
            // The request in two segments, the second first (out of order).
            segment(true, 11, false, &req[10..]),
            segment(true, 1, false, &req[..10]),
            segment(false, 1, false, resp),
            segment(true, 1 + r1, false, req2),
        ];
        let (c, damage) = read_conversations(&pcap(&frames), 1 << 20).unwrap();
        assert!(damage.is_none());
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].flow.protocol, "http");
        let turns: Vec<(bool, &[u8])> = c[0].turns.iter().map(|(s, b)| (*s, &b[..])).collect();
        assert_eq!(
            turns,
            [(true, &req[..]), (false, &resp[..]), (true, &req2[..])]
        );
        assert_eq!(c[0].cut, None);
        // A segment lost for good: the turns stop before it, and say why.
        let lost = [
            segment(true, 0, true, b""),
            segment(true, 1, false, req),
            segment(true, 100 + r1, false, b"x"),
            segment(true, 200 + r1, false, b"y"),
        ];
        let (c, _) = read_conversations(&pcap(&lost), 1 << 20).unwrap();
        assert_eq!(c[0].turns, [(true, req.to_vec())]);
        assert_eq!(c[0].cut, Some("the capture lost bytes of it"));
        // The limit.
        let (c, _) = read_conversations(&pcap(&frames), 12).unwrap();
        assert_eq!(c[0].turns, [(true, req[..12].to_vec())]);
        assert!(c[0].cut.is_some());
    }
}
