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

#[test]
fn unload_of_an_empty_name_is_a_usage_error() {
    let t = Tree::new();
    let root = t.root().to_str().unwrap();
    for name in ["", "../x", "a/b"] {
        let o = lpctl(&["--root", root, "unload", "--dry-run", name]);
        assert_eq!(status(&o), 2, "{name:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("is not a module name"),
            "{}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("is loaded"), "{}", stderr(&o));
    }
}

#[test]
fn info_reads_are_bounded_and_do_not_block() {
    let t = Tree::new();
    // A device: refused at once, not read until the memory runs out.
    let o = lpctl(&["info", "/dev/zero"]);
    assert_eq!(status(&o), 5, "{}", stderr(&o));
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
    // A FIFO nobody writes to: refused at once, not waited on.
    let fifo = t.root().join("m.ko");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let start = std::time::Instant::now();
    let o = lpctl(&["info", fifo.to_str().unwrap()]);
    assert_eq!(status(&o), 5, "{}", stderr(&o));
    assert!(start.elapsed().as_secs() < 10);
    // A file larger than the limit (sparse: no disk space used).
    let big = t.root().join("big.ko");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len((1 << 30) + 1).unwrap();
    let o = lpctl(&["info", big.to_str().unwrap()]);
    assert_eq!(status(&o), 5, "{}", stderr(&o));
    assert!(stderr(&o).contains("limit of 1024 MiB"), "{}", stderr(&o));
}

/// A file the user cannot read is a bad module (5), as the README says, not a permission
/// problem of lpctl's (3). Run as `nobody` (root reads every file).
#[test]
fn unreadable_module_is_a_bad_module() {
    let t = Tree::new();
    let ko = write_ko(t.root(), "fix_q", false, 0);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ko, std::fs::Permissions::from_mode(0o000)).unwrap();
    let dir = ko.parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for d in t.root().ancestors() {
        if d == std::path::Path::new("/") {
            break;
        }
        let mode = std::fs::metadata(d).unwrap().permissions().mode();
        assert!(
            mode & 0o001 != 0,
            "{} is not searchable by nobody",
            d.display()
        );
    }
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_lpctl"))
        .arg("info")
        .arg(&ko)
        .output()
        .expect("run setpriv");
    assert_eq!(status(&o), 5, "{}", stderr(&o));
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
}
