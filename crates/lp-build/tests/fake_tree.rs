//! The build driver against a fake kernel tree: a tiny Makefile that imitates kbuild's `O=`,
//! `CC`, `KCFLAGS`, `.cmd`, `modules.order`/`.mod` and thin `vmlinux.a` conventions, so these
//! tests run in seconds without a kernel.
//!
//! What they prove: the source tree, the user's build and the cache build are left exactly as
//! found (content and modification time of every file and directory) after success, after a patch
//! that does not compile, after SIGINT during the build and (by the next run) after SIGKILL;
//! bad inputs get their own exit status and a one-line reason.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

const FAKE_MAKEFILE: &str = r#"# A stand-in for kbuild, for lp-build's tests.
VERSION = 6
PATCHLEVEL = 12
SUBLEVEL = 0
EXTRAVERSION = -fake
srctree := $(CURDIR)
objtree := $(abspath $(if $(O),$(O),.))
ifeq ($(origin CC),default)
CC := gcc
endif
CFLAGS_KERNEL := -O2 -fno-pie -fno-pic -mcmodel=kernel -mno-red-zone -pg -mfentry \
	-fno-asynchronous-unwind-tables -I$(srctree)/include
VMLINUX_OBJS := init/main.o fs/proc/cmdline.o
MODULE_OBJS := drivers/foo/foo.o
HEADERS := $(wildcard $(srctree)/include/linux/*.h)

# kbuild rebuilds an object when its command line changes: here, any change of CC or KCFLAGS
# rebuilds everything.
FLAGS := $(CC) $(KCFLAGS)
ifneq ($(filter vmlinux . modules,$(MAKECMDGOALS)),)
ifeq ($(M),)
ifneq ($(shell cat $(objtree)/.flags 2>/dev/null),$(FLAGS))
$(shell mkdir -p $(objtree) && echo '$(FLAGS)' > $(objtree)/.flags)
endif
endif
endif

.PHONY: vmlinux modules olddefconfig

ifneq ($(M),)
# External modules (the entry-size probe).
modules:
	cd $(M) && for c in *.c; do $(CC) $(KCFLAGS) $(CFLAGS_KERNEL) -DCONFIG_BUG \
		-DCONFIG_GENERIC_BUG -DCONFIG_JUMP_LABEL -c -o $${c%.c}.o $$c || exit 1; done
else

$(objtree)/%.o: $(srctree)/%.c $(HEADERS) $(objtree)/.flags
	@mkdir -p $(dir $@)
	@echo "  CC      $*.o"
	cd $(objtree) && $(CC) $(KCFLAGS) $(CFLAGS_KERNEL) -c -o $*.o $<
	@echo 'cmd_$*.o := $(CC) $(KCFLAGS) -c -o $*.o $<' > $(dir $@).$(notdir $@).cmd
	@if [ -n "$$LP_BUILD_SAVE_DIR" ] && [ -n "$$FAKE_KBUILD_SLEEP" ]; then sleep $$FAKE_KBUILD_SLEEP; fi

vmlinux: $(objtree)/vmlinux
$(objtree)/vmlinux: $(objtree)/vmlinux.a
	cd $(objtree) && ld -r -o vmlinux $(VMLINUX_OBJS)
$(objtree)/vmlinux.a: $(addprefix $(objtree)/,$(VMLINUX_OBJS))
	cd $(objtree) && rm -f vmlinux.a && ar cDPrST vmlinux.a $(VMLINUX_OBJS)

# kbuild's single-target build: `make fs/proc/cmdline.o` builds that object in O=.
.PHONY: $(VMLINUX_OBJS) $(MODULE_OBJS)
$(VMLINUX_OBJS) $(MODULE_OBJS): %.o: $(objtree)/%.o
	@:

# kbuild's descend target: compile everything, link nothing.
build-dir	:= .
.PHONY: $(build-dir)
$(build-dir): $(addprefix $(objtree)/,$(VMLINUX_OBJS)) $(if $(KBUILD_MODULES),$(addprefix $(objtree)/,$(MODULE_OBJS)))
	@:

modules: $(objtree)/drivers/foo/foo.ko
$(objtree)/drivers/foo/foo.ko: $(addprefix $(objtree)/,$(MODULE_OBJS))
	cd $(objtree) && echo drivers/foo/foo.o > drivers/foo/foo.mod && \
		echo drivers/foo/foo.o > modules.order && ld -r -o drivers/foo/foo.ko drivers/foo/foo.o
	cd $(objtree) && printf '0x00000000\tfake_export\tvmlinux\tEXPORT_SYMBOL\t\n' > Module.symvers

olddefconfig:
	@test -f $(objtree)/.config
endif
"#;

const CMDLINE_C: &str = r#"#include <linux/fake.h>

extern int fake_puts(const char *s);
const char *saved_command_line = "console=ttyS0";

int cmdline_proc_show(void)
{
	fake_puts(saved_command_line);
	return FAKE_ZERO;
}
"#;

const CONFIG: &str = "CONFIG_64BIT=y\nCONFIG_MODULES=y\nCONFIG_LIVEPATCH=y\n\
CONFIG_FUNCTION_TRACER=y\nCONFIG_DYNAMIC_FTRACE=y\n# CONFIG_MODULE_SIG is not set\n";

/// Fake headers for the entry-size probe (sizes as on x86_64 6.12).
const PROBE_HEADERS: &[(&str, &str)] = &[
    (
        "include/linux/module.h",
        "#define MODULE_LICENSE(x)\n#define MODULE_DESCRIPTION(x)\n",
    ),
    (
        "include/linux/version.h",
        "#define KERNEL_VERSION(a, b, c) (((a) << 16) + ((b) << 8) + (c))\n\
         #define LINUX_VERSION_CODE KERNEL_VERSION(6, 12, 0)\n",
    ),
    (
        "include/linux/bug.h",
        "struct bug_entry { int bug_addr_disp; int file_disp; unsigned short line, flags; };\n",
    ),
    ("include/linux/extable.h", ""),
    (
        "include/asm/extable.h",
        "struct exception_table_entry { int insn, fixup, data; };\n",
    ),
    (
        "include/linux/jump_label.h",
        "struct jump_entry { int code, target; long key; };\n",
    ),
    (
        "include/asm/alternative.h",
        "struct alt_instr { int instr_offset, repl_offset; unsigned int ft_flags; \
         unsigned char instrlen, replacementlen; } __attribute__((packed));\n",
    ),
    (
        "include/linux/static_call_types.h",
        "struct static_call_site { int addr, key; };\n",
    ),
    ("include/linux/printk.h", ""),
];

struct Fake {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    src: PathBuf,
    user: PathBuf,
    cache: PathBuf,
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("running a setup command");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sets a file's time a while back, so a rebuilt file is visibly newer.
fn age(p: &Path) {
    let t = SystemTime::now() - Duration::from_secs(3600);
    let f = fs::File::open(p).unwrap();
    f.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
        .unwrap();
}

impl Fake {
    fn new() -> Fake {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        let src = root.join("src");
        let files: Vec<(&str, &str)> = [
            ("Makefile", FAKE_MAKEFILE),
            ("Kconfig", "# fake\n"),
            ("init/main.c", "int start_kernel(void)\n{\n\treturn 0;\n}\n"),
            ("fs/proc/cmdline.c", CMDLINE_C),
            (
                "include/linux/fake.h",
                "#ifndef FAKE_H\n#define FAKE_H\n#define FAKE_ZERO 0\n#endif\n",
            ),
            (
                "drivers/foo/foo.c",
                "int foo_value;\nint foo_get(void)\n{\n\treturn foo_value;\n}\n",
            ),
        ]
        .into_iter()
        .chain(PROBE_HEADERS.iter().copied())
        .collect();
        for (p, text) in files {
            let path = src.join(p);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, text).unwrap();
            age(&path);
        }
        let user = root.join("userbuild");
        fs::create_dir_all(&user).unwrap();
        fs::write(user.join(".config"), CONFIG).unwrap();
        run_ok(
            Command::new("make")
                .arg("-C")
                .arg(&src)
                .arg(format!("O={}", user.display()))
                .args(["vmlinux", "modules"]),
        );
        let cache = root.join("cache");
        Fake {
            _tmp: tmp,
            root,
            src,
            user,
            cache,
        }
    }

    fn patch(&self, name: &str, text: &str) -> PathBuf {
        let p = self.root.join(name);
        fs::write(&p, text).unwrap();
        p
    }

    fn command(&self, patches: &[&Path], extra: &[&str]) -> Command {
        self.command_with(patches, extra, &self.user.join("vmlinux"))
    }

    fn command_with(&self, patches: &[&Path], extra: &[&str], vmlinux: &Path) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_lp-build"));
        for p in patches {
            c.arg("--patch").arg(p);
        }
        c.arg("-s")
            .arg(&self.src)
            .arg("-v")
            .arg(vmlinux)
            .arg("-o")
            .arg(self.root.join("out"))
            .args(["-j", "2"])
            .args(extra)
            .env("LP_BUILD_CACHE", &self.cache)
            .env_remove("LP_BUILD_SAVE_DIR")
            .env_remove("FAKE_KBUILD_SLEEP");
        c
    }

    fn run(&self, patches: &[&Path], extra: &[&str]) -> Output {
        self.command(patches, extra).output().unwrap()
    }

    /// The cache build directory (there is one per key; the fake uses one configuration).
    fn cache_build(&self) -> Option<PathBuf> {
        let tree = fs::read_dir(&self.cache).ok()?.flatten().next()?.path();
        fs::read_dir(&tree)
            .ok()?
            .flatten()
            .map(|e| e.path().join("build"))
            .find(|b| b.is_dir())
    }

    fn tree_cache(&self) -> PathBuf {
        fs::read_dir(&self.cache)
            .unwrap()
            .flatten()
            .next()
            .unwrap()
            .path()
    }
}

/// Content hash and modification time (ns) of every file and directory under `dir`.
fn snapshot(dir: &Path, filter: &dyn Fn(&str) -> bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let m = fs::symlink_metadata(&p).unwrap();
            let t = format!("{}.{:09}", m.mtime(), m.mtime_nsec());
            if m.is_dir() {
                out.insert(format!("{rel}/"), t);
                stack.push(p);
            } else if filter(&rel) {
                let c = if m.file_type().is_symlink() {
                    fs::read_link(&p).unwrap().to_string_lossy().into_owned()
                } else {
                    lp_build::fsutil::sha256_hex(&fs::read(&p).unwrap())
                };
                out.insert(rel, format!("{c} {t}"));
            }
        }
    }
    out
}

fn all(_: &str) -> bool {
    true
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const CMDLINE_PATCH: &str = "\
--- a/fs/proc/cmdline.c
+++ b/fs/proc/cmdline.c
@@ -6,6 +6,7 @@
 
 int cmdline_proc_show(void)
 {
+\tfake_puts(\"livepatched \");
 \tfake_puts(saved_command_line);
 \treturn FAKE_ZERO;
 }
";

const BROKEN_PATCH: &str = "\
--- a/fs/proc/cmdline.c
+++ b/fs/proc/cmdline.c
@@ -6,6 +6,7 @@
 
 int cmdline_proc_show(void)
 {
+\tthis does not compile;
 \tfake_puts(saved_command_line);
 \treturn FAKE_ZERO;
 }
";

struct Snapshots {
    src: BTreeMap<String, String>,
    user: BTreeMap<String, String>,
    cache_build_files: BTreeMap<String, String>,
}

impl Fake {
    fn snapshots(&self) -> Snapshots {
        Snapshots {
            src: snapshot(&self.src, &all),
            user: snapshot(&self.user, &all),
            cache_build_files: self
                .cache_build()
                .map(|b| snapshot(&b, &all))
                .unwrap_or_default(),
        }
    }

    fn assert_as_found(&self, before: &Snapshots, what: &str) {
        let after = self.snapshots();
        assert_eq!(before.src, after.src, "{what}: the source tree changed");
        assert_eq!(before.user, after.user, "{what}: the user's build changed");
        assert_eq!(
            before.cache_build_files, after.cache_build_files,
            "{what}: the cache build changed"
        );
        let tc = self.tree_cache();
        assert!(
            !tc.join("journal.json").exists(),
            "{what}: the journal was left behind"
        );
        assert_eq!(
            fs::read_to_string(tc.join("lock")).unwrap(),
            "",
            "{what}: the lock was not released"
        );
    }

    /// A first run that builds the cache, so snapshots include its objects.
    fn warm_up(&self) {
        let p = self.patch("warm.diff", CMDLINE_PATCH);
        let o = self.run(&[&p], &["--stop-after", "build"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
}

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
    f.assert_as_found(&before, "after a failing build");
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
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

fn wait_child(child: &mut std::process::Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "lp-build did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
    // A source tree built in place.
    fs::write(f.src.join(".config"), CONFIG).unwrap();
    let o = f.run(&[&good], &["--stop-after", "check"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("mrproper"),
        "{}",
        text(&o)
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
