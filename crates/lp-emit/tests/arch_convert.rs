//! The post-link pass on real patch objects of every architecture: the differ's output for every
//! corpus pair with livepatch relocations (x86_64 and the four others) goes through
//! `convert_klp_relocs` as a linked module would, and every recorded klp relocation must come
//! out as a relocation of its type, place and addend in `.klp.rela.vmlinux.<section>`
//! (SHF_RELA_LIVEPATCH) against a `SHN_LIVEPATCH` symbol of its name, with the metadata and the
//! stand-ins gone; goblin parses the result.

use lp_elf::klp::{parse_klp_rela, SHF_RELA_LIVEPATCH, SHN_LIVEPATCH};
use lp_elf::Object;

fn cases(arch: &str) -> Vec<lp_testutil::Case> {
    if arch == "x86_64" {
        lp_testutil::cases()
    } else {
        lp_testutil::arch_cases(arch)
    }
}

/// What the validator says of a patch object because it is not linked into a module yet: the
/// module's own pieces (modpost's `struct module`, `.modinfo`) and, on x86_64, the mitigation
/// tables objtool makes for the linked module (the corpus objects come from kernels built with
/// and without them).
const NOT_YET_A_MODULE: &[&str] = &[
    ".gnu.linkonce.this_module",
    ".modinfo",
    "retpoline",
    "return thunk",
    "return_sites",
    "call_sites",
    "ORC",
];

/// Converts every patch object of `arch` with klp relocations; returns how many it checked.
fn convert_corpus(arch: &str) -> usize {
    converted(arch).len()
}

/// The converted patch objects of `arch` (case name, bytes), each checked.
fn converted(arch: &str) -> Vec<(String, Vec<u8>)> {
    let mut checked = Vec::new();
    for case in cases(arch) {
        let opts = lp_diff::DiffOptions {
            object_name: "vmlinux".into(),
            source_name: case.name.clone(),
            entry_sizes: case.entry_sizes(),
            alias_prefix: "__lp_c_".into(),
            ..Default::default()
        };
        let orig = std::fs::read(&case.orig).unwrap();
        let patched = std::fs::read(&case.patched).unwrap();
        let Ok(r) = lp_diff::diff(&orig, &patched, &opts) else {
            continue; // the corpus test judges the differ; here only its patch objects count
        };
        let (Some(bytes), false) = (&r.output, r.record.klp_relocs.is_empty()) else {
            continue;
        };
        let out = lp_emit::convert_klp_relocs(bytes)
            .unwrap_or_else(|e| panic!("{arch} {}: {e}", case.name));
        goblin::elf::Elf::parse(&out).unwrap_or_else(|e| panic!("{arch} {}: {e}", case.name));
        let obj = Object::parse(&out).unwrap();
        assert!(
            obj.section_by_name(lp_diff::meta::KLP_RELOCS_SECTION)
                .is_none(),
            "{arch} {}: metadata left",
            case.name
        );
        let mut found = 0;
        for k in &r.record.klp_relocs {
            let rela = format!(".klp.rela.vmlinux.{}", k.section);
            let i = obj
                .section_by_name(&rela)
                .unwrap_or_else(|| panic!("{arch} {}: no {rela}", case.name));
            let s = &obj.sections[i];
            assert!(
                s.flags & SHF_RELA_LIVEPATCH != 0,
                "{arch} {}: {rela}",
                case.name
            );
            assert_eq!(parse_klp_rela(&rela), Some(("vmlinux", k.section.as_str())));
            let target = obj.sections[s.info as usize].name_str().into_owned();
            assert_eq!(target, k.section, "{arch} {}: sh_info of {rela}", case.name);
            let hit = s.relocs().unwrap_or(&[]).iter().any(|rel| {
                let sym = &obj.symbols[rel.sym as usize];
                rel.offset == k.offset
                    && rel.r_type == k.r_type
                    && rel.addend == k.addend
                    && sym.st_shndx == SHN_LIVEPATCH
                    && sym.name_str() == k.symbol
            });
            assert!(hit, "{arch} {}: {k:?} not in {rela}", case.name);
            // No ordinary relocation is left at a klp place.
            let tsec = obj.section_by_name(&k.section).unwrap();
            let left: Vec<String> = obj
                .sections
                .iter()
                .filter(|rs| rs.info as usize == tsec && rs.flags & SHF_RELA_LIVEPATCH == 0)
                .flat_map(|rs| rs.relocs().unwrap_or(&[]))
                .filter(|rel| rel.offset == k.offset)
                .map(|rel| {
                    format!(
                        "{} {} {}",
                        rel.r_type,
                        obj.symbols[rel.sym as usize].name_str(),
                        rel.addend
                    )
                })
                .collect();
            assert!(
                left.is_empty(),
                "{arch} {}: a stand-in is left at {}+{:#x}: {left:?} ({k:?})",
                case.name,
                k.section,
                k.offset
            );
            found += 1;
        }
        assert_eq!(found, r.record.klp_relocs.len());
        // The architecture's loader rules: every relocation, livepatch or ordinary, of a type
        // its apply_relocate_add applies, inside its section, and (ppc64le) every call out of
        // the module followed by the nop the loader needs. Only a module's own pieces, which a
        // patch object does not have yet (`struct module`, `.modinfo`), may be missing.
        let problems: Vec<String> = lp_emit::validate(&out, &lp_emit::ValidateContext::default())
            .iter()
            .filter(|p| !NOT_YET_A_MODULE.iter().any(|n| p.to_string().contains(n)))
            .map(|p| p.to_string())
            .collect();
        assert!(
            problems.is_empty(),
            "{arch} {}: the loader would refuse:\n{}",
            case.name,
            problems.join("\n")
        );
        checked.push((case.name.clone(), out));
    }
    checked
}

#[test]
fn every_architecture_converts() {
    // How many patch objects with livepatch relocations each corpus gives today: a change shows.
    for (arch, count) in [
        ("x86_64", 30),
        ("ppc64le", 15),
        ("s390x", 12),
        ("aarch64", 4),
        ("loongarch64", 2),
    ] {
        let n = convert_corpus(arch);
        assert_eq!(
            n, count,
            "{arch}: patch objects with klp relocations converted"
        );
    }
}

/// The loader rules find what each architecture's loader refuses in real patch objects: a
/// livepatch relocation of a type the loader does not apply (each architecture's own example),
/// and on ppc64le a call out of the module whose following nop is gone.
#[test]
fn loader_rules_catch_broken_patch_objects() {
    // (architecture, a type its loader refuses)
    for (arch, refused) in [
        ("x86_64", 9),       // R_X86_64_GOTPCREL
        ("ppc64le", 0),      // R_PPC64_NONE: not in module_64.c's switch
        ("s390x", 12),       // R_390_RELATIVE
        ("aarch64", 311),    // R_AARCH64_ADR_GOT_PAGE
        ("loongarch64", 47), // R_LARCH_ADD8
    ] {
        let (case, bytes) = converted(arch).into_iter().next().expect("a patch object");
        let mut obj = Object::parse(&bytes).unwrap();
        let klp = obj
            .sections
            .iter()
            .position(|s| s.flags & SHF_RELA_LIVEPATCH != 0)
            .expect("a klp relocation section");
        if let lp_elf::SectionData::Relocs { relocs, .. } = &mut obj.sections[klp].data {
            relocs[0].r_type = refused;
        }
        let problems = lp_emit::validate(&obj.write().unwrap(), &Default::default());
        let needle = format!("is not one the {arch} module loader applies");
        assert!(
            problems.iter().any(|p| p.message.contains(&needle)),
            "{arch} {case}: type {refused} not caught: {problems:?}"
        );
    }

    // ppc64le: a `bl` through a klp relocation needs the nop after it.
    let nop = 0x6000_0000u32.to_le_bytes();
    let mut caught = 0;
    for (case, bytes) in converted("ppc64le") {
        let mut obj = Object::parse(&bytes).unwrap();
        let site = obj.sections.iter().find_map(|s| {
            (s.flags & SHF_RELA_LIVEPATCH != 0)
                .then(|| s.relocs())
                .flatten()?
                .iter()
                .find(|r| {
                    let code = obj.sections[s.info as usize].bytes();
                    let at = r.offset as usize;
                    r.r_type == 10
                        && code
                            .get(at..at + 4)
                            .is_some_and(|w| w[3] & 0xfc == 0x48 && w[0] & 3 == 1)
                        && code.get(at + 4..at + 8) == Some(&nop[..])
                })
                .map(|r| (s.info as usize, r.offset as usize))
        });
        let Some((text, at)) = site else { continue };
        assert!(lp_emit::validate(&bytes, &Default::default())
            .iter()
            .all(|p| !p.message.contains("Expected nop")));
        if let lp_elf::SectionData::Bytes(b) = &mut obj.sections[text].data {
            b[at + 4..at + 8].copy_from_slice(&0x7c08_02a6u32.to_le_bytes()); // mflr r0
        }
        let problems = lp_emit::validate(&obj.write().unwrap(), &Default::default());
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("Expected nop after call")),
            "ppc64le {case}: {problems:?}"
        );
        caught += 1;
    }
    assert!(
        caught > 0,
        "no ppc64le patch object calls out through a klp relocation"
    );
}
