//! Phases 2 to 4: the original build (the cached function-sections build, or for a
//! distribution kernel the prepared copy and the patched `.c` files only), the patched build
//! through the compiler wrapper, and the make runs behind them.

use super::*;

/// An object pair after the patched build (copies in the run's temporary directory).
#[derive(Debug, Clone)]
pub(super) struct Pair {
    pub(super) rel: String,
    pub(super) orig: PathBuf,
    pub(super) patched: PathBuf,
}

/// How kbuild is run for the cache tree.
pub(super) struct Kbuild<'a> {
    pub(super) src: &'a Path,
    pub(super) build: PathBuf,
    /// The kernel's compiler and its make variables.
    pub(super) toolchain: &'a crate::toolchain::Toolchain,
    /// `CC` for the cache tree: the wrapper in front of the kernel's compiler.
    pub(super) cc: String,
    pub(super) jobs: usize,
    pub(super) log: PathBuf,
}

/// The one make command lp-build runs: `make -C DIR [O=BUILD]` with the kernel's compiler
/// (`CC=cc`, and for clang `LLVM=-19` and the like: [`crate::toolchain::Toolchain::make_vars`]),
/// in the C locale (its messages are parsed), without the wrapper's variables or a
/// `KBUILD_OUTPUT` of the caller's environment; callers add goals and their own variables.
pub(super) fn make_command(
    dir: &Path,
    out: Option<&Path>,
    toolchain: &crate::toolchain::Toolchain,
    cc: &str,
) -> Command {
    let mut c = Command::new("make");
    c.arg("-C").arg(dir);
    if let Some(o) = out {
        c.arg(format!("O={}", o.display()));
    }
    c.args(toolchain.make_vars(cc));
    c.env("LC_ALL", "C")
        .env_remove(ccwrap::ENV_SAVE_DIR)
        .env_remove(ccwrap::ENV_OBJTREE)
        .env_remove("KBUILD_OUTPUT");
    c
}

impl Kbuild<'_> {
    pub(super) fn command(&self, goals: &[&str]) -> Command {
        let mut c = make_command(self.src, Some(&self.build), self.toolchain, &self.cc);
        c.arg(format!("-j{}", self.jobs))
            .arg(format!("KCFLAGS={KCFLAGS}"))
            .args(goals);
        c
    }
}

/// Runs make and turns a failure into a build error with the first compiler errors.
pub(super) fn make(ui: &Ui, label: &str, cmd: Command, log: &Path, what: &str) -> Result<()> {
    make_in_group(ui, label, cmd, log, what, None)
}

/// [`make`], recording the process group in `pgid_file` while it runs.
pub(super) fn make_in_group(
    ui: &Ui,
    label: &str,
    cmd: Command,
    log: &Path,
    what: &str,
    pgid_file: Option<&Path>,
) -> Result<()> {
    let mut p = ui.progress(label);
    let r = runner::run_logged(cmd, log, &mut p, pgid_file);
    let ok = matches!(r, Ok(Ok(())));
    p.finish(ok);
    match r? {
        Ok(()) => Ok(()),
        Err(RunFailure { code, errors, tail }) => {
            let shown = if errors.is_empty() { tail } else { errors };
            let shown: Vec<String> = shown.into_iter().rev().take(12).rev().collect();
            for l in &shown {
                eprintln!("  | {l}");
            }
            // The log must outlive the run: the failure names it, so the temporary directory
            // holding it is kept.
            Err(Failure::new(
                Status::Build,
                format!(
                    "{what} failed (make exit status {})",
                    code.map_or("signal".to_string(), |c| c.to_string())
                ),
            )
            .hint(format!("the full build log is {}", log.display()))
            .log(log)
            .into())
        }
    }
}

pub(super) fn original_build(
    kb: &Kbuild,
    entry: &CacheEntry,
    c: &Checked,
    key: &str,
    ui: &Ui,
) -> Result<&'static str> {
    if let Some(stamp) = entry.stamp() {
        if stamp.key == key {
            match cache::changed_since(&c.src.path, stamp.started) {
                None => {
                    ui.info(&format!(
                        "original build: reusing {} (complete)",
                        kb.build.display()
                    ));
                    return Ok("warm");
                }
                Some(changed) => ui.info(&format!(
                    "original build: {} changed since the cached build: updating it",
                    changed.display()
                )),
            }
        }
    }
    let first = !kb.build.join(".config").exists();
    if first {
        ui.info(&format!(
            "original build: first use of this tree, configuration and compiler: compiling the \
             kernel's objects with function sections in {} (this takes a while)",
            kb.build.display()
        ));
        fs::copy(&c.config_path, kb.build.join(".config")).with_context(|| {
            format!(
                "copying {} to {}",
                c.config_path.display(),
                kb.build.display()
            )
        })?;
        make(
            ui,
            "configuring (olddefconfig)",
            kb.command(&["olddefconfig"]),
            &kb.log,
            "configuring the cache build",
        )?;
    }
    let started = SystemTime::now();
    // Only the objects are needed (the pairs' originals); linking vmlinux and the modules
    // (kallsyms, BTF, modpost) would be a good part of a cold build for nothing. Which binary
    // an object belongs to is read from the user's complete build.
    let top = fs::read_to_string(kb.src.join("Makefile")).unwrap_or_default();
    make(
        ui,
        "building the original kernel",
        kb.command(&patched_goals(&top)),
        &kb.log,
        "building the original kernel (without the patch)",
    )
    .map_err(|e| {
        if crate::exit::status_of(&e) == Status::Build {
            e.context("the unpatched tree does not build with this configuration")
        } else {
            e
        }
    })?;
    entry.write_stamp(&Stamp {
        key: key.to_string(),
        version: c.src.version.clone(),
        started,
        lp_build_version: env!("CARGO_PKG_VERSION").to_string(),
    })?;
    Ok(if first { "cold" } else { "updated" })
}

/// The original build for a distribution kernel: lp-build's copy of the source configured with
/// the distribution's configuration and prepared once (`olddefconfig prepare`: what kbuild needs
/// to compile single objects), then only the objects of the patched `.c` files compiled, with
/// function sections. No whole-kernel build.
pub(super) fn prepared_build(
    kb: &Kbuild,
    entry: &CacheEntry,
    c: &Checked,
    key: &str,
    ui: &Ui,
    full: bool,
) -> Result<&'static str> {
    let stamp = entry.dir.join("prepared");
    let mut state = "warm";
    if fs::read_to_string(&stamp).ok().as_deref() != Some(key) {
        state = "cold";
        ui.info(&format!(
            "original build: preparing {} with the distribution's configuration (once)",
            kb.build.display()
        ));
        let _ = fs::remove_file(&stamp);
        fs::copy(&c.config_path, kb.build.join(".config")).with_context(|| {
            format!(
                "copying {} to {}",
                c.config_path.display(),
                kb.build.display()
            )
        })?;
        make(
            ui,
            "configuring (olddefconfig)",
            kb.command(&["olddefconfig"]),
            &kb.log,
            "configuring lp-build's copy of the source",
        )?;
        let (_, ours) = tree::read_config(&kb.build.join(".config"))?;
        let changed =
            crate::packaged::config_differences(&tree::parse_config(&c.config_text), &ours);
        if !changed.is_empty() {
            return Err(fail_hint(
                Status::Input,
                format!(
                    "the source does not take the kernel's configuration as it is: `make \
                     olddefconfig` changed {} option(s) ({}), so objects built here would not \
                     match the running kernel",
                    changed.len(),
                    changed.join(", ")
                ),
                "use the source package of the kernel's exact version (and the host tools of \
                 its distribution release)",
            ));
        }
        make(
            ui,
            "preparing the source (make prepare)",
            kb.command(&["prepare"]),
            &kb.log,
            "preparing lp-build's copy of the source",
        )?;
        write_atomic(&stamp, key.as_bytes())?;
    } else {
        ui.info(&format!(
            "original build: reusing the prepared {}",
            kb.build.display()
        ));
    }
    let goals = if full {
        // Every object of the configuration, none linked: kbuild's records then know which
        // objects include a changed header. make itself skips what is up to date (the copy of a
        // user's tree may have changed since).
        ui.info(
            "original build: --full-build: compiling every object of the configuration (the \
             first time takes a while)",
        );
        let top = fs::read_to_string(kb.src.join("Makefile")).unwrap_or_default();
        patched_goals(&top).iter().map(|g| g.to_string()).collect()
    } else {
        packaged_goals(&c.files)?
    };
    if !goals.is_empty() {
        let goals: Vec<&str> = goals.iter().map(String::as_str).collect();
        make(
            ui,
            "building the original objects",
            kb.command(&goals),
            &kb.log,
            "building the original objects (without the patch)",
        )?;
    }
    Ok(state)
}

/// The objects to compile for a distribution kernel: one per patched `.c` file. A changed
/// header is refused: without a complete build lp-build cannot know every object that
/// includes it.
pub(super) fn packaged_goals(files: &[apply::FileResult]) -> Result<Vec<String>> {
    let mut goals = Vec::new();
    let mut headers = Vec::new();
    for f in files {
        match f.path.strip_suffix(".c") {
            Some(stem) if f.orig.is_some() && f.patched.is_some() => {
                goals.push(format!("{stem}.o"))
            }
            Some(_) => headers.push(format!("{} (a new or deleted .c file)", f.path)),
            None if f.orig == f.patched => {}
            None => headers.push(f.path.clone()),
        }
    }
    if !headers.is_empty() {
        return Err(fail_hint(
            Status::Refused,
            format!(
                "the patch changes {} for a distribution kernel: lp-build compiles only the \
                 patched .c files of a packaged kernel and cannot know every object that a header \
                 change reaches",
                headers.join(", ")
            ),
            "pass --full-build to compile every object of the configuration once (hours for \
             a distribution's configuration; later runs reuse it), or move the change into the \
             .c files that need it",
        ));
    }
    Ok(goals)
}

/// The make goals of the original (cache) build and of the patched build: they compile every
/// object of vmlinux and the modules without linking
/// anything (so nothing but the compiler runs, and no link-time object such as
/// `init/version-timestamp.o` is rebuilt): the top Makefile's descend target, `.` (its
/// `$(build-dir)`, 5.19+) or `descend` (older), with `KBUILD_MODULES=1` so module objects are
/// compiled too; without either, `vmlinux modules`. (`vmlinux.a` does not do: kbuild takes
/// `%.a` goals for single-file targets.)
pub fn patched_goals(top_makefile: &str) -> Vec<&'static str> {
    let lines: Vec<&str> = top_makefile.lines().map(str::trim_end).collect();
    let build_dir_dot = lines.iter().any(|l| {
        l.strip_prefix("build-dir")
            .and_then(|r| r.trim_start().strip_prefix(":="))
            .is_some_and(|v| v.trim() == ".")
    });
    if build_dir_dot {
        vec![".", "KBUILD_MODULES=1"]
    } else if lines.iter().any(|l| l.starts_with("descend:")) {
        vec!["descend", "KBUILD_MODULES=1"]
    } else {
        vec!["vmlinux", "modules"]
    }
}

/// When the patch only changes `.c` files whose objects the cache build has, the make goals are
/// just those objects (kbuild's single-target build: no walk of the whole tree, the warm path
/// stays close to the compile time). `None`: a header or another file changed, every object
/// that may depend on it must be considered ([`patched_goals`]).
pub fn targeted_goals(files: &[apply::FileResult], build: &Path) -> Option<Vec<String>> {
    let mut goals = Vec::new();
    for f in files {
        let stem = f.path.strip_suffix(".c")?;
        f.orig.as_ref()?;
        let object = format!("{stem}.o");
        if !build.join(&object).is_file() {
            return None;
        }
        goals.push(object);
    }
    (!goals.is_empty()).then_some(goals)
}

pub(super) fn patched_build(
    kb: &Kbuild,
    changes: &Changes,
    c: &Checked,
    pairs_dir: &Path,
    ui: &Ui,
    pgid_file: &Path,
) -> Result<Vec<Pair>> {
    journal::record_build_times(&kb.build, changes.save_dir())?;
    changes.apply(&c.files)?;
    let top = fs::read_to_string(kb.src.join("Makefile")).unwrap_or_default();
    let goals: Vec<String> = match targeted_goals(&c.files, &kb.build) {
        Some(objects) => objects,
        None => patched_goals(&top).iter().map(|g| g.to_string()).collect(),
    };
    let goals: Vec<&str> = goals.iter().map(String::as_str).collect();
    let mut cmd = kb.command(&goals);
    cmd.env(ccwrap::ENV_SAVE_DIR, changes.save_dir())
        .env(ccwrap::ENV_OBJTREE, &kb.build);
    // The hooks headers are built into the binary: written beside the pairs, in the run's
    // temporary directory.
    let hooks_dir = pairs_dir.with_file_name("hooks-macros");
    crate::hooks::write_headers(&hooks_dir)?;
    cmd.env(ccwrap::ENV_HOOKS_DIR, &hooks_dir);
    make_in_group(
        ui,
        "building the patched objects",
        cmd,
        &kb.log,
        "building with the patch applied (does the patch compile?)",
        Some(pgid_file),
    )?;
    // Copy the pairs out before the restore puts the originals back.
    let saved = changes.save_dir().join(SAVED_OBJECTS);
    let mut pairs = Vec::new();
    for s in journal::read_saved_objects(changes.save_dir())? {
        if !s.had_object {
            ui.warn(&format!(
                "{} is new in the patched build (no original): not diffed",
                s.object
            ));
            continue;
        }
        let orig = pairs_dir.join("orig").join(&s.object);
        let patched = pairs_dir.join("patched").join(&s.object);
        copy_with_mtime(&saved.join(&s.object), &orig)?;
        copy_with_mtime(&kb.build.join(&s.object), &patched)?;
        pairs.push(Pair {
            rel: s.object,
            orig,
            patched,
        });
    }
    Ok(pairs)
}
