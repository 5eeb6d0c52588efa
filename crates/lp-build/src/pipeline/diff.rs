//! Phase 5 helpers: the driver's own refusal after the differ (ambiguous ftrace sites) and
//! the test hook that pauses the diff phase.

use super::*;

/// Refuses vmlinux functions whose kallsyms range in the running kernel holds more than one
/// ftrace call site (see `ftrace_sites`): the kernel may attach the patch to the wrong one.
/// What to do when the build made LLVM bitcode instead of machine code.
pub(crate) const LLVM_BITCODE_HINT: &str =
    "the objects were compiled for clang's link-time optimisation (CONFIG_LTO_CLANG, or -flto in \
     KCFLAGS), which lp-build cannot patch: live-patch a kernel built without LTO \
     (CONFIG_LTO_NONE=y)";

pub(super) fn refuse_ambiguous_ftrace_sites(
    vmlinux: &[u8],
    diffs: &mut [(Pair, String, lp_diff::DiffResult)],
) {
    let needed = diffs
        .iter()
        .any(|d| d.1 == "vmlinux" && d.2.outcome == lp_diff::Outcome::Patch);
    if !needed {
        return;
    }
    let Some(sites) = crate::ftrace_sites::FtraceSites::from_vmlinux(vmlinux) else {
        return;
    };
    for (pair, object, r) in diffs.iter_mut() {
        if object != "vmlinux" || r.outcome != lp_diff::Outcome::Patch {
            continue;
        }
        for f in &r.record.functions {
            if let Some((start, end, n)) = sites.sites_of(&f.old_name, f.old_sympos) {
                if n > 1 {
                    let refusal = lp_diff::refusal::Refusal::AmbiguousFtraceSite {
                        section: format!(".text.{}", f.old_name),
                        symbol: f.old_name.clone(),
                        start,
                        end,
                        sites: n,
                    };
                    r.errors.push(refusal.diagnostic(&pair.rel));
                }
            }
        }
        if !r.errors.is_empty() {
            r.outcome = lp_diff::Outcome::Refused;
            r.output = None;
        }
    }
}

/// Test-only hook: with `LP_BUILD_TEST_PAUSE_DIFF=FILE`, the diff phase creates FILE and waits
/// (at most 60 s) for SIGINT/SIGTERM, so tests can interrupt the run in that phase.
pub const ENV_TEST_PAUSE_DIFF: &str = "LP_BUILD_TEST_PAUSE_DIFF";

pub(super) fn test_pause_diff() {
    if let Some(marker) = std::env::var_os(ENV_TEST_PAUSE_DIFF) {
        let _ = fs::write(&marker, b"");
        let start = Instant::now();
        while !signals::interrupted() && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What the running kernel tells the differ and the validator: its exports (with CRCs) and the
/// symbol tables of vmlinux and of every module the patch changes (the parents).
pub(super) struct KernelSymbols {
    /// Symbols vmlinux exports.
    pub(super) exports: HashSet<String>,
    /// Every exported symbol (vmlinux and modules).
    pub(super) all_exports: HashSet<String>,
    /// Export CRCs (CONFIG_MODVERSIONS).
    pub(super) crcs: HashMap<String, u32>,
    /// `vmlinux` and module name -> its symbol table.
    pub(super) parents: BTreeMap<String, lp_diff::Parent>,
}

/// Reads the kernel's exports and parents for the objects of `work`; for a distribution kernel,
/// objects compiled as built-in code whose source vmlinux does not have move to `ignored`.
pub(super) fn kernel_symbols(
    c: &Checked,
    work: &mut Vec<(Pair, Owner)>,
    ignored: &mut Vec<String>,
    ui: &Ui,
) -> Result<KernelSymbols> {
    let symvers = c.user_build.dir.join("Module.symvers");
    let symvers_list = kbuild::parse_symvers(&String::from_utf8_lossy(&crate::input::read_input(
        &symvers,
        "Module.symvers",
        crate::input::Kind::Text,
        "the running kernel's build directory must hold its Module.symvers",
    )?));
    let exports = kbuild::vmlinux_exports(&symvers_list);
    let crcs = kbuild::export_crcs(&symvers_list);
    let all_exports: HashSet<String> = symvers_list.into_iter().map(|e| e.symbol).collect();
    let vmlinux_obj = lp_elf::Object::parse_symbols_only(&c.vmlinux.bytes).map_err(|e| {
        fail_hint(
            Status::Input,
            format!("{}: {e}", c.vmlinux.path.display()),
            "pass the running kernel's unstripped vmlinux with -v/--vmlinux",
        )
    })?;
    let vmlinux_parent = lp_diff::Parent::from_object(&vmlinux_obj, true);
    drop(vmlinux_obj);
    if c.packaged.is_some() {
        // Without kbuild's records of a complete build, an object compiled as built-in code
        // belongs to vmlinux only when vmlinux has its source file's symbols.
        work.retain(|(p, owner)| {
            if *owner != Owner::Vmlinux {
                return true;
            }
            let source = p
                .rel
                .rsplit('/')
                .next()
                .unwrap_or(&p.rel)
                .replace(".o", ".c");
            if vmlinux_parent.files.contains(&source) {
                return true;
            }
            ui.warn(&format!(
                "{} is not built into this kernel (vmlinux has no symbol of {source}) nor into \
                 one of its modules: its changes are not in the livepatch",
                p.rel
            ));
            ignored.push(p.rel.clone());
            false
        });
        if work.is_empty() {
            return Err(fail_hint(
                Status::NoChange,
                "the patches changed no object of this kernel's vmlinux or modules",
                "the patched files are not part of the kernel's configuration",
            ));
        }
    }
    let mut parents: BTreeMap<String, lp_diff::Parent> = BTreeMap::new();
    parents.insert("vmlinux".to_string(), vmlinux_parent);
    for (_, owner) in work.iter() {
        if let Owner::Module { name, path } = owner {
            if parents.contains_key(name) {
                continue;
            }
            let (ko, bytes) = match &c.packaged {
                None => {
                    let ko = c.user_build.dir.join(format!("{path}.ko"));
                    let bytes = crate::input::read_input(
                        &ko,
                        "module",
                        crate::input::Kind::Object,
                        "the patch changes a module: its .ko must be in the running kernel's \
                         build directory",
                    )?;
                    (ko, bytes)
                }
                Some(p) => {
                    let ko = crate::packaged::module_file(p, name)?;
                    let bytes = crate::packaged::read_module(&ko)?;
                    (ko, bytes)
                }
            };
            let obj = lp_elf::Object::parse_symbols_only(&bytes).map_err(|e| {
                fail_hint(
                    Status::Input,
                    format!("{}: {e}", ko.display()),
                    "the running kernel's build directory must hold the module's .ko as built",
                )
            })?;
            parents.insert(name.clone(), lp_diff::Parent::from_object(&obj, false));
        }
    }
    Ok(KernelSymbols {
        exports,
        all_exports,
        crcs,
        parents,
    })
}

/// Every object pair through the differ, in parallel, sorted by object.
pub(super) fn diff_pairs(
    c: &Checked,
    args: &BuildArgs,
    ui: &Ui,
    work: &[(Pair, Owner)],
    ks: &KernelSymbols,
    entry_sizes: &BTreeMap<String, u64>,
) -> Result<Vec<(Pair, String, lp_diff::DiffResult)>> {
    let (parents, exports) = (&ks.parents, &ks.exports);
    let results: Vec<Result<(Pair, String, lp_diff::DiffResult)>> = work
        .par_iter()
        .map(|(p, owner)| {
            let _span = tracing::debug_span!("diff", object = %p.rel).entered();
            let object_name = match owner {
                Owner::Module { name, .. } => name.clone(),
                _ => "vmlinux".to_string(),
            };
            let orig = fs::read(&p.orig).with_context(|| format!("reading {}", p.orig.display()))?;
            let patched =
                fs::read(&p.patched).with_context(|| format!("reading {}", p.patched.display()))?;
            let opts = lp_diff::DiffOptions {
                object_name: object_name.clone(),
                source_name: p.rel.clone(),
                entry_sizes: entry_sizes.clone(),
                parent: parents.get(&object_name).cloned(),
                exports: Some(exports.clone()),
                objtool_on_module: c.objtool_on_module,
                objtool_mcount: c.objtool_mcount,
                alias_prefix: alias_prefix(&p.rel),
                explain: ui.debug || args.show_first_changed,
                    };
            let r = lp_diff::diff(&orig, &patched, &opts).map_err(|e| {
                if e.is_llvm_bitcode() {
                    return fail_hint(
                        Status::Input,
                        format!("{}: {e}", p.rel),
                        LLVM_BITCODE_HINT,
                    );
                }
                fail_hint(
                    Status::Internal,
                    format!("{}: the differ cannot read the objects: {e}", p.rel),
                    "this is a bug in lp-build: rerun with --keep-tmp and report it with the objects",
                )
            })?;
            tracing::debug!(outcome = ?r.outcome, changed = ?r.changed_functions, "diffed");
            Ok((p.clone(), object_name, r))
        })
        .collect();
    let mut diffs = Vec::new();
    for r in results {
        diffs.push(r?);
    }
    Ok(diffs)
}

/// Prints each object's verdict (and with -d why each function changed, with -f its first
/// changed instruction).
pub(super) fn print_diffs(
    diffs: &[(Pair, String, lp_diff::DiffResult)],
    ui: &Ui,
    show_first_changed: bool,
) {
    for (p, obj, r) in diffs {
        if r.outcome != lp_diff::Outcome::NoChange || ui.debug {
            print_diff_text(&format!("{obj}: {}", p.rel), r);
            if ui.debug {
                for (f, why) in &r.explanations {
                    println!("  why {f} changed:\n{why}");
                }
            }
            if show_first_changed {
                for (f, why) in &r.explanations {
                    println!("{}", crate::commands::first_changed(&p.rel, f, why));
                }
            }
        }
    }
}
