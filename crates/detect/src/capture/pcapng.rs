//! pcapng blocks, read for their packets only.
//!
//! Hand-written, over `pcap-file`'s blocks: those check every option string as UTF-8
//! and refuse the whole file for one bad interface description (tcpdump's test capture
//! `smb_data_print-segv.pcapng`), which Wireshark reads. Detection needs only fixed
//! fields: a section's byte order, an interface's link type, a packet's interface and
//! captured bytes. Options are skipped, never read.

use pcap_file::DataLink;

const SECTION_HEADER: u32 = 0x0a0d_0d0a;
const INTERFACE: u32 = 1;
/// The obsolete Packet Block (pcapng's first drafts; some old tools still write it).
const PACKET: u32 = 2;
const SIMPLE_PACKET: u32 = 3;
const ENHANCED_PACKET: u32 = 6;

/// What a block holds, for detection.
pub(super) enum Item<'a> {
    /// A new section: its interfaces are numbered from 0 again.
    Section,
    Interface(DataLink),
    /// A packet captured on the interface with this number in its section.
    Packet(u32, &'a [u8]),
    /// A Simple Packet Block's: the section's first interface.
    SimplePacket(&'a [u8]),
    Other,
}

/// Why reading stopped before the end of the bytes.
pub(super) enum Stop {
    /// The last block goes on past the end of the file.
    Cut,
    Damaged(String),
}

/// The blocks of a pcapng file, in order.
pub(super) struct Blocks<'a> {
    rest: &'a [u8],
    big_endian: bool,
}

impl<'a> Blocks<'a> {
    /// `None` unless `bytes` open with a section header block.
    pub(super) fn new(bytes: &'a [u8]) -> Option<Blocks<'a>> {
        let big_endian = byte_order(bytes)?;
        bytes
            .starts_with(&SECTION_HEADER.to_be_bytes())
            .then_some(Blocks {
                rest: bytes,
                big_endian,
            })
    }

    fn u32_at(&self, b: &[u8], at: usize) -> Option<u32> {
        let w: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        })
    }

    fn u16_at(&self, b: &[u8], at: usize) -> Option<u16> {
        let w: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(if self.big_endian {
            u16::from_be_bytes(w)
        } else {
            u16::from_le_bytes(w)
        })
    }

    /// The next block; after a [`Stop`], nothing more.
    pub(super) fn next(&mut self) -> Option<Result<Item<'a>, Stop>> {
        let item = self.block();
        if matches!(item, Some(Err(_))) {
            self.rest = &[];
        }
        item
    }

    fn block(&mut self) -> Option<Result<Item<'a>, Stop>> {
        if self.rest.is_empty() {
            return None;
        }
        let b = self.rest;
        if b.len() < 12 {
            return Some(Err(Stop::Cut));
        }
        let kind = self.u32_at(b, 0)?;
        if kind == SECTION_HEADER {
            // Each section says its own byte order.
            match byte_order(b) {
                Some(big) => self.big_endian = big,
                None => {
                    return Some(Err(Stop::Damaged(
                        "a section header without its byte-order magic".into(),
                    )));
                }
            }
        }
        let len = self.u32_at(b, 4)? as usize;
        if len < 12 || !len.is_multiple_of(4) {
            return Some(Err(Stop::Damaged(format!("a block of length {len}"))));
        }
        if len > b.len() {
            return Some(Err(Stop::Cut));
        }
        let body = &b[8..len - 4];
        self.rest = &b[len..];
        let at = |at: usize| self.u32_at(body, at);
        // The captured bytes of a packet whose data start at `from`: as many as the
        // record says, never past its block.
        let data = |from: usize, captured: Option<u32>| {
            let end = body
                .len()
                .min(from.saturating_add(captured.unwrap_or(0) as usize));
            body.get(from..end).unwrap_or(&[])
        };
        Some(Ok(match kind {
            SECTION_HEADER => Item::Section,
            INTERFACE => match self.u16_at(body, 0) {
                Some(link) => Item::Interface(DataLink::from(u32::from(link))),
                None => Item::Other,
            },
            ENHANCED_PACKET => Item::Packet(at(0).unwrap_or(u32::MAX), data(20, at(12))),
            PACKET => Item::Packet(
                self.u16_at(body, 0).map_or(u32::MAX, u32::from),
                data(20, at(12)),
            ),
            SIMPLE_PACKET => Item::SimplePacket(data(4, at(0))),
            _ => Item::Other,
        }))
    }
}

/// A section header's byte order, from its magic: `Some(true)` for big-endian.
fn byte_order(section: &[u8]) -> Option<bool> {
    match section.get(8..12)? {
        [0x1a, 0x2b, 0x3c, 0x4d] => Some(true),
        [0x4d, 0x3c, 0x2b, 0x1a] => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let len = (12 + body.len()) as u32;
        [
            &kind.to_le_bytes()[..],
            &len.to_le_bytes(),
            body,
            &len.to_le_bytes(),
        ]
        .concat()
    }

    /// A section, an interface whose description option is not UTF-8 (which
    /// `pcap-file`'s typed blocks refuse, and Wireshark reads), an enhanced packet.
    fn file() -> Vec<u8> {
        let shb = [&0x1a2b_3c4du32.to_le_bytes()[..], &[1, 0, 0, 0], &[0xff; 8]].concat();
        let idb = [
            &[1u8, 0, 0, 0][..],                   // link type 1 (Ethernet), reserved
            &0u32.to_le_bytes(),                   // snap length
            &[3, 0, 4, 0, 0xff, 0xfe, 0xfd, 0xfc], // if_description, not UTF-8
            &[0, 0, 0, 0],                         // end of options
        ]
        .concat();
        let packet = b"abcdef";
        let epb = [
            &0u32.to_le_bytes()[..], // interface 0
            &[0; 8],                 // timestamp
            &6u32.to_le_bytes(),     // captured
            &6u32.to_le_bytes(),     // on the wire
            packet,
            &[0, 0], // padding to 32 bits
        ]
        .concat();
        [
            block(SECTION_HEADER, &shb),
            block(INTERFACE, &idb),
            block(ENHANCED_PACKET, &epb),
        ]
        .concat()
    }

    #[test]
    fn options_that_are_not_text_are_skipped() {
        let f = file();
        let mut b = Blocks::new(&f).unwrap();
        assert!(matches!(b.next(), Some(Ok(Item::Section))));
        assert!(matches!(
            b.next(),
            Some(Ok(Item::Interface(DataLink::ETHERNET)))
        ));
        assert!(matches!(b.next(), Some(Ok(Item::Packet(0, b"abcdef")))));
        assert!(b.next().is_none());
    }

    proptest::proptest! {
        /// Any bytes after a valid section header: blocks or a stop, never a panic, and
        /// the walk ends (each block moves on by its length).
        #[test]
        fn any_bytes_after_a_section_header(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
                                            lens in proptest::collection::vec(0u32..64, 0..8)) {
            let mut f = file();
            // Plausible block headers among the noise, so that blocks are cut too.
            for l in lens {
                f.extend_from_slice(&ENHANCED_PACKET.to_le_bytes());
                f.extend_from_slice(&(l * 4).to_le_bytes());
                f.extend_from_slice(&tail[..tail.len().min(l as usize)]);
            }
            f.extend_from_slice(&tail);
            let mut b = Blocks::new(&f).unwrap();
            let mut steps = 0;
            while b.next().is_some() {
                steps += 1;
                proptest::prop_assert!(steps <= f.len());
            }
        }
    }

    #[test]
    fn a_block_past_the_end_is_a_cut() {
        let f = file();
        let mut b = Blocks::new(&f[..f.len() - 5]).unwrap();
        assert!(matches!(b.next(), Some(Ok(Item::Section))));
        assert!(matches!(b.next(), Some(Ok(Item::Interface(_)))));
        assert!(matches!(b.next(), Some(Err(Stop::Cut))));
        // A length that no block can have is damage, not a cut.
        let mut bad = f.clone();
        bad[4..8].copy_from_slice(&13u32.to_le_bytes());
        let mut b = Blocks::new(&bad).unwrap();
        assert!(matches!(b.next(), Some(Err(Stop::Damaged(_)))));
    }
}
