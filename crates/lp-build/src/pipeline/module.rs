//! Phases 6 and 7: the special-section entry sizes (probe module) and the livepatch module:
//! generated core, kbuild link, klp conversion, validation, signature, output.

use super::*;

pub(super) fn entry_sizes(
    kb: &Kbuild,
    entry: &CacheEntry,
    c: &Checked,
    tmp: &Path,
    ui: &Ui,
) -> Result<BTreeMap<String, u64>> {
    let cached = entry.entry_sizes_path();
    if let Ok(text) = fs::read(&cached) {
        if let Ok(m) = serde_json::from_slice::<BTreeMap<String, u64>>(&text) {
            return Ok(m);
        }
    }
    let dir = tmp.join("probe");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::write(dir.join("lp_probe.c"), probe::probe_source())?;
    fs::write(dir.join("Kbuild"), "obj-m := lp_probe.o\n")?;
    // Against the running kernel's build (or headers package), as the livepatch module is:
    // lp-build's cache build compiles objects and links nothing, so it has no Module.symvers
    // for modpost.
    let mut cmd = module_make(c, &dir);
    cmd.arg("modules");
    make(
        ui,
        "measuring special-section entries",
        cmd,
        &kb.log,
        "building the entry-size probe module",
    )?;
    let obj = fs::read(dir.join("lp_probe.o")).context("reading the probe object")?;
    if lp_elf::is_llvm_bitcode(&obj) {
        return Err(fail_hint(
            Status::Input,
            "the entry-size probe module compiled to LLVM bitcode, not machine code",
            LLVM_BITCODE_HINT,
        ));
    }
    let sizes = probe::read_sizes(&obj)?;
    write_atomic(&cached, &serde_json::to_vec_pretty(&sizes)?)?;
    if ui.debug {
        ui.info(&format!("entry sizes: {sizes:?}"));
    }
    Ok(sizes)
}

pub(super) fn build_module(
    spec: &lp_emit::ModuleSpec,
    patch_objects: &[(String, Vec<u8>)],
    c: &Checked,
    tmp: &Path,
    ui: &Ui,
    ctx: lp_emit::ValidateContext,
    jobs: usize,
) -> Result<PathBuf> {
    let dir = tmp.join("module");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let emit_err = |e: lp_emit::EmitError| {
        fail_hint(
            Status::Build,
            format!("generating the module: {e}"),
            "this is a bug in lp-build: rerun with --keep-tmp and report it",
        )
    };
    let core = lp_emit::generate_c(spec).map_err(emit_err)?;
    fs::write(dir.join(lp_emit::core_source_name(spec)), core)?;
    let names: Vec<String> = patch_objects.iter().map(|(n, _)| n.clone()).collect();
    for (n, bytes) in patch_objects {
        fs::write(dir.join(n), bytes)?;
        // With CONFIG_MODVERSIONS modpost reads the `#SYMVER` lines of every object's
        // `.<object>.cmd` and fails when one is missing. A patch object exports nothing.
        fs::write(
            dir.join(format!(".{n}.cmd")),
            "# Prebuilt by lp-build: a patch object exports no symbol (no #SYMVER line).\n",
        )?;
    }
    // Reproducible modules: this run's temporary directory must leave no trace in the module
    // (debug information, `__FILE__`), so the same inputs give the same bytes.
    let kbuild = format!(
        "{}ccflags-y += -ffile-prefix-map={}=.\n",
        lp_emit::kbuild_file(spec, &names),
        dir.display()
    );
    fs::write(dir.join("Kbuild"), kbuild)?;
    let mut cmd = module_make(c, &dir);
    // ccflags-y does not reach the `<module>.mod.c` that kbuild's modfinal compiles: on a kernel
    // with DEBUG_INFO (every distribution's) its DW_AT_comp_dir kept the temporary directory.
    cmd.arg(format!("KCFLAGS=-ffile-prefix-map={}=.", dir.display()));
    // kbuild's scripts/Makefile.btf runs pahole with -j (output order varies from run to run)
    // unless KBUILD_BUILD_TIMESTAMP is set, its sign that a reproducible build is wanted: then
    // pahole >= 1.27 gets +reproducible_build and older ones run single-threaded. Only the
    // module's .BTF sees it (vmlinux is not built here).
    cmd.env("KBUILD_BUILD_TIMESTAMP", "1970-01-01");
    cmd.arg(format!("-j{jobs}")).arg("modules");
    let log = tmp.join("module.log");
    make(
        ui,
        "linking the livepatch module",
        cmd,
        &log,
        "building the livepatch module",
    )?;
    refuse_objtool_warnings(&log, &spec.name)?;
    let ko = dir.join(format!("{}.ko", spec.name));
    let linked = fs::read(&ko).with_context(|| format!("reading {}", ko.display()))?;
    let converted = lp_emit::convert_klp_relocs(&linked).map_err(|e| {
        fail_hint(
            Status::Build,
            format!("converting the klp relocations of {}: {e}", ko.display()),
            "this is a bug in lp-build: rerun with --keep-tmp and report it",
        )
    })?;
    fs::write(dir.join(format!("{}.klp.ko", spec.name)), &converted)?;
    let problems = lp_emit::validate(&converted, &ctx);
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("  module problem: {p}");
        }
        return Err(fail_hint(
            Status::Build,
            format!(
                "the built module breaks {} loader rule(s) and was not written (each is listed \
                 above; the first: {})",
                problems.len(),
                problems[0]
            ),
            "this is a bug in lp-build: rerun with --keep-tmp and report it",
        ));
    }
    // The signature covers the final bytes: it comes after the conversion and the validation.
    let converted = match &c.sign {
        crate::sign::Plan::Sign(signer) => {
            let signed = dir.join(format!("{}.signed.ko", spec.name));
            fs::write(&signed, &converted)?;
            crate::sign::sign(signer, &signed)?;
            ui.info(&format!(
                "signed the module ({}, key {})",
                signer.hash,
                signer.key.display()
            ));
            fs::read(&signed).with_context(|| format!("reading {}", signed.display()))?
        }
        _ => converted,
    };
    let out = c.output_dir.join(format!("{}.ko", spec.name));
    write_output(&out, &converted, OUTPUT_HINT)?;
    if ui.debug {
        ui.info(&format!("module sources in {}", dir.display()));
    }
    Ok(out)
}

/// make for an external module in `dir`, against the running kernel's build: its complete
/// build directory (`make -C SRC O=BUILD M=DIR`) or a distribution's headers package
/// (`make -C HEADERS M=DIR`).
pub(super) fn module_make(c: &Checked, dir: &Path) -> Command {
    let tc = &c.toolchain;
    let mut cmd = if c.packaged.is_some() || c.in_place {
        make_command(&c.user_build.dir, None, tc, &tc.cc)
    } else {
        make_command(&c.src.path, Some(&c.user_build.dir), tc, &tc.cc)
    };
    cmd.arg(format!("M={}", dir.display()));
    cmd
}

/// The code tables a kernel's configuration requires of module code.
pub fn code_tables(config: &BTreeMap<String, String>) -> lp_emit::CodeTables {
    let on = |k: &str| config.get(k).map(String::as_str) == Some("y");
    lp_emit::CodeTables {
        orc: on("CONFIG_UNWINDER_ORC"),
        // Named MITIGATION_CALL_DEPTH_TRACKING since 6.9.
        call_sites: on("CONFIG_CALL_DEPTH_TRACKING") || on("CONFIG_MITIGATION_CALL_DEPTH_TRACKING"),
    }
}

/// objtool's warnings about the livepatch module, from the module build's log. objtool stops at
/// its first fatal problem without failing the build (up to 6.x), leaving the module without ORC
/// or mitigation tables for the rest of its code; any warning also means code it could not
/// follow, whose ORC is undefined. Either is refused, with objtool's own words.
///
/// One warning is expected and left out: "data relocation to !ENDBR" from the core's
/// `klp_func` arrays (`lp_core_funcs*`). A patched function that its own file only calls
/// directly has no ENDBR (the compiler leaves it out), and `new_func` takes its address; the
/// livepatch core reaches it through ftrace, which returns to it (`ret`), never branches to it
/// indirectly, so IBT needs no ENDBR there.
pub fn objtool_warnings(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("warning: objtool:") || l.contains("error: objtool:"))
        .filter(|l| {
            !(l.contains("objtool: lp_core_funcs") && l.contains("data relocation to !ENDBR"))
        })
        .map(|l| l.trim().to_string())
        .collect()
}

pub(super) fn refuse_objtool_warnings(log: &Path, module: &str) -> Result<()> {
    let text = fs::read_to_string(log).unwrap_or_default();
    let warnings = objtool_warnings(&text);
    if warnings.is_empty() {
        return Ok(());
    }
    for w in &warnings {
        eprintln!("  | {w}");
    }
    Err(Failure::new(
        Status::Build,
        format!(
            "objtool warned about {module} ({} line(s); first: {}): its ORC or mitigation tables \
             would be incomplete",
            warnings.len(),
            warnings[0]
        ),
    )
    .hint(format!(
        "this is a bug in lp-build unless the patched code itself confuses objtool; the full \
         build log is {}",
        log.display()
    ))
    .log(log)
    .into())
}

pub(super) const OUTPUT_HINT: &str =
    "pass a writable directory with free space with -o/--output (default: the current directory)";

/// Test-only hook: `LP_BUILD_TEST_FAIL_WRITE=ENOSPC` makes [`write_output`] fail as on a full
/// disk (the file system cannot be filled from a test).
pub const ENV_TEST_FAIL_WRITE: &str = "LP_BUILD_TEST_FAIL_WRITE";

/// Writes an output file (the module, its report, `diff`'s patch object) atomically; a failure
/// is an input/output error with `hint`.
pub(crate) fn write_output(path: &Path, bytes: &[u8], hint: &str) -> Result<()> {
    let r = if std::env::var_os(ENV_TEST_FAIL_WRITE).is_some_and(|v| v == "ENOSPC") {
        Err(
            anyhow::Error::from(std::io::Error::from_raw_os_error(libc::ENOSPC))
                .context(format!("writing {}", path.display())),
        )
    } else {
        write_atomic(path, bytes)
    };
    r.map_err(|e| {
        fail_hint(
            Status::Input,
            format!("writing the output {}: {}", path.display(), e.root_cause()),
            hint.to_string(),
        )
    })
}
