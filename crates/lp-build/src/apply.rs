//! Applying the patch files, in order, to a scratch copy of the files they touch (never to the
//! kernel tree itself): proves they apply, says which hunk of which file does not, and yields
//! the patched contents that [`crate::journal`] later writes into the tree.
//!
//! Hunks may move (an offset) but must match their context exactly (`--fuzz=0`): a livepatch is
//! built for one exact source, and a fuzzy match can change the wrong lines. `--fuzz N` (at most
//! 2) lets hunks whose context is up to N lines off apply, and names each fuzzed hunk with the
//! line where it landed. Without it, a patch whose hunks would apply with fuzz is refused with
//! those hunks, where they would land, and the two ways on: rerun with `--fuzz N` after
//! checking them, or refresh the patch.

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
    /// Hunks that applied only with fuzz.
    pub fuzzed: Vec<Fuzzed>,
    /// Hunks that did not apply: (file, hunk number).
    pub failed_hunks: Vec<(String, usize)>,
}

/// A hunk that applied only with fuzz (its context differs from the file's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fuzzed {
    /// The file, relative to the tree.
    pub file: String,
    /// The hunk's number in that file's part of the patch (1-based).
    pub hunk: usize,
    /// Its line in the patch file, when known.
    pub patch_line: Option<usize>,
    /// The line of the file where it landed.
    pub landed_at: usize,
    /// The fuzz it needed.
    pub fuzz: u8,
}

impl Fuzzed {
    /// `hunk #2 of fs/a.c (line 12 of fix.patch) ... at line 40 of fs/a.c`.
    fn describe(&self, patch: &str, verb: &str) -> String {
        let at = self
            .patch_line
            .map_or(String::new(), |l| format!(" (line {l} of {patch})"));
        format!(
            "hunk #{} of {}{at} {verb} with fuzz {} at line {} of {}",
            self.hunk, self.file, self.fuzz, self.landed_at, self.file
        )
    }
}

/// `Hunk #1 succeeded at 40 with fuzz 1 (offset 2 lines).` -> (40, 1).
fn parse_fuzz(tail: &str) -> Option<(usize, u8)> {
    let rest = tail.strip_prefix("succeeded at ")?;
    let (line, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("with fuzz ")?;
    let fuzz: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.parse().ok()?, fuzz.parse().ok()?))
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
                if let Ok(n) = num.parse::<usize>() {
                    report.failed_hunks.push((file.to_string(), n));
                }
                report
                    .failures
                    .push(format!("hunk #{num} of {file}{at} does not apply: {line}"));
            } else if tail.starts_with("succeeded") {
                match (parse_fuzz(tail), num.parse::<usize>()) {
                    (Some((landed_at, fuzz)), Ok(hunk)) => report.fuzzed.push(Fuzzed {
                        file: file.to_string(),
                        hunk,
                        patch_line,
                        landed_at,
                        fuzz,
                    }),
                    _ => report.notes.push(format!("{}: {file}: {line}", input.name)),
                }
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

/// Applies `patches` in order to copies of the files they touch, made in `scratch`, without
/// fuzz; returns the original and patched contents of every touched file, in path order, and
/// notes (hunks that moved).
pub fn apply_in_scratch(
    src: &Path,
    patches: &[PatchInput],
    scratch: &Path,
) -> Result<(Vec<FileResult>, Vec<String>)> {
    apply_in_scratch_fuzz(src, patches, scratch, 0)
}

/// The largest fuzz `--fuzz` accepts (and the one tried to tell a user that fuzz would help):
/// with kernel diffs' three lines of context, more would ignore the context entirely.
pub const MAX_FUZZ: u8 = 2;

/// Runs GNU patch on `scratch` (`dry_run`: changes nothing); returns its status and output.
fn run_patch(scratch: &Path, patch_file: &Path, fuzz: u8, dry_run: bool) -> Result<(bool, String)> {
    let mut cmd = Command::new("patch");
    cmd.args(["-p1", "--batch", "--forward", "--no-backup-if-mismatch"])
        .arg(format!("--fuzz={fuzz}"))
        .arg("--reject-file=-")
        .arg("-d")
        .arg(scratch)
        .arg("-i")
        .arg(patch_file)
        .env("LC_ALL", "C");
    if dry_run {
        cmd.arg("--dry-run");
    }
    let out = match cmd.output() {
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
    Ok((out.status.success(), text))
}

/// [`apply_in_scratch`] with up to `fuzz` lines of fuzz (`--fuzz N`); each hunk that needed
/// fuzz is a note saying where it landed.
pub fn apply_in_scratch_fuzz(
    src: &Path,
    patches: &[PatchInput],
    scratch: &Path,
    fuzz: u8,
) -> Result<(Vec<FileResult>, Vec<String>)> {
    let fuzz = fuzz.min(MAX_FUZZ);
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
        // A dry run first, so that a refusal can be explained on the unchanged copy.
        let mut report = PatchReport::default();
        for dry_run in [true, false] {
            let (ok, text) = run_patch(scratch, &patch_file, fuzz, dry_run)?;
            report = interpret_patch_output(p, &text);
            if !ok || !report.failures.is_empty() {
                return Err(refusal(
                    src,
                    patches,
                    p,
                    scratch,
                    &patch_file,
                    fuzz,
                    &text,
                    &report,
                ));
            }
        }
        notes.extend(report.notes);
        notes.extend(report.fuzzed.iter().map(|f| {
            format!(
                "{}: {}: check that it landed where you meant",
                p.name,
                f.describe(&p.name, "applied")
            )
        }));
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

/// The error for a patch that does not apply at `fuzz`: which hunks fail, and, when they would
/// apply with more fuzz, where they would land and how to proceed.
#[allow(clippy::too_many_arguments)] // one call site per attempt, each with the whole context
fn refusal(
    src: &Path,
    patches: &[PatchInput],
    p: &PatchInput,
    scratch: &Path,
    patch_file: &Path,
    fuzz: u8,
    text: &str,
    report: &PatchReport,
) -> anyhow::Error {
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
    // Would more fuzz apply it? (Dry runs: the scratch copy is not changed.) The least fuzz
    // that applies every hunk is the one suggested; only the hunks that failed are listed.
    let more_fuzz =
        (fuzz + 1..=MAX_FUZZ).find_map(|f| match run_patch(scratch, patch_file, f, true) {
            Ok((true, more)) => {
                let probe = interpret_patch_output(p, &more);
                probe.failures.is_empty().then_some(probe)
            }
            _ => None,
        });
    if !report.failed_hunks.is_empty() {
        if let Some(probe) = more_fuzz {
            let fuzzed: Vec<&Fuzzed> = probe
                .fuzzed
                .iter()
                .filter(|f| report.failed_hunks.contains(&(f.file.clone(), f.hunk)))
                .collect();
            if !fuzzed.is_empty() {
                let need = fuzzed.iter().map(|f| f.fuzz).max().unwrap_or(MAX_FUZZ);
                let hunks: Vec<String> = fuzzed
                    .iter()
                    .map(|f| f.describe(&p.name, "would apply"))
                    .collect();
                msg = format!(
                    "{} does not apply to {} without fuzz: its context differs from the tree: {}",
                    p.name,
                    src.display(),
                    hunks.join("; ")
                );
                return fail_hint(
                    Status::Input,
                    msg,
                    format!(
                        "check that each of these hunks lands where you meant, then rerun with \
                         --fuzz {need}; or refresh the patch against this tree (apply it with \
                         `patch -p1 --fuzz={need}` in a copy and regenerate it with `git diff`)"
                    ),
                );
            }
        }
    }
    let hint = if patches.len() > 1 {
        "patches are applied in the order given, each on top of the previous ones; check that \
         --sourcedir is the tree the patch was made for"
    } else {
        "check that --sourcedir is the tree the patch was made for (same kernel version)"
    };
    fail_hint(Status::Input, msg, hint)
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

    /// The tree's file differs from the patch's context in its first line (`one` -> `ONE`):
    /// the hunk applies only with fuzz 1.
    fn fuzzy_case(t: &Path) -> (PathBuf, PatchInput) {
        let src = t.join("src");
        fs::create_dir_all(src.join("fs")).unwrap();
        fs::write(
            src.join("fs/a.c"),
            "zero\nONE\ntwo\nthree\nfour\nfive\nsix\nseven\n",
        )
        .unwrap();
        let p = input(
            t,
            "fix.patch",
            "--- a/fs/a.c\n+++ b/fs/a.c\n@@ -2,7 +2,7 @@\n one\n two\n three\n-four\n+FOUR\n five\n six\n seven\n",
        );
        (src, p)
    }

    #[test]
    fn fuzz_is_refused_with_how_to_proceed() {
        let t = tempfile::tempdir().unwrap();
        let (src, p) = fuzzy_case(t.path());
        let e = apply_in_scratch(&src, std::slice::from_ref(&p), &t.path().join("s")).unwrap_err();
        let msg = crate::exit::one_line(&e);
        assert!(msg.contains("fix.patch does not apply"), "{msg}");
        assert!(msg.contains("without fuzz"), "{msg}");
        assert!(
            msg.contains("hunk #1 of fs/a.c (line 3 of fix.patch) would apply with fuzz 1 at line 2 of fs/a.c"),
            "{msg}"
        );
        let hint = crate::exit::hint_of(&e).unwrap();
        assert!(hint.contains("rerun with --fuzz 1"), "{hint}");
        assert!(hint.contains("refresh the patch"), "{hint}");
        assert_eq!(crate::exit::status_of(&e), Status::Input);
        // The tree is untouched.
        assert!(fs::read_to_string(src.join("fs/a.c"))
            .unwrap()
            .contains("four"));
    }

    #[test]
    fn fuzz_applies_when_asked_and_says_where() {
        let t = tempfile::tempdir().unwrap();
        let (src, p) = fuzzy_case(t.path());
        let (r, notes) =
            apply_in_scratch_fuzz(&src, std::slice::from_ref(&p), &t.path().join("s"), 1).unwrap();
        assert_eq!(
            r[0].patched.as_deref(),
            Some(&b"zero\nONE\ntwo\nthree\nFOUR\nfive\nsix\nseven\n"[..])
        );
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains(
                "hunk #1 of fs/a.c (line 3 of fix.patch) applied with fuzz 1 at line 2 of fs/a.c"
            ),
            "{notes:?}"
        );
        // A hunk that does not apply even with fuzz is still a plain failure.
        let bad = input(
            t.path(),
            "bad.patch",
            "--- a/fs/a.c\n+++ b/fs/a.c\n@@ -2,3 +2,3 @@\n x\n-y\n+Y\n z\n",
        );
        let e = apply_in_scratch_fuzz(&src, &[bad], &t.path().join("s2"), 2).unwrap_err();
        let msg = crate::exit::one_line(&e);
        assert!(
            msg.contains("hunk #1 of fs/a.c (line 3 of bad.patch) does not apply"),
            "{msg}"
        );
        assert!(!msg.contains("fuzz"), "{msg}");
    }

    #[test]
    fn parses_patch_fuzz_lines() {
        assert_eq!(
            parse_fuzz("succeeded at 40 with fuzz 1 (offset 2 lines)."),
            Some((40, 1))
        );
        assert_eq!(parse_fuzz("succeeded at 5 with fuzz 2."), Some((5, 2)));
        assert_eq!(parse_fuzz("succeeded at 5 (offset 1 line)."), None);
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
