//! The `diff` and `check` subcommands: the differ and the validator on single files.

use crate::cli::{CheckArgs, DiffArgs};
use crate::exit::{fail_hint, Status};
use crate::fsutil::sha256_hex;
use crate::input::{self, Kind};
use crate::kbuild::{export_crcs, parse_symvers, vmlinux_exports};
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::HashSet;
use std::fs;
use std::path::Path;

/// The alias prefix of an object, unique per object path: `__lp_<8 hex>_`.
pub fn alias_prefix(source_name: &str) -> String {
    format!("__lp_{}_", &sha256_hex(source_name.as_bytes())[..8])
}

/// Reads an input file (bounded, interruptible), as an input error naming it.
pub fn read_input(path: &Path, what: &str, kind: Kind) -> Result<Vec<u8>> {
    input::read_input(
        path,
        what,
        kind,
        "check the path: the file must exist and be readable",
    )
}

/// Reads and parses a `Module.symvers`.
fn read_symvers(path: &Path) -> Result<Vec<crate::kbuild::Export>> {
    let bytes = input::read_input(
        path,
        "Module.symvers",
        Kind::Text,
        "pass the Module.symvers of the kernel's build directory",
    )?;
    Ok(parse_symvers(&String::from_utf8_lossy(&bytes)))
}

/// Reads the symbol table of a parent (vmlinux or a .ko).
pub fn read_parent(path: &Path, is_vmlinux: bool) -> Result<lp_diff::Parent> {
    let kind = if is_vmlinux {
        Kind::Vmlinux
    } else {
        Kind::Object
    };
    let bytes = read_input(path, "parent", kind)?;
    let obj = lp_elf::Object::parse_symbols_only(&bytes).map_err(|e| {
        fail_hint(
            Status::Input,
            format!("parent {}: {e}", path.display()),
            "pass the running kernel's unstripped vmlinux, or the module's .ko, with --parent",
        )
    })?;
    Ok(lp_diff::Parent::from_object(&obj, is_vmlinux))
}

/// Refuses a 64-bit ELF object of another machine (the differ reads x86_64 objects and would
/// otherwise misread, say, aarch64 ones); other malformed files are left to the differ, which
/// names what is wrong.
fn check_machine(bytes: &[u8], path: &Path) -> Result<()> {
    use object::read::Object as _;
    match object::read::File::parse(bytes) {
        Ok(f) if f.is_64() && f.architecture() != object::Architecture::X86_64 => Err(fail_hint(
            Status::Input,
            format!(
                "{}: an object for {:?}; lp-build handles x86_64 objects",
                path.display(),
                f.architecture()
            ),
            "ORIG and PATCHED must be complete relocatable objects (.o) of this architecture, \
             built the same way",
        )),
        _ => Ok(()),
    }
}

/// The outcome name used in JSON.
pub fn outcome_name(o: lp_diff::Outcome) -> &'static str {
    match o {
        lp_diff::Outcome::Patch => "patch",
        lp_diff::Outcome::NoChange => "no-change",
        lp_diff::Outcome::Refused => "refused",
    }
}

/// The exit status of an outcome.
pub fn outcome_status(o: lp_diff::Outcome) -> Status {
    match o {
        lp_diff::Outcome::Patch => Status::Success,
        lp_diff::Outcome::NoChange => Status::NoChange,
        lp_diff::Outcome::Refused => Status::Refused,
    }
}

#[derive(Serialize)]
struct DiffJson<'a> {
    outcome: &'static str,
    object: &'a str,
    source: &'a str,
    changed_functions: &'a [String],
    new_functions: &'a [String],
    errors: &'a [lp_diff::Diagnostic],
    warnings: &'a [lp_diff::Diagnostic],
    output: Option<String>,
}

/// `lp-build diff`.
pub fn diff(args: &DiffArgs) -> Result<Status> {
    if let Some(out) = &args.output {
        refuse_output_over_inputs(out, args)?;
    }
    let orig = read_input(&args.orig, "ORIG object", Kind::Object)?;
    let patched = read_input(&args.patched, "PATCHED object", Kind::Object)?;
    check_machine(&orig, &args.orig)?;
    check_machine(&patched, &args.patched)?;
    let object_name = match (&args.object_name, &args.parent) {
        (Some(n), _) => lp_elf::klp::module_objname(n),
        (None, Some(p)) if p.extension().is_some_and(|e| e == "ko") => lp_elf::klp::module_objname(
            &p.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
        _ => "vmlinux".to_string(),
    };
    if object_name.is_empty()
        || object_name.len() > lp_elf::klp::KLP_OBJNAME_MAX
        || !object_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(fail_hint(
            Status::Usage,
            format!("--object-name `{object_name}` is not vmlinux or a module name"),
            "use `vmlinux` or the module's name (1 to 55 characters of [A-Za-z0-9_-])",
        ));
    }
    let parent = match &args.parent {
        Some(p) => Some(read_parent(p, object_name == "vmlinux")?),
        None => None,
    };
    let exports = match &args.symvers {
        Some(s) => Some(vmlinux_exports(&read_symvers(s)?)),
        None => None,
    };
    let source_name = args.patched.to_string_lossy().into_owned();
    let opts = lp_diff::DiffOptions {
        object_name: object_name.clone(),
        source_name: source_name.clone(),
        entry_sizes: args.entry_sizes.iter().cloned().collect(),
        parent,
        exports,
        objtool_on_module: args.objtool_on_module,
        objtool_mcount: args.objtool_mcount,
        alias_prefix: alias_prefix(&source_name),
        explain: args.explain,
    };
    let r = lp_diff::diff(&orig, &patched, &opts).map_err(|e| {
        // Name the file that is wrong (both for a mismatch).
        let named = match &e {
            lp_diff::DiffError::Elf { which: "orig", .. }
            | lp_diff::DiffError::Relocations { which: "orig", .. } => {
                args.orig.display().to_string()
            }
            lp_diff::DiffError::Mismatch(_) => {
                format!("{} and {}", args.orig.display(), source_name)
            }
            _ => source_name.clone(),
        };
        fail_hint(Status::Input, format!("{named}: {e}"), diff_error_hint(&e))
    })?;
    crate::signals::check()?;
    let mut written = None;
    if let (Some(out), Some(bytes)) = (&args.output, &r.output) {
        let rec = serde_json::to_vec_pretty(&r.record).context("encoding the patch record")?;
        write_patch_object(out, bytes, &rec)?;
        written = Some(out.display().to_string());
    }
    if args.json {
        let j = DiffJson {
            outcome: outcome_name(r.outcome),
            object: &object_name,
            source: &source_name,
            changed_functions: &r.changed_functions,
            new_functions: &r.new_functions,
            errors: &r.errors,
            warnings: &r.warnings,
            output: written,
        };
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        print_diff_text(&source_name, &r);
        for (f, why) in &r.explanations {
            println!("  why {f} changed:\n{why}");
        }
        if let Some(w) = written {
            println!("  wrote {w} and {w}.json");
        }
    }
    Ok(outcome_status(r.outcome))
}

/// What to do about an error of the differ.
pub fn diff_error_hint(e: &lp_diff::DiffError) -> &'static str {
    if e.is_llvm_bitcode() {
        return crate::pipeline::LLVM_BITCODE_HINT;
    }
    match e {
        lp_diff::DiffError::EntrySize { .. } => {
            "pass --entry-size SECTION=BYTES with the sizeof of the section's entry struct in the \
             kernel the objects were built for (lp-build --patch measures it with a probe module)"
        }
        lp_diff::DiffError::Relocations { .. } => {
            "the object is corrupt or was not made by the kernel's compiler and assembler: \
             rebuild it"
        }
        _ => {
            "ORIG and PATCHED must be complete relocatable objects (.o) of this architecture, \
             built the same way"
        }
    }
}

/// True when `a` and `b` name the same existing file (same device and inode).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// `diff -o OUT` must not write over one of its inputs (OUT or OUT.json).
fn refuse_output_over_inputs(out: &Path, args: &DiffArgs) -> Result<()> {
    let json = json_path(out);
    let inputs = [
        Some(args.orig.as_path()),
        Some(args.patched.as_path()),
        args.parent.as_deref(),
        args.symvers.as_deref(),
    ];
    for input in inputs.into_iter().flatten() {
        for o in [out, json.as_path()] {
            if same_file(o, input) {
                return Err(fail_hint(
                    Status::Usage,
                    format!(
                        "--output {} would overwrite the input {}",
                        o.display(),
                        input.display()
                    ),
                    "write the patch object to another path with -o/--output",
                ));
            }
        }
    }
    Ok(())
}

fn json_path(out: &Path) -> std::path::PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(".json");
    p.into()
}

/// Test-only hook: with `LP_BUILD_TEST_PAUSE_OUTPUT=FILE`, `diff -o` creates FILE after writing
/// the object and before its record, and waits (at most 60 s) until FILE is removed, so a test
/// can run a second `diff` to the same output in that window.
pub const ENV_TEST_PAUSE_OUTPUT: &str = "LP_BUILD_TEST_PAUSE_OUTPUT";

/// Writes the patch object and its record: each atomically (a temporary file renamed over the
/// output, so a kill or a full disk leaves the previous file or none, never a truncated one),
/// and both under a lock on the output's directory, so two runs to one output cannot leave one
/// run's object beside the other's record.
fn write_patch_object(out: &Path, object: &[u8], record: &[u8]) -> Result<()> {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    // The directory may be new (write_output creates it): lock it once it exists.
    let _ = fs::create_dir_all(&dir);
    let _lock = crate::fsutil::lock_dir(&dir)?;
    crate::pipeline::write_output(out, object, DIFF_OUTPUT_HINT)?;
    if let Some(marker) = std::env::var_os(ENV_TEST_PAUSE_OUTPUT) {
        let _ = fs::write(&marker, b"");
        let start = std::time::Instant::now();
        while Path::new(&marker).exists() && start.elapsed().as_secs() < 60 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    crate::pipeline::write_output(&json_path(out), record, DIFF_OUTPUT_HINT)
}

const DIFF_OUTPUT_HINT: &str =
    "pass a writable path on a file system with free space with -o/--output";

/// Prints one object's diff result as text.
pub fn print_diff_text(source: &str, r: &lp_diff::DiffResult) {
    let verdict = match r.outcome {
        lp_diff::Outcome::Patch => "patch",
        lp_diff::Outcome::NoChange => "no functional change",
        lp_diff::Outcome::Refused => "REFUSED",
    };
    println!("{source}: {verdict}");
    for f in &r.changed_functions {
        println!("  changed function: {f}");
    }
    for f in &r.new_functions {
        println!("  new function:     {f}");
    }
    for e in &r.errors {
        println!("  error: {e}");
    }
    for w in &r.warnings {
        println!("  warning: {w}");
    }
}

#[derive(Serialize)]
struct ProblemJson<'a> {
    section: &'a str,
    symbol: &'a str,
    message: &'a str,
}

/// `lp-build check`.
pub fn check(args: &CheckArgs) -> Result<Status> {
    let ko = read_input(&args.module, "module", Kind::Object)?;
    // What is not a module at all is a bad input (as for `diff`), not a broken rule.
    if let Err(e) = lp_elf::Object::parse(&ko) {
        return Err(fail_hint(
            Status::Input,
            format!("module {}: {e}", args.module.display()),
            "pass a kernel module (.ko) file",
        ));
    }
    let (exports, crcs) = match &args.symvers {
        Some(s) => {
            let list = read_symvers(s)?;
            let crcs = export_crcs(&list);
            (
                Some(
                    list.into_iter()
                        .map(|e| e.symbol)
                        .collect::<HashSet<String>>(),
                ),
                Some(crcs),
            )
        }
        None => (None, None),
    };
    let (symbol_counts, vermagic) = match &args.vmlinux {
        Some(v) => {
            let bytes = read_input(v, "vmlinux", Kind::Vmlinux)?;
            let obj = lp_elf::Object::parse_symbols_only(&bytes).map_err(|e| {
                fail_hint(
                    Status::Input,
                    format!("vmlinux {}: {e}", v.display()),
                    "pass the kernel's unstripped vmlinux with --vmlinux",
                )
            })?;
            let counts = lp_diff::Parent::from_object(&obj, true).name_counts();
            let vermagic = crate::vermagic::kernel_vermagic(&bytes).ok_or_else(|| {
                fail_hint(
                    Status::Input,
                    format!("vmlinux {}: no `vermagic` symbol", v.display()),
                    "pass the kernel's unstripped vmlinux (built with CONFIG_MODULES)",
                )
            })?;
            (
                Some(std::collections::BTreeMap::from([(
                    "vmlinux".to_string(),
                    counts,
                )])),
                Some(vermagic),
            )
        }
        None => (None, None),
    };
    let ctx = lp_emit::ValidateContext {
        exports,
        symbol_counts,
        crcs,
        vermagic,
        // Without a configuration, the module shows what its kernel requires (`.orc_header`,
        // `.call_sites`).
        code_tables: match &args.config {
            Some(c) => Some(crate::pipeline::code_tables(
                &crate::tree::read_config(c)?.1,
            )),
            None => None,
        },
    };
    let problems = lp_emit::validate(&ko, &ctx);
    crate::signals::check()?;
    let name = args.module.display().to_string();
    if args.json {
        let list: Vec<ProblemJson> = problems
            .iter()
            .map(|p| ProblemJson {
                section: &p.section,
                symbol: &p.symbol,
                message: &p.message,
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "module": name,
                "ok": problems.is_empty(),
                "problems": list,
            }))?
        );
    } else if problems.is_empty() {
        println!("{name}: ok");
    } else {
        println!("{name}: {} problem(s)", problems.len());
        for p in &problems {
            println!("  {p}");
        }
    }
    Ok(if problems.is_empty() {
        Status::Success
    } else {
        Status::Refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_prefixes_differ_per_object() {
        let a = alias_prefix("fs/proc/cmdline.o");
        assert!(
            a.starts_with("__lp_") && a.ends_with('_') && a.len() == 14,
            "{a}"
        );
        assert_ne!(a, alias_prefix("fs/proc/meminfo.o"));
    }
}

/// `--show-first-changed`: the first changed instruction of `func`, from the differ's
/// explanation (a diff of the orig and patched instruction listings, in instruction order;
/// relocation targets shown by name). klp-build prints the address of that instruction; the
/// differ's listings carry no offsets, so lp-build prints the instruction itself.
pub fn first_changed(object: &str, func: &str, explanation: &str) -> String {
    let mut orig = None;
    let mut patched = None;
    for line in explanation.lines() {
        let line = line.trim_start();
        if let Some(i) = line.strip_prefix("- ") {
            orig.get_or_insert(i.trim());
        } else if let Some(i) = line.strip_prefix("+ ") {
            patched.get_or_insert(i.trim());
        }
        if orig.is_some() && patched.is_some() {
            break;
        }
    }
    match (orig, patched) {
        (Some(o), Some(p)) => {
            format!("{object}: {func}: first changed instruction: {o} (patched: {p})")
        }
        (Some(o), None) => format!("{object}: {func}: first changed instruction: {o} (removed)"),
        (None, Some(p)) => format!("{object}: {func}: first changed instruction: {p} (added)"),
        (None, None) => format!(
            "{object}: {func}: the instructions are the same; relocation targets or data differ"
        ),
    }
}

#[cfg(test)]
mod first_changed_tests {
    use super::first_changed;

    #[test]
    fn first_changed_instruction() {
        let why = "  - mov $0x5,%esi\n  + mov $0x6,%esi\n  - call <f>\n";
        assert_eq!(
            first_changed("fs/a.o", "f", why),
            "fs/a.o: f: first changed instruction: mov $0x5,%esi (patched: mov $0x6,%esi)"
        );
        assert!(first_changed("a.o", "f", "  + ret\n").ends_with("ret (added)"));
        assert!(first_changed("a.o", "f", "  - ret\n").ends_with("ret (removed)"));
        assert!(first_changed(
            "a.o",
            "f",
            "  (same instructions; relocation targets or data differ)\n"
        )
        .contains("the instructions are the same"));
    }
}
