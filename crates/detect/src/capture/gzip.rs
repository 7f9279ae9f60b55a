//! Gzip'd captures (`.pcap.gz`, `.pcapng.gz`): Wireshark opens them as they are, and
//! `tcpdump -w - | gzip` or a log shipper writes them.

use std::io::Read;

/// Decompressed bytes read at most: the whole capture is held in memory, and a gzip
/// bomb must not take all of it.
pub(super) const MAX_GUNZIPPED: u64 = 2 << 30;

/// The capture inside a gzip'd file, and why decompression stopped early if it did. A
/// file cut short (a copy still being written) still gives the bytes before the cut,
/// as an uncompressed capture cut short gives its packets.
pub(super) fn gunzip(bytes: &[u8]) -> (Vec<u8>, Option<String>) {
    let mut out = Vec::new();
    let mut reader = flate2::read::MultiGzDecoder::new(bytes).take(MAX_GUNZIPPED + 1);
    let damage = match reader.read_to_end(&mut out) {
        Ok(_) if out.len() as u64 > MAX_GUNZIPPED => {
            out.truncate(MAX_GUNZIPPED as usize);
            Some(format!(
                "more than {} GiB once decompressed: read that far",
                MAX_GUNZIPPED >> 30
            ))
        }
        Ok(_) => None,
        Err(e) => Some(format!(
            "gzip stream stopped after {} decompressed bytes: {e}",
            out.len()
        )),
    };
    (out, damage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn whole_cut_and_concatenated_members() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let z = gz(&data);
        assert_eq!(gunzip(&z), (data.clone(), None));
        // Cut short: a prefix of the data and a reason.
        let (part, why) = gunzip(&z[..z.len() / 2]);
        assert!(data.starts_with(&part) && !part.is_empty());
        assert!(why.unwrap().contains("stopped after"));
        // `cat a.gz b.gz` is one gzip file of both (RFC 1952 2.2).
        let two = [gz(b"abc"), gz(b"def")].concat();
        assert_eq!(gunzip(&two).0, b"abcdef");
    }
}
