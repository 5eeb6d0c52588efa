//! `cargo xtask bench --vs-klp-build [--kernel 7.2]`: the kernel's own klp-build and lp-build on
//! the same tree, configuration and one-function patch (the `cmdline` case, which changes
//! `cmdline_proc_show`), measured in one run, and both modules proven in the VM with the same
//! check.
//!
//! - klp-build works in the source tree itself, so it gets a copy of the test kernel's source
//!   (`target/bench-klp/<ver>/tree`) with the test kernel's `.config`. Its default run cleans
//!   the tree and builds the whole kernel twice (original, patched); `-S 2` (short-circuit,
//!   after a `--keep-tmp` run) reuses the original build and only builds the patched kernel.
//! - lp-build runs as the e2e runs it (`-s SRC -v VMLINUX`): cold with an empty cache of its own
//!   (`target/bench-klp/<ver>/lp-cache`, the first run on the tree), then warm.
//!
//! The runs are sequential (a shared 2-core machine: concurrent runs would measure each other);
//! the machine's load is printed with the results.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::e2e;
use crate::kernel::{self, KernelOptions};
use crate::vm::{Outcome, Vm};

/// One measured build: its time and the module it made.
struct Measured {
    what: &'static str,
    time: Duration,
    module: PathBuf,
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "?".into())
}

fn timed(what: &'static str, module: PathBuf, cmd: &mut Command) -> Result<Measured> {
    let load_before = load();
    let t = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {what}: {cmd:?}"))?;
    let time = t.elapsed();
    if !status.success() {
        bail!("{what} failed ({status}): {cmd:?}");
    }
    if !module.is_file() {
        bail!("{what} made no {}", module.display());
    }
    println!(
        "bench-klp: {what}: {} (load {load_before} -> {})",
        kernel::secs(time),
        load()
    );
    Ok(Measured { what, time, module })
}

/// klp-build's tree: a copy of the test kernel's source (klp-build builds in place) with the
/// test kernel's configuration. Made once; klp-build cleans it itself on a default run.
fn klp_tree(k: &kernel::TestKernel, work: &Path) -> Result<PathBuf> {
    let tree = work.join("tree");
    // An objtool built before libxxhash was installed has no `klp`: start that tree afresh.
    let objtool = tree.join("tools/objtool/objtool");
    if objtool.is_file() {
        let out = Command::new(&objtool).arg("klp").output()?;
        if String::from_utf8_lossy(&out.stderr).contains("not implemented") {
            std::fs::remove_dir_all(&tree)?;
        }
    }
    if !tree.join("Makefile").is_file() {
        let _ = std::fs::remove_dir_all(&tree);
        std::fs::create_dir_all(work)?;
        crate::run(Command::new("cp").arg("-a").arg(&k.src).arg(&tree))?;
    }
    std::fs::copy(k.build.join(".config"), tree.join(".config"))
        .context("copying the test kernel's .config into klp-build's tree")?;
    Ok(tree)
}

fn klp_build(tree: &Path, patch: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(tree.join("scripts/livepatch/klp-build"));
    cmd.current_dir(tree)
        .args(extra)
        .arg("--keep-tmp")
        .arg(format!("--jobs={}", kernel::jobs(None)))
        .arg(format!("--output={}", out.display()))
        .arg(patch);
    cmd
}

pub fn task(version: &str) -> Result<()> {
    let k = kernel::ensure(&KernelOptions::new(version))?;
    if !k.src.join("scripts/livepatch/klp-build").is_file() {
        bail!(
            "{} has no scripts/livepatch/klp-build (the kernel's own builder exists since 6.19); \
             hint: --kernel 7.2",
            k.src.display()
        );
    }
    // klp-build's own tools: recountdiff/filterdiff (patchutils) and gawk; objtool's `klp`
    // subcommand is only built when libxxhash is there (else "klp not implemented").
    let needs = [
        ("patchutils", "/usr/bin/recountdiff"),
        ("gawk", "/usr/bin/gawk"),
        ("libxxhash-dev", "/usr/include/xxhash.h"),
    ];
    let missing: Vec<&str> = needs
        .iter()
        .filter(|(_, f)| !Path::new(f).exists())
        .map(|(p, _)| *p)
        .collect();
    if !missing.is_empty() {
        if !kernel::is_root() {
            bail!(
                "klp-build needs {}; install with: sudo apt-get install {}",
                missing.join(", "),
                missing.join(" ")
            );
        }
        crate::run(
            Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    let case = crate::root().join("test-kernels/cases/cmdline");
    let build = e2e::builds_of(&case, &k.version)?
        .into_iter()
        .next()
        .context("the cmdline case has no build")?;
    let patch = build
        .patches
        .first()
        .context("the cmdline case has no patch")?
        .clone();
    let work = crate::root().join("target/bench-klp").join(&k.version);
    let tree = klp_tree(&k, &work)?;
    let lp_build = e2e::lp_build_binary()?;
    let out = work.join("out");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;

    // The module name is the output file's: livepatch-cmdline.ko, as the case's check expects.
    let klp_default_dir = out.join("klp-default");
    let klp_short_dir = out.join("klp-short");
    std::fs::create_dir_all(&klp_default_dir)?;
    std::fs::create_dir_all(&klp_short_dir)?;
    let ko = "livepatch-cmdline.ko";
    let klp_default = timed(
        "klp-build (default: clean, original and patched builds)",
        klp_default_dir.join(ko),
        &mut klp_build(&tree, &patch, &klp_default_dir.join(ko), &[]),
    )?;
    let klp_short = timed(
        "klp-build -S 2 (reuses its original build)",
        klp_short_dir.join(ko),
        &mut klp_build(
            &tree,
            &patch,
            &klp_short_dir.join(ko),
            &["--short-circuit=2"],
        ),
    )?;

    let cache = work.join("lp-cache");
    let _ = std::fs::remove_dir_all(&cache);
    let lp = |what: &'static str, dir: &str| -> Result<Measured> {
        let dir = out.join(dir);
        std::fs::create_dir_all(&dir)?;
        let mut cmd = Command::new(&lp_build);
        cmd.arg("--patch")
            .arg(&patch)
            .arg("-s")
            .arg(&k.src)
            .arg("-v")
            .arg(&k.vmlinux)
            .arg("-n")
            .arg("cmdline")
            .arg("-o")
            .arg(&dir)
            .env("LP_BUILD_CACHE", &cache);
        timed(what, dir.join(ko), &mut cmd)
    };
    let lp_cold = lp(
        "lp-build cold (empty cache: first run on the tree)",
        "lp-cold",
    )?;
    let lp_warm = lp("lp-build warm", "lp-warm")?;

    // Both kinds of module in the VM, with the case's own check.
    let script = case.join("check.sh");
    let mut proven = Vec::new();
    for (tool, m) in [("klp-build", &klp_default), ("lp-build", &lp_warm)] {
        let mut vm = Vm::new(&k.bzimage, &script, &out.join(format!("vm-{tool}")));
        vm.modules = vec![m.module.clone()];
        let result = vm.run()?;
        match result.outcome {
            Outcome::Pass => proven.push(format!(
                "{tool}'s module passes the cmdline check in the VM (console {})",
                result.log.display()
            )),
            Outcome::Fail(why) => bail!(
                "{tool}'s module fails in the VM: {why} (console {})",
                result.log.display()
            ),
        }
    }

    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let base = lp_warm.time.as_secs_f64().max(1e-3);
    println!(
        "\nklp-build vs lp-build on {} ({}), patch {}:",
        k.release,
        tree.display(),
        patch.display()
    );
    println!("| run | time | vs lp-build warm | module bytes |\n| --- | --- | --- | --- |");
    for r in [&klp_default, &klp_short, &lp_cold, &lp_warm] {
        println!(
            "| {} | {} | {:.1}x | {} |",
            r.what,
            kernel::secs(r.time),
            r.time.as_secs_f64() / base,
            size(&r.module)
        );
    }
    println!(
        "klp-build default / lp-build cold: {:.2}x; klp-build -S 2 / lp-build warm: {:.2}x",
        klp_default.time.as_secs_f64() / lp_cold.time.as_secs_f64().max(1e-3),
        klp_short.time.as_secs_f64() / base
    );
    for p in proven {
        println!("{p}");
    }
    Ok(())
}
