//! The hooks headers (`hooks-macros/`), built into the binary so that an installed lp-build
//! needs no data files: each run writes them into its temporary directory, which the compiler
//! wrapper puts on the include path of the patched build ([`crate::ccwrap::ENV_HOOKS_DIR`]).
//!
//! Never searches the file system for them: what a patch includes is always the copy this
//! binary was built with.

use anyhow::{Context, Result};
use std::fs;
use std::path::Path;

/// Every header, by its path under the include directory, with its contents.
pub const HEADERS: &[(&str, &str)] = &[
    (
        "lp-hooks.h",
        include_str!("../../../hooks-macros/lp-hooks.h"),
    ),
    (
        "kpatch-macros.h",
        include_str!("../../../hooks-macros/kpatch-macros.h"),
    ),
    (
        "kpatch-syscall.h",
        include_str!("../../../hooks-macros/kpatch-syscall.h"),
    ),
    (
        "lp-syscall.h",
        include_str!("../../../hooks-macros/lp-syscall.h"),
    ),
];

/// The directory (under the include directory) searched after the kernel's own include
/// directories (`-idirafter`): headers there stand in for kernel headers that only newer
/// kernels ship, so a kernel's own copy always wins.
pub const COMPAT_SUBDIR: &str = "compat";

/// Headers that stand in for the kernel's, by path under [`COMPAT_SUBDIR`].
pub const COMPAT_HEADERS: &[(&str, &str)] = &[(
    "linux/livepatch_helpers.h",
    include_str!("../../../hooks-macros/linux/livepatch_helpers.h"),
)];

/// Writes every header into `dir` (created when missing); returns the paths written, relative
/// to `dir`.
pub fn write_headers(dir: &Path) -> Result<Vec<String>> {
    let mut written = Vec::new();
    let compat: Vec<(String, &str)> = COMPAT_HEADERS
        .iter()
        .map(|(p, c)| (format!("{COMPAT_SUBDIR}/{p}"), *c))
        .collect();
    for (rel, content) in HEADERS
        .iter()
        .map(|(p, c)| (p.to_string(), *c))
        .chain(compat)
    {
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
        written.push(rel);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_header_byte_for_byte() {
        let t = tempfile::tempdir().unwrap();
        let written = write_headers(t.path()).unwrap();
        assert_eq!(written.len(), HEADERS.len() + COMPAT_HEADERS.len());
        for (rel, content) in HEADERS {
            assert_eq!(fs::read_to_string(t.path().join(rel)).unwrap(), *content);
        }
        assert!(t.path().join("compat/linux/livepatch_helpers.h").is_file());
        // The repository's copies are the ones built in.
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hooks-macros");
        for (rel, content) in HEADERS {
            assert_eq!(
                fs::read_to_string(repo.join(rel)).unwrap(),
                *content,
                "{rel}"
            );
        }
    }
}
