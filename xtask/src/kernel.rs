//! `cargo xtask kernel`: the test kernel.
//!
//! Finds Debian's `linux-source-<ver>` tarball (installing it when running as root),
//! extracts it once into `target/lp-kernels/<ver>/src`, configures it from `tinyconfig`
//! plus `test-kernels/configs/livepatch.config` (and `livepatch-<ver>.config` when present),
//! checks that every option of the fragments survived `olddefconfig`, and builds
//! `bzImage` and the modules "like a distribution" (no `-ffunction-sections`) into
//! `target/lp-kernels/<ver>/build`.
//!
//! [`ensure`] is the API the other tasks (`vm`, `vm-selftest`, `e2e`) call.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Kernel versions with a Debian `linux-source-<ver>` package we know how to use.
pub const VERSIONS: &[&str] = &["6.12", "6.1", "7.2"];

/// Versions whose `linux-source-<ver>` only Debian unstable has: the package is downloaded
/// (never installed) and extracted under `target/lp-kernels/`, see [`fetch_unstable_source`].
const UNSTABLE_VERSIONS: &[&str] = &["7.2"];

/// Options the fragments (or the prerequisites) name that newer kernels removed, with the
/// Kconfig file that defines them where they exist: the check skips such an option on a tree
/// whose Kconfig no longer defines it. 7.x made the mcount records unconditional.
const REMOVED_OPTIONS: &[(&str, &str)] = &[("FTRACE_MCOUNT_RECORD", "kernel/trace/Kconfig")];

/// The default test kernel.
pub const DEFAULT_VERSION: &str = "6.12";

/// Debian packages the kernel build and the VM harness need, with a file each one installs.
const HOST_PACKAGES: &[(&str, &str)] = &[
    ("make", "/usr/bin/make"),
    ("gcc", "/usr/bin/gcc"),
    // The guest's static lp-finit helper (test-kernels/guest/finit.c) links libc.a.
    ("libc6-dev", "/usr/lib/x86_64-linux-gnu/libc.a"),
    ("flex", "/usr/bin/flex"),
    ("bison", "/usr/bin/bison"),
    ("bc", "/usr/bin/bc"),
    ("libelf-dev", "/usr/include/libelf.h"),
    ("libssl-dev", "/usr/include/openssl/ssl.h"),
    ("cpio", "/usr/bin/cpio"),
    ("kmod", "/usr/bin/kmod"),
    ("dwarves", "/usr/bin/pahole"),
    ("xz-utils", "/usr/bin/xz"),
    ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    ("busybox-static", "/bin/busybox"),
    // The guest's disk image (`mke2fs -d`, no root needed) for cases that reboot.
    ("e2fsprogs", "/usr/sbin/mke2fs"),
    // certs/Makefile generates the module signing key of a MODULE_SIG variant with it.
    ("openssl", "/usr/bin/openssl"),
];

/// What `cargo xtask kernel` was asked for.
#[derive(Debug, Clone)]
pub struct KernelOptions {
    /// `6.12`, `6.1` or `7.2`: which `linux-source-<ver>` package (and version fragment) to use.
    pub version: String,
    /// Use this kernel tree instead of the extracted Debian source.
    pub source: Option<PathBuf>,
    /// Parallel make jobs; `None` means the number of CPUs.
    pub jobs: Option<usize>,
    /// A configuration variant: `test-kernels/configs/variants/<name>.config` applied after
    /// the other fragments, built in its own `build-<name>` directory.
    pub variant: Option<String>,
    /// The compiler: `None` or `gcc` (the default), `clang-19` (`LLVM=-19`), `clang`
    /// (`LLVM=1`). A clang kernel is built in its own `build-clang-19` directory. Defaults to
    /// `LP_E2E_CC`, so every task (kernel, vm, vm-selftest, e2e, ci) takes the same selection.
    pub cc: Option<String>,
    /// Stop after the configuration and its check (`--configure-only`): no kernel build.
    pub configure_only: bool,
}

/// The environment variable that selects the test kernels' compiler (`clang-19`).
pub const ENV_CC: &str = "LP_E2E_CC";

impl KernelOptions {
    pub fn new(version: &str) -> Self {
        KernelOptions {
            version: version.to_string(),
            source: None,
            jobs: None,
            variant: None,
            cc: std::env::var(ENV_CC)
                .ok()
                .filter(|c| !c.trim().is_empty() && c.trim() != "gcc")
                .map(|c| c.trim().to_string()),
            configure_only: false,
        }
    }

    /// The make variables that select the compiler (`LLVM=-19`), for every make run on the
    /// kernel (configuration, build, external modules).
    pub fn make_vars(&self) -> Result<Vec<String>> {
        compiler_make_vars(self.cc.as_deref())
    }

    /// The build directory's name: `build`, `build-<variant>`, `build-clang-19`,
    /// `build-<variant>-clang-19`.
    pub fn build_dir_name(&self) -> String {
        let mut name = "build".to_string();
        if let Some(v) = &self.variant {
            name.push_str(&format!("-{v}"));
        }
        if let Some(cc) = &self.cc {
            name.push_str(&format!("-{cc}"));
        }
        name
    }

    /// The artifacts label's suffix: `-<variant>-clang-19`, empty for the default build.
    pub fn label_suffix(&self) -> String {
        self.build_dir_name()
            .strip_prefix("build")
            .unwrap_or("")
            .to_string()
    }
}

/// `--cc` to make variables, as Documentation/kbuild/llvm.rst has them: `clang-19` ->
/// `LLVM=-19`, `clang` -> `LLVM=1`, gcc -> none.
pub fn compiler_make_vars(cc: Option<&str>) -> Result<Vec<String>> {
    match cc {
        None | Some("gcc") => Ok(Vec::new()),
        Some("clang") => Ok(vec!["LLVM=1".into()]),
        Some(c) => match c.strip_prefix("clang-") {
            Some(n) if !n.is_empty() && n.chars().all(|ch| ch.is_ascii_digit()) => {
                Ok(vec![format!("LLVM=-{n}")])
            }
            _ => bail!("unknown compiler `{c}`: use gcc, clang or clang-N (e.g. clang-19)"),
        },
    }
}

/// The Debian packages of a clang (`clang-19` -> clang-19 and lld-19), with a file each installs.
fn compiler_packages(cc: Option<&str>) -> Vec<(String, String)> {
    match cc.and_then(|c| c.strip_prefix("clang")) {
        Some(suffix) => {
            let n = suffix.trim_start_matches('-');
            let pkg = |p: &str| {
                if n.is_empty() {
                    p.to_string()
                } else {
                    format!("{p}-{n}")
                }
            };
            vec![
                (pkg("clang"), format!("/usr/bin/clang{suffix}")),
                (pkg("lld"), format!("/usr/bin/ld.lld{suffix}")),
                // LLVM= also takes llvm-ar, llvm-nm, llvm-objcopy... from llvm-N.
                (pkg("llvm"), format!("/usr/bin/llvm-ar{suffix}")),
            ]
        }
        None => Vec::new(),
    }
}

/// A configured and built test kernel: every path is absolute and exists.
#[derive(Debug, Clone)]
pub struct TestKernel {
    /// Short version asked for (`6.12`).
    pub version: String,
    /// Full version of the tree (`6.12.57`), from its Makefile.
    pub release: String,
    /// Kernel source tree (read-only for us: builds go to `build`).
    pub src: PathBuf,
    /// `O=` build directory (`.config`, objects, `Module.symvers`).
    pub build: PathBuf,
    pub vmlinux: PathBuf,
    pub bzimage: PathBuf,
    pub system_map: PathBuf,
    pub module_symvers: PathBuf,
    /// Every in-tree module built (`=m`), e.g. `fs/binfmt_misc.ko`.
    pub modules: Vec<PathBuf>,
    /// The make variables of its compiler (`LLVM=-19`; none for gcc).
    pub make_vars: Vec<String>,
}

impl TestKernel {
    /// The in-tree module `name` (`binfmt_misc` or `binfmt_misc.ko`).
    pub fn module(&self, name: &str) -> Option<&Path> {
        let file = if name.ends_with(".ko") {
            name.to_string()
        } else {
            format!("{name}.ko")
        };
        self.modules
            .iter()
            .find(|m| m.file_name().is_some_and(|f| f == file.as_str()))
            .map(PathBuf::as_path)
    }

    /// Builds the out-of-tree module in `dir` (which holds its sources and a `Kbuild` or
    /// `Makefile`) against this kernel with kbuild, returning the `.ko` files made there.
    pub fn build_external_module(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let dir = absolute(dir)?;
        run_in(
            &self.src,
            Command::new("make")
                .arg(format!("O={}", self.build.display()))
                .args(&self.make_vars)
                .arg(format!("M={}", dir.display()))
                .arg(format!("-j{}", jobs(None)))
                .arg("modules"),
        )
        .with_context(|| format!("building the external module in {}", dir.display()))?;
        let mut kos = Vec::new();
        find_kos(&dir, &mut kos)?;
        if kos.is_empty() {
            bail!("kbuild made no .ko in {}", dir.display());
        }
        Ok(kos)
    }

    /// The compiler command of its make variables: `clang-19` for `LLVM=-19`, `clang` for
    /// `LLVM=1`, else `gcc`.
    pub fn cc(&self) -> String {
        match self.make_vars.iter().find_map(|v| v.strip_prefix("LLVM=")) {
            Some("1") => "clang".into(),
            Some(suffix) => format!("clang{suffix}"),
            None => "gcc".into(),
        }
    }

    /// The value of `CONFIG_<name>` in the build's `.config` (`None` when not set).
    pub fn config(&self, name: &str) -> Result<Option<String>> {
        let config = read_config(&self.build.join(".config"))?;
        Ok(config.get(name).cloned())
    }
}

/// Which test kernel a task uses: the options every task that boots or builds one shares.
#[derive(clap::Args, Debug, Clone)]
pub struct KernelChoice {
    /// The test kernel's version: 6.12, 6.1 or 7.2.
    #[arg(long, value_name = "VER", default_value = DEFAULT_VERSION)]
    pub kernel: String,
    /// A kernel tree to build the test kernel from instead of Debian's source package.
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
    /// The compiler: gcc or clang-N / clang (LLVM=-N); default: LP_E2E_CC, else gcc.
    #[arg(long, value_name = "gcc|clang-N")]
    pub cc: Option<String>,
}

impl KernelChoice {
    /// The default test kernel (version `version`, Debian's source, the compiler of LP_E2E_CC).
    pub fn new(version: &str) -> Self {
        KernelChoice {
            kernel: version.into(),
            source: None,
            cc: None,
        }
    }

    /// The build options this choice selects (a `--cc` given overrides LP_E2E_CC).
    pub fn options(&self) -> KernelOptions {
        let mut opts = KernelOptions::new(&self.kernel);
        opts.source = self.source.clone();
        if let Some(cc) = &self.cc {
            opts.cc = Some(cc.clone()).filter(|c| c != "gcc");
        }
        opts
    }
}

/// `cargo xtask kernel`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct KernelArgs {
    #[command(flatten)]
    pub choice: KernelChoice,
    /// A configuration variant (test-kernels/configs/variants/NAME.config).
    #[arg(long, value_name = "NAME")]
    pub variant: Option<String>,
    /// Parallel make jobs (default: the number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Configure and check only, no build.
    #[arg(long)]
    pub configure_only: bool,
}

/// `cargo xtask kernel [--kernel 6.12|6.1|7.2] [--source DIR] [--cc gcc|clang-N] [-j N]`.
pub fn task(args: &KernelArgs) -> Result<()> {
    let mut opts = args.choice.options();
    opts.variant = args.variant.clone();
    opts.jobs = args.jobs;
    opts.configure_only = args.configure_only;
    let start = Instant::now();
    let k = ensure(&opts)?;
    if opts.configure_only {
        println!(
            "test kernel {} ({}) configured and checked in {} (not built): {}",
            k.version,
            k.release,
            secs(start.elapsed()),
            k.build.join(".config").display()
        );
        return Ok(());
    }
    println!(
        "test kernel {} ({}) ready in {}",
        k.version,
        k.release,
        secs(start.elapsed())
    );
    println!("  src            {}", k.src.display());
    println!("  build          {}", k.build.display());
    println!("  vmlinux        {}", k.vmlinux.display());
    println!("  bzImage        {}", k.bzimage.display());
    println!("  System.map     {}", k.system_map.display());
    println!("  Module.symvers {}", k.module_symvers.display());
    for m in &k.modules {
        println!("  module         {}", m.display());
    }
    Ok(())
}

/// Makes sure the test kernel of `opts` is extracted, configured and built, and returns
/// its paths. Cheap when it already is: the build directory keeps a stamp of the
/// configuration fragments it was built from.
pub fn ensure(opts: &KernelOptions) -> Result<TestKernel> {
    if !VERSIONS.contains(&opts.version.as_str()) && opts.source.is_none() {
        bail!(
            "unknown kernel version `{}`: use one of {} (or --source DIR)",
            opts.version,
            VERSIONS.join(", ")
        );
    }
    let make_vars = opts.make_vars()?;
    let cache = crate::root().join("target").join("lp-kernels");
    // Held until the kernel is built: two runs must not share one O= directory at once.
    let (src, base, release, _lock) = match &opts.source {
        Some(dir) => {
            ensure_host_packages(None)?;
            let src = absolute(dir)?;
            if !src.join("Makefile").is_file() || !src.join("Kconfig").is_file() {
                bail!(
                    "--source {}: not a kernel source tree (no Makefile/Kconfig)",
                    src.display()
                );
            }
            let release = kernel_release(&src)?;
            let tag = format!("{:016x}", fnv1a(src.to_string_lossy().as_bytes()));
            let base = cache.join(format!("custom-{release}-{}", &tag[..12]));
            let lock = DirLock::acquire(&base)?;
            (src, base, release, lock)
        }
        None => {
            ensure_host_packages(Some(&opts.version))?;
            let base = cache.join(&opts.version);
            let lock = DirLock::acquire(&base)?;
            let src = extract_source(&opts.version, &base)?;
            let release = kernel_release(&src)?;
            (src, base, release, lock)
        }
    };
    // `6.12` for the fragments and the API, whatever the tree's sublevel.
    let version = release.split('.').take(2).collect::<Vec<_>>().join(".");
    ensure_packages(
        compiler_packages(opts.cc.as_deref())
            .into_iter()
            .filter(|(_, file)| !Path::new(file).exists())
            .map(|(pkg, _)| pkg)
            .collect(),
    )?;
    let build = base.join(opts.build_dir_name());
    fs::create_dir_all(&build).with_context(|| format!("cannot create {}", build.display()))?;

    let fragments = fragments(&release, opts.variant.as_deref())?;
    let hash = fragments_hash(&fragments)?;
    let config_stamp = build.join(".lp-config-hash");
    let built_stamp = build.join(".lp-built-hash");
    if read_stamp(&config_stamp).as_deref() != Some(hash.as_str())
        || !build.join(".config").is_file()
    {
        configure(&src, &build, &fragments, &make_vars)?;
        write_stamp(&config_stamp, &hash)?;
    } else {
        eprintln!(
            "kernel: {} already configured from {}",
            build.display(),
            hash
        );
    }
    // Also verify a reused configuration: someone may have run menuconfig in there.
    check_config(&build.join(".config"), &fragments, &removed_options(&src))?;
    check_compiler_config(&build.join(".config"), opts.cc.as_deref())?;

    let mut k = TestKernel {
        version,
        release,
        vmlinux: build.join("vmlinux"),
        bzimage: build.join("arch/x86/boot/bzImage"),
        system_map: build.join("System.map"),
        module_symvers: build.join("Module.symvers"),
        modules: Vec::new(),
        src,
        build,
        make_vars: make_vars.clone(),
    };
    if opts.configure_only {
        return Ok(k);
    }
    let outputs_exist = [&k.vmlinux, &k.bzimage, &k.system_map, &k.module_symvers]
        .iter()
        .all(|p| p.is_file());
    // A tree given with --source may have been edited: always let make decide then.
    let up_to_date = opts.source.is_none()
        && outputs_exist
        && read_stamp(&built_stamp).as_deref() == Some(hash.as_str());
    if up_to_date {
        eprintln!("kernel: reusing the build in {}", k.build.display());
    } else {
        let start = Instant::now();
        run_in(
            &k.src,
            Command::new("make")
                .arg(format!("O={}", k.build.display()))
                .args(&make_vars)
                .arg(format!("-j{}", jobs(opts.jobs)))
                .args(["bzImage", "modules"]),
        )
        .with_context(|| {
            format!(
                "building kernel {} in {} (see the compiler output above)",
                k.release,
                k.build.display()
            )
        })?;
        eprintln!(
            "kernel: make bzImage modules took {}",
            secs(start.elapsed())
        );
        write_stamp(&built_stamp, &hash)?;
    }
    for p in [&k.vmlinux, &k.bzimage, &k.system_map, &k.module_symvers] {
        if !p.is_file() {
            bail!("the kernel build did not produce {}", p.display());
        }
    }
    find_kos(&k.build, &mut k.modules)?;
    k.modules.sort();
    Ok(k)
}

/// Checks that the Debian packages the kernel build and the VM need are installed
/// (`kernel_version` adds `linux-source-<ver>`); installs them with apt-get when running
/// as root, otherwise fails saying what to install.
pub fn ensure_host_packages(kernel_version: Option<&str>) -> Result<()> {
    let mut missing: Vec<String> = HOST_PACKAGES
        .iter()
        .filter(|(_, file)| !Path::new(file).exists())
        .map(|(pkg, _)| pkg.to_string())
        .collect();
    if let Some(ver) = kernel_version {
        if !source_tarball(ver).is_file()
            && VERSIONS.contains(&ver)
            && !UNSTABLE_VERSIONS.contains(&ver)
        {
            missing.push(format!("linux-source-{ver}"));
        }
    }
    ensure_packages(missing)
}

/// Installs `missing` packages with apt-get when running as root; otherwise fails saying what
/// to install.
fn ensure_packages(missing: Vec<String>) -> Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    let line = format!("apt-get install -y {}", missing.join(" "));
    if !is_root() {
        bail!("missing host packages; install them with:\n  sudo {line}");
    }
    eprintln!(
        "kernel: installing missing host packages: {}",
        missing.join(" ")
    );
    let install = |missing: &[String]| {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
    };
    let ok = install(&missing).map(|s| s.success()).unwrap_or(false);
    if !ok {
        // Maybe the package lists were never fetched on this machine.
        let _ = Command::new("apt-get").arg("update").status();
        let status = install(&missing).with_context(|| format!("cannot run `{line}`"))?;
        if !status.success() {
            bail!("`{line}` failed ({status}); install these packages by hand");
        }
    }
    Ok(())
}

fn source_tarball(version: &str) -> PathBuf {
    PathBuf::from(format!("/usr/src/linux-source-{version}.tar.xz"))
}

/// Extracts `/usr/src/linux-source-<ver>.tar.xz` into `<base>/src` unless already done
/// (into a temporary directory first, renamed at the end, so a killed run leaves no
/// half-extracted tree behind).
fn extract_source(version: &str, base: &Path) -> Result<PathBuf> {
    let src = base.join("src");
    if src.join("Makefile").is_file() {
        return Ok(src);
    }
    let deb = if UNSTABLE_VERSIONS.contains(&version) {
        Some(fetch_unstable_source(version)?)
    } else {
        None
    };
    let tarball = source_tarball(version);
    if deb.is_none() && !tarball.is_file() {
        bail!(
            "{} is missing: install it with `apt-get install linux-source-{version}`",
            tarball.display()
        );
    }
    fs::create_dir_all(base).with_context(|| format!("cannot create {}", base.display()))?;
    let tmp = base.join(".src.tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp)?;
    let start = Instant::now();
    match &deb {
        Some(deb) => {
            // The package holds the same tarball as /usr/src/linux-source-<ver>.tar.xz: take
            // it out of the package's data archive and extract it in one pipe.
            let member = format!("./usr/src/linux-source-{version}.tar.xz");
            eprintln!(
                "kernel: extracting {member} of {} into {}",
                deb.display(),
                src.display()
            );
            let script =
                "dpkg-deb --fsys-tarfile \"$1\" | tar -xOf - \"$2\" | tar -C \"$3\" -xJf -";
            run_in(
                base,
                // bash: dash (Debian's sh) has no pipefail.
                Command::new("bash")
                    .args(["-o", "pipefail", "-c", script, "bash"])
                    .arg(deb)
                    .arg(&member)
                    .arg(&tmp),
            )
            .with_context(|| format!("extracting {member} of {}", deb.display()))?;
        }
        None => {
            eprintln!(
                "kernel: extracting {} into {}",
                tarball.display(),
                src.display()
            );
            run_in(
                base,
                Command::new("tar")
                    .arg("-C")
                    .arg(&tmp)
                    .arg("-xf")
                    .arg(&tarball),
            )
            .with_context(|| format!("extracting {}", tarball.display()))?;
        }
    }
    // The tarball holds one top directory, `linux-source-<ver>/`.
    let top = fs::read_dir(&tmp)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("Makefile").is_file())
        .with_context(|| format!("{} holds no kernel tree", tarball.display()))?;
    if src.exists() {
        fs::remove_dir_all(&src).with_context(|| format!("cannot remove {}", src.display()))?;
    }
    fs::rename(&top, &src)
        .with_context(|| format!("cannot rename {} to {}", top.display(), src.display()))?;
    fs::remove_dir_all(&tmp).ok();
    eprintln!("kernel: extracted in {}", secs(start.elapsed()));
    Ok(src)
}

/// Downloads Debian unstable's `linux-source-<ver>` package into
/// `target/lp-kernels/debian-unstable/` (once) and returns its path. Nothing from unstable is
/// installed and the host's apt configuration is untouched: apt-get runs with a sources list,
/// package lists and cache of its own under that directory, and only `update` and `download`.
fn fetch_unstable_source(version: &str) -> Result<PathBuf> {
    let dir = crate::root()
        .join("target")
        .join("lp-kernels")
        .join("debian-unstable");
    let package = format!("linux-source-{version}");
    let find = || -> Result<Option<PathBuf>> {
        if !dir.is_dir() {
            return Ok(None);
        }
        let mut debs: Vec<PathBuf> = fs::read_dir(&dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().is_some_and(|f| {
                    let f = f.to_string_lossy();
                    f.starts_with(&format!("{package}_")) && f.ends_with(".deb")
                })
            })
            .collect();
        debs.sort();
        Ok(debs.pop())
    };
    if let Some(deb) = find()? {
        return Ok(deb);
    }
    for sub in ["lists/partial", "cache/archives/partial"] {
        fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
    }
    let sources = dir.join("sources.list");
    fs::write(
        &sources,
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
         http://deb.debian.org/debian unstable main\n",
    )
    .with_context(|| format!("cannot write {}", sources.display()))?;
    let apt_options = [
        format!("Dir::Etc::sourcelist={}", sources.display()),
        "Dir::Etc::sourceparts=-".to_string(),
        format!("Dir::State::Lists={}", dir.join("lists").display()),
        format!("Dir::Cache={}", dir.join("cache").display()),
        "APT::Get::List-Cleanup=0".to_string(),
        // The deb lands in a root-owned directory that apt's sandbox user cannot write.
        "APT::Sandbox::User=root".to_string(),
    ];
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        for o in &apt_options {
            cmd.arg("-o").arg(o);
        }
        cmd.args(args);
        cmd
    };
    eprintln!("kernel: downloading {package} from Debian unstable (not installed)");
    run_in(&dir, &mut apt(&["-q", "update"]))
        .context("fetching Debian unstable's package lists (network needed)")?;
    run_in(&dir, &mut apt(&["-q", "download", &package]))
        .with_context(|| format!("downloading {package} from Debian unstable"))?;
    find()?.with_context(|| {
        format!(
            "apt-get download left no {package}_*.deb in {}",
            dir.display()
        )
    })
}

/// `VERSION.PATCHLEVEL.SUBLEVEL` from the tree's Makefile.
fn kernel_release(src: &Path) -> Result<String> {
    let makefile = src.join("Makefile");
    let text = fs::read_to_string(&makefile)
        .with_context(|| format!("cannot read {}", makefile.display()))?;
    let field = |name: &str| {
        text.lines()
            .take(20)
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
            .with_context(|| format!("no {name} in {}", makefile.display()))
    };
    Ok(format!(
        "{}.{}.{}",
        field("VERSION")?,
        field("PATCHLEVEL")?,
        field("SUBLEVEL")?
    ))
}

/// The configuration fragments for a tree of release `release`: the common one and the
/// `livepatch-<major>.<minor>.config` one when it exists.
pub fn fragments(release: &str, variant: Option<&str>) -> Result<Vec<PathBuf>> {
    let dir = crate::root().join("test-kernels").join("configs");
    let common = dir.join("livepatch.config");
    if !common.is_file() {
        bail!(
            "{} is missing (it is part of the repository)",
            common.display()
        );
    }
    let mut out = vec![common];
    let short: Vec<&str> = release.split('.').take(2).collect();
    let specific = dir.join(format!("livepatch-{}.config", short.join(".")));
    if specific.is_file() {
        out.push(specific);
    }
    if let Some(v) = variant {
        let f = dir.join("variants").join(format!("{v}.config"));
        if !f.is_file() {
            bail!(
                "unknown variant `{v}`: no {} (the variants are the files of {})",
                f.display(),
                dir.join("variants").display()
            );
        }
        out.push(f);
    }
    Ok(out)
}

fn fragments_hash(fragments: &[PathBuf]) -> Result<String> {
    let mut bytes = Vec::new();
    for f in fragments {
        bytes.extend_from_slice(f.file_name().unwrap_or_default().as_encoded_bytes());
        bytes.push(0);
        bytes.extend(fs::read(f).with_context(|| format!("cannot read {}", f.display()))?);
        bytes.push(0);
    }
    Ok(format!("{:016x}", fnv1a(&bytes)))
}

/// `make tinyconfig`, merge the fragments, `make olddefconfig`.
fn configure(src: &Path, build: &Path, fragments: &[PathBuf], vars: &[String]) -> Result<()> {
    let o = format!("O={}", build.display());
    run_in(
        src,
        Command::new("make").arg(&o).args(vars).arg("tinyconfig"),
    )
    .context("make tinyconfig (is the source tree clean? O= builds need `make mrproper` in it)")?;
    run_in(
        src,
        Command::new("sh")
            .arg(src.join("scripts/kconfig/merge_config.sh"))
            .arg("-m")
            .arg("-O")
            .arg(build)
            .arg(build.join(".config"))
            .args(fragments),
    )
    .context("merging the livepatch config fragment")?;
    run_in(
        src,
        Command::new("make").arg(&o).args(vars).arg("olddefconfig"),
    )
    .context("make olddefconfig")?;
    Ok(())
}

/// A clang kernel's `.config` must say clang (`CONFIG_CC_IS_CLANG`, and `clang-N`'s major
/// version in `CONFIG_CLANG_VERSION`) and ld.lld (`CONFIG_LD_IS_LLD`); a gcc kernel's gcc: what
/// lp-build reads to choose its compiler.
fn check_compiler_config(config: &Path, cc: Option<&str>) -> Result<()> {
    let have = read_config(config)?;
    let get = |name: &str| have.get(name).map(String::as_str).unwrap_or("n");
    let mut problems = Vec::new();
    match cc.and_then(|c| c.strip_prefix("clang")) {
        Some(suffix) => {
            for name in ["CC_IS_CLANG", "LD_IS_LLD", "AS_IS_LLVM"] {
                if get(name) != "y" {
                    problems.push(format!("CONFIG_{name}: required y, got {}", get(name)));
                }
            }
            if let Ok(major) = suffix.trim_start_matches('-').parse::<u32>() {
                let v: u32 = get("CLANG_VERSION").parse().unwrap_or(0);
                if v / 10000 != major {
                    problems.push(format!(
                        "CONFIG_CLANG_VERSION: {} is not clang {major}",
                        get("CLANG_VERSION")
                    ));
                }
            }
            // lp-build refuses clang LTO kernels; the test kernel must not be one.
            if get("LTO_CLANG") == "y" {
                problems.push("CONFIG_LTO_CLANG: must be off, got y".into());
            }
        }
        None => {
            if get("CC_IS_GCC") != "y" {
                problems.push(format!(
                    "CONFIG_CC_IS_GCC: required y, got {}",
                    get("CC_IS_GCC")
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "{} is not configured for the compiler asked for ({}):\n  {}",
        config.display(),
        cc.unwrap_or("gcc"),
        problems.join("\n  ")
    )
}

/// Parses a `.config` (or fragment) into `NAME -> value` (without `CONFIG_`); a
/// `# CONFIG_X is not set` line gives `n`.
fn parse_config(text: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("# CONFIG_") {
            if let Some(name) = rest.strip_suffix(" is not set") {
                map.insert(name.to_string(), "n".to_string());
            }
        } else if let Some(rest) = line.strip_prefix("CONFIG_") {
            if let Some((name, value)) = rest.split_once('=') {
                map.insert(name.to_string(), value.to_string());
            }
        }
    }
    map
}

/// The `CONFIG_` options of a `.config` or fragment (without the prefix) and their values.
pub fn read_config(path: &Path) -> Result<BTreeMap<String, String>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(parse_config(&text))
}

/// Fails naming every option of the fragments that did not survive into `.config`, and
/// every livepatch prerequisite that is missing.
/// The options of [`REMOVED_OPTIONS`] that the tree `src` no longer defines.
fn removed_options(src: &Path) -> Vec<&'static str> {
    REMOVED_OPTIONS
        .iter()
        .filter(|(name, kconfig)| {
            let text = fs::read_to_string(src.join(kconfig)).unwrap_or_default();
            !text.lines().any(|l| l.trim() == format!("config {name}"))
        })
        .map(|(name, _)| *name)
        .collect()
}

/// `removed`: options this tree's Kconfig no longer has (skipped, see [`REMOVED_OPTIONS`]).
fn check_config(config: &Path, fragments: &[PathBuf], removed: &[&str]) -> Result<()> {
    let have = read_config(config)?;
    let get = |name: &str| have.get(name).map(String::as_str).unwrap_or("n");
    let mut problems = Vec::new();
    // A later fragment (a variant) overrides an earlier one, as merge_config.sh does.
    let mut wanted: BTreeMap<String, (String, String)> = BTreeMap::new();
    for f in fragments {
        let file = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        for (name, want) in read_config(f)? {
            if removed.contains(&name.as_str()) {
                continue;
            }
            wanted.insert(name, (want, file.clone()));
        }
    }
    for (name, (want, file)) in &wanted {
        let got = get(name);
        if got != want {
            problems.push(format!("CONFIG_{name}: wanted {want}, got {got} ({file})"));
        }
    }
    // What livepatch needs, whatever the fragments say.
    for name in [
        "64BIT",
        "MODULES",
        "LIVEPATCH",
        "DYNAMIC_FTRACE",
        "FTRACE_MCOUNT_RECORD",
        "UNWINDER_ORC",
        "HAVE_RELIABLE_STACKTRACE",
        "STACKTRACE",
        "KALLSYMS_ALL",
        // Distributions build with IBT; the test kernel must too.
        "X86_KERNEL_IBT",
    ] {
        if removed.contains(&name) {
            continue;
        }
        if get(name) != "y" {
            problems.push(format!("CONFIG_{name}: required y, got {}", get(name)));
        }
    }
    if get("DYNAMIC_FTRACE_WITH_REGS") != "y" && get("DYNAMIC_FTRACE_WITH_ARGS") != "y" {
        problems
            .push("CONFIG_DYNAMIC_FTRACE_WITH_REGS or _WITH_ARGS: required, neither is y".into());
    }
    for name in [
        "TRIM_UNUSED_KSYMS",
        // The VM loads the build's own (unsigned) modules; a variant may still ask for it.
        "MODULE_SIG_FORCE",
        "LD_DEAD_CODE_DATA_ELIMINATION",
    ] {
        let asked = wanted.get(name).is_some_and(|(w, _)| w == "y");
        if get(name) == "y" && !asked {
            problems.push(format!("CONFIG_{name}: must be off, got y"));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "{} does not have what the fragments ask for:\n  {}\n\
         Fix test-kernels/configs/livepatch*.config (look up each symbol's dependencies with \
         `make O={} menuconfig`, `/` then the name).",
        config.display(),
        problems.join("\n  "),
        config.parent().unwrap_or(Path::new(".")).display()
    )
}

fn find_kos(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            find_kos(&path, out)?;
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "ko") {
            out.push(path);
        }
    }
    Ok(())
}

/// An exclusive claim on a kernel cache directory: `<dir>/.lock` holding our pid, created
/// with `create_new`, removed on drop; a lock whose process is gone is taken over.
pub struct DirLock(PathBuf);

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(".lock");
        let me = std::process::id();
        let mut told = false;
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    writeln!(f, "{me}")
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    return Ok(DirLock(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = fs::read_to_string(&path).unwrap_or_default();
                    let owner = owner.trim();
                    let alive = !owner.is_empty() && Path::new("/proc").join(owner).exists();
                    if !alive {
                        // Left by a killed run (or being written this instant: retry).
                        if owner.is_empty() {
                            std::thread::sleep(Duration::from_millis(200));
                            if !fs::read_to_string(&path)
                                .unwrap_or_default()
                                .trim()
                                .is_empty()
                            {
                                continue;
                            }
                        }
                        fs::remove_file(&path).ok();
                        continue;
                    }
                    if !told {
                        eprintln!(
                            "kernel: waiting for process {owner}, which is building in {} \
                             (remove {} if that is wrong)",
                            dir.display(),
                            path.display()
                        );
                        told = true;
                    }
                    std::thread::sleep(Duration::from_secs(2));
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()))
                }
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        fs::remove_file(&self.0).ok();
    }
}

/// Runs `cmd` in `dir`, failing with the command line when it fails.
pub fn run_in(dir: &Path, cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    eprintln!("+ (cd {} && {shown})", dir.display());
    let status = cmd
        .current_dir(dir)
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

/// The next argument, as the value of option `opt`.
pub fn absolute(p: &Path) -> Result<PathBuf> {
    fs::canonicalize(p).with_context(|| format!("{} does not exist", p.display()))
}

pub(crate) fn jobs(asked: Option<usize>) -> usize {
    asked.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

pub fn is_root() -> bool {
    // `Uid:` real, effective, ... in /proc/self/status; no libc needed.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn read_stamp(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn write_stamp(path: &Path, hash: &str) -> Result<()> {
    fs::write(path, format!("{hash}\n")).with_context(|| format!("cannot write {}", path.display()))
}

/// 64-bit FNV-1a: a stable hash (std's `DefaultHasher` may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_config_lines() {
        let c = parse_config("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x=y\"\n# comment\n");
        assert_eq!(c.get("A").map(String::as_str), Some("y"));
        assert_eq!(c.get("B").map(String::as_str), Some("n"));
        assert_eq!(c.get("C").map(String::as_str), Some("\"x=y\""));
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn fragment_survives_check() {
        let dir = std::env::temp_dir().join(format!("lp-kcheck-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let frag = dir.join("frag.config");
        fs::write(&frag, "CONFIG_FOO=m\n# CONFIG_BAR is not set\n").unwrap();
        let base =
            "CONFIG_64BIT=y\nCONFIG_MODULES=y\nCONFIG_LIVEPATCH=y\nCONFIG_DYNAMIC_FTRACE=y\n\
                    CONFIG_FTRACE_MCOUNT_RECORD=y\nCONFIG_UNWINDER_ORC=y\n\
                    CONFIG_HAVE_RELIABLE_STACKTRACE=y\nCONFIG_STACKTRACE=y\n\
                    CONFIG_KALLSYMS_ALL=y\nCONFIG_X86_KERNEL_IBT=y\n\
                    CONFIG_DYNAMIC_FTRACE_WITH_ARGS=y\n";
        let config = dir.join(".config");
        fs::write(&config, format!("{base}CONFIG_FOO=m\n")).unwrap();
        check_config(&config, std::slice::from_ref(&frag), &[]).unwrap();
        fs::write(&config, format!("{base}CONFIG_BAR=y\n")).unwrap();
        let err = format!("{:#}", check_config(&config, &[frag], &[]).unwrap_err());
        assert!(err.contains("CONFIG_FOO: wanted m, got n"), "{err}");
        assert!(err.contains("CONFIG_BAR: wanted n, got y"), "{err}");
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn removed_option_skipped_only_where_kconfig_lacks_it() {
        let dir = std::env::temp_dir().join(format!("lp-kremoved-{}", std::process::id()));
        let (old, new) = (dir.join("old"), dir.join("new"));
        for (tree, kconfig) in [
            (&old, "config FTRACE_MCOUNT_RECORD\n\tdef_bool y\n"),
            (&new, "config FTRACE_MCOUNT_USE_CC\n\tdef_bool y\n"),
        ] {
            fs::create_dir_all(tree.join("kernel/trace")).unwrap();
            fs::write(tree.join("kernel/trace/Kconfig"), kconfig).unwrap();
        }
        assert!(removed_options(&old).is_empty());
        assert_eq!(removed_options(&new), ["FTRACE_MCOUNT_RECORD"]);
        // A 7.x .config: no FTRACE_MCOUNT_RECORD, whatever the fragment asks.
        let frag = dir.join("frag.config");
        fs::write(&frag, "CONFIG_FTRACE_MCOUNT_RECORD=y\n").unwrap();
        let config = dir.join(".config");
        fs::write(
            &config,
            "CONFIG_64BIT=y\nCONFIG_MODULES=y\nCONFIG_LIVEPATCH=y\nCONFIG_DYNAMIC_FTRACE=y\n\
             CONFIG_UNWINDER_ORC=y\nCONFIG_HAVE_RELIABLE_STACKTRACE=y\nCONFIG_STACKTRACE=y\n\
             CONFIG_KALLSYMS_ALL=y\nCONFIG_X86_KERNEL_IBT=y\nCONFIG_DYNAMIC_FTRACE_WITH_ARGS=y\n",
        )
        .unwrap();
        check_config(&config, std::slice::from_ref(&frag), &removed_options(&new)).unwrap();
        let err = format!(
            "{:#}",
            check_config(&config, &[frag], &removed_options(&old)).unwrap_err()
        );
        assert!(
            err.contains("CONFIG_FTRACE_MCOUNT_RECORD: wanted y, got n"),
            "{err}"
        );
        assert!(
            err.contains("CONFIG_FTRACE_MCOUNT_RECORD: required y"),
            "{err}"
        );
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn compiler_selection() {
        assert_eq!(compiler_make_vars(None).unwrap(), Vec::<String>::new());
        assert_eq!(
            compiler_make_vars(Some("gcc")).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(compiler_make_vars(Some("clang-19")).unwrap(), ["LLVM=-19"]);
        assert_eq!(compiler_make_vars(Some("clang")).unwrap(), ["LLVM=1"]);
        assert!(compiler_make_vars(Some("clang-x")).is_err());
        assert!(compiler_make_vars(Some("icc")).is_err());
        assert_eq!(
            compiler_packages(Some("clang-19")),
            [
                ("clang-19".to_string(), "/usr/bin/clang-19".to_string()),
                ("lld-19".to_string(), "/usr/bin/ld.lld-19".to_string()),
                ("llvm-19".to_string(), "/usr/bin/llvm-ar-19".to_string())
            ]
        );
        assert!(compiler_packages(None).is_empty());
        let mut o = KernelOptions::new("6.12");
        o.cc = None;
        assert_eq!(o.build_dir_name(), "build");
        assert_eq!(o.label_suffix(), "");
        o.cc = Some("clang-19".into());
        assert_eq!(o.build_dir_name(), "build-clang-19");
        o.variant = Some("module-sig".into());
        assert_eq!(o.build_dir_name(), "build-module-sig-clang-19");
        assert_eq!(o.label_suffix(), "-module-sig-clang-19");
    }

    #[test]
    fn compiler_config_check() {
        let dir = std::env::temp_dir().join(format!("xtask-cc-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let c = dir.join(".config");
        let clang = "CONFIG_CC_IS_CLANG=y\nCONFIG_CLANG_VERSION=190107\nCONFIG_LD_IS_LLD=y\n\
                     CONFIG_AS_IS_LLVM=y\n";
        fs::write(&c, clang).unwrap();
        check_compiler_config(&c, Some("clang-19")).unwrap();
        check_compiler_config(&c, Some("clang")).unwrap();
        let e = check_compiler_config(&c, Some("clang-16")).unwrap_err();
        assert!(e.to_string().contains("190107 is not clang 16"), "{e}");
        let e = check_compiler_config(&c, None).unwrap_err();
        assert!(e.to_string().contains("CONFIG_CC_IS_GCC"), "{e}");
        fs::write(&c, format!("{clang}CONFIG_LTO_CLANG=y\n")).unwrap();
        assert!(check_compiler_config(&c, Some("clang-19")).is_err());
        fs::write(&c, "CONFIG_CC_IS_GCC=y\nCONFIG_LD_IS_BFD=y\n").unwrap();
        check_compiler_config(&c, None).unwrap();
        let e = check_compiler_config(&c, Some("clang-19")).unwrap_err();
        assert!(e.to_string().contains("CONFIG_CC_IS_CLANG"), "{e}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
