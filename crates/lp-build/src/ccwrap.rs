//! The compiler wrapper: `lp-build __cc <real compiler> <arguments>`, which the driver passes to
//! kbuild as `CC` for every build of its cache tree.
//!
//! Without [`ENV_SAVE_DIR`] in the environment it only execs the real compiler, so kbuild's
//! compiler checks (`--version`, `cc-option` probes) and the original build see gcc itself.
//! During the patched build ([`ENV_SAVE_DIR`] set), before a compile `-c ... -o X.o` of an
//! object inside [`ENV_OBJTREE`], it saves the existing `X.o`, `.X.o.cmd` and `.X.o.d` (with
//! their times) under `<save dir>/objs/`, appends X to `<save dir>/objects.list`, adds
//! `-I<hooks dir>` ([`ENV_HOOKS_DIR`]) so patches can `#include "lp-hooks.h"` (and
//! `-idirafter <hooks dir>/compat` for `<linux/livepatch_helpers.h>` on kernels without it), and then execs
//! the compiler. A failure to save fails the compile: an object that cannot be restored must
//! not be overwritten.

use crate::fsutil::copy_with_mtime;
use crate::journal::{companions, SavedObject, OBJECT_LIST, SAVED_OBJECTS};
use anyhow::{Context, Result};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The first argument that selects the wrapper.
pub const SUBCOMMAND: &str = "__cc";
/// Set during the patched build: where to save original objects.
pub const ENV_SAVE_DIR: &str = "LP_BUILD_SAVE_DIR";
/// The build directory (absolute, canonical): objects outside it are not saved.
pub const ENV_OBJTREE: &str = "LP_BUILD_OBJTREE";
/// The directory where the run wrote the hooks headers built into the binary
/// ([`crate::hooks`]).
pub const ENV_HOOKS_DIR: &str = "LP_HOOKS_DIR";

/// If `args` compile one file to an object (`-c` and `-o X.o`), returns X.
pub fn compile_output(args: &[OsString]) -> Option<&OsStr> {
    let mut compile = false;
    let mut out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let b = a.as_bytes();
        if b == b"-c" {
            compile = true;
        } else if b == b"-o" {
            out = it.next().map(OsString::as_os_str);
        } else if b.len() > 2 && b.starts_with(b"-o") {
            out = Some(OsStr::from_bytes(&b[2..]));
        }
    }
    let out = out?;
    (compile && out.as_bytes().ends_with(b".o")).then_some(out)
}

/// `a/./b/../c` -> `a/c`, without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Saves the object `output` (as the compiler sees it, relative to `cwd`) and its kbuild
/// companions before they are overwritten, and lists it. Objects outside `objtree` and kbuild's
/// scratch files (`.tmp_*`) are ignored.
pub fn save_object(save_dir: &Path, objtree: &Path, cwd: &Path, output: &Path) -> Result<()> {
    let abs = normalize(&cwd.join(output));
    let Ok(rel) = abs.strip_prefix(objtree) else {
        return Ok(());
    };
    if rel
        .components()
        .any(|c| c.as_os_str().as_bytes().starts_with(b".tmp"))
    {
        return Ok(());
    }
    let Some(rel) = rel.to_str() else {
        return Ok(());
    };
    let saved_root = save_dir.join(SAVED_OBJECTS);
    if saved_root.join(rel).exists() {
        return Ok(()); // already saved by an earlier compile of this run: keep the original
    }
    let (cmd, dep) = companions(rel);
    let mut had = [false; 3];
    for (i, f) in [rel, cmd.as_str(), dep.as_str()].into_iter().enumerate() {
        let from = objtree.join(f);
        if from.is_file() {
            copy_with_mtime(&from, &saved_root.join(f))?;
            had[i] = true;
        }
    }
    let dir_mtime = objtree
        .join(rel)
        .parent()
        .and_then(|d| std::fs::metadata(d).ok())
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::SystemTime::UNIX_EPOCH).ok())
        .map(|d| (d.as_secs(), d.subsec_nanos()));
    let line = SavedObject {
        object: rel.to_string(),
        had_object: had[0],
        had_cmd: had[1],
        had_dep: had[2],
        dir_mtime,
    }
    .to_line();
    let list = save_dir.join(OBJECT_LIST);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&list)
        .with_context(|| format!("opening {}", list.display()))?;
    // One write of a short line with O_APPEND: atomic among parallel compiles.
    f.write_all(line.as_bytes())
        .with_context(|| format!("appending to {}", list.display()))
}

/// Runs the wrapper; `args` are the arguments after `__cc`. Returns only on error.
pub fn main(args: Vec<OsString>) -> std::process::ExitCode {
    let Some((compiler, rest)) = args.split_first() else {
        eprintln!(
            "lp-build {SUBCOMMAND}: no compiler given (usage: lp-build {SUBCOMMAND} gcc ARGS...)"
        );
        return std::process::ExitCode::from(2);
    };
    let mut cmd = Command::new(compiler);
    if let Some(save_dir) = std::env::var_os(ENV_SAVE_DIR) {
        if let Some(out) = compile_output(rest) {
            let objtree = std::env::var_os(ENV_OBJTREE).map(PathBuf::from);
            let cwd = std::env::current_dir();
            if let (Some(objtree), Ok(cwd)) = (objtree, cwd) {
                if let Err(e) = save_object(Path::new(&save_dir), &objtree, &cwd, Path::new(out)) {
                    eprintln!(
                        "lp-build {SUBCOMMAND}: cannot save the original of {}: {e:#}",
                        Path::new(out).display()
                    );
                    return std::process::ExitCode::from(1);
                }
            }
            if let Some(hooks) = std::env::var_os(ENV_HOOKS_DIR) {
                let mut i = OsString::from("-I");
                i.push(&hooks);
                cmd.arg(i);
                // Stand-ins for kernel headers (linux/livepatch_helpers.h) come after the
                // kernel's own include directories, so a kernel that ships one uses its own.
                let compat = Path::new(&hooks).join(crate::hooks::COMPAT_SUBDIR);
                cmd.arg("-idirafter").arg(compat);
            }
        }
    }
    cmd.args(rest);
    let e = cmd.exec();
    eprintln!(
        "lp-build {SUBCOMMAND}: cannot run {}: {e}",
        Path::new(compiler).display()
    );
    std::process::ExitCode::from(127)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::read_saved_objects;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn recognises_compiles() {
        let a = os(&[
            "-Wall",
            "-c",
            "-o",
            "fs/proc/cmdline.o",
            "../src/fs/proc/cmdline.c",
        ]);
        assert_eq!(compile_output(&a), Some(OsStr::new("fs/proc/cmdline.o")));
        let a = os(&["-c", "-ofoo.o", "foo.c"]);
        assert_eq!(compile_output(&a), Some(OsStr::new("foo.o")));
        assert_eq!(compile_output(&os(&["--version"])), None);
        assert_eq!(compile_output(&os(&["-E", "-o", "x.i", "x.c"])), None);
        assert_eq!(compile_output(&os(&["-c", "-o", "x.s", "x.c"])), None);
        assert_eq!(compile_output(&os(&["-o", "vmlinux", "a.o"])), None);
    }

    #[test]
    fn saves_once_and_lists() {
        let t = tempfile::tempdir().unwrap();
        let objtree = t.path().join("build");
        let save = t.path().join("save");
        std::fs::create_dir_all(objtree.join("fs/proc")).unwrap();
        std::fs::create_dir_all(&save).unwrap();
        std::fs::write(objtree.join("fs/proc/cmdline.o"), "orig").unwrap();
        std::fs::write(objtree.join("fs/proc/.cmdline.o.cmd"), "cmd").unwrap();
        save_object(&save, &objtree, &objtree, Path::new("fs/proc/cmdline.o")).unwrap();
        std::fs::write(objtree.join("fs/proc/cmdline.o"), "patched").unwrap();
        // A second compile of the same object keeps the first save.
        save_object(&save, &objtree, &objtree, Path::new("./fs/proc/cmdline.o")).unwrap();
        // A new object, one outside the tree, a kbuild scratch file.
        save_object(&save, &objtree, &objtree.join("fs"), Path::new("new.o")).unwrap();
        save_object(&save, &objtree, &objtree, Path::new("/tmp/x.o")).unwrap();
        save_object(&save, &objtree, &objtree, Path::new(".tmp_123/tmp.o")).unwrap();
        let list = read_saved_objects(&save).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].object, "fs/proc/cmdline.o");
        assert!(list[0].had_object && list[0].had_cmd && !list[0].had_dep);
        assert_eq!(list[1].object, "fs/new.o");
        assert!(!list[1].had_object);
        assert_eq!(
            std::fs::read(save.join("objs/fs/proc/cmdline.o")).unwrap(),
            b"orig"
        );
    }
}
