//! The cache: lp-build's own function-sections build of each kernel tree, its lock, journal and
//! probe results.
//!
//! Layout under the cache root (`LP_BUILD_CACHE`, else `$XDG_CACHE_HOME/lp-build`, else
//! `~/.cache/lp-build`):
//!
//! ```text
//! <root>/<tree hash>/lock             flock + PID of the run using this source tree (the tree's
//!                                    own directory is flocked too, whatever the cache)
//! <root>/<tree hash>/journal.json     what the current run changed (see journal.rs)
//! <root>/<tree hash>/work/            backups of sources, saved objects
//! <root>/<tree hash>/bin/lp-build     -> the lp-build binary (a stable CC for kbuild)
//! <root>/<tree hash>/<key>/build/     the O= build (key: source path, version, config, compiler)
//! <root>/<tree hash>/<key>/stamp.json the build is complete
//! <root>/<tree hash>/<key>/entry-sizes.json  special-section entry sizes from the probe
//! ```

use crate::exit::{fail_hint, Status};
use crate::fsutil::{sha256_hex, write_atomic};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{Read, Seek, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The compiler flags of every build of the cache tree (original and patched alike).
pub const KCFLAGS: &str = "-ffunction-sections -fdata-sections";

/// The cache root directory.
pub fn cache_root() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("LP_BUILD_CACHE").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("lp-build"));
    }
    if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(h).join(".cache").join("lp-build"));
    }
    Err(fail_hint(
        Status::Input,
        "no cache directory: neither LP_BUILD_CACHE, XDG_CACHE_HOME nor HOME is set",
        "set LP_BUILD_CACHE to a directory with room for a kernel build",
    ))
}

/// The per-source-tree part of the cache.
#[derive(Debug, Clone)]
pub struct TreeCache {
    /// `<root>/<tree hash>`.
    pub dir: PathBuf,
}

impl TreeCache {
    /// The cache of source tree `src` (canonical path).
    pub fn new(root: &Path, src: &Path) -> Result<TreeCache> {
        let root = std::path::absolute(root)
            .with_context(|| format!("resolving the cache directory {}", root.display()))?;
        let hash = sha256_hex(src.as_os_str().as_encoded_bytes());
        let dir = root.join(&hash[..16]);
        fs::create_dir_all(&dir).map_err(|e| {
            fail_hint(
                Status::Input,
                format!("cannot create the cache directory {}: {e}", dir.display()),
                "set LP_BUILD_CACHE to a writable directory",
            )
        })?;
        let dir = fs::canonicalize(&dir).with_context(|| format!("resolving {}", dir.display()))?;
        if dir.to_string_lossy().contains(char::is_whitespace) {
            return Err(fail_hint(
                Status::Input,
                format!(
                    "the cache directory {} contains white space, which kbuild cannot handle in CC",
                    dir.display()
                ),
                "set LP_BUILD_CACHE to a path without spaces",
            ));
        }
        Ok(TreeCache { dir })
    }

    /// The lock file.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("lock")
    }

    /// The journal file.
    pub fn journal_path(&self) -> PathBuf {
        self.dir.join("journal.json")
    }

    /// Scratch space of the current run (backups, saved objects).
    pub fn work_dir(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// The build of one configuration.
    pub fn entry(&self, key: &str) -> CacheEntry {
        CacheEntry {
            dir: self.dir.join(key),
        }
    }

    /// A stable path to the running lp-build binary, for kbuild's `CC`: a symlink in the cache,
    /// re-pointed when the binary moves (so the `CC` string, which kbuild records in every
    /// `.cmd` file, never changes).
    pub fn wrapper(&self) -> Result<PathBuf> {
        let exe = std::env::current_exe().context("finding the lp-build binary")?;
        let exe = fs::canonicalize(&exe).unwrap_or(exe);
        let bin = self.dir.join("bin");
        fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
        let link = bin.join("lp-build");
        if fs::read_link(&link).ok().as_deref() != Some(exe.as_path()) {
            let tmp = bin.join(format!(".lp-build.{}", std::process::id()));
            let _ = fs::remove_file(&tmp);
            std::os::unix::fs::symlink(&exe, &tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            fs::rename(&tmp, &link).with_context(|| format!("creating {}", link.display()))?;
        }
        Ok(link)
    }
}

/// The cache key of a build: everything that makes two builds of one tree differ.
pub fn build_key(src: &Path, version: &str, config: &str, compiler: &str) -> String {
    let mut text = Vec::new();
    for part in [
        src.as_os_str().as_encoded_bytes(),
        version.as_bytes(),
        config.as_bytes(),
        compiler.as_bytes(),
        KCFLAGS.as_bytes(),
    ] {
        text.extend_from_slice(&(part.len() as u64).to_le_bytes());
        text.extend_from_slice(part);
    }
    sha256_hex(&text)[..16].to_string()
}

/// One cached build.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    /// `<root>/<tree hash>/<key>`.
    pub dir: PathBuf,
}

/// The stamp of a complete build.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stamp {
    /// The key it was built for.
    pub key: String,
    /// Kernel version.
    pub version: String,
    /// When the build that completed started: sources newer than this make the build stale.
    pub started: SystemTime,
    /// The lp-build that built it.
    pub lp_build_version: String,
}

impl CacheEntry {
    /// The `O=` directory.
    pub fn build_dir(&self) -> PathBuf {
        self.dir.join("build")
    }

    /// The stamp file.
    pub fn stamp_path(&self) -> PathBuf {
        self.dir.join("stamp.json")
    }

    /// The cached probe result.
    pub fn entry_sizes_path(&self) -> PathBuf {
        self.dir.join("entry-sizes.json")
    }

    /// The stamp, if the build completed.
    pub fn stamp(&self) -> Option<Stamp> {
        let text = fs::read(self.stamp_path()).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Marks the build complete.
    pub fn write_stamp(&self, stamp: &Stamp) -> Result<()> {
        write_atomic(&self.stamp_path(), &serde_json::to_vec_pretty(stamp)?)
    }

    /// Forgets that the build is complete (make runs again next time).
    pub fn invalidate(&self) {
        let _ = fs::remove_file(self.stamp_path());
    }
}

/// A file under `src` (not in `.git`) modified after `since`, if any. The top-level directories
/// are walked in parallel: this check runs on every warm run, over the whole kernel tree.
pub fn changed_since(src: &Path, since: SystemTime) -> Option<PathBuf> {
    use rayon::prelude::*;
    let Ok(rd) = fs::read_dir(src) else {
        return None;
    };
    let mut dirs = Vec::new();
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if e.file_name() != ".git" {
                dirs.push(e.path());
            }
        } else if ft.is_file() && modified_after(&e, since) {
            return Some(e.path());
        }
    }
    dirs.par_iter().find_map_any(|d| changed_in(d, since))
}

fn modified_after(e: &fs::DirEntry, since: SystemTime) -> bool {
    e.metadata()
        .and_then(|m| m.modified())
        .is_ok_and(|m| m > since)
}

/// [`changed_since`] for one directory, walked sequentially.
fn changed_in(dir: &Path, since: SystemTime) -> Option<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if e.file_name() != ".git" {
                    stack.push(e.path());
                }
            } else if ft.is_file() && modified_after(&e, since) {
                return Some(e.path());
            }
        }
    }
    None
}

/// The lock of one source tree: an flock on the source tree's own directory, which every run
/// on that tree takes whatever its cache (`sudo` beside a normal user, two CI jobs with their
/// own `LP_BUILD_CACHE`), and an flock on the lock file of the tree's cache (both released by
/// the kernel when the holder dies), with the holder's PID inside for messages and recovery.
#[derive(Debug)]
pub struct Lock {
    file: fs::File,
    _tree: Option<fs::File>,
}

/// An exclusive flock on directory `src` itself (no file is created in the tree). `None` where
/// the file system cannot lock a directory (then only the cache's lock guards the tree).
fn lock_tree_dir(src: &Path) -> Result<Option<fs::File>> {
    let Ok(dir) = fs::File::open(src) else {
        return Ok(None);
    };
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Some(dir));
    }
    if std::io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Err(fail_hint(
            Status::Input,
            format!(
                "another lp-build is working on {} (it holds the tree's own lock; its cache may \
                 be another one, of another user or LP_BUILD_CACHE)",
                src.display()
            ),
            "wait for it to finish: it has patched the tree and restores it when done",
        ));
    }
    Ok(None)
}

/// A previous run that died holding the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// Its PID.
    pub pid: u32,
}

/// Whether a process exists.
pub fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: kill(2) with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid as i32, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl Lock {
    /// Takes the lock of the tree `src` at `path`, or fails naming the run that holds it.
    /// Returns the lock and, when the previous holder died without releasing it, its PID.
    pub fn acquire(path: &Path, src: &Path) -> Result<(Lock, Option<Stale>)> {
        let tree = lock_tree_dir(src)?;
        let mut file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening the lock {}", path.display()))?;
        let mut prev = String::new();
        let _ = file.read_to_string(&mut prev);
        let prev_pid: Option<u32> = prev.split_whitespace().next().and_then(|p| p.parse().ok());
        // SAFETY: flock on a descriptor we own.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let who = prev_pid.map_or("another lp-build".to_string(), |p| {
                format!("another lp-build (pid {p})")
            });
            return Err(fail_hint(
                Status::Input,
                format!(
                    "{who} is working on {} (lock {})",
                    src.display(),
                    path.display()
                ),
                "wait for it to finish: it has patched the tree and restores it when done",
            ));
        }
        let stale = prev_pid
            .filter(|&p| p != std::process::id())
            .map(|pid| Stale { pid });
        file.set_len(0).context("truncating the lock")?;
        file.rewind().context("rewinding the lock")?;
        writeln!(file, "{}", std::process::id()).context("writing the lock")?;
        file.flush().context("writing the lock")?;
        Ok((Lock { file, _tree: tree }, stale))
    }
}

/// Empties the lock file at `path` left by a run that died, when no live run holds it (best
/// effort: the lock of another user's cache may not be writable).
pub fn clear_stale_lock(path: &Path) {
    let Ok(file) = fs::OpenOptions::new().write(true).open(path) else {
        return;
    };
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        let _ = file.set_len(0);
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Empty means "released cleanly"; the flock goes with the descriptor.
        let _ = self.file.set_len(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_everything() {
        let k = build_key(Path::new("/src"), "6.12.57", "CONFIG_X=y\n", "gcc 12");
        assert_eq!(k.len(), 16);
        assert_eq!(
            k,
            build_key(Path::new("/src"), "6.12.57", "CONFIG_X=y\n", "gcc 12")
        );
        assert_ne!(
            k,
            build_key(Path::new("/src2"), "6.12.57", "CONFIG_X=y\n", "gcc 12")
        );
        assert_ne!(
            k,
            build_key(Path::new("/src"), "6.12.58", "CONFIG_X=y\n", "gcc 12")
        );
        assert_ne!(
            k,
            build_key(Path::new("/src"), "6.12.57", "CONFIG_X=m\n", "gcc 12")
        );
        assert_ne!(
            k,
            build_key(Path::new("/src"), "6.12.57", "CONFIG_X=y\n", "gcc 13")
        );
    }

    #[test]
    fn lock_is_exclusive_and_stale_locks_are_seen() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("lock");
        // A lock file left by a dead process.
        fs::write(&p, "999999999\n").unwrap();
        let (lock, stale) = Lock::acquire(&p, Path::new("/src")).unwrap();
        assert_eq!(stale, Some(Stale { pid: 999999999 }));
        assert_eq!(
            fs::read_to_string(&p).unwrap().trim(),
            std::process::id().to_string()
        );
        // A second acquisition (another descriptor) fails while it is held.
        let e = Lock::acquire(&p, Path::new("/src")).unwrap_err();
        let msg = crate::exit::one_line(&e);
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(lock);
        assert_eq!(fs::read_to_string(&p).unwrap(), "");
        // Other tests of this process fork children; one may briefly inherit the descriptor
        // between fork and exec (O_CLOEXEC closes it at exec), so allow a moment.
        let mut again = Lock::acquire(&p, Path::new("/src"));
        for _ in 0..100 {
            if again.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            again = Lock::acquire(&p, Path::new("/src"));
        }
        let (_lock, stale) = again.unwrap();
        assert_eq!(stale, None);
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(999_999_999));
    }

    #[test]
    fn finds_changed_sources() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("a/.git")).unwrap();
        fs::write(t.path().join("a/x.c"), "x").unwrap();
        let future = SystemTime::now() + std::time::Duration::from_secs(3600);
        assert_eq!(changed_since(t.path(), future), None);
        let past = SystemTime::UNIX_EPOCH;
        assert_eq!(changed_since(t.path(), past), Some(t.path().join("a/x.c")));
        // Deep in one of several top-level directories, at the top, never in .git.
        let t = tempfile::tempdir().unwrap();
        for d in ["arch/x86/kernel", "fs/proc", "kernel", ".git/objects"] {
            fs::create_dir_all(t.path().join(d)).unwrap();
        }
        fs::write(t.path().join(".git/objects/new"), "x").unwrap();
        fs::write(t.path().join("a.c"), "x").unwrap();
        fs::write(t.path().join("fs/proc/cmdline.c"), "x").unwrap();
        let old = SystemTime::now() - std::time::Duration::from_secs(3600);
        let set = |p: &str, when: SystemTime| {
            fs::File::options()
                .write(true)
                .open(t.path().join(p))
                .unwrap()
                .set_modified(when)
                .unwrap()
        };
        set("a.c", old);
        set("fs/proc/cmdline.c", old);
        let since = SystemTime::now() - std::time::Duration::from_secs(60);
        assert_eq!(changed_since(t.path(), since), None, ".git does not count");
        set("fs/proc/cmdline.c", SystemTime::now());
        assert_eq!(
            changed_since(t.path(), since),
            Some(t.path().join("fs/proc/cmdline.c"))
        );
        set("fs/proc/cmdline.c", old);
        set("a.c", SystemTime::now());
        assert_eq!(changed_since(t.path(), since), Some(t.path().join("a.c")));
    }
}
