//! SIGINT and SIGTERM in each phase of a run, driving the real binary against the fake kernel
//! tree: the run exits with 130, leaves the source tree, the user's build and the cache build
//! exactly as found (content and modification time of every file and directory), releases its
//! lock, leaves no journal, and the next run works without any cleanup.
//!
//! Each phase is held open by a pause knob that also says when the phase has been reached:
//! - original (cache) build: the fake Makefile's `FAKE_ORIG_PAUSE=FILE` (cold cache);
//! - patched build: `FAKE_KBUILD_SLEEP`, once the patched object has replaced the original;
//! - diff: lp-build's test hook `LP_BUILD_TEST_PAUSE_DIFF=FILE`;
//! - module build: the fake Makefile's `FAKE_MODULE_PAUSE=FILE` (`M=` builds; the entry-size
//!   probe is cached by the warm-up, so the only `M=` build is the livepatch module's).

mod common;

use common::*;
use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
enum Phase {
    OriginalBuild,
    PatchedBuild,
    Diff,
    ModuleBuild,
}

fn marker(f: &Fake) -> PathBuf {
    f.root.join("phase-reached")
}

/// Starts a full run (no --stop-after) held in `phase`, and waits until it is there.
fn start_in(f: &Fake, phase: Phase) -> Child {
    let p = f.patch("fix.diff", CMDLINE_PATCH);
    let mut cmd = f.command(&[&p], &[]);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let m = marker(f);
    match phase {
        Phase::OriginalBuild => cmd.env("FAKE_ORIG_PAUSE", &m),
        Phase::PatchedBuild => cmd.env("FAKE_KBUILD_SLEEP", "30"),
        Phase::Diff => cmd.env("LP_BUILD_TEST_PAUSE_DIFF", &m),
        Phase::ModuleBuild => cmd.env("FAKE_MODULE_PAUSE", &m),
    };
    let child = cmd.spawn().unwrap();
    let timeout = Duration::from_secs(30);
    match phase {
        Phase::PatchedBuild => {
            let tc = f.tree_cache();
            let list = tc.join("work/save/objects.list");
            let obj = f.cache_build().unwrap().join("fs/proc/cmdline.o");
            let saved = tc.join("work/save/objs/fs/proc/cmdline.o");
            wait_for("the patched compile", timeout, || {
                list.exists()
                    && saved.exists()
                    && fs::read(&obj).is_ok()
                    && fs::read(&obj).ok() != fs::read(&saved).ok()
            });
        }
        _ => wait_for(&format!("{phase:?}"), timeout, || m.exists()),
    }
    child
}

fn interrupt(f: &Fake, phase: Phase, sig: i32) {
    let mut child = start_in(f, phase);
    signal(&child, sig);
    let st = wait_child(&mut child);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(st.code(), Some(130), "{phase:?}, signal {sig}:\n{err}");
    assert!(
        err.contains("lp-build: interrupted: the tree and the cache build were restored"),
        "{phase:?}, signal {sig}:\n{err}"
    );
    assert!(
        !f.root.join("out/livepatch-fix.ko").exists(),
        "{phase:?}: a module was written"
    );
    let _ = fs::remove_file(marker(f));
}

/// The next run works without cleanup: it goes through the differ (the fake tree cannot link a
/// real livepatch module, so it stops there).
fn next_run_works(f: &Fake) {
    let p = f.patch("again.diff", CMDLINE_PATCH);
    let o = f.run(&[&p], &["--stop-after", "diff"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("changed function: cmdline_proc_show"),
        "{}",
        text(&o)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("recovering") && !err.contains("restored"),
        "the interrupted run should have cleaned up itself: {}",
        text(&o)
    );
}

/// Interrupts the run while lp-build's own cache build runs (cold cache): the source tree and
/// the user's build are as found, the half-built cache is not marked complete, and the next run
/// finishes it.
fn original_build(sig: i32) {
    let f = Fake::new();
    let src = snapshot(&f.src, &all);
    let user = snapshot(&f.user, &all);
    interrupt(&f, Phase::OriginalBuild, sig);
    assert_eq!(src, snapshot(&f.src, &all), "the source tree changed");
    assert_eq!(user, snapshot(&f.user, &all), "the user's build changed");
    let tc = f.tree_cache();
    assert!(!tc.join("journal.json").exists(), "a journal was left");
    assert_eq!(fs::read_to_string(tc.join("lock")).unwrap(), "");
    let build = f.cache_build().expect("the cache build directory");
    assert!(
        !build.parent().unwrap().join("stamp.json").exists(),
        "an interrupted cache build must not be stamped complete"
    );
    next_run_works(&f);
    assert_eq!(src, snapshot(&f.src, &all), "the source tree changed");
    assert_eq!(user, snapshot(&f.user, &all), "the user's build changed");
    // And now the cache is complete and stays as found.
    let before = f.snapshots();
    next_run_works(&f);
    f.assert_as_found(&before, "after the cache was finished");
}

/// Interrupts a warm run in `phase`; everything is as found, before and after the next run.
fn warm_phase(phase: Phase, sig: i32) {
    let f = Fake::new();
    f.warm_up_diff();
    let before = f.snapshots();
    interrupt(&f, phase, sig);
    f.assert_as_found(&before, &format!("after signal {sig} in {phase:?}"));
    next_run_works(&f);
    f.assert_as_found(&before, &format!("after the run following {phase:?}"));
}

#[test]
fn sigint_during_the_original_build() {
    original_build(libc::SIGINT);
}

#[test]
fn sigterm_during_the_original_build() {
    original_build(libc::SIGTERM);
}

#[test]
fn sigint_during_the_patched_build() {
    warm_phase(Phase::PatchedBuild, libc::SIGINT);
}

#[test]
fn sigterm_during_the_patched_build() {
    warm_phase(Phase::PatchedBuild, libc::SIGTERM);
}

#[test]
fn sigint_during_the_diff() {
    warm_phase(Phase::Diff, libc::SIGINT);
}

#[test]
fn sigterm_during_the_diff() {
    warm_phase(Phase::Diff, libc::SIGTERM);
}

#[test]
fn sigint_during_the_module_build() {
    warm_phase(Phase::ModuleBuild, libc::SIGINT);
}

#[test]
fn sigterm_during_the_module_build() {
    warm_phase(Phase::ModuleBuild, libc::SIGTERM);
}

/// Two real runs on one tree with different caches (another user, another `LP_BUILD_CACHE`):
/// while the first has the tree patched, the second is refused (the lock belongs to the tree,
/// not to the cache), builds nothing into its own cache, and the first still restores the tree.
#[test]
fn a_run_with_another_cache_is_refused_while_the_tree_is_patched() {
    let f = Fake::new();
    f.warm_up_diff();
    let before = f.snapshots();
    let mut first = start_in(&f, Phase::Diff);
    let other_cache = f.root.join("other-cache");
    let p = f.patch("second.diff", CMDLINE_PATCH);
    let o = f
        .command(&[&p], &["--stop-after", "diff"])
        .env("LP_BUILD_CACHE", &other_cache)
        .output()
        .unwrap();
    assert_failure(&o, 5, "error", &["another lp-build is working on"]);
    // Nothing was built in the other cache from a patched tree (no complete build there).
    let stamps: Vec<_> = walk(&other_cache)
        .into_iter()
        .filter(|p| p.ends_with("stamp.json"))
        .collect();
    assert!(stamps.is_empty(), "{stamps:?}");
    signal(&first, libc::SIGTERM);
    assert_eq!(wait_child(&mut first).code(), Some(130));
    f.assert_as_found(&before, "after the first run was interrupted");
    let _ = fs::remove_file(marker(&f));
    next_run_works(&f);
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
