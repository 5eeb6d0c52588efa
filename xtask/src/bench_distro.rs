//! `cargo xtask bench --distro NAME [--root DIR]`: lp-build on a distribution's stock kernel,
//! from its extracted packages (`target/distro/NAME/root`, as `cargo xtask e2e --distro NAME`
//! lays them out, or `--root DIR`): the cold path (the source package's tarball never unpacked,
//! nothing prepared: a fresh cache) and the warm path for the one-function patch of
//! `test-kernels/cases/cmdline`, beside their floors, measured in one run:
//!
//! - cold: lp-build's wall time and its phases, its peak memory (VmHWM) and the cache's disk use;
//! - warm: the median of 5 runs beside the floor (make of the touched object in the prepared
//!   tree plus a trivial module built against the headers package, also medians), interleaved;
//! - the whole-kernel build kpatch-build and klp-build need first: a sample of the
//!   configuration's objects compiled in the prepared tree, extrapolated to the number of objects
//!   the kernel has (at least one per vmlinux source file and one per module).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `cmd`, returns its wall time and peak resident memory (VmHWM, polled every 50 ms).
fn timed(cmd: &mut Command) -> Result<(Duration, u64, String)> {
    let t = Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting lp-build")?;
    let pid = child.id();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let p2 = peak.clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d2 = done.clone();
    let poll = std::thread::spawn(move || {
        while !d2.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                if let Some(kb) = s
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    p2.fetch_max(kb, std::sync::atomic::Ordering::Relaxed);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let out = child.wait_with_output()?;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = poll.join();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("{:?} failed:\n{log}", cmd);
    }
    Ok((
        t.elapsed(),
        peak.load(std::sync::atomic::Ordering::Relaxed),
        log,
    ))
}

fn du(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += std::os::unix::fs::MetadataExt::blocks(&m) * 512;
            }
        }
    }
    total
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Finds `<dir>/**/<rel>`, at most 4 levels deep.
fn find_dir_with(dir: &Path, rel: &str, depth: u32) -> Option<PathBuf> {
    if dir.join(rel).exists() {
        return Some(dir.to_path_buf());
    }
    if depth == 0 {
        return None;
    }
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        if e.file_type().ok()?.is_dir() {
            if let Some(p) = find_dir_with(&e.path(), rel, depth - 1) {
                return Some(p);
            }
        }
    }
    None
}

pub fn task(args: &crate::BenchArgs) -> Result<()> {
    let name = args.distro.clone().context("--distro NAME")?;
    let root = match &args.root {
        Some(r) => r.clone(),
        None => crate::root().join("target/distro").join(&name).join("root"),
    };
    let release = std::fs::read_dir(root.join("lib/modules"))
        .with_context(|| {
            format!(
                "{}: no extracted kernel (run cargo xtask e2e --distro {name} first)",
                root.display()
            )
        })?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .context("no release under lib/modules")?;
    crate::run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
            "build",
            "--release",
            "-p",
            "lp-build",
        ]),
    )?;
    let lp_build = crate::root().join("target/release/lp-build");
    let work = crate::root().join("target/lp-bench-distro");
    let _ = std::fs::remove_dir_all(&work);
    let cache = work.join("cache");
    let out = work.join("out");
    std::fs::create_dir_all(&out)?;
    let patch = crate::root().join("test-kernels/cases/cmdline/cmdline.patch");
    let run = || {
        let mut c = Command::new(&lp_build);
        c.arg(&patch)
            .arg("--root")
            .arg(&root)
            .args(["-K", &release, "-n", "bench", "--no-sign"])
            .arg("-o")
            .arg(&out)
            .current_dir(&work)
            .env("LP_BUILD_CACHE", &cache);
        c
    };
    println!("cold: {name} ({release}), fresh cache {}", cache.display());
    let (cold, cold_peak, cold_log) = timed(&mut run())?;
    let phases = cold_log
        .lines()
        .find(|l| l.starts_with("done in"))
        .unwrap_or("")
        .to_string();
    let cache_bytes = du(&cache);
    println!(
        "  {:.1} s, peak {} MiB, cache {:.2} GiB",
        secs(cold),
        cold_peak >> 10,
        cache_bytes as f64 / (1u64 << 30) as f64
    );
    println!("  {phases}");

    // The prepared tree and its build directory.
    let sources = cache.join("sources");
    let src = std::fs::read_dir(&sources)?
        .flatten()
        .map(|e| e.path().join("linux"))
        .find(|p| p.join("Makefile").is_file())
        .context("no unpacked source in the cache")?;
    let build = find_dir_with(&cache, "fs/proc/.cmdline.o.cmd", 3).context("no prepared build")?;
    let wrapper_cc = std::fs::read_to_string(build.join("fs/proc/.cmdline.o.cmd"))?
        .lines()
        .next()
        .and_then(|l| l.split_once(" := ").map(|(_, v)| v.to_string()))
        .and_then(|v| {
            v.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
                .into()
        })
        .context("no compile command")?;
    let headers = std::fs::read_dir(cache.join("headers"))?
        .flatten()
        .map(|e| e.path())
        .next()
        .context("no headers view")?;
    let floor_mod = work.join("floor-module");
    std::fs::create_dir_all(&floor_mod)?;
    std::fs::write(
        floor_mod.join("floor.c"),
        "#include <linux/module.h>\nstatic int __init f_init(void) { return 0; }\n\
         module_init(f_init);\nMODULE_LICENSE(\"GPL\");\n",
    )?;
    std::fs::write(floor_mod.join("Kbuild"), "obj-m := floor.o\n")?;
    let make_object = |rel: &str| -> Result<Duration> {
        let source = src.join(rel.replace(".o", ".c"));
        let f = std::fs::File::options().write(true).open(&source)?;
        let mtime = std::fs::metadata(&source)?.modified()?;
        f.set_modified(std::time::SystemTime::now())?;
        let t = Instant::now();
        let st = Command::new("make")
            .arg("-C")
            .arg(&src)
            .arg(format!("O={}", build.display()))
            .arg(format!("CC={wrapper_cc}"))
            .arg("KCFLAGS=-ffunction-sections -fdata-sections")
            .arg("-j2")
            .arg(rel)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()?;
        let d = t.elapsed();
        f.set_modified(mtime)?;
        if !st.success() {
            bail!("make {rel} failed");
        }
        Ok(d)
    };
    let make_module = || -> Result<Duration> {
        let _ = Command::new("make")
            .arg("-C")
            .arg(&headers)
            .arg(format!("M={}", floor_mod.display()))
            .arg("clean")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let t = Instant::now();
        let st = Command::new("make")
            .arg("-C")
            .arg(&headers)
            .arg(format!("M={}", floor_mod.display()))
            .arg("modules")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()?;
        if !st.success() {
            bail!(
                "the floor module does not build against {}",
                headers.display()
            );
        }
        Ok(t.elapsed())
    };
    let (mut warm, mut obj, mut module) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..5 {
        let (d, _, _) = timed(&mut run())?;
        warm.push(secs(d));
        obj.push(secs(make_object("fs/proc/cmdline.o")?));
        module.push(secs(make_module()?));
        println!("  warm round {round}: lp-build {:.1} s", secs(d));
    }
    let (w, o, m) = (median(warm), median(obj), median(module));
    println!(
        "warm: lp-build {w:.1} s; floor: make fs/proc/cmdline.o {o:.1} s + trivial module {m:.1} s = {:.1} s; ratio {:.2}x",
        o + m,
        w / (o + m)
    );

    // The whole build: a sample of the configuration's objects, extrapolated.
    let sample = [
        "kernel/fork.o",
        "kernel/exit.o",
        "kernel/signal.o",
        "kernel/sys.o",
        "mm/mmap.o",
        "mm/memory.o",
        "fs/namei.o",
        "fs/open.o",
        "fs/read_write.o",
        "fs/proc/base.o",
        "net/core/dev.o",
        "net/ipv4/tcp.o",
        "drivers/base/core.o",
        "lib/string.o",
        "fs/ext4/inode.o",
        "drivers/net/virtio_net.o",
    ];
    // kbuild's own start-up in each make (what an up-to-date object costs) is not compile time.
    let noop = {
        let t = Instant::now();
        Command::new("make")
            .arg("-C")
            .arg(&src)
            .arg(format!("O={}", build.display()))
            .arg(format!("CC={wrapper_cc}"))
            .arg("KCFLAGS=-ffunction-sections -fdata-sections")
            .arg("fs/proc/cmdline.o")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()?;
        t.elapsed().as_secs_f64()
    };
    let mut total = 0.0;
    for s in sample {
        // make compiles the object the first time: each object once.
        let t = Instant::now();
        let st = Command::new("make")
            .arg("-C")
            .arg(&src)
            .arg(format!("O={}", build.display()))
            .arg(format!("CC={wrapper_cc}"))
            .arg("KCFLAGS=-ffunction-sections -fdata-sections")
            .arg(s)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()?;
        if !st.success() {
            bail!("make {s} failed in the prepared tree");
        }
        total += (t.elapsed().as_secs_f64() - noop).max(0.0);
    }
    let per = total / sample.len() as f64;
    let vmlinux = std::fs::read_dir(root.join("usr/lib/debug/boot"))?
        .flatten()
        .map(|e| e.path())
        .next()
        .context("no debug vmlinux")?;
    let files = count_stt_files(&vmlinux)?;
    let modules =
        std::fs::read_to_string(root.join(format!("lib/modules/{release}/modules.order")))?
            .lines()
            .count();
    let objects = files + modules;
    let whole = objects as f64 * per / 2.0;
    println!(
        "whole build: {} sample objects, {per:.1} s each (kbuild's start-up of {noop:.1} s per make \
         taken out); at least {objects} objects ({files} vmlinux source files + {modules} modules) \
         on 2 cores: about {:.1} h; cold lp-build is {:.0}x less",
        sample.len(),
        whole / 3600.0,
        whole / secs(cold)
    );
    Ok(())
}

/// The number of `STT_FILE` symbols of an ELF file (its source files).
fn count_stt_files(path: &Path) -> Result<usize> {
    let out = Command::new("readelf")
        .args(["-sW"])
        .arg(path)
        .output()
        .context("running readelf")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split_whitespace().nth(3) == Some("FILE"))
        .map(|l| l.split_whitespace().last().unwrap_or("").to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .len())
}
