//! Small file-system helpers: copies that keep modification times, atomic writes, hashes.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// sha256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The modification time of `path` (not following a final symlink).
pub fn mtime(path: &Path) -> Result<SystemTime> {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .with_context(|| format!("reading the modification time of {}", path.display()))
}

/// Sets the modification time of `path` (and its access time to the same value).
pub fn set_mtime(path: &Path, t: SystemTime) -> Result<()> {
    let f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .or_else(|_| fs::File::open(path))
        .with_context(|| format!("opening {} to set its time", path.display()))?;
    f.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
        .with_context(|| format!("setting the modification time of {}", path.display()))
}

/// Copies `from` to `to` (creating `to`'s directory) and gives the copy `from`'s modification
/// time and permissions.
pub fn copy_with_mtime(from: &Path, to: &Path) -> Result<()> {
    let t = mtime(from)?;
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // Replace rather than write through: `to` may be a hard link or read-only.
    let _ = fs::remove_file(to);
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    set_mtime(to, t)
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let r = fs::write(&tmp, bytes)
        .with_context(|| format!("writing {}", tmp.display()))
        .and_then(|()| {
            fs::rename(&tmp, path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
        });
    if r.is_err() {
        // A full disk must not leave a partial temporary file behind.
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// An exclusive `flock` on a directory, held until dropped. Waits for another holder, looking
/// at the SIGINT/SIGTERM flag meanwhile. `None` where the directory cannot be opened or its
/// file system cannot lock it (the write that follows reports a missing directory).
pub fn lock_dir(dir: &Path) -> Result<Option<fs::File>> {
    use std::os::unix::io::AsRawFd;
    let Ok(f) = fs::File::open(dir) else {
        return Ok(None);
    };
    loop {
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Some(f));
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Ok(None);
        }
        crate::signals::check()?;
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Writes `bytes` into the existing file `path` in place (keeping its inode, owner and mode).
pub fn write_in_place(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Seconds with one decimal, for messages.
pub fn secs(d: std::time::Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The extended attribute that marks a source tree as patched by a run, naming that run's
/// journal: a run with another cache (another user, another `LP_BUILD_CACHE`) finds the journal
/// of one that died. An attribute changes neither the contents nor the modification time.
const TREE_MARKER: &str = "user.lp-build.journal";

fn c_path(p: &Path) -> Option<std::ffi::CString> {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok()
}

/// Marks `src` as patched by the run whose journal is `journal` (best effort: a file system
/// without user extended attributes keeps only the cache's own journal).
pub fn set_tree_marker(src: &Path, journal: &Path) {
    let (Some(p), Some(name)) = (c_path(src), std::ffi::CString::new(TREE_MARKER).ok()) else {
        return;
    };
    let value = journal.as_os_str().as_encoded_bytes();
    // SAFETY: valid NUL-terminated strings and a buffer of the length given.
    unsafe {
        libc::setxattr(
            p.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
}

/// The journal the marker of `src` names, if any.
pub fn tree_marker(src: &Path) -> Option<PathBuf> {
    let p = c_path(src)?;
    let name = std::ffi::CString::new(TREE_MARKER).ok()?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid NUL-terminated strings and a buffer of the length given.
    let n = unsafe {
        libc::getxattr(
            p.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok().filter(|&n| n > 0)?;
    buf.truncate(n);
    use std::os::unix::ffi::OsStringExt;
    Some(PathBuf::from(std::ffi::OsString::from_vec(buf)))
}

/// Removes the marker of `src` (best effort).
pub fn clear_tree_marker(src: &Path) {
    let (Some(p), Some(name)) = (c_path(src), std::ffi::CString::new(TREE_MARKER).ok()) else {
        return;
    };
    // SAFETY: valid NUL-terminated strings.
    unsafe { libc::removexattr(p.as_ptr(), name.as_ptr()) };
}
