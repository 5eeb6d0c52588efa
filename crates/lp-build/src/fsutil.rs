//! Small file-system helpers: copies that keep modification times, atomic writes, hashes.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::Path;
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
/// at the SIGINT/SIGTERM flag meanwhile.
pub fn lock_dir(dir: &Path) -> Result<fs::File> {
    use std::os::unix::io::AsRawFd;
    let f = fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    loop {
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(f);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(anyhow::Error::from(e).context(format!("locking {}", dir.display())));
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
