//! Test support: where the real-object corpus is and what its `cases.tsv` says.
//!
//! The corpus is not copied into the repository. It is found through `LP_CORPUS` or, by default,
//! at `../shared/corpus/kpatch-unit-x86_64` beside the repository checkout.

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The corpus directory. Panics with instructions when it is missing: tests that need it must
/// not pass silently without it.
pub fn corpus_dir() -> PathBuf {
    let dir = match std::env::var_os("LP_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => workspace_root().join("../shared/corpus/kpatch-unit-x86_64"),
    };
    assert!(
        dir.join("cases.tsv").is_file(),
        "real-object corpus not found at {}: set LP_CORPUS to the kpatch-unit-x86_64 directory",
        dir.display()
    );
    dir
}

/// The corpus directory of another architecture (`ppc64le`, `s390x`, `aarch64`,
/// `loongarch64`): `kpatch-unit-<arch>` beside the x86_64 one. Panics when it is missing.
pub fn arch_corpus_dir(arch: &str) -> PathBuf {
    let x86 = corpus_dir();
    let dir = x86
        .parent()
        .map(|d| d.join(format!("kpatch-unit-{arch}")))
        .unwrap_or_default();
    assert!(
        dir.join("cases.tsv").is_file(),
        "corpus of {arch} not found at {}",
        dir.display()
    );
    dir
}

/// One row of `cases.tsv`.
#[derive(Debug, Clone)]
pub struct Case {
    /// Case name (file prefix).
    pub name: String,
    /// Path of the ORIG object.
    pub orig: PathBuf,
    /// Path of the PATCHED object.
    pub patched: PathBuf,
    /// `patch`, `error` or `no-change`.
    pub outcome: String,
    /// `(reference name, bytes)` overrides, e.g. `("JUMP_STRUCT_SIZE", 16)`.
    pub struct_sizes: Vec<(String, u64)>,
    /// The corpus's default entry sizes (reference names), when not x86_64's.
    pub default_sizes: Option<Vec<(String, u64)>>,
    /// Changed functions reported by the reference.
    pub changed: Vec<String>,
    /// New functions reported by the reference.
    pub new: Vec<String>,
}

fn list(field: &str) -> Vec<String> {
    if field == "-" || field.is_empty() {
        Vec::new()
    } else {
        let mut v: Vec<String> = field.split(',').map(str::to_string).collect();
        v.sort();
        v
    }
}

/// The reference tool's environment variables for special-section entry sizes (kpatch-build
/// exports them to create-diff-object) and the sections they size, as the corpus README
/// names them.
pub const REFERENCE_SIZE_NAMES: &[(&str, &str)] = &[
    ("PARA_STRUCT_SIZE", ".parainstructions"),
    ("EX_STRUCT_SIZE", "__ex_table"),
    ("BUG_STRUCT_SIZE", "__bug_table"),
    ("ALT_STRUCT_SIZE", ".altinstructions"),
    ("JUMP_STRUCT_SIZE", "__jump_table"),
    ("ORC_STRUCT_SIZE", ".orc_unwind"),
    ("STATIC_CALL_STRUCT_SIZE", ".static_call_sites"),
    ("PRINTK_INDEX_STRUCT_SIZE", ".printk_index"),
];

/// The corpus README's names for special-section entry sizes, as section names.
fn sections_for_reference_name(name: &str) -> Option<&'static [&'static str]> {
    if name == "FIXUP_STRUCT_SIZE" {
        return Some(&["__ftr_fixup", "__mmu_ftr_fixup", "__fw_ftr_fixup"]);
    }
    REFERENCE_SIZE_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, sec)| std::slice::from_ref(sec))
}

/// Entry sizes where the x86_64 corpus's default does not fit the objects, which the differ
/// checks: (case, section, bytes, evidence).
pub const SIZE_FIXES: &[(&str, &str, u64, &str)] = &[(
    "static-call-pr-1315",
    ".altinstructions",
    12,
    "552 bytes: 46 entries of 12 (this kernel's alt_instr has a u32 ft_flags), not 13; cut at 13 \
     the patched function's alternatives were garbage",
)];

impl Case {
    /// [`Case::entry_sizes`] with [`SIZE_FIXES`] applied: the sizes the objects really have.
    pub fn fixed_entry_sizes(&self) -> std::collections::BTreeMap<String, u64> {
        let mut sizes = self.entry_sizes();
        for (c, sec, size, _) in SIZE_FIXES {
            if *c == self.name {
                sizes.insert(sec.to_string(), *size);
            }
        }
        sizes
    }

    /// [`Case::fixed_entry_sizes`] as the reference tool takes them: environment variables
    /// ([`REFERENCE_SIZE_NAMES`]), so both tools are given the same sizes.
    pub fn reference_sizes(&self) -> Vec<(&'static str, u64)> {
        let sizes = self.fixed_entry_sizes();
        REFERENCE_SIZE_NAMES
            .iter()
            .filter_map(|(name, sec)| Some((*name, *sizes.get(*sec)?)))
            .collect()
    }

    /// Entry sizes by section name: the corpus README's defaults, then the row's overrides.
    pub fn entry_sizes(&self) -> std::collections::BTreeMap<String, u64> {
        if let Some(defaults) = &self.default_sizes {
            let mut sizes = std::collections::BTreeMap::new();
            for (k, v) in defaults.iter().chain(&self.struct_sizes) {
                let secs = sections_for_reference_name(k)
                    .unwrap_or_else(|| panic!("{}: unknown size name {k}", self.name));
                for sec in secs {
                    sizes.insert(sec.to_string(), *v);
                }
            }
            return sizes;
        }
        let mut sizes: std::collections::BTreeMap<String, u64> = [
            (".parainstructions", 16),
            ("__ex_table", 12),
            ("__bug_table", 12),
            (".altinstructions", 13),
            ("__jump_table", 24),
            (".orc_unwind", 6),
            (".static_call_sites", 8),
            (".printk_index", 44),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in &self.struct_sizes {
            let secs = sections_for_reference_name(k)
                .unwrap_or_else(|| panic!("{}: unknown size name {k} in cases.tsv", self.name));
            for sec in secs {
                sizes.insert(sec.to_string(), *v);
            }
        }
        sizes
    }
}

/// Every case of the corpus.
pub fn cases() -> Vec<Case> {
    cases_in(&corpus_dir(), None)
}

/// Every case of another architecture's corpus ([`arch_corpus_dir`]), with the default entry
/// sizes its README gives (`NAME=BYTES` words after "Special-section entry sizes").
pub fn arch_cases(arch: &str) -> Vec<Case> {
    let dir = arch_corpus_dir(arch);
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("read the corpus README");
    let after = readme
        .split_once("Special-section entry sizes")
        .map(|(_, rest)| rest)
        .unwrap_or("");
    let defaults = after
        .split(|c: char| c.is_whitespace() || c == '`')
        .filter_map(|w| {
            let (k, v) = w.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect();
    cases_in(&dir, Some(defaults))
}

fn cases_in(dir: &Path, default_sizes: Option<Vec<(String, u64)>>) -> Vec<Case> {
    let text = std::fs::read_to_string(dir.join("cases.tsv")).expect("read cases.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert!(f.len() >= 6, "bad cases.tsv row: {l}");
            let struct_sizes = if f[3] == "-" {
                Vec::new()
            } else {
                f[3].split(',')
                    .filter_map(|kv| {
                        let (k, v) = kv.split_once('=')?;
                        Some((k.to_string(), v.parse().ok()?))
                    })
                    .collect()
            };
            Case {
                name: f[0].to_string(),
                orig: dir.join(format!("{}.ORIG.o", f[0])),
                patched: dir.join(f[1]),
                outcome: f[2].to_string(),
                struct_sizes,
                default_sizes: default_sizes.clone(),
                changed: list(f[4]),
                new: list(f[5]),
            }
        })
        .collect()
}

/// Every `.o` file of the corpus.
pub fn corpus_objects() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("read corpus dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "o"))
        .collect();
    v.sort();
    v
}
