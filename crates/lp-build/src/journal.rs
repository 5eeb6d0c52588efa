//! The journal of what a run changes, so that the kernel tree and the cache build are put back
//! exactly as found: after success, after a failure, after Ctrl-C, and (by the next run) after a
//! crash.
//!
//! Order of a run: [`Changes::begin`] backs up every source file the patches touch (content,
//! mode and modification time) and the times of their directories, then writes the journal;
//! only then are the patched contents written. During the patched build the compiler wrapper
//! ([`crate::ccwrap`]) saves each object it is about to overwrite into the journal's save
//! directory and lists it. [`Changes::restore`] puts back the objects, then the sources and
//! directory times, then deletes the journal. [`recover`] does the same for a journal left by a
//! run that died.

use crate::apply::FileResult;
use crate::fsutil::{copy_with_mtime, mtime, set_mtime, write_atomic};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// File name of the list the compiler wrapper appends to, inside the save directory.
pub const OBJECT_LIST: &str = "objects.list";
/// Sub-directory of the save directory that mirrors the build directory.
pub const SAVED_OBJECTS: &str = "objs";
/// File in the save directory with the times of the build directory's directories and of the
/// kbuild bookkeeping files every make run rewrites with the same contents.
pub const BUILD_TIMES: &str = "build-times.tsv";

/// Files kbuild rewrites with unchanged contents when it relinks archives or re-enters the
/// build directory (their times are restored; their contents do not change).
fn is_bookkeeping(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    matches!(
        name,
        "built-in.a"
            | ".built-in.a.cmd"
            | "modules.order"
            | ".modules.order.cmd"
            | "lib.a"
            | ".lib.a.cmd"
    ) || rel == "Makefile"
        || rel == ".missing-syscalls.d"
        || name.ends_with(".mod")
        || (name.starts_with('.') && name.ends_with(".mod.cmd"))
}

/// Records the times of the build directory's directories and bookkeeping files into
/// `save_dir`, before a build that will touch them.
pub fn record_build_times(build: &Path, save_dir: &Path) -> Result<()> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel_dir) = stack.pop() {
        let dir = build.join(&rel_dir);
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        if let Ok(t) = mtime(&dir) {
            let _ = writeln!(out, "{}\td\t0\t{}", rel_dir.display(), fmt_time(t));
        }
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let rel = rel_dir.join(e.file_name());
            if ft.is_dir() {
                stack.push(rel);
            } else if ft.is_symlink() {
                // kbuild re-creates the `source` link on every run.
                if let Ok(t) = mtime(&e.path()) {
                    let _ = writeln!(out, "{}\tl\t0\t{}", rel.display(), fmt_time(t));
                }
            } else if ft.is_file() && rel.to_str().is_some_and(is_bookkeeping) {
                if let Ok(m) = e.metadata() {
                    if let Ok(t) = m.modified() {
                        let _ = writeln!(out, "{}\tf\t{}\t{}", rel.display(), m.len(), fmt_time(t));
                    }
                }
            }
        }
    }
    write_atomic(&save_dir.join(BUILD_TIMES), out.as_bytes())
}

/// Sets the time of a symbolic link itself (utimensat with AT_SYMLINK_NOFOLLOW).
fn set_symlink_mtime(p: &Path, t: SystemTime) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let ts = libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as _,
    };
    let c = std::ffi::CString::new(p.as_os_str().as_bytes())
        .with_context(|| format!("{} has a NUL byte", p.display()))?;
    // SAFETY: a valid NUL-terminated path and a two-element timespec array.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            [ts, ts].as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("setting the time of the link {}", p.display()));
    }
    Ok(())
}

fn fmt_time(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

fn parse_time(s: &str) -> Option<SystemTime> {
    let (a, b) = s.split_once('.')?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::new(a.parse().ok()?, b.parse().ok()?))
}

/// Puts back the times [`record_build_times`] recorded (files only when their size is
/// unchanged; directories last).
fn restore_build_times(build: &Path, save_dir: &Path) -> Result<()> {
    let Ok(text) = fs::read_to_string(save_dir.join(BUILD_TIMES)) else {
        return Ok(());
    };
    let mut dirs = Vec::new();
    for line in text.lines() {
        let mut it = line.split('\t');
        let (Some(rel), Some(kind), Some(size), Some(t)) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        let Some(t) = parse_time(t) else { continue };
        let p = build.join(rel);
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        if m.modified().ok() == Some(t) {
            continue;
        }
        match kind {
            "d" if m.is_dir() => dirs.push((p, t)),
            "f" if m.is_file() && size.parse::<u64>().ok() == Some(m.len()) => set_mtime(&p, t)?,
            "l" if m.file_type().is_symlink() => set_symlink_mtime(&p, t)?,
            _ => {}
        }
    }
    // Deepest first, so setting a directory's time is not undone by work in a child.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0.components().count()));
    for (p, t) in dirs {
        set_mtime(&p, t)?;
    }
    Ok(())
}

/// One source file the run changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalFile {
    /// Path relative to the source tree.
    pub path: String,
    /// Whether it existed (else the patch creates it and restoring deletes it).
    pub existed: bool,
}

/// A directory whose modification time is restored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirTime {
    /// Path relative to the source tree.
    pub path: String,
    /// Its modification time before the run.
    pub mtime: SystemTime,
}

/// The journal file's contents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    /// The process that wrote it.
    pub pid: u32,
    /// The kernel source tree.
    pub src: PathBuf,
    /// The cache build directory whose objects the patched build overwrites.
    pub build: PathBuf,
    /// Originals of the source files.
    pub backup_dir: PathBuf,
    /// Where the compiler wrapper saves original objects (and its list).
    pub save_dir: PathBuf,
    /// Source files changed.
    pub files: Vec<JournalFile>,
    /// Directories created for new files (relative to `src`), parents first.
    pub created_dirs: Vec<String>,
    /// Directory times to restore.
    pub dir_times: Vec<DirTime>,
}

/// What a restore did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RestoreSummary {
    /// Source files restored.
    pub sources: usize,
    /// Objects restored (or removed when the build created them).
    pub objects: usize,
}

/// The changes of a run in progress.
#[derive(Debug)]
pub struct Changes {
    journal: Journal,
    journal_path: PathBuf,
    done: bool,
}

/// One entry of the wrapper's list: the object path relative to the build directory and
/// whether the object, its `.cmd` and its `.d` file existed before the compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedObject {
    /// `fs/proc/cmdline.o`.
    pub object: String,
    /// The object existed (and was saved).
    pub had_object: bool,
    /// `.cmdline.o.cmd` existed.
    pub had_cmd: bool,
    /// `.cmdline.o.d` existed.
    pub had_dep: bool,
    /// The modification time of the object's directory before the compile (restored too, as
    /// creating files changes it), as (seconds, nanoseconds) since the epoch.
    pub dir_mtime: Option<(u64, u32)>,
}

impl SavedObject {
    /// The list line (tab-separated, newline-terminated).
    pub fn to_line(&self) -> String {
        let t = self
            .dir_mtime
            .map_or("-".to_string(), |(s, n)| format!("{s}.{n:09}"));
        format!(
            "{}\t{}\t{}\t{}\t{t}\n",
            self.object, self.had_object as u8, self.had_cmd as u8, self.had_dep as u8
        )
    }

    /// Parses a list line.
    pub fn from_line(line: &str) -> Option<SavedObject> {
        let mut it = line.trim_end_matches('\n').split('\t');
        let object = it.next()?.to_string();
        let flag = |s: Option<&str>| s == Some("1");
        let had_object = flag(it.next());
        let had_cmd = flag(it.next());
        let had_dep = flag(it.next());
        let dir_mtime = it.next().and_then(|t| {
            let (s, n) = t.split_once('.')?;
            Some((s.parse().ok()?, n.parse().ok()?))
        });
        let s = SavedObject {
            object,
            had_object,
            had_cmd,
            had_dep,
            dir_mtime,
        };
        (!s.object.is_empty()).then_some(s)
    }
}

/// The kbuild companions of an object: `dir/.name.o.cmd` and `dir/.name.o.d`.
pub fn companions(object: &str) -> (String, String) {
    let (dir, name) = match object.rsplit_once('/') {
        Some((d, n)) => (format!("{d}/"), n),
        None => (String::new(), object),
    };
    (format!("{dir}.{name}.cmd"), format!("{dir}.{name}.d"))
}

/// Reads the wrapper's list in `save_dir` (first entry per object wins: it saw the original).
pub fn read_saved_objects(save_dir: &Path) -> Result<Vec<SavedObject>> {
    let list = save_dir.join(OBJECT_LIST);
    let text = match fs::read_to_string(&list) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", list.display())),
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(s) = SavedObject::from_line(line) {
            if seen.insert(s.object.clone()) {
                out.push(s);
            }
        }
    }
    Ok(out)
}

impl Changes {
    /// Backs up the files `results` will change, writes the journal at `journal_path`, and
    /// prepares an empty save directory for the compiler wrapper.
    pub fn begin(
        journal_path: &Path,
        work_dir: &Path,
        src: &Path,
        build: &Path,
        results: &[FileResult],
    ) -> Result<Changes> {
        let backup_dir = work_dir.join("backup");
        let save_dir = work_dir.join("save");
        for d in [&backup_dir, &save_dir] {
            if d.exists() {
                fs::remove_dir_all(d).with_context(|| format!("removing stale {}", d.display()))?;
            }
            fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let mut files = Vec::new();
        let mut created_dirs = Vec::new();
        let mut dir_set = BTreeSet::new();
        for r in results {
            let in_tree = src.join(&r.path);
            let existed = r.orig.is_some();
            if existed {
                copy_with_mtime(&in_tree, &backup_dir.join(&r.path))?;
            }
            // Directories: the nearest existing ancestor keeps its time; missing ones are
            // created (and removed again).
            let mut dir = Path::new(&r.path).parent();
            let mut missing = Vec::new();
            while let Some(d) = dir {
                if d.as_os_str().is_empty() {
                    dir_set.insert(String::new());
                    break;
                }
                if src.join(d).is_dir() {
                    dir_set.insert(d.to_string_lossy().into_owned());
                    break;
                }
                missing.push(d.to_string_lossy().into_owned());
                dir = d.parent();
            }
            missing.reverse();
            created_dirs.extend(missing);
            files.push(JournalFile {
                path: r.path.clone(),
                existed,
            });
        }
        let mut dir_times = Vec::new();
        for d in dir_set {
            dir_times.push(DirTime {
                mtime: mtime(&src.join(&d))?,
                path: d,
            });
        }
        let journal = Journal {
            pid: std::process::id(),
            src: src.to_path_buf(),
            build: build.to_path_buf(),
            backup_dir,
            save_dir,
            files,
            created_dirs,
            dir_times,
        };
        write_journal(journal_path, &journal)?;
        crate::fsutil::set_tree_marker(src, journal_path);
        Ok(Changes {
            journal,
            journal_path: journal_path.to_path_buf(),
            done: false,
        })
    }

    /// The directory the compiler wrapper saves original objects into.
    pub fn save_dir(&self) -> &Path {
        &self.journal.save_dir
    }

    /// Writes the patched contents into the source tree.
    pub fn apply(&self, results: &[FileResult]) -> Result<()> {
        let src = &self.journal.src;
        for d in &self.journal.created_dirs {
            let p = src.join(d);
            if !p.is_dir() {
                fs::create_dir(&p).with_context(|| format!("creating {}", p.display()))?;
            }
        }
        for r in results {
            let p = src.join(&r.path);
            match &r.patched {
                Some(c) => crate::fsutil::write_in_place(&p, c)?,
                None => {
                    if p.exists() {
                        fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Puts everything back and deletes the journal.
    pub fn restore(mut self) -> Result<RestoreSummary> {
        let s = restore_journal(&self.journal)?;
        finish(&self.journal_path, &self.journal)?;
        self.done = true;
        Ok(s)
    }
}

impl Drop for Changes {
    fn drop(&mut self) {
        // A panic or an early return that skipped `restore`: try once more. A failure here is
        // left to the journal (the next run restores first).
        if !self.done {
            if let Ok(_s) = restore_journal(&self.journal) {
                let _ = finish(&self.journal_path, &self.journal);
            }
        }
    }
}

fn write_journal(path: &Path, j: &Journal) -> Result<()> {
    let text = serde_json::to_vec_pretty(j).context("encoding the journal")?;
    write_atomic(path, &text)
}

fn finish(journal_path: &Path, j: &Journal) -> Result<()> {
    fs::remove_file(journal_path)
        .with_context(|| format!("removing {}", journal_path.display()))?;
    if crate::fsutil::tree_marker(&j.src).as_deref() == Some(journal_path) {
        crate::fsutil::clear_tree_marker(&j.src);
    }
    let _ = fs::remove_dir_all(&j.backup_dir);
    let _ = fs::remove_dir_all(&j.save_dir);
    Ok(())
}

fn remove_if_exists(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", p.display())),
    }
}

/// Restores what `j` describes (idempotent: a second call after a crash does no harm).
pub fn restore_journal(j: &Journal) -> Result<RestoreSummary> {
    let mut summary = RestoreSummary::default();
    // Objects first: they must not end up newer than the restored sources.
    let saved_root = j.save_dir.join(SAVED_OBJECTS);
    let mut dirs: std::collections::BTreeMap<PathBuf, SystemTime> = Default::default();
    for s in read_saved_objects(&j.save_dir)? {
        if let (Some((secs, nanos)), Some(dir)) = (s.dir_mtime, Path::new(&s.object).parent()) {
            // The first compile in a directory saw its original time.
            dirs.entry(j.build.join(dir))
                .or_insert(SystemTime::UNIX_EPOCH + std::time::Duration::new(secs, nanos));
        }
        let (cmd, dep) = companions(&s.object);
        for (rel, had) in [
            (&s.object, s.had_object),
            (&cmd, s.had_cmd),
            (&dep, s.had_dep),
        ] {
            let target = j.build.join(rel);
            let saved = saved_root.join(rel);
            if had && saved.exists() {
                copy_with_mtime(&saved, &target)?;
            } else if !had {
                remove_if_exists(&target)?;
            }
        }
        summary.objects += 1;
    }
    for (dir, t) in dirs {
        if dir.is_dir() {
            set_mtime(&dir, t)?;
        }
    }
    restore_build_times(&j.build, &j.save_dir)?;
    for f in j.files.iter().rev() {
        let p = j.src.join(&f.path);
        if f.existed {
            let backup = j.backup_dir.join(&f.path);
            let content = fs::read(&backup)
                .with_context(|| format!("reading backup {}", backup.display()))?;
            let meta = fs::metadata(&backup)
                .with_context(|| format!("reading backup {}", backup.display()))?;
            let same = fs::read(&p).map(|c| c == content).unwrap_or(false);
            if !same {
                let existed_now = p.exists();
                fs::write(&p, &content).with_context(|| format!("restoring {}", p.display()))?;
                if !existed_now {
                    fs::set_permissions(&p, fs::Permissions::from_mode(meta.permissions().mode()))
                        .with_context(|| format!("restoring the mode of {}", p.display()))?;
                }
            }
            set_mtime(&p, meta.modified()?)?;
        } else {
            remove_if_exists(&p)?;
        }
        summary.sources += 1;
    }
    for d in j.created_dirs.iter().rev() {
        let p = j.src.join(d);
        if p.is_dir() {
            // Only when empty: never delete anything we did not create.
            let _ = fs::remove_dir(&p);
        }
    }
    for d in &j.dir_times {
        let p = j.src.join(&d.path);
        if p.is_dir() {
            set_mtime(&p, d.mtime)?;
        }
    }
    Ok(summary)
}

/// If a journal is at `journal_path` (a run died before restoring), restores it and deletes
/// it. Returns the journal's writer PID and what was restored.
pub fn recover(journal_path: &Path) -> Result<Option<(u32, RestoreSummary)>> {
    let text = match fs::read(journal_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", journal_path.display())),
    };
    let j: Journal = serde_json::from_slice(&text).with_context(|| {
        format!(
            "{} is not a journal lp-build can read",
            journal_path.display()
        )
    })?;
    let s = restore_journal(&j)
        .with_context(|| format!("restoring from the journal {}", journal_path.display()))?;
    finish(journal_path, &j)?;
    Ok(Some((j.pid, s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_lines_round_trip() {
        let s = SavedObject {
            object: "fs/proc/cmdline.o".into(),
            had_object: true,
            had_cmd: true,
            had_dep: false,
            dir_mtime: Some((1700000000, 5)),
        };
        assert_eq!(
            s.to_line(),
            "fs/proc/cmdline.o\t1\t1\t0\t1700000000.000000005\n"
        );
        assert_eq!(SavedObject::from_line(&s.to_line()), Some(s));
        assert_eq!(SavedObject::from_line(""), None);
        assert_eq!(
            companions("fs/proc/cmdline.o"),
            (
                "fs/proc/.cmdline.o.cmd".into(),
                "fs/proc/.cmdline.o.d".into()
            )
        );
        assert_eq!(companions("x.o"), (".x.o.cmd".into(), ".x.o.d".into()));
    }

    #[test]
    fn begin_apply_restore() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        let build = t.path().join("build");
        fs::create_dir_all(src.join("fs")).unwrap();
        fs::create_dir_all(&build).unwrap();
        fs::write(src.join("fs/a.c"), "a").unwrap();
        fs::write(src.join("fs/gone.h"), "g").unwrap();
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        for p in ["fs/a.c", "fs/gone.h", "fs", ""] {
            set_mtime(&src.join(p), old).unwrap();
        }
        let results = vec![
            FileResult {
                path: "fs/a.c".into(),
                orig: Some(b"a".to_vec()),
                patched: Some(b"b".to_vec()),
            },
            FileResult {
                path: "fs/gone.h".into(),
                orig: Some(b"g".to_vec()),
                patched: None,
            },
            FileResult {
                path: "include/new/n.h".into(),
                orig: None,
                patched: Some(b"n".to_vec()),
            },
        ];
        let work = t.path().join("work");
        let jpath = work.join("journal.json");
        let c = Changes::begin(&jpath, &work, &src, &build, &results).unwrap();
        c.apply(&results).unwrap();
        assert_eq!(fs::read(src.join("fs/a.c")).unwrap(), b"b");
        assert!(!src.join("fs/gone.h").exists());
        assert_eq!(fs::read(src.join("include/new/n.h")).unwrap(), b"n");
        assert!(jpath.exists());
        // A crash now: recovery restores from the journal alone.
        std::mem::forget(c);
        let (pid, s) = recover(&jpath).unwrap().unwrap();
        assert_eq!(pid, std::process::id());
        assert_eq!(s.sources, 3);
        assert_eq!(fs::read(src.join("fs/a.c")).unwrap(), b"a");
        assert_eq!(mtime(&src.join("fs/a.c")).unwrap(), old);
        assert_eq!(fs::read(src.join("fs/gone.h")).unwrap(), b"g");
        assert_eq!(mtime(&src.join("fs/gone.h")).unwrap(), old);
        assert!(!src.join("include").exists());
        assert_eq!(mtime(&src.join("fs")).unwrap(), old);
        assert_eq!(mtime(&src).unwrap(), old);
        assert!(!jpath.exists());
        assert_eq!(recover(&jpath).unwrap().map(|x| x.0), None);
    }
}
