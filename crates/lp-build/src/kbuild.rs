//! Reading what kbuild leaves in a build directory: which object belongs to vmlinux and which to
//! which module (`modules.order`, `<module>.mod`, the thin archive `vmlinux.a`), and the exported
//! symbols (`Module.symvers`).

use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::Path;

/// Which final binary an object is linked into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// vmlinux.
    Vmlinux,
    /// A module: its kernel name (underscores) and path without extension (`fs/binfmt_misc`).
    Module {
        /// `binfmt_misc`.
        name: String,
        /// `fs/binfmt_misc`.
        path: String,
    },
    /// Neither (vDSO, boot code, generated link-time objects): not live-patchable.
    Other,
}

/// Object ownership in one build directory.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// Object path -> (module name, module path).
    modules: BTreeMap<String, (String, String)>,
    /// Members of vmlinux.a and the lib.a archives; `None` when the build has no vmlinux.a
    /// (then every object in no module counts as vmlinux's).
    vmlinux: Option<BTreeSet<String>>,
}

impl Objects {
    /// Reads `modules.order`, the `.mod` files it names and `vmlinux.a` in `build`.
    pub fn read(build: &Path) -> Result<Objects> {
        let mut modules = BTreeMap::new();
        let order = build.join("modules.order");
        if let Ok(text) = fs::read_to_string(&order) {
            for line in text.lines() {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let line = line.strip_prefix("kernel/").unwrap_or(line);
                let base = line
                    .strip_suffix(".ko")
                    .or_else(|| line.strip_suffix(".o"))
                    .unwrap_or(line);
                let name = base.rsplit('/').next().unwrap_or(base).replace('-', "_");
                let modf = build.join(format!("{base}.mod"));
                let objs = fs::read_to_string(&modf)
                    .with_context(|| format!("reading {}", modf.display()))?;
                for o in objs.split_whitespace() {
                    modules.insert(o.to_string(), (name.clone(), base.to_string()));
                }
            }
        }
        let vmlinux_a = build.join("vmlinux.a");
        let vmlinux = if vmlinux_a.is_file() {
            let mut set = BTreeSet::new();
            archive_members_into(build, "vmlinux.a", &mut set, 0)?;
            for lib in ["lib/lib.a", "arch/x86/lib/lib.a"] {
                if build.join(lib).is_file() {
                    archive_members_into(build, lib, &mut set, 0)?;
                }
            }
            Some(set)
        } else {
            None
        };
        Ok(Objects { modules, vmlinux })
    }

    /// Where `object` (relative to the build directory) is linked.
    pub fn owner(&self, object: &str) -> Owner {
        if let Some((name, path)) = self.modules.get(object) {
            return Owner::Module {
                name: name.clone(),
                path: path.clone(),
            };
        }
        match &self.vmlinux {
            Some(set) if set.contains(object) => Owner::Vmlinux,
            Some(_) => Owner::Other,
            None if is_link_time_object(object) => Owner::Other,
            None => Owner::Vmlinux,
        }
    }
}

/// Objects kbuild compiles while linking (never part of a patch).
fn is_link_time_object(object: &str) -> bool {
    let name = object.rsplit('/').next().unwrap_or(object);
    object.ends_with(".mod.o")
        || name.starts_with(".tmp_")
        || name.starts_with(".vmlinux")
        || object.starts_with("init/version")
        || object.starts_with("arch/x86/boot/")
        || object.starts_with("arch/x86/realmode/")
        || object.contains("/vdso/")
        || object.starts_with("scripts/")
}

/// Adds the member paths of the (thin) archive `rel` (relative to `build`) to `out`, descending
/// into nested archives.
fn archive_members_into(
    build: &Path,
    rel: &str,
    out: &mut BTreeSet<String>,
    depth: u32,
) -> Result<()> {
    let path = build.join(rel);
    let data = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let members = archive_members(&data)
        .with_context(|| format!("{} is not an archive lp-build can read", path.display()))?;
    let dir = Path::new(rel)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    for m in members {
        // Thin archive members are relative to the archive's directory.
        let full = if dir.is_empty() || m.starts_with('/') {
            m
        } else {
            format!("{dir}/{m}")
        };
        let full = normalize(&full);
        if full.ends_with(".a") && depth < 8 {
            if build.join(&full).is_file() {
                archive_members_into(build, &full, out, depth + 1)?;
            }
        } else {
            out.insert(full);
        }
    }
    Ok(())
}

fn normalize(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// The member names of an `ar` archive (GNU format, thin or not), read with `object`'s archive
/// support (thin archives hold paths relative to the archive's directory, not data).
pub fn archive_members(data: &[u8]) -> Result<Vec<String>> {
    let archive = object::read::archive::ArchiveFile::parse(data)
        .map_err(|e| anyhow::anyhow!("not an archive: {e}"))?;
    let mut out = Vec::new();
    for m in archive.members() {
        let m = m.map_err(|e| anyhow::anyhow!("bad archive member: {e}"))?;
        out.push(String::from_utf8_lossy(m.name()).into_owned());
    }
    Ok(out)
}

/// One line of `Module.symvers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// Its CRC (0 when the kernel has no CONFIG_MODVERSIONS); `None` when the column is not
    /// hexadecimal.
    pub crc: Option<u32>,
    /// The symbol.
    pub symbol: String,
    /// `vmlinux` or the module's path (`fs/binfmt_misc`).
    pub module: String,
}

/// Parses `Module.symvers` (`crc <tab> symbol <tab> module <tab> type [<tab> namespace]`).
pub fn parse_symvers(text: &str) -> Vec<Export> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split('\t');
            let crc = it.next()?;
            let crc = u32::from_str_radix(crc.trim_start_matches("0x"), 16).ok();
            let symbol = it.next()?.to_string();
            let module = it.next()?.to_string();
            (!symbol.is_empty()).then_some(Export {
                crc,
                symbol,
                module,
            })
        })
        .collect()
}

/// The CRC of every export when the kernel was built with CONFIG_MODVERSIONS (some CRC is
/// not zero); empty otherwise.
pub fn export_crcs(exports: &[Export]) -> std::collections::HashMap<String, u32> {
    if !exports.iter().any(|e| e.crc.is_some_and(|c| c != 0)) {
        return Default::default();
    }
    exports
        .iter()
        .filter_map(|e| Some((e.symbol.clone(), e.crc?)))
        .collect()
}

/// The symbols vmlinux exports, from the lines of a `Module.symvers` file.
pub fn vmlinux_exports(exports: &[Export]) -> HashSet<String> {
    exports
        .iter()
        .filter(|e| e.module == "vmlinux")
        .map(|e| e.symbol.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ar_header(name: &str, size: usize) -> Vec<u8> {
        let mut h =
            format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}", 0, 0, 0, 644, size).into_bytes();
        h.extend_from_slice(b"`\n");
        assert_eq!(h.len(), 60);
        h
    }

    /// The test kernel's own `vmlinux.a` (CI sets `LP_TEST_KERNEL_BUILD`), read as `ar t` reads
    /// it.
    #[test]
    fn a_real_vmlinux_a_reads_as_ar_does() {
        let Some(build) = std::env::var_os("LP_TEST_KERNEL_BUILD") else {
            return;
        };
        let a = Path::new(&build).join("vmlinux.a");
        let ours = archive_members(&fs::read(&a).unwrap()).unwrap();
        let ar = std::process::Command::new("ar")
            .arg("t")
            .arg(&a)
            .output()
            .unwrap();
        // `ar t` shows a thin archive's members as paths from the current directory.
        let prefix = format!("{}/", Path::new(&build).display());
        let theirs: Vec<String> = String::from_utf8_lossy(&ar.stdout)
            .lines()
            .map(|l| l.strip_prefix(&prefix).unwrap_or(l).to_string())
            .collect();
        assert!(ours.len() > 100, "{}", ours.len());
        assert!(
            ours == theirs,
            "{} members here, {} for ar",
            ours.len(),
            theirs.len()
        );
    }

    #[test]
    fn thin_archive_members() {
        let mut a = b"!<thin>\n".to_vec();
        a.extend(ar_header("/", 4));
        a.extend_from_slice(b"\0\0\0\0");
        let names = b"fs/proc/cmdline.o/\nkernel/livepatch/core.o/\n";
        a.extend(ar_header("//", names.len()));
        a.extend_from_slice(names);
        a.extend(ar_header("/0", 1234));
        a.extend(ar_header("/19          /", 999));
        // A short name (GNU ar puts every name with a `/` in the long-name table).
        a.extend(ar_header("main.o/", 10));
        let m = archive_members(&a).unwrap();
        assert_eq!(
            m,
            ["fs/proc/cmdline.o", "kernel/livepatch/core.o", "main.o"]
        );
        assert!(archive_members(b"garbage").is_err());
    }

    #[test]
    fn ownership() {
        let t = tempfile::tempdir().unwrap();
        let b = t.path();
        fs::create_dir_all(b.join("fs")).unwrap();
        fs::write(
            b.join("modules.order"),
            "fs/binfmt_misc.o\ndrivers/foo-bar.o\n",
        )
        .unwrap();
        fs::write(b.join("fs/binfmt_misc.mod"), "fs/binfmt_misc.o\n").unwrap();
        fs::create_dir_all(b.join("drivers")).unwrap();
        fs::write(
            b.join("drivers/foo-bar.mod"),
            "drivers/foo1.o drivers/foo2.o\n",
        )
        .unwrap();
        let o = Objects::read(b).unwrap();
        assert_eq!(
            o.owner("drivers/foo2.o"),
            Owner::Module {
                name: "foo_bar".into(),
                path: "drivers/foo-bar".into()
            }
        );
        assert_eq!(o.owner("fs/proc/cmdline.o"), Owner::Vmlinux);
        assert_eq!(o.owner("init/version-timestamp.o"), Owner::Other);
        assert_eq!(o.owner("fs/binfmt_misc.mod.o"), Owner::Other);
    }

    #[test]
    fn symvers() {
        let e = parse_symvers(
            "0x00000000\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n0x1\tfoo\tfs/binfmt_misc\tEXPORT_SYMBOL_GPL\tNS\n",
        );
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].module, "fs/binfmt_misc");
        assert_eq!((e[0].crc, e[1].crc), (Some(0), Some(1)));
        // One non-zero CRC: a MODVERSIONS kernel, every CRC counts (also printk's 0).
        let crcs = export_crcs(&e);
        assert_eq!(crcs.get("printk"), Some(&0));
        assert_eq!(crcs.get("foo"), Some(&1));
    }

    #[test]
    fn symvers_without_modversions_has_no_crcs() {
        let e = parse_symvers(
            "0x00000000\tprintk\tvmlinux\tEXPORT_SYMBOL\t\nzz\tx\tvmlinux\tEXPORT_SYMBOL\t\n",
        );
        assert_eq!(e[1].crc, None);
        assert!(export_crcs(&e).is_empty());
    }
}
