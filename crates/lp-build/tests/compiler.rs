//! The kernel's compiler, from its configuration: lp-build finds the same compiler here and
//! passes kbuild the same make variables (`LLVM=-19` for a clang kernel), and refuses before
//! building anything a compiler that is missing or of another version (naming both) and a clang
//! LTO kernel. One test builds and diffs real clang objects through lp-build's whole machinery
//! (cache build, patched build, probe module, differ): it needs a clang with its ld.lld
//! (`apt install clang-19 lld-19`, which `.ci/run` installs) and fails when there is none.

mod common;

use common::*;
use lp_build::toolchain::{lld_version_of, version_of, Family, Version};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Kconfig's encoding of a version (`190107`).
fn kconfig(v: Version) -> u32 {
    v.0 * 10000 + v.1 * 100 + v.2
}

/// A directory of stand-in programs that print a `--version` line.
fn fake_bin(dir: &Path, programs: &[(&str, &str)]) -> PathBuf {
    let bin = dir.join("fakebin");
    fs::create_dir_all(&bin).unwrap();
    for (name, line) in programs {
        let p = bin.join(name);
        fs::write(&p, format!("#!/bin/sh\necho '{line}'\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

fn run_with_path(f: &Fake, path: &str, extra: &[&str]) -> Output {
    let p = f.patch("fix.diff", CMDLINE_PATCH);
    f.command(&[&p], extra).env("PATH", path).output().unwrap()
}

/// Nothing was built and neither tree nor build was written.
fn assert_nothing_built(f: &Fake, before: &Snapshots, what: &str) {
    let after = f.snapshots();
    assert_eq!(before.src, after.src, "{what}: the source tree changed");
    assert_eq!(before.user, after.user, "{what}: the user's build changed");
    assert!(f.cache_build().is_none(), "{what}: a cache build was made");
    assert!(
        !f.root.join("out").exists(),
        "{what}: an output was written"
    );
}

/// Replaces vmlinux's `.comment` (the compiler it records).
fn set_comment(f: &Fake, comment: &str) {
    let vmlinux = f.user.join("vmlinux");
    let c = f.root.join("comment.bin");
    fs::write(&c, format!("{comment}\0")).unwrap();
    let tmp = f.root.join("vmlinux.tmp");
    run_ok(
        Command::new("objcopy")
            .args(["--remove-section", ".comment", "--add-section"])
            .arg(format!(".comment={}", c.display()))
            .arg(&vmlinux)
            .arg(&tmp),
    );
    fs::rename(&tmp, &vmlinux).unwrap();
}

const CLANG99: &str = "CONFIG_CC_IS_CLANG=y\nCONFIG_CLANG_VERSION=990101\n\
    CONFIG_CC_VERSION_TEXT=\"Fake clang version 99.1.1 (1)\"\nCONFIG_LD_IS_LLD=y\n\
    CONFIG_LLD_VERSION=990101\nCONFIG_AS_IS_LLVM=y\n";

#[test]
fn a_clang_kernel_is_detected_and_gets_llvm_make_variables() {
    let f = Fake::with(&format!("{CONFIG}{CLANG99}"), &[]);
    set_comment(&f, "Fake clang version 99.1.1 (1)");
    let bin = fake_bin(
        &f.root,
        &[
            ("clang-99", "Fake clang version 99.1.1 (1)"),
            ("ld.lld-99", "Fake LLD 99.1.1 (compatible with GNU linkers)"),
            ("llvm-ar-99", "Fake LLVM version 99.1.1"),
        ],
    );
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let o = run_with_path(&f, &path, &["--stop-after", "check"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("compiler: clang-99 (Fake clang version 99.1.1 (1)); kbuild runs with LLVM=-99 LLVM_IAS=1 CC=clang-99"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_clang_kernel_with_another_clang_here_is_refused_naming_both_versions() {
    let f = Fake::with(&format!("{CONFIG}{CLANG99}"), &[]);
    let bin = fake_bin(
        &f.root,
        &[
            ("clang-99", "Debian clang version 16.0.6 (15)"),
            ("clang", "Debian clang version 19.1.7 (3~deb12u1)"),
        ],
    );
    let before = f.snapshots();
    let o = run_with_path(&f, &bin.display().to_string(), &[]);
    assert_failure(
        &o,
        5,
        "error",
        &[
            "compiler mismatch",
            "clang 99.1.1",
            "`clang-99` is clang 16.0.6",
            "`clang` is clang 19.1.7",
        ],
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("apt install clang-99 lld-99"),
        "{}",
        text(&o)
    );
    assert_nothing_built(&f, &before, "clang mismatch");
}

#[test]
fn a_clang_kernel_without_clang_here_is_refused() {
    let f = Fake::with(&format!("{CONFIG}{CLANG99}"), &[]);
    let bin = fake_bin(&f.root, &[]);
    let before = f.snapshots();
    let o = run_with_path(&f, &bin.display().to_string(), &[]);
    assert_failure(
        &o,
        5,
        "error",
        &["clang 99.1.1", "not installed", "clang-99, clang"],
    );
    assert_nothing_built(&f, &before, "no clang");
    // Its ld.lld missing is named too.
    let bin = fake_bin(&f.root, &[("clang-99", "Fake clang version 99.1.1 (1)")]);
    let o = run_with_path(&f, &bin.display().to_string(), &[]);
    assert_failure(&o, 5, "error", &["ld.lld 99.1.1", "ld.lld-99"]);
    assert_nothing_built(&f, &before, "no ld.lld");
}

#[test]
fn a_gcc_kernel_with_another_gcc_here_is_refused_naming_both_versions() {
    let config = format!(
        "{CONFIG}CONFIG_CC_IS_GCC=y\nCONFIG_GCC_VERSION=990000\n\
         CONFIG_CC_VERSION_TEXT=\"gcc-99 (Fake 99.0.0-1) 99.0.0\"\n"
    );
    let f = Fake::with(&config, &[]);
    let bin = fake_bin(&f.root, &[("gcc", "gcc (Debian 12.2.0-14) 12.2.0")]);
    let before = f.snapshots();
    let o = run_with_path(&f, &bin.display().to_string(), &[]);
    assert_failure(
        &o,
        5,
        "error",
        &["compiler mismatch", "gcc 99.0.0", "`gcc` is gcc 12.2.0"],
    );
    assert_nothing_built(&f, &before, "gcc mismatch");
}

#[test]
fn a_clang_lto_kernel_is_refused_before_anything_is_built() {
    for option in ["CONFIG_LTO_CLANG_THIN", "CONFIG_LTO_CLANG_FULL"] {
        let config = format!("{CONFIG}{CLANG99}CONFIG_LTO_CLANG=y\n{option}=y\n");
        let f = Fake::with(&config, &[]);
        // Refused even with the right clang here: LTO is checked first.
        let bin = fake_bin(
            &f.root,
            &[
                ("clang-99", "Fake clang version 99.1.1 (1)"),
                ("ld.lld-99", "Fake LLD 99.1.1"),
                ("llvm-ar-99", "Fake LLVM version 99.1.1"),
            ],
        );
        let before = f.snapshots();
        let o = run_with_path(&f, &bin.display().to_string(), &[]);
        assert_failure(
            &o,
            5,
            "error",
            &[
                &format!("{option}=y"),
                "clang LTO kernel",
                "LLVM bitcode",
                "machine code",
            ],
        );
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("CONFIG_LTO_NONE=y"),
            "{}",
            text(&o)
        );
        assert_nothing_built(&f, &before, option);
    }
}

/// A clang with its ld.lld on this host: `clang-19`, `clang-16` or `clang`.
fn host_clang() -> (String, String, Version, Version) {
    for suffix in ["-19", "-16", ""] {
        let cc = format!("clang{suffix}");
        let ld = format!("ld.lld{suffix}");
        let line = |p: &str| {
            Command::new(p)
                .arg("--version")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_string()
                })
        };
        if let (Some(c), Some(l)) = (line(&cc), line(&ld)) {
            let cv = version_of(Family::Clang, &c).expect("clang's version");
            let lv = lld_version_of(&l).expect("ld.lld's version");
            return (suffix.to_string(), c, cv, lv);
        }
    }
    panic!(
        "no clang with its ld.lld on this host (tried clang-19, clang-16, clang): install them \
         (apt install clang-19 lld-19 llvm-19; .ci/run does)"
    );
}

/// Real clang objects through the whole machinery: the user's build made with `LLVM=-N`, and
/// lp-build, told only the configuration, builds its cache, the patched object and the probe
/// with the same clang and LLVM=-N, and the differ finds the changed function in clang's code.
/// Then a patched object that is LLVM bitcode (as `-flto=thin` makes) is refused at the differ
/// with its own message, the tree restored.
#[test]
fn real_clang_objects_are_built_with_the_kernels_clang_and_diffed() {
    let (suffix, line, cv, lv) = host_clang();
    let llvm = if suffix.is_empty() {
        "LLVM=1".to_string()
    } else {
        format!("LLVM={suffix}")
    };
    let config = format!(
        "{CONFIG}CONFIG_CC_IS_CLANG=y\nCONFIG_CLANG_VERSION={}\nCONFIG_CC_VERSION_TEXT=\"{line}\"\n\
         CONFIG_LD_IS_LLD=y\nCONFIG_LLD_VERSION={}\nCONFIG_AS_IS_LLVM=y\n",
        kconfig(cv),
        kconfig(lv)
    );
    let f = Fake::with(&config, &[&llvm]);
    let log = f.root.join("make.log");
    let before = f.snapshots();
    let p = f.patch("fix.diff", CMDLINE_PATCH);
    let o = f
        .command(&[&p], &["--stop-after", "diff"])
        .env("FAKE_MAKE_LOG", &log)
        .output()
        .unwrap();
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
    // Every make lp-build ran had the kernel's clang: configure, cache build, patched build,
    // probe module.
    let runs = fs::read_to_string(&log).unwrap();
    let runs: Vec<&str> = runs.lines().collect();
    assert!(runs.len() >= 4, "{runs:#?}");
    for r in &runs {
        assert!(
            r.contains(&format!("LLVM=[{}]", &llvm["LLVM=".len()..])),
            "{r}"
        );
        assert!(r.contains("LLVM_IAS=[1]"), "{r}");
        assert!(r.contains(&format!("clang{suffix}]")), "{r}");
    }
    assert!(
        runs.iter().any(|r| r.contains("M=[/")),
        "no probe run: {runs:#?}"
    );
    // The cache's objects are clang's machine code.
    let build = f.cache_build().expect("the cache build");
    let obj = lp_elf::Object::parse(&fs::read(build.join("fs/proc/cmdline.o")).unwrap()).unwrap();
    let comment = obj
        .sections
        .iter()
        .find(|s| s.name == b".comment")
        .expect(".comment");
    let comment = String::from_utf8_lossy(comment.bytes());
    assert!(comment.contains("clang version"), "{comment}");
    let after = f.snapshots();
    assert_eq!(before.src, after.src, "the source tree changed");
    assert_eq!(before.user, after.user, "the user's build changed");

    // The patched object as LLVM bitcode (the entry sizes are cached from the run above).
    let before = f.snapshots();
    let o = f
        .command(&[&p], &["--stop-after", "diff"])
        .env("FAKE_EXTRA_CFLAGS", "-flto=thin")
        .output()
        .unwrap();
    assert_failure(
        &o,
        5,
        "error",
        &["fs/proc/cmdline.o", "LLVM bitcode", "machine code"],
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("CONFIG_LTO_NONE=y"),
        "{}",
        text(&o)
    );
    f.assert_as_found(&before, "bitcode refused");
}

/// `lp-build diff` of a bitcode object says what it is.
#[test]
fn diff_of_bitcode_names_it() {
    let t = tempfile::tempdir().unwrap();
    let bc = t.path().join("a.o");
    let mut bytes = b"BC\xc0\xde\x35\x14\x00\x00".to_vec();
    bytes.resize(512, 0);
    fs::write(&bc, &bytes).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_lp-build"))
        .arg("diff")
        .arg(&bc)
        .arg(&bc)
        .output()
        .unwrap();
    assert_failure(&o, 5, "error", &["a.o", "LLVM bitcode"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("CONFIG_LTO_NONE=y"),
        "{}",
        text(&o)
    );
}
