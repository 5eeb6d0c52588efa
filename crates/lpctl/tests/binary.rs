//! The real binary: exit statuses and one-line errors, on a fake tree via
//! the hidden `--root` option (only non-mutating commands can use it).

mod common;

use std::process::{Command, Output};

use common::*;

fn lpctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lpctl"))
        .args(args)
        .output()
        .expect("run lpctl")
}

fn status(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn exit_statuses() {
    let t = Tree::new();
    let root = t.root().to_str().unwrap();
    t.add_patch("cum_v2", Some((true, 2)), &[("vmlinux", "f", 1)]);
    let c1 = write_ko(t.root(), "cum_v1", true, 1);
    let c3 = write_ko(t.root(), "cum_v3", true, 3);
    let c1 = c1.to_str().unwrap();
    let c3 = c3.to_str().unwrap();

    let o = lpctl(&["--root", root, "list"]);
    assert_eq!(status(&o), 0, "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("cum_v2"));

    let o = lpctl(&["--root", root, "load", "--dry-run", c3]);
    assert_eq!(status(&o), 0, "{}", stderr(&o));
    // An upgrade is one atomic replace: cum_v2 is not disabled explicitly.
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("1. load "), "{out}");
    assert!(
        out.contains("with atomic replace (replaces cum_v2)"),
        "{out}"
    );
    assert!(!out.contains("disable cum_v2"), "{out}");

    // Downgrade refused: 6, one line on stderr with a hint.
    let o = lpctl(&["--root", root, "load", "--dry-run", c1]);
    assert_eq!(status(&o), 6);
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.starts_with("lpctl: error: refusing to downgrade"), "{e}");
    assert!(e.contains("(hint: pass --allow-downgrade"), "{e}");

    // --root with a command that would touch the kernel: usage error.
    let o = lpctl(&["--root", root, "load", c3]);
    assert_eq!(status(&o), 2);
    let o = lpctl(&["--root", root, "unload", "--all"]);
    assert_eq!(status(&o), 2);

    // Bad command lines (clap): 2.
    assert_eq!(status(&lpctl(&["frobnicate"])), 2);
    assert_eq!(status(&lpctl(&["unload"])), 2);
    assert_eq!(status(&lpctl(&["unload", "x", "--all"])), 2);
    assert_eq!(status(&lpctl(&["load", "x.ko", "--timeout", "-1"])), 2);

    // Not a livepatch / unreadable module: 5.
    let o = lpctl(&["info", "/nonexistent.ko"]);
    assert_eq!(status(&o), 5);
    let o = lpctl(&["info", env!("CARGO_BIN_EXE_lpctl")]);
    assert_eq!(status(&o), 5, "{}", stderr(&o));

    // Unknown patch: 9.
    let o = lpctl(&["--root", root, "unload", "--dry-run", "nope"]);
    assert_eq!(status(&o), 9);

    // No livepatch in the kernel: 4.
    std::fs::remove_dir_all(t.p("sys/kernel/livepatch")).unwrap();
    let o = lpctl(&["--root", root, "list"]);
    assert_eq!(status(&o), 4);
    assert!(stderr(&o).contains("CONFIG_LIVEPATCH"));
}

#[test]
fn info_of_a_module() {
    let t = Tree::new();
    let ko = write_ko(t.root(), "fix_q", false, 0);
    let o = lpctl(&["info", ko.to_str().unwrap()]);
    assert_eq!(status(&o), 0, "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("name:           fix_q"));
    assert!(out.contains("cumulative:     no"));
}
