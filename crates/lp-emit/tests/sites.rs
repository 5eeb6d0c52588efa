//! The mitigation and unwind tables checked against the code (lp_emit::sites), on objects the
//! assembler builds: a complete one passes, and each table with one site removed, or pointing at
//! the wrong instruction, gives exactly the problem naming the function and offset.

mod common;

use common::*;
use lp_elf::Object;
use lp_emit::sites::{check, CodeTables};
use lp_emit::Problem;

/// Code as objtool leaves it for a module: `f` calls `g`, branches through a retpoline thunk and
/// returns through the return thunk twice; `g` returns through it once. Each table line is a
/// parameter so that a test can drop or change one.
struct Tables {
    return_sites: Vec<&'static str>,
    retpoline_sites: Vec<&'static str>,
    call_sites: Vec<&'static str>,
    /// (label, defined) pairs of `.orc_unwind_ip`/`.orc_unwind`.
    orc: Vec<(&'static str, bool)>,
}

impl Default for Tables {
    fn default() -> Self {
        Tables {
            return_sites: vec![".Lr1", ".Lr2", ".Lr3"],
            retpoline_sites: vec![".Lt1"],
            call_sites: vec![".Lc1", ".Lc2"],
            orc: vec![
                ("f", true),
                (".Lf_end", false),
                ("g", true),
                (".Lg_end", false),
                ("i", true),
                (".Li_end", false),
            ],
        }
    }
}

fn assemble(t: &Tables) -> Object {
    let mut s = String::from(
        r#"
	.section .text.f,"ax",@progbits
	.globl f
	.type f,@function
f:
	endbr64
.Lc1:	call g
	test %eax,%eax
	je 1f
.Lt1:	call __x86_indirect_thunk_rax
.Lr1:	jmp __x86_return_thunk
1:
.Lr2:	jmp __x86_return_thunk
	.size f, .-f
.Lf_end:
	.section .text.g,"ax",@progbits
	.type g,@function
g:
	endbr64
	xor %eax,%eax
.Lr3:	jmp __x86_return_thunk
	.size g, .-g
.Lg_end:
	.section .init.text,"ax",@progbits
	.type i,@function
i:
.Lc2:	call g
	.size i, .-i
.Li_end:
"#,
    );
    let table = |s: &mut String, name: &str, labels: &[&str]| {
        if labels.is_empty() {
            return;
        }
        s.push_str(&format!("\t.section {name},\"a\"\n"));
        for l in labels {
            s.push_str(&format!("\t.long {l} - .\n"));
        }
    };
    table(&mut s, ".return_sites", &t.return_sites);
    table(&mut s, ".retpoline_sites", &t.retpoline_sites);
    table(&mut s, ".call_sites", &t.call_sites);
    let ips: Vec<&str> = t.orc.iter().map(|(l, _)| *l).collect();
    table(&mut s, ".orc_unwind_ip", &ips);
    if !t.orc.is_empty() {
        s.push_str("\t.section .orc_unwind,\"a\"\n");
        for (_, defined) in &t.orc {
            // struct orc_entry: sp_offset 8, bp_offset 0, sp_reg 5 (sp), type 2 (call).
            s.push_str(if *defined {
                "\t.short 8, 0\n\t.byte 5, 2\n"
            } else {
                "\t.short 0, 0\n\t.byte 0, 0\n"
            });
        }
    }
    assemble_source(&s)
}

/// Assembles `src` with the C compiler and parses the object.
fn assemble_source(src: &str) -> Object {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("code.S");
    let obj = dir.path().join("code.o");
    std::fs::write(&path, src).unwrap();
    run_ok(cc().arg("-c").arg(&path).arg("-o").arg(&obj));
    Object::parse(&std::fs::read(&obj).unwrap()).unwrap()
}

const ALL: CodeTables = CodeTables {
    orc: true,
    call_sites: true,
};

fn show(p: &[Problem]) -> String {
    p.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Exactly one problem, on `section`/`symbol`, whose message contains `needle`.
fn expect_one(p: &[Problem], section: &str, symbol: &str, needle: &str) {
    assert_eq!(p.len(), 1, "{}", show(p));
    assert_eq!(
        (p[0].section.as_str(), p[0].symbol.as_str()),
        (section, symbol),
        "{}",
        show(p)
    );
    assert!(p[0].message.contains(needle), "{}", show(p));
}

#[test]
fn complete_tables_pass() {
    let p = check(&assemble(&Tables::default()), ALL);
    assert!(p.is_empty(), "{}", show(&p));
}

#[test]
fn a_return_site_missing_is_named() {
    let t = Tables {
        return_sites: vec![".Lr1", ".Lr3"],
        ..Tables::default()
    };
    // f: endbr64 (4) + call (5) + test (2) + je short (2) + call (5) + jmp (5) = 0x17.
    expect_one(
        &check(&assemble(&t), ALL),
        ".text.f",
        "f+0x17",
        "does not list: the loader will not rewrite it for the CPU's return mitigation",
    );
}

#[test]
fn no_return_sites_at_all_names_every_site() {
    let t = Tables {
        return_sites: vec![],
        ..Tables::default()
    };
    let p = check(&assemble(&t), ALL);
    let named: Vec<&str> = p.iter().map(|p| p.symbol.as_str()).collect();
    assert_eq!(named, ["f+0x12", "f+0x17", "g+0x6"], "{}", show(&p));
}

#[test]
fn a_retpoline_site_missing_is_named() {
    let t = Tables {
        retpoline_sites: vec![],
        ..Tables::default()
    };
    expect_one(
        &check(&assemble(&t), ALL),
        ".text.f",
        "f+0xd",
        ".retpoline_sites does not list",
    );
}

#[test]
fn a_table_entry_on_another_instruction_is_refused() {
    let t = Tables {
        return_sites: vec![".Lr1", ".Lr2", ".Lr3", ".Lc1"],
        ..Tables::default()
    };
    expect_one(
        &check(&assemble(&t), ALL),
        ".return_sites",
        "f+0x4",
        "a branch to `.text.g`, not a jump to the return thunk",
    );
}

/// clang's `cs jmp __x86_return_thunk` and `cs call __x86_indirect_thunk_*`
/// (`-mindirect-branch-cs-prefix`, the 6.12 test kernel built with clang 19): objtool lists the
/// instruction at its `cs` prefix, one byte before the opcode. That is the branch; a table entry
/// on a 0x2e byte that is no prefix of a relocated branch is still refused.
#[test]
fn cs_prefixed_branches_are_listed_at_their_prefix() {
    let cs = |src: &str| {
        let mut t = String::new();
        t.push_str(src);
        t.push_str(
            r#"
	.section .text.h,"ax",@progbits
	.type h,@function
h:
	mov $0x2e,%al
.Ltail:	.byte 0x2e
	jmp 2f
2:
.Lh1:	.byte 0x2e
	call __x86_indirect_thunk_r11
.Lh2:	.byte 0x2e
	jmp __x86_return_thunk
	.size h, .-h
"#,
        );
        t
    };
    let base = |rets: &str| {
        cs(&format!(
            r#"
	.section .return_sites,"a"
	.long {rets}
	.section .retpoline_sites,"a"
	.long .Lh1 - .
"#
        ))
    };
    let p = check(&assemble_source(&base(".Lh2 - .")), CodeTables::default());
    assert!(p.is_empty(), "{}", show(&p));
    // Listed at the opcode (as gcc's code is) it is the same branch.
    let p = check(
        &assemble_source(&base(".Lh2 + 1 - .")),
        CodeTables::default(),
    );
    assert!(p.is_empty(), "{}", show(&p));
    // The 0x2e of `mov $0x2e,%al` before an unrelocated jump is no site.
    let p = check(
        &assemble_source(&base(".Lh2 - ., .Ltail - 1 - .")),
        CodeTables::default(),
    );
    expect_one(&p, ".return_sites", "h+0x1", "no relocated branch");
}

#[test]
fn call_sites_only_when_the_kernel_tracks_call_depth() {
    let t = Tables {
        call_sites: vec![],
        ..Tables::default()
    };
    let obj = assemble(&t);
    // For a module, calls in .init.text are listed too (the module's init runs late).
    let p = check(&obj, ALL);
    let named: Vec<(&str, &str)> = p
        .iter()
        .map(|p| (p.section.as_str(), p.symbol.as_str()))
        .collect();
    assert_eq!(
        named,
        [(".text.f", "f+0x4"), (".init.text", "i+0x0")],
        "{}",
        show(&p)
    );
    assert!(p.iter().all(|p| p
        .message
        .contains("a direct call that .call_sites does not list")));
    let no_depth = CodeTables {
        orc: true,
        call_sites: false,
    };
    assert!(check(&obj, no_depth).is_empty());
    // The guess from the module itself: no `.call_sites`, so not required.
    assert_eq!(CodeTables::guess(&obj), no_depth);
}

#[test]
fn a_function_without_orc_is_named() {
    // g's entries dropped: the entry in effect at g is f's section terminator... in another
    // section, so none at all.
    let t = Tables {
        orc: vec![("f", true), (".Lf_end", false), ("i", true)],
        ..Tables::default()
    };
    expect_one(
        &check(&assemble(&t), ALL),
        ".text.g",
        "g",
        "no ORC entry covers the function's start",
    );
    // An undefined entry at g's start is no better.
    let t = Tables {
        orc: vec![("f", true), ("g", false), ("i", true)],
        ..Tables::default()
    };
    expect_one(
        &check(&assemble(&t), ALL),
        ".text.g",
        "g",
        "the entry in effect there is undefined",
    );
}

#[test]
fn a_module_without_orc_is_refused_when_the_kernel_unwinds_with_orc() {
    let t = Tables {
        orc: vec![],
        ..Tables::default()
    };
    let obj = assemble(&t);
    let p = check(&obj, ALL);
    assert_eq!(p.len(), 3, "{}", show(&p));
    assert!(p
        .iter()
        .all(|p| p.message.contains("has no .orc_unwind_ip")));
    // A kernel without the ORC unwinder needs none.
    assert!(check(
        &obj,
        CodeTables {
            orc: false,
            call_sites: true
        }
    )
    .is_empty());
}

/// Calls that livepatch relocations complete: vmlinux's are applied with the ordinary ones and
/// belong in `.call_sites`; a module's come after the loader patched call sites and must not.
#[test]
fn livepatch_calls_in_call_sites() {
    let src = r#"
	.section .text.h,"ax",@progbits
	.type h,@function
h:
	endbr64
.Lv:	call ".klp.sym.vmlinux.vfunc,0"
.Lm:	call ".klp.sym.binfmt_misc.mfunc,0"
.Lret:	jmp __x86_return_thunk
	.size h, .-h
	.section .return_sites,"a"
	.long .Lret - .
	.section .call_sites,"a"
	.long .Lv - .
	.long .Lm - .
"#;
    let obj = assemble_source(src);
    let tables = CodeTables {
        orc: false,
        call_sites: true,
    };
    expect_one(
        &check(&obj, tables),
        ".call_sites",
        "h+0x9",
        "a call that a livepatch relocation for a module completes",
    );
}

/// The link-time placeholder (`.lp.klp_placeholder`) is unreachable once the post-link pass has
/// replaced every stand-in relocation to it: on kernels where objtool runs on each object (no
/// IBT, Debian's 6.1) nothing gives it ORC or a `.return_sites` entry, and it needs none. The
/// same code in an ordinary section is still refused.
#[test]
fn the_placeholder_needs_no_tables() {
    let code = |section: &str| {
        format!(
            ".section {section},\"ax\",@progbits\n.globl ph\n.type ph,@function\nph:\n\
             endbr64\njmp __x86_return_thunk\n.size ph, .-ph\n"
        )
    };
    let obj = assemble_source(&code(lp_emit::KLP_PLACEHOLDER_SECTION));
    assert!(check(&obj, ALL).is_empty(), "{}", show(&check(&obj, ALL)));
    let obj = assemble_source(&code(".text.ph"));
    let p = check(&obj, ALL);
    assert!(
        p.iter().any(|p| p.message.contains(".return_sites"))
            && p.iter().any(|p| p.message.contains("no ORC entry")),
        "{}",
        show(&p)
    );
}
