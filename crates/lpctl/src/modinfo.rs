//! Reading a module's identity from the `.modinfo` section of a `.ko`.
//!
//! `.modinfo` holds NUL-separated `key=value` strings (with NUL padding
//! between them). lp-build adds `lp_cumulative`, `lp_patch_version`,
//! `lp_replace`, `lp_build_version` and one `lp_source` per source patch;
//! the kernel build adds `livepatch=Y`, `name=`, `vermagic=`, ...
//!
//! Everything here works on untrusted bytes: malformed input gives an
//! [`Error`] of class [`ErrorClass::BadModule`], never a panic.

use std::path::Path;

use object::elf;
use object::read::elf::{FileHeader, SectionHeader};
use object::Endianness;
use serde::Serialize;

use crate::error::{Error, ErrorClass, Result};

/// The raw `key=value` pairs of `.modinfo`, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    pub entries: Vec<(String, String)>,
}

impl ModInfo {
    /// Parse the contents of a `.modinfo` section.
    pub fn parse(section: &[u8]) -> Result<ModInfo> {
        let mut entries = Vec::new();
        for raw in section.split(|&b| b == 0) {
            if raw.is_empty() {
                continue; // padding between entries
            }
            let text = std::str::from_utf8(raw).map_err(|_| {
                bad(format!(
                    ".modinfo entry is not valid UTF-8: {:?}",
                    String::from_utf8_lossy(raw)
                ))
            })?;
            let Some((key, value)) = text.split_once('=') else {
                return Err(bad(format!(".modinfo entry without '=': {text:?}")));
            };
            entries.push((key.to_string(), value.to_string()));
        }
        Ok(ModInfo { entries })
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All values of `key`, in order.
    pub fn get_all(&self, key: &str) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn single(&self, key: &str) -> Result<Option<&str>> {
        let all = self.get_all(key);
        if all.len() > 1 {
            return Err(bad(format!(".modinfo has more than one {key}=")));
        }
        Ok(all.first().copied())
    }
}

/// One source patch recorded by lp-build (`lp_source=<name>:<sha256>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourcePatch {
    pub name: String,
    pub sha256: String,
}

/// What lpctl needs to know about a module file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleIdentity {
    /// Module name (`name=`; else derived from the file name).
    pub name: String,
    /// `livepatch=Y` present.
    pub livepatch: bool,
    /// At least one `lp_*` key present: built by lp-build.
    pub lp_build: bool,
    /// `lp_cumulative=Y`.
    pub cumulative: bool,
    /// `lp_patch_version`, 0 when absent.
    pub patch_version: u32,
    /// The patch uses atomic replace (`lp_replace=Y`, implied by cumulative).
    pub replace: bool,
    /// `lp_build_version`.
    pub build_version: Option<String>,
    /// `lp_source` entries.
    pub sources: Vec<SourcePatch>,
    /// `vermagic=`: the kernel the module was built for.
    pub vermagic: Option<String>,
    /// `srcversion=` when the build recorded one.
    pub srcversion: Option<String>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::new(ErrorClass::BadModule, msg)
}

fn yes_no(key: &str, v: &str) -> Result<bool> {
    match v {
        "Y" | "y" | "1" => Ok(true),
        "N" | "n" | "0" => Ok(false),
        _ => Err(bad(format!("{key}={v:?} in .modinfo: expected Y or N"))),
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The module name the kernel will use for a file, when `.modinfo` has no
/// `name=`: the file stem with `-` turned into `_`.
pub fn name_from_path(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    crate::compress::strip_module_suffix(&file).replace('-', "_")
}

impl ModuleIdentity {
    /// Build the identity from parsed `.modinfo`. `fallback_name` is used
    /// when there is no `name=` key.
    pub fn from_modinfo(info: &ModInfo, fallback_name: &str) -> Result<ModuleIdentity> {
        let livepatch = match info.single("livepatch")? {
            Some(v) => yes_no("livepatch", v)?,
            None => false,
        };
        let name = match info.single("name")? {
            Some(n) if !n.is_empty() => n.to_string(),
            Some(_) => return Err(bad(".modinfo has an empty name=")),
            None => fallback_name.to_string(),
        };
        if name.is_empty() || name.contains('/') || name.len() > 55 {
            return Err(bad(format!("invalid module name {name:?}")));
        }
        let lp_build = info.entries.iter().any(|(k, _)| k.starts_with("lp_"));
        let cumulative = match info.single("lp_cumulative")? {
            Some(v) => yes_no("lp_cumulative", v)?,
            None => false,
        };
        let patch_version = match info.single("lp_patch_version")? {
            Some(v) => v.parse::<u32>().map_err(|_| {
                bad(format!(
                    "lp_patch_version={v:?} in .modinfo is not a 32-bit unsigned number"
                ))
            })?,
            None => 0,
        };
        let replace_key = match info.single("lp_replace")? {
            Some(v) => Some(yes_no("lp_replace", v)?),
            None => None,
        };
        if cumulative && replace_key == Some(false) {
            return Err(bad(
                "inconsistent .modinfo: lp_cumulative=Y but lp_replace=N (cumulative implies replace)",
            )
            .hint("rebuild the module with lp-build --cumulative"));
        }
        let replace = cumulative || replace_key.unwrap_or(false);
        let build_version = info.single("lp_build_version")?.map(str::to_string);
        let mut sources = Vec::new();
        for v in info.get_all("lp_source") {
            let Some((pname, hash)) = v.rsplit_once(':') else {
                return Err(bad(format!(
                    "lp_source={v:?} in .modinfo: expected <patch name>:<sha256 hex>"
                )));
            };
            if pname.is_empty() || !is_sha256_hex(hash) {
                return Err(bad(format!(
                    "lp_source={v:?} in .modinfo: expected <patch name>:<sha256 hex>"
                )));
            }
            sources.push(SourcePatch {
                name: pname.to_string(),
                sha256: hash.to_ascii_lowercase(),
            });
        }
        Ok(ModuleIdentity {
            name,
            livepatch,
            lp_build,
            cumulative,
            patch_version,
            replace,
            build_version,
            sources,
            vermagic: info.get("vermagic").map(str::to_string),
            srcversion: info.get("srcversion").map(str::to_string),
        })
    }

    /// Fail unless this is a livepatch module.
    pub fn require_livepatch(&self, path: &Path) -> Result<()> {
        if self.livepatch {
            Ok(())
        } else {
            Err(bad(format!(
                "{} is not a livepatch module: no livepatch=Y in .modinfo",
                path.display()
            ))
            .hint("build it with lp-build, or check you picked the right .ko"))
        }
    }
}

/// Extract the `.modinfo` section bytes of a kernel module image.
pub fn modinfo_section(data: &[u8]) -> Result<&[u8]> {
    if data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || data.starts_with(&[0x1f, 0x8b])
    {
        return Err(bad("the module is compressed (xz/zstd/gzip)")
            .hint("decompress it first (e.g. xz -d / zstd -d / gunzip)"));
    }
    if data.len() < 16 || data[..4] != elf::ELFMAG {
        return Err(bad("not an ELF file").hint("expected a kernel module (.ko)"));
    }
    let found = match data[4] {
        1 => modinfo_of::<elf::FileHeader32<Endianness>>(data),
        2 => modinfo_of::<elf::FileHeader64<Endianness>>(data),
        c => Err(format!("unknown ELF class {c}")),
    };
    match found {
        Ok(Some(section)) => Ok(section),
        Ok(None) => Err(bad("the ELF file has no .modinfo section")
            .hint("expected a kernel module (.ko) built by kbuild")),
        Err(e) => Err(bad(format!("malformed ELF: {e}"))),
    }
}

fn modinfo_of<Elf: FileHeader<Endian = Endianness>>(
    data: &[u8],
) -> std::result::Result<Option<&[u8]>, String> {
    let header = Elf::parse(data).map_err(|e| e.to_string())?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    if header.e_type(endian) != elf::ET_REL {
        return Err("not a relocatable object (kernel modules are ET_REL)".into());
    }
    let sections = header.sections(endian, data).map_err(|e| e.to_string())?;
    let Some((_, section)) = sections.section_by_name(endian, b".modinfo") else {
        return Ok(None);
    };
    if section.sh_type(endian) == elf::SHT_NOBITS {
        return Err(".modinfo has no contents (SHT_NOBITS)".into());
    }
    section
        .data(endian, data)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Parse a module image in memory. `path` is only used for the fallback
/// name and messages.
pub fn parse_module(data: &[u8], path: &Path) -> Result<ModuleIdentity> {
    let section = modinfo_section(data).map_err(|e| Error {
        message: format!("{}: {}", path.display(), e.message),
        ..e
    })?;
    let info = ModInfo::parse(section).map_err(|e| Error {
        message: format!("{}: {}", path.display(), e.message),
        ..e
    })?;
    ModuleIdentity::from_modinfo(&info, &name_from_path(path)).map_err(|e| Error {
        message: format!("{}: {}", path.display(), e.message),
        ..e
    })
}

/// The most bytes lpctl reads of a module file (a livepatch module is a few hundred KiB; the
/// largest distribution modules with debug information are a few hundred MiB).
pub const MODULE_SIZE_LIMIT: u64 = 1 << 30;

/// Read and parse a module file: a regular file of at most [`MODULE_SIZE_LIMIT`] bytes (a FIFO
/// or a device is refused without waiting on it). An unreadable file is a bad module (status
/// 5), whatever the reason.
pub fn read_module(path: &Path) -> Result<ModuleIdentity> {
    let data = read_limited(path, MODULE_SIZE_LIMIT).map_err(|e| {
        Error::new(
            ErrorClass::BadModule,
            format!("cannot read {}: {e}", path.display()),
        )
        .hint("pass a readable livepatch module (.ko) file")
    })?;
    // A compressed module (.ko.xz, .ko.zst, .ko.gz) is read decompressed.
    match crate::compress::decompress(&data)? {
        Some(image) => parse_module(&image, path),
        None => parse_module(&data, path),
    }
}

fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO does not wait for a writer.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let too_large = || {
        std::io::Error::other(format!(
            "larger than lpctl's limit of {} MiB for a module",
            limit >> 20
        ))
    };
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut data = Vec::new();
    f.take(limit.saturating_add(1)).read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(entries: &[&str]) -> Result<ModuleIdentity> {
        let mut sec = Vec::new();
        for e in entries {
            sec.extend_from_slice(e.as_bytes());
            sec.push(0);
            sec.push(0); // padding
        }
        ModuleIdentity::from_modinfo(&ModInfo::parse(&sec)?, "fallback")
    }

    #[test]
    fn full_lp_build_identity() {
        let h = "ab".repeat(32);
        let id = ident(&[
            "livepatch=Y",
            "name=lp_fix",
            "lp_cumulative=Y",
            "lp_patch_version=7",
            "lp_replace=Y",
            "lp_build_version=0.1.0",
            &format!("lp_source=a:b.patch:{h}"),
            &format!("lp_source=c.patch:{}", h.to_uppercase()),
            "vermagic=6.1.0 SMP mod_unload",
        ])
        .unwrap();
        assert!(id.livepatch && id.lp_build && id.cumulative && id.replace);
        assert_eq!(id.name, "lp_fix");
        assert_eq!(id.patch_version, 7);
        assert_eq!(id.build_version.as_deref(), Some("0.1.0"));
        assert_eq!(id.sources.len(), 2);
        assert_eq!(id.sources[0].name, "a:b.patch");
        assert_eq!(id.sources[1].sha256, h);
        assert_eq!(id.vermagic.as_deref(), Some("6.1.0 SMP mod_unload"));
    }

    #[test]
    fn foreign_livepatch_defaults() {
        let id = ident(&["livepatch=Y"]).unwrap();
        assert_eq!(id.name, "fallback");
        assert!(!id.lp_build && !id.cumulative && !id.replace);
        assert_eq!(id.patch_version, 0);
    }

    #[test]
    fn rejects_bad_values() {
        for entries in [
            &["livepatch=Y", "lp_cumulative=maybe"][..],
            &["livepatch=Y", "lp_patch_version=-1"],
            &["livepatch=Y", "lp_patch_version=4294967296"],
            &["livepatch=Y", "lp_cumulative=Y", "lp_replace=N"],
            &["livepatch=Y", "lp_source=nohash"],
            &["livepatch=Y", "lp_source=x.patch:1234"],
            &["livepatch=Y", "lp_patch_version=1", "lp_patch_version=2"],
            &["livepatch=Y", "noequals"],
            &["livepatch=Y", "name="],
            &["livepatch=Y", "name=a/b"],
        ] {
            let e = ident(entries).unwrap_err();
            assert_eq!(e.class, ErrorClass::BadModule, "{entries:?}");
        }
    }

    #[test]
    fn not_elf_and_compressed() {
        assert!(modinfo_section(b"").is_err());
        assert!(modinfo_section(b"hello world, not elf").is_err());
        let e = modinfo_section(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0]).unwrap_err();
        assert!(e.message.contains("compressed"));
    }

    #[test]
    fn name_from_file() {
        assert_eq!(name_from_path(Path::new("/x/lp-fix-1.ko")), "lp_fix_1");
    }
}
