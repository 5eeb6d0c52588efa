//! `cargo xtask <task>`: the project's automation (CI, test kernel, VM end-to-end, benchmarks).
//!
//! Each task is a function; `main` only dispatches.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

mod archmap;
mod bench_distro;
mod bench_klp;
mod bench_ref;
mod deb;
mod dist;
mod distro;
mod e2e;
mod kernel;
mod vm;

/// The project's automation (`cargo xtask TASK`).
#[derive(clap::Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(clap::Subcommand, Debug)]
enum Task {
    /// The fmt check, clippy -D warnings, the test kernel, all tests (those that compile kernel
    /// sources against its build included), then e2e on the kernels of LP_E2E_KERNELS (default
    /// 6.12) and on the stock kernels of LP_E2E_DISTROS (default debian-6.12) (what .ci/run
    /// calls)
    Ci,
    /// All tests (no kernel, no VM)
    Test,
    /// lp-build on every case of test-kernels/cases, each module proven in the VM
    E2e(e2e::E2eArgs),
    /// The whole story on the bundled test kernel: build it, patch /proc/cmdline, show the
    /// behaviour before, while patched and after in the VM
    Demo(e2e::DemoArgs),
    /// The differ over the real-object corpus (in process and as processes); --warm: lp-build's
    /// warm path on the test kernel beside its floor; --distro NAME [--root DIR]: cold and warm
    /// on a distribution's stock kernel beside a whole build of its configuration; --dbg
    /// [--distro NAME]: vmlinux out of the debug package, stop-at-file vs dpkg-deb|tar;
    /// --vs-klp-build: the kernel's klp-build beside lp-build on one patch
    Bench(BenchArgs),
    /// Build the test kernel
    Kernel(kernel::KernelArgs),
    /// Boot the test VM
    Vm(vm::VmArgs),
    /// Boot the test kernel and load/unload the kernel's sample livepatch; --distro NAME: boot
    /// the stock kernel, load/use/unload its own binfmt_misc
    #[command(name = "vm-selftest")]
    VmSelftest(vm::SelftestArgs),
    /// Download and extract a distribution's stock kernel packages (no install)
    Distro(DistroArgs),
    /// The Debian package (binaries, man pages, completions, lpctl.service) in target/dist
    Dist(dist::DistArgs),
}

/// `cargo xtask bench`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// lp-build's warm path on the test kernel beside its floor.
    #[arg(long)]
    pub warm: bool,
    /// The test kernel of --warm (default 6.12: 6.12, 6.1 or 7.2) or of --vs-klp-build
    /// (default 7.2: a kernel that ships scripts/livepatch/klp-build).
    #[arg(long, value_name = "VER")]
    pub kernel: Option<String>,
    /// A distribution's stock kernel (debian-6.12, debian-6.1): cold and warm (with --dbg: whose
    /// debug package).
    #[arg(long, value_name = "NAME")]
    pub distro: Option<String>,
    /// The distribution's extracted packages (default: target/distro/NAME/root).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// vmlinux out of the debug package: xtask's reader vs dpkg-deb | tar.
    #[arg(long)]
    pub dbg: bool,
    /// The kernel's own klp-build (default, and -S 2 reusing its last build) beside lp-build
    /// (cold and warm) on one patch, both modules checked in the VM.
    #[arg(long)]
    pub vs_klp_build: bool,
}

/// `cargo xtask distro`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct DistroArgs {
    /// debian-6.12 or debian-6.1.
    #[arg(long, value_name = "NAME", default_value = "debian-6.12")]
    pub distro: String,
}

fn main() -> Result<()> {
    let cli = <Cli as clap::Parser>::parse();
    match &cli.task {
        Task::Ci => ci(),
        Task::Test => test(),
        Task::E2e(a) => e2e::task(a),
        Task::Demo(a) => e2e::demo(a),
        Task::Bench(a) => bench(a),
        Task::Kernel(a) => kernel::task(a),
        Task::Vm(a) => vm::task(a),
        Task::VmSelftest(a) => vm::selftest(a),
        Task::Dist(a) => dist::task(a),
        Task::Distro(a) => distro_task(a),
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

fn ci() -> Result<()> {
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
        e2e::task(&e2e::E2eArgs::new(k))?;
    }
    // The stock kernels of a distribution (LP_E2E_DISTROS, default debian-6.12; empty: none):
    // the stock boot with its own module first, then the cases that list it in `distros = `.
    let distros = std::env::var("LP_E2E_DISTROS").unwrap_or_else(|_| "debian-6.12".into());
    for d in distros.split_whitespace() {
        vm::selftest(&vm::SelftestArgs::distro(d))?;
        e2e::task(&e2e::E2eArgs {
            distro: Some(d.to_string()),
            ..e2e::E2eArgs::new(kernel::DEFAULT_VERSION)
        })?;
    }
    Ok(())
}

/// `cargo xtask distro --distro NAME`: the packages downloaded and extracted, paths printed.
fn distro_task(args: &DistroArgs) -> Result<()> {
    let name = args.distro.as_str();
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

fn bench(args: &BenchArgs) -> Result<()> {
    if args.dbg {
        return distro::bench_dbg(args.distro.as_deref().unwrap_or("debian-6.12"));
    }
    if args.distro.is_some() {
        return bench_distro::task(args);
    }
    if args.vs_klp_build {
        return bench_klp::task(args.kernel.as_deref().unwrap_or("7.2"));
    }
    if args.warm {
        return e2e::bench_warm(args.kernel.as_deref().unwrap_or("6.12"));
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

/// The host's target triple (`rustc -vV`).
fn host_triple() -> Result<String> {
    let out = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .context("rustc -vV names no host")
}

/// Builds `packages` as static (static-pie) release binaries for the host, as the package ships
/// them and as lpctl runs in the busybox guest; returns the directory that holds them
/// (`target/<host>/release`). No dynamic loader and no shared libraries to map: a short
/// process starts about 0.4 ms sooner (README, Benchmarks). Always the same flags, so the
/// builds share one target directory without rebuilding each other.
pub(crate) fn static_release(packages: &[&str]) -> Result<PathBuf> {
    let host = host_triple()?;
    let mut c = cargo();
    c.args(["build", "--release", "--locked", "--target", &host])
        .env("RUSTFLAGS", "-C target-feature=+crt-static");
    for p in packages {
        c.args(["-p", p]);
    }
    run(&mut c)?;
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    Ok(dir.join(host).join("release"))
}

/// The differ as a whole process (`lp-build diff ORIG PATCHED -o OUT`, start-up included) over
/// every pair of the x86_64 corpus (the PATCHED file `cases.tsv` names, so a pair that must be
/// refused is diffed, not a missing file), one process per pair, each writing a new output
/// file as a build does, side by side in each of 7 interleaved rounds: `/bin/true` (the
/// machine's floor for starting a process), the static binary that the package ships, the
/// default dynamic `cargo build --release`, and the reference tool (kpatch's create-diff-object
/// 0.9.11, [`bench_ref`]) given the same pairs and entry sizes; best and median.
fn whole_process_bench() -> Result<()> {
    run(cargo().args(["build", "--release", "-q", "-p", "lp-build"]))?;
    let dynamic = root().join("target/release/lp-build");
    let static_ = static_release(&["lp-build", "lpctl"])?.join("lp-build");
    let reference = bench_ref::create_diff_object()?;
    let corpus = std::env::var_os("LP_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/corpus/kpatch-unit-x86_64"));
    if !corpus.join("cases.tsv").is_file() {
        bail!(
            "no corpus at {}: set LP_CORPUS to the kpatch-unit-x86_64 directory",
            corpus.display()
        );
    }
    std::env::set_var("LP_CORPUS", &corpus);
    let cases = lp_testutil::cases();
    let scratch = std::env::temp_dir().join(format!("lp-bench-{}", std::process::id()));
    let inputs_dir = scratch.join("inputs");
    std::fs::create_dir_all(&inputs_dir)?;
    let mut ref_inputs = Vec::new();
    for c in &cases {
        ref_inputs.push(bench_ref::inputs(&inputs_dir, &c.name, &c.orig)?);
    }
    let quiet = |c: &mut Command| -> Result<()> {
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .env_remove("RUST_BACKTRACE")
            .status()?;
        Ok(())
    };
    #[derive(Clone, Copy)]
    enum Tool<'a> {
        True,
        LpBuild(&'a Path),
        Reference,
    }
    let runs: [(&str, Tool); 4] = [
        ("/bin/true (floor)", Tool::True),
        ("lp-build, static (as packaged)", Tool::LpBuild(&static_)),
        (
            "lp-build, dynamic (cargo build --release)",
            Tool::LpBuild(&dynamic),
        ),
        ("reference: create-diff-object 0.9.11 -O2", Tool::Reference),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); runs.len()];
    // The slowest single pair of each tool, over all rounds.
    let mut slowest = vec![(0.0f64, String::new()); runs.len()];
    let out_dir = scratch.join("out");
    for _ in 0..7 {
        for (k, (_, tool)) in runs.iter().enumerate() {
            let _ = std::fs::remove_dir_all(&out_dir);
            std::fs::create_dir_all(&out_dir)?;
            let t = std::time::Instant::now();
            for (case, inputs) in cases.iter().zip(&ref_inputs) {
                let out = out_dir.join(format!("{}.o", case.name));
                let one = std::time::Instant::now();
                match tool {
                    Tool::True => quiet(&mut Command::new("/bin/true"))?,
                    Tool::LpBuild(b) => {
                        let mut c = Command::new(b);
                        c.arg("diff")
                            .arg(&case.orig)
                            .arg(&case.patched)
                            .arg("-o")
                            .arg(&out);
                        for (sec, size) in case.fixed_entry_sizes() {
                            c.arg("--entry-size").arg(format!("{sec}={size}"));
                        }
                        quiet(&mut c)?;
                    }
                    Tool::Reference => quiet(&mut bench_ref::command(
                        &reference,
                        &case.orig,
                        &case.patched,
                        inputs,
                        &case.reference_sizes(),
                        &out,
                    ))?,
                }
                let d = one.elapsed().as_secs_f64();
                if d > slowest[k].0 {
                    slowest[k] = (d, case.name.clone());
                }
            }
            times[k].push(t.elapsed().as_secs_f64());
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let n = cases.len().max(1) as f64;
    println!(
        "whole process: {} pairs, one process each, 7 interleaved rounds (same pairs and entry \
         sizes for both tools):",
        cases.len()
    );
    let mut best = Vec::new();
    for (((name, _), t), slow) in runs.iter().zip(&mut times).zip(&slowest) {
        t.sort_by(f64::total_cmp);
        let (b, m) = (t[0], t[t.len() / 2]);
        best.push(b);
        println!(
            "  {name:44} best {:7.1} ms ({:.2} ms a pair), median {:7.1} ms; slowest pair {:.1} ms ({})",
            b * 1000.0,
            b * 1000.0 / n,
            m * 1000.0,
            slow.0 * 1000.0,
            slow.1
        );
    }
    println!(
        "  the reference's best is {:.1}x the static lp-build's, {:.1}x the dynamic one's; the \
         floor alone would cap the ratio at {:.1}x",
        best[3] / best[1],
        best[3] / best[2],
        best[3] / best[0],
    );
    Ok(())
}

fn test() -> Result<()> {
    run(cargo().args(["test", "--workspace"]))
}
