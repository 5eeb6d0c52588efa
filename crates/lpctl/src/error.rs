//! One error type for the whole tool: a class (which decides the exit
//! status), a one-line cause and an optional hint.

use std::fmt;
use std::io;
use std::path::Path;

/// What kind of failure this is. The discriminant is the process exit
/// status; keep it in sync with README.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Unexpected I/O or system error (reading sysfs/proc failed, ...).
    Io = 1,
    /// Bad command line (clap also exits with 2).
    Usage = 2,
    /// Not root / missing CAP_SYS_MODULE / modules disabled.
    Permission = 3,
    /// The running kernel has no livepatch support (or sysfs is not mounted).
    NoLivepatch = 4,
    /// The file is not a usable livepatch module (unreadable, malformed ELF,
    /// no `livepatch=Y`, inconsistent lp-build keys, compressed).
    BadModule = 5,
    /// The replace policy refused the operation (downgrade, ...).
    Refused = 6,
    /// A transition did not finish within the timeout; it was reverted.
    Stalled = 7,
    /// The kernel rejected a module load/unload or a sysfs write.
    Kernel = 8,
    /// The named patch is not loaded.
    NotFound = 9,
    /// Something else is in progress (another transition, module in use).
    Busy = 10,
}

impl ErrorClass {
    pub fn exit_code(self) -> i32 {
        self as i32
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub class: ErrorClass,
    pub message: String,
    pub hint: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Error {
            class,
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// An unexpected I/O error while reading `path`.
    pub fn io(path: &Path, err: &io::Error) -> Self {
        let class = match err.kind() {
            io::ErrorKind::PermissionDenied => ErrorClass::Permission,
            _ => ErrorClass::Io,
        };
        let e = Error::new(class, format!("{}: {}", path.display(), err));
        if class == ErrorClass::Permission {
            e.hint("run lpctl as root")
        } else {
            e
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Always one line: newlines in causes would break log parsers.
        let msg = self.message.replace('\n', " ");
        write!(f, "{msg}")?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {})", h.replace('\n', " "))?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
