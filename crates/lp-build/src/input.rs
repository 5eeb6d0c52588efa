//! Reading untrusted input files with a bound on their size, without blocking on a FIFO or a
//! device, and stopping at SIGINT/SIGTERM: a patch given as a FIFO nobody writes to waits for a
//! writer but can be interrupted; `/dev/zero` stops at the limit instead of at the OOM killer.
//!
//! Regular files are read directly; anything else (a pipe, a FIFO, a character device) is read
//! in non-blocking mode, polling the signal flag between reads.

use crate::exit::{fail, fail_hint, Status};
use crate::signals;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

const MIB: u64 = 1 << 20;

/// What an input is, and the most bytes lp-build reads of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A patch file (`--patch`).
    Patch,
    /// A kernel object (`diff`'s ORIG and PATCHED), a module (`check`, a parent `.ko`).
    Object,
    /// The kernel's vmlinux (with debug information it may be large).
    Vmlinux,
    /// A text file: `.config`, `Module.symvers`.
    Text,
}

impl Kind {
    /// The size limit in bytes.
    pub fn limit(self) -> u64 {
        match self {
            Kind::Patch => 64 * MIB,
            Kind::Object => 2048 * MIB,
            Kind::Vmlinux => 8192 * MIB,
            Kind::Text => 256 * MIB,
        }
    }
}

/// Why an input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The operating system's error (missing, permission denied, ...).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A directory where a file is expected.
    #[error("is a directory, not a file")]
    Directory,
    /// More bytes than the limit.
    #[error("larger than lp-build's limit of {} MiB for this input", .0 / MIB)]
    TooLarge(u64),
    /// SIGINT or SIGTERM while waiting for data.
    #[error("interrupted while reading")]
    Interrupted,
}

/// Reads `path`, at most `kind.limit()` bytes.
pub fn read_limited(path: &Path, kind: Kind) -> Result<Vec<u8>, ReadError> {
    read_with_limit(path, kind.limit())
}

/// Reads `path`, at most `limit` bytes.
pub fn read_with_limit(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    if signals::interrupted() {
        return Err(ReadError::Interrupted);
    }
    // O_NONBLOCK: opening a FIFO for reading does not wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    let ft = meta.file_type();
    if ft.is_dir() {
        return Err(ReadError::Directory);
    }
    if ft.is_file() {
        if meta.len() > limit {
            return Err(ReadError::TooLarge(limit));
        }
        let mut out = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        (&file)
            .take(limit.saturating_add(1))
            .read_to_end(&mut out)?;
        if out.len() as u64 > limit {
            return Err(ReadError::TooLarge(limit));
        }
        return Ok(out);
    }
    // FIFOs, pipes, character devices, sockets.
    read_polled(file, limit)
}

fn read_polled(mut file: File, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if signals::interrupted() {
            return Err(ReadError::Interrupted);
        }
        let mut pfd = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, 100) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        if n == 0 {
            continue; // no writer yet, or no data yet: look at the signal flag again
        }
        match file.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(k) => {
                out.extend_from_slice(buf.get(..k).unwrap_or_default());
                if out.len() as u64 > limit {
                    return Err(ReadError::TooLarge(limit));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads an input and turns a failure into the driver's error: `what` names the input in the
/// message (`patch`, `ORIG object`, ...), `hint` says what to pass instead when the file cannot
/// be read. Interrupted: the "interrupted" status.
pub fn read_input(path: &Path, what: &str, kind: Kind, hint: &str) -> anyhow::Result<Vec<u8>> {
    read_limited(path, kind).map_err(|e| match e {
        ReadError::Interrupted => fail(
            Status::Interrupted,
            format!("interrupted while reading {what} {}", path.display()),
        ),
        ReadError::TooLarge(_) => fail_hint(
            Status::Input,
            format!("{what} {}: {e}", path.display()),
            format!(
                "no {what} is that large: check the path (lp-build reads at most {} MiB of it)",
                kind.limit() / MIB
            ),
        ),
        _ => fail_hint(
            Status::Input,
            format!("{what} {}: {e}", path.display()),
            hint.to_string(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_up_to_the_limit() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, vec![7u8; 100]).unwrap();
        assert_eq!(read_with_limit(&p, 100).unwrap().len(), 100);
        assert!(matches!(
            read_with_limit(&p, 99),
            Err(ReadError::TooLarge(99))
        ));
        assert!(matches!(
            read_with_limit(d.path(), 99),
            Err(ReadError::Directory)
        ));
    }

    #[test]
    fn devices_stop_at_the_limit() {
        let r = read_with_limit(Path::new("/dev/zero"), 1 << 20);
        assert!(matches!(r, Err(ReadError::TooLarge(_))), "{r:?}");
        assert_eq!(read_with_limit(Path::new("/dev/null"), 10).unwrap(), b"");
    }
}
