//! The test VM: a busybox initramfs booted with qemu (TCG), one guest script per boot.
//!
//! The initramfs holds `/bin/busybox` (static, from busybox-static), a generated `/init`,
//! `/lp/lib.sh` (test-kernels/guest/lib.sh), the guest script as `/lp/test.sh`, the
//! modules under `/lp/ko/` and extra files under `/lp/`. `/init` mounts proc, sysfs,
//! devtmpfs and debugfs, runs `sh /lp/test.sh` and prints `LP-E2E-RESULT: PASS` or
//! `LP-E2E-RESULT: FAIL <reason>` before `reboot -f` (qemu runs with `-no-reboot`, so it
//! exits). The host keeps the serial console in `console.log`, kills qemu after a
//! timeout, and reads the marker.
//!
//! Always TCG: KVM is not usable on the project's machines.
//!
//! A VM may also have a disk ([`Disk`]: an ext4 image made on the host, without root, by
//! `mke2fs -d` from a folder, attached as a virtio disk, `/dev/vda`; the kernel modules that read
//! it go to `/lp/ko/` and their load order to `/lp/disk-modules`, for `mount_disk` in lib.sh)
//! and boot several times ([`Vm::boots`]): qemu then runs without `-no-reboot`, so the guest's
//! `reboot -f` resets the machine and the same kernel and initramfs boot again on the same disk;
//! each boot prints its own result, and the host stops qemu after the last one.

use crate::kernel::{self, secs};
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What `/init` prints when the guest script passed / failed.
pub const RESULT_MARKER: &str = "LP-E2E-RESULT: ";
/// What `/init` prints once userspace is up (the boot time ends there).
pub const UP_MARKER: &str = "LP-E2E: guest up";
/// What `/init` prints after the guest script: `/proc/sys/kernel/tainted` as a number.
pub const TAINT_MARKER: &str = "LP-E2E-TAINT: ";

/// The kernel's taint flags by bit (`taint_flags` in kernel/panic.c).
const TAINT_LETTERS: &[u8] = b"PFSRMBUDAWCIOELKXTN";

/// The taints every case may cause: `O` (out-of-tree module: every livepatch is one) and `K`
/// (livepatch).
pub const EXPECTED_TAINTS: &str = "OK";

/// Console lines that mean the kernel complained, whatever the guest script concluded: warnings
/// (`WARN()`, lockdep, RCU), bugs and oopses, memory-safety reports, and the messages the
/// kernel prints once for a broken mitigation ("Unpatched return thunk in use. This should not
/// happen!").
const COMPLAINTS: &[&str] = &[
    "WARNING:",
    "BUG:",
    "BUG at",
    "Oops",
    "This should not happen",
    "Call Trace:",
    "general protection fault",
    "Unable to handle",
    "possible circular locking",
    "possible recursive locking",
    "inconsistent lock state",
    "suspicious RCU usage",
    "INFO: task",
    "rcu: INFO:",
    "self-detected stall",
    "soft lockup",
    "hard LOCKUP",
    "KASAN:",
    "UBSAN:",
    "KFENCE:",
    "kmemleak",
    "list_add corruption",
    "list_del corruption",
    "refcount_t:",
    "stack-protector",
    "Kernel panic",
];

/// What the kernel may print or taint in a boot without it counting as a complaint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// Taint letters allowed beside [`EXPECTED_TAINTS`] (a case's `expect-taint = E`).
    pub taints: String,
    /// Substrings of console lines that are expected (a case's `expect-console = TEXT`): a line
    /// holding one is not a complaint.
    pub console: Vec<String>,
}

/// The taint letters of a `/proc/sys/kernel/tainted` value, in the kernel's order.
pub fn taint_letters(value: u64) -> String {
    let mut out = String::new();
    for (bit, &letter) in TAINT_LETTERS.iter().enumerate() {
        if value & (1u64 << bit) != 0 {
            out.push(char::from(letter));
        }
    }
    let unknown = value >> TAINT_LETTERS.len();
    if unknown != 0 {
        out.push_str(&format!("+{:#x}", unknown << TAINT_LETTERS.len()));
    }
    out
}

/// Every sign in a console log that the kernel complained: lines matching [`COMPLAINTS`] (but
/// those the case expects), and taints other than the expected ones. Empty: a clean boot.
pub fn kernel_complaints(console: &str, expected: &Expected) -> Vec<String> {
    let mut out = Vec::new();
    for line in console.lines() {
        let line = line.trim_end_matches('\r');
        // The guest's own lines (`LP: ...`) quote what they check; the kernel's do not start so.
        if line.starts_with("LP: ") || line.starts_with("LP-E2E") {
            continue;
        }
        if COMPLAINTS.iter().any(|c| line.contains(c))
            && !expected.console.iter().any(|e| line.contains(e.as_str()))
        {
            out.push(format!("console: {}", line.trim()));
        }
    }
    // One line per boot (a run may boot several times): each must be clean.
    for line in console.lines().filter(|l| l.contains(TAINT_MARKER)) {
        let rest = &line[line.find(TAINT_MARKER).unwrap_or(0) + TAINT_MARKER.len()..];
        match rest.trim().parse::<u64>() {
            Ok(value) => {
                let letters = taint_letters(value);
                let bad: String = letters
                    .chars()
                    .filter(|c| !EXPECTED_TAINTS.contains(*c) && !expected.taints.contains(*c))
                    .collect();
                if !bad.is_empty() {
                    out.push(format!(
                        "the kernel is tainted {letters} ({value}); not expected: {bad}"
                    ));
                }
            }
            Err(_) => out.push(format!("unreadable taint line `{}`", line.trim())),
        }
    }
    out
}

/// One boot of the test VM.
#[derive(Debug, Clone)]
pub struct Vm {
    /// The kernel to boot.
    pub bzimage: PathBuf,
    /// Guest script (busybox sh), run as `/lp/test.sh` with `/lp` as working directory.
    pub script: PathBuf,
    /// Modules copied to `/lp/ko/<file name>`.
    pub modules: Vec<PathBuf>,
    /// Other files copied to `/lp/<file name>`.
    pub files: Vec<PathBuf>,
    /// Extra kernel command line arguments.
    pub append: Vec<String>,
    /// qemu is killed after this long.
    pub timeout: Duration,
    /// Where `initramfs.cpio.gz`, `console.log` and `qemu.stderr` go (kept).
    pub work_dir: PathBuf,
    /// Guest memory (qemu `-m`).
    pub memory: String,
    /// Virtual CPUs (qemu `-smp`).
    pub cpus: u32,
    /// The CPU model (qemu `-cpu`): `max` by default; a case may ask for a model the kernel
    /// treats as affected by a speculation bug, to run under that bug's mitigation.
    pub cpu_model: String,
    /// Mirror the serial console on stderr while it runs.
    pub echo: bool,
    /// What the kernel may print or taint without failing the boot.
    pub expected: Expected,
    /// A persistent disk (`/dev/vda`), made afresh for each run.
    pub disk: Option<Disk>,
    /// How many times the guest boots in one run (1: qemu exits at the guest's `reboot -f`).
    pub boots: u32,
}

/// A disk for the guest: an ext4 image of a host folder, writable, kept across the reboots of
/// one run (`Vm::boots`) and made again from the folder for every run.
#[derive(Debug, Clone)]
pub struct Disk {
    /// The folder whose files the image holds (`mke2fs -d`).
    pub files: PathBuf,
    /// The image's size in MiB.
    pub size_mib: u32,
    /// The kernel modules the guest loads, in this order, to read it (virtio_blk, ext4 and
    /// their dependencies): copied to `/lp/ko/`, their names listed in `/lp/disk-modules`.
    pub modules: Vec<PathBuf>,
}

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// The guest script failed (the reason `/init` printed), or the VM timed out,
    /// panicked or stopped without a result line.
    Fail(String),
}

#[derive(Debug, Clone)]
pub struct VmResult {
    pub outcome: Outcome,
    /// The serial console (kernel messages and guest output).
    pub log: PathBuf,
    /// From starting qemu to `/init` running (`None` if it never got there).
    pub boot_time: Option<Duration>,
    /// From starting qemu to its exit.
    pub total_time: Duration,
}

impl VmResult {
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Pass
    }
}

impl Vm {
    /// A VM with defaults: 512 MiB, 2 CPUs, 180 s timeout, no modules or files.
    pub fn new(bzimage: &Path, script: &Path, work_dir: &Path) -> Self {
        Vm {
            bzimage: bzimage.to_path_buf(),
            script: script.to_path_buf(),
            modules: Vec::new(),
            files: Vec::new(),
            append: Vec::new(),
            timeout: Duration::from_secs(180),
            work_dir: work_dir.to_path_buf(),
            memory: "512M".into(),
            cpus: 2,
            cpu_model: "max".into(),
            echo: false,
            expected: Expected::default(),
            disk: None,
            boots: 1,
        }
    }

    /// Builds `work_dir/initramfs.cpio.gz` and returns its path.
    pub fn build_initramfs(&self) -> Result<PathBuf> {
        fs::create_dir_all(&self.work_dir)
            .with_context(|| format!("cannot create {}", self.work_dir.display()))?;
        let busybox = Path::new("/bin/busybox");
        let lib = crate::root().join("test-kernels/guest/lib.sh");
        let mut cpio = Cpio::default();
        for dir in [
            "/bin",
            "/sbin",
            "/usr",
            "/usr/bin",
            "/usr/sbin",
            "/dev",
            "/proc",
            "/sys",
            "/tmp",
            "/mnt",
            "/root",
            "/lp",
            "/lp/ko",
        ] {
            cpio.dir(dir);
        }
        cpio.char_dev("/dev/console", 0o600, 5, 1);
        cpio.file(
            "/bin/busybox",
            0o755,
            &read(busybox, "apt-get install busybox-static")?,
        );
        cpio.symlink("/bin/sh", "busybox");
        cpio.file("/init", 0o755, INIT.as_bytes());
        cpio.file("/bin/lp-finit", 0o755, &self.finit_helper()?);
        cpio.file(
            "/lp/lib.sh",
            0o644,
            &read(&lib, "it is part of the repository")?,
        );
        // Kernel-log checks in the style of the kernel's livepatch selftests.
        let kmsg = crate::root().join("test-kernels/guest/kmsg.sh");
        cpio.file(
            "/lp/kmsg.sh",
            0o644,
            &read(&kmsg, "it is part of the repository")?,
        );
        cpio.file("/lp/test.sh", 0o755, &read(&self.script, "check --script")?);
        for ko in &self.modules {
            cpio.file(
                &format!("/lp/ko/{}", file_name(ko)?),
                0o644,
                &read(ko, "build it first")?,
            );
        }
        for f in &self.files {
            cpio.file(
                &format!("/lp/{}", file_name(f)?),
                0o755,
                &read(f, "check --file")?,
            );
        }
        if let Some(disk) = &self.disk {
            let mut order = String::new();
            for ko in &disk.modules {
                let name = file_name(ko)?;
                cpio.file(
                    &format!("/lp/ko/{name}"),
                    0o644,
                    &read(ko, "a module of the kernel")?,
                );
                order.push_str(&name);
                order.push('\n');
            }
            cpio.file("/lp/disk-modules", 0o644, order.as_bytes());
        }
        let raw = cpio.finish();

        let out = self.work_dir.join("initramfs.cpio.gz");
        let file =
            fs::File::create(&out).with_context(|| format!("cannot create {}", out.display()))?;
        let mut gzip = Command::new("gzip")
            .args(["-n", "-6", "-c"])
            .stdin(Stdio::piped())
            .stdout(file)
            .spawn()
            .context("cannot start gzip (apt-get install gzip)")?;
        let mut stdin = gzip.stdin.take().context("gzip has no stdin")?;
        stdin
            .write_all(&raw)
            .context("writing the initramfs to gzip")?;
        drop(stdin);
        let status = gzip.wait().context("waiting for gzip")?;
        if !status.success() {
            bail!("gzip failed with {status} writing {}", out.display());
        }
        Ok(out)
    }

    /// `lp-finit` (test-kernels/guest/finit.c), built static: loads a compressed stock module
    /// with `MODULE_INIT_COMPRESSED_FILE`, as kmod does.
    fn finit_helper(&self) -> Result<Vec<u8>> {
        let src = crate::root().join("test-kernels/guest/finit.c");
        let out = self.work_dir.join("lp-finit");
        let status = Command::new("gcc")
            .args(["-static", "-Os", "-Wall", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .context("cannot start gcc (apt-get install gcc libc6-dev)")?;
        if !status.success() {
            bail!(
                "gcc -static failed ({status}) on {} (apt-get install libc6-dev)",
                src.display()
            );
        }
        read(&out, "gcc wrote it")
    }

    /// qemu's command line: TCG, the kernel and initramfs, the console on stdout, the disk.
    fn qemu_command(&self, initramfs: &Path, disk: Option<&Path>, boots: u32) -> Command {
        let mut append = vec![
            "console=ttyS0".to_string(),
            "panic=-1".to_string(),
            "oops=panic".to_string(),
            "rdinit=/init".to_string(),
        ];
        append.extend(self.append.iter().cloned());
        let mut cmd = Command::new("qemu-system-x86_64");
        // Single-threaded TCG: the vCPUs take turns at translation-block boundaries. With
        // multi-threaded TCG, a vCPU could still execute a stale block holding the int3 of a
        // finished text_poke_bp() (the livepatch core rewrites cond_resched() call sites during
        // a transition) and die with "Oops: int3" (seen twice in ~100 boots, qemu 7.2).
        cmd.args([
            "-accel",
            "tcg,thread=single",
            "-cpu",
            &self.cpu_model,
            "-m",
            &self.memory,
        ])
        // One socket per CPU: SeaBIOS lists only the first CPU of a package in the MP
        // table, and the test kernel has no ACPI to find the others.
        .args([
            "-smp",
            &format!("{0},sockets={0},cores=1,threads=1", self.cpus),
        ])
        .arg("-nographic")
        // One boot: the guest's `reboot -f` ends qemu. Several: it resets the machine, which
        // boots the same kernel and initramfs again (on the same disk).
        .args(if boots == 1 {
            vec!["-no-reboot"]
        } else {
            vec![]
        })
        .arg("-kernel")
        .arg(&self.bzimage)
        .arg("-initrd")
        .arg(initramfs)
        .arg("-append")
        .arg(append.join(" "));
        if let Some(img) = disk {
            cmd.arg("-drive").arg(format!(
                "file={},format=raw,if=virtio,cache=writeback",
                img.display()
            ));
        }
        cmd
    }

    /// The run's outcome from its console: every boot's result line, else why there is none
    /// (timeout, panic, qemu's own error); a pass with a kernel complaint is a failure.
    fn judge(&self, console: &str, boots: u32, timed_out: bool, err_path: &Path) -> Outcome {
        // Which boot ended without a result, when there are several.
        let which = if boots > 1 {
            format!(
                "boot {} of {boots}: ",
                console.matches(UP_MARKER).count().max(1)
            )
        } else {
            String::new()
        };
        let outcome = match parse_boots(console, boots) {
            Some(o) => o,
            None if timed_out => Outcome::Fail(format!(
                "{which}timeout: no result after {} (last console line: {})",
                secs(self.timeout),
                last_line(console)
            )),
            None => {
                let why = if console.contains("Kernel panic") {
                    "kernel panic"
                } else {
                    "qemu exited"
                };
                let stderr = fs::read_to_string(err_path).unwrap_or_default();
                Outcome::Fail(format!(
                    "{which}{why} without a result line (last console line: {}; qemu stderr: {})",
                    last_line(console),
                    stderr.trim()
                ))
            }
        };
        // A passing script proves little if the kernel complained meanwhile.
        match outcome {
            Outcome::Pass => {
                let complaints = kernel_complaints(console, &self.expected);
                match complaints.first() {
                    None => Outcome::Pass,
                    Some(first) => Outcome::Fail(format!(
                        "the guest script passed but the kernel complained ({} sign(s); first: {first})",
                        complaints.len()
                    )),
                }
            }
            fail => fail,
        }
    }

    /// Builds the initramfs, boots, waits for the result (or the timeout).
    /// `Err` only for harness problems (qemu missing, files unreadable); a guest that
    /// fails, panics or hangs gives `Ok` with [`Outcome::Fail`].
    pub fn run(&self) -> Result<VmResult> {
        let initramfs = self.build_initramfs()?;
        let log_path = self.work_dir.join("console.log");
        let err_path = self.work_dir.join("qemu.stderr");
        let disk = match &self.disk {
            Some(d) => Some(make_disk_image(d, &self.work_dir.join("disk.img"))?),
            None => None,
        };
        let boots = self.boots.max(1);
        let mut cmd = self.qemu_command(&initramfs, disk.as_deref(), boots);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(
            fs::File::create(&err_path)
                .with_context(|| format!("cannot create {}", err_path.display()))?,
        );
        eprintln!("+ {cmd:?}");
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .context("cannot start qemu-system-x86_64 (apt-get install qemu-system-x86)")?;
        let mut stdout = child.stdout.take().context("qemu has no stdout")?;
        let mut log = fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let echo = self.echo;
        // Boots started and results printed so far (complete console lines), for a run of
        // several boots, which qemu does not end by itself.
        let seen = std::sync::Arc::new(BootCount::default());
        let seen_by_reader = std::sync::Arc::clone(&seen);
        // Copies the console to the log as it comes, noting when the guest is up.
        let reader = std::thread::spawn(move || -> std::io::Result<(Vec<u8>, Option<Duration>)> {
            let mut all = Vec::new();
            let mut up = None;
            let mut scanned = 0;
            let mut buf = [0u8; 8192];
            loop {
                let n = stdout.read(&mut buf)?;
                if n == 0 {
                    return Ok((all, up));
                }
                log.write_all(&buf[..n])?;
                if echo {
                    std::io::stderr().write_all(&buf[..n])?;
                }
                all.extend_from_slice(&buf[..n]);
                if up.is_none() && contains(&all, UP_MARKER.as_bytes()) {
                    up = Some(start.elapsed());
                }
                scanned = seen_by_reader.count_lines(&all, scanned);
            }
        });
        let mut timed_out = false;
        loop {
            if child.try_wait().context("waiting for qemu")?.is_some() {
                break;
            }
            // The last boot's result is in, or the guest booted once too often (a panic
            // reboots at once): nothing more to wait for.
            if boots > 1 && seen.done(boots) {
                child.kill().ok();
                child.wait().context("waiting for the stopped qemu")?;
                break;
            }
            if start.elapsed() > self.timeout {
                timed_out = true;
                // Ours to kill: the qemu we started, by its handle.
                child.kill().ok();
                child.wait().context("waiting for the killed qemu")?;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let total_time = start.elapsed();
        let (console, boot_time) = reader
            .join()
            .map_err(|_| anyhow::anyhow!("the console reader thread panicked"))?
            .with_context(|| format!("copying the console to {}", log_path.display()))?;
        let console = String::from_utf8_lossy(&console);
        let outcome = self.judge(&console, boots, timed_out, &err_path);
        Ok(VmResult {
            outcome,
            log: log_path,
            boot_time,
            total_time,
        })
    }
}

/// The last `LP-E2E-RESULT:` line of a console log (found anywhere in a line, since
/// kernel messages can land in front of it on the serial port).
pub fn parse_result(console: &str) -> Option<Outcome> {
    let line = console.lines().rev().find(|l| l.contains(RESULT_MARKER))?;
    let rest = &line[line.find(RESULT_MARKER)? + RESULT_MARKER.len()..];
    let rest = rest.trim_end_matches(['\r', '\n']).trim();
    if rest == "PASS" {
        Some(Outcome::Pass)
    } else if let Some(reason) = rest.strip_prefix("FAIL") {
        Some(Outcome::Fail(reason.trim().to_string()))
    } else {
        Some(Outcome::Fail(format!(
            "unreadable result line `{}`",
            line.trim()
        )))
    }
}

/// The outcome of a run of `boots` boots: each boot (from its `LP-E2E: guest up` line to the
/// next) must print a passing result, and the guest must boot exactly `boots` times. `None`
/// when a boot ended without a result line (the caller says why: timeout, panic, exit).
pub fn parse_boots(console: &str, boots: u32) -> Option<Outcome> {
    if boots <= 1 {
        return parse_result(console);
    }
    let starts: Vec<usize> = console.match_indices(UP_MARKER).map(|(i, _)| i).collect();
    for (k, &s) in starts.iter().enumerate().take(boots as usize) {
        let end = starts.get(k + 1).copied().unwrap_or(console.len());
        match parse_result(&console[s..end]) {
            Some(Outcome::Pass) => {}
            Some(Outcome::Fail(why)) => {
                return Some(Outcome::Fail(format!("boot {} of {boots}: {why}", k + 1)))
            }
            None => return None,
        }
    }
    let n = starts.len();
    if n > boots as usize {
        Some(Outcome::Fail(format!(
            "the guest booted {n} times, {boots} expected (an unexpected reboot or a panic)"
        )))
    } else if n == 0 {
        None
    } else if n < boots as usize {
        Some(Outcome::Fail(format!(
            "boot {n} of {boots} passed, but the guest did not boot again"
        )))
    } else {
        Some(Outcome::Pass)
    }
}

/// Complete console lines holding [`UP_MARKER`] and [`RESULT_MARKER`], counted as they come.
#[derive(Default)]
struct BootCount {
    ups: std::sync::atomic::AtomicU32,
    results: std::sync::atomic::AtomicU32,
}

impl BootCount {
    /// Counts the complete lines of `all` after `from`; returns where the next count starts.
    fn count_lines(&self, all: &[u8], from: usize) -> usize {
        let Some(last_nl) = all.iter().rposition(|&b| b == b'\n') else {
            return from;
        };
        if last_nl < from {
            return from;
        }
        use std::sync::atomic::Ordering::Relaxed;
        for line in all[from..last_nl].split(|&b| b == b'\n') {
            if contains(line, UP_MARKER.as_bytes()) {
                self.ups.fetch_add(1, Relaxed);
            }
            if contains(line, RESULT_MARKER.as_bytes()) {
                self.results.fetch_add(1, Relaxed);
            }
        }
        last_nl + 1
    }

    /// Whether a run of `boots` boots is over: every result printed, or one boot too many.
    fn done(&self, boots: u32) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.results.load(Relaxed) >= boots || self.ups.load(Relaxed) > boots
    }
}

/// Makes `img`, an ext4 image of `disk.files` (`mke2fs -d`, no root needed).
fn make_disk_image(disk: &Disk, img: &Path) -> Result<PathBuf> {
    let _ = fs::remove_file(img);
    let status = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-L", "lp-e2e", "-d"])
        .arg(&disk.files)
        .arg(img)
        .arg(format!("{}M", disk.size_mib))
        .status()
        .context("cannot start mke2fs (apt-get install e2fsprogs)")?;
    if !status.success() {
        bail!(
            "mke2fs -d {} {} failed with {status}",
            disk.files.display(),
            img.display()
        );
    }
    Ok(img.to_path_buf())
}

fn last_line(console: &str) -> String {
    console
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("<none>")
        .to_string()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn read(path: &Path, hint: &str) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {} ({hint})", path.display()))
}

fn file_name(path: &Path) -> Result<String> {
    Ok(path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?
        .to_string_lossy()
        .into_owned())
}

/// The guest's `/init`.
const INIT: &str = r#"#!/bin/sh
# /init of the lp-build test VM (generated by xtask/src/vm.rs).
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
[ -d /sys/kernel/debug ] && mount -t debugfs debugfs /sys/kernel/debug
echo "LP-E2E: guest up, kernel $(uname -r), $(cat /proc/uptime | cut -d' ' -f1)s since boot"
rm -f /tmp/lp-fail-reason
cd /lp
sh /lp/test.sh
rc=$?
echo "LP-E2E-TAINT: $(cat /proc/sys/kernel/tainted)"
# Keep kernel messages from splitting the result line on the console.
dmesg -n 1
if [ "$rc" = 0 ]; then
	echo "LP-E2E-RESULT: PASS"
else
	reason=$(cat /tmp/lp-fail-reason 2>/dev/null | head -n 1)
	[ -n "$reason" ] || reason="guest script exited with status $rc"
	echo "LP-E2E-RESULT: FAIL $reason"
fi
sync
reboot -f
"#;

/// A cpio archive in the "newc" format the kernel unpacks (all entries root-owned).
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let name = name.trim_start_matches('/');
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            1, // nlink
            0, // mtime
            data.len() as u32,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        let len = self.out.len().next_multiple_of(4);
        self.out.resize(len, 0);
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, (0, 0), &[]);
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100_000 | perm, (0, 0), data);
    }

    fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120_777, (0, 0), target.as_bytes());
    }

    fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) {
        self.entry(name, 0o020_000 | perm, (major, minor), &[]);
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

/// `cargo xtask vm`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct VmArgs {
    #[command(flatten)]
    pub choice: kernel::KernelChoice,
    /// A distribution's stock kernel (debian-6.12, debian-6.1).
    #[arg(long, value_name = "NAME")]
    pub distro: Option<String>,
    /// A module to put in the guest's /lp/ko (repeatable).
    #[arg(long = "ko", value_name = "FILE.ko")]
    pub modules: Vec<PathBuf>,
    /// A file to put in the guest (repeatable).
    #[arg(long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The script the guest runs (default: show what the guest sees and pass).
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,
    /// A kernel command-line argument (repeatable).
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub append: Vec<String>,
    /// Seconds before the guest is stopped.
    #[arg(long, value_name = "SECONDS", default_value_t = 180)]
    pub timeout: u64,
    /// Do not echo the guest's console.
    #[arg(long)]
    pub quiet: bool,
}

/// `cargo xtask vm [--kernel VER] [--ko FILE.ko ...] [--file FILE ...] [--script FILE]
/// [--append ARG] [--timeout S] [--quiet]`.
pub fn task(args: &VmArgs) -> Result<()> {
    let opts = args.choice.options();
    let distro = args.distro.clone();
    let modules = args
        .modules
        .iter()
        .map(|p| kernel::absolute(p))
        .collect::<Result<Vec<_>>>()?;
    let files = args
        .files
        .iter()
        .map(|p| kernel::absolute(p))
        .collect::<Result<Vec<_>>>()?;
    let script = args.script.as_deref().map(kernel::absolute).transpose()?;
    let append = args.append.clone();
    let timeout = args.timeout;
    let echo = !args.quiet;
    let work = crate::root().join("target/lp-vm/manual");
    let script = match script {
        Some(s) => s,
        None => {
            // Default: show what the guest sees and pass.
            fs::create_dir_all(&work)?;
            let s = work.join("default.sh");
            fs::write(&s, DEFAULT_SCRIPT)
                .with_context(|| format!("cannot write {}", s.display()))?;
            s
        }
    };
    let mut vm = match &distro {
        Some(name) => distro_vm(name, &script, &work)?,
        None => Vm::new(&kernel::ensure(&opts)?.bzimage, &script, &work),
    };
    vm.modules.extend(modules);
    vm.files.extend(files);
    vm.append = append;
    vm.timeout = Duration::from_secs(timeout);
    vm.echo = echo;
    let r = vm.run()?;
    report(&r);
    if !r.passed() {
        bail!("the guest failed (console: {})", r.log.display());
    }
    Ok(())
}

/// A VM that boots the stock kernel of the distribution `name` (`boot/vmlinuz-R` of its
/// extracted packages) with its stock guest modules (as shipped) in `/lp/ko/`, the release in
/// `/lp/release`, and the taints the distribution declares allowed.
pub fn distro_vm(name: &str, script: &Path, work: &Path) -> Result<Vm> {
    let k = crate::distro::ensure(name)?;
    let mut vm = Vm::new(&k.vmlinuz, script, work);
    vm.modules = k.guest_modules.clone();
    vm.memory = k.distro.memory.to_string();
    vm.expected.taints = k.distro.taints.0.to_string();
    fs::create_dir_all(work).with_context(|| format!("cannot create {}", work.display()))?;
    let release = work.join("release");
    fs::write(&release, k.distro.release)
        .with_context(|| format!("cannot write {}", release.display()))?;
    vm.files.push(release);
    Ok(vm)
}

const DEFAULT_SCRIPT: &str = r#". /lp/lib.sh
log "kernel $(uname -r): $(cat /proc/cmdline)"
ls -l /lp /lp/ko
cat /proc/modules
ls /sys/kernel/livepatch
"#;

fn report(r: &VmResult) {
    let boot = r.boot_time.map_or("-".to_string(), secs);
    let test = r
        .boot_time
        .map_or("-".to_string(), |b| secs(r.total_time.saturating_sub(b)));
    println!(
        "vm: {} (boot to /init {boot}, script and shutdown {test}, total {}); console: {}",
        match &r.outcome {
            Outcome::Pass => "PASS".to_string(),
            Outcome::Fail(why) => format!("FAIL: {why}"),
        },
        secs(r.total_time),
        r.log.display()
    );
}

/// `cargo xtask vm-selftest`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct SelftestArgs {
    #[command(flatten)]
    pub choice: kernel::KernelChoice,
    /// Boot a distribution's stock kernel and use its own binfmt_misc instead.
    #[arg(long, value_name = "NAME")]
    pub distro: Option<String>,
    /// Echo the guest's console.
    #[arg(long)]
    pub echo: bool,
}

impl SelftestArgs {
    /// `vm-selftest --distro NAME`.
    pub fn distro(name: &str) -> Self {
        SelftestArgs {
            choice: kernel::KernelChoice::new(kernel::DEFAULT_VERSION),
            distro: Some(name.into()),
            echo: false,
        }
    }
}

/// `cargo xtask vm-selftest [--kernel VER]`: builds the test kernel and the kernel's own
/// `samples/livepatch/livepatch-sample.c` out of tree, then boots test-kernels/guest/selftest.sh
/// which patches /proc/cmdline, unpatches it, unloads it, and exercises binfmt_misc.ko.
pub fn selftest(args: &SelftestArgs) -> Result<()> {
    let opts = args.choice.options();
    let echo = args.echo;
    let distro = args.distro.clone();
    if let Some(name) = distro {
        return distro_selftest(&name, echo);
    }
    let t0 = Instant::now();
    let k = kernel::ensure(&opts)?;
    let t_kernel = t0.elapsed();

    let t1 = Instant::now();
    let work = k.build.parent().unwrap_or(&k.build).join("selftest");
    let moddir = work.join("livepatch-sample");
    fs::create_dir_all(&moddir).with_context(|| format!("cannot create {}", moddir.display()))?;
    let sample = k.src.join("samples/livepatch/livepatch-sample.c");
    let code = fs::read(&sample).with_context(|| format!("cannot read {}", sample.display()))?;
    // Only rewrite when changed, so kbuild does not rebuild for nothing.
    let dst = moddir.join("livepatch-sample.c");
    if fs::read(&dst).ok().as_deref() != Some(&code[..]) {
        fs::write(&dst, &code).with_context(|| format!("cannot write {}", dst.display()))?;
    }
    fs::write(moddir.join("Kbuild"), "obj-m := livepatch-sample.o\n")
        .with_context(|| format!("cannot write Kbuild in {}", moddir.display()))?;
    let kos = k.build_external_module(&moddir)?;
    let t_module = t1.elapsed();

    let binfmt = k.module("binfmt_misc").with_context(|| {
        format!(
            "binfmt_misc.ko was not built in {}: is CONFIG_BINFMT_MISC=m in livepatch.config?",
            k.build.display()
        )
    })?;
    let script = crate::root().join("test-kernels/guest/selftest.sh");
    let mut vm = Vm::new(&k.bzimage, &script, &work.join("vm"));
    vm.modules = kos;
    vm.modules.push(binfmt.to_path_buf());
    vm.echo = echo;
    let r = vm.run()?;
    let ibt = k.config("X86_KERNEL_IBT")?.unwrap_or_else(|| "n".into());
    println!(
        "vm-selftest {} ({}, X86_KERNEL_IBT={ibt}): kernel ready in {}, \
         livepatch-sample.ko built in {}",
        k.version,
        k.release,
        secs(t_kernel),
        secs(t_module)
    );
    report(&r);
    if let Outcome::Fail(why) = &r.outcome {
        bail!(
            "vm-selftest FAILED on {}: {why}\nread the console log {} (kernel messages included)",
            k.release,
            r.log.display()
        );
    }
    println!("vm-selftest: PASS");
    Ok(())
}

/// `cargo xtask vm-selftest --distro NAME`: the stock kernel boots with the project's
/// initramfs and loads, uses and unloads its own binfmt_misc as shipped
/// (test-kernels/guest/distro-selftest.sh), with the console check.
fn distro_selftest(name: &str, echo: bool) -> Result<()> {
    let t0 = Instant::now();
    let script = crate::root().join("test-kernels/guest/distro-selftest.sh");
    let work = crate::root()
        .join("target/distro")
        .join(name)
        .join("selftest");
    let mut vm = distro_vm(name, &script, &work)?;
    let t_ready = t0.elapsed();
    vm.echo = echo;
    let r = vm.run()?;
    println!(
        "vm-selftest {name}: packages ready in {}, stock kernel booted",
        secs(t_ready)
    );
    report(&r);
    if let Outcome::Fail(why) = &r.outcome {
        bail!(
            "vm-selftest FAILED on {name}: {why}\nread the console log {} (kernel messages included)",
            r.log.display()
        );
    }
    println!("vm-selftest: PASS");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines() {
        assert_eq!(
            parse_result("x\nLP-E2E-RESULT: PASS\r\n"),
            Some(Outcome::Pass)
        );
        assert_eq!(
            parse_result("[  1.0] klp: x LP-E2E-RESULT: FAIL insmod failed: bad\r\n"),
            Some(Outcome::Fail("insmod failed: bad".into()))
        );
        assert_eq!(parse_result("booting\nno marker\n"), None);
    }

    #[test]
    fn complaints_in_the_console() {
        let clean = "[ 1.0] livepatch: enabling patch 'x'\nLP: ok: WARNING: quoted by the guest\nLP-E2E-TAINT: 36864\nLP-E2E-RESULT: PASS\n";
        assert_eq!(
            kernel_complaints(clean, &Expected::default()),
            Vec::<String>::new()
        );
        let warn = "[ 2.0] Unpatched return thunk in use. This should not happen!\r\n\
                    [ 2.0] WARNING: CPU: 0 PID: 1 at arch/x86/kernel/cpu/bugs.c:3524 __warn_thunk+0x2a/0x40\n\
                    LP-E2E-TAINT: 37376\n";
        let c = kernel_complaints(warn, &Expected::default());
        assert_eq!(c.len(), 3, "{c:?}");
        assert!(c[0].contains("This should not happen"));
        assert!(c[1].contains("WARNING: CPU: 0"));
        assert_eq!(c[2], "the kernel is tainted WOK (37376); not expected: W");
        // A case may declare a line and a taint it expects.
        let expected = Expected {
            taints: "W".into(),
            console: vec!["This should not happen".into(), "__warn_thunk".into()],
        };
        assert_eq!(kernel_complaints(warn, &expected), Vec::<String>::new());
        assert_eq!(taint_letters(1 << 13 | 1 << 15), "EK");
        assert_eq!(taint_letters(1 << 40), "+0x10000000000");
    }

    #[test]
    fn results_of_several_boots() {
        let up = |n: u32| format!("[ {n}.0] boot\nLP-E2E: guest up, kernel x, 1.0s since boot\n");
        let pass = "LP-E2E-TAINT: 0\nLP-E2E-RESULT: PASS\n[ 9.0] reboot: Restarting system\n";
        let two = format!("{}{pass}{}{pass}", up(1), up(2));
        assert_eq!(parse_boots(&two, 2), Some(Outcome::Pass));
        // One boot is parsed as before: the last result line.
        assert_eq!(parse_boots(&two, 1), Some(Outcome::Pass));
        // A failing first boot fails the run, even when the second passes.
        let first_fails = format!(
            "{}LP-E2E-RESULT: FAIL lpctl install: no\n{}{pass}",
            up(1),
            up(2)
        );
        assert_eq!(
            parse_boots(&first_fails, 2),
            Some(Outcome::Fail("boot 1 of 2: lpctl install: no".into()))
        );
        // The second boot never came, or came without a result, or a third one started.
        let one = format!("{}{pass}", up(1));
        assert_eq!(
            parse_boots(&one, 2),
            Some(Outcome::Fail(
                "boot 1 of 2 passed, but the guest did not boot again".into()
            ))
        );
        assert_eq!(parse_boots(&format!("{one}{}", up(2)), 2), None);
        assert_eq!(parse_boots("no boot at all", 2), None);
        let three = format!("{two}{}", up(3));
        assert!(matches!(
            parse_boots(&three, 2),
            Some(Outcome::Fail(why)) if why.contains("booted 3 times")
        ));
        // Every boot's taint line is checked.
        let tainted = format!("{}LP-E2E-TAINT: 512\n{}{pass}", up(1), up(2));
        let c = kernel_complaints(&tainted, &Expected::default());
        assert_eq!(c, ["the kernel is tainted W (512); not expected: W"]);
    }

    #[test]
    fn boots_are_counted_on_complete_lines() {
        let c = BootCount::default();
        let mut all = b"LP-E2E: guest up\nLP-E2E-RESULT: PA".to_vec();
        let at = c.count_lines(&all, 0);
        assert!(!c.done(1), "a result line is counted once complete");
        all.extend_from_slice(b"SS\n");
        let at = c.count_lines(&all, at);
        assert!(c.done(1) && !c.done(2));
        all.extend_from_slice(b"LP-E2E: guest up\nLP-E2E: guest up\n");
        c.count_lines(&all, at);
        assert!(c.done(2), "a third boot of two is the end too");
    }

    #[test]
    fn cpio_newc_layout() {
        let mut c = Cpio::default();
        c.file("/init", 0o755, b"abc");
        let out = c.finish();
        assert!(out.starts_with(b"070701"));
        assert_eq!(out.len() % 4, 0);
        // header (110) + "init\0" padded to 116, data 3 padded to 4, then the trailer.
        assert_eq!(&out[110..115], b"init\0");
        assert_eq!(&out[116..119], b"abc");
        assert_eq!(&out[120..126], b"070701");
        assert!(contains(&out, b"TRAILER!!!\0"));
    }
}
