//! `lp-build diff` and `lp-build check` on files compiled on the fly: output shape and exit
//! statuses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn lp_build() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lp-build"))
}

/// Compiles `source` like a kernel object (function sections, ftrace entries).
fn compile(dir: &Path, name: &str, source: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let o = dir.join(format!("{name}.o"));
    let st = Command::new("cc")
        .args([
            "-O2",
            "-fno-pie",
            "-fno-pic",
            "-mcmodel=kernel",
            "-mno-red-zone",
            "-pg",
            "-mfentry",
            "-ffunction-sections",
            "-fdata-sections",
            "-fno-asynchronous-unwind-tables",
            "-c",
            "-o",
        ])
        .arg(&o)
        .arg(&c)
        .status()
        .unwrap();
    assert!(st.success());
    o
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const ORIG: &str = "extern int ext(int);\nint f(int x)\n{\n\treturn ext(x) + 1;\n}\nint g(int x)\n{\n\treturn x * 3;\n}\n";

#[test]
fn diff_json_shape_and_status() {
    let t = tempfile::tempdir().unwrap();
    let orig = compile(t.path(), "orig", ORIG);
    let same = compile(t.path(), "same", ORIG);
    let patched = compile(
        t.path(),
        "patched",
        &ORIG.replace("ext(x) + 1", "ext(x) + 2"),
    );

    // No change: status 4, outcome "no-change".
    let o = lp_build()
        .args(["diff", "--json"])
        .arg(&orig)
        .arg(&same)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(j["outcome"], "no-change");
    assert_eq!(j["changed_functions"], serde_json::json!([]));

    // A change: whatever the differ decides, the JSON names it and the status matches.
    let out = t.path().join("out.o");
    let o = lp_build()
        .args([
            "diff",
            "--json",
            "--entry-size",
            "__jump_table=16",
            "--output",
        ])
        .arg(&out)
        .arg(&orig)
        .arg(&patched)
        .output()
        .unwrap();
    let j: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    for key in [
        "outcome",
        "changed_functions",
        "new_functions",
        "errors",
        "warnings",
    ] {
        assert!(j.get(key).is_some(), "{key} missing: {}", text(&o));
    }
    match j["outcome"].as_str().unwrap() {
        "patch" => {
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
            assert_eq!(
                j["changed_functions"],
                serde_json::json!(["f"]),
                "{}",
                text(&o)
            );
            assert!(out.exists());
            let rec: serde_json::Value =
                serde_json::from_slice(&std::fs::read(t.path().join("out.o.json")).unwrap())
                    .unwrap();
            assert_eq!(rec["object"], "vmlinux");
        }
        "refused" => {
            assert_eq!(o.status.code(), Some(3), "{}", text(&o));
            let e = &j["errors"][0];
            for key in ["object", "section", "symbol", "message"] {
                assert!(e.get(key).is_some(), "{key} missing: {}", text(&o));
            }
        }
        other => panic!("unexpected outcome {other}: {}", text(&o)),
    }

    // Text output names the changed function too.
    let o = lp_build()
        .arg("diff")
        .arg(&orig)
        .arg(&patched)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(": "),
        "{}",
        text(&o)
    );
}

#[test]
fn diff_bad_inputs() {
    let t = tempfile::tempdir().unwrap();
    let orig = compile(t.path(), "orig", ORIG);
    let o = lp_build()
        .arg("diff")
        .arg(&orig)
        .arg(t.path().join("missing.o"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.o"));
    let junk = t.path().join("junk.o");
    std::fs::write(&junk, "not elf").unwrap();
    let o = lp_build()
        .arg("diff")
        .arg(&orig)
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let o = lp_build()
        .args(["diff", "--object-name", "bad.name"])
        .arg(&orig)
        .arg(&orig)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = lp_build()
        .args(["diff", "--entry-size", "nonsense"])
        .arg(&orig)
        .arg(&orig)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn check_statuses() {
    let t = tempfile::tempdir().unwrap();
    let o = lp_build()
        .arg("check")
        .arg(t.path().join("none.ko"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let junk = t.path().join("junk.ko");
    std::fs::write(&junk, "not elf").unwrap();
    let o = lp_build()
        .args(["check", "--json"])
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["ok"], false);
    assert!(!j["problems"].as_array().unwrap().is_empty());
}

#[test]
fn help_and_version_exit_zero() {
    for a in ["--help", "--version", "diff --help"] {
        let o = lp_build().args(a.split(' ')).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{a}: {}", text(&o));
    }
    let o = lp_build().arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("Exit statuses"));
}

#[test]
fn compiler_wrapper_passes_through() {
    let o = lp_build()
        .args(["__cc", "gcc", "--version"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let direct = Command::new("gcc").arg("--version").output().unwrap();
    assert_eq!(o.stdout, direct.stdout);
    let o = lp_build().arg("__cc").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// A module-shaped object as kbuild links one for a CONFIG_MODVERSIONS kernel: `.modinfo`
/// with `livepatch=Y`, `__versions` (modpost's `struct modversion_info` table) and a call of
/// the exported `printk`.
const MODVERSIONS_KO: &str = r#"
struct modversion_info { unsigned long crc; char name[64 - sizeof(unsigned long)]; };
static const struct modversion_info ____versions[]
__attribute__((used, section("__versions"), aligned(32))) = {
	{ 0x0f3e2d11, "module_layout" },
	{ 0x8a7c1b2d, "printk" },
};
static const char modinfo[] __attribute__((used, section(".modinfo"))) =
	"livepatch=Y\0license=GPL";
extern int printk(const char *, ...);
int lp_f(void) { return printk("x"); }
"#;

#[test]
fn check_compares_versions_with_module_symvers() {
    let t = tempfile::tempdir().unwrap();
    let c = t.path().join("m.c");
    std::fs::write(&c, MODVERSIONS_KO).unwrap();
    let ko = t.path().join("m.ko");
    let st = Command::new("cc")
        .args(["-O2", "-fno-pic", "-mcmodel=kernel", "-c", "-o"])
        .arg(&ko)
        .arg(&c)
        .status()
        .unwrap();
    assert!(st.success());
    let check = |symvers: &str| {
        let s = t.path().join("Module.symvers");
        std::fs::write(&s, symvers).unwrap();
        lp_build()
            .arg("check")
            .arg("--symvers")
            .arg(&s)
            .arg(&ko)
            .output()
            .unwrap()
    };
    let same = "0x0f3e2d11\tmodule_layout\tvmlinux\tEXPORT_SYMBOL\t\n\
                0x8a7c1b2d\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n";
    let o = check(same);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Another build of the kernel: printk's CRC differs.
    let other = "0x0f3e2d11\tmodule_layout\tvmlinux\tEXPORT_SYMBOL\t\n\
                 0x8a7c1b2e\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n";
    let o = check(other);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("__versions: printk: CRC 0x8a7c1b2d")
            && out.contains("0x8a7c1b2e")
            && out.contains("disagrees about version of symbol"),
        "{}",
        text(&o)
    );
    // A kernel without MODVERSIONS (all CRCs zero): __versions is not compared.
    let none = "0x00000000\tmodule_layout\tvmlinux\tEXPORT_SYMBOL\t\n\
                0x00000000\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n";
    let o = check(none);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}
