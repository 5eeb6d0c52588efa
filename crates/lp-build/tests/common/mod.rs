//! Shared by the tests that drive `lp-build` against a fake kernel tree (a copy of
//! `fake_tree.rs`'s fixture, with extra pause knobs for the interrupt tests):
//! `FAKE_ORIG_PAUSE=FILE` makes each compile of the original (cache) build touch FILE and sleep;
//! `FAKE_MODULE_PAUSE=FILE` does the same for external-module builds (`M=`: the livepatch
//! module, and the probe when it is not cached yet).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

pub const FAKE_MAKEFILE: &str = r#"# A stand-in for kbuild, for lp-build's tests.
VERSION = 6
PATCHLEVEL = 12
SUBLEVEL = 0
EXTRAVERSION = -fake
srctree := $(CURDIR)
objtree := $(abspath $(if $(O),$(O),.))
# LLVM=1 or LLVM=-N selects clang and ld.lld, as in kbuild (Documentation/kbuild/llvm.rst).
ifneq ($(LLVM),)
ifneq ($(filter -%,$(LLVM)),)
LLVM_SUFFIX := $(LLVM)
endif
ifeq ($(origin CC),default)
CC := clang$(LLVM_SUFFIX)
endif
LD := ld.lld$(LLVM_SUFFIX)
endif
ifeq ($(origin CC),default)
CC := gcc
endif
# FAKE_MAKE_LOG=FILE: every make run appends its goals and toolchain variables to FILE.
ifneq ($(FAKE_MAKE_LOG),)
$(shell echo 'goals=[$(MAKECMDGOALS)] M=[$(M)] LLVM=[$(LLVM)] LLVM_IAS=[$(LLVM_IAS)] CC=[$(CC)]' >> $(FAKE_MAKE_LOG))
endif
# FAKE_EXTRA_CFLAGS: more compiler flags for every object (-flto=thin makes bitcode objects).
CFLAGS_KERNEL := -O2 -fno-pie -fno-pic -mcmodel=kernel -mno-red-zone -pg -mfentry \
	-fno-asynchronous-unwind-tables -I$(srctree)/include $(FAKE_EXTRA_CFLAGS)
VMLINUX_OBJS := init/main.o fs/proc/cmdline.o
MODULE_OBJS := drivers/foo/foo.o
HEADERS := $(wildcard $(srctree)/include/linux/*.h)

# kbuild rebuilds an object when its command line changes: here, any change of CC or KCFLAGS
# rebuilds everything.
FLAGS := $(CC) $(KCFLAGS)
ifneq ($(filter vmlinux . modules %.o,$(MAKECMDGOALS)),)
ifeq ($(M),)
ifneq ($(shell cat $(objtree)/.flags 2>/dev/null),$(FLAGS))
$(shell mkdir -p $(objtree) && echo '$(FLAGS)' > $(objtree)/.flags)
endif
endif
endif

.PHONY: vmlinux modules olddefconfig prepare

ifneq ($(M),)
# External modules (the entry-size probe).
# modpost needs the kernel's Module.symvers, as kbuild's does.
modules:
	@test -f $(objtree)/Module.symvers || { echo 'ERROR: modpost: "module_layout" undefined ($(objtree)/Module.symvers is missing)'; exit 1; }
	@if [ -n "$$FAKE_MODULE_PAUSE" ]; then touch "$$FAKE_MODULE_PAUSE"; sleep 30; fi
	cd $(M) && for c in *.c; do $(CC) $(KCFLAGS) $(CFLAGS_KERNEL) -DCONFIG_BUG \
		-DCONFIG_GENERIC_BUG -DCONFIG_JUMP_LABEL -c -o $${c%.c}.o $$c || exit 1; done
else

$(objtree)/%.o: $(srctree)/%.c $(HEADERS) $(objtree)/.flags
	@mkdir -p $(dir $@)
	@echo "  CC      $*.o"
	cd $(objtree) && $(CC) $(KCFLAGS) $(CFLAGS_KERNEL) -c -o $*.o $<
	@echo 'cmd_$*.o := $(CC) $(KCFLAGS) $(if $(filter $*.o,$(MODULE_OBJS)),-DMODULE -DKBUILD_MODNAME=foo) -c -o $*.o $<' > $(dir $@).$(notdir $@).cmd
	@if [ -n "$$LP_BUILD_SAVE_DIR" ] && [ -n "$$FAKE_KBUILD_SLEEP" ]; then sleep $$FAKE_KBUILD_SLEEP; fi
	@if [ -z "$$LP_BUILD_SAVE_DIR" ] && [ -n "$$FAKE_ORIG_PAUSE" ]; then touch "$$FAKE_ORIG_PAUSE"; sleep 30; fi

vmlinux: $(objtree)/vmlinux
$(objtree)/vmlinux: $(objtree)/vmlinux.a
	cd $(objtree) && $(LD) -r -o vmlinux $(VMLINUX_OBJS)
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
		echo drivers/foo/foo.o > modules.order && $(LD) -r -o drivers/foo/foo.ko drivers/foo/foo.o
	cd $(objtree) && printf '0x00000000\tfake_export\tvmlinux\tEXPORT_SYMBOL\t\n' > Module.symvers

olddefconfig:
	@test -f $(objtree)/.config

# What a distribution kernel's copy needs before single objects compile.
prepare:
	@test -f $(objtree)/.config
endif
"#;

pub const CMDLINE_C: &str = r#"#include <linux/fake.h>

extern int fake_puts(const char *s);
const char *saved_command_line = "console=ttyS0";

int cmdline_proc_show(void)
{
	fake_puts(saved_command_line);
	return FAKE_ZERO;
}
"#;

pub const CONFIG: &str = "CONFIG_64BIT=y\nCONFIG_MODULES=y\nCONFIG_LIVEPATCH=y\n\
CONFIG_FUNCTION_TRACER=y\nCONFIG_DYNAMIC_FTRACE=y\n# CONFIG_MODULE_SIG is not set\n";

/// Fake headers for the entry-size probe (sizes as on x86_64 6.12).
pub const PROBE_HEADERS: &[(&str, &str)] = &[
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

pub struct Fake {
    pub _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub src: PathBuf,
    pub user: PathBuf,
    pub cache: PathBuf,
}

pub fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("running a setup command");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sets a file's time a while back, so a rebuilt file is visibly newer.
pub fn age(p: &Path) {
    let t = SystemTime::now() - Duration::from_secs(3600);
    let f = fs::File::open(p).unwrap();
    f.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
        .unwrap();
}

impl Fake {
    pub fn new() -> Fake {
        Fake::with(CONFIG, &[])
    }

    /// A fake tree whose user build has the configuration `config` and was built with the make
    /// variables `vars` (`LLVM=-19`).
    pub fn with(config: &str, vars: &[&str]) -> Fake {
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
        fs::write(user.join(".config"), config).unwrap();
        run_ok(
            Command::new("make")
                .arg("-C")
                .arg(&src)
                .arg(format!("O={}", user.display()))
                .args(vars)
                .args(["vmlinux", "modules"])
                .env_remove("FAKE_MAKE_LOG")
                .env_remove("FAKE_EXTRA_CFLAGS"),
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

    pub fn patch(&self, name: &str, text: &str) -> PathBuf {
        let p = self.root.join(name);
        fs::write(&p, text).unwrap();
        p
    }

    pub fn command(&self, patches: &[&Path], extra: &[&str]) -> Command {
        self.command_with(patches, extra, &self.user.join("vmlinux"))
    }

    pub fn command_with(&self, patches: &[&Path], extra: &[&str], vmlinux: &Path) -> Command {
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
            .env_remove("FAKE_KBUILD_SLEEP")
            .env_remove("FAKE_ORIG_PAUSE")
            .env_remove("FAKE_MODULE_PAUSE")
            .env_remove("FAKE_MAKE_LOG")
            .env_remove("FAKE_EXTRA_CFLAGS")
            .env_remove("LP_BUILD_TEST_PAUSE_DIFF")
            .env_remove("LP_BUILD_TEST_FAIL_WRITE");
        c
    }

    pub fn run(&self, patches: &[&Path], extra: &[&str]) -> Output {
        self.command(patches, extra).output().unwrap()
    }

    /// The cache build directory (there is one per key; the fake uses one configuration).
    pub fn cache_build(&self) -> Option<PathBuf> {
        let tree = fs::read_dir(&self.cache).ok()?.flatten().next()?.path();
        fs::read_dir(&tree)
            .ok()?
            .flatten()
            .map(|e| e.path().join("build"))
            .find(|b| b.is_dir())
    }

    pub fn tree_cache(&self) -> PathBuf {
        fs::read_dir(&self.cache)
            .unwrap()
            .flatten()
            .next()
            .unwrap()
            .path()
    }
}

/// Content hash and modification time (ns) of every file and directory under `dir`.
pub fn snapshot(dir: &Path, filter: &dyn Fn(&str) -> bool) -> BTreeMap<String, String> {
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

pub fn all(_: &str) -> bool {
    true
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub const CMDLINE_PATCH: &str = "\
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

pub const BROKEN_PATCH: &str = "\
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

pub struct Snapshots {
    pub src: BTreeMap<String, String>,
    pub user: BTreeMap<String, String>,
    pub cache_build_files: BTreeMap<String, String>,
}

impl Fake {
    pub fn snapshots(&self) -> Snapshots {
        Snapshots {
            src: snapshot(&self.src, &all),
            user: snapshot(&self.user, &all),
            cache_build_files: self
                .cache_build()
                .map(|b| snapshot(&b, &all))
                .unwrap_or_default(),
        }
    }

    pub fn assert_as_found(&self, before: &Snapshots, what: &str) {
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
    pub fn warm_up(&self) {
        let p = self.patch("warm.diff", CMDLINE_PATCH);
        let o = self.run(&[&p], &["--stop-after", "build"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
}

pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn wait_child(child: &mut std::process::Child) -> std::process::ExitStatus {
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

/// Sends `sig` to the child (lp-build itself, not its process group, as a terminal's Ctrl-C
/// would not reach make's own group either).
pub fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
}

impl Fake {
    /// A first run through the differ: builds the cache and caches the entry-size probe.
    pub fn warm_up_diff(&self) {
        let p = self.patch("warm.diff", CMDLINE_PATCH);
        let o = self.run(&[&p], &["--stop-after", "diff"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
}

/// Asserts the exit status, that the error line `lp-build: <word>: ...` names every needle, and
/// that a non-empty `hint:` line follows it.
pub fn assert_failure(o: &Output, code: i32, word: &str, needles: &[&str]) {
    assert_eq!(o.status.code(), Some(code), "{}", text(o));
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    let prefix = format!("lp-build: {word}: ");
    let i = lines
        .iter()
        .position(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line: {}", text(o)));
    for n in needles {
        assert!(
            lines[i].contains(n),
            "`{n}` not in `{}`: {}",
            lines[i],
            text(o)
        );
    }
    let hint = lines
        .get(i + 1)
        .and_then(|l| l.trim_start().strip_prefix("hint: "))
        .unwrap_or_else(|| panic!("no hint line after the error: {}", text(o)));
    assert!(!hint.trim().is_empty(), "empty hint: {}", text(o));
}
