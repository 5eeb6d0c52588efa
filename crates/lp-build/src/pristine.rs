//! lp-build's own copy of a kernel's source, in its cache: the distribution's source tarball
//! unpacked once, or a user's tree (built in place or not) copied and kept in step. lp-build
//! applies patches to and builds from this copy, so the user's tree and build are never touched.

use crate::exit::{fail_hint, Status};
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The stamp written once a tarball is completely unpacked.
const UNPACKED: &str = ".lp-unpacked";

/// Where the copy of `identity` (a tarball or a tree) lives in the cache:
/// `<cache>/sources/<hash>/`; the tree itself is its `linux/`.
pub fn location(cache_root: &Path, identity: &str) -> PathBuf {
    let mut h = Sha256::new();
    h.update(identity.as_bytes());
    let hex: String = h
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    cache_root.join("sources").join(hex)
}

/// What identifies a tarball: its path, size and modification time.
pub fn tarball_identity(path: &Path) -> Result<String> {
    let canon = fs::canonicalize(path).with_context(|| format!("reading {}", path.display()))?;
    let m = fs::metadata(&canon).with_context(|| format!("reading {}", canon.display()))?;
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Ok(format!("tarball {} {} {mtime}", canon.display(), m.len()))
}

/// Whether `dir` holds a completely unpacked tarball.
pub fn is_unpacked(dir: &Path) -> bool {
    dir.join(UNPACKED).is_file() && dir.join("linux/Makefile").is_file()
}

/// Unpacks `tarball` (`.tar.xz`, `.tar.gz`, `.tar.bz2` is refused) into `<dir>/linux`, once:
/// a complete unpack leaves a stamp, an interrupted one is redone. Returns the tree.
pub fn unpack_tarball(tarball: &Path, dir: &Path) -> Result<(PathBuf, bool)> {
    let tree = dir.join("linux");
    if is_unpacked(dir) {
        return Ok((tree, false));
    }
    let tmp = dir.join("unpack.tmp");
    let _ = fs::remove_dir_all(&tmp);
    let _ = fs::remove_dir_all(&tree);
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let file = fs::File::open(tarball).map_err(|e| {
        fail_hint(
            Status::Input,
            format!("{}: {e}", tarball.display()),
            "pass the kernel's source tarball or tree with -s",
        )
    })?;
    let name = tarball.to_string_lossy();
    let reader: Box<dyn std::io::Read> = if name.ends_with(".xz") {
        Box::new(liblzma::read::XzDecoder::new(BufReader::new(file)))
    } else if name.ends_with(".gz") || name.ends_with(".tgz") {
        Box::new(flate2::read::GzDecoder::new(BufReader::new(file)))
    } else if name.ends_with(".tar") {
        Box::new(BufReader::new(file))
    } else {
        return Err(fail_hint(
            Status::Input,
            format!(
                "{}: not a .tar, .tar.xz or .tar.gz source tarball",
                tarball.display()
            ),
            "unpack it yourself and pass the tree with -s",
        ));
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_mtime(true);
    archive.set_preserve_permissions(true);
    archive.unpack(&tmp).map_err(|e| {
        fail_hint(
            Status::Input,
            format!("unpacking {}: {e}", tarball.display()),
            "the tarball is damaged: reinstall the source package",
        )
    })?;
    // The tarball holds one top directory (`linux-source-6.12/`).
    let tops: Vec<PathBuf> = fs::read_dir(&tmp)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    let top = match tops.as_slice() {
        [one] if one.join("Makefile").is_file() => one.clone(),
        _ if tmp.join("Makefile").is_file() => tmp.clone(),
        _ => {
            return Err(fail_hint(
                Status::Input,
                format!(
                    "{} holds no kernel tree (no top directory with a Makefile)",
                    tarball.display()
                ),
                "pass the kernel's source tarball or tree with -s",
            ))
        }
    };
    fs::rename(&top, &tree)
        .with_context(|| format!("moving the unpacked tree to {}", tree.display()))?;
    let _ = fs::remove_dir_all(&tmp);
    fs::write(dir.join(UNPACKED), tarball.to_string_lossy().as_bytes())?;
    Ok((tree, true))
}

/// Files a build in place leaves in a tree (kbuild refuses a separate `O=` build from a tree
/// with the first three), never copied.
fn is_build_product(rel: &Path, is_dir: bool) -> bool {
    let s = rel.to_string_lossy();
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if is_dir {
        return s == ".git"
            || s == "include/config"
            || s == "include/generated"
            || (s.starts_with("arch/") && s.ends_with("/include/generated"));
    }
    if rel.parent() == Some(Path::new("")) {
        let top = [
            ".config",
            ".config.old",
            "vmlinux",
            "vmlinux.a",
            "vmlinux.o",
            "vmlinux.symvers",
            "System.map",
            "Module.symvers",
            "modules.order",
            "modules.builtin",
            "modules.builtin.modinfo",
            ".version",
        ];
        if top.contains(&name.as_ref()) {
            return true;
        }
    }
    [
        ".o", ".ko", ".a", ".mod", ".mod.c", ".cmd", ".order", ".symvers", ".dwo",
    ]
    .iter()
    .any(|e| name.ends_with(e))
        || name.starts_with(".tmp_")
}

/// What [`sync_tree`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    /// Files copied (new or changed).
    pub copied: usize,
    /// Files removed from the copy (gone from the tree).
    pub removed: usize,
}

/// Makes `dst` a copy of the source files of `src` (build products left out): copies files
/// that are new or whose size or modification time differ, and removes what `src` no longer
/// has. The user's tree is only read.
pub fn sync_tree(src: &Path, dst: &Path) -> Result<Synced> {
    let mut s = Synced::default();
    fs::create_dir_all(dst).with_context(|| format!("creating {}", dst.display()))?;
    sync_dir(src, dst, Path::new(""), &mut s)?;
    Ok(s)
}

fn sync_dir(src: &Path, dst: &Path, rel: &Path, s: &mut Synced) -> Result<()> {
    let sdir = src.join(rel);
    let ddir = dst.join(rel);
    let mut seen = std::collections::HashSet::new();
    for e in fs::read_dir(&sdir).with_context(|| format!("reading {}", sdir.display()))? {
        let e = e?;
        let name = e.file_name();
        let r = rel.join(&name);
        let ft = e.file_type()?;
        if is_build_product(&r, ft.is_dir()) {
            continue;
        }
        seen.insert(name.clone());
        let to = ddir.join(&name);
        if ft.is_dir() {
            if fs::symlink_metadata(&to)
                .map(|m| !m.is_dir())
                .unwrap_or(false)
            {
                fs::remove_file(&to)?;
            }
            fs::create_dir_all(&to).with_context(|| format!("creating {}", to.display()))?;
            sync_dir(src, dst, &r, s)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(e.path())?;
            if fs::read_link(&to).ok().as_ref() != Some(&target) {
                remove_any(&to);
                std::os::unix::fs::symlink(&target, &to)
                    .with_context(|| format!("creating {}", to.display()))?;
                s.copied += 1;
            }
        } else if ft.is_file() {
            let m = e.metadata()?;
            let same = fs::symlink_metadata(&to)
                .map(|d| {
                    d.is_file() && d.len() == m.len() && d.modified().ok() == m.modified().ok()
                })
                .unwrap_or(false);
            if !same {
                remove_any(&to);
                fs::copy(e.path(), &to).with_context(|| {
                    format!("copying {} to {}", e.path().display(), to.display())
                })?;
                if let Ok(t) = m.modified() {
                    fs::File::options()
                        .write(true)
                        .open(&to)
                        .and_then(|f| f.set_modified(t))
                        .with_context(|| format!("setting the time of {}", to.display()))?;
                }
                s.copied += 1;
            }
        }
    }
    for e in fs::read_dir(&ddir).with_context(|| format!("reading {}", ddir.display()))? {
        let e = e?;
        if !seen.contains(&e.file_name()) {
            remove_any(&e.path());
            s.removed += 1;
        }
    }
    Ok(())
}

fn remove_any(p: &Path) {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir_all(p);
        }
        Ok(_) => {
            let _ = fs::remove_file(p);
        }
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_built_in_place_is_copied_without_its_build() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        let dst = t.path().join("copy");
        for (f, body) in [
            ("Makefile", "VERSION = 6\n"),
            ("fs/proc/cmdline.c", "int x;\n"),
            ("fs/proc/cmdline.o", "obj"),
            ("fs/proc/.cmdline.o.cmd", "cmd"),
            (".config", "CONFIG_X=y\n"),
            ("include/config/auto.conf", "x"),
            ("arch/x86/include/generated/asm/a.h", "x"),
            ("arch/x86/include/asm/b.h", "x"),
            ("vmlinux", "elf"),
        ] {
            let p = src.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, body).unwrap();
        }
        let before = fs::metadata(src.join("fs/proc/cmdline.c"))
            .unwrap()
            .modified()
            .unwrap();
        let s = sync_tree(&src, &dst).unwrap();
        assert_eq!(s.copied, 3);
        assert!(dst.join("fs/proc/cmdline.c").is_file());
        assert!(dst.join("arch/x86/include/asm/b.h").is_file());
        for gone in [
            ".config",
            "include/config",
            "arch/x86/include/generated",
            "fs/proc/cmdline.o",
            "fs/proc/.cmdline.o.cmd",
            "vmlinux",
        ] {
            assert!(!dst.join(gone).exists(), "{gone}");
        }
        assert_eq!(
            fs::metadata(dst.join("fs/proc/cmdline.c"))
                .unwrap()
                .modified()
                .unwrap(),
            before
        );
        // Unchanged: nothing copied. Changed and deleted files follow the tree.
        assert_eq!(sync_tree(&src, &dst).unwrap(), Synced::default());
        fs::write(src.join("fs/proc/cmdline.c"), "int y; /* longer */\n").unwrap();
        fs::remove_file(src.join("arch/x86/include/asm/b.h")).unwrap();
        let s = sync_tree(&src, &dst).unwrap();
        assert_eq!((s.copied, s.removed), (1, 1));
        assert_eq!(
            fs::read_to_string(dst.join("fs/proc/cmdline.c")).unwrap(),
            "int y; /* longer */\n"
        );
        assert!(!dst.join("arch/x86/include/asm/b.h").exists());
    }

    #[test]
    fn tarballs_unpack_once_and_bad_ones_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let tarball = t.path().join("linux-source-6.12.tar.gz");
        {
            let f = fs::File::create(&tarball).unwrap();
            let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            let mut b = tar::Builder::new(gz);
            for (name, body) in [
                ("linux-source-6.12/Makefile", "VERSION = 6\n"),
                ("linux-source-6.12/fs/a.c", "int a;\n"),
            ] {
                let mut h = tar::Header::new_gnu();
                h.set_size(body.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, name, body.as_bytes()).unwrap();
            }
            b.into_inner().unwrap().finish().unwrap();
        }
        let dir = t.path().join("cache");
        fs::create_dir_all(&dir).unwrap();
        let (tree, fresh) = unpack_tarball(&tarball, &dir).unwrap();
        assert!(fresh);
        assert_eq!(fs::read_to_string(tree.join("fs/a.c")).unwrap(), "int a;\n");
        let (_, fresh) = unpack_tarball(&tarball, &dir).unwrap();
        assert!(!fresh);
        let bad = t.path().join("bad.tar.xz");
        fs::write(&bad, b"not xz at all").unwrap();
        let dir2 = t.path().join("cache2");
        fs::create_dir_all(&dir2).unwrap();
        let e = unpack_tarball(&bad, &dir2).unwrap_err();
        assert_eq!(crate::exit::status_of(&e), Status::Input);
        assert!(!dir2.join(UNPACKED).exists());
    }
}
