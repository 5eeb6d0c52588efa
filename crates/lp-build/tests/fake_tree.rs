//! The build driver against a fake kernel tree: a tiny Makefile that imitates kbuild's `O=`,
//! `CC`, `KCFLAGS`, `.cmd`, `modules.order`/`.mod` and thin `vmlinux.a` conventions, so these
//! tests run in seconds without a kernel.
//!
//! What they prove: the source tree, the user's build and the cache build are left exactly as
//! found (content and modification time of every file and directory) after success, after a patch
//! that does not compile, after SIGINT during the build and (by the next run) after SIGKILL;
//! bad inputs get their own exit status and a one-line reason.
//!
//! The fixture (the fake tree, its Makefile and the snapshot helpers) lives in `common/`,
//! shared with `bad_inputs.rs` and `interrupts.rs`.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[test]
fn success_leaves_everything_as_found_and_reuses_the_cache() {
    let f = Fake::new();
    let before_src = snapshot(&f.src, &all);
    let before_user = snapshot(&f.user, &all);
    let p = f.patch("fix.diff", CMDLINE_PATCH);

    // Cold: builds the cache tree, then the patched objects.
    let o = f.run(&[&p], &["--stop-after", "build"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    // Same CC and KCFLAGS as the cache build: only the patched file was recompiled.
    assert_eq!(
        out.trim(),
        "rebuilt fs/proc/cmdline.o (vmlinux)",
        "{}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("first use"),
        "{}",
        text(&o)
    );
    // The cache build compiled the objects, the module's too, and linked nothing: which binary
    // an object belongs to came from the user's build.
    let cache = f.cache_build().expect("a cache build");
    for obj in ["init/main.o", "fs/proc/cmdline.o", "drivers/foo/foo.o"] {
        assert!(cache.join(obj).is_file(), "{obj} not compiled in the cache");
    }
    for linked in ["vmlinux", "vmlinux.a", "drivers/foo/foo.ko"] {
        assert!(
            !cache.join(linked).exists(),
            "the cache build linked {linked}"
        );
    }
    assert_eq!(
        before_src,
        snapshot(&f.src, &all),
        "the source tree changed"
    );
    assert_eq!(
        before_user,
        snapshot(&f.user, &all),
        "the user's build changed"
    );

    // Warm: no make for the original build, and the tree is again as found.
    let before = f.snapshots();
    let o = f.run(&[&p], &["--stop-after", "build"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("reusing"),
        "{}",
        text(&o)
    );
    f.assert_as_found(&before, "after success");
}

#[test]
fn header_change_rebuilds_its_users_only() {
    let f = Fake::new();
    f.warm_up();
    let before = f.snapshots();
    let p = f.patch(
        "hdr.diff",
        "--- a/include/linux/fake.h\n+++ b/include/linux/fake.h\n@@ -1,4 +1,5 @@\n #ifndef FAKE_H\n #define FAKE_H\n #define FAKE_ZERO 0\n+#define FAKE_ONE 1\n #endif\n",
    );
    let o = f.run(&[&p], &["--stop-after", "build"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The fake makes every object depend on every header, as a widely included header would.
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("rebuilt fs/proc/cmdline.o (vmlinux)"),
        "{}",
        text(&o)
    );
    assert!(
        out.contains("rebuilt init/main.o (vmlinux)"),
        "{}",
        text(&o)
    );
    assert!(
        out.contains("rebuilt drivers/foo/foo.o (module foo)"),
        "{}",
        text(&o)
    );
    f.assert_as_found(&before, "after a header change");
}

#[test]
fn failing_build_leaves_everything_as_found() {
    let f = Fake::new();
    f.warm_up();
    let before = f.snapshots();
    let p = f.patch("broken.diff", BROKEN_PATCH);
    let o = f.run(&[&p], &[]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("error:"), "{}", text(&o));
    assert!(err.contains("does the patch compile?"), "{}", text(&o));
    // The compiler's full output stays readable: the temporary directory holding the log is
    // kept and named.
    let kept = err
        .lines()
        .find_map(|l| l.strip_prefix("kept the temporary directory "))
        .and_then(|l| l.strip_suffix(" (it holds the failed build's log)"))
        .unwrap_or_else(|| panic!("temporary directory not kept: {}", text(&o)));
    let log = std::path::Path::new(kept).join("build.log");
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(log_text.contains("error"), "{}: {log_text}", log.display());
    std::fs::remove_dir_all(kept).unwrap();
    f.assert_as_found(&before, "after a failing build");
}

/// Starts a run whose patched compile sleeps, and waits until that compile has overwritten the
/// original object.
fn start_slow_run(f: &Fake) -> std::process::Child {
    let p = f.patch("slow.diff", CMDLINE_PATCH);
    let child = f
        .command(&[&p], &["--stop-after", "build"])
        .env("FAKE_KBUILD_SLEEP", "30")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let list = f.tree_cache().join("work/save/objects.list");
    let obj = f.cache_build().unwrap().join("fs/proc/cmdline.o");
    let saved = f.tree_cache().join("work/save/objs/fs/proc/cmdline.o");
    wait_for("the patched compile", Duration::from_secs(30), || {
        list.exists()
            && saved.exists()
            && fs::read(&obj).ok() != fs::read(&saved).ok()
            && fs::read(&obj).is_ok()
    });
    child
}

#[test]
fn sigint_during_the_build_leaves_everything_as_found() {
    let f = Fake::new();
    f.warm_up();
    let before = f.snapshots();
    let mut child = start_slow_run(&f);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let st = wait_child(&mut child);
    assert_eq!(st.code(), Some(130));
    f.assert_as_found(&before, "after SIGINT");
    // SIGTERM too, and the tree is usable afterwards.
    let mut child = start_slow_run(&f);
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_child(&mut child).code(), Some(130));
    f.assert_as_found(&before, "after SIGTERM");
}

#[test]
fn a_run_killed_mid_build_is_restored_by_the_next_run() {
    let f = Fake::new();
    f.warm_up();
    let before = f.snapshots();
    let mut child = start_slow_run(&f);
    child.kill().unwrap(); // SIGKILL: no chance to restore; make goes on, orphaned
    let _ = child.wait();
    let tc = f.tree_cache();
    assert!(tc.join("journal.json").exists(), "no journal after SIGKILL");
    assert_ne!(
        before.src,
        snapshot(&f.src, &all),
        "the tree should still be patched"
    );
    let p = f.patch("again.diff", CMDLINE_PATCH);
    let o = f.run(&[&p], &["--stop-after", "build"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("stopped without releasing"), "{}", text(&o));
    assert!(err.contains("stopped a build left running"), "{}", text(&o));
    assert!(err.contains("restored 1 source file(s)"), "{}", text(&o));
    f.assert_as_found(&before, "after recovery");
}

/// As above, but the next run uses another cache (another user, another `LP_BUILD_CACHE`): it
/// finds the dead run's journal through the tree's marker and restores the tree before using it
/// (instead of building its cache from the patched tree).
#[test]
fn a_run_killed_mid_build_is_restored_by_a_run_with_another_cache() {
    let f = Fake::new();
    f.warm_up();
    let before = f.snapshots();
    let mut child = start_slow_run(&f);
    child.kill().unwrap(); // SIGKILL: no chance to restore; make goes on, orphaned
    let _ = child.wait();
    assert_ne!(
        before.src,
        snapshot(&f.src, &all),
        "the tree should still be patched"
    );
    let p = f.patch("again.diff", CMDLINE_PATCH);
    let o = f
        .command(&[&p], &["--stop-after", "build"])
        .env("LP_BUILD_CACHE", f.root.join("other-cache"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("restored 1 source file(s)"), "{}", text(&o));
    f.assert_as_found(&before, "after recovery by a run with another cache");
}

#[test]
fn bad_inputs_have_their_own_status() {
    let f = Fake::new();
    let cases: Vec<(&str, &str, i32, &str)> = vec![
        ("empty.diff", "", 5, "the patch is empty"),
        ("prose.diff", "just some text\n", 5, "not a unified diff"),
        (
            "asm.diff",
            "--- a/arch/x86/lib/x.S\n+++ b/arch/x86/lib/x.S\n@@ -1 +1 @@\n-a\n+b\n",
            3,
            "no ftrace entries",
        ),
        (
            "stale.diff",
            "--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n@@ -1,3 +1,3 @@\n nothing\n-like\n+this\n here\n",
            5,
            "hunk #1 of fs/proc/cmdline.c (line 3 of stale.diff) does not apply",
        ),
        (
            "missing.diff",
            "--- a/fs/nope.c\n+++ b/fs/nope.c\n@@ -1 +1 @@\n-a\n+b\n",
            5,
            "fs/nope.c does not exist",
        ),
    ];
    for (name, patch, code, needle) in cases {
        let p = f.patch(name, patch);
        let o = f.run(&[&p], &["--stop-after", "check"]);
        assert_eq!(o.status.code(), Some(code), "{name}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{name}: {}", text(&o));
    }
    // No patch at all: usage.
    let o = f.run(&[], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // A missing patch file.
    let o = f.run(&[Path::new("/nonexistent.diff")], &[]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));

    let good = f.patch("good.diff", CMDLINE_PATCH);
    // A configuration without livepatch.
    let cfg = f.root.join("nolp.config");
    fs::write(&cfg, CONFIG.replace("CONFIG_LIVEPATCH=y\n", "")).unwrap();
    let o = f.run(
        &[&good],
        &["-c", cfg.to_str().unwrap(), "--stop-after", "check"],
    );
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("CONFIG_LIVEPATCH=y"));
    // A stripped vmlinux.
    let stripped = f.root.join("stripped");
    fs::create_dir_all(&stripped).unwrap();
    for n in [".config", "Module.symvers"] {
        fs::copy(f.user.join(n), stripped.join(n)).unwrap();
    }
    run_ok(
        Command::new("strip")
            .arg("-o")
            .arg(stripped.join("vmlinux"))
            .arg(f.user.join("vmlinux")),
    );
    let o = f
        .command_with(
            &[&good],
            &["--stop-after", "check"],
            &stripped.join("vmlinux"),
        )
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("stripped"),
        "{}",
        text(&o)
    );
    // A source tree configured and built in place: accepted, through lp-build's own copy of
    // its sources; the tree is only read.
    fs::write(f.src.join(".config"), CONFIG).unwrap();
    fs::create_dir_all(f.src.join("include/config")).unwrap();
    fs::copy(
        f.user.join("fs/proc/cmdline.o"),
        f.src.join("fs/proc/cmdline.o"),
    )
    .unwrap();
    let before = snapshot(&f.src, &all);
    let o = f.run(&[&good], &["--stop-after", "build"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("is built in place: lp-build works from its copy"),
        "{}",
        text(&o)
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "rebuilt fs/proc/cmdline.o (vmlinux)",
        "{}",
        text(&o)
    );
    assert_eq!(
        before,
        snapshot(&f.src, &all),
        "the tree built in place changed"
    );
    fs::remove_file(f.src.join(".config")).unwrap();
}

#[test]
fn a_held_lock_is_reported() {
    let f = Fake::new();
    f.warm_up();
    let lock = f.tree_cache().join("lock");
    let file = fs::OpenOptions::new().write(true).open(&lock).unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(
        unsafe { libc::flock(std::os::unix::io::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) },
        0
    );
    fs::write(&lock, "4242\n").unwrap();
    let p = f.patch("fix.diff", CMDLINE_PATCH);
    let o = f.run(&[&p], &["--stop-after", "build"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("another lp-build (pid 4242)"),
        "{}",
        text(&o)
    );
    drop(file);
}

#[test]
fn entry_sizes_come_from_the_probe() {
    let f = Fake::new();
    let p = f.patch("fix.diff", CMDLINE_PATCH);
    let o = f.run(&[&p], &["--stop-after", "diff"]);
    // Whatever the differ says about the fake objects, the probe ran first and was cached.
    let sizes_file = fs::read_dir(f.tree_cache())
        .unwrap()
        .flatten()
        .map(|e| e.path().join("entry-sizes.json"))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no entry-sizes.json: {}", text(&o)));
    let sizes: BTreeMap<String, u64> =
        serde_json::from_slice(&fs::read(sizes_file).unwrap()).unwrap();
    assert_eq!(sizes.get("__bug_table"), Some(&12));
    assert_eq!(sizes.get("__ex_table"), Some(&12));
    assert_eq!(sizes.get("__jump_table"), Some(&16));
    assert_eq!(sizes.get(".altinstructions"), Some(&14));
    assert_eq!(sizes.get(".static_call_sites"), Some(&8));
    assert_eq!(sizes.get(".printk_index"), None);
    assert_eq!(sizes.get(".parainstructions"), None);
}

#[test]
fn through_the_differ() {
    let f = Fake::new();
    // A real change: the differ names the changed function.
    let p = f.patch("fix.diff", CMDLINE_PATCH);
    let o = f.run(&[&p], &["--stop-after", "diff"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("vmlinux: fs/proc/cmdline.o: patch"),
        "{}",
        text(&o)
    );
    assert!(
        out.contains("changed function: cmdline_proc_show"),
        "{}",
        text(&o)
    );

    // A comment: the object is rebuilt, nothing changed; the JSON report says so.
    let before = f.snapshots();
    let p = f.patch(
        "comment.diff",
        "--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n@@ -6,6 +6,7 @@\n \n int cmdline_proc_show(void)\n {\n+\t/* nothing to see */\n \tfake_puts(saved_command_line);\n \treturn FAKE_ZERO;\n }\n",
    );
    let o = f.run(&[&p], &["--json"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no functional change"),
        "{}",
        text(&o)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&fs::read(f.root.join("out/livepatch-comment.json")).unwrap())
            .unwrap();
    assert_eq!(report["outcome"], "no-change");
    assert_eq!(report["objects"][0]["source"], "fs/proc/cmdline.o");
    f.assert_as_found(&before, "after no change");
}

#[test]
fn positional_patches_fuzz_first_changed_and_built_in_headers() {
    let f = Fake::new();
    // The first context line is not in the tree: the hunk applies only with fuzz 1.
    let fuzzy = "--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n@@ -6,6 +6,7 @@\n \
                 /* not in the tree */\n int cmdline_proc_show(void)\n {\n+\tfake_puts(\"livepatched \");\n \
                 \tfake_puts(saved_command_line);\n \treturn FAKE_ZERO;\n }\n";
    let p = f.patch("fuzzy.diff", fuzzy);
    let before = f.snapshots();
    let o = f.run(&[], &[p.to_str().unwrap(), "--stop-after", "diff"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let all = text(&o);
    assert!(all.contains("would apply with fuzz 1 at line"), "{all}");
    assert!(all.contains("rerun with --fuzz 1"), "{all}");
    f.assert_as_found(&before, "after the fuzz refusal");

    // Asked for: applied, with where it landed; -f names the first changed instruction.
    let o = f.run(
        &[],
        &[
            p.to_str().unwrap(),
            "--fuzz",
            "1",
            "-f",
            "--stop-after",
            "diff",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let all = text(&o);
    assert!(
        all.contains(
            "hunk #1 of fs/proc/cmdline.c (line 3 of fuzzy.diff) applied with fuzz 1 at line 5 of \
             fs/proc/cmdline.c"
        ),
        "{all}"
    );
    assert!(
        all.contains("fs/proc/cmdline.o: cmdline_proc_show: first changed instruction:"),
        "{all}"
    );

    // The hooks headers come from the binary: a patch including kpatch-macros.h builds, and
    // its load hook is seen by the differ.
    let hooked = "--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n@@ -1,4 +1,5 @@\n \
                  #include <linux/fake.h>\n+#include \"kpatch-macros.h\"\n \n extern int fake_puts(const char *s);\n \
                  const char *saved_command_line = \"console=ttyS0\";\n@@ -7,4 +8,6 @@\n {\n \
                  \tfake_puts(saved_command_line);\n \treturn FAKE_ZERO;\n }\n+static void hello(void) { fake_puts(\"hi\"); }\n\
                  +KPATCH_LOAD_HOOK(hello);\n";
    let p = f.patch("hooked.diff", hooked);
    let o = f.run(&[], &[p.to_str().unwrap(), "--stop-after", "diff"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("new function:     hello"), "{}", text(&o));
}
