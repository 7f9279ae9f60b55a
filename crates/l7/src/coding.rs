//! Content codings the sensors read through (RFC 9110 8.4.1): a body compressed with
//! gzip or deflate is inflated as it streams, so DLP sees a response's text, not its
//! compressed bytes. Only what the proxy can read is offered to servers when sensors
//! apply ([`readable_accept_encoding`]): `br` and `zstd` are taken out of the client's
//! `Accept-Encoding`, gzip and deflate stay (most servers' first choice anyway).
//!
//! Bounded: at most [`MAX_DECODED`] bytes of one body are inflated and inspected (as
//! ModSecurity's `SecResponseBodyLimit` with ProcessPartial: the rest passes unread), and
//! compressed bytes are fed in small steps so a decompression bomb never expands far in
//! memory at once.

use std::io::Write;

use flate2::write::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

/// The most of one body inflated for the sensors.
pub const MAX_DECODED: usize = 16 << 20;
/// Compressed bytes per step (deflate expands at most ~1032:1: ~4 MiB per step).
const STEP: usize = 4096;

enum Kind {
    // Every member of a gzip file (RFC 1952 2.2), as Node's and zlib's gunzip read it.
    Gzip(MultiGzDecoder<Vec<u8>>),
    Zlib(ZlibDecoder<Vec<u8>>),
    // `deflate` as PHP's gzdeflate() writes it: raw DEFLATE without the zlib wrapper,
    // which browsers and curl inflate too.
    Raw(DeflateDecoder<Vec<u8>>),
    // `deflate` before its first byte: a zlib header or not decides which.
    Deflate,
}

/// One body's decoder.
pub struct Inflater {
    kind: Kind,
    decoded: usize,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Inflater({} bytes)", self.decoded)
    }
}

impl Inflater {
    /// A decoder for a `Content-Encoding` value the proxy reads (one coding: `gzip`,
    /// `x-gzip` or `deflate`); None for identity, others, or several stacked.
    pub fn for_coding(value: &[u8]) -> Option<Inflater> {
        let v = value.trim_ascii();
        let kind = if v.eq_ignore_ascii_case(b"gzip") || v.eq_ignore_ascii_case(b"x-gzip") {
            Kind::Gzip(MultiGzDecoder::new(Vec::new()))
        } else if v.eq_ignore_ascii_case(b"deflate") {
            Kind::Deflate
        } else {
            return None;
        };
        Some(Inflater { kind, decoded: 0 })
    }

    /// Compressed bytes in; `f` gets the text they decode to, piece by piece. Err when
    /// the bytes do not decode (the caller reads the rest raw). Past [`MAX_DECODED`]
    /// nothing more is decoded.
    pub fn feed(&mut self, data: &[u8], f: &mut impl FnMut(&[u8])) -> std::io::Result<()> {
        if matches!(self.kind, Kind::Deflate) && !data.is_empty() {
            // A zlib stream opens with method 8 (deflate), a window of at most 32 KiB
            // and a check that makes its first two bytes a multiple of 31 (RFC 1950);
            // raw DEFLATE opens with a block header, which passes all that by chance
            // at most one time in 31.
            let header = u16::from_be_bytes([data[0], data.get(1).copied().unwrap_or(0)]);
            let zlib = data[0] & 0x0f == 8 && data[0] >> 4 <= 7 && header.is_multiple_of(31);
            self.kind = if zlib || data.len() < 2 && data[0] & 0x0f == 8 {
                Kind::Zlib(ZlibDecoder::new(Vec::new()))
            } else {
                Kind::Raw(DeflateDecoder::new(Vec::new()))
            };
        }
        for step in data.chunks(STEP) {
            if self.decoded >= MAX_DECODED {
                return Ok(());
            }
            // (`flush` hands over what the step decoded; the decoder keeps it otherwise.
            // What decoded before an error is handed over too.)
            let (fed, out) = match &mut self.kind {
                Kind::Gzip(d) => (d.write_all(step).and_then(|_| d.flush()), d.get_mut()),
                Kind::Zlib(d) => (d.write_all(step).and_then(|_| d.flush()), d.get_mut()),
                Kind::Raw(d) => (d.write_all(step).and_then(|_| d.flush()), d.get_mut()),
                Kind::Deflate => return Ok(()),
            };
            let take = out.len().min(MAX_DECODED - self.decoded);
            self.decoded += take;
            f(&out[..take]);
            out.clear();
            fed?;
        }
        Ok(())
    }

    /// The whole of a (held) body, inflated up to `limit` bytes; None if it does not
    /// decode at all. A body that stops decoding part way (bytes after the compressed
    /// data, which Node's gunzip ignores) is what it inflated to, then the body as sent:
    /// a server that decodes reads the one, a server that ignores the coding the other.
    pub fn all(mut self, data: &[u8], limit: usize) -> Option<Vec<u8>> {
        let mut text = Vec::new();
        let fed = self.feed(data, &mut |b| {
            let room = limit.saturating_sub(text.len());
            text.extend_from_slice(&b[..b.len().min(room)]);
        });
        if fed.is_err() {
            if text.is_empty() {
                return None;
            }
            text.push(b'\n');
            let room = limit.saturating_sub(text.len());
            text.extend_from_slice(&data[..data.len().min(room)]);
        }
        Some(text)
    }
}

/// An `Accept-Encoding` value with only the codings the proxy reads (gzip, x-gzip,
/// deflate, identity; their weights kept); None when none is left (the header is then
/// dropped: the server answers uncompressed).
pub fn readable_accept_encoding(value: &[u8]) -> Option<Vec<u8>> {
    let keep: Vec<&[u8]> = value
        .split(|&c| c == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| {
            let name = t.split(|&c| c == b';').next().unwrap_or(b"").trim_ascii();
            [&b"gzip"[..], b"x-gzip", b"deflate", b"identity"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
        })
        .collect();
    (!keep.is_empty()).then(|| keep.join(&b", "[..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::{GzEncoder, ZlibEncoder};

    fn gz(b: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn inflate(coding: &[u8], data: &[u8], cut: usize) -> std::io::Result<Vec<u8>> {
        let mut d = Inflater::for_coding(coding).unwrap();
        let mut out = Vec::new();
        for c in data.chunks(cut) {
            d.feed(c, &mut |b| out.extend_from_slice(b))?;
        }
        Ok(out)
    }

    #[test]
    fn gzip_and_deflate_stream() {
        let text = b"{\"pan\": \"4111 1111 1111 1111\"}".repeat(100);
        let mut z = ZlibEncoder::new(Vec::new(), Compression::best());
        z.write_all(&text).unwrap();
        let z = z.finish().unwrap();
        for cut in [1, 7, 4096] {
            assert!(
                inflate(b"gzip", &gz(&text), cut).unwrap() == text,
                "cut {cut}"
            );
            assert!(inflate(b" X-GZIP ", &gz(&text), cut).unwrap() == text);
            assert!(inflate(b"deflate", &z, cut).unwrap() == text);
        }
        assert!(inflate(b"gzip", b"not gzip at all", 100).is_err());
        for other in [&b"br"[..], b"zstd", b"gzip, gzip", b"identity", b""] {
            assert!(Inflater::for_coding(other).is_none(), "{other:?}");
        }
    }

    #[test]
    fn a_bomb_is_read_only_so_far() {
        let zeros = gz(&vec![0u8; MAX_DECODED + (4 << 20)]);
        let mut n = 0;
        let mut biggest = 0;
        let mut d = Inflater::for_coding(b"gzip").unwrap();
        d.feed(&zeros, &mut |b| {
            n += b.len();
            biggest = biggest.max(b.len());
        })
        .unwrap();
        assert_eq!(n, MAX_DECODED);
        assert!(biggest <= 5 << 20, "{biggest}");
        assert_eq!(
            Inflater::for_coding(b"gzip").unwrap().all(&gz(b"abc"), 2),
            Some(b"ab".to_vec())
        );
    }

    /// Two gzip members are one body (Node, zlib); bytes after the compressed data
    /// (which Node's gunzip ignores) leave what inflated, then the body as sent. Before,
    /// either made the body read compressed only: an injection in it passed.
    #[test]
    fn every_member_and_what_follows_are_read() {
        let two = [gz(b"q=1&"), gz(b"r=1' OR 1=1--")].concat();
        let all = |b: &[u8]| Inflater::for_coding(b"gzip").unwrap().all(b, 1 << 20);
        assert_eq!(all(&two).as_deref(), Some(&b"q=1&r=1' OR 1=1--"[..]));
        let trailing = [gz(b"q=1' OR 1=1--"), b"\0\0".to_vec()].concat();
        assert_eq!(all(&trailing).as_deref(), Some(&b"q=1' OR 1=1--"[..]));
        let after = [gz(b"q=1"), b"&r=2' OR 1=1--".to_vec()].concat();
        let text = all(&after).unwrap();
        assert!(text.ends_with(b"&r=2' OR 1=1--"), "{text:?}");
        assert_eq!(all(b"not gzip at all"), None);
    }

    /// `deflate` as PHP's gzdeflate() writes it (raw DEFLATE, no zlib wrapper), which
    /// browsers inflate as well: inflated too. (Before, it was read compressed.)
    #[test]
    fn raw_deflate_is_read_as_well_as_zlib() {
        let text = b"card 4111 1111 1111 1111, again and again and again".repeat(20);
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&text).unwrap();
        let raw = raw.finish().unwrap();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&text).unwrap();
        let z = z.finish().unwrap();
        for body in [raw, z] {
            for cut in [1, 2, 7, 4096] {
                let mut d = Inflater::for_coding(b"deflate").unwrap();
                let mut out = Vec::new();
                for piece in body.chunks(cut.max(2)) {
                    d.feed(piece, &mut |b| out.extend_from_slice(b)).unwrap();
                }
                assert!(out == text, "cut {cut}");
            }
        }
    }

    #[test]
    fn accept_encoding_keeps_what_is_read() {
        let r =
            |v: &str| readable_accept_encoding(v.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(
            r("deflate, gzip, br, zstd").as_deref(),
            Some("deflate, gzip")
        );
        assert_eq!(
            r("gzip;q=1.0, br;q=0.9, *;q=0.1").as_deref(),
            Some("gzip;q=1.0")
        );
        assert_eq!(r("br"), None);
        assert_eq!(r("identity").as_deref(), Some("identity"));
    }
}
