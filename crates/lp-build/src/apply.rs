//! Applying the patch files, in order, to a scratch copy of the files they touch (never to the
//! kernel tree itself): proves they apply, says which hunk of which file does not, and yields
//! the patched contents that [`crate::journal`] later writes into the tree.
//!
//! Hunks may move (an offset) but must match their context exactly (`--fuzz=0`): a livepatch is
//! built for one exact source, and a fuzzy match can change the wrong lines.

use crate::exit::{fail_hint, Status};
use crate::patchfile::{FileChange, Patch};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One patch file given on the command line.
#[derive(Debug, Clone)]
pub struct PatchInput {
    /// The path as given.
    pub path: PathBuf,
    /// Its file name (`fix.diff`).
    pub name: String,
    /// sha256 of its bytes, hex.
    pub sha256: String,
    /// The parsed diff.
    pub parsed: Patch,
}

/// The contents of one touched file before and after all patches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileResult {
    /// Path relative to the source tree.
    pub path: String,
    /// Contents in the tree now (`None`: the file does not exist).
    pub orig: Option<Vec<u8>>,
    /// Contents after the patches (`None`: deleted).
    pub patched: Option<Vec<u8>>,
}

/// What `patch` said about one patch file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PatchReport {
    /// Hunks that did not apply: one line each.
    pub failures: Vec<String>,
    /// Hunks applied with an offset or fuzz.
    pub notes: Vec<String>,
}

/// Reads `patch`'s output for the patch file `input` and names each failing hunk with its
/// line in the patch file.
pub fn interpret_patch_output(input: &PatchInput, output: &str) -> PatchReport {
    let mut report = PatchReport::default();
    let mut current: Option<String> = None;
    for line in output.lines() {
        let line = line.trim();
        if let Some(f) = line
            .strip_prefix("patching file ")
            .or_else(|| line.strip_prefix("checking file "))
        {
            current = Some(f.trim_matches(['\'', '"', '`']).to_string());
            continue;
        }
        let file = current.as_deref().unwrap_or("?");
        if let Some(rest) = line.strip_prefix("Hunk #") {
            let (num, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            let patch_line = num.parse::<usize>().ok().and_then(|n| {
                input
                    .parsed
                    .files
                    .iter()
                    .find(|f| f.path == file)
                    .and_then(|f| f.hunks.get(n.wrapping_sub(1)))
                    .map(|h| h.line)
            });
            let at = patch_line.map_or(String::new(), |l| format!(" (line {l} of {})", input.name));
            if tail.starts_with("FAILED") {
                report
                    .failures
                    .push(format!("hunk #{num} of {file}{at} does not apply: {line}"));
            } else if tail.starts_with("succeeded") {
                report.notes.push(format!("{}: {file}: {line}", input.name));
            }
        } else if line.starts_with("Reversed (or previously applied) patch detected") {
            report.failures.push(format!(
                "{file}: the patch is already applied to the tree (or reversed)"
            ));
        } else if line.starts_with("can't find file to patch") {
            report.failures.push(format!(
                "{}: a file to patch does not exist: {line}",
                input.name
            ));
        } else if line.contains("malformed patch") {
            report.failures.push(line.to_string());
        }
    }
    report
}

/// Refuses a path whose directories, inside the tree, include a symbolic link: writing the
/// patched file there would change a file outside the tree (or elsewhere in it).
fn refuse_symlinked_dirs(src: &Path, rel: &str, patch: &str) -> Result<()> {
    let mut dir = src.to_path_buf();
    let parts: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(fail_hint(
                    Status::Input,
                    format!(
                        "{patch}: {rel} is under {}, a symbolic link to a directory",
                        dir.display()
                    ),
                    "a patch can only change files inside the tree: replace the link by the \
                     directory itself, or patch the tree it points to",
                ));
            }
            Ok(_) => {}
            Err(_) => break, // a new directory: created by the patch, inside the tree
        }
    }
    Ok(())
}

/// Applies `patches` in order to copies of the files they touch, made in `scratch`; returns the
/// original and patched contents of every touched file, in path order.
pub fn apply_in_scratch(
    src: &Path,
    patches: &[PatchInput],
    scratch: &Path,
) -> Result<(Vec<FileResult>, Vec<String>)> {
    fs::create_dir_all(scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let mut orig: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    for p in patches {
        for f in &p.parsed.files {
            if orig.contains_key(&f.path) {
                continue;
            }
            let in_tree = src.join(&f.path);
            refuse_symlinked_dirs(src, &f.path, &p.name)?;
            let content =
                match fs::symlink_metadata(&in_tree) {
                    Ok(m) if m.is_file() => Some(crate::input::read_input(
                        &in_tree,
                        "source file",
                        crate::input::Kind::Text,
                        "the files a patch changes must be readable files of the tree",
                    )?),
                    Ok(_) => return Err(fail_hint(
                        Status::Input,
                        format!("{}: {} is not a regular file", p.name, in_tree.display()),
                        "a patch can only change regular files of the tree (not symbolic links, \
                         directories or devices)",
                    )),
                    Err(_) => None,
                };
            if content.is_none() && f.change != FileChange::Create {
                return Err(fail_hint(
                    Status::Input,
                    format!("{}: {} does not exist in {}", p.name, f.path, src.display()),
                    "is --sourcedir the tree the patch was made for?",
                ));
            }
            if let Some(c) = &content {
                let dest = scratch.join(&f.path);
                if let Some(dir) = dest.parent() {
                    fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                fs::write(&dest, c).with_context(|| format!("writing {}", dest.display()))?;
            }
            orig.insert(f.path.clone(), content);
        }
    }

    let mut notes = Vec::new();
    for p in patches {
        let patch_file = std::path::absolute(&p.path)
            .with_context(|| format!("resolving {}", p.path.display()))?;
        let out = Command::new("patch")
            .args([
                "-p1",
                "--batch",
                "--forward",
                "--fuzz=0",
                "--no-backup-if-mismatch",
            ])
            .arg("--reject-file=-")
            .arg("-d")
            .arg(scratch)
            .arg("-i")
            .arg(&patch_file)
            .env("LC_ALL", "C")
            .output();
        let out = match out {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(fail_hint(
                    Status::Input,
                    "the `patch` program is not installed",
                    "install GNU patch (Debian: apt-get install patch)",
                ))
            }
            Err(e) => return Err(e).context("running patch"),
        };
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let report = interpret_patch_output(p, &text);
        notes.extend(report.notes);
        if !out.status.success() || !report.failures.is_empty() {
            let mut msg = format!("{} does not apply to {}", p.name, src.display());
            if report.failures.is_empty() {
                msg.push_str(&format!(
                    ": patch said: {}",
                    text.trim().replace('\n', "; ")
                ));
            } else {
                msg.push_str(": ");
                msg.push_str(&report.failures.join("; "));
            }
            let hint = if patches.len() > 1 {
                "patches are applied in the order given, each on top of the previous ones; \
                 check that --sourcedir is the tree the patch was made for"
            } else {
                "check that --sourcedir is the tree the patch was made for (same kernel version); \
                 hunks must match their context exactly (no fuzz)"
            };
            return Err(fail_hint(Status::Input, msg, hint));
        }
    }

    let mut results = Vec::new();
    for (path, orig) in orig {
        let p = scratch.join(&path);
        let patched = match fs::read(&p) {
            Ok(c) => Some(c),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
        };
        results.push(FileResult {
            path,
            orig,
            patched,
        });
    }
    Ok((results, notes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patchfile::parse;

    fn input(dir: &Path, name: &str, text: &str) -> PatchInput {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        PatchInput {
            path,
            name: name.to_string(),
            sha256: String::new(),
            parsed: parse(text).unwrap(),
        }
    }

    #[test]
    fn applies_in_order_and_names_failing_hunks() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("fs")).unwrap();
        fs::write(src.join("fs/a.c"), "one\ntwo\nthree\n").unwrap();
        let p1 = input(
            t.path(),
            "1.diff",
            "--- a/fs/a.c\n+++ b/fs/a.c\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n",
        );
        let p2 = input(
            t.path(),
            "2.diff",
            "--- a/fs/a.c\n+++ b/fs/a.c\n@@ -1,3 +1,3 @@\n one\n TWO\n-three\n+THREE\n",
        );
        let scratch = t.path().join("s1");
        let (r, _) = apply_in_scratch(&src, &[p1.clone(), p2.clone()], &scratch).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].orig.as_deref(), Some(&b"one\ntwo\nthree\n"[..]));
        assert_eq!(r[0].patched.as_deref(), Some(&b"one\nTWO\nTHREE\n"[..]));
        // The tree itself is untouched.
        assert_eq!(fs::read(src.join("fs/a.c")).unwrap(), b"one\ntwo\nthree\n");

        // The second patch alone does not apply: its hunk is named.
        let scratch = t.path().join("s2");
        let e = apply_in_scratch(&src, &[p2], &scratch).unwrap_err();
        let msg = crate::exit::one_line(&e);
        assert!(msg.contains("2.diff does not apply"), "{msg}");
        assert!(
            msg.contains("hunk #1 of fs/a.c (line 3 of 2.diff)"),
            "{msg}"
        );
        assert_eq!(crate::exit::status_of(&e), Status::Input);

        // Applying twice: already applied.
        let scratch = t.path().join("s3");
        let e = apply_in_scratch(&src, &[p1.clone(), p1], &scratch).unwrap_err();
        assert!(crate::exit::one_line(&e).contains("already applied"));
    }

    #[test]
    fn missing_file_is_named() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(&src).unwrap();
        let p = input(
            t.path(),
            "x.diff",
            "--- a/fs/nope.c\n+++ b/fs/nope.c\n@@ -1 +1 @@\n-a\n+b\n",
        );
        let e = apply_in_scratch(&src, &[p], &t.path().join("s")).unwrap_err();
        assert!(crate::exit::one_line(&e).contains("fs/nope.c does not exist"));
    }

    #[test]
    fn new_header_file() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(&src).unwrap();
        let p = input(
            t.path(),
            "n.diff",
            "--- /dev/null\n+++ b/include/n.h\n@@ -0,0 +1 @@\n+#define N 1\n",
        );
        let (r, _) = apply_in_scratch(&src, &[p], &t.path().join("s")).unwrap();
        assert_eq!(r[0].orig, None);
        assert_eq!(r[0].patched.as_deref(), Some(&b"#define N 1\n"[..]));
    }
}
