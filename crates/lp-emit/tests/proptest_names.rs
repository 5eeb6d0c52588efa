//! Names at the kernel's limits through the emitter: `module_name` always gives a valid module
//! name, and a module whose klp relocation metadata names symbols and sections at the limits
//! (55-byte object names, 511-byte symbol names, '.', ',', non-ASCII) goes through
//! `convert_klp_relocs` and `validate` with exactly those names, or is refused cleanly.

mod common;

use common::*;
use lp_elf::klp::{klp_rela_name, klp_sym_name, module_objname, SHF_RELA_LIVEPATCH, SHN_LIVEPATCH};
use lp_elf::{Object, SymSection};
use lp_emit::names::is_module_name;
use lp_emit::{convert_klp_relocs, module_name, validate, EmitError, ValidateContext};
use proptest::prelude::*;

fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        8 => prop::sample::select(&['a', 'Z', '0', '_', '-'][..]),
        2 => prop::sample::select(&['.', ',', ' ', '/', '\0', '+'][..]),
        1 => prop::sample::select(&['é', '中', '🦀', '\u{a0}'][..]),
        1 => any::<char>(),
    ]
}

fn text(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(any_char(), len).prop_map(|v| v.into_iter().collect())
}

/// Characters a name in an ELF string table can have (no NUL).
fn elf_char() -> impl Strategy<Value = char> {
    prop_oneof![
        20 => prop::sample::select(&['a', 'Z', '0', '9', '_', '-', '$'][..]),
        2 => prop::sample::select(&['.', ',', ' '][..]),
        1 => prop::sample::select(&['é', '中', '🦀'][..]),
    ]
}

fn elf_text(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(elf_char(), len).prop_map(|v| v.into_iter().collect())
}

/// A valid klp object name, often right at 55 bytes.
fn objname() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("vmlinux".to_string()),
        elf_text(1..=10),
        elf_text(52..=55),
    ]
    .prop_map(|o| {
        let mut o = o.replace('.', "_");
        while o.len() > 55 {
            o.pop();
        }
        o
    })
}

/// A valid symbol name, often right at 511 bytes.
fn symname() -> impl Strategy<Value = String> {
    prop_oneof![elf_text(1..=12), elf_text(505..=511)].prop_map(|s| {
        let mut s = s.replace(',', ".");
        while s.len() > 511 {
            s.pop();
        }
        s
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Any patch name gives a valid module name: `livepatch-` and the name with every other
    /// character replaced by '_', cut to 55 bytes; its object name is usable in klp names.
    #[test]
    fn module_name_is_always_valid(patch in prop_oneof![text(0..=8), text(40..=70)]) {
        let m = module_name(&patch);
        prop_assert!(is_module_name(&m), "{:?} -> {:?}", patch, m);
        prop_assert!(!m.is_empty() && m.len() <= 55);
        prop_assert!(m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        prop_assert!(m.starts_with("livepatch-"));
        let mapped: String = patch
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
            .collect();
        let full = format!("livepatch-{mapped}");
        prop_assert_eq!(&m, &full.chars().take(55).collect::<String>());
        prop_assert!(klp_sym_name(&module_objname(&m), "f", 0).is_ok());
    }

    /// `is_module_name` is exactly "1..=55 bytes of [A-Za-z0-9_-]".
    #[test]
    fn is_module_name_is_the_rule(name in prop_oneof![text(0..=4), text(50..=60)]) {
        let rule = (1..=55).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        prop_assert_eq!(is_module_name(&name), rule);
    }
}

/// The sample module with its text section renamed and one or two entries named `names`.
fn module_with(names: &[String], text_name: &str) -> Vec<u8> {
    let places = [(0x1, R_PLT32), (0x8, R_PC32)];
    let entries: Vec<EntrySpec> = names
        .iter()
        .zip(places)
        .map(|(n, (off, ty))| entry(PlaceSym::TextSection, off, n, ty, -4))
        .collect();
    let mut o = sample_module(&entries);
    o.sections[TEXT].name = text_name.as_bytes().to_vec();
    bytes(&o)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Valid names at the limits come out of the post-link pass exactly as written, in a module
    /// the checker passes (an object name with '-' is reported: it never matches a module).
    #[test]
    fn limit_names_survive_conversion(
        objs in prop::collection::vec(objname(), 1..=2),
        syms in prop::collection::vec(symname(), 2),
        pos in prop::collection::vec(prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()], 2),
        suffix in elf_text(0..=30),
    ) {
        let text_name = format!(".text.{suffix}");
        let names: Vec<String> = objs
            .iter()
            .zip(&syms)
            .zip(&pos)
            .map(|((o, s), &p)| klp_sym_name(o, s, p).expect("valid by construction"))
            .collect();
        let ko = convert_klp_relocs(&module_with(&names, &text_name)).expect("convert");
        let out = Object::parse(&ko).expect("parse the converted module");
        for (o, name) in objs.iter().zip(&names) {
            let sym = out.symbols.iter().find(|s| s.name == name.as_bytes());
            prop_assert!(sym.is_some_and(|s| s.section == SymSection::Special(SHN_LIVEPATCH)));
            let rela = klp_rela_name(o, &text_name).expect("valid by construction");
            let sec = out.sections.iter().find(|s| s.name == rela.as_bytes());
            prop_assert!(
                sec.is_some_and(|s| s.flags & SHF_RELA_LIVEPATCH != 0),
                "no {rela} in the module"
            );
        }
        let problems = validate(&ko, &ValidateContext::default());
        for p in &problems {
            prop_assert!(p.message.contains("has '-'"), "{}", p);
        }
        let dash = objs.iter().any(|o| o.contains('-'));
        prop_assert_eq!(dash, !problems.is_empty());
    }

    /// Names past the limits (or with the wrong separators) are refused by the pass with a
    /// clear error naming the entry, never written into a module.
    #[test]
    fn bad_names_are_refused(
        which in 0..5usize,
        o in elf_text(1..=8),
        long in elf_text(56..=60),
        s in elf_text(512..=520),
    ) {
        let o = o.replace('.', "_");
        let long = long.replace('.', "_");
        let name = match which {
            0 => format!(".klp.sym.{long}.f,0"),
            1 => format!(".klp.sym.{o}.{},0", s.replace(',', "_")),
            2 => format!(".klp.sym.{o}.f"),
            3 => format!(".klp.sym.{o}.f, 1"),
            _ => format!(".klp.sym.{o}.f,18446744073709551616"),
        };
        let r = convert_klp_relocs(&module_with(std::slice::from_ref(&name), ".text.patched"));
        match r {
            Err(EmitError::BadName { name: n, message, .. }) => {
                prop_assert_eq!(n, name);
                prop_assert!(message.contains("as the kernel parses it"));
            }
            other => prop_assert!(false, "{:?}", other.map(|_| ())),
        }
    }
}

/// Exactly at the limits: a 55-byte object name (with a 2-byte character at the end) and a
/// 511-byte symbol name with '.' and non-ASCII, position `u64::MAX`.
#[test]
fn names_exactly_at_the_limits_convert_and_validate() {
    let obj = format!("{}é", "m".repeat(53));
    assert_eq!(obj.len(), 55);
    let sym = format!("{}.中.{}", "s".repeat(250), "t".repeat(256));
    assert_eq!(sym.len(), 511);
    let name = klp_sym_name(&obj, &sym, u64::MAX).unwrap();
    let text = ".text.a,b.é";
    let ko = convert_klp_relocs(&module_with(std::slice::from_ref(&name), text)).unwrap();
    let out = Object::parse(&ko).unwrap();
    assert!(out
        .symbols
        .iter()
        .any(|s| s.name == name.as_bytes() && s.section == SymSection::Special(SHN_LIVEPATCH)));
    let rela = klp_rela_name(&obj, text).unwrap();
    assert!(out.sections.iter().any(|s| s.name == rela.as_bytes()));
    assert_eq!(validate(&ko, &ValidateContext::default()), vec![]);
    // One byte more on either side is refused.
    assert!(klp_sym_name(&format!("{obj}m"), &sym, 0).is_err());
    assert!(klp_sym_name(&obj, &format!("{sym}s"), 0).is_err());
}
