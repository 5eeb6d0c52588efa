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

/// Converts every patch object of `arch` with klp relocations; returns how many it checked.
fn convert_corpus(arch: &str) -> usize {
    let mut checked = 0;
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
        checked += 1;
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
