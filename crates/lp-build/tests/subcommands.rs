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
    // Not a module at all: a bad input, as for `diff` (not a broken loader rule).
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("  hint: "),
        "{}",
        text(&o)
    );
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
char this_module[64] __attribute__((section(".gnu.linkonce.this_module"))) = { 1 };
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

/// `--entry-size` arguments for a corpus case (with the one correction of lp-diff's corpus
/// test: static-call-pr-1315's `.altinstructions` holds 12-byte entries, not the default 13).
fn entry_size_args(case: &lp_testutil::Case) -> Vec<String> {
    let mut sizes = case.entry_sizes();
    if case.name == "static-call-pr-1315" {
        sizes.insert(".altinstructions".into(), 12);
    }
    sizes
        .iter()
        .flat_map(|(k, v)| ["--entry-size".to_string(), format!("{k}={v}")])
        .collect()
}

/// The same inputs give the same bytes: `lp-build diff -o` on every corpus pair, three times
/// (three processes), writes the same object and the same record each time.
#[test]
fn diff_output_is_reproducible_over_the_corpus() {
    let t = tempfile::tempdir().unwrap();
    let mut differ = Vec::new();
    let mut patches = 0;
    for case in lp_testutil::cases() {
        let mut runs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for n in 0..3 {
            let out = t.path().join(format!("{}.{n}.o", case.name));
            let o = lp_build()
                .arg("diff")
                .args(entry_size_args(&case))
                .arg("-o")
                .arg(&out)
                .arg(&case.orig)
                .arg(&case.patched)
                .output()
                .unwrap();
            if o.status.code() != Some(0) {
                break; // no patch object: nothing to compare
            }
            let json = t.path().join(format!("{}.{n}.o.json", case.name));
            runs.push((std::fs::read(&out).unwrap(), std::fs::read(&json).unwrap()));
        }
        if runs.is_empty() {
            continue;
        }
        patches += 1;
        if runs.iter().any(|r| r != &runs[0]) {
            differ.push(case.name.clone());
        }
    }
    assert!(patches >= 39, "only {patches} cases gave a patch object");
    assert!(
        differ.is_empty(),
        "{} cases give different bytes over three runs: {}",
        differ.len(),
        differ.join(", ")
    );
}

#[test]
fn diff_output_over_an_input_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let orig = compile(t.path(), "orig", ORIG);
    let patched = compile(t.path(), "patched", &ORIG.replace("x * 3", "x * 5"));
    let before = std::fs::read(&orig).unwrap();
    // The same file, and the same file through another name (a hard link).
    let link = t.path().join("link.o");
    std::fs::hard_link(&orig, &link).unwrap();
    for out in [&orig, &link] {
        let o = lp_build()
            .arg("diff")
            .arg("-o")
            .arg(out)
            .arg(&orig)
            .arg(&patched)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("would overwrite the input") && err.contains("  hint: "),
            "{}",
            text(&o)
        );
        assert_eq!(std::fs::read(&orig).unwrap(), before, "the input changed");
    }
}

#[test]
fn diff_output_replaces_the_file_instead_of_writing_into_it() {
    let t = tempfile::tempdir().unwrap();
    let orig = compile(t.path(), "orig", ORIG);
    let patched = compile(t.path(), "patched", &ORIG.replace("x * 3", "x * 5"));
    // OUT is another name of a file the user keeps: writing in place would change it.
    let kept = t.path().join("kept");
    std::fs::write(&kept, b"previous").unwrap();
    let out = t.path().join("out.o");
    std::fs::hard_link(&kept, &out).unwrap();
    let o = lp_build()
        .arg("diff")
        .arg("-o")
        .arg(&out)
        .arg(&orig)
        .arg(&patched)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(std::fs::read(&kept).unwrap(), b"previous");
    assert!(std::fs::read(&out).unwrap().starts_with(b"\x7fELF"));

    // A full disk: an error with a hint, the previous output intact, no temporary file left.
    let before = std::fs::read(&out).unwrap();
    let o = lp_build()
        .env("LP_BUILD_TEST_FAIL_WRITE", "ENOSPC")
        .arg("diff")
        .arg("-o")
        .arg(&out)
        .arg(&orig)
        .arg(compile(t.path(), "other", &ORIG.replace("x * 3", "x * 7")))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("  hint: "),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(&out).unwrap(), before);
    let stray: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

/// Two `diff` runs to one output: the object and the record left behind come from one run.
/// The first run stops between its object and its record (test hook) while the second runs.
#[test]
fn two_diffs_to_one_output_do_not_mix() {
    let t = tempfile::tempdir().unwrap();
    let orig = compile(t.path(), "orig", ORIG);
    let p1 = compile(t.path(), "p1", &ORIG.replace("x * 3", "x * 5"));
    let p2 = compile(t.path(), "p2", &ORIG.replace("ext(x) + 1", "ext(x) + 9"));
    let reference = |p: &Path, name: &str| {
        let out = t.path().join(name);
        let o = lp_build()
            .arg("diff")
            .arg("-o")
            .arg(&out)
            .arg(&orig)
            .arg(p)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let json = t.path().join(format!("{name}.json"));
        (std::fs::read(&out).unwrap(), std::fs::read(json).unwrap())
    };
    let r1 = reference(&p1, "r1.o");
    let r2 = reference(&p2, "r2.o");
    assert_ne!(r1, r2);

    let out = t.path().join("out.o");
    let marker = t.path().join("paused");
    let mut first = lp_build()
        .env("LP_BUILD_TEST_PAUSE_OUTPUT", &marker)
        .arg("diff")
        .arg("-o")
        .arg(&out)
        .arg(&orig)
        .arg(&p1)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !marker.exists() {
        assert!(start.elapsed().as_secs() < 30, "the first run never paused");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut second = lp_build()
        .arg("diff")
        .arg("-o")
        .arg(&out)
        .arg(&orig)
        .arg(&p2)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    std::fs::remove_file(&marker).unwrap();
    assert!(first.wait().unwrap().success());
    assert!(second.wait().unwrap().success());
    let got = (
        std::fs::read(&out).unwrap(),
        std::fs::read(t.path().join("out.o.json")).unwrap(),
    );
    assert!(
        got == r1 || got == r2,
        "the object and its record come from different runs"
    );
}

fn corpus_case(name: &str) -> lp_testutil::Case {
    lp_testutil::cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap()
}

/// A real corpus pair with one field made wrong; `diff` on it.
fn diff_corpus_edited(name: &str, edit: impl Fn(&mut Vec<u8>), extra: &[&str]) -> Output {
    let case = corpus_case(name);
    let t = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(&case.patched).unwrap();
    edit(&mut bytes);
    let patched = t.path().join("patched.o");
    std::fs::write(&patched, &bytes).unwrap();
    let mut sizes = entry_size_args(&case);
    sizes.extend(extra.iter().map(|s| s.to_string()));
    lp_build()
        .arg("diff")
        .args(sizes)
        .arg("-o")
        .arg(t.path().join("out.o"))
        .arg(&case.orig)
        .arg(&patched)
        .output()
        .unwrap()
}

fn shdr_offset(bytes: &[u8], name: &str) -> usize {
    let obj = lp_elf::Object::parse(bytes).unwrap();
    let i = obj.section_by_name(name).unwrap();
    let shoff = u64::from_le_bytes(bytes[0x28..0x30].try_into().unwrap()) as usize;
    shoff + i * 64
}

#[test]
fn diff_refuses_malformed_relocation_sections() {
    // sh_info out of range: the function's calls would be left unrelocated.
    let o = diff_corpus_edited(
        "ASSERT_RTNL-detect",
        |b| {
            let at = shdr_offset(b, ".rela.text.__dev_get_by_flags") + 44;
            b[at..at + 4].copy_from_slice(&60_000u32.to_le_bytes());
        },
        &[],
    );
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(".rela.text.__dev_get_by_flags") && err.contains("  hint: "),
        "{}",
        text(&o)
    );
    // An unknown relocation type.
    let o = diff_corpus_edited(
        "ASSERT_RTNL-detect",
        |b| {
            let sh = shdr_offset(b, ".rela.text.__dev_get_by_flags");
            let off = u64::from_le_bytes(b[sh + 24..sh + 32].try_into().unwrap()) as usize;
            b[off + 8..off + 12].copy_from_slice(&200u32.to_le_bytes());
        },
        &[],
    );
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("type 200"),
        "{}",
        text(&o)
    );
}

#[test]
fn diff_refuses_a_wrong_entry_size() {
    // Cases whose patch object carries entries of the table.
    let jumps = corpus_case("data-read-mostly").entry_sizes()["__jump_table"];
    let wrong_jump = format!("__jump_table={}", if jumps == 16 { 24 } else { 16 });
    for (case, wrong) in [
        ("data-read-mostly", wrong_jump.as_str()),
        ("data-read-mostly", "__bug_table=16"),
        ("ASSERT_RTNL-detect", ".orc_unwind=12"),
    ] {
        let o = diff_corpus_edited(case, |_| {}, &["--entry-size", wrong]);
        assert_eq!(o.status.code(), Some(5), "{wrong}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("  hint: pass --entry-size"),
            "{wrong}: {}",
            text(&o)
        );
    }
}

#[test]
fn diff_and_check_reads_are_bounded() {
    let t = tempfile::tempdir().unwrap();
    let orig = compile(t.path(), "orig", ORIG);
    let o = lp_build()
        .arg("diff")
        .arg(&orig)
        .arg("/dev/zero")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("limit of 2048 MiB") && err.contains("  hint: "),
        "{}",
        text(&o)
    );
    let o = lp_build().args(["check", "/dev/zero"]).output().unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("limit of"),
        "{}",
        text(&o)
    );
}

#[test]
fn diff_reading_a_fifo_stops_at_sigterm() {
    let t = tempfile::tempdir().unwrap();
    let orig = compile(t.path(), "orig", ORIG);
    let fifo = t.path().join("fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let child = lp_build()
        .arg("diff")
        .arg(&orig)
        .arg(&fifo)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: a signal to the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = std::time::Instant::now();
    let o = child.wait_with_output().unwrap();
    assert!(start.elapsed().as_secs() < 10);
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("  hint: "),
        "{}",
        text(&o)
    );
}

/// An object without a symbol table (`as` of nothing, then `strip --strip-all`: sections but no
/// symbols) is not a compiled object: a bad input, not "no functional change".
#[test]
fn diff_of_objects_without_symbols_is_a_bad_input() {
    let t = tempfile::tempdir().unwrap();
    let s = t.path().join("e.s");
    std::fs::write(&s, "").unwrap();
    let o = t.path().join("e.o");
    assert!(Command::new("as")
        .arg(&s)
        .arg("-o")
        .arg(&o)
        .status()
        .unwrap()
        .success());
    assert!(Command::new("strip")
        .arg("--strip-all")
        .arg(&o)
        .status()
        .unwrap()
        .success());
    let out = lp_build().arg("diff").arg(&o).arg(&o).output().unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no symbol table") && err.contains("  hint: "),
        "{}",
        text(&out)
    );
}

/// Two objects of different source files: whatever the differ decides, it warns.
#[test]
fn diff_of_unrelated_objects_warns() {
    let a = corpus_case("ASSERT_RTNL-detect");
    let b = corpus_case("meminfo-string");
    let o = lp_build()
        .arg("diff")
        .args(entry_size_args(&a))
        .arg(&a.orig)
        .arg(&b.orig)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("warning:")
            && String::from_utf8_lossy(&o.stdout).contains("look unrelated"),
        "{}",
        text(&o)
    );
}
