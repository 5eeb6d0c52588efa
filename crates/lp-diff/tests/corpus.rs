//! The real-object corpora (kpatch-unit-x86_64, -ppc64le, -s390x, -aarch64, -loongarch64): every case's outcome and its sets of changed and new functions must agree with
//! the reference tool, except the deliberate differences listed below with their reasons (also
//! in crates/lp-diff/README.md). Every patch object is checked by goblin and by the kernel's
//! rules for its architecture.

use lp_diff::{diff, DiffOptions, Outcome};
use std::collections::{BTreeMap, HashSet};

/// Cases where we decide differently from the reference on purpose: (case, reason).
const DELIBERATE: &[(&str, &str)] = &[];

/// Entry sizes where the corpus's default does not fit the objects: `lp_testutil::SIZE_FIXES`
/// (with the evidence for each).
fn entry_sizes(case: &lp_testutil::Case) -> BTreeMap<String, u64> {
    case.fixed_entry_sizes()
}

fn options(case: &lp_testutil::Case) -> DiffOptions {
    DiffOptions {
        object_name: "vmlinux".into(),
        source_name: case.name.clone(),
        entry_sizes: entry_sizes(case),
        parent: None,
        exports: None,
        alias_prefix: "__lp_t_".into(),
        explain: true,
        objtool_on_module: false,
        objtool_mcount: false,
    }
}

/// The kernel's rules on a patch object (see lp_elf::klp): every relocation's symbol is
/// defined, exported by the object (`__ksymtab_`), or undefined in the PATCHED object too (defined elsewhere in the kernel: with no
/// Module.symvers for the corpus, assumed exported); every `.klp.sym` name parses.
fn check_patch_object(
    case: &str,
    bytes: &[u8],
    patched: &lp_elf::Object,
    parent: &lp_diff::Parent,
) {
    let g = goblin::elf::Elf::parse(bytes).unwrap_or_else(|e| panic!("{case}: goblin: {e}"));
    assert_eq!(g.header.e_type, goblin::elf::header::ET_REL, "{case}");
    assert_eq!(g.header.e_machine, patched.e_machine, "{case}: e_machine");
    let obj = lp_elf::Object::parse(bytes).unwrap();
    let arch = lp_diff::arch::for_machine(obj.e_machine).expect("a known architecture");
    // Every relocation is of a type the architecture's loader knows, inside its section.
    let map = obj.reloc_section_map();
    for (i, s) in obj.sections.iter().enumerate() {
        for r in obj.relocs_for(&map, i) {
            let width = arch.reloc_field_size(r.r_type).unwrap_or_else(|| {
                panic!("{case}: {}: relocation type {}", s.name_str(), r.r_type)
            });
            assert!(
                r.offset + width <= s.size(),
                "{case}: {}+{:#x}: relocation past the section",
                s.name_str(),
                r.offset
            );
        }
    }
    // The `.lp.klp_relocs` fields are relocated with the architecture's absolute 64-bit type.
    if let Some(t) = obj.section_by_name(lp_diff::meta::KLP_RELOCS_SECTION) {
        for r in obj.relocs_for(&map, t) {
            assert_eq!(
                r.r_type,
                arch.abs64(),
                "{case}: .lp.klp_relocs relocation type"
            );
        }
    }
    let orig_undef: HashSet<String> = patched
        .symbols
        .iter()
        .filter_map(|s| {
            let n = s.name_str();
            if s.is_undef() {
                Some(n.into_owned())
            } else {
                n.strip_prefix("__ksymtab_").map(str::to_string)
            }
        })
        .collect();
    for s in &obj.sections {
        for r in s.relocs().unwrap_or(&[]) {
            let sym = &obj.symbols[r.sym as usize];
            if sym.is_undef() {
                let n = sym.name_str();
                assert!(
                    orig_undef.contains(n.as_ref()),
                    "{case}: relocation in {} to `{n}`, neither defined, exported nor klp",
                    s.name_str()
                );
            }
        }
    }
    if let Some(strs) = obj.section_by_name(lp_diff::meta::KLP_STRS_SECTION) {
        for name in obj.sections[strs]
            .bytes()
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
        {
            let name = String::from_utf8_lossy(name);
            let Some((obj, sym, pos)) = lp_elf::klp::parse_klp_sym(&name) else {
                panic!("{case}: klp symbol `{name}` does not parse");
            };
            assert_eq!(obj, "vmlinux", "{case}: {name}");
            // Positions are unambiguous in the parent (for the corpus, the ORIG object).
            let count = parent.count(sym);
            assert!(count >= 1, "{case}: {name}: not in the parent");
            if pos == 0 {
                assert_eq!(count, 1, "{case}: {name}: position 0 but {count} symbols");
            } else {
                assert!(
                    pos as usize <= count,
                    "{case}: {name}: position beyond {count}"
                );
            }
        }
    }
}

/// Diffs every case of `cases`: the disagreements with the reference (but for `deliberate`)
/// and the number of cases that agree; every patch object is checked.
fn run_corpus(
    cases: &[lp_testutil::Case],
    sizes: &dyn Fn(&lp_testutil::Case) -> BTreeMap<String, u64>,
    deliberate: &[(&str, &str)],
) -> (Vec<String>, usize) {
    let mut mismatches = Vec::new();
    let mut agree = 0;
    let deliberate: BTreeMap<&str, &str> = deliberate.iter().copied().collect();
    for case in cases {
        let orig = std::fs::read(&case.orig).unwrap();
        let patched = std::fs::read(&case.patched).unwrap();
        let opts = DiffOptions {
            entry_sizes: sizes(case),
            ..options(case)
        };
        let r = diff(&orig, &patched, &opts).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let outcome = match r.outcome {
            Outcome::Patch => "patch",
            Outcome::NoChange => "no-change",
            Outcome::Refused => "error",
        };
        let ok = outcome == case.outcome
            && (case.outcome != "patch"
                || (r.changed_functions == case.changed && r.new_functions == case.new));
        if ok {
            agree += 1;
        } else if !deliberate.contains_key(case.name.as_str()) {
            mismatches.push(format!(
                "{}: expected {} changed={:?} new={:?}\n   got {} changed={:?} new={:?}\n   errors: {}",
                case.name,
                case.outcome,
                case.changed,
                case.new,
                outcome,
                r.changed_functions,
                r.new_functions,
                r.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n           ")
            ));
        }
        // A refusal always names its kind in the catalogue.
        assert!(
            r.errors.iter().all(|e| e.kind.is_some()),
            "{}: untyped refusal",
            case.name
        );
        if let Some(bytes) = &r.output {
            let patched_obj = lp_elf::Object::parse(&patched).unwrap();
            let parent =
                lp_diff::Parent::from_object(&lp_elf::Object::parse(&orig).unwrap(), false);
            check_patch_object(&case.name, bytes, &patched_obj, &parent);
        }
    }
    (mismatches, agree)
}

#[test]
fn corpus_agrees_with_reference() {
    let cases = lp_testutil::cases();
    assert_eq!(cases.len(), 43, "cases.tsv rows");
    let (mismatches, agree) = run_corpus(&cases, &entry_sizes, DELIBERATE);
    assert!(
        mismatches.is_empty(),
        "{} of {} cases disagree:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
    assert_eq!(agree + DELIBERATE.len(), cases.len());
}

/// Deliberate differences on other architectures: (architecture, case, reason).
const ARCH_DELIBERATE: &[(&str, &str, &str)] = &[(
    "s390x",
    "gcc-static-local-var-5",
    "audit_log_start.part.0 changed (1008 -> 1040 bytes of different code): lp-build patches its \
     parent audit_log_start too, as for every changed .cold/.part child, so that the callers reach \
     the new child through a patched parent; the reference lists neither",
)];

/// Another architecture's corpus: `rows` cases, all agreeing with the reference but for
/// [`ARCH_DELIBERATE`].
fn arch_corpus(arch: &str, rows: usize) {
    let cases = lp_testutil::arch_cases(arch);
    assert_eq!(cases.len(), rows, "{arch}: cases.tsv rows");
    let deliberate: Vec<(&str, &str)> = ARCH_DELIBERATE
        .iter()
        .filter(|(a, ..)| *a == arch)
        .map(|&(_, case, why)| (case, why))
        .collect();
    let (mismatches, agree) = run_corpus(&cases, &|c| c.entry_sizes(), &deliberate);
    assert!(
        mismatches.is_empty(),
        "{arch}: {} of {} cases disagree:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
    // A deliberate difference must still be one (else it goes from the list).
    assert_eq!(agree + deliberate.len(), rows, "{arch}: agreeing cases");
}

/// ppc64le (ELFv2): the TOC, `_mcount` entries, feature fixups, sibling calls.
#[test]
fn ppc64le_corpus_agrees_with_reference() {
    arch_corpus("ppc64le", 20);
}

/// aarch64: patchable-function-entry NOPs, `.altinstructions`.
#[test]
fn aarch64_corpus_agrees_with_reference() {
    arch_corpus("aarch64", 5);
}

/// loongarch64: patchable-function-entry NOPs, ORC.
#[test]
fn loongarch64_corpus_agrees_with_reference() {
    arch_corpus("loongarch64", 4);
}

/// s390x (big-endian): `__mcount_loc` entries, expolines, `*DBL` PC adjustment.
#[test]
fn s390x_corpus_agrees_with_reference() {
    arch_corpus("s390x", 15);
}

/// The same inputs give the same bytes: every case is diffed five times and each run's patch
/// object and record must equal the first run's (a distribution builds its livepatch twice and
/// compares). Each run builds its own hash maps, so an order that depends on hashing shows.
#[test]
fn corpus_output_is_reproducible() {
    let cases = lp_testutil::cases();
    let mut differ = Vec::new();
    let mut patches = 0;
    for case in &cases {
        let orig = std::fs::read(&case.orig).unwrap();
        let patched = std::fs::read(&case.patched).unwrap();
        let run = || {
            let r = diff(&orig, &patched, &options(case))
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
            let record = serde_json::to_string(&r.record).unwrap();
            (r.outcome, r.output, record, r.errors, r.warnings)
        };
        let first = run();
        if first.0 == Outcome::Patch {
            patches += 1;
        }
        for n in 1..5 {
            if run() != first {
                differ.push(format!("{} (run {n})", case.name));
                break;
            }
        }
    }
    assert!(patches >= 39, "only {patches} patch cases");
    assert!(
        differ.is_empty(),
        "{} of {} cases give different bytes over five runs: {}",
        differ.len(),
        cases.len(),
        differ.join(", ")
    );
}

/// A jump label's key is `struct jump_entry`'s third field: at 8 in the relative layout (16-byte
/// entries: s32 code, s32 target, long key; x86_64 since 5.0) and at 16 in the absolute one
/// (24-byte entries: three pointers; older kernels, e.g. `jump-label-issue-946`). Each pair is
/// diffed as a module whose `.ko` defines the key the patched function's jump labels use: the
/// key must be found and the jump label refused (`module-key`); with a parent without the key,
/// it must not be.
#[test]
fn module_key_found_in_relative_and_absolute_jump_entries() {
    let cases = lp_testutil::cases();
    // (case, entry size in the objects, the key of the changed function's jump labels)
    let pairs = [
        ("jump-label-issue-946", 24, "memcg_kmem_enabled_key"),
        ("static-call-issue-1165", 16, "devmap_managed_key"),
    ];
    for (name, size, key) in pairs {
        let case = cases.iter().find(|c| c.name == name).expect("corpus case");
        assert_eq!(entry_sizes(case).get("__jump_table"), Some(&size), "{name}");
        let orig = std::fs::read(&case.orig).unwrap();
        let patched = std::fs::read(&case.patched).unwrap();
        let own = lp_diff::Parent::from_object(&lp_elf::Object::parse(&orig).unwrap(), false);
        let mut with_key = own.clone();
        with_key.syms.push(lp_diff::parent::ParentSym {
            name: key.to_string(),
            local: false,
            file: None,
            order: u64::MAX,
        });
        with_key
            .by_name
            .insert(key.to_string(), vec![with_key.syms.len() - 1]);
        for (parent, refused) in [(with_key, true), (own, false)] {
            let opts = DiffOptions {
                object_name: "some_module".into(),
                parent: Some(parent),
                ..options(case)
            };
            let r = diff(&orig, &patched, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
            let module_keys: Vec<&str> = r
                .errors
                .iter()
                .filter(|e| e.kind == Some(lp_diff::refusal::Kind::ModuleKey))
                .map(|e| e.symbol.as_str())
                .collect();
            assert_eq!(
                module_keys.contains(&key),
                refused,
                "{name} ({size}-byte entries), parent with {key}: {refused}; refusals: {:?}",
                r.errors
            );
        }
    }
}

/// A `__jump_table` entry size that is no layout of `struct jump_entry` (here 32, which the
/// 16-byte entries of this pair would otherwise pass as two entries each) is refused as an
/// entry-size error: the key of such an entry could not be found.
#[test]
fn jump_entry_size_without_a_layout_is_an_error() {
    let cases = lp_testutil::cases();
    let case = cases
        .iter()
        .find(|c| c.name == "missing-secsym-issue-1272")
        .expect("corpus case");
    let orig = std::fs::read(&case.orig).unwrap();
    let patched = std::fs::read(&case.patched).unwrap();
    let mut opts = options(case);
    assert!(diff(&orig, &patched, &opts).is_ok());
    opts.entry_sizes.insert("__jump_table".into(), 32);
    let e = diff(&orig, &patched, &opts).expect_err("32-byte jump entries");
    assert!(e.to_string().contains("struct jump_entry"), "{e}");
}

/// The x86_64 instruction boundaries (yaxpeax-x86, with iced-x86 for what it does not decode)
/// are iced-x86's on every code section of the corpus's x86_64 objects, gcc's and clang's, and
/// so is the `__LINE__` rule's reading of `mov $imm` and of calls and jumps. (iced-x86 decoded
/// everything before; the switch only saves its table set-up, about 1 ms a process.)
#[test]
fn x86_boundaries_agree_with_iced() {
    use iced_x86::{Decoder, DecoderOptions, Mnemonic, OpKind};
    use lp_diff::arch::x86_64::{decode_all, InsnKind};
    let (mut sections, mut insns, mut movs) = (0usize, 0usize, 0usize);
    for path in lp_testutil::corpus_objects() {
        let bytes = std::fs::read(&path).unwrap();
        let obj = lp_elf::Object::parse(&bytes).unwrap();
        if obj.e_machine != object::elf::EM_X86_64.0 {
            continue;
        }
        for s in obj.sections.iter().filter(|s| s.is_exec()) {
            let code = s.bytes();
            let ours = decode_all(code);
            let mut d = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
            let mut k = 0;
            while d.can_decode() {
                let i = d.decode();
                let at = || format!("{} {} {:#x}", path.display(), s.name_str(), i.ip());
                let o = ours
                    .get(k)
                    .unwrap_or_else(|| panic!("{}: ours ended", at()));
                assert_eq!((o.ip, o.len as usize), (i.ip(), i.len()), "{}", at());
                let mov_imm = i.mnemonic() == Mnemonic::Mov
                    && i.op_count() == 2
                    && matches!(
                        i.op1_kind(),
                        OpKind::Immediate32
                            | OpKind::Immediate32to64
                            | OpKind::Immediate16
                            | OpKind::Immediate8
                    );
                assert_eq!(matches!(o.kind, InsnKind::MovImm(_)), mov_imm, "{}", at());
                let call_jmp = matches!(i.mnemonic(), Mnemonic::Call | Mnemonic::Jmp);
                assert_eq!(o.kind == InsnKind::CallOrJmp, call_jmp, "{}", at());
                movs += usize::from(mov_imm);
                k += 1;
            }
            assert_eq!(k, ours.len(), "{} {}", path.display(), s.name_str());
            sections += 1;
            insns += k;
        }
    }
    // The x86_64 corpus: about 7,300 code sections and 460,000 instructions.
    assert!(
        sections > 7000 && insns > 400_000 && movs > 10_000,
        "{sections} {insns} {movs}"
    );
}

/// `__mcount_loc` of the included functions is kept, unless objtool both makes it
/// (CONFIG_FTRACE_MCOUNT_USE_OBJTOOL, clang on x86_64) and runs on the linked module: then
/// objtool makes it for the whole module, and skips the module ("file already has __mcount_loc
/// section") when a linked object has one. Found on the clang-built 6.12 test kernel.
#[test]
fn mcount_loc_left_to_objtool_when_objtool_makes_it_for_the_module() {
    let cases = lp_testutil::cases();
    let case = cases
        .iter()
        .find(|c| c.name == "mrecord-mcount")
        .expect("corpus case");
    let orig = std::fs::read(&case.orig).unwrap();
    let patched = std::fs::read(&case.patched).unwrap();
    for (on_module, by_objtool, kept) in [
        (false, false, true),
        (true, false, true),
        (false, true, true),
        (true, true, false),
    ] {
        let opts = DiffOptions {
            objtool_on_module: on_module,
            objtool_mcount: by_objtool,
            ..options(case)
        };
        let r = diff(&orig, &patched, &opts).unwrap();
        let out = lp_elf::Object::parse(r.output.as_deref().expect("a patch object")).unwrap();
        assert_eq!(
            out.section_by_name("__mcount_loc").is_some(),
            kept,
            "objtool on module {on_module}, objtool makes __mcount_loc {by_objtool}"
        );
    }
}
