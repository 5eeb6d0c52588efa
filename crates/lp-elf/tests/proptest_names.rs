//! Livepatch names at the kernel's limits: what `klp_sym_name`/`klp_rela_name` write must read
//! back identically through `parse_klp_sym`/`parse_klp_rela` and through an independent model of
//! the kernel's `vsscanf` (below), or be refused with a clear error; and the two parsers must
//! agree with that model on any string (up to the one documented difference of `%lu`).

use lp_elf::klp::{
    klp_rela_name, klp_sym_name, parse_klp_rela, parse_klp_sym, NameError, KLP_OBJNAME_MAX,
    KLP_SYMNAME_MAX,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// A model of the kernel's vsscanf (lib/vsprintf.c), for the conversions the livepatch core uses:
// literal characters, `%N[^set]` and `%lu`. Written from the kernel source, not from the
// parsers under test.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Val {
    Str(Vec<u8>),
    Num(u64),
}

/// The kernel's `isspace` (lib/ctype.c: 9-13, 32 and 160 carry `_S`).
fn k_isspace(c: u8) -> bool {
    matches!(c, 9..=13 | 32 | 160)
}

/// `sscanf(input, fmt, ...)` as the kernel runs it: returns the converted values, in order (their
/// count is sscanf's return value).
fn kernel_sscanf(input: &[u8], fmt: &[u8]) -> Vec<Val> {
    // A C string ends at its first NUL; reading past the end reads NUL.
    let input = input.split(|&b| b == 0).next().unwrap_or_default();
    let at = |i: usize| input.get(i).copied().unwrap_or(0);
    let fat = |i: usize| fmt.get(i).copied().unwrap_or(0);
    let (mut s, mut f) = (0usize, 0usize);
    let mut out = Vec::new();
    while fat(f) != 0 {
        if k_isspace(fat(f)) {
            while k_isspace(fat(f)) {
                f += 1;
            }
            while k_isspace(at(s)) {
                s += 1;
            }
        }
        if fat(f) != b'%' && fat(f) != 0 {
            let c = fat(f);
            f += 1;
            let d = at(s);
            s += 1;
            if c != d {
                break;
            }
            continue;
        }
        if fat(f) == 0 {
            break;
        }
        f += 1;
        let mut width: Option<usize> = None;
        while fat(f).is_ascii_digit() {
            width = Some(width.unwrap_or(0) * 10 + usize::from(fat(f) - b'0'));
            f += 1;
        }
        if width == Some(0) {
            break;
        }
        if fat(f) == b'l' {
            f += 1;
        }
        if fat(f) == 0 || at(s) == 0 {
            break;
        }
        let conv = fat(f);
        f += 1;
        match conv {
            b'[' => {
                let Some(mut width) = width else { return out };
                let negate = fat(f) == b'^';
                if negate {
                    f += 1;
                }
                let mut set = [false; 256];
                let mut len = 0;
                while fat(f) != 0 && fat(f) != b']' {
                    set[usize::from(fat(f))] = true;
                    f += 1;
                    len += 1;
                }
                if fat(f) == 0 || len == 0 {
                    return out;
                }
                f += 1;
                if negate {
                    for b in set.iter_mut() {
                        *b = !*b;
                    }
                    set[0] = false;
                }
                if !set[usize::from(at(s))] {
                    return out;
                }
                let mut v = Vec::new();
                // `while (test_bit((u8)*str, set) && field_width--)`
                while set[usize::from(at(s))] && width > 0 {
                    width -= 1;
                    v.push(at(s));
                    s += 1;
                }
                out.push(Val::Str(v));
            }
            b'u' => {
                while k_isspace(at(s)) {
                    s += 1;
                }
                if !at(s).is_ascii_digit() {
                    break;
                }
                // simple_strntoull: digits below the base; overflow wraps silently.
                let mut v = 0u64;
                while at(s).is_ascii_digit() {
                    v = v.wrapping_mul(10).wrapping_add(u64::from(at(s) - b'0'));
                    s += 1;
                }
                out.push(Val::Num(v));
            }
            _ => return out,
        }
    }
    out
}

/// `klp_resolve_symbols`: all three conversions or the name is refused.
fn kernel_sym(name: &str) -> Option<(Vec<u8>, Vec<u8>, u64)> {
    match kernel_sscanf(name.as_bytes(), b".klp.sym.%55[^.].%511[^,],%lu").as_slice() {
        [Val::Str(o), Val::Str(s), Val::Num(p)] => Some((o.clone(), s.clone(), *p)),
        _ => None,
    }
}

/// `klp_write_section_relocs`: one conversion or the section is refused.
fn kernel_rela(name: &str) -> Option<Vec<u8>> {
    match kernel_sscanf(name.as_bytes(), b".klp.rela.%55[^.]").as_slice() {
        [Val::Str(o)] => Some(o.clone()),
        _ => None,
    }
}

/// Whether the text after the symbol's ',' is the canonical position the mirror demands (see
/// the DIFFERENCE note on `parse_klp_sym`): decimal digits alone up to the end of the C string,
/// at most `u64::MAX`.
fn canonical_position(name: &str) -> bool {
    let c = name.split('\0').next().unwrap_or_default();
    let Some(rest) = c.strip_prefix(".klp.sym.") else {
        return false;
    };
    let Some((_, after_obj)) = rest.split_once('.') else {
        return false;
    };
    let Some((_, pos)) = after_obj.split_once(',') else {
        return false;
    };
    !pos.is_empty() && pos.bytes().all(|b| b.is_ascii_digit()) && pos.parse::<u64>().is_ok()
}

// ---------------------------------------------------------------------------------------------
// Generators: names made of the characters that matter ('.', ',', NUL, white space, digits,
// non-ASCII of 2 to 4 bytes), at lengths around the kernel's limits.

fn name_char() -> impl Strategy<Value = char> {
    prop_oneof![
        10 => prop::sample::select(&['a', 'z', '_', '-', 'Q', '0', '9'][..]),
        2 => Just('.'),
        2 => Just(','),
        1 => Just('\0'),
        1 => prop::sample::select(&[' ', '\t', '\n', '+'][..]),
        1 => prop::sample::select(&['é', '\u{a0}', '中', '🦀', '\u{ff}'][..]),
        1 => any::<char>(),
    ]
}

fn plain_char() -> impl Strategy<Value = char> {
    prop_oneof![
        20 => prop::sample::select(&['a', 'z', '_', '-', 'Q', '0', '9'][..]),
        1 => prop::sample::select(&['é', '中', '🦀'][..]),
    ]
}

/// A name of `len` characters, mostly without separators (so that long names are usually
/// valid, to reach the length limit), sometimes with any character.
fn name_of_len(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(plain_char(), len.clone()),
        1 => prop::collection::vec(name_char(), len),
    ]
    .prop_map(|v| v.into_iter().collect())
}

fn objname() -> impl Strategy<Value = String> {
    prop_oneof![
        name_of_len(0..=8),
        name_of_len(50..=58),
        Just("vmlinux".to_string()),
    ]
}

fn symname() -> impl Strategy<Value = String> {
    prop_oneof![
        name_of_len(0..=12),
        name_of_len(505..=514),
        Just("foo.isra.0".to_string()),
    ]
}

fn sympos() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), Just(1), Just(u64::MAX), any::<u64>()]
}

/// Text that looks like a klp name, with each part possibly broken.
fn klp_sym_like() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        8 => Just(".klp.sym.".to_string()),
        1 => Just(".klp.sym".to_string()),
        1 => Just(".klp.rela.".to_string()),
        1 => Just(String::new()),
    ];
    let sep = |c: char| {
        prop_oneof![
            8 => Just(c.to_string()),
            1 => Just(String::new()),
            1 => name_of_len(1..=2),
        ]
    };
    let pos = prop_oneof![
        4 => any::<u64>().prop_map(|p| p.to_string()),
        1 => Just("18446744073709551616".to_string()),
        1 => Just("99999999999999999999999".to_string()),
        1 => prop::sample::select(
            &[" 12", "\t3", "+1", "-1", "12abc", "0x10", "", "1,2", "7\u{0}9", "\u{a0}5"][..]
        )
        .prop_map(str::to_string),
        1 => name_of_len(0..=4),
    ];
    (prefix, objname(), sep('.'), symname(), sep(','), pos)
        .prop_map(|(a, b, c, d, e, f)| format!("{a}{b}{c}{d}{e}{f}"))
}

fn klp_rela_like() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        8 => Just(".klp.rela.".to_string()),
        1 => Just(".klp.rela".to_string()),
        1 => Just(".klp.sym.".to_string()),
    ];
    (prefix, objname(), name_of_len(0..=12)).prop_map(|(a, b, c)| format!("{a}{b}{c}"))
}

fn valid_objname(o: &str) -> bool {
    !o.is_empty() && o.len() <= KLP_OBJNAME_MAX && !o.contains(['.', '\0'])
}

fn valid_symname(s: &str) -> bool {
    !s.is_empty() && s.len() <= KLP_SYMNAME_MAX && !s.contains([',', '\0'])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// What `klp_sym_name` writes, the kernel and `parse_klp_sym` read back identically;
    /// what it refuses, it refuses with the part at fault.
    #[test]
    fn klp_sym_names_round_trip_or_are_refused(o in objname(), s in symname(), p in sympos()) {
        match klp_sym_name(&o, &s, p) {
            Ok(name) => {
                prop_assert!(valid_objname(&o) && valid_symname(&s), "accepted {o:?} {s:?}");
                prop_assert_eq!(parse_klp_sym(&name), Some((o.as_str(), s.as_str(), p)));
                prop_assert_eq!(
                    kernel_sym(&name),
                    Some((o.as_bytes().to_vec(), s.as_bytes().to_vec(), p))
                );
            }
            Err(e) => {
                let text = e.to_string();
                match &e {
                    NameError::BadObject(x) => {
                        prop_assert!(!valid_objname(&o));
                        prop_assert_eq!(x, &o);
                    }
                    NameError::BadSymbol(x) => {
                        prop_assert!(valid_objname(&o) && !valid_symname(&s));
                        prop_assert_eq!(x, &s);
                    }
                    NameError::BadSection(_) => prop_assert!(false, "section error for a symbol"),
                }
                prop_assert!(text.contains("is not usable in a klp name"), "{}", text);
            }
        }
    }

    /// Same for `.klp.rela.<objname>.<section>`.
    #[test]
    fn klp_rela_names_round_trip_or_are_refused(o in objname(), sec in name_of_len(0..=20)) {
        match klp_rela_name(&o, &sec) {
            Ok(name) => {
                prop_assert!(valid_objname(&o) && !sec.contains('\0'));
                prop_assert_eq!(parse_klp_rela(&name), Some((o.as_str(), sec.as_str())));
                prop_assert_eq!(kernel_rela(&name), Some(o.as_bytes().to_vec()));
            }
            Err(NameError::BadObject(x)) => {
                prop_assert!(!valid_objname(&o));
                prop_assert_eq!(x, o);
            }
            Err(NameError::BadSection(x)) => {
                prop_assert!(valid_objname(&o) && sec.contains('\0'));
                prop_assert_eq!(x, sec);
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    /// On any klp-like text, `parse_klp_sym` accepts only what the kernel accepts, with the same
    /// values, and accepts everything the kernel does whose position is written canonically.
    #[test]
    fn parse_klp_sym_mirrors_the_kernel(name in klp_sym_like()) {
        let ours = parse_klp_sym(&name)
            .map(|(o, s, p)| (o.as_bytes().to_vec(), s.as_bytes().to_vec(), p));
        let kernel = kernel_sym(&name);
        if ours.is_some() {
            prop_assert_eq!(&ours, &kernel, "accepted what the kernel reads differently");
        }
        if kernel.is_some() && canonical_position(&name) {
            prop_assert_eq!(&ours, &kernel, "refused a canonical name the kernel accepts");
        }
    }

    /// `parse_klp_rela` accepts only what the kernel accepts, with the same object name, and
    /// accepts everything the kernel does where a '.' ends the object name within 55 bytes (the
    /// kernel does not need that '.': see the DIFFERENCE note on `parse_klp_rela`).
    #[test]
    fn parse_klp_rela_mirrors_the_kernel(name in klp_rela_like()) {
        let ours = parse_klp_rela(&name);
        let kernel = kernel_rela(&name);
        let ours_obj = ours.map(|(o, _)| o.as_bytes().to_vec());
        if ours.is_some() {
            prop_assert_eq!(&ours_obj, &kernel, "accepted what the kernel reads differently");
        }
        if let Some(o) = &kernel {
            let c = name.split('\0').next().unwrap_or_default().as_bytes();
            let dot_follows = c.get(".klp.rela.".len() + o.len()) == Some(&b'.');
            prop_assert_eq!(dot_follows, ours.is_some(), "{:?}", name);
        }
        if let Some((o, sec)) = ours {
            let c = name.split('\0').next().unwrap_or_default();
            prop_assert_eq!(format!(".klp.rela.{o}.{sec}"), c);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The limits themselves, spelled out.

#[test]
fn limits_exactly() {
    let o55 = "m".repeat(55);
    let o56 = "m".repeat(56);
    let s511 = "s".repeat(511);
    let s512 = "s".repeat(512);
    let n = klp_sym_name(&o55, &s511, 3).unwrap();
    assert_eq!(parse_klp_sym(&n), Some((o55.as_str(), s511.as_str(), 3)));
    assert!(kernel_sym(&n).is_some());
    // The kernel stops `%55[^.]` after 55 bytes and then wants '.': a 56-byte name fails.
    let long_obj = format!(".klp.sym.{o56}.f,0");
    assert_eq!(kernel_sym(&long_obj), None);
    assert_eq!(parse_klp_sym(&long_obj), None);
    let long_sym = format!(".klp.sym.vmlinux.{s512},0");
    assert_eq!(kernel_sym(&long_sym), None);
    assert_eq!(parse_klp_sym(&long_sym), None);
    assert!(matches!(
        klp_sym_name(&o56, "f", 0),
        Err(NameError::BadObject(_))
    ));
    assert!(matches!(
        klp_sym_name("vmlinux", &s512, 0),
        Err(NameError::BadSymbol(_))
    ));
    // Widths count bytes: 54 ASCII bytes and a 2-byte character are 56.
    let o54e = format!("{}é", "m".repeat(54));
    assert!(klp_sym_name(&o54e, "f", 0).is_err());
    assert_eq!(kernel_sym(&format!(".klp.sym.{o54e}.f,0")), None);
    // `.klp.rela.%55[^.]` has nothing after the conversion: the kernel cuts a 56-byte object
    // name to 55 bytes and succeeds; the mirror refuses it (documented difference).
    assert_eq!(parse_klp_rela(&format!(".klp.rela.{o56}..text")), None);
    assert_eq!(
        kernel_rela(&format!(".klp.rela.{o56}..text")),
        Some(o55.clone().into_bytes())
    );
    assert_eq!(kernel_rela(".klp.rela.vmlinux"), Some(b"vmlinux".to_vec()));
    assert_eq!(parse_klp_rela(".klp.rela.vmlinux"), None);
    assert_eq!(
        parse_klp_rela(&format!(".klp.rela.{o55}..text")),
        Some((o55.as_str(), ".text"))
    );
}

#[test]
fn empty_parts_and_nul() {
    assert!(matches!(
        klp_sym_name("", "f", 0),
        Err(NameError::BadObject(_))
    ));
    assert!(matches!(
        klp_sym_name("vmlinux", "", 0),
        Err(NameError::BadSymbol(_))
    ));
    assert!(matches!(
        klp_sym_name("vm\0linux", "f", 0),
        Err(NameError::BadObject(_))
    ));
    assert!(matches!(
        klp_sym_name("vmlinux", "f\0g", 0),
        Err(NameError::BadSymbol(_))
    ));
    assert!(matches!(
        klp_rela_name("vmlinux", ".text\0x"),
        Err(NameError::BadSection(_))
    ));
    assert_eq!(parse_klp_sym(".klp.sym..f,0"), None);
    assert_eq!(parse_klp_sym(".klp.sym.vmlinux.,0"), None);
    assert_eq!(parse_klp_rela(".klp.rela..text"), None);
    // The kernel sees a C string: what follows a NUL does not count.
    assert_eq!(parse_klp_sym(".klp.sym.vm\0linux.f,0"), None);
    assert_eq!(kernel_sym(".klp.sym.vm\0linux.f,0"), None);
    assert_eq!(
        parse_klp_sym(".klp.sym.vmlinux.f,7\0junk"),
        Some(("vmlinux", "f", 7))
    );
    assert_eq!(
        parse_klp_rela(".klp.rela.vmlinux..text\0x"),
        Some(("vmlinux", ".text"))
    );
}

/// The documented difference: `%lu` skips white space, ignores trailing text and wraps on
/// overflow; the mirror refuses all three.
#[test]
fn position_is_stricter_than_the_kernel() {
    for (name, kernel_pos) in [
        (".klp.sym.vmlinux.f, 12", 12u64),
        (".klp.sym.vmlinux.f,\t3", 3),
        (".klp.sym.vmlinux.f,12abc", 12),
        (".klp.sym.vmlinux.f,18446744073709551616", 0),
    ] {
        assert_eq!(
            kernel_sym(name).map(|(_, _, p)| p),
            Some(kernel_pos),
            "{name}"
        );
        assert_eq!(parse_klp_sym(name), None, "{name}");
    }
    // A sign is refused by both: `%lu` is unsigned.
    for name in [".klp.sym.vmlinux.f,-1", ".klp.sym.vmlinux.f,+1"] {
        assert_eq!(kernel_sym(name), None, "{name}");
        assert_eq!(parse_klp_sym(name), None, "{name}");
    }
}

#[test]
fn separators_inside_names() {
    // '.' is fine in a symbol, ',' in an object name; the first '.' ends the object name.
    let n = klp_sym_name("a,b", "x.y.z", 4).unwrap();
    assert_eq!(parse_klp_sym(&n), Some(("a,b", "x.y.z", 4)));
    assert_eq!(
        kernel_sym(&n),
        Some((b"a,b".to_vec(), b"x.y.z".to_vec(), 4))
    );
    let n = klp_rela_name("nfsd", ".text.a,b.c").unwrap();
    assert_eq!(parse_klp_rela(&n), Some(("nfsd", ".text.a,b.c")));
    let n = klp_sym_name("模块", "函数", 1).unwrap();
    assert_eq!(parse_klp_sym(&n), Some(("模块", "函数", 1)));
}
