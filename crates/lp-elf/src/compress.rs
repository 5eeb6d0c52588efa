//! Compressed modules (`.ko.xz`, `.ko.zst`, `.ko.gz`, as kbuild's `CONFIG_MODULE_COMPRESS_*`
//! makes them and distributions ship them): recognised by their magic bytes and decompressed in
//! memory with pure-Rust decoders (static builds need no library), with a bound on the output.
//! lp-build reads the image package's modules through it, lpctl loads them.

use std::io::Read;

/// A module that cannot be decompressed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot decompress the module ({format}): {reason}")]
pub struct DecompressError {
    /// `xz`, `zst`, `gz`.
    pub format: &'static str,
    /// The decoder's words.
    pub reason: String,
}

/// The largest decompressed module accepted (a bound against decompression bombs; real
/// livepatch modules are well under a megabyte, the largest in-tree modules under 100 MiB).
pub const MAX_MODULE: u64 = 256 << 20;

/// A compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `.ko.xz`.
    Xz,
    /// `.ko.zst`.
    Zstd,
    /// `.ko.gz`.
    Gzip,
}

impl Compression {
    /// The file suffix kbuild gives it (after `.ko`).
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
            Compression::Gzip => ".gz",
        }
    }
}

/// The compression of `data`, from its first bytes.
pub fn detect(data: &[u8]) -> Option<Compression> {
    if data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Compression::Xz)
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Compression::Zstd)
    } else if data.starts_with(&[0x1f, 0x8b]) {
        Some(Compression::Gzip)
    } else {
        None
    }
}

fn bad(what: Compression, e: impl std::fmt::Display) -> DecompressError {
    DecompressError {
        format: &what.suffix()[1..],
        reason: e.to_string(),
    }
}

/// `data` decompressed when it is compressed, else `None`; more than `limit` bytes of output is
/// an error (a bound against decompression bombs).
pub fn decompress(data: &[u8], limit: u64) -> Result<Option<Vec<u8>>, DecompressError> {
    let Some(c) = detect(data) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    match c {
        Compression::Xz => {
            let mut limited = LimitWriter {
                out: &mut out,
                left: limit,
            };
            lzma_rs::xz_decompress(&mut &data[..], &mut limited).map_err(|e| bad(c, e))?;
        }
        Compression::Zstd => {
            let d = ruzstd::decoding::StreamingDecoder::new(data).map_err(|e| bad(c, e))?;
            d.take(limit.saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|e| bad(c, e))?;
        }
        Compression::Gzip => {
            flate2::read::GzDecoder::new(data)
                .take(limit.saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|e| bad(c, e))?;
        }
    }
    if out.len() as u64 > limit {
        return Err(bad(c, format!("larger than {} MiB", limit >> 20)));
    }
    Ok(Some(out))
}

/// A writer that fails past `left` bytes.
struct LimitWriter<'a> {
    out: &'a mut Vec<u8>,
    left: u64,
}

impl std::io::Write for LimitWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(std::io::Error::other("larger than the limit"));
        }
        self.left -= buf.len() as u64;
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
        match c {
            Compression::Xz => {
                let mut out = Vec::new();
                lzma_rs::xz_compress(&mut &data[..], &mut out).unwrap();
                out
            }
            Compression::Zstd => {
                ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
            }
            Compression::Gzip => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
        }
    }

    #[test]
    fn round_trips_damage_and_the_bound() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in [Compression::Xz, Compression::Zstd, Compression::Gzip] {
            let z = compress(c, &data);
            assert_eq!(detect(&z), Some(c));
            assert_eq!(
                decompress(&z, MAX_MODULE).unwrap().as_deref(),
                Some(&data[..]),
                "{c:?}"
            );
            // Over the bound: an error naming the format.
            let e = decompress(&z, 1000).unwrap_err();
            assert_eq!(e.format, &c.suffix()[1..]);
            // Truncated: an error or a short output, never a panic.
            for cut in [z.len() / 2, z.len() - 1, 7] {
                if let Ok(Some(out)) = decompress(&z[..cut], MAX_MODULE) {
                    assert!(out.len() < data.len(), "{c:?} cut at {cut}");
                }
            }
        }
        assert_eq!(decompress(b"\x7fELF....", MAX_MODULE).unwrap(), None);
    }
}
