//! The "modified" libpcap format (magic `0xa1b2cd34`: Alexey Kuznetsov's patch to
//! libpcap for Linux, which some distributions' tcpdump wrote around 2000): the classic
//! file header, then records whose header carries 8 more bytes (interface index,
//! protocol, packet type, padding) after the usual 16. Wireshark reads it; the
//! `pcap-file` crate does not know the magic, so these few lines read it here.

use pcap_file::DataLink;

const MAGIC: u32 = 0xa1b2_cd34;
const FILE_HEADER: usize = 24;
const RECORD_HEADER: usize = 24;
/// A record longer than this is damage, not a packet (Wireshark's limit is 256 KiB).
const MAX_RECORD: usize = 256 * 1024;

/// The file's link type and its records, if `bytes` opens with the magic (either byte
/// order).
pub(super) fn open(bytes: &[u8]) -> Option<(DataLink, Records<'_>)> {
    let magic: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    let big = if u32::from_le_bytes(magic) == MAGIC {
        false
    } else if u32::from_be_bytes(magic) == MAGIC {
        true
    } else {
        return None;
    };
    let link = u32_at(bytes, 20, big)?;
    let records = Records {
        rest: bytes.get(FILE_HEADER..).unwrap_or_default(),
        big,
    };
    Some((DataLink::from(link), records))
}

pub(super) struct Records<'a> {
    rest: &'a [u8],
    big: bool,
}

/// Why reading stopped before the end.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Stop {
    Cut,
    Damaged,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<&'a [u8], Stop>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let Some(len) = u32_at(self.rest, 8, self.big) else {
            self.rest = &[];
            return Some(Err(Stop::Cut));
        };
        let len = len as usize;
        if len > MAX_RECORD {
            self.rest = &[];
            return Some(Err(Stop::Damaged));
        }
        let Some(data) = self.rest.get(RECORD_HEADER..RECORD_HEADER + len) else {
            self.rest = &[];
            return Some(Err(Stop::Cut));
        };
        self.rest = &self.rest[RECORD_HEADER + len..];
        Some(Ok(data))
    }
}

fn u32_at(b: &[u8], at: usize, big: bool) -> Option<u32> {
    let v: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(if big {
        u32::from_be_bytes(v)
    } else {
        u32::from_le_bytes(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file as the patched libpcap wrote it: one Ethernet record.
    fn file(big: bool, frame: &[u8]) -> Vec<u8> {
        let w = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let h = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut f = w(MAGIC).to_vec();
        f.extend(h(2));
        f.extend(h(4));
        f.extend([0; 8]);
        f.extend(w(65535));
        f.extend(w(1));
        f.extend(w(1_142_338_197));
        f.extend(w(0));
        f.extend(w(frame.len() as u32));
        f.extend(w(frame.len() as u32));
        f.extend(w(2)); // interface index
        f.extend(h(0x0800)); // protocol
        f.extend([0, 0]); // packet type, padding
        f.extend(frame);
        f
    }

    #[test]
    fn records_in_either_byte_order() {
        for big in [false, true] {
            let f = file(big, b"frame bytes");
            let (link, records) = open(&f).unwrap();
            assert_eq!(link, DataLink::ETHERNET);
            let got: Vec<_> = records.collect();
            assert_eq!(got, vec![Ok(&b"frame bytes"[..])]);
            // Cut anywhere in the record: the records before it, then `Cut`.
            for n in FILE_HEADER + 1..f.len() {
                let got: Vec<_> = open(&f[..n]).unwrap().1.collect();
                assert_eq!(got, vec![Err(Stop::Cut)], "{n}");
            }
        }
        assert!(open(&0xa1b2_c3d4u32.to_le_bytes()).is_none());
    }

    proptest::proptest! {
        /// Any bytes after the magic, through the whole capture reader: records, or
        /// where they stop, never a panic.
        #[test]
        fn any_bytes_after_the_magic(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), big: bool) {
            let mut f = if big { MAGIC.to_be_bytes() } else { MAGIC.to_le_bytes() }.to_vec();
            f.extend(tail);
            let _ = crate::capture::detect_capture(&f);
        }
    }
}
