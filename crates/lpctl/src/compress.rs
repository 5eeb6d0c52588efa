//! Compressed modules (`.ko.xz`, `.ko.zst`, `.ko.gz`, as kbuild's `CONFIG_MODULE_COMPRESS_*`
//! makes them): recognised by their magic bytes and decompressed in memory, with pure-Rust
//! decoders (the static build needs no library), to read `.modinfo` and to load the image with
//! `init_module(2)`, as kmod does.

use std::io::Read;

use crate::error::{Error, ErrorClass, Result};

/// The largest decompressed module accepted (a bound against decompression bombs; real
/// livepatch modules are well under a megabyte, the largest in-tree modules under 100 MiB).
pub const MAX_MODULE: u64 = 256 << 20;

/// A compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Xz,
    Zstd,
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

fn bad(what: Compression, e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorClass::BadModule,
        format!(
            "cannot decompress the module ({}): {e}",
            &what.suffix()[1..]
        ),
    )
    .hint("the file is damaged or truncated; rebuild or recompress it")
}

/// `data` decompressed when it is compressed, else `None`.
pub fn decompress(data: &[u8]) -> Result<Option<Vec<u8>>> {
    let Some(c) = detect(data) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    match c {
        Compression::Xz => {
            let mut limited = LimitWriter {
                out: &mut out,
                left: MAX_MODULE,
            };
            lzma_rs::xz_decompress(&mut &data[..], &mut limited).map_err(|e| bad(c, e))?;
        }
        Compression::Zstd => {
            let d = ruzstd::decoding::StreamingDecoder::new(data).map_err(|e| bad(c, e))?;
            d.take(MAX_MODULE + 1)
                .read_to_end(&mut out)
                .map_err(|e| bad(c, e))?;
        }
        Compression::Gzip => {
            flate2::read::GzDecoder::new(data)
                .take(MAX_MODULE + 1)
                .read_to_end(&mut out)
                .map_err(|e| bad(c, e))?;
        }
    }
    if out.len() as u64 > MAX_MODULE {
        return Err(bad(c, format!("larger than {} MiB", MAX_MODULE >> 20)));
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
            return Err(std::io::Error::other(format!(
                "larger than {} MiB",
                MAX_MODULE >> 20
            )));
        }
        self.left -= buf.len() as u64;
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The module name a file name gives: without `.ko` and a compression suffix, `-` as `_`.
pub fn strip_module_suffix(file: &str) -> &str {
    for s in [".ko.xz", ".ko.zst", ".ko.gz", ".ko"] {
        if let Some(stem) = file.strip_suffix(s) {
            return stem;
        }
    }
    file
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    pub(crate) fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
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
    fn round_trips_and_damage() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in [Compression::Xz, Compression::Zstd, Compression::Gzip] {
            let z = compress(c, &data);
            assert_eq!(detect(&z), Some(c));
            assert_eq!(decompress(&z).unwrap().as_deref(), Some(&data[..]), "{c:?}");
            // Truncated: an error, never a panic.
            for cut in [z.len() / 2, z.len() - 1, 7] {
                if let Err(e) = decompress(&z[..cut]) {
                    assert_eq!(e.class, ErrorClass::BadModule);
                }
            }
        }
        assert_eq!(decompress(b"\x7fELF....").unwrap(), None);
        assert_eq!(strip_module_suffix("lp-fix.ko.zst"), "lp-fix");
        assert_eq!(strip_module_suffix("a.ko"), "a");
    }
}
