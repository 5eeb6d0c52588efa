//! Writes the seed corpora of the fuzz targets from the real-object corpus (nothing large is
//! kept in the repository): `cargo run --release --example make_seeds -- CORPUS_DIR OUT_DIR`,
//! which `seed.sh` runs. OUT_DIR gets one directory per target:
//! - `elf_roundtrip/`: the smallest corpus objects, as they are;
//! - `diff_pair/`: the smallest pairs, as `u32 len(ORIG) | ORIG | PATCHED` (see the target);
//! - `patchfile/`: the repository's test patches and a few hand-written diffs;
//! - `ko_validate/`: the differ's patch objects for the smallest `patch` pairs (they carry the
//!   `.lp.klp_relocs` metadata) and what the post-link pass makes of them.

use std::fs;
use std::path::{Path, PathBuf};

const ELF_SEEDS: usize = 10;
const PAIR_SEEDS: usize = 8;
const KO_SEEDS: usize = 8;

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [corpus, out] = args.as_slice() else {
        eprintln!("usage: make_seeds CORPUS_DIR OUT_DIR");
        std::process::exit(2);
    };
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = out.join(target);
        fs::create_dir_all(&dir).expect("create seed dir");
        fs::write(dir.join(name), bytes).expect("write seed");
    };

    // Objects, smallest first.
    let mut objects: Vec<(u64, PathBuf)> = fs::read_dir(corpus)
        .expect("read corpus dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "o"))
        .map(|p| (fs::metadata(&p).map(|m| m.len()).unwrap_or(u64::MAX), p))
        .collect();
    objects.sort();
    for (_, p) in objects.iter().take(ELF_SEEDS) {
        write(
            "elf_roundtrip",
            &file_name(p),
            &fs::read(p).expect("read object"),
        );
    }

    // Pairs from cases.tsv, smallest first.
    let tsv = fs::read_to_string(corpus.join("cases.tsv")).expect("read cases.tsv");
    let mut pairs: Vec<(u64, String, String, PathBuf, PathBuf)> = tsv
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let orig = corpus.join(format!("{}.ORIG.o", f.first()?));
            let patched = corpus.join(f.get(1)?);
            let size = fs::metadata(&orig).ok()?.len() + fs::metadata(&patched).ok()?.len();
            Some((size, f[0].to_string(), f.get(2)?.to_string(), orig, patched))
        })
        .collect();
    pairs.sort();
    let opts = lp_diff::DiffOptions {
        object_name: "vmlinux".into(),
        source_name: "seed.o".into(),
        alias_prefix: "__lp_fz_".into(),
        ..Default::default()
    };
    let mut kos = 0;
    for (k, (_, name, outcome, orig, patched)) in pairs.iter().enumerate() {
        let orig = fs::read(orig).expect("read ORIG");
        let patched = fs::read(patched).expect("read PATCHED");
        if k < PAIR_SEEDS {
            let mut n = u32::try_from(orig.len()).expect("object under 1 GiB");
            if k == 0 {
                n |= 0x8000_0000; // explain
            }
            let mut seed = n.to_le_bytes().to_vec();
            seed.extend_from_slice(&orig);
            seed.extend_from_slice(&patched);
            write("diff_pair", &format!("{name}.pair"), &seed);
        }
        if kos < KO_SEEDS && outcome == "patch" {
            let Ok(r) = lp_diff::diff(&orig, &patched, &opts) else {
                continue;
            };
            let Some(obj) = r.output else { continue };
            write("ko_validate", &format!("{name}.lp.o"), &obj);
            if let Ok(ko) = lp_emit::convert_klp_relocs(&obj) {
                if ko != obj {
                    write("ko_validate", &format!("{name}.converted.o"), &ko);
                }
            }
            kos += 1;
        }
    }

    // Patches.
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-kernels/cases");
    if let Ok(cases) = fs::read_dir(&tests) {
        for case in cases.filter_map(|e| e.ok()) {
            for p in fs::read_dir(case.path())
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok())
            {
                if p.path().extension().is_some_and(|e| e == "patch") {
                    let name = format!("{}-{}", file_name(&case.path()), file_name(&p.path()));
                    write("patchfile", &name, &fs::read(p.path()).expect("read patch"));
                }
            }
        }
    }
    for (name, text) in PATCHES {
        write("patchfile", name, text.as_bytes());
    }
    println!("seeds written to {}", out.display());
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

const PATCHES: &[(&str, &str)] = &[
    (
        "git-format-patch",
        "From 1234 Mon Sep 17 00:00:00 2001\nSubject: [PATCH] x\n\n---\n fs/a.c | 2 +-\n\
diff --git a/fs/a.c b/fs/a.c\nindex 1111111..2222222 100644\n--- a/fs/a.c\n+++ b/fs/a.c\n\
@@ -1,3 +1,3 @@\n a\n-b\n+c\n d\n-- \n2.39.2\n",
    ),
    (
        "diff-u",
        "--- a/kernel/x.c\t2024-01-01 00:00:00\n+++ b/kernel/x.c\t2024-01-02 00:00:00\n\
@@ -10 +10,2 @@ int f(void)\n-x\n+y\n+z\n\\ No newline at end of file\n",
    ),
    (
        "new-and-deleted",
        "diff --git a/new.h b/new.h\nnew file mode 100644\n--- /dev/null\n+++ b/new.h\n\
@@ -0,0 +1 @@\n+int x;\ndiff --git a/old.c b/old.c\ndeleted file mode 100644\n\
--- a/old.c\n+++ /dev/null\n@@ -1 +0,0 @@\n-int y;\n\
diff --git a/empty.c b/empty.c\nnew file mode 100644\n",
    ),
    (
        "rename-binary-mode",
        "diff --git a/a.c b/b.c\nrename from a.c\nrename to b.c\n\
diff --git a/m.c b/m.c\nold mode 100644\nnew mode 100755\n\
diff --git \"a/q\\\"x.c\" \"b/q\\\"x.c\"\nBinary files a/q b/q differ\n",
    ),
    (
        "crlf",
        "--- a/x/Makefile\r\n+++ b/x/Makefile\r\n@@ -1,2 +1,2 @@\r\n obj-y += a.o\r\n-x\r\n+y\r\n",
    ),
];
