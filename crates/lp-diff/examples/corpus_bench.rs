//! Times the differ over the whole real-object corpus: total wall time, slowest pair, peak
//! memory. Run with `cargo xtask bench` (release build). Reads only the corpus.

use std::time::{Duration, Instant};

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn main() {
    let cases = lp_testutil::cases();
    let inputs: Vec<_> = cases
        .iter()
        .map(|c| {
            let opts = lp_diff::DiffOptions {
                object_name: "vmlinux".into(),
                source_name: c.name.clone(),
                entry_sizes: c.fixed_entry_sizes(),
                alias_prefix: "__lp_b_".into(),
                ..Default::default()
            };
            (
                c.name.clone(),
                std::fs::read(&c.orig).expect("read orig"),
                std::fs::read(&c.patched).expect("read patched"),
                opts,
            )
        })
        .collect();
    let rounds = 5;
    let mut best_total = Duration::MAX;
    let mut slowest = (String::new(), Duration::ZERO);
    for _ in 0..rounds {
        let start = Instant::now();
        let mut round_slowest = (String::new(), Duration::ZERO);
        for (name, o, p, opts) in &inputs {
            let t = Instant::now();
            let r = lp_diff::diff(o, p, opts).expect("diff");
            std::hint::black_box(&r);
            let d = t.elapsed();
            if d > round_slowest.1 {
                round_slowest = (name.clone(), d);
            }
        }
        let total = start.elapsed();
        if total < best_total {
            best_total = total;
            slowest = round_slowest;
        }
    }
    println!("pairs: {}", inputs.len());
    println!(
        "total (best of {rounds}, sequential): {:.1} ms",
        best_total.as_secs_f64() * 1e3
    );
    println!(
        "slowest pair: {} {:.1} ms",
        slowest.0,
        slowest.1.as_secs_f64() * 1e3
    );
    match peak_rss_kib() {
        Some(k) => println!("peak memory (VmHWM): {:.1} MiB", k as f64 / 1024.0),
        None => println!("peak memory: unknown"),
    }
}
