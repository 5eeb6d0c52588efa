//! `cargo xtask e2e`: builds livepatch modules with lp-build from the patches of each case
//! under `test-kernels/cases/` (or `--case DIR`, anywhere), checks the build outcome, boots the
//! test kernel with the modules and runs the case's guest check.
//!
//! A case is a folder holding `case.conf` (`outcome = module|refused|no-change`, optional
//! `options = ...` for lp-build and `expect-error = TEXT`), one or more `*.patch` files and,
//! for modules, `check.sh` (run as root in the guest, exit 0 = pass). A case that builds
//! several modules has one subfolder per module (each with its own `case.conf` and patches),
//! and the check script at the top loads them by name. The module of a folder is named after
//! the folder: `livepatch-<folder>.ko`.
//!
//! A case may also hold `host.sh`: run on the host (`sh host.sh`, in the case folder) after the
//! modules are built and before the VM boots, with `LP_OUT` (the case's artifacts folder, where
//! the modules are), `LP_GUEST` (a folder whose files are copied to the guest's `/lp/`),
//! `LP_KERNEL_BUILD` (the test kernel's `O=` directory), `LP_KERNEL_SRC` (its source tree) and
//! `LP_BUILD` (the lp-build binary).
//! It fails the case by exiting non-zero.
//!
//! A case passes only when its guest script passes and the kernel did not complain meanwhile:
//! a `WARNING:`, `BUG:`, oops, lockdep/RCU/KASAN-style report, "This should not happen" or a
//! taint other than `O` and `K` on the console fails it (`vm::kernel_complaints`), unless the
//! case declares it with `expect-taint = LETTERS` or `expect-console = TEXT; TEXT`.
//!
//! `qemu-cpu = MODEL` and `append = ARGS` in a case.conf boot the VM with that qemu CPU model and
//! those kernel arguments (a case that runs under a given CPU's speculation mitigations).
//!
//! `disk = MIB` gives the guest a persistent disk (`vm::Disk`: an ext4 image of the folder
//! `LP_DISK` that host.sh fills, `/dev/vda`, mounted by lib.sh's `mount_disk`; the kernel's
//! modules that read it come with it, so only a kernel with PCI virtio can run such a case) and
//! `boots = N` boots the guest N times in one qemu (each `reboot -f` resets the machine; the
//! check script runs at every boot and tells them apart by what the disk holds). host.sh also
//! gets `LP_LPCTL` (the static lpctl, with `guest-tools = lpctl`) and `LP_REPO`.

use crate::distro::DistroKernel;
use crate::kernel::{self, KernelOptions, TestKernel};
use crate::vm::{Outcome, Vm};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// lp-build's exit statuses the e2e checks (crates/lp-build/README.md).
const EXIT_OK: i32 = 0;
const EXIT_REFUSED: i32 = 3;
const EXIT_NO_CHANGE: i32 = 4;

/// What the cases run on: a test kernel built here, or a distribution's stock kernel (its
/// packages extracted into a ROOT, `--distro NAME`).
#[derive(Clone, Copy)]
enum Target<'a> {
    Test(&'a TestKernel),
    Distro(&'a DistroKernel),
}

impl Target<'_> {
    /// `<major>.<minor>`: what `kernels = ` and the `v<version>/` patch folders match.
    fn version(&self) -> &str {
        match self {
            Target::Test(k) => &k.version,
            Target::Distro(k) => k.distro.series,
        }
    }

    /// lp-build's arguments naming the kernel and the patches: the test kernel's tree and
    /// vmlinux; for a distribution kernel, the extracted packages and the release (lp-build
    /// finds headers, vmlinux, modules and the source tarball below ROOT by itself).
    fn lp_build_args(&self, cmd: &mut Command, patches: &[PathBuf]) {
        match self {
            Target::Test(k) => {
                for p in patches {
                    cmd.arg("--patch").arg(p);
                }
                cmd.arg("-s").arg(&k.src).arg("-v").arg(&k.vmlinux);
            }
            Target::Distro(k) => {
                cmd.args(patches)
                    .arg("--root")
                    .arg(&k.root)
                    .arg("--kernel-release")
                    .arg(k.distro.release);
            }
        }
    }

    /// The kernel image qemu boots.
    fn bzimage(&self) -> &Path {
        match self {
            Target::Test(k) => &k.bzimage,
            Target::Distro(k) => &k.vmlinuz,
        }
    }

    /// Modules copied to the guest's `/lp/ko/` beside the livepatches.
    fn guest_modules(&self) -> Vec<PathBuf> {
        match self {
            Target::Test(k) => k.modules.clone(),
            Target::Distro(k) => k.guest_modules.clone(),
        }
    }

    /// The environment of a case's host.sh that names the kernel.
    fn host_env(&self, cmd: &mut Command) {
        match self {
            Target::Test(k) => {
                cmd.env("LP_KERNEL_BUILD", &k.build)
                    .env("LP_KERNEL_SRC", &k.src);
            }
            Target::Distro(k) => {
                cmd.env("LP_ROOT", &k.root)
                    .env("LP_KERNEL_RELEASE", k.distro.release);
            }
        }
    }

    /// The modules that read the guest's disk, in load order (`disk = ` in a case.conf).
    fn disk_modules(&self) -> Result<Vec<PathBuf>> {
        match self {
            Target::Test(k) => bail!(
                "the test kernel {} has no PCI, virtio or block device support: a case with \
                 `disk = ` runs on a distribution kernel (`distros = `, and `requires = \
                 CONFIG_PCI CONFIG_BLOCK` to skip it elsewhere)",
                k.release
            ),
            Target::Distro(k) => k.disk_modules(),
        }
    }

    /// What this kernel's boots may show besides the case's own expectations (a distribution
    /// kernel's declared taints), and its guest memory.
    fn adjust_vm(&self, vm: &mut Vm) {
        if let Target::Distro(k) = self {
            vm.memory = k.distro.memory.to_string();
            vm.expected.taints.push_str(k.distro.taints.0);
        }
    }
}

pub(crate) struct Build {
    dir: PathBuf,
    name: String,
    conf: BTreeMap<String, String>,
    pub(crate) patches: Vec<PathBuf>,
}

fn read_conf(dir: &Path) -> Result<BTreeMap<String, String>> {
    let path = dir.join("case.conf");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: a case needs case.conf", path.display()))?;
    let mut conf = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            bail!("{}: `{line}` is not `key = value`", path.display());
        };
        conf.insert(k.trim().to_string(), v.trim().to_string());
    }
    match conf.get("outcome").map(String::as_str) {
        Some("module" | "refused" | "no-change") => Ok(conf),
        other => bail!(
            "{}: outcome must be module, refused or no-change (got {other:?})",
            path.display()
        ),
    }
}

fn patches_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "patch" || e == "diff"))
        .collect();
    v.sort();
    Ok(v)
}

pub(crate) fn builds_of(case: &Path, version: &str) -> Result<Vec<Build>> {
    let mut subs: Vec<PathBuf> = std::fs::read_dir(case)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.join("case.conf").is_file())
        // `v<version>/` folders are per-version variants, not module builds.
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix('v'))
                .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    subs.sort();
    if subs.is_empty() {
        subs.push(case.to_path_buf());
    }
    subs.into_iter()
        .map(|dir| {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let per_version = dir.join(format!("v{version}"));
            let patches = if per_version.is_dir() {
                patches_in(&per_version)?
            } else {
                patches_in(&dir)?
            };
            // A version's folder may also carry its own case.conf (another expected outcome).
            let conf = if per_version.join("case.conf").is_file() {
                read_conf(&per_version)?
            } else {
                read_conf(&dir)?
            };
            Ok(Build {
                conf,
                patches,
                name,
                dir,
            })
        })
        .collect()
}

/// lp-build and lpctl exactly as the package ships them (static release binaries, built
/// together by [`crate::static_release`] as `cargo xtask dist` builds them): the cases test
/// the shipped binaries, and one release build serves the host's lp-build and the guest's
/// lpctl.
fn release_binaries() -> Result<PathBuf> {
    crate::static_release(&["lp-build", "lpctl"])
}

/// A static lpctl for the busybox guest.
fn lpctl_static() -> Result<PathBuf> {
    Ok(release_binaries()?.join("lpctl"))
}

pub(crate) fn lp_build_binary() -> Result<PathBuf> {
    Ok(release_binaries()?.join("lp-build"))
}

/// Runs one build of a case; returns the module path for `module` outcomes.
fn build_one(
    lp_build: &Path,
    kernel: &Target,
    b: &Build,
    out: &Path,
    log: &mut String,
) -> Result<Option<PathBuf>> {
    if b.patches.is_empty() {
        bail!("{}: no *.patch files", b.dir.display());
    }
    std::fs::create_dir_all(out)?;
    let mut cmd = Command::new(lp_build);
    kernel.lp_build_args(&mut cmd, &b.patches);
    cmd.arg("-n").arg(&b.name).arg("-o").arg(out).arg("--json");
    if let Some(opts) = b.conf.get("options") {
        cmd.args(opts.split_whitespace());
    }
    cmd.env("LP_BUILD_CACHE", lp_build_cache());
    let shown = format!("{cmd:?}");
    // Another lp-build on the same tree (a parallel e2e) holds the lock: wait for it.
    let mut waited = Duration::ZERO;
    let output = loop {
        let output = cmd
            .output()
            .with_context(|| format!("cannot run {}", lp_build.display()))?;
        let busy = String::from_utf8_lossy(&output.stderr).contains("another lp-build");
        if !busy || waited > Duration::from_secs(1800) {
            break output;
        }
        std::thread::sleep(Duration::from_secs(5));
        waited += Duration::from_secs(5);
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    log.push_str(&format!("$ {shown}\n{stdout}{stderr}\n"));
    std::fs::write(out.join(format!("{}.build.log", b.name)), log.as_bytes())?;
    let code = output.status.code().unwrap_or(-1);
    let expected = b.conf["outcome"].as_str();
    let want = match expected {
        "module" => EXIT_OK,
        "refused" => EXIT_REFUSED,
        _ => EXIT_NO_CHANGE,
    };
    if code != want {
        bail!(
            "lp-build exited {code}, expected {want} ({expected}); last output:\n{}",
            tail(&format!("{stdout}{stderr}"), 15)
        );
    }
    if let Some(text) = b.conf.get("expect-error") {
        if !stderr.contains(text.as_str()) && !stdout.contains(text.as_str()) {
            bail!(
                "lp-build's refusal does not mention `{text}`:\n{}",
                tail(&stderr, 15)
            );
        }
    }
    if expected != "module" {
        return Ok(None);
    }
    let ko = out.join(format!("livepatch-{}.ko", b.name));
    if !ko.is_file() {
        bail!("lp-build succeeded but {} is missing", ko.display());
    }
    Ok(Some(ko))
}

/// lp-build's cache for the e2e runs: `LP_BUILD_CACHE`, else `target/lp-build-cache`.
fn lp_build_cache() -> PathBuf {
    std::env::var_os("LP_BUILD_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::root().join("target/lp-build-cache"))
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn run_case(
    lp_build: &Path,
    kernel: &Target,
    case: &Path,
    artifacts: &Path,
) -> Result<(Duration, Option<Duration>)> {
    let name = case
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "case".into());
    let out = artifacts.join(&name);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let start = Instant::now();
    let mut modules = Vec::new();
    let top = read_conf(case).ok();
    for b in builds_of(case, kernel.version())? {
        let mut log = String::new();
        if let Some(ko) = build_one(lp_build, kernel, &b, &out, &mut log)
            .with_context(|| format!("building {}", b.dir.display()))?
        {
            modules.push(ko);
        }
    }
    let build_time = start.elapsed();
    if modules.is_empty() {
        return Ok((build_time, None));
    }
    let script = case.join("check.sh");
    if !script.is_file() {
        bail!(
            "{}: a case that builds modules needs check.sh",
            case.display()
        );
    }
    let mut vm = Vm::new(kernel.bzimage(), &script, &out.join("vm"));
    vm.modules = modules;
    vm.modules.extend(kernel.guest_modules());
    vm.echo = std::env::var_os("LP_E2E_ECHO").is_some();
    vm.expected = expected_complaints(top.as_ref());
    kernel.adjust_vm(&mut vm);
    // `qemu-cpu = MODEL` and `append = ARGS`: a case that runs under a given CPU's mitigations.
    if let Some(model) = top.as_ref().and_then(|c| c.get("qemu-cpu")) {
        vm.cpu_model = model.clone();
    }
    if let Some(args) = top.as_ref().and_then(|c| c.get("append")) {
        vm.append.extend(args.split_whitespace().map(String::from));
    }
    let tools = top
        .as_ref()
        .and_then(|c| c.get("guest-tools").cloned())
        .unwrap_or_default();
    let lpctl = if tools.split_whitespace().any(|t| t == "lpctl") {
        let lpctl = lpctl_static()?;
        vm.files.push(lpctl.clone());
        Some(lpctl)
    } else {
        None
    };
    // `boots = N`: the guest reboots N - 1 times in one qemu.
    if let Some(n) = top.as_ref().and_then(|c| c.get("boots")) {
        vm.boots = n
            .parse()
            .ok()
            .filter(|&n| (1..=8).contains(&n))
            .with_context(|| {
                format!("{}: boots = {n}: not a number from 1 to 8", case.display())
            })?;
        vm.timeout *= vm.boots;
    }
    // `disk = MIB`: a persistent disk, filled by host.sh through LP_DISK.
    let disk_files = out.join("disk-files");
    if let Some(size) = top.as_ref().and_then(|c| c.get("disk")) {
        let size_mib = size
            .parse()
            .ok()
            .filter(|&s| (8..=4096).contains(&s))
            .with_context(|| {
                format!(
                    "{}: disk = {size}: not a size in MiB from 8 to 4096",
                    case.display()
                )
            })?;
        let _ = std::fs::remove_dir_all(&disk_files);
        std::fs::create_dir_all(&disk_files)?;
        vm.disk = Some(crate::vm::Disk {
            files: disk_files.clone(),
            size_mib,
            modules: kernel.disk_modules()?,
        });
    }
    // Extra files of the case (`*.sh` helpers, expected logs) are copied to /lp/.
    for e in std::fs::read_dir(case)?.filter_map(|e| e.ok()) {
        let p = e.path();
        let n = e.file_name().to_string_lossy().into_owned();
        if p.is_file() && (n.ends_with(".expected") || (n.ends_with(".sh") && n != "check.sh")) {
            vm.files.push(p);
        }
    }
    let host = case.join("host.sh");
    if host.is_file() {
        let guest = out.join("guest-files");
        let _ = std::fs::remove_dir_all(&guest);
        std::fs::create_dir_all(&guest)?;
        let mut cmd = Command::new("sh");
        cmd.arg(&host)
            .current_dir(case)
            .env("LP_OUT", &out)
            .env("LP_GUEST", &guest)
            .env("LP_BUILD", lp_build)
            .env("LP_BUILD_CACHE", lp_build_cache())
            .env("LP_REPO", crate::root());
        if vm.disk.is_some() {
            cmd.env("LP_DISK", &disk_files);
        }
        if let Some(lpctl) = &lpctl {
            cmd.env("LP_LPCTL", lpctl);
        }
        kernel.host_env(&mut cmd);
        let output = cmd
            .output()
            .with_context(|| format!("cannot run {}", host.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::write(out.join("host.log"), &text)?;
        if !output.status.success() {
            bail!("host.sh failed ({}):\n{}", output.status, tail(&text, 15));
        }
        let mut extra: Vec<PathBuf> = std::fs::read_dir(&guest)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        extra.sort();
        vm.files.extend(extra);
    }
    let mut result = vm.run()?;
    let _ = std::fs::copy(&result.log, out.join("console.log"));
    // TCG occasionally mis-executes a just-rewritten kernel text site (seen once in ~50 boots:
    // an int3 Oops at a cond_resched() site the livepatch core rewrites). A failing VM run is
    // run once more; the first failure is kept and reported, a second failure fails the case.
    if let Outcome::Fail(first) = &result.outcome {
        let first = first.clone();
        let _ = std::fs::copy(&result.log, out.join("console.first-failure.log"));
        eprintln!(
            "e2e: {} failed in the VM ({first}); running it once more",
            case.display()
        );
        result = vm.run()?;
        let _ = std::fs::copy(&result.log, out.join("console.log"));
        if result.outcome == Outcome::Pass {
            println!(
                "RETRIED {}: first VM run failed ({first}), second passed; see console.first-failure.log",
                case.display()
            );
        }
    }
    match result.outcome {
        Outcome::Pass => Ok((build_time, Some(result.total_time))),
        Outcome::Fail(why) => bail!(
            "in the VM: {why} (console: {})\n{}",
            out.join("console.log").display(),
            tail(
                &std::fs::read_to_string(&result.log).unwrap_or_default(),
                25
            )
        ),
    }
}

/// What a case declares the kernel may print or taint (`expect-taint = LETTERS`,
/// `expect-console = TEXT; TEXT`); every other warning, bug, oops or taint fails the case.
fn expected_complaints(conf: Option<&BTreeMap<String, String>>) -> crate::vm::Expected {
    let get = |k: &str| conf.and_then(|c| c.get(k)).cloned().unwrap_or_default();
    crate::vm::Expected {
        taints: get("expect-taint"),
        console: get("expect-console")
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    }
}

/// `cargo xtask e2e`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct E2eArgs {
    #[command(flatten)]
    pub choice: kernel::KernelChoice,
    /// A configuration variant (test-kernels/configs/variants/NAME.config).
    #[arg(long, value_name = "NAME")]
    pub variant: Option<String>,
    /// A distribution's stock kernel (debian-6.12, debian-6.1) instead of the test kernel.
    #[arg(long, value_name = "NAME")]
    pub distro: Option<String>,
    /// Only this case directory (repeatable); default: every case of test-kernels/cases.
    #[arg(long = "case", value_name = "DIR")]
    pub cases: Vec<PathBuf>,
}

impl E2eArgs {
    /// The arguments of `cargo xtask e2e` with nothing given.
    pub fn new(version: &str) -> Self {
        E2eArgs {
            choice: kernel::KernelChoice::new(version),
            variant: None,
            distro: None,
            cases: Vec::new(),
        }
    }
}

/// `cargo xtask e2e [--kernel VER | --source DIR] [--case DIR ...]`.
pub fn task(args: &E2eArgs) -> Result<()> {
    let mut opts = args.choice.options();
    opts.variant = args.variant.clone();
    let distro = args.distro.clone();
    let mut cases = args
        .cases
        .iter()
        .map(|c| kernel::absolute(c))
        .collect::<Result<Vec<PathBuf>>>()?;
    if let Some(name) = &distro {
        return task_distro(name, &cases);
    }
    if cases.is_empty() {
        cases = all_cases()?;
    }
    let kernel = kernel::ensure(&opts)?;
    // The tree's own `<major>.<minor>` (also for --source): what `kernels = ` and the per-version
    // patch folders are matched against.
    let version = kernel.version.clone();
    let lp_build = lp_build_binary()?;
    // A --source tree's artifacts go beside, not over, the Debian package's of that version.
    let label = match &opts.source {
        Some(_) => kernel
            .build
            .parent()
            .and_then(|b| b.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("{version}-source")),
        None => version.clone(),
    };
    // `6.12-module-sig`, `6.12-clang-19`: variant and compiler each have their own artifacts.
    let label = format!("{label}{}", opts.label_suffix());
    let artifacts = crate::root().join("artifacts").join(label);
    let config = kernel::read_config(&kernel.build.join(".config"))?;
    run_cases(
        &lp_build,
        &Target::Test(&kernel),
        &cases,
        &config,
        &artifacts,
        None,
    )
}

/// Every case folder of `test-kernels/cases/`, sorted.
fn all_cases() -> Result<Vec<PathBuf>> {
    let dir = crate::root().join("test-kernels/cases");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    Ok(v)
}

/// `cargo xtask e2e --distro NAME [--case DIR ...]`: the cases whose case.conf lists NAME in
/// `distros = `, built by lp-build from the distribution's packages and run on its stock kernel.
fn task_distro(name: &str, cases: &[PathBuf]) -> Result<()> {
    let start = Instant::now();
    let k = crate::distro::ensure(name)?;
    let cases: Vec<PathBuf> = if cases.is_empty() {
        all_cases()?
            .into_iter()
            .filter(|c| runs_on_distro(read_conf(c).ok().as_ref(), name))
            .collect()
    } else {
        cases.to_vec()
    };
    eprintln!("e2e: {name} ready in {}", kernel::secs(start.elapsed()));
    let lp_build = lp_build_binary()?;
    let artifacts = crate::root().join("artifacts").join(name);
    run_cases(
        &lp_build,
        &Target::Distro(&k),
        &cases,
        &k.config,
        &artifacts,
        Some(name),
    )
}

/// Whether a case runs on the distribution kernel `name`: its case.conf lists it in `distros = `.
fn runs_on_distro(conf: Option<&BTreeMap<String, String>>, name: &str) -> bool {
    conf.and_then(|c| c.get("distros"))
        .is_some_and(|d| d.split_whitespace().any(|x| x == name))
}

fn run_cases(
    lp_build: &Path,
    kernel: &Target,
    cases: &[PathBuf],
    config: &BTreeMap<String, String>,
    artifacts: &Path,
    distro: Option<&str>,
) -> Result<()> {
    let version = kernel.version().to_string();
    let label = distro.map_or(version.clone(), String::from);
    std::fs::create_dir_all(artifacts)?;
    let mut failed = 0;
    let mut skipped = 0;
    for case in cases {
        let name = case
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(d) = distro {
            if !runs_on_distro(read_conf(case).ok().as_ref(), d) {
                println!("SKIP {d} {name} (its case.conf has no `distros = ... {d}`)");
                skipped += 1;
                continue;
            }
        }
        if let Some(k) = read_conf(case).ok().and_then(|c| c.get("kernels").cloned()) {
            if !k.split_whitespace().any(|v| v == version) {
                println!("SKIP {label} {name} (case.conf: kernels = {k})");
                skipped += 1;
                continue;
            }
        }
        // `requires = CONFIG_X ...`: cases for a configuration variant (e.g. signatures).
        if let Some(r) = read_conf(case)
            .ok()
            .and_then(|c| c.get("requires").cloned())
        {
            let missing: Vec<&str> = r
                .split_whitespace()
                .filter(|o| {
                    let name = o.trim_start_matches("CONFIG_");
                    config.get(name).map(String::as_str) != Some("y")
                })
                .collect();
            if !missing.is_empty() {
                println!(
                    "SKIP {label} {name} (needs {}: see its case.conf)",
                    missing.join(" ")
                );
                skipped += 1;
                continue;
            }
        }
        let xfail = read_conf(case).ok().and_then(|c| c.get("xfail").cloned());
        let result = run_case(lp_build, kernel, case, artifacts);
        if let Some(reason) = xfail {
            match result {
                Ok(_) => {
                    failed += 1;
                    println!("XPASS {label} {name}: passes although marked xfail ({reason}); remove the marker");
                }
                Err(e) => println!(
                    "XFAIL {label} {name}: FIXME {reason}: {}",
                    tail(&format!("{e:#}"), 1)
                ),
            }
            continue;
        }
        match result {
            Ok((build, vm)) => {
                let vm = vm.map_or("no VM".to_string(), |d| format!("vm {}", kernel::secs(d)));
                println!("PASS {label} {name} (build {}, {vm})", kernel::secs(build));
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {label} {name}: {e:#}");
            }
        }
    }
    println!(
        "{} passed, {failed} failed, {skipped} skipped",
        cases.len() - failed - skipped
    );
    println!("artifacts: {}", artifacts.display());
    if failed > 0 {
        bail!("{failed} e2e case(s) failed");
    }
    Ok(())
}

/// `cargo xtask demo`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// The test kernel's version: 6.12, 6.1 or 7.2.
    #[arg(long, value_name = "VER", default_value = "6.12")]
    pub kernel: String,
}

/// `cargo xtask demo [--kernel VER]`: the cmdline case, with the guest's story printed.
pub fn demo(args: &DemoArgs) -> Result<()> {
    let version = &args.kernel;
    let kernel = kernel::ensure(&KernelOptions::new(version))?;
    let lp_build = lp_build_binary()?;
    let case = crate::root().join("test-kernels/cases/cmdline");
    let artifacts = crate::root().join("artifacts").join(&kernel.version);
    println!(
        "patch:\n{}",
        std::fs::read_to_string(case.join("cmdline.patch"))?
    );
    let result = run_case(&lp_build, &Target::Test(&kernel), &case, &artifacts);
    let console = artifacts.join("cmdline/console.log");
    if let Ok(log) = std::fs::read_to_string(&console) {
        println!("in the VM ({}):", console.display());
        for line in log
            .lines()
            .filter(|l| l.contains("LP:") || l.contains("livepatch"))
        {
            println!("  {}", line.trim_end());
        }
    }
    let (build, vm) = result?;
    println!(
        "module: {} (built in {}, VM run {})",
        artifacts.join("cmdline/livepatch-cmdline.ko").display(),
        kernel::secs(build),
        vm.map_or("-".into(), kernel::secs)
    );
    Ok(())
}

/// `cargo xtask bench --warm [--kernel VER]`: the warm path of `lp-build --patch` for a
/// one-function patch (test-kernels/cases/cmdline) beside its floor: the time make takes to
/// recompile the touched file (and, lower still, the bare compiler command) plus building a
/// trivial module against the running kernel's build. Run it on an idle machine: it takes
/// lp-build's lock for nothing and measures wall time.
/// The inputs of lp-build's module directory: Kbuild, the generated core source, the patch
/// objects and their `.cmd` files (everything else is kbuild's output).
fn is_module_input(name: &str) -> bool {
    name == "Kbuild"
        || name.ends_with("-core.c")
        || name.starts_with("lp-patch-")
        || name.starts_with(".lp-patch-")
}

pub fn bench_warm(version: &str) -> Result<()> {
    let kernel = kernel::ensure(&KernelOptions::new(version))?;
    let lp_build = lp_build_binary()?;
    let case = crate::root().join("test-kernels/cases/cmdline");
    let out = crate::root().join("target/lp-bench");
    let _ = std::fs::remove_dir_all(&out);
    let b = &builds_of(&case, version)?[0];
    let mut log = String::new();
    // One run to make sure the cache is complete.
    build_one(&lp_build, &Target::Test(&kernel), b, &out, &mut log)?;

    // Floor 1: the compile of fs/proc/cmdline.c with the cache build's own command.
    let cache = lp_build_cache();
    let cmd_file = find_file(&cache, "fs/proc/.cmdline.o.cmd")
        .context("lp-build's cache build has no fs/proc/.cmdline.o.cmd")?;
    let build_dir = cmd_file
        .ancestors()
        .nth(3)
        .context("cache layout")?
        .to_path_buf();
    let text = std::fs::read_to_string(&cmd_file)?;
    let saved = text
        .lines()
        .find_map(|l| {
            l.split_once(" := ")
                .filter(|(k, _)| k.starts_with("savedcmd_"))
        })
        .map(|(_, v)| v.to_string())
        .context("no savedcmd in the .cmd file")?;
    let compile = saved
        .split(';')
        .next()
        .unwrap_or("")
        .replace("-c -o fs/proc/cmdline.o", "-c -o /tmp/lp-bench-cmdline.o");
    // Floor 2: the same through make, as lp-build runs it (kbuild's single-target build with
    // lp-build's CC and KCFLAGS in its cache build): touch the source, make, restore the mtime.
    let wrapper = build_dir
        .ancestors()
        .nth(2)
        .context("cache layout")?
        .join("bin/lp-build");
    let source = kernel.src.join("fs/proc/cmdline.c");
    let mtime = std::fs::metadata(&source)?.modified()?;
    // Floor 3: a trivial module built against the running kernel's build.
    let m = out.join("floor-module");
    std::fs::create_dir_all(&m)?;
    std::fs::write(
        m.join("floor.c"),
        "#include <linux/module.h>\nstatic int __init f_init(void) { return 0; }\n\
         module_init(f_init);\nMODULE_LICENSE(\"GPL\");\n",
    )?;
    std::fs::write(m.join("Kbuild"), "obj-m := floor.o\n")?;
    // Floor 4: this patch's own livepatch module (the sources lp-build generates), built from
    // clean by kbuild: the make work lp-build cannot avoid.
    let mut kept = b.conf.clone();
    let opts = kept.get("options").cloned().unwrap_or_default();
    kept.insert("options".into(), format!("{opts} --keep-tmp"));
    let keep_build = Build {
        dir: b.dir.clone(),
        name: b.name.clone(),
        conf: kept,
        patches: b.patches.clone(),
    };
    let mut keep_log = String::new();
    build_one(
        &lp_build,
        &Target::Test(&kernel),
        &keep_build,
        &out,
        &mut keep_log,
    )?;
    let tmp = keep_log
        .lines()
        .find_map(|l| l.strip_prefix("kept the temporary directory "))
        .map(PathBuf::from)
        .context("lp-build --keep-tmp did not name its temporary directory")?;
    let lp_module = out.join("livepatch-module");
    std::fs::create_dir_all(&lp_module)?;
    for e in std::fs::read_dir(tmp.join("module"))?.filter_map(|e| e.ok()) {
        let n = e.file_name().to_string_lossy().into_owned();
        if is_module_input(&n) {
            std::fs::copy(e.path(), lp_module.join(&n))?;
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);

    // Interleaved rounds, so that a slower or faster stretch of the machine hits every measure.
    const ROUNDS: usize = 7;
    let (mut runs, mut compiles, mut makes, mut trivial, mut own) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        build_one(&lp_build, &Target::Test(&kernel), b, &out, &mut log)?;
        runs.push(t.elapsed());

        let t = Instant::now();
        let st = Command::new("sh")
            .arg("-c")
            .arg(&compile)
            .current_dir(&build_dir)
            .status()?;
        if !st.success() {
            bail!("the floor compile failed: {compile}");
        }
        compiles.push(t.elapsed());

        std::fs::File::options()
            .write(true)
            .open(&source)?
            .set_modified(std::time::SystemTime::now())?;
        let t = Instant::now();
        let st = Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(&kernel.src)
            .arg(format!("O={}", build_dir.display()))
            .arg("-j2")
            .args(&kernel.make_vars)
            .arg(format!("CC={} __cc {}", wrapper.display(), kernel.cc()))
            .arg("KCFLAGS=-ffunction-sections -fdata-sections")
            .arg("fs/proc/cmdline.o")
            .status();
        makes.push(t.elapsed());
        std::fs::File::options()
            .write(true)
            .open(&source)?
            .set_modified(mtime)?;
        if !st?.success() {
            bail!("make of fs/proc/cmdline.o failed");
        }

        let _ = std::fs::remove_file(m.join("floor.o"));
        let t = Instant::now();
        kernel.build_external_module(&m)?;
        trivial.push(t.elapsed());

        for e in std::fs::read_dir(&lp_module)?.filter_map(|e| e.ok()) {
            if !is_module_input(&e.file_name().to_string_lossy()) {
                std::fs::remove_file(e.path())?;
            }
        }
        let t = Instant::now();
        kernel.build_external_module(&lp_module)?;
        own.push(t.elapsed());
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (run, compile, make, trivial, own) = (
        median(&mut runs),
        median(&mut compiles),
        median(&mut makes),
        median(&mut trivial),
        median(&mut own),
    );
    let ratio = |floor: Duration| run.as_secs_f64() / floor.as_secs_f64();
    println!("medians of {ROUNDS} interleaved rounds:");
    println!(
        "warm lp-build --patch (cmdline_proc_show): {}",
        kernel::secs(run)
    );
    println!(
        "floor of this patch: make of the object {} + kbuild build of its livepatch module {} = {} -> {:.2}x (target 1.2x)",
        kernel::secs(make),
        kernel::secs(own),
        kernel::secs(make + own),
        ratio(make + own)
    );
    println!(
        "floor with a trivial module: make of the object {} + module build {} = {} -> {:.2}x",
        kernel::secs(make),
        kernel::secs(trivial),
        kernel::secs(make + trivial),
        ratio(make + trivial)
    );
    println!(
        "bare compile floor: compile {} + trivial module build {} = {} -> {:.2}x",
        kernel::secs(compile),
        kernel::secs(trivial),
        kernel::secs(compile + trivial),
        ratio(compile + trivial)
    );
    Ok(())
}

fn find_file(dir: &Path, rel: &str) -> Option<PathBuf> {
    for a in std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()) {
        for b in std::fs::read_dir(a.path()).ok()?.filter_map(|e| e.ok()) {
            let p = b.path().join("build").join(rel);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distro_selection_matches_whole_names() {
        let conf: BTreeMap<String, String> =
            [("distros".to_string(), "debian-6.12".to_string())].into();
        assert!(runs_on_distro(Some(&conf), "debian-6.12"));
        // debian-6.1 is a prefix of debian-6.12, not the same kernel.
        assert!(!runs_on_distro(Some(&conf), "debian-6.1"));
        assert!(!runs_on_distro(None, "debian-6.12"));
        assert!(!runs_on_distro(Some(&BTreeMap::new()), "debian-6.12"));
    }

    /// Every `distros = ` names a pinned distribution kernel, and each one has the kinds of
    /// case issue 11 asks for: a vmlinux patch, a stock-module patch, callbacks, an atomic
    /// replace, a refusal and lpctl's cumulative policy.
    #[test]
    fn distro_cases_are_known_and_complete() {
        let mut per_distro: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for case in all_cases().unwrap() {
            let conf = read_conf(&case).unwrap();
            let name = case.file_name().unwrap().to_string_lossy().into_owned();
            for d in conf
                .get("distros")
                .map_or("", String::as_str)
                .split_whitespace()
            {
                assert!(crate::distro::find(d).is_ok(), "{name}: unknown distro {d}");
                per_distro
                    .entry(d.to_string())
                    .or_default()
                    .push(name.clone());
            }
        }
        for d in crate::distro::DISTROS {
            let cases = per_distro.get(d.name).cloned().unwrap_or_default();
            for needed in [
                "cmdline",
                "binfmt-module",
                "hooks-vmlinux",
                "replace-atomic",
                "refused-data",
                "lpctl-cumulative",
            ] {
                assert!(
                    cases.iter().any(|c| c == needed),
                    "{}: no {needed} case (has {cases:?})",
                    d.name
                );
            }
        }
    }
}
