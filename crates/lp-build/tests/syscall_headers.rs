//! The syscall macros of the hooks headers against a real kernel: `kernel/sys.c` of a built
//! test kernel (`target/lp-kernels/<version>/build`, made by `cargo xtask kernel`, or the build
//! directory in `LP_TEST_KERNEL_BUILD`) compiled with its own flags, once as it is and once with
//! `SYSCALL_DEFINE1(newuname, ...)` written as kpatch's `KPATCH_SYSCALL_DEFINE1` (through
//! `kpatch-macros.h` and through `kpatch-syscall.h`) and as klp-build's `KLP_SYSCALL_DEFINE1`
//! (through `<linux/livepatch_helpers.h>`), with a changed body. The differ must see the
//! syscall entry point `__x64_sys_newuname` changed and the renamed body as a new function.
//! Without a built kernel the test says so and checks nothing (the VM cases need one anyway).
//! On a clang-built kernel (`CONFIG_CC_IS_CLANG`, e.g. `target/lp-kernels/6.12/build-clang-19`)
//! clang inlines the renamed body into the entry point, as it inlines the unpatched
//! `__do_sys_newuname`: there the entry point is the one changed function and nothing is new.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn kernel_builds() -> Vec<PathBuf> {
    if let Some(b) = std::env::var_os("LP_TEST_KERNEL_BUILD") {
        return vec![PathBuf::from(b)];
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/lp-kernels");
    let Ok(dirs) = fs::read_dir(root) else {
        return Vec::new();
    };
    // `build`, and `build-clang-19` (a clang test kernel) or a variant's `build-<name>`.
    let mut out: Vec<PathBuf> = dirs
        .filter_map(|d| d.ok())
        .filter_map(|d| fs::read_dir(d.path()).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("build"))
        .map(|e| e.path())
        .filter(|b| b.join("kernel/.sys.o.cmd").is_file())
        .collect();
    out.sort();
    out
}

/// The compile command of kernel/sys.o without its dependency file and output.
fn flags(build: &Path) -> Option<String> {
    let cmd = fs::read_to_string(build.join("kernel/.sys.o.cmd")).ok()?;
    let line = cmd.lines().next()?;
    let line = line.split_once(":= ")?.1;
    let line = line.split_once(" -c -o kernel/sys.o ")?.0;
    let mut words: Vec<&str> = line.split_whitespace().collect();
    words.retain(|w| !w.starts_with("-Wp,-MMD"));
    Some(words.join(" "))
}

fn compile(build: &Path, flags: &str, hooks: &Path, src: &Path, out: &Path) {
    let script = format!(
        "{flags} -ffunction-sections -fdata-sections -I{h} -idirafter {h}/compat -c -o {o} {s}",
        h = hooks.display(),
        o = out.display(),
        s = src.display()
    );
    let status = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(build)
        .status()
        .unwrap();
    assert!(status.success(), "compiling {}", src.display());
}

#[test]
fn syscall_macros_patch_the_entry_point() {
    let builds = kernel_builds();
    if builds.is_empty() {
        eprintln!("no built test kernel (cargo xtask kernel): nothing to check");
        return;
    }
    for build in builds {
        let clang = fs::read_to_string(build.join(".config"))
            .unwrap_or_default()
            .lines()
            .any(|l| l == "CONFIG_CC_IS_CLANG=y");
        let Some(flags) = flags(&build) else {
            panic!("cannot read {}/kernel/.sys.o.cmd", build.display())
        };
        let src_line = fs::read_to_string(build.join("kernel/.sys.o.cmd")).unwrap();
        let sys_c = src_line
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().last())
            .map(PathBuf::from)
            .unwrap();
        let orig = fs::read_to_string(&sys_c).unwrap();
        assert!(orig.contains("SYSCALL_DEFINE1(newuname,"));
        let t = tempfile::tempdir().unwrap();
        let hooks = t.path().join("hooks");
        let lp_build = env!("CARGO_BIN_EXE_lp-build");
        let st = Command::new(lp_build)
            .arg("hooks")
            .arg(&hooks)
            .output()
            .unwrap();
        assert!(st.status.success());
        fs::write(t.path().join("orig.c"), &orig).unwrap();
        compile(
            &build,
            &flags,
            &hooks,
            &t.path().join("orig.c"),
            &t.path().join("orig.o"),
        );
        let body = orig.replacen("SYSCALL_DEFINE1(newuname,", "MACRO(newuname,", 1);
        let body = body.replacen(
            "\tif (copy_to_user(name, &tmp, sizeof(tmp)))",
            "\ttmp.release[0] = 'X';\n\tif (copy_to_user(name, &tmp, sizeof(tmp)))",
            1,
        );
        assert_ne!(body, orig);
        for (include, macro_name) in [
            ("\"kpatch-macros.h\"", "KPATCH_SYSCALL_DEFINE1"),
            ("\"kpatch-syscall.h\"", "KPATCH_SYSCALL_DEFINE1"),
            ("<linux/livepatch_helpers.h>", "KLP_SYSCALL_DEFINE1"),
            ("\"lp-syscall.h\"", "LP_SYSCALL_DEFINE1"),
        ] {
            let patched = format!(
                "#include {include}\n{}",
                body.replacen("MACRO(newuname,", &format!("{macro_name}(newuname,"), 1)
            );
            let c = t.path().join("patched.c");
            let o = t.path().join("patched.o");
            fs::write(&c, patched).unwrap();
            compile(&build, &flags, &hooks, &c, &o);
            let out = Command::new(lp_build)
                .arg("diff")
                .arg(t.path().join("orig.o"))
                .arg(&o)
                .arg("--json")
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let what = format!("{} with {include}: {v}", build.display());
            assert_eq!(v["outcome"], "patch", "{what}");
            assert_eq!(
                v["changed_functions"],
                serde_json::json!(["__x64_sys_newuname"]),
                "{what}"
            );
            // gcc keeps the body as a function of its own; clang inlines it.
            let defined = lp_elf::Object::parse(&fs::read(&o).unwrap())
                .unwrap()
                .symbols
                .iter()
                .any(|s| s.name == b"__lp_do_sys_newuname" && !s.is_undef());
            assert_eq!(defined, !clang, "{what}: __lp_do_sys_newuname defined");
            let new: &[&str] = if clang {
                &[]
            } else {
                &["__lp_do_sys_newuname"]
            };
            assert_eq!(v["new_functions"], serde_json::json!(new), "{what}");
        }
    }
}
