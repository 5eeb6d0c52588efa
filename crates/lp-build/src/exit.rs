//! Exit statuses and the error kind that selects one.
//!
//! Every failure the driver reports carries a [`Failure`] somewhere in its `anyhow` chain; the
//! binary looks it up to choose the exit status and print the hint. Errors without one are I/O
//! errors (status [`Status::Input`]) when an `std::io::Error` is in the chain, else internal
//! errors (bugs).

use std::fmt;

/// The process exit statuses, documented in the crate's README.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The module (or patch object) was produced; `check` found no problem.
    Success,
    /// An unexpected internal error (a bug in lp-build).
    Internal,
    /// The command line is wrong.
    Usage,
    /// The change cannot be live-patched safely (the differ refused it, the patch touches
    /// files lp-build cannot patch), or `check` found problems in the module.
    Refused,
    /// The patch changes no function: there is nothing to live-patch.
    NoChange,
    /// A bad or unreadable input: the patch, the kernel tree, its configuration, vmlinux,
    /// a file that cannot be read or written, the cache lock held by another run.
    Input,
    /// A build failed: the kernel build, the patched build (the patch does not compile), the
    /// probe, the module link, or the module failed validation.
    Build,
    /// Interrupted by SIGINT or SIGTERM (the tree was restored first).
    Interrupted,
}

impl Status {
    /// The numeric exit status.
    pub fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Internal => 1,
            Status::Usage => 2,
            Status::Refused => 3,
            Status::NoChange => 4,
            Status::Input => 5,
            Status::Build => 6,
            Status::Interrupted => 130,
        }
    }

    /// Every status, in code order (for documentation tests).
    pub const ALL: [Status; 8] = [
        Status::Success,
        Status::Internal,
        Status::Usage,
        Status::Refused,
        Status::NoChange,
        Status::Input,
        Status::Build,
        Status::Interrupted,
    ];
}

/// A failure of a known kind, with an optional hint for the user.
#[derive(Debug)]
pub struct Failure {
    /// Which exit status it maps to.
    pub status: Status,
    /// What went wrong (one line).
    pub message: String,
    /// What the user can do about it.
    pub hint: Option<String>,
    /// A log the hint sends the user to, inside the run's temporary directory: the directory
    /// is kept when the run ends with this failure.
    pub log: Option<std::path::PathBuf>,
}

impl Failure {
    /// A failure of kind `status`.
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
            hint: None,
            log: None,
        }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Names the log (in the temporary directory) that the user needs after this failure.
    pub fn log(mut self, log: impl Into<std::path::PathBuf>) -> Self {
        self.log = Some(log.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Shorthand: an `anyhow::Error` of kind `status`.
pub fn fail(status: Status, message: impl Into<String>) -> anyhow::Error {
    Failure::new(status, message).into()
}

/// Shorthand: an `anyhow::Error` of kind `status` with a hint.
pub fn fail_hint(
    status: Status,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> anyhow::Error {
    Failure::new(status, message).hint(hint).into()
}

/// The log an error's [`Failure`] sends the user to, if any.
pub fn failure_log(err: &anyhow::Error) -> Option<&std::path::Path> {
    err.chain()
        .find_map(|e| e.downcast_ref::<Failure>())
        .and_then(|f| f.log.as_deref())
}

/// The exit status for an error: the first [`Failure`] in its chain, else `Input` for an I/O
/// error, else `Internal`.
pub fn status_of(err: &anyhow::Error) -> Status {
    if let Some(f) = err.chain().find_map(|e| e.downcast_ref::<Failure>()) {
        return f.status;
    }
    if err.chain().any(|e| e.is::<std::io::Error>()) {
        return Status::Input;
    }
    Status::Internal
}

/// The hint of the first [`Failure`] in the chain that has one.
pub fn hint_of(err: &anyhow::Error) -> Option<&str> {
    err.chain()
        .filter_map(|e| e.downcast_ref::<Failure>())
        .find_map(|f| f.hint.as_deref())
}

/// The error as one line: every message in the chain joined with ": ".
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in err.chain() {
        let s = e.to_string();
        // `anyhow` contexts often repeat their cause; keep the line short.
        if parts.last().is_some_and(|p| p.ends_with(&s)) {
            continue;
        }
        parts.push(s);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn codes_are_distinct() {
        let mut codes: Vec<u8> = Status::ALL.iter().map(|s| s.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), Status::ALL.len());
        assert_eq!(Status::Success.code(), 0);
        assert_eq!(
            Status::Usage.code(),
            2,
            "clap's own usage errors exit with 2"
        );
    }

    #[test]
    fn status_comes_from_the_chain() {
        let e: anyhow::Error =
            Err::<(), _>(fail_hint(Status::Build, "make failed", "read the log"))
                .context("building the original kernel")
                .unwrap_err();
        assert_eq!(status_of(&e), Status::Build);
        assert_eq!(hint_of(&e), Some("read the log"));
        assert_eq!(one_line(&e), "building the original kernel: make failed");

        let io = std::fs::read("/nonexistent/lp-build-test").context("reading x");
        assert_eq!(status_of(&io.unwrap_err()), Status::Input);
        assert_eq!(status_of(&anyhow::anyhow!("bug")), Status::Internal);
    }
}
