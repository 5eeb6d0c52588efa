//! The build driver: `lp-build --patch fix.diff` from the kernel tree to `livepatch-fix.ko`.
//!
//! Phases (each timed and reported):
//! 1. check: the tree, its configuration, vmlinux, the compiler, the patches ([`crate::tree`],
//!    [`crate::patchfile`], [`crate::apply`]).
//! 2. original build: lp-build's own function-sections `O=` build in the cache
//!    ([`crate::cache`]), reused when complete.
//! 3. patched build: the patches written into the tree, the cache tree rebuilt through the
//!    compiler wrapper ([`crate::ccwrap`]), which saves each original object it replaces.
//! 4. restore: sources and objects put back exactly ([`crate::journal`]); also on failure and
//!    on SIGINT/SIGTERM.
//! 5. diff: every rebuilt object pair through `lp_diff`, in parallel.
//! 6. entry sizes: the probe module ([`crate::probe`]), cached.
//! 7. module: `lp_emit` core + Kbuild, linked against the user's build, klp relocations
//!    converted, validated, written.
//!
//! Only this crate touches the kernel tree, writes files and runs processes.

use crate::apply::{self, PatchInput};
use crate::cache::{self, CacheEntry, Lock, Stamp, TreeCache, KCFLAGS};
use crate::ccwrap;
use crate::cli::{BuildArgs, StopAfter};
use crate::commands::{alias_prefix, outcome_name, print_diff_text};
use crate::exit::{fail_hint, Status};
use crate::fsutil::{copy_with_mtime, secs, sha256_hex, write_atomic};
use crate::journal::{self, Changes, SAVED_OBJECTS};
use crate::kbuild::{self, Objects, Owner};
use crate::patchfile;
use crate::probe;
use crate::runner::{self, RunFailure};
use crate::signals;
use crate::tree::{self, VmlinuxInfo};
use crate::ui::Ui;
use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

/// The real compiler kbuild runs through the wrapper.
pub const REAL_CC: &str = "gcc";

/// Time spent per phase.
#[derive(Debug, Default, Clone, Serialize)]
pub struct PhaseTimes(pub Vec<(String, f64)>);

impl PhaseTimes {
    fn add(&mut self, name: &str, d: Duration) {
        self.0.push((name.to_string(), d.as_secs_f64()));
    }
}

/// One rebuilt object and what the differ said about it.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectReport {
    /// The livepatch object (`vmlinux` or a module name).
    pub object: String,
    /// The object file, relative to the build directory.
    pub source: String,
    /// `patch`, `no-change`, `refused`, or `ignored`.
    pub outcome: String,
    /// Changed functions.
    pub changed_functions: Vec<String>,
    /// New functions.
    pub new_functions: Vec<String>,
    /// Refusals.
    pub errors: Vec<lp_diff::Diagnostic>,
    /// Warnings.
    pub warnings: Vec<lp_diff::Diagnostic>,
}

/// A patch file in the report.
#[derive(Debug, Clone, Serialize)]
pub struct PatchFileReport {
    /// The file name.
    pub file: String,
    /// sha256 of its contents, hex.
    pub sha256: String,
}

/// The report printed at the end and written as `<module>.json` with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// lp-build's version.
    pub lp_build_version: String,
    /// `patch`, `no-change` or `refused`.
    pub outcome: String,
    /// The module name.
    pub module: String,
    /// The module file written.
    pub output: Option<PathBuf>,
    /// The kernel version of the tree.
    pub kernel: String,
    /// The source tree.
    pub source_tree: PathBuf,
    /// The patch files and their sha256.
    pub patches: Vec<PatchFileReport>,
    /// The cache build directory and whether it was built (`cold`) or reused (`warm`).
    pub cache_build: PathBuf,
    /// `cold` or `warm`.
    pub cache: String,
    /// Every rebuilt object.
    pub objects: Vec<ObjectReport>,
    /// Special-section entry sizes used.
    pub entry_sizes: BTreeMap<String, u64>,
    /// Seconds per phase.
    pub phases: PhaseTimes,
    /// The key the module was signed with (`None`: unsigned).
    pub signed_with: Option<PathBuf>,
}

/// Everything phase 1 establishes.
struct Checked {
    src: tree::SourceTree,
    tc: TreeCache,
    /// Held until the run ends.
    _lock: Lock,
    patches: Vec<PatchInput>,
    files: Vec<apply::FileResult>,
    vmlinux: VmlinuxInfo,
    user_build: tree::UserBuild,
    config_path: PathBuf,
    config_text: String,
    cc_line: String,
    objtool_on_module: bool,
    /// The ORC and call-site tables the kernel's configuration requires of module code.
    code_tables: lp_emit::CodeTables,
    /// How the module is signed.
    sign: crate::sign::Plan,
    module: String,
    output_dir: PathBuf,
    /// The compiler command kbuild runs (through the wrapper): `gcc`, or the one named in a
    /// distribution kernel's `CONFIG_CC_VERSION_TEXT`.
    cc: String,
    /// A distribution kernel built from its packages (`None`: a complete build directory).
    packaged: Option<crate::packaged::Packaged>,
}

/// An object pair after the patched build (copies in the run's temporary directory).
#[derive(Debug, Clone)]
struct Pair {
    rel: String,
    orig: PathBuf,
    patched: PathBuf,
}

/// How kbuild is run for the cache tree.
struct Kbuild<'a> {
    src: &'a Path,
    build: PathBuf,
    cc: String,
    jobs: usize,
    log: PathBuf,
}

impl Kbuild<'_> {
    fn command(&self, goals: &[&str]) -> Command {
        let mut c = Command::new("make");
        c.arg("-C")
            .arg(self.src)
            .arg(format!("O={}", self.build.display()))
            .arg(format!("-j{}", self.jobs))
            .arg(format!("CC={}", self.cc))
            .arg(format!("KCFLAGS={KCFLAGS}"))
            .args(goals)
            .env("LC_ALL", "C")
            .env_remove(ccwrap::ENV_SAVE_DIR)
            .env_remove(ccwrap::ENV_OBJTREE)
            .env_remove("KBUILD_OUTPUT");
        c
    }
}

/// Runs make and turns a failure into a build error with the first compiler errors.
fn make(ui: &Ui, label: &str, cmd: Command, log: &Path, what: &str) -> Result<()> {
    make_in_group(ui, label, cmd, log, what, None)
}

/// [`make`], recording the process group in `pgid_file` while it runs.
fn make_in_group(
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
            // The log must outlive the run: the temporary directory holding it is kept.
            KEEP_TMP_FOR_LOG.store(true, std::sync::atomic::Ordering::Relaxed);
            Err(fail_hint(
                Status::Build,
                format!(
                    "{what} failed (make exit status {})",
                    code.map_or("signal".to_string(), |c| c.to_string())
                ),
                format!("the full build log is {}", log.display()),
            ))
        }
    }
}

fn default_vmlinux() -> Option<PathBuf> {
    let rel = fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let p = PathBuf::from(format!("/lib/modules/{}/build/vmlinux", rel.trim()));
    p.is_file().then_some(p)
}

fn read_patches(paths: &[PathBuf]) -> Result<Vec<PatchInput>> {
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
fn packaged_target(args: &BuildArgs) -> Result<Option<(PathBuf, String)>> {
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

fn check(args: &BuildArgs, ui: &Ui, scratch: &Path) -> Result<Checked> {
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
    let src = tree::open_source(args.sourcedir.as_deref().unwrap_or(&cwd))?;
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
    tree::check_clean_for_out_of_tree(&src.path)?;
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
    let cc_line = tree::compiler_version(REAL_CC)?;
    if args.skip_compiler_check {
        ui.warn("--skip-compiler-check: not comparing the compiler with vmlinux's");
    } else {
        tree::check_compiler(
            &vmlinux,
            config.get("CONFIG_CC_VERSION_TEXT").map(String::as_str),
            &cc_line,
        )?;
    }
    let (files, notes) = apply::apply_in_scratch_fuzz(&src.path, &patches, scratch, args.fuzz)?;
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
    let module = args.module_name()?;
    let output_dir = match &args.output {
        Some(o) => o.clone(),
        None => cwd,
    };
    check_output_dir(&output_dir)?;
    let objtool_on_module = tree::objtool_on_module(&src.path, &config);
    let code_tables = code_tables(&config);
    // Before any build: a kernel that refuses unsigned modules and no key fails here.
    let sign = crate::sign::plan(
        &config,
        &user_build.dir,
        &crate::sign::Request {
            key: args.sign_key.as_deref(),
            cert: args.sign_cert.as_deref(),
            no_sign: args.no_sign,
        },
    )?;
    if let crate::sign::Plan::Unsigned(why) = &sign {
        ui.warn(&format!(
            "the module will not be signed ({why}): loading it taints the kernel (E); pass \
             --sign-key/--sign-cert to sign it"
        ));
    }
    Ok(Checked {
        objtool_on_module,
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
        cc_line,
        module,
        output_dir,
        cc: REAL_CC.to_string(),
        packaged: None,
    })
}

/// Phase 1 for a distribution kernel: its packages found under the root, the versions of
/// image, debug vmlinux, headers and source checked against each other, the source unpacked or
/// copied into the cache (lp-build's own tree: the user's is never written).
fn check_packaged(
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
    let cc = packaged::compiler_command(config.get("CONFIG_CC_VERSION_TEXT").map(String::as_str));
    let cc_line = tree::compiler_version(&cc)?;
    if args.skip_compiler_check {
        ui.warn("--skip-compiler-check: not comparing the compiler with vmlinux's");
    } else {
        tree::check_compiler(
            &vmlinux,
            config.get("CONFIG_CC_VERSION_TEXT").map(String::as_str),
            &cc_line,
        )?;
    }
    let module = args.module_name()?;
    let output_dir = match &args.output {
        Some(o) => o.clone(),
        None => cwd.to_path_buf(),
    };
    check_output_dir(&output_dir)?;
    // lp-build's own copy of the source, under its lock.
    let cache_root = cache::cache_root()?;
    let identity = match &p.source {
        Source::Tarball { path, .. } => crate::pristine::tarball_identity(path)?,
        Source::Tree(t) => {
            let t = fs::canonicalize(t).map_err(|e| {
                fail_hint(
                    Status::Input,
                    format!("kernel source tree {}: {e}", t.display()),
                    "pass the kernel source directory with -s/--sourcedir",
                )
            })?;
            format!("tree {}", t.display())
        }
    };
    let copy_dir = crate::pristine::location(&cache_root, &identity);
    fs::create_dir_all(&copy_dir).map_err(|e| {
        fail_hint(
            Status::Input,
            format!("cannot create {}: {e}", copy_dir.display()),
            "set LP_BUILD_CACHE to a writable directory",
        )
    })?;
    let (copy_lock, _) = Lock::acquire(&copy_dir.join("lock"), &copy_dir)?;
    let tree_path = match &p.source {
        Source::Tarball { path, .. } => {
            if crate::pristine::is_unpacked(&copy_dir) {
                crate::pristine::unpack_tarball(path, &copy_dir)?.0
            } else {
                ui.info(&format!(
                    "source: unpacking {} into {} (once)",
                    path.display(),
                    copy_dir.display()
                ));
                let pr = ui.progress("unpacking the source");
                let r = crate::pristine::unpack_tarball(path, &copy_dir);
                pr.finish(r.is_ok());
                r?.0
            }
        }
        Source::Tree(t) => {
            let t = tree::open_source(t)?;
            let dst = copy_dir.join("linux");
            let pr = ui.progress("copying the source tree");
            let r = crate::pristine::sync_tree(&t.path, &dst);
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
            dst
        }
    };
    drop(copy_lock);
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
    let (files, notes) = apply::apply_in_scratch_fuzz(&src.path, &patches, scratch, args.fuzz)?;
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
    let view = packaged::headers_view(&cache_root, &p)?;
    let objtool_on_module = tree::objtool_on_module(&src.path, &config);
    let code_tables = code_tables(&config);
    let sign = crate::sign::plan(
        &config,
        &view,
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
    Ok(Checked {
        objtool_on_module,
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
        cc_line,
        module,
        output_dir,
        cc,
        packaged: Some(p),
    })
}

/// The result of [`run`].
pub struct Outcome {
    /// The exit status.
    pub status: Status,
    /// The report (when the run got as far as the diff).
    pub report: Option<Report>,
}

/// Runs the whole pipeline. Errors carry their exit status (see [`crate::exit`]).
pub fn run(args: &BuildArgs, ui: &Ui) -> Result<Outcome> {
    let started = Instant::now();
    let mut times = PhaseTimes::default();
    let tmp = tempfile::Builder::new()
        .prefix("lp-build-")
        .tempdir()
        .context("creating a temporary directory")?;
    let tmp_path = tmp.path().to_path_buf();
    let keep = args.keep_tmp;
    // Keep or delete the temporary directory on every exit path.
    let _tmp_guard = TmpGuard {
        dir: Some(tmp),
        keep,
    };

    // Phase 1.
    let t = Instant::now();
    let span = tracing::info_span!("phase", name = "check").entered();
    let c = check(args, ui, &tmp_path.join("scratch"))?;
    ui.info(&format!(
        "lp-build: kernel {} in {}, {} patch file(s) changing {} file(s), module {}",
        c.src.version,
        c.src.path.display(),
        c.patches.len(),
        c.files.len(),
        c.module
    ));
    ui.info(&format!(
        "  vmlinux {} (build directory {}), config {}",
        c.vmlinux.path.display(),
        c.user_build.dir.display(),
        c.config_path.display()
    ));
    times.add("check", t.elapsed());
    drop(span);
    signals::check()?;
    if args.stop_after == Some(StopAfter::Check) {
        return Ok(Outcome {
            status: Status::Success,
            report: None,
        });
    }

    // Phase 2: the cache build.
    let t = Instant::now();
    let span = tracing::info_span!("phase", name = "original build").entered();
    let tc = &c.tc;
    let key = cache::build_key(&c.src.path, &c.src.version, &c.config_text, &c.cc_line);
    let entry = tc.entry(&key);
    let build_dir = entry.build_dir();
    fs::create_dir_all(&build_dir).with_context(|| format!("creating {}", build_dir.display()))?;
    let build_dir = fs::canonicalize(&build_dir)?;
    let wrapper = tc.wrapper()?;
    let jobs = args
        .jobs
        .map(|j| j.get())
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1);
    let kb = Kbuild {
        src: &c.src.path,
        build: build_dir.clone(),
        cc: format!("{} {} {}", wrapper.display(), ccwrap::SUBCOMMAND, c.cc),
        jobs,
        log: tmp_path.join("build.log"),
    };
    let cache_state = match &c.packaged {
        None => original_build(&kb, &entry, &c, &key, ui)?,
        Some(_) => prepared_build(&kb, &entry, &c, &key, ui)?,
    };
    times.add("original build", t.elapsed());
    drop(span);
    signals::check()?;

    // Phases 3 and 4: patched build, then restore whatever happens.
    let t = Instant::now();
    let span = tracing::info_span!("phase", name = "patched build").entered();
    let pairs_dir = tmp_path.join("objects");
    let changes = Changes::begin(
        &tc.journal_path(),
        &tc.work_dir(),
        &c.src.path,
        &build_dir,
        &c.files,
    )?;
    let built = patched_build(&kb, &changes, &c, &pairs_dir, ui, &pgid_file(tc));
    let restored = changes.restore();
    let restored = match restored {
        Ok(s) => s,
        Err(e) => {
            entry.invalidate();
            let e = e.context(format!(
                "restoring the tree failed; the journal {} is kept and the next lp-build run \
                 restores from it",
                tc.journal_path().display()
            ));
            if let Err(b) = built {
                ui.warn(&format!("the patched build had failed too: {b:#}"));
            }
            return Err(e);
        }
    };
    if ui.debug {
        ui.info(&format!(
            "restored {} source file(s) and {} object(s)",
            restored.sources, restored.objects
        ));
    }
    let pairs = built?;
    times.add("patched build", t.elapsed());
    drop(span);
    signals::check()?;

    // Which binary each object is linked into: kbuild's records of a complete build, or for a
    // distribution kernel the object's own compile command (module objects are compiled with
    // -DMODULE and their module's name); vmlinux membership is checked with vmlinux's symbols.
    let objects = match &c.packaged {
        None => Some(Objects::read(&build_dir)?),
        Some(_) => None,
    };
    let mut ignored = Vec::new();
    let mut work: Vec<(Pair, Owner)> = Vec::new();
    for p in pairs {
        let owner = match &objects {
            Some(o) => o.owner(&p.rel),
            None => match crate::packaged::object_module(&build_dir, &p.rel) {
                Some(name) => Owner::Module {
                    path: name.clone(),
                    name: name.replace('-', "_"),
                },
                None => Owner::Vmlinux,
            },
        };
        match owner {
            Owner::Other => ignored.push(p.rel.clone()),
            owner => work.push((p, owner)),
        }
    }
    for i in &ignored {
        ui.warn(&format!(
            "{i} was rebuilt but is linked into neither vmlinux nor a module: its changes are not \
             in the livepatch"
        ));
    }
    if args.stop_after == Some(StopAfter::Build) {
        for (p, owner) in &work {
            println!("rebuilt {} ({})", p.rel, owner_name(owner));
        }
        return Ok(Outcome {
            status: Status::Success,
            report: None,
        });
    }
    if work.is_empty() {
        return Err(fail_hint(
            Status::NoChange,
            "the patches changed no object of vmlinux or a module",
            "a change to a header only matters where it is included and used",
        ));
    }

    // Phase 6 before the diff: the differ needs the entry sizes.
    let t = Instant::now();
    let entry_sizes = entry_sizes(&kb, &entry, &c, &tmp_path, ui)?;
    times.add("entry sizes", t.elapsed());
    signals::check()?;

    // Phase 5: diff.
    let t = Instant::now();
    let span = tracing::info_span!("phase", name = "diff").entered();
    test_pause_diff();
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
    for (_, owner) in &work {
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
                alias_prefix: alias_prefix(&p.rel),
                explain: ui.debug || args.show_first_changed,
                    };
            let r = lp_diff::diff(&orig, &patched, &opts).map_err(|e| {
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
    diffs.sort_by(|a, b| a.0.rel.cmp(&b.0.rel));
    refuse_ambiguous_ftrace_sites(&c.vmlinux.bytes, &mut diffs);
    times.add("diff", t.elapsed());
    drop(span);
    signals::check()?;

    let mut object_reports: Vec<ObjectReport> = diffs
        .iter()
        .map(|(p, obj, r)| ObjectReport {
            object: obj.clone(),
            source: p.rel.clone(),
            outcome: outcome_name(r.outcome).to_string(),
            changed_functions: r.changed_functions.clone(),
            new_functions: r.new_functions.clone(),
            errors: r.errors.clone(),
            warnings: r.warnings.clone(),
        })
        .collect();
    for i in &ignored {
        object_reports.push(ObjectReport {
            object: String::new(),
            source: i.clone(),
            outcome: "ignored".into(),
            changed_functions: vec![],
            new_functions: vec![],
            errors: vec![],
            warnings: vec![],
        });
    }
    for (p, obj, r) in &diffs {
        if r.outcome != lp_diff::Outcome::NoChange || ui.debug {
            print_diff_text(&format!("{obj}: {}", p.rel), r);
            if ui.debug {
                for (f, why) in &r.explanations {
                    println!("  why {f} changed:\n{why}");
                }
            }
            if args.show_first_changed {
                for (f, why) in &r.explanations {
                    println!("{}", crate::commands::first_changed(&p.rel, f, why));
                }
            }
        }
    }
    let mut report = Report {
        lp_build_version: env!("CARGO_PKG_VERSION").to_string(),
        outcome: String::new(),
        module: c.module.clone(),
        output: None,
        kernel: c.src.version.clone(),
        source_tree: c.src.path.clone(),
        patches: c
            .patches
            .iter()
            .map(|p| PatchFileReport {
                file: p.name.clone(),
                sha256: p.sha256.clone(),
            })
            .collect(),
        cache_build: build_dir.clone(),
        cache: cache_state.to_string(),
        objects: object_reports,
        entry_sizes: entry_sizes.clone(),
        phases: times.clone(),
        signed_with: match &c.sign {
            crate::sign::Plan::Sign(s) => Some(s.key.clone()),
            _ => None,
        },
    };
    let refused: Vec<&(Pair, String, lp_diff::DiffResult)> = diffs
        .iter()
        .filter(|d| d.2.outcome == lp_diff::Outcome::Refused)
        .collect();
    if !refused.is_empty() {
        report.outcome = "refused".into();
        write_report(args, &c, &report)?;
        let n: usize = refused.iter().map(|d| d.2.errors.len()).sum();
        return Err(fail_hint(
            Status::Refused,
            format!(
                "the patch cannot be live-patched safely: {n} refusal(s) in {} object(s) ({})",
                refused.len(),
                refused
                    .iter()
                    .map(|d| d.0.rel.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "each refusal above says what to change (shadow variables or callbacks for data, \
             no __init or notrace code)",
        ));
    }
    let records: Vec<lp_diff::PatchRecord> = diffs
        .iter()
        .filter(|d| d.2.outcome == lp_diff::Outcome::Patch)
        .map(|d| d.2.record.clone())
        .collect();
    if records.is_empty() {
        report.outcome = "no-change".into();
        write_report(args, &c, &report)?;
        return Err(fail_hint(
            Status::NoChange,
            format!("{} rebuilt object(s), no function changed", diffs.len()),
            "comments, whitespace and changes the compiler optimizes away need no livepatch",
        ));
    }
    if args.stop_after == Some(StopAfter::Diff) {
        report.outcome = "patch".into();
        return Ok(Outcome {
            status: Status::Success,
            report: Some(report),
        });
    }
    signals::check()?;

    // Phase 7: the module.
    let t = Instant::now();
    let spec = lp_emit::ModuleSpec {
        name: c.module.clone(),
        replace: !args.non_replace,
        cumulative: args.cumulative,
        patch_version: args.patch_version,
        lp_build_version: env!("CARGO_PKG_VERSION").to_string(),
        sources: c
            .patches
            .iter()
            .map(|p| (p.name.clone(), p.sha256.clone()))
            .collect(),
        records,
    };
    let patch_objects: Vec<(String, Vec<u8>)> = diffs
        .iter()
        .filter(|d| d.2.outcome == lp_diff::Outcome::Patch)
        .filter_map(|d| {
            let name = format!("lp-patch-{}", d.0.rel.replace(['/', '.'], "_"));
            let name = format!("{}.o", name.trim_end_matches("_o"));
            d.2.output.clone().map(|o| (name, o))
        })
        .collect();
    let counts: BTreeMap<String, HashMap<String, usize>> = parents
        .iter()
        .map(|(name, parent)| (name.clone(), parent.name_counts()))
        .collect();
    let ko_path = build_module(
        &spec,
        &patch_objects,
        &c,
        &tmp_path,
        ui,
        lp_emit::ValidateContext {
            exports: Some(all_exports),
            symbol_counts: Some(counts),
            crcs: Some(crcs),
            vermagic: crate::vermagic::kernel_vermagic(&c.vmlinux.bytes),
            code_tables: Some(c.code_tables),
        },
        jobs,
    )?;
    times.add("module", t.elapsed());
    report.phases = times.clone();
    report.outcome = "patch".into();
    report.output = Some(ko_path.clone());
    write_report(args, &c, &report)?;

    println!("wrote {}", ko_path.display());
    let summary: Vec<String> = times
        .0
        .iter()
        .map(|(n, s)| format!("{n} {}", secs(Duration::from_secs_f64(*s))))
        .collect();
    ui.info(&format!(
        "done in {} ({})",
        secs(started.elapsed()),
        summary.join(", ")
    ));
    Ok(Outcome {
        status: Status::Success,
        report: Some(report),
    })
}

fn owner_name(o: &Owner) -> String {
    match o {
        Owner::Vmlinux => "vmlinux".into(),
        Owner::Module { name, .. } => format!("module {name}"),
        Owner::Other => "not linked".into(),
    }
}

/// Set when a make failed: its log, named in the error's hint, lives in the temporary directory.
static KEEP_TMP_FOR_LOG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

struct TmpGuard {
    dir: Option<tempfile::TempDir>,
    keep: bool,
}

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            let for_log = KEEP_TMP_FOR_LOG.load(std::sync::atomic::Ordering::Relaxed);
            if self.keep || for_log {
                let p = d.keep();
                let why = if self.keep {
                    ""
                } else {
                    " (it holds the failed build's log)"
                };
                eprintln!("kept the temporary directory {}{why}", p.display());
            }
        }
    }
}

/// The file holding the process group of the make that builds in the patched tree.
fn pgid_file(tc: &TreeCache) -> PathBuf {
    tc.dir.join("make.pgid")
}

/// A run with another cache (another user, another `LP_BUILD_CACHE`) that died with the tree
/// patched left the tree's marker naming its journal: restore the tree from it, or say how to.
/// (The tree's own lock, held now, proves that run is gone.)
fn recover_other_cache(src: &Path, tc: &TreeCache, ui: &Ui) -> Result<()> {
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

fn recover(tc: &TreeCache, ui: &Ui) -> Result<()> {
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

fn original_build(
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
            "original build: first use of this tree, configuration and compiler: building the \
             kernel with function sections in {} (this takes a while)",
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
    make(
        ui,
        "building the original kernel",
        kb.command(&["vmlinux", "modules"]),
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
fn prepared_build(
    kb: &Kbuild,
    entry: &CacheEntry,
    c: &Checked,
    key: &str,
    ui: &Ui,
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
    let goals = packaged_goals(&c.files)?;
    let goals: Vec<&str> = goals.iter().map(String::as_str).collect();
    make(
        ui,
        "building the original objects",
        kb.command(&goals),
        &kb.log,
        "building the original objects (without the patch)",
    )?;
    Ok(state)
}

/// The objects to compile for a distribution kernel: one per patched `.c` file. A changed
/// header is refused: without a complete build lp-build cannot know every object that
/// includes it.
fn packaged_goals(files: &[apply::FileResult]) -> Result<Vec<String>> {
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
            "move the change into the .c files that need it, or build the kernel once with \
             `make O=DIR` and pass -v DIR/vmlinux (the full build considers every object)",
        ));
    }
    Ok(goals)
}

/// The make goals that compile every object of vmlinux and the modules without linking
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

/// Refuses vmlinux functions whose kallsyms range in the running kernel holds more than one
/// ftrace call site (see `ftrace_sites`): the kernel may attach the patch to the wrong one.
fn refuse_ambiguous_ftrace_sites(
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
                    r.errors.push(lp_diff::Diagnostic {
                        object: pair.rel.clone(),
                        section: format!(".text.{}", f.old_name),
                        symbol: f.old_name.clone(),
                        message: format!(
                            "in the running kernel, `{}` [{start:#x}, {end:#x}) holds {n} ftrace \
                             call sites (code without a symbol follows it, e.g. an overridden \
                             __weak function): the kernel may attach the patch to the wrong \
                             one and change nothing; patch its callers instead",
                            f.old_name
                        ),
                    });
                }
            }
        }
        if !r.errors.is_empty() {
            r.outcome = lp_diff::Outcome::Refused;
            r.output = None;
        }
    }
}

fn patched_build(
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

fn entry_sizes(
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
    let mut cmd = match &c.packaged {
        None => {
            let mut cmd = kb.command(&[]);
            cmd.arg(format!("M={}", dir.display()));
            cmd
        }
        // Against the headers package, which the livepatch module is built against too.
        Some(_) => module_make(c, &dir),
    };
    cmd.arg("modules");
    make(
        ui,
        "measuring special-section entries",
        cmd,
        &kb.log,
        "building the entry-size probe module",
    )?;
    let obj = fs::read(dir.join("lp_probe.o")).context("reading the probe object")?;
    let sizes = probe::read_sizes(&obj)?;
    write_atomic(&cached, &serde_json::to_vec_pretty(&sizes)?)?;
    if ui.debug {
        ui.info(&format!("entry sizes: {sizes:?}"));
    }
    Ok(sizes)
}

fn build_module(
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
fn module_make(c: &Checked, dir: &Path) -> Command {
    let mut cmd = Command::new("make");
    match &c.packaged {
        None => cmd
            .arg("-C")
            .arg(&c.src.path)
            .arg(format!("O={}", c.user_build.dir.display())),
        Some(_) => cmd.arg("-C").arg(&c.user_build.dir),
    };
    cmd.arg(format!("M={}", dir.display()))
        .env("LC_ALL", "C")
        .env_remove(ccwrap::ENV_SAVE_DIR)
        .env_remove(ccwrap::ENV_OBJTREE)
        .env_remove("KBUILD_OUTPUT");
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

fn refuse_objtool_warnings(log: &Path, module: &str) -> Result<()> {
    let text = fs::read_to_string(log).unwrap_or_default();
    let warnings = objtool_warnings(&text);
    if warnings.is_empty() {
        return Ok(());
    }
    for w in &warnings {
        eprintln!("  | {w}");
    }
    KEEP_TMP_FOR_LOG.store(true, std::sync::atomic::Ordering::Relaxed);
    Err(fail_hint(
        Status::Build,
        format!(
            "objtool warned about {module} ({} line(s); first: {}): its ORC or mitigation tables \
             would be incomplete",
            warnings.len(),
            warnings[0]
        ),
        format!(
            "this is a bug in lp-build unless the patched code itself confuses objtool; the full \
             build log is {}",
            log.display()
        ),
    ))
}

const OUTPUT_HINT: &str =
    "pass a writable directory with free space with -o/--output (default: the current directory)";

/// Checks before any build that the output directory can be created and written, so a long
/// build does not end with nowhere to put the module.
fn check_output_dir(dir: &Path) -> Result<()> {
    let r = fs::create_dir_all(dir).and_then(|()| tempfile::tempfile_in(dir).map(drop));
    r.map_err(|e| {
        fail_hint(
            Status::Input,
            format!("output directory {}: {e}", dir.display()),
            OUTPUT_HINT,
        )
    })
}

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

/// Test-only hook: with `LP_BUILD_TEST_PAUSE_DIFF=FILE`, the diff phase creates FILE and waits
/// (at most 60 s) for SIGINT/SIGTERM, so tests can interrupt the run in that phase.
pub const ENV_TEST_PAUSE_DIFF: &str = "LP_BUILD_TEST_PAUSE_DIFF";

fn test_pause_diff() {
    if let Some(marker) = std::env::var_os(ENV_TEST_PAUSE_DIFF) {
        let _ = fs::write(&marker, b"");
        let start = Instant::now();
        while !signals::interrupted() && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn write_report(args: &BuildArgs, c: &Checked, report: &Report) -> Result<()> {
    if !args.json {
        return Ok(());
    }
    let p = c.output_dir.join(format!("{}.json", c.module));
    write_output(&p, &serde_json::to_vec_pretty(report)?, OUTPUT_HINT)?;
    eprintln!("wrote {}", p.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objtool_warnings_are_found_in_the_module_log() {
        let log = "  CC [M]  /tmp/m/livepatch-x-core.o\n  LD [M]  /tmp/m/livepatch-x.o\n\
                   /tmp/m/livepatch-x.o: warning: objtool: __jump_table+0x8: can't find key reloc\n\
                   /tmp/m/livepatch-x.o: error: objtool: f+0x1c: unannotated intra-function call\n\
                   warning: some other tool\n";
        assert_eq!(
            objtool_warnings(log),
            [
                "/tmp/m/livepatch-x.o: warning: objtool: __jump_table+0x8: can't find key reloc",
                "/tmp/m/livepatch-x.o: error: objtool: f+0x1c: unannotated intra-function call"
            ]
        );
        assert!(objtool_warnings("  LD [M]  x.o\n  MODPOST Module.symvers\n").is_empty());
        // The core's klp_func arrays point at patched functions that need no ENDBR.
        let endbr = "/tmp/m/livepatch-x.o: warning: objtool: lp_core_funcs0+0xab8: data \
                     relocation to !ENDBR: override_release+0x0\n";
        assert!(objtool_warnings(endbr).is_empty());
        let other = "/tmp/m/livepatch-x.o: warning: objtool: lp_cbs+0x8: data relocation to \
                     !ENDBR: f+0x0\n";
        assert_eq!(objtool_warnings(other).len(), 1);
    }

    #[test]
    fn targeted_goals_only_for_c_files_with_objects() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("fs/proc")).unwrap();
        std::fs::write(dir.path().join("fs/proc/cmdline.o"), b"").unwrap();
        let file = |path: &str| apply::FileResult {
            path: path.into(),
            orig: Some(b"x".to_vec()),
            patched: Some(b"y".to_vec()),
        };
        assert_eq!(
            targeted_goals(&[file("fs/proc/cmdline.c")], dir.path()),
            Some(vec!["fs/proc/cmdline.o".to_string()])
        );
        // A header, a .c without object, a new file: the whole tree is considered.
        assert_eq!(
            targeted_goals(&[file("include/linux/fs.h")], dir.path()),
            None
        );
        assert_eq!(
            targeted_goals(&[file("fs/proc/version.c")], dir.path()),
            None
        );
        let mut new = file("fs/proc/cmdline.c");
        new.orig = None;
        assert_eq!(targeted_goals(&[new], dir.path()), None);
    }

    #[test]
    fn goals_for_the_patched_build() {
        assert_eq!(
            patched_goals("build-dir\t:= .\nvmlinux.a: x\n"),
            [".", "KBUILD_MODULES=1"]
        );
        assert_eq!(
            patched_goals("PHONY += descend $(build-dirs)\ndescend: $(build-dirs)\n"),
            ["descend", "KBUILD_MODULES=1"]
        );
        assert_eq!(patched_goals("all:\n"), ["vmlinux", "modules"]);
    }
}
