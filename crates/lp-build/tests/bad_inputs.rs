//! Bad inputs, one test per kind, driving the real binary against the fake kernel tree: each
//! gets its exit status (README "Exit statuses"), an error line naming the cause and a `hint:`
//! line, and leaves the source tree, the user's build and the cache build exactly as found
//! (content and modification time of every file and directory).

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fake tree with a warm cache (build and entry sizes), and its snapshots.
fn warm() -> (Fake, Snapshots) {
    let f = Fake::new();
    f.warm_up_diff();
    let before = f.snapshots();
    (f, before)
}

/// After a failing run: everything as found, and no module written.
fn assert_untouched(f: &Fake, before: &Snapshots, what: &str) {
    f.assert_as_found(before, what);
    let out = f.root.join("out");
    let written: Vec<PathBuf> = fs::read_dir(&out)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        written.iter().all(|p| p.extension() != Some("ko".as_ref())),
        "{what}: a module was written: {written:?}"
    );
}

/// Runs one patch through the whole pipeline and checks the failure.
fn bad_patch(name: &str, patch: &str, code: i32, word: &str, needles: &[&str]) {
    let (f, before) = warm();
    let p = f.patch(name, patch);
    let o = f.run(&[&p], &[]);
    assert_failure(&o, code, word, needles);
    assert_untouched(&f, &before, name);
}

/// A build directory like the user's (Module.symvers and, optionally, .config) holding `vmlinux`
/// made by `make_vmlinux(src, dest)`.
fn other_build(
    f: &Fake,
    dir: &str,
    config: bool,
    make_vmlinux: impl FnOnce(&Path, &Path),
) -> PathBuf {
    let d = f.root.join(dir);
    fs::create_dir_all(&d).unwrap();
    fs::copy(f.user.join("Module.symvers"), d.join("Module.symvers")).unwrap();
    if config {
        fs::copy(f.user.join(".config"), d.join(".config")).unwrap();
    }
    make_vmlinux(&f.user.join("vmlinux"), &d.join("vmlinux"));
    d.join("vmlinux")
}

fn run_with_vmlinux(f: &Fake, vmlinux: &Path, extra: &[&str]) -> Output {
    let p = f.patch("fix.diff", CMDLINE_PATCH);
    f.command_with(&[&p], extra, vmlinux).output().unwrap()
}

fn run_with_config(f: &Fake, config: &str) -> Output {
    let cfg = f.root.join("test.config");
    fs::write(&cfg, config).unwrap();
    let p = f.patch("fix.diff", CMDLINE_PATCH);
    f.run(&[&p], &["-c", cfg.to_str().unwrap()])
}

// --- the patch file ---

#[test]
fn patch_file_missing() {
    let (f, before) = warm();
    let missing = f.root.join("nope.diff");
    let o = f.run(&[&missing], &[]);
    assert_failure(&o, 5, "error", &["nope.diff", "No such file"]);
    assert_untouched(&f, &before, "missing patch");
}

#[test]
fn patch_empty() {
    bad_patch(
        "empty.diff",
        "",
        5,
        "error",
        &["empty.diff", "the patch is empty"],
    );
}

#[test]
fn patch_not_a_diff() {
    bad_patch(
        "prose.diff",
        "Fix the command line.\n\nJust some text.\n",
        5,
        "error",
        &["prose.diff", "not a unified diff"],
    );
}

#[test]
fn patch_binary() {
    bad_patch(
        "bin.diff",
        "diff --git a/fs/proc/cmdline.c b/fs/proc/cmdline.c\nindex 1111111..2222222 100644\n\
         Binary files a/fs/proc/cmdline.c and b/fs/proc/cmdline.c differ\n",
        5,
        "error",
        &["bin.diff", "binary diff of fs/proc/cmdline.c"],
    );
}

#[test]
fn patch_does_not_apply_names_hunk_and_file() {
    bad_patch(
        "stale.diff",
        "--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n@@ -1,3 +1,4 @@\n #include <linux/fake.h>\n \n+/* x */\n extern int fake_puts(const char *s);\n@@ -7,3 +8,3 @@\n int nothing_like_this(void)\n {\n-\tfake_puts(no_such_line);\n+\tfake_puts(\"x\");\n",
        5,
        "error",
        &[
            "stale.diff does not apply",
            "hunk #2 of fs/proc/cmdline.c (line 8 of stale.diff) does not apply",
        ],
    );
}

#[test]
fn patch_needing_fuzz_says_how_to_proceed() {
    // Hunk #2's context is not in the tree, but its changed line is: only fuzz 2 applies it
    // (and may apply it in the wrong place): refused, with where it would land and what to do.
    let (f, before) = warm();
    let p = f.patch(
        "stale.diff",
        "--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n@@ -1,3 +1,4 @@\n #include <linux/fake.h>\n \n+/* x */\n extern int fake_puts(const char *s);\n@@ -7,3 +8,3 @@\n int nothing_like_this(void)\n {\n-\tfake_puts(saved_command_line);\n+\tfake_puts(\"x\");\n",
    );
    let o = f.run(&[&p], &[]);
    assert_failure(
        &o,
        5,
        "error",
        &[
            "stale.diff does not apply",
            "without fuzz",
            "hunk #2 of fs/proc/cmdline.c (line 8 of stale.diff) would apply with fuzz 2 at line",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("hint: check that each of these hunks lands where you meant, then rerun with --fuzz 2; or refresh the patch"), "{err}");
    assert_untouched(&f, &before, "stale.diff");
}

#[test]
fn patch_touches_assembly() {
    let (f, before) = warm();
    let p = f.patch(
        "asm.diff",
        "--- a/arch/x86/lib/memcpy.S\n+++ b/arch/x86/lib/memcpy.S\n@@ -1 +1 @@\n-\tret\n+\tnop\n",
    );
    let o = f.run(&[&p], &[]);
    assert_failure(&o, 3, "refused", &["arch/x86/lib/memcpy.S", "assembly"]);
    assert_untouched(&f, &before, "asm patch");
}

#[test]
fn patch_touches_documentation() {
    bad_patch(
        "doc.diff",
        "--- a/Documentation/foo.txt\n+++ b/Documentation/foo.txt\n@@ -1 +1 @@\n-old\n+new\n",
        3,
        "refused",
        &["Documentation/foo.txt", ".c and .h files only"],
    );
}

#[test]
fn patch_touches_a_makefile() {
    bad_patch(
        "mk.diff",
        "--- a/Makefile\n+++ b/Makefile\n@@ -1,2 +1,2 @@\n # A stand-in for kbuild, for lp-build's tests.\n-VERSION = 6\n+VERSION = 7\n",
        3,
        "refused",
        &["Makefile", "build and configuration changes"],
    );
}

#[test]
fn patch_touches_a_c_file_the_kernel_does_not_build() {
    let f = Fake::new();
    let unused = f.src.join("drivers/foo/unused.c");
    fs::write(&unused, "int unused(void)\n{\n\treturn 0;\n}\n").unwrap();
    age(&unused);
    f.warm_up_diff();
    let before = f.snapshots();
    let p = f.patch(
        "unused.diff",
        "--- a/drivers/foo/unused.c\n+++ b/drivers/foo/unused.c\n@@ -1,4 +1,4 @@\n int unused(void)\n {\n-\treturn 0;\n+\treturn 1;\n }\n",
    );
    let o = f.run(&[&p], &[]);
    assert_failure(
        &o,
        4,
        "no functional change",
        &["changed no object of vmlinux or a module"],
    );
    assert_untouched(&f, &before, "unbuilt file");
}

#[test]
fn patch_only_a_comment() {
    bad_patch(
        "comment.diff",
        "--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n@@ -8,4 +8,4 @@\n {\n \tfake_puts(saved_command_line);\n-\treturn FAKE_ZERO;\n+\treturn FAKE_ZERO; /* always */\n }\n",
        4,
        "no functional change",
        &["no function changed"],
    );
}

#[test]
fn patch_only_whitespace() {
    bad_patch(
        "ws.diff",
        "--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n@@ -7,5 +7,5 @@\n int cmdline_proc_show(void)\n {\n-\tfake_puts(saved_command_line);\n+        fake_puts( saved_command_line );\n \treturn FAKE_ZERO;\n }\n",
        4,
        "no functional change",
        &["no function changed"],
    );
}

#[test]
fn patch_already_applied_changes_nothing() {
    // A patch whose result equals the tree: `patch --forward` skips it.
    let (f, before) = warm();
    let p = f.patch(
        "noop.diff",
        "--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n@@ -8,4 +8,4 @@\n {\n \tfake_puts(saved_command_line);\n-\treturn FAKE_ZERO;\n+\treturn FAKE_ZERO;\n }\n",
    );
    let o = f.run(&[&p], &[]);
    assert_failure(&o, 4, "no functional change", &["change no file contents"]);
    assert_untouched(&f, &before, "no-op patch");
}

// --- the kernel tree and its configuration ---

#[test]
fn tree_not_configured() {
    let (f, before) = warm();
    // No .config in the source tree nor beside vmlinux.
    let vmlinux = other_build(&f, "noconfig", false, |a, b| {
        fs::copy(a, b).unwrap();
    });
    let o = run_with_vmlinux(&f, &vmlinux, &[]);
    assert_failure(
        &o,
        5,
        "error",
        &["kernel configuration", "noconfig/.config"],
    );
    assert_untouched(&f, &before, "no .config");
}

#[test]
fn config_without_livepatch() {
    let (f, before) = warm();
    let o = run_with_config(&f, &CONFIG.replace("CONFIG_LIVEPATCH=y\n", ""));
    assert_failure(
        &o,
        5,
        "error",
        &["cannot be live-patched", "CONFIG_LIVEPATCH=y"],
    );
    assert_untouched(&f, &before, "no CONFIG_LIVEPATCH");
}

#[test]
fn config_without_function_tracer() {
    let (f, before) = warm();
    let o = run_with_config(
        &f,
        &CONFIG.replace(
            "CONFIG_FUNCTION_TRACER=y\n",
            "# CONFIG_FUNCTION_TRACER is not set\n",
        ),
    );
    assert_failure(
        &o,
        5,
        "error",
        &["CONFIG_FUNCTION_TRACER=y", "ftrace entry"],
    );
    assert_untouched(&f, &before, "no CONFIG_FUNCTION_TRACER");
}

#[test]
fn config_without_dynamic_ftrace() {
    let (f, before) = warm();
    let o = run_with_config(&f, &CONFIG.replace("CONFIG_DYNAMIC_FTRACE=y\n", ""));
    assert_failure(&o, 5, "error", &["CONFIG_DYNAMIC_FTRACE=y"]);
    assert_untouched(&f, &before, "no CONFIG_DYNAMIC_FTRACE");
}

// --- vmlinux and the compiler ---

#[test]
fn compiler_differs_from_vmlinux_comment() {
    let (f, before) = warm();
    let comment = f.root.join("comment.bin");
    fs::write(&comment, b"GCC: (Other 1.2.3-4) 1.2.3\0").unwrap();
    let vmlinux = other_build(&f, "othercc", true, |a, b| {
        run_ok(
            Command::new("objcopy")
                .args(["--remove-section", ".comment", "--add-section"])
                .arg(format!(".comment={}", comment.display()))
                .arg(a)
                .arg(b),
        );
    });
    let o = run_with_vmlinux(&f, &vmlinux, &[]);
    assert_failure(
        &o,
        5,
        "error",
        &["compiler mismatch", "(Other 1.2.3-4) 1.2.3"],
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--skip-compiler-check"),
        "{}",
        text(&o)
    );
    assert_untouched(&f, &before, "compiler mismatch");
    // The escape hatch passes the check (and says so).
    let o = run_with_vmlinux(
        &f,
        &vmlinux,
        &["--skip-compiler-check", "--stop-after", "check"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not comparing the compiler"));
    assert_untouched(&f, &before, "--skip-compiler-check");
}

#[test]
fn vmlinux_missing() {
    let (f, before) = warm();
    let o = run_with_vmlinux(&f, &f.root.join("nowhere/vmlinux"), &[]);
    assert_failure(&o, 5, "error", &["nowhere/vmlinux", "No such file"]);
    assert_untouched(&f, &before, "missing vmlinux");
}

#[test]
fn vmlinux_stripped() {
    let (f, before) = warm();
    let vmlinux = other_build(&f, "stripped", true, |a, b| {
        run_ok(Command::new("strip").arg("-o").arg(b).arg(a));
    });
    let o = run_with_vmlinux(&f, &vmlinux, &[]);
    assert_failure(&o, 5, "error", &["stripped (no .symtab)"]);
    assert_untouched(&f, &before, "stripped vmlinux");
}

#[test]
fn vmlinux_not_elf() {
    let (f, before) = warm();
    let vmlinux = other_build(&f, "bzimage", true, |_, b| {
        fs::write(b, b"MZ\x00\x01 not an ELF file at all").unwrap();
    });
    let o = run_with_vmlinux(&f, &vmlinux, &[]);
    assert_failure(&o, 5, "error", &["is not an ELF file"]);
    assert_untouched(&f, &before, "vmlinux not ELF");
}

// --- objects given to `lp-build diff` ---

fn diff(a: &Path, b: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lp-build"))
        .arg("diff")
        .arg(a)
        .arg(b)
        .output()
        .unwrap()
}

/// The good object, a bad one made from it, and the good object's hash (it must not change).
fn objects(f: &Fake, name: &str, bad: &[u8]) -> (PathBuf, PathBuf) {
    let good = f.user.join("fs/proc/cmdline.o");
    let b = f.root.join(name);
    fs::write(&b, bad).unwrap();
    (good, b)
}

fn assert_bad_object_rejected(name: &str, cause: &str, make_bad: impl FnOnce(&Fake) -> Vec<u8>) {
    let f = Fake::new();
    let bad = make_bad(&f);
    let (good, b) = objects(&f, name, &bad);
    let user = snapshot(&f.user, &all);
    // As PATCHED and as ORIG.
    for (x, y) in [(&good, &b), (&b, &good)] {
        let o = diff(x, y);
        assert_failure(&o, 5, "error", &[name, cause]);
    }
    assert_eq!(user, snapshot(&f.user, &all), "{name}: the build changed");
}

#[test]
fn object_truncated() {
    assert_bad_object_rejected("truncated.o", "malformed ELF", |f| {
        let full = fs::read(f.user.join("fs/proc/cmdline.o")).unwrap();
        full[..full.len() / 3].to_vec()
    });
}

#[test]
fn object_random_bytes() {
    assert_bad_object_rejected("random.o", "not an ELF file", |_| {
        // A fixed pseudo-random sequence (xorshift), no RNG crate needed.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    });
}

#[test]
fn object_of_another_architecture() {
    assert_bad_object_rejected("i386.o", "32-bit ELF", |f| {
        let c = f.root.join("m32.c");
        fs::write(&c, "int cmdline_proc_show(void)\n{\n\treturn 0;\n}\n").unwrap();
        let o = f.root.join("m32.o");
        run_ok(
            Command::new("gcc")
                .args(["-m32", "-c", "-o"])
                .arg(&o)
                .arg(&c),
        );
        let bytes = fs::read(&o).unwrap();
        assert_eq!(bytes[4], 1, "gcc -m32 did not make an ELFCLASS32 object");
        bytes
    });
}

#[test]
fn object_of_another_machine() {
    // A 64-bit object whose header says aarch64 (no cross compiler needed: e_machine = 183).
    // Diffed against itself, so only the machine check can refuse it.
    let f = Fake::new();
    let mut bytes = fs::read(f.user.join("fs/proc/cmdline.o")).unwrap();
    bytes[18..20].copy_from_slice(&183u16.to_le_bytes());
    let a = f.root.join("a64.o");
    let b = f.root.join("a64-patched.o");
    fs::write(&a, &bytes).unwrap();
    fs::write(&b, &bytes).unwrap();
    let o = diff(&a, &b);
    assert_failure(&o, 5, "error", &["a64.o", "Aarch64", "x86_64"]);
}

// --- the output ---

#[test]
fn output_directory_not_writable() {
    // Tests run as root, which chmod does not stop: a path under a regular file cannot be
    // created by anyone (ENOTDIR). lp-build checks this before building anything.
    let (f, before) = warm();
    let file = f.root.join("a-file");
    fs::write(&file, "").unwrap();
    let p = f.patch("fix.diff", CMDLINE_PATCH);
    let out = file.join("sub");
    let o = Command::new(env!("CARGO_BIN_EXE_lp-build"))
        .arg("--patch")
        .arg(&p)
        .arg("-s")
        .arg(&f.src)
        .arg("-v")
        .arg(f.user.join("vmlinux"))
        .arg("-o")
        .arg(&out)
        .env("LP_BUILD_CACHE", &f.cache)
        .output()
        .unwrap();
    assert_failure(
        &o,
        5,
        "error",
        &["output directory", "a-file/sub", "Not a directory"],
    );
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("original build"),
        "the output directory is checked before building: {}",
        text(&o)
    );
    assert_untouched(&f, &before, "output not writable");
}

#[test]
fn disk_full_while_writing_the_output() {
    // The file system cannot be filled from a test: LP_BUILD_TEST_FAIL_WRITE=ENOSPC makes
    // lp-build's output write (the module or its --json report) fail as on a full disk. The
    // fake tree cannot link a real livepatch module, so the write that fails here is the JSON
    // report of a no-change run; the module goes through the same function.
    let (f, before) = warm();
    let p = f.patch(
        "comment.diff",
        "--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n@@ -8,4 +8,4 @@\n {\n \tfake_puts(saved_command_line);\n-\treturn FAKE_ZERO;\n+\treturn FAKE_ZERO; /* always */\n }\n",
    );
    let o = f
        .command(&[&p], &["--json"])
        .env("LP_BUILD_TEST_FAIL_WRITE", "ENOSPC")
        .output()
        .unwrap();
    assert_failure(
        &o,
        5,
        "error",
        &[
            "writing the output",
            "livepatch-comment.json",
            "No space left on device",
        ],
    );
    assert_untouched(&f, &before, "disk full");
    assert!(!f.root.join("out/livepatch-comment.json").exists());
    let leftovers: Vec<_> = fs::read_dir(f.root.join("out"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "files left in the output: {leftovers:?}"
    );
}

// --- inputs that are not plain files ---

#[test]
fn patch_from_dev_zero_stops_at_the_limit() {
    let f = Fake::new();
    let o = f.run(&[Path::new("/dev/zero")], &[]);
    assert_failure(&o, 5, "error", &["/dev/zero", "limit of 64 MiB"]);
}

#[test]
fn patch_from_a_fifo_nobody_writes_is_interruptible() {
    let f = Fake::new();
    let fifo = f.root.join("fix.fifo");
    run_ok(Command::new("mkfifo").arg(&fifo));
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut child = f
            .command(&[&fifo], &[])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        signal(&child, sig);
        let status = wait_child(&mut child);
        assert_eq!(status.code(), Some(130), "signal {sig}");
    }
}

#[test]
fn patch_through_a_symlinked_directory_is_refused() {
    let f = Fake::new();
    // fs/proc is a link to a directory outside the tree.
    let outside = f.root.join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::rename(f.src.join("fs/proc"), outside.join("proc")).unwrap();
    std::os::unix::fs::symlink(outside.join("proc"), f.src.join("fs/proc")).unwrap();
    let target = outside.join("proc/cmdline.c");
    let before = (
        fs::read(&target).unwrap(),
        fs::metadata(&target).unwrap().modified().unwrap(),
    );
    let p = f.patch("fix.diff", CMDLINE_PATCH);
    let o = f.run(&[&p], &[]);
    assert_failure(&o, 5, "error", &["fs/proc", "symbolic link to a directory"]);
    let after = (
        fs::read(&target).unwrap(),
        fs::metadata(&target).unwrap().modified().unwrap(),
    );
    assert_eq!(before, after, "the file outside the tree changed");
}
