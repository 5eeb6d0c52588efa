//! Compressed modules (`.ko.xz`, `.ko.zst`, `.ko.gz`, as kbuild's `CONFIG_MODULE_COMPRESS_*`
//! makes them): recognised by their magic bytes and decompressed in memory, with pure-Rust
//! decoders (the static build needs no library), to read `.modinfo` and to load the image with
//! `init_module(2)`, as kmod does.

use crate::error::{Error, ErrorClass, Result};

pub use lp_elf::compress::{detect, Compression, MAX_MODULE};

/// `data` decompressed when it is compressed, else `None`.
pub fn decompress(data: &[u8]) -> Result<Option<Vec<u8>>> {
    lp_elf::compress::decompress(data, MAX_MODULE).map_err(|e| {
        Error::new(ErrorClass::BadModule, e.to_string())
            .hint("the file is damaged or truncated; rebuild or recompress it")
    })
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
