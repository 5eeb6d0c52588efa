//! C fixtures: `test-kernels/fixtures/<case>/{orig,patched}.c`, compiled with kernel-like flags,
//! with the expectation written in `//#` lines of `patched.c`:
//! `expect: patch|no-change|refused`, `expect-changed:`/`expect-new:` (comma lists, `-` for
//! none), `expect-error:` (words every one of which must appear in one error, with symbol and
//! section), `expect-klp:` (a symbol reached through a klp relocation), `expect-local:` (a
//! symbol defined locally in the patch object), `expect-defined:` (defined in the patch object),
//! `expect-section: NAME SIZE` (a section of the patch object), `expect-refusals:` (the kinds of
//! the refusal catalogue, `lp_diff::refusal::Kind`, of every error: a sorted comma list, which
//! every refused fixture must give); `object:` (the livepatch object
//! name, default vmlinux) and `entry-size: SECTION=BYTES` are options of the diff;
//! `expect-table-refs: SECTION`: every reference from code into that special table lands on the
//! start of an entry anchored in the same code section.

use lp_diff::{diff, DiffOptions, Outcome};
use std::path::{Path, PathBuf};
use std::process::Command;

const KERNEL_FLAGS: &[&str] = &[
    "-O2",
    "-fno-pic",
    "-mcmodel=kernel",
    "-mno-red-zone",
    "-ffunction-sections",
    "-fdata-sections",
    "-pg",
    "-mfentry",
    "-mrecord-mcount",
    // Return thunks and retpolines, as distribution kernels (CONFIG_MITIGATION_RETHUNK).
    "-mfunction-return=thunk-extern",
    "-mindirect-branch=thunk-extern",
    "-fno-asynchronous-unwind-tables",
    "-fno-stack-protector",
    "-fno-common",
];

/// Compiles `src` as `<dir>/<name>.c` from inside `dir`, so `__FILE__` is the same for the orig
/// and the patched version, as in a kernel tree.
fn compile(src: &Path, dir: &Path, name: &str, out: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let file = format!("{name}.c");
    std::fs::copy(src, dir.join(&file)).unwrap();
    let compiler = cc::Build::new()
        .cargo_metadata(false)
        .opt_level(2)
        .target("x86_64-unknown-linux-gnu")
        .host("x86_64-unknown-linux-gnu")
        .get_compiler();
    let status = Command::new(compiler.path())
        .args(KERNEL_FLAGS)
        .arg("-I")
        .arg(lp_testutil::workspace_root().join("hooks-macros"))
        .arg("-c")
        .arg(&file)
        .current_dir(dir)
        .arg("-o")
        .arg(out)
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "compiling {}", src.display());
}

fn list(v: &str) -> Vec<String> {
    let v = v.trim();
    if v == "-" {
        return Vec::new();
    }
    let mut l: Vec<String> = v.split(',').map(|s| s.trim().to_string()).collect();
    l.sort();
    l
}

fn check_case(dir: &Path) -> Result<(), String> {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let tmp = tempfile::tempdir().unwrap();
    let (o, p) = (tmp.path().join("orig.o"), tmp.path().join("patched.o"));
    compile(&dir.join("orig.c"), &tmp.path().join("o"), &name, &o);
    compile(&dir.join("patched.c"), &tmp.path().join("p"), &name, &p);
    let src = std::fs::read_to_string(dir.join("patched.c")).unwrap();
    let directive = |key: &str| {
        src.lines()
            .filter_map(|l| l.strip_prefix("//# "))
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.trim().to_string())
            .collect::<Vec<_>>()
    };
    let object_name = directive("object")
        .pop()
        .unwrap_or_else(|| "vmlinux".to_string());
    let entry_sizes = directive("entry-size")
        .iter()
        .filter_map(|v| {
            let (k, n) = v.split_once('=')?;
            Some((k.to_string(), n.parse().ok()?))
        })
        .collect();
    let opts = DiffOptions {
        object_name: object_name.clone(),
        entry_sizes,
        source_name: format!("{name}.o"),
        alias_prefix: "__lp_fx_".into(),
        ..Default::default()
    };
    let r = diff(
        &std::fs::read(&o).unwrap(),
        &std::fs::read(&p).unwrap(),
        &opts,
    )
    .map_err(|e| format!("{name}: {e}"))?;
    let out = r.output.as_ref().map(|b| lp_elf::Object::parse(b).unwrap());
    let errors: Vec<String> = r.errors.iter().map(|e| e.to_string()).collect();
    let mut problems = Vec::new();
    for line in src.lines().filter_map(|l| l.strip_prefix("//# ")) {
        let (key, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.trim();
        match key {
            "expect" => {
                let got = match r.outcome {
                    Outcome::Patch => "patch",
                    Outcome::NoChange => "no-change",
                    Outcome::Refused => "refused",
                };
                if got != value {
                    problems.push(format!(
                        "outcome {got}, expected {value}; errors: {errors:?}"
                    ));
                }
            }
            "expect-changed" if r.changed_functions != list(value) => problems.push(format!(
                "changed {:?}, expected {value}",
                r.changed_functions
            )),
            "expect-new" if r.new_functions != list(value) => {
                problems.push(format!("new {:?}, expected {value}", r.new_functions))
            }
            "expect-error" => {
                let words: Vec<&str> = value.split_whitespace().collect();
                if !r.errors.iter().any(|e| {
                    let text = e.to_string();
                    words.iter().all(|w| text.contains(w))
                        && !e.section.is_empty()
                        && e.object == format!("{name}.o")
                }) {
                    problems.push(format!("no error mentions {words:?}: {errors:?}"));
                }
            }
            "expect-refusals" => {
                let mut got: Vec<String> = r
                    .errors
                    .iter()
                    .map(|e| e.kind.map_or("(none)", |k| k.name()).to_string())
                    .collect();
                got.sort();
                if got != list(value) {
                    problems.push(format!("refusal kinds {got:?}, expected {value}"));
                }
                for k in list(value) {
                    if lp_diff::refusal::Kind::from_name(&k).is_none() {
                        problems.push(format!("`{k}` is not a kind of the refusal catalogue"));
                    }
                }
            }
            "expect-klp"
                if !r.record.klp_relocs.iter().any(|k| {
                    lp_elf::klp::parse_klp_sym(&k.symbol).is_some_and(|(obj, sym, _)| {
                        obj == object_name && sym.split('.').next() == Some(value)
                    })
                }) =>
            {
                problems.push(format!(
                    "no klp relocation to {value}: {:?}",
                    r.record.klp_relocs
                ));
            }
            "expect-local" | "expect-defined" => {
                let Some(out) = &out else {
                    problems.push("no output object".into());
                    continue;
                };
                let found = out
                    .symbols
                    .iter()
                    .find(|s| s.name_str() == value && !s.is_undef());
                match found {
                    None => problems.push(format!("{value} not defined in the patch object")),
                    Some(s) if key == "expect-local" && !s.is_local() => {
                        problems.push(format!("{value} is not local in the patch object"))
                    }
                    _ => {}
                }
            }
            "expect-func" if !r.record.functions.iter().any(|f| f.old_name == value) => {
                problems.push(format!("no klp_func record for {value}"));
            }
            "expect-callbacks" => {
                // kind:function in order, as the record lists them (by kind, then declaration).
                let want: Vec<&str> = value.split(',').map(str::trim).collect();
                let out_obj = out.as_ref();
                let got: Vec<String> = r
                    .record
                    .callbacks
                    .iter()
                    .map(|cb| {
                        // The alias points at the callback; find the function at that address.
                        let f = out_obj
                            .and_then(|o| {
                                let a = o.symbols.iter().find(|s| s.name_str() == cb.symbol)?;
                                o.symbols
                                    .iter()
                                    .find(|s| {
                                        s.is_func()
                                            && s.section == a.section
                                            && s.value == a.value
                                            && s.name_str() != cb.symbol
                                    })
                                    .map(|s| s.name_str().into_owned())
                            })
                            .unwrap_or_default();
                        format!("{}:{f}", cb.kind)
                    })
                    .collect();
                if got != want {
                    problems.push(format!("callbacks {got:?}, expected {want:?}"));
                }
            }
            "expect-states" => {
                let got: Vec<String> = r
                    .record
                    .states
                    .iter()
                    .map(|st| format!("{}:{}", st.id, st.version))
                    .collect();
                if got.join(",") != value {
                    problems.push(format!("states {got:?}, expected {value}"));
                }
            }
            "expect-warning" if !r.warnings.iter().any(|w| w.to_string().contains(value)) => {
                problems.push(format!("no warning mentions `{value}`: {:?}", r.warnings));
            }
            "expect-section" => {
                let (sec, size) = value.split_once(' ').unwrap_or((value, "0"));
                let size: u64 = size.trim().parse().unwrap_or(0);
                let got = out
                    .as_ref()
                    .and_then(|o| o.section_by_name(sec).map(|i| o.sections[i].size()));
                if got != Some(size) {
                    problems.push(format!("section {sec}: size {got:?}, expected {size}"));
                }
            }
            "expect-table-refs" => {
                // Every reference from code into the table (a `lea` of its own entry, 7.x's x86
                // WARN) lands on the start of an entry anchored in that same code section.
                let Some(out) = &out else {
                    problems.push("no output object".into());
                    continue;
                };
                let size = opts.entry_sizes.get(value).copied().unwrap_or(1);
                let Some(tab) = out.section_by_name(value) else {
                    problems.push(format!("no {value} in the patch object"));
                    continue;
                };
                let map = out.reloc_section_map();
                let anchor_of = |entry: u64| {
                    out.relocs_for(&map, tab)
                        .iter()
                        .find(|r| r.offset == entry)
                        .and_then(|r| out.symbols[r.sym as usize].section_index())
                };
                let mut refs = 0;
                for (sec, s) in out.sections.iter().enumerate() {
                    if !s.is_exec() {
                        continue;
                    }
                    for r in out.relocs_for(&map, sec) {
                        if out.symbols[r.sym as usize].section_index() != Some(tab) {
                            continue;
                        }
                        refs += 1;
                        // PC32 from the end of a `lea`'s displacement.
                        let entry = r.addend + 4;
                        if entry < 0 || !(entry as u64).is_multiple_of(size) {
                            problems.push(format!("{value}+{entry:#x}: not an entry start"));
                        } else if anchor_of(entry as u64) != Some(sec) {
                            problems.push(format!(
                                "{value}+{entry:#x}, referenced from {}, is anchored elsewhere",
                                s.name_str()
                            ));
                        }
                    }
                }
                if refs == 0 {
                    problems.push(format!("no code refers to {value}"));
                }
            }
            _ => {}
        }
    }
    if r.outcome == Outcome::Refused && directive("expect-refusals").is_empty() {
        problems.push("a refused fixture must name its refusals (`//# expect-refusals:`)".into());
    }
    // Every patch object parses with goblin and its aliases point at functions.
    if let Some(bytes) = &r.output {
        goblin::elf::Elf::parse(bytes).map_err(|e| format!("{name}: goblin: {e}"))?;
        let out = out.as_ref().unwrap();
        // Every klp place, in code and in data, carries the link-time stand-in
        // (docs/CONTRACTS.md).
        for k in &r.record.klp_relocs {
            let Some(sec) = out.section_by_name(&k.section) else {
                problems.push(format!("klp relocation in missing section {}", k.section));
                continue;
            };
            let map = out.reloc_section_map();
            let stand_in = out.relocs_for(&map, sec).iter().any(|rel| {
                rel.offset == k.offset
                    && out.symbols[rel.sym as usize].name_str() == "__lp_klp_placeholder"
            });
            if !stand_in {
                problems.push(format!(
                    "no stand-in relocation at {}+{:#x}",
                    k.section, k.offset
                ));
            }
        }
        // The placeholder returns through the return thunk, as the fixture's code does: objtool
        // must not take calls to it for dead ends.
        if let Some(ph) = out.section_by_name(".lp.klp_placeholder") {
            let map = out.reloc_section_map();
            let code = out.sections[ph].bytes();
            let thunk = out.relocs_for(&map, ph).iter().any(|rel| {
                rel.offset == 5 && out.symbols[rel.sym as usize].name_str() == "__x86_return_thunk"
            });
            if code.get(4) != Some(&0xe9) || !thunk {
                problems.push(format!(
                    "the placeholder does not return through __x86_return_thunk: {code:02x?}"
                ));
            }
        }
        for f in &r.record.functions {
            let alias = out.symbols.iter().find(|s| s.name_str() == f.new_symbol);
            if !alias.is_some_and(|a| a.is_func() && !a.is_local() && !a.is_undef()) {
                problems.push(format!(
                    "alias {} missing or not a global function",
                    f.new_symbol
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}:\n    {}", problems.join("\n    ")))
    }
}

fn fixture_dirs() -> Vec<PathBuf> {
    let root = lp_testutil::workspace_root().join("test-kernels/fixtures");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("patched.c").is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn c_fixtures_meet_their_expectations() {
    let dirs = fixture_dirs();
    assert!(dirs.len() >= 10, "fixtures found: {}", dirs.len());
    let failures: Vec<String> = dirs.iter().filter_map(|d| check_case(d).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
