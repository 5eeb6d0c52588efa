//! Every object of the real-object corpus is read, written and read again with nothing lost;
//! goblin, an independent parser, must accept every written file and agree on what it holds.

use lp_elf::{Object, SectionData};

#[test]
fn corpus_round_trips() {
    let objects = lp_testutil::corpus_objects();
    assert!(
        objects.len() >= 80,
        "corpus has only {} objects",
        objects.len()
    );
    round_trip(objects);
}

/// The other architectures' objects, s390x's big-endian ones included: written back in their
/// own byte order.
#[test]
fn other_architectures_round_trip() {
    for arch in ["ppc64le", "s390x", "aarch64", "loongarch64"] {
        let dir = lp_testutil::arch_corpus_dir(arch);
        let mut objects: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "o"))
            .collect();
        objects.sort();
        assert!(objects.len() >= 8, "{arch}: {} objects", objects.len());
        let big = arch == "s390x";
        for path in &objects {
            let obj = Object::parse(&std::fs::read(path).unwrap()).unwrap();
            assert_eq!(obj.big_endian, big, "{}", path.display());
        }
        round_trip(objects);
    }
}

fn round_trip(objects: Vec<std::path::PathBuf>) {
    for path in objects {
        let bytes = std::fs::read(&path).unwrap();
        let first = Object::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let written = first
            .write()
            .unwrap_or_else(|e| panic!("{}: write: {e}", path.display()));
        let second =
            Object::parse(&written).unwrap_or_else(|e| panic!("{}: reread: {e}", path.display()));
        assert_eq!(
            first,
            second,
            "{}: model changed in round trip",
            path.display()
        );

        // Independent check with goblin: same sections, symbols and relocations.
        let g = goblin::elf::Elf::parse(&written)
            .unwrap_or_else(|e| panic!("{}: goblin: {e}", path.display()));
        assert_eq!(g.section_headers.len(), first.sections.len());
        for (i, (gs, s)) in g.section_headers.iter().zip(&first.sections).enumerate() {
            let name = g.shdr_strtab.get_at(gs.sh_name).unwrap_or("");
            assert_eq!(
                name.as_bytes(),
                &s.name[..],
                "{} section {i}",
                path.display()
            );
            if let SectionData::Bytes(b) = &s.data {
                let range = gs.file_range().unwrap_or_default();
                assert_eq!(
                    &written[range],
                    &b[..],
                    "{} section {i} bytes",
                    path.display()
                );
            }
        }
        assert_eq!(g.syms.len(), first.symbols.len(), "{}", path.display());
        for (gsym, sym) in g.syms.iter().zip(&first.symbols) {
            assert_eq!(g.strtab.get_at(gsym.st_name).unwrap_or(""), sym.name_str());
            assert_eq!(gsym.st_value, sym.value);
            assert_eq!(gsym.st_size, sym.size);
            assert_eq!(gsym.st_info, sym.info);
        }
        let grelocs: usize = g.shdr_relocs.iter().map(|(_, r)| r.len()).sum();
        let relocs: usize = first
            .sections
            .iter()
            .filter_map(|s| s.relocs())
            .map(<[_]>::len)
            .sum();
        assert_eq!(grelocs, relocs, "{}", path.display());
    }
}

#[test]
fn symbols_reorder_keeps_references() {
    let path = lp_testutil::corpus_dir().join("meminfo-string.ORIG.o");
    let bytes = std::fs::read(path).unwrap();
    let mut obj = Object::parse(&bytes).unwrap();
    // Move a global to the front of the locals by hand and sort: references must follow.
    let first_global = obj.num_locals();
    let g = obj.symbols.remove(first_global);
    obj.symbols.insert(1, g.clone());
    // Remap relocations for the manual move: old first_global -> 1, 1..first_global -> +1.
    let mut map: Vec<u32> = (0..obj.symbols.len() as u32).collect();
    for (old, slot) in map.iter_mut().enumerate() {
        *slot = if old == first_global {
            1
        } else if old >= 1 && old < first_global {
            old as u32 + 1
        } else {
            old as u32
        };
    }
    obj.remap_symbols(&map);
    obj.sort_symbols_locals_first();
    let reparsed = Object::parse(&obj.write().unwrap()).unwrap();
    let orig = Object::parse(&bytes).unwrap();
    assert_eq!(reparsed, orig);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert!(Object::parse(b"").is_err());
    assert!(Object::parse(b"\x7fELF").is_err());
    let bytes = std::fs::read(lp_testutil::corpus_dir().join("warn-detect.ORIG.o")).unwrap();
    for cut in [16, 64, 100, 1000, bytes.len() / 2, bytes.len() - 1] {
        let _ = Object::parse(&bytes[..cut]);
    }
}
