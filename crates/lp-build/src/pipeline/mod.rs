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
//! `run` below is the pipeline; the phases live beside it: `check.rs` (1), `build.rs` (2 to 4),
//! `diff.rs` (5), `module.rs` (6, 7), `report.rs` (the JSON report).
//!
//! Only this crate touches the kernel tree, writes files and runs processes.

use crate::apply::{self, PatchInput};
use crate::cache::{self, CacheEntry, Lock, Stamp, TreeCache, KCFLAGS};
use crate::ccwrap;
use crate::cli::{BuildArgs, StopAfter};
use crate::commands::{alias_prefix, outcome_name, print_diff_text};
use crate::exit::{self, fail_hint, Failure, Status};
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

mod build;
mod check;
mod diff;
mod module;
mod report;

use build::*;
pub use build::{patched_goals, targeted_goals};
use check::*;
pub use diff::ENV_TEST_PAUSE_DIFF;
pub(crate) use diff::LLVM_BITCODE_HINT;
use diff::*;
pub(crate) use module::write_output;
use module::*;
pub use module::{code_tables, objtool_warnings, ENV_TEST_FAIL_WRITE};
use report::{object_reports, write_report};
pub use report::{ObjectReport, PatchFileReport, Report};

/// Time spent per phase.
#[derive(Debug, Default, Clone, Serialize)]
pub struct PhaseTimes(pub Vec<(String, f64)>);

impl PhaseTimes {
    fn add(&mut self, name: &str, d: Duration) {
        self.0.push((name.to_string(), d.as_secs_f64()));
    }
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
    let tmp = tempfile::Builder::new()
        .prefix("lp-build-")
        .tempdir()
        .context("creating a temporary directory")?;
    let tmp_path = tmp.path().to_path_buf();
    // Keep or delete the temporary directory on every exit path, panics included.
    let mut guard = TmpGuard {
        dir: Some(tmp),
        keep: args.keep_tmp,
        for_log: false,
    };
    let r = pipeline(args, ui, &tmp_path, started);
    // A failure whose hint names a log in the temporary directory keeps the directory.
    guard.for_log = r.as_ref().err().and_then(exit::failure_log).is_some();
    r
}

/// The pipeline, phase by phase, in the temporary directory `tmp_path`.
fn pipeline(args: &BuildArgs, ui: &Ui, tmp_path: &Path, started: Instant) -> Result<Outcome> {
    let mut times = PhaseTimes::default();
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
    let key = cache::build_key(
        &c.src.path,
        &c.src.version,
        &c.config_text,
        &c.toolchain.cc_line,
    );
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
        toolchain: &c.toolchain,
        cc: format!(
            "{} {} {}",
            wrapper.display(),
            ccwrap::SUBCOMMAND,
            c.toolchain.cc
        ),
        jobs,
        log: tmp_path.join("build.log"),
    };
    let cache_state = match &c.packaged {
        None => original_build(&kb, &entry, &c, &key, ui)?,
        Some(_) => prepared_build(&kb, &entry, &c, &key, ui, args.full_build)?,
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

    // Which binary each object is linked into: kbuild's records of the user's complete build
    // (the cache build compiles objects and links nothing), or for a distribution kernel the
    // object's own compile command (module objects are compiled with -DMODULE and their
    // module's name); vmlinux membership is checked with vmlinux's symbols.
    let objects = match &c.packaged {
        None => Some(Objects::read(&c.user_build.dir)?),
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
    let entry_sizes = entry_sizes(&kb, &entry, &c, tmp_path, ui)?;
    times.add("entry sizes", t.elapsed());
    signals::check()?;

    // Phase 5: diff.
    let t = Instant::now();
    let span = tracing::info_span!("phase", name = "diff").entered();
    test_pause_diff();
    let ks = kernel_symbols(&c, &mut work, &mut ignored, ui)?;
    let mut diffs = diff_pairs(&c, args, ui, &work, &ks, &entry_sizes)?;
    let KernelSymbols {
        parents,
        all_exports,
        crcs,
        ..
    } = ks;
    diffs.sort_by(|a, b| a.0.rel.cmp(&b.0.rel));
    refuse_ambiguous_ftrace_sites(&c.vmlinux.bytes, &mut diffs);
    times.add("diff", t.elapsed());
    drop(span);
    signals::check()?;

    let object_reports = object_reports(&diffs, &ignored);
    print_diffs(&diffs, ui, args.show_first_changed);
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
        tmp_path,
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

struct TmpGuard {
    dir: Option<tempfile::TempDir>,
    /// `-T/--keep-tmp`.
    keep: bool,
    /// The run failed with a log in the directory ([`exit::failure_log`]).
    for_log: bool,
}

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            if self.keep || self.for_log {
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
