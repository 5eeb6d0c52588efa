//! Phase 1, check: the patches, the kernel (a complete build directory, or a distribution's
//! packages), its configuration, vmlinux and compiler, lp-build's own copy of the source when it
//! needs one, the lock and the recovery of a run that died.

use super::*;

/// Everything phase 1 establishes.
pub(super) struct Checked {
    pub(super) src: tree::SourceTree,
    pub(super) tc: TreeCache,
    /// Held until the run ends.
    pub(super) _lock: Lock,
    pub(super) patches: Vec<PatchInput>,
    pub(super) files: Vec<apply::FileResult>,
    pub(super) vmlinux: VmlinuxInfo,
    pub(super) user_build: tree::UserBuild,
    pub(super) config_path: PathBuf,
    pub(super) config_text: String,
    pub(super) objtool_on_module: bool,
    /// CONFIG_FTRACE_MCOUNT_USE_OBJTOOL: objtool makes `__mcount_loc`.
    pub(super) objtool_mcount: bool,
    /// The ORC and call-site tables the kernel's configuration requires of module code.
    pub(super) code_tables: lp_emit::CodeTables,
    /// How the module is signed.
    pub(super) sign: crate::sign::Plan,
    pub(super) module: String,
    pub(super) output_dir: PathBuf,
    /// The kernel's compiler found on this host (from its configuration), and the make
    /// variables every kbuild run gets.
    pub(super) toolchain: crate::toolchain::Toolchain,
    /// A distribution kernel built from its packages (`None`: a complete build directory).
    pub(super) packaged: Option<crate::packaged::Packaged>,
    /// The user's tree is built in place (`src` is lp-build's copy of it).
    pub(super) in_place: bool,
}

pub(super) fn default_vmlinux() -> Option<PathBuf> {
    let rel = fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let p = PathBuf::from(format!("/lib/modules/{}/build/vmlinux", rel.trim()));
    p.is_file().then_some(p)
}

pub(super) fn read_patches(paths: &[PathBuf]) -> Result<Vec<PatchInput>> {
    let mut out = Vec::new();
    let mut refusals = Vec::new();
    for path in paths {
        let bytes = crate::input::read_input(
            path,
            "patch",
            crate::input::Kind::Patch,
            "pass the patch file with -p/--patch (a path relative to the current directory)",
        )?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let text = String::from_utf8_lossy(&bytes);
        let parsed = patchfile::parse(&text).map_err(|e| {
            let hint = match e {
                patchfile::ParseError::Empty | patchfile::ParseError::NotADiff => {
                    "pass a unified diff made with `git diff` or `diff -u`"
                }
                patchfile::ParseError::Binary { .. } => "remove the binary part from the patch",
                patchfile::ParseError::Malformed { .. } => {
                    "regenerate the patch rather than editing it by hand"
                }
            };
            fail_hint(Status::Input, format!("{name}: {e}"), hint)
        })?;
        for r in patchfile::refusals(&parsed) {
            refusals.push(format!("{name}: {r}"));
        }
        out.push(PatchInput {
            path: path.clone(),
            name,
            sha256: sha256_hex(&bytes),
            parsed,
        });
    }
    if !refusals.is_empty() {
        for r in &refusals {
            eprintln!("  refused: {r}");
        }
        return Err(fail_hint(
            Status::Refused,
            format!(
                "the patch changes {} file(s) a livepatch cannot carry: {}",
                refusals.len(),
                refusals.join("; ")
            ),
            "a livepatch replaces C functions: keep the change to .c and .h files",
        ));
    }
    Ok(out)
}

/// Which kind of kernel the run builds for: `Some((root, release))` for a distribution kernel
/// from its packages (`--root`/`-K`, or no `-v` and `/lib/modules/$(uname -r)/build` is a
/// headers package), `None` for a kernel with a complete build directory.
pub(super) fn packaged_target(args: &BuildArgs) -> Result<Option<(PathBuf, String)>> {
    if args.root.is_none() && args.kernel_release.is_none() {
        if args.vmlinux.is_some() {
            return Ok(None);
        }
        let root = PathBuf::from("/");
        return Ok(crate::packaged::running_release()
            .filter(|r| crate::packaged::build_link_is_headers(&root, r))
            .map(|r| (root, r)));
    }
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let release = match &args.kernel_release {
        Some(r) => r.clone(),
        None => crate::packaged::default_release(&root)?,
    };
    Ok(Some((root, release)))
}

pub(super) fn check(args: &BuildArgs, ui: &Ui, scratch: &Path) -> Result<Checked> {
    if args.patches.is_empty() {
        return Err(fail_hint(
            Status::Usage,
            "no patch given",
            "usage: lp-build --patch FILE [--patch FILE ...] [-s SRCDIR] [-v VMLINUX]; see --help",
        ));
    }
    let patches = read_patches(&args.patches)?;
    let cwd = std::env::current_dir().context("reading the current directory")?;
    if let Some((root, release)) = packaged_target(args)? {
        return check_packaged(args, ui, scratch, patches, &cwd, &root, &release);
    }
    let mut src = tree::open_source(args.sourcedir.as_deref().unwrap_or(&cwd))?;
    // A tree configured or built in place cannot be the source of lp-build's separate O= build
    // (kbuild refuses it): lp-build works from its own copy of the tree's sources.
    let in_place = tree::built_in_place(&src.path);
    if in_place {
        let copy = copy_user_tree(&src.path, ui)?;
        ui.info(&format!(
            "{} is built in place: lp-build works from its copy {} (the tree is only read)",
            src.path.display(),
            copy.display()
        ));
        src = tree::open_source(&copy)?;
    }
    // The tree may still be patched by a run that died: take its lock and restore it before
    // looking at it.
    let tc = TreeCache::new(&cache::cache_root()?, &src.path)?;
    let (lock, stale) = Lock::acquire(&tc.lock_path(), &src.path)?;
    if let Some(s) = stale {
        ui.warn(&format!(
            "a previous lp-build (pid {}) stopped without releasing {}: recovering",
            s.pid,
            tc.lock_path().display()
        ));
    }
    recover(&tc, ui)?;
    recover_other_cache(&src.path, &tc, ui)?;
    let vmlinux_path = match &args.vmlinux {
        Some(v) => v.clone(),
        None => default_vmlinux().ok_or_else(|| {
            fail_hint(
                Status::Usage,
                "no vmlinux given and none at /lib/modules/$(uname -r)/build/vmlinux",
                "pass the running kernel's vmlinux (in its build directory) with -v/--vmlinux",
            )
        })?,
    };
    let vmlinux = tree::check_vmlinux(&vmlinux_path)?;
    let user_dir = fs::canonicalize(&vmlinux_path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let config_path = match &args.config {
        Some(c) => c.clone(),
        None if src.path.join(".config").is_file() => src.path.join(".config"),
        None => user_dir.join(".config"),
    };
    let (config_text, config) = tree::read_config(&config_path)?;
    tree::check_config(&config, &config_path)?;
    let user_build = tree::check_user_build(&user_dir)?;
    if let Some(rel) = &user_build.release {
        let base = src.version.split('-').next().unwrap_or(&src.version);
        if !rel.starts_with(base) {
            ui.warn(&format!(
                "the build directory {} is for kernel {rel} but the source tree is {}",
                user_dir.display(),
                src.version
            ));
        }
    }
    let toolchain = select_toolchain(args, &config, &config_path, &src.path, &vmlinux, ui)?;
    let files = apply_patches(&src.path, &patches, scratch, args.fuzz, ui)?;
    let module = args.module_name()?;
    let output_dir = match &args.output {
        Some(o) => o.clone(),
        None => cwd,
    };
    check_output_dir(&output_dir)?;
    let objtool_on_module = tree::objtool_on_module(&src.path, &config);
    let objtool_mcount = tree::objtool_mcount(&config);
    let code_tables = code_tables(&config);
    // Before any build: a kernel that refuses unsigned modules and no key fails here.
    let sign = plan_signing(args, &config, &user_build.dir, ui)?;
    Ok(Checked {
        objtool_on_module,
        objtool_mcount,
        code_tables,
        sign,
        src,
        tc,
        _lock: lock,
        patches,
        files,
        vmlinux,
        user_build,
        config_path,
        config_text,
        module,
        output_dir,
        toolchain,
        packaged: None,
        in_place,
    })
}

/// The kernel's compiler, one mechanism for both kinds of kernel: a clang LTO kernel is refused,
/// the compiler its configuration names is found here with the kernel's version
/// ([`crate::toolchain::find`]: missing or another version is refused naming both), and its
/// version line is compared with the ones vmlinux records (`.comment`).
pub(super) fn select_toolchain(
    args: &BuildArgs,
    config: &BTreeMap<String, String>,
    config_path: &Path,
    tree: &Path,
    vmlinux: &VmlinuxInfo,
    ui: &Ui,
) -> Result<crate::toolchain::Toolchain> {
    use crate::toolchain;
    let kernel = toolchain::from_config(config);
    toolchain::refuse_lto(&kernel, config_path)?;
    let makefile = fs::read_to_string(tree.join("Makefile")).unwrap_or_default();
    let t = toolchain::find(
        &kernel,
        &toolchain::Host {
            makefile: &makefile,
            skip_version_check: args.skip_compiler_check,
            probe: &toolchain::host_probe,
        },
    )?;
    if args.skip_compiler_check {
        ui.warn("--skip-compiler-check: not comparing the compiler with vmlinux's");
    } else {
        tree::check_compiler(vmlinux, kernel.text.as_deref(), &t.cc_line)?;
    }
    if t.family == toolchain::Family::Clang || ui.debug {
        ui.info(&format!(
            "compiler: {} ({}); kbuild runs with {}",
            t.cc,
            t.cc_line,
            t.describe_vars()
        ));
    }
    Ok(t)
}

/// The distribution's source tarball unpacked in the cache (once), under its lock.
pub(super) fn unpack_source(cache_root: &Path, tarball: &Path, ui: &Ui) -> Result<PathBuf> {
    let identity = crate::pristine::tarball_identity(tarball)?;
    let copy_dir = crate::pristine::location(cache_root, &identity);
    fs::create_dir_all(&copy_dir).map_err(|e| {
        fail_hint(
            Status::Input,
            format!("cannot create {}: {e}", copy_dir.display()),
            "set LP_BUILD_CACHE to a writable directory",
        )
    })?;
    let (_lock, _) = Lock::acquire(&copy_dir.join("lock"), &copy_dir)?;
    if crate::pristine::is_unpacked(&copy_dir) {
        return Ok(crate::pristine::unpack_tarball(tarball, &copy_dir)?.0);
    }
    ui.info(&format!(
        "source: unpacking {} into {} (once)",
        tarball.display(),
        copy_dir.display()
    ));
    let pr = ui.progress("unpacking the source");
    let r = crate::pristine::unpack_tarball(tarball, &copy_dir);
    pr.finish(r.is_ok());
    Ok(r?.0)
}

/// lp-build's copy of a user's tree (sources only, kept in step with the tree), under its lock.
pub(super) fn copy_user_tree(tree: &Path, ui: &Ui) -> Result<PathBuf> {
    let copy_dir =
        crate::pristine::location(&cache::cache_root()?, &format!("tree {}", tree.display()));
    fs::create_dir_all(&copy_dir).map_err(|e| {
        fail_hint(
            Status::Input,
            format!("cannot create {}: {e}", copy_dir.display()),
            "set LP_BUILD_CACHE to a writable directory",
        )
    })?;
    let (_lock, _) = Lock::acquire(&copy_dir.join("lock"), &copy_dir)?;
    let dst = copy_dir.join("linux");
    let pr = ui.progress("copying the source tree");
    let r = crate::pristine::sync_tree(tree, &dst);
    pr.finish(r.is_ok());
    let synced = r?;
    if ui.debug {
        ui.info(&format!(
            "source copy {}: {} file(s) copied, {} removed",
            dst.display(),
            synced.copied,
            synced.removed
        ));
    }
    Ok(dst)
}

/// Phase 1 for a distribution kernel: its packages found under the root, the versions of
/// image, debug vmlinux, headers and source checked against each other, the source unpacked or
/// copied into the cache (lp-build's own tree: the user's is never written).
pub(super) fn check_packaged(
    args: &BuildArgs,
    ui: &Ui,
    scratch: &Path,
    patches: Vec<PatchInput>,
    cwd: &Path,
    root: &Path,
    release: &str,
) -> Result<Checked> {
    use crate::packaged::{self, Source};
    let p = packaged::find(
        root,
        release,
        args.vmlinux.as_deref(),
        args.sourcedir.as_deref(),
        cwd,
    )?;
    let vmlinux = tree::check_vmlinux(&p.vmlinux)?;
    let banner = packaged::banner(&vmlinux.bytes);
    // The versions before the (long) unpack: the source package's against the image's.
    packaged::check_versions(&p, banner.as_ref(), None)?;
    let config_path = args.config.clone().unwrap_or_else(|| p.config.clone());
    let (config_text, config) = tree::read_config(&config_path)?;
    tree::check_config(&config, &config_path)?;
    // The headers' Makefile stands for the tree's (unpacked later): whether it takes
    // `LLVM=-N` only changes how the same tools are named.
    let headers_dir = p.config.parent().unwrap_or(root).to_path_buf();
    let toolchain = select_toolchain(args, &config, &config_path, &headers_dir, &vmlinux, ui)?;
    let module = args.module_name()?;
    let output_dir = match &args.output {
        Some(o) => o.clone(),
        None => cwd.to_path_buf(),
    };
    check_output_dir(&output_dir)?;
    // lp-build's own copy of the source, under its lock.
    let cache_root = cache::cache_root()?;
    let tree_path = match &p.source {
        Source::Tarball { path, .. } => unpack_source(&cache_root, path, ui)?,
        Source::Tree(t) => copy_user_tree(&tree::open_source(t)?.path, ui)?,
    };
    let src = tree::open_source(&tree_path)?;
    packaged::check_versions(&p, banner.as_ref(), Some(&src.version))?;
    let tc = TreeCache::new(&cache_root, &src.path)?;
    let (lock, stale) = Lock::acquire(&tc.lock_path(), &src.path)?;
    if let Some(s) = stale {
        ui.warn(&format!(
            "a previous lp-build (pid {}) stopped without releasing {}: recovering",
            s.pid,
            tc.lock_path().display()
        ));
    }
    recover(&tc, ui)?;
    let files = apply_patches(&src.path, &patches, scratch, args.fuzz, ui)?;
    let view = packaged::headers_view(&cache_root, &p)?;
    let objtool_on_module = tree::objtool_on_module(&src.path, &config);
    let objtool_mcount = tree::objtool_mcount(&config);
    let code_tables = code_tables(&config);
    let sign = plan_signing(args, &config, &view, ui)?;
    Ok(Checked {
        objtool_on_module,
        objtool_mcount,
        code_tables,
        sign,
        src,
        tc,
        _lock: lock,
        patches,
        files,
        vmlinux,
        user_build: tree::UserBuild {
            dir: view,
            release: Some(p.release.clone()),
        },
        config_path,
        config_text,
        module,
        output_dir,
        toolchain,
        packaged: Some(p),
        in_place: false,
    })
}

/// The file holding the process group of the make that builds in the patched tree.
pub(super) fn pgid_file(tc: &TreeCache) -> PathBuf {
    tc.dir.join("make.pgid")
}

/// A run with another cache (another user, another `LP_BUILD_CACHE`) that died with the tree
/// patched left the tree's marker naming its journal: restore the tree from it, or say how to.
/// (The tree's own lock, held now, proves that run is gone.)
pub(super) fn recover_other_cache(src: &Path, tc: &TreeCache, ui: &Ui) -> Result<()> {
    let Some(journal) = crate::fsutil::tree_marker(src) else {
        return Ok(());
    };
    if journal == tc.journal_path() {
        return Ok(()); // ours: recover() handled it
    }
    if !journal.exists() {
        crate::fsutil::clear_tree_marker(src);
        return Ok(());
    }
    let Some(other_dir) = journal.parent() else {
        return Ok(());
    };
    let other = TreeCache {
        dir: other_dir.to_path_buf(),
    };
    recover(&other, ui).map_err(|e| {
        fail_hint(
            Status::Input,
            format!(
                "{} is still patched by an lp-build run that died, whose journal {} cannot be \
                 restored from here: {}",
                src.display(),
                journal.display(),
                crate::exit::one_line(&e)
            ),
            format!(
                "run lp-build once as the user of that run, with LP_BUILD_CACHE={}, to restore \
                 the tree",
                other_dir.parent().unwrap_or(other_dir).display()
            ),
        )
    })?;
    cache::clear_stale_lock(&other.lock_path());
    crate::fsutil::clear_tree_marker(src);
    Ok(())
}

pub(super) fn recover(tc: &TreeCache, ui: &Ui) -> Result<()> {
    if runner::kill_orphaned_group(&pgid_file(tc)) {
        ui.warn("stopped a build left running by a previous lp-build that died");
    }
    let journal = tc.journal_path();
    if !journal.exists() {
        return Ok(());
    }
    // The build directory the journal speaks of loses its stamp: restoring may have raced
    // with a dying make.
    if let Ok(text) = fs::read(&journal) {
        if let Ok(j) = serde_json::from_slice::<journal::Journal>(&text) {
            if let Some(entry_dir) = j.build.parent() {
                CacheEntry {
                    dir: entry_dir.to_path_buf(),
                }
                .invalidate();
            }
        }
    }
    if let Some((pid, s)) = journal::recover(&journal)? {
        ui.warn(&format!(
            "lp-build pid {pid} died while the tree was patched: restored {} source file(s) and \
             {} object(s) from its journal",
            s.sources, s.objects
        ));
    }
    Ok(())
}

/// Checks before any build that the output directory can be created and written, so a long
/// build does not end with nowhere to put the module.
pub(super) fn check_output_dir(dir: &Path) -> Result<()> {
    let r = fs::create_dir_all(dir).and_then(|()| tempfile::tempfile_in(dir).map(drop));
    r.map_err(|e| {
        fail_hint(
            Status::Input,
            format!("output directory {}: {e}", dir.display()),
            OUTPUT_HINT,
        )
    })
}

/// How the module is signed, decided before any build (a kernel that refuses unsigned modules
/// and no key fail here); an unsigned module for a kernel that checks signatures is a warning.
pub(super) fn plan_signing(
    args: &BuildArgs,
    config: &BTreeMap<String, String>,
    build: &Path,
    ui: &Ui,
) -> Result<crate::sign::Plan> {
    let sign = crate::sign::plan(
        config,
        build,
        &crate::sign::Request {
            key: args.sign_key.as_deref(),
            cert: args.sign_cert.as_deref(),
            no_sign: args.no_sign,
        },
    )?;
    if let crate::sign::Plan::Unsigned(why) = &sign {
        ui.warn(&format!(
            "the module will not be signed ({why}): loading it taints the kernel (E); pass \
             --sign-key/--sign-cert to sign it (a key the kernel trusts, e.g. an enrolled MOK)"
        ));
    }
    Ok(sign)
}

/// The patches applied to a scratch copy of the files they touch (the tree is only read); a
/// patch that changes nothing is "no change".
pub(super) fn apply_patches(
    src: &Path,
    patches: &[PatchInput],
    scratch: &Path,
    fuzz: u8,
    ui: &Ui,
) -> Result<Vec<apply::FileResult>> {
    let (files, notes) = apply::apply_in_scratch_fuzz(src, patches, scratch, fuzz)?;
    for n in notes {
        ui.info(&format!("note: {n}"));
    }
    if files.iter().all(|f| f.orig == f.patched) {
        return Err(fail_hint(
            Status::NoChange,
            "the patches change no file contents",
            "the patch is already applied or reverts itself: there is nothing to live-patch",
        ));
    }
    Ok(files)
}
