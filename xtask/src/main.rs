//! `cargo xtask <task>`: the project's automation (CI, test kernel, VM end-to-end, benchmarks).
//!
//! Each task is a function; `main` only dispatches.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

mod archmap;
mod bench_distro;
mod bench_klp;
mod deb;
mod dist;
mod distro;
mod e2e;
mod kernel;
mod vm;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  ci        fmt check, clippy -D warnings, the test kernel, all tests (those that compile
            kernel sources against its build included), then e2e on the kernels of
            LP_E2E_KERNELS (default 6.12) and on the stock kernels of LP_E2E_DISTROS
            (default debian-6.12) (what .ci/run calls)
  test      all tests (no kernel, no VM)
  e2e       lp-build on every case of test-kernels/cases, each module proven in the VM
            [--kernel 6.12|6.1|7.2 | --distro debian-6.12|debian-6.1] [--case DIR ...]
  demo      the whole story on the bundled test kernel: build it, patch /proc/cmdline,
            show the behaviour before, while patched and after in the VM
  bench     the differ over the real-object corpus (in process and as processes);
            --warm [--kernel VER]: lp-build's warm path on the test kernel beside its floor;
            --distro NAME [--root DIR]: cold and warm on a distribution's stock kernel, from
            its extracted packages, beside a whole build of its configuration;
            --dbg [--distro NAME]: vmlinux out of the debug package, stop-at-file vs dpkg-deb|tar;
            --vs-klp-build [--kernel 7.2]: the kernel's klp-build (default and -S 2) beside
            lp-build (cold and warm) on one patch, both modules checked in the VM
  kernel    build the test kernel [--kernel 6.12|6.1|7.2] [--source DIR] [-j N]
  vm        boot the test VM [--kernel VER] [--ko FILE.ko ...] [--file FILE ...] [--script FILE]
  vm-selftest  boot the test kernel and load/unload the kernel's sample livepatch [--kernel VER];
            --distro NAME: boot the stock kernel, load/use/unload its own binfmt_misc
  distro    download and extract a distribution's stock kernel packages (no install)
            --distro debian-6.12|debian-6.1
  dist      the Debian package (binaries, man pages, completions, lpctl.service) in
            target/dist [--debug] [--out DIR]
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        print!("{USAGE}");
        bail!("no task given");
    };
    let rest = &args[1..];
    match task.as_str() {
        "ci" => ci(rest),
        "test" => test(rest),
        "e2e" => e2e::task(rest),
        "demo" => e2e::demo(rest),
        "bench" => bench(rest),
        "kernel" => kernel::task(rest),
        "vm" => vm::task(rest),
        "vm-selftest" => vm::selftest(rest),
        "dist" => dist::task(rest),
        "distro" => distro_task(rest),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            print!("{USAGE}");
            bail!("unknown task `{other}`")
        }
    }
}

/// The workspace root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Runs a command in the workspace root, failing with the command line when it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    eprintln!("+ {shown}");
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn ci(_rest: &[String]) -> Result<()> {
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    let kernels = std::env::var("LP_E2E_KERNELS").unwrap_or_else(|_| "6.12".into());
    // The test kernel first: the tests that compile real kernel sources against its build
    // (crates/lp-build/tests/syscall_headers.rs) then check something in CI too.
    let first = kernels.split_whitespace().next().unwrap_or("6.12");
    let k = kernel::ensure(&kernel::KernelOptions::new(first))?;
    run(cargo()
        .args(["test", "--workspace"])
        .env("LP_TEST_KERNEL_BUILD", &k.build))?;
    for k in kernels.split_whitespace() {
        e2e::task(&["--kernel".to_string(), k.to_string()])?;
    }
    // The stock kernels of a distribution (LP_E2E_DISTROS, default debian-6.12; empty: none):
    // the stock boot with its own module first, then the cases that list it in `distros = `.
    let distros = std::env::var("LP_E2E_DISTROS").unwrap_or_else(|_| "debian-6.12".into());
    for d in distros.split_whitespace() {
        vm::selftest(&["--distro".to_string(), d.to_string()])?;
        e2e::task(&["--distro".to_string(), d.to_string()])?;
    }
    Ok(())
}

/// The value of `--NAME` in `rest`, if given.
fn option<'a>(rest: &'a [String], name: &str) -> Option<&'a str> {
    rest.iter()
        .position(|a| a == name)
        .and_then(|i| rest.get(i + 1))
        .map(String::as_str)
}

/// `cargo xtask distro --distro NAME`: the packages downloaded and extracted, paths printed.
fn distro_task(rest: &[String]) -> Result<()> {
    let name = option(rest, "--distro").unwrap_or("debian-6.12");
    let k = distro::ensure(name)?;
    println!(
        "{} ({}, Debian {})",
        name, k.distro.release, k.distro.version
    );
    println!("  root     {}", k.root.display());
    println!("  vmlinuz  {}", k.vmlinuz.display());
    println!("  vmlinux  {}", k.vmlinux.display());
    for m in &k.guest_modules {
        println!("  module   {}", m.display());
    }
    Ok(())
}

fn bench(rest: &[String]) -> Result<()> {
    if rest.iter().any(|a| a == "--dbg") {
        return distro::bench_dbg(option(rest, "--distro").unwrap_or("debian-6.12"));
    }
    if rest.iter().any(|a| a == "--distro") {
        return bench_distro::task(rest);
    }
    if rest.iter().any(|a| a == "--vs-klp-build") {
        return bench_klp::task(option(rest, "--kernel").unwrap_or("7.2"));
    }
    if rest.iter().any(|a| a == "--warm") {
        let version = rest
            .iter()
            .position(|a| a == "--kernel")
            .and_then(|i| rest.get(i + 1))
            .map_or("6.12", String::as_str);
        return e2e::bench_warm(version);
    }
    run(cargo().args([
        "run",
        "--release",
        "-q",
        "-p",
        "lp-diff",
        "--example",
        "corpus_bench",
    ]))?;
    whole_process_bench()
}

/// The differ as a whole process (`lp-build diff ORIG PATCHED -o OUT`, start-up included) over
/// every pair of the x86_64 corpus, one process per pair, best of 5 runs of the whole corpus.
fn whole_process_bench() -> Result<()> {
    run(cargo().args(["build", "--release", "-q", "-p", "lp-build"]))?;
    let lp_build = root().join("target/release/lp-build");
    let corpus = std::env::var_os("LP_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/corpus/kpatch-unit-x86_64"));
    let tsv = std::fs::read_to_string(corpus.join("cases.tsv"))
        .with_context(|| format!("reading {}/cases.tsv", corpus.display()))?;
    let cases: Vec<&str> = tsv
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split('\t').next())
        .collect();
    let out = std::env::temp_dir().join(format!("lp-bench-{}.o", std::process::id()));
    let mut best = f64::MAX;
    let mut slowest = (0.0f64, "");
    for _ in 0..5 {
        let t = std::time::Instant::now();
        for c in &cases {
            let one = std::time::Instant::now();
            Command::new(&lp_build)
                .arg("diff")
                .arg(corpus.join(format!("{c}.ORIG.o")))
                .arg(corpus.join(format!("{c}.PATCHED.o")))
                .arg("-o")
                .arg(&out)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()?;
            let d = one.elapsed().as_secs_f64();
            if d > slowest.0 {
                slowest = (d, c);
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    let _ = std::fs::remove_file(&out);
    println!(
        "whole process: {} pairs, one `lp-build diff` each: {:.0} ms (best of 5), {:.1} ms per \
         pair; slowest single run {:.0} ms ({})",
        cases.len(),
        best * 1000.0,
        best * 1000.0 / cases.len().max(1) as f64,
        slowest.0 * 1000.0,
        slowest.1
    );
    Ok(())
}

fn test(_rest: &[String]) -> Result<()> {
    run(cargo().args(["test", "--workspace"]))
}
