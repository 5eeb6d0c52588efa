//! Parsing unified diffs (plain `diff -u` and `git diff` output) and deciding whether lp-build
//! can use them: which files they touch, whether each is a kind of file a livepatch can carry.
//!
//! This module only reads the text; applying it is [`crate::apply`]'s job.

use std::fmt;

/// What a patch does to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileChange {
    /// The file exists and is changed.
    Modify,
    /// The file is created (`--- /dev/null`).
    Create,
    /// The file is deleted (`+++ /dev/null`).
    Delete,
}

/// One hunk's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    /// First line in the original file.
    pub old_start: u64,
    /// Number of original lines.
    pub old_len: u64,
    /// First line in the patched file.
    pub new_start: u64,
    /// Number of patched lines.
    pub new_len: u64,
    /// Line of the `@@` header in the patch file (1-based).
    pub line: usize,
}

/// The changes to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    /// Path in the kernel tree (the header's path without its first component, as `patch -p1`).
    pub path: String,
    /// Created, deleted or modified.
    pub change: FileChange,
    /// The hunks, in order.
    pub hunks: Vec<Hunk>,
    /// Line of the file's `---` header (or `diff --git` line) in the patch file (1-based).
    pub line: usize,
}

/// A parsed patch file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// The files it changes, in order of appearance.
    pub files: Vec<FilePatch>,
}

/// Why a patch file cannot be read as a unified diff.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The file is empty or only white space.
    #[error("the patch is empty")]
    Empty,
    /// No `---`/`+++` file header was found.
    #[error("not a unified diff (no `--- a/FILE` / `+++ b/FILE` header found)")]
    NotADiff,
    /// A binary diff.
    #[error("line {line}: binary diff of {file}: lp-build patches C source only")]
    Binary {
        /// The file.
        file: String,
        /// Line in the patch file.
        line: usize,
    },
    /// The text is a diff but breaks its own rules.
    #[error("line {line}: {message}")]
    Malformed {
        /// Line in the patch file.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl ParseError {
    fn malformed(line: usize, message: impl Into<String>) -> Self {
        ParseError::Malformed {
            line,
            message: message.into(),
        }
    }
}

/// A file of the patch that lp-build cannot put into a livepatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The path in the tree.
    pub path: String,
    /// Why.
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Parses a unified diff.
pub fn parse(text: &str) -> Result<Patch, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut files: Vec<FilePatch> = Vec::new();
    let mut i = 0;
    // The pending `diff --git` header: (line, path, state).
    let mut git: Option<GitHeader> = None;
    while i < lines.len() {
        let line = lines[i].trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("diff --git ") {
            if let Some(h) = git.take() {
                finish_git_header(h, &mut files)?;
            }
            git = Some(GitHeader::new(i + 1, rest));
            i += 1;
            continue;
        }
        if line.starts_with("diff --cc ") || line.starts_with("diff --combined ") {
            return Err(ParseError::malformed(
                i + 1,
                "combined (merge) diffs are not supported: export the change as a plain diff",
            ));
        }
        if let Some(h) = git.as_mut() {
            if line.starts_with("Binary files ") || line == "GIT binary patch" {
                return Err(ParseError::Binary {
                    file: h.path.clone(),
                    line: i + 1,
                });
            }
            if line.starts_with("rename from ")
                || line.starts_with("copy from ")
                || line.starts_with("rename to ")
                || line.starts_with("copy to ")
            {
                return Err(ParseError::malformed(
                    i + 1,
                    format!(
                        "{} is renamed or copied: lp-build applies plain patches \
                         (make the diff with `git diff --no-renames`)",
                        h.path
                    ),
                ));
            }
            if line.starts_with("new file mode") {
                h.change = FileChange::Create;
            } else if line.starts_with("deleted file mode") {
                h.change = FileChange::Delete;
            } else if line.starts_with("old mode") || line.starts_with("new mode") {
                h.mode_change = true;
            }
        }
        if let Some(old) = line.strip_prefix("--- ") {
            let Some(new) = lines
                .get(i + 1)
                .map(|l| l.trim_end_matches('\r'))
                .and_then(|l| l.strip_prefix("+++ "))
            else {
                // A "--- " line that is not a file header (commit message text): skip it.
                i += 1;
                continue;
            };
            let header_line = git.as_ref().map_or(i + 1, |h| h.line);
            git = None;
            let file = parse_file_header(i + 1, old, new, header_line)?;
            i += 2;
            let mut file = file;
            while i < lines.len() && lines[i].starts_with("@@ ") {
                let (hunk, next) = parse_hunk(&lines, i)?;
                file.hunks.push(hunk);
                i = next;
            }
            if file.hunks.is_empty() {
                return Err(ParseError::malformed(
                    i.min(lines.len()),
                    format!("{}: file header without any hunk (`@@ ... @@`)", file.path),
                ));
            }
            files.push(file);
            continue;
        }
        if line.starts_with("@@ ") {
            return Err(ParseError::malformed(
                i + 1,
                "hunk outside of a file (no `---`/`+++` header before it)",
            ));
        }
        i += 1;
    }
    if let Some(h) = git.take() {
        finish_git_header(h, &mut files)?;
    }
    if files.is_empty() {
        return Err(ParseError::NotADiff);
    }
    Ok(Patch { files })
}

struct GitHeader {
    line: usize,
    path: String,
    change: FileChange,
    mode_change: bool,
}

impl GitHeader {
    fn new(line: usize, rest: &str) -> Self {
        // `a/PATH b/PATH`: without renames both halves are the same path.
        let rest = rest.trim();
        let path = match rest.find(" b/") {
            Some(pos) => rest[pos + 3..].to_string(),
            None => rest.to_string(),
        };
        GitHeader {
            line,
            path: unquote(&path),
            change: FileChange::Modify,
            mode_change: false,
        }
    }
}

/// A `diff --git` header with no `---`/`+++` lines: an empty new file, a deleted empty file or
/// a mode change.
fn finish_git_header(h: GitHeader, files: &mut Vec<FilePatch>) -> Result<(), ParseError> {
    if h.mode_change && h.change == FileChange::Modify {
        return Err(ParseError::malformed(
            h.line,
            format!(
                "{}: mode change only: lp-build patches code; drop it from the patch",
                h.path
            ),
        ));
    }
    files.push(FilePatch {
        path: h.path,
        change: h.change,
        hunks: Vec::new(),
        line: h.line,
    });
    Ok(())
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        s[1..s.len() - 1]
            .replace("\\\"", "\"")
            .replace("\\\\", "\\")
    } else {
        s.to_string()
    }
}

/// The path of a `---`/`+++` header: without the timestamp `diff -u` appends after a tab, and
/// without its first component (`-p1`). `None` for `/dev/null`.
fn header_path(line: usize, raw: &str) -> Result<Option<String>, ParseError> {
    let raw = raw.split('\t').next().unwrap_or("");
    let raw = unquote(raw);
    if raw == "/dev/null" {
        return Ok(None);
    }
    if raw.is_empty() {
        return Err(ParseError::malformed(line, "file header without a path"));
    }
    let Some((_, path)) = raw.split_once('/') else {
        return Err(ParseError::malformed(
            line,
            format!(
                "`{raw}` has no leading directory to strip: lp-build applies patches with -p1 \
                 (make them with `git diff` or `diff -u a/ b/`)"
            ),
        ));
    };
    let path = path.trim_start_matches('/');
    if path.is_empty() || raw.starts_with('/') || path.split('/').any(|c| c == "..") {
        return Err(ParseError::malformed(
            line,
            format!("`{raw}` is not a path inside the kernel tree"),
        ));
    }
    Ok(Some(path.to_string()))
}

fn parse_file_header(
    line: usize,
    old: &str,
    new: &str,
    header_line: usize,
) -> Result<FilePatch, ParseError> {
    let old_path = header_path(line, old)?;
    let new_path = header_path(line + 1, new)?;
    let (path, change) = match (old_path, new_path) {
        (None, None) => {
            return Err(ParseError::malformed(
                line,
                "both sides of the file header are /dev/null",
            ))
        }
        (None, Some(p)) => (p, FileChange::Create),
        (Some(p), None) => (p, FileChange::Delete),
        (Some(o), Some(n)) => {
            if o != n {
                return Err(ParseError::malformed(
                    line,
                    format!(
                        "`{o}` and `{n}` differ: renames are not supported \
                         (make the diff with `git diff --no-renames`)"
                    ),
                ));
            }
            (n, FileChange::Modify)
        }
    };
    Ok(FilePatch {
        path,
        change,
        hunks: Vec::new(),
        line: header_line,
    })
}

/// `-12,7` or `+12` -> (12, 7) / (12, 1).
fn parse_range(s: &str, sign: char) -> Option<(u64, u64)> {
    let s = s.strip_prefix(sign)?;
    match s.split_once(',') {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => Some((s.parse().ok()?, 1)),
    }
}

/// Parses the hunk starting at `lines[start]` (its `@@` line); returns it and the index of the
/// first line after it.
fn parse_hunk(lines: &[&str], start: usize) -> Result<(Hunk, usize), ParseError> {
    let header = lines[start].trim_end_matches('\r');
    let bad = || ParseError::malformed(start + 1, format!("bad hunk header `{header}`"));
    let inner = header
        .strip_prefix("@@ ")
        .and_then(|s| s.split_once(" @@"))
        .map(|(r, _)| r)
        .ok_or_else(bad)?;
    let (old, new) = inner.split_once(' ').ok_or_else(bad)?;
    let (old_start, old_len) = parse_range(old, '-').ok_or_else(bad)?;
    let (new_start, new_len) = parse_range(new.trim(), '+').ok_or_else(bad)?;
    let (mut old_rem, mut new_rem) = (old_len, new_len);
    let mut i = start + 1;
    while old_rem > 0 || new_rem > 0 {
        let Some(line) = lines.get(i) else {
            return Err(ParseError::malformed(
                i,
                format!(
                    "the hunk at line {} ends early (the patch is truncated or was edited by hand)",
                    start + 1
                ),
            ));
        };
        let line = line.trim_end_matches('\r');
        match line.chars().next() {
            // An empty line: a context line whose trailing space was stripped by an editor.
            Some(' ') | None => {
                if old_rem == 0 || new_rem == 0 {
                    return Err(hunk_count_error(start, i));
                }
                old_rem -= 1;
                new_rem -= 1;
            }
            Some('-') => {
                if old_rem == 0 {
                    return Err(hunk_count_error(start, i));
                }
                old_rem -= 1;
            }
            Some('+') => {
                if new_rem == 0 {
                    return Err(hunk_count_error(start, i));
                }
                new_rem -= 1;
            }
            Some('\\') => {}
            Some(_) => {
                return Err(ParseError::malformed(
                    i + 1,
                    format!(
                        "unexpected line in the hunk at line {} (the patch is truncated or was \
                         edited by hand)",
                        start + 1
                    ),
                ))
            }
        }
        i += 1;
    }
    // "\ No newline at end of file" after the last line.
    while lines.get(i).is_some_and(|l| l.starts_with('\\')) {
        i += 1;
    }
    // A changed line right after the counted ones: the counts are wrong (a hand edit). The
    // next file's `--- ` header and git's `-- ` signature separator are not.
    if let Some(next) = lines.get(i) {
        let next = next.trim_end_matches('\r');
        if (next.starts_with('+') || next.starts_with('-'))
            && !next.starts_with("--- ")
            && next != "-- "
        {
            return Err(hunk_count_error(start, i));
        }
    }
    Ok((
        Hunk {
            old_start,
            old_len,
            new_start,
            new_len,
            line: start + 1,
        },
        i,
    ))
}

fn hunk_count_error(start: usize, i: usize) -> ParseError {
    ParseError::malformed(
        i + 1,
        format!(
            "the hunk at line {} has more lines than its header counts (edited by hand?)",
            start + 1
        ),
    )
}

/// The files of `patch` that a livepatch cannot carry, with the reason for each.
pub fn refusals(patch: &Patch) -> Vec<Refusal> {
    let mut out = Vec::new();
    for f in &patch.files {
        let name = f.path.rsplit('/').next().unwrap_or(&f.path);
        let ext = name.rsplit_once('.').map(|(_, e)| e);
        let reason = match ext {
            Some("c") => match f.change {
                FileChange::Modify => None,
                FileChange::Create => Some(
                    "a new .c file is only built with a Makefile change, which cannot be \
                     live-patched: put the new code into an existing file"
                        .to_string(),
                ),
                FileChange::Delete => Some(
                    "deleting a .c file changes the build, which cannot be live-patched"
                        .to_string(),
                ),
            },
            Some("h") => None,
            Some("S") | Some("s") => Some(
                "assembly cannot be live-patched: it has no ftrace entries and cannot be \
                 diffed per function"
                    .to_string(),
            ),
            _ if name == "Makefile" || name == "Kbuild" || name.starts_with("Kconfig") => Some(
                "build and configuration changes cannot be applied to a running kernel: \
                 lp-build patches .c and .h files only"
                    .to_string(),
            ),
            _ => Some("lp-build patches .c and .h files only".to_string()),
        };
        if let Some(reason) = reason {
            out.push(Refusal {
                path: f.path.clone(),
                reason,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CMDLINE: &str = "\
From 1234 Mon Sep 17 00:00:00 2001
Subject: [PATCH] proc: say hello

--- 
 fs/proc/cmdline.c | 2 +-
diff --git a/fs/proc/cmdline.c b/fs/proc/cmdline.c
index 1111111..2222222 100644
--- a/fs/proc/cmdline.c
+++ b/fs/proc/cmdline.c
@@ -7,7 +7,7 @@
 
 static int cmdline_proc_show(struct seq_file *m, void *v)
 {
-\tseq_puts(m, saved_command_line);
+\tseq_printf(m, \"lp %s\", saved_command_line);
 \tseq_putc(m, '\\n');
 \treturn 0;
 }
-- 
2.39.2
";

    #[test]
    fn git_format_patch() {
        let p = parse(CMDLINE).unwrap();
        assert_eq!(p.files.len(), 1);
        let f = &p.files[0];
        assert_eq!(f.path, "fs/proc/cmdline.c");
        assert_eq!(f.change, FileChange::Modify);
        assert_eq!(
            f.hunks,
            vec![Hunk {
                old_start: 7,
                old_len: 7,
                new_start: 7,
                new_len: 7,
                line: 10
            }]
        );
        assert!(refusals(&p).is_empty());
    }

    #[test]
    fn plain_diff_with_timestamps_and_several_files() {
        let text = "\
diff -u a/include/linux/x.h b/include/linux/x.h
--- a/include/linux/x.h\t2024-01-01 00:00:00.000000000 +0000
+++ b/include/linux/x.h\t2024-01-02 00:00:00.000000000 +0000
@@ -1 +1,2 @@
 #define X 1
+#define Y 2
--- a/mm/y.c
+++ b/mm/y.c
@@ -1,3 +1,3 @@
 a
-b
+c
 d
@@ -10,2 +10,0 @@
-e
-f
\\ No newline at end of file
";
        let p = parse(text).unwrap();
        let paths: Vec<_> = p.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["include/linux/x.h", "mm/y.c"]);
        assert_eq!(p.files[1].hunks.len(), 2);
        assert_eq!(p.files[1].hunks[1].new_len, 0);
    }

    #[test]
    fn stripped_trailing_space_is_context() {
        let text = "--- a/x.c\n+++ b/x.c\n@@ -1,3 +1,3 @@\n a\n\n-b\n+c\n";
        assert_eq!(parse(text).unwrap().files[0].hunks.len(), 1);
    }

    #[test]
    fn bad_inputs() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("  \n\n"), Err(ParseError::Empty));
        assert_eq!(parse("hello\nworld\n"), Err(ParseError::NotADiff));
        let bin =
            "diff --git a/x.c b/x.c\nindex 1..2 100644\nBinary files a/x.c and b/x.c differ\n";
        assert!(matches!(
            parse(bin),
            Err(ParseError::Binary { line: 3, .. })
        ));
        let gitbin =
            "diff --git a/fw.bin b/fw.bin\nnew file mode 100644\nGIT binary patch\nliteral 3\n";
        assert!(matches!(parse(gitbin), Err(ParseError::Binary { .. })));
        // Truncated hunk.
        let trunc = "--- a/x.c\n+++ b/x.c\n@@ -1,3 +1,3 @@\n a\n-b\n";
        assert!(matches!(parse(trunc), Err(ParseError::Malformed { .. })));
        // Too many lines for the counts.
        let long = "--- a/x.c\n+++ b/x.c\n@@ -1,1 +1,1 @@\n-a\n+b\n+c\n";
        let e = parse(long).unwrap_err();
        assert!(e.to_string().contains("more lines"), "{e}");
        // Garbage inside a hunk.
        let junk = "--- a/x.c\n+++ b/x.c\n@@ -1,2 +1,2 @@\n a\n*b\n";
        assert!(matches!(
            parse(junk),
            Err(ParseError::Malformed { line: 5, .. })
        ));
        // Bad header.
        let hdr = "--- a/x.c\n+++ b/x.c\n@@ -x +1 @@\n";
        assert!(parse(hdr)
            .unwrap_err()
            .to_string()
            .contains("bad hunk header"));
        // Headers without hunks.
        assert!(parse("--- a/x.c\n+++ b/x.c\n").is_err());
        // -p0 style.
        let p0 = "--- x.c\n+++ x.c\n@@ -1 +1 @@\n-a\n+b\n";
        assert!(parse(p0).unwrap_err().to_string().contains("-p1"));
        // Escaping the tree.
        let up = "--- a/../x.c\n+++ b/../x.c\n@@ -1 +1 @@\n-a\n+b\n";
        assert!(parse(up)
            .unwrap_err()
            .to_string()
            .contains("inside the kernel tree"));
        // Renames.
        let ren = "diff --git a/x.c b/y.c\nsimilarity index 90%\nrename from x.c\nrename to y.c\n";
        assert!(parse(ren).unwrap_err().to_string().contains("--no-renames"));
        let ren2 = "--- a/x.c\n+++ b/y.c\n@@ -1 +1 @@\n-a\n+b\n";
        assert!(parse(ren2).unwrap_err().to_string().contains("renames"));
        // Mode change only.
        let mode = "diff --git a/x.sh b/x.sh\nold mode 100644\nnew mode 100755\n";
        assert!(parse(mode).unwrap_err().to_string().contains("mode change"));
    }

    #[test]
    fn file_kinds() {
        let text = "\
--- a/arch/x86/lib/memcpy_64.S
+++ b/arch/x86/lib/memcpy_64.S
@@ -1 +1 @@
-a
+b
--- a/fs/proc/Makefile
+++ b/fs/proc/Makefile
@@ -1 +1 @@
-a
+b
--- /dev/null
+++ b/fs/proc/new.c
@@ -0,0 +1 @@
+int x;
--- /dev/null
+++ b/fs/proc/new.h
@@ -0,0 +1 @@
+int y;
--- a/Documentation/x.rst
+++ b/Documentation/x.rst
@@ -1 +1 @@
-a
+b
";
        let p = parse(text).unwrap();
        assert_eq!(p.files[2].change, FileChange::Create);
        let r = refusals(&p);
        let paths: Vec<_> = r.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "arch/x86/lib/memcpy_64.S",
                "fs/proc/Makefile",
                "fs/proc/new.c",
                "Documentation/x.rst"
            ]
        );
        assert!(r[0].reason.contains("no ftrace entries"));
    }

    #[test]
    fn empty_new_header_file() {
        let text = "diff --git a/include/x.h b/include/x.h\nnew file mode 100644\nindex 0000000..e69de29\n";
        let p = parse(text).unwrap();
        assert_eq!(p.files[0].change, FileChange::Create);
        assert_eq!(p.files[0].path, "include/x.h");
        assert!(refusals(&p).is_empty());
    }
}
