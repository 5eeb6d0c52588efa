//! Shared test support: a small patch module built in memory with lp_elf, as the kbuild link
//! leaves it (text, `.modinfo`, the differ's `.lp.klp_relocs` / `.lp.klp_strs` metadata), and
//! the C compiler.

#![allow(dead_code)] // Each test file uses a part.

use lp_elf::{Object, Reloc, Section, SectionData, SymSection, Symbol};
use object::elf;
use std::path::Path;
use std::process::{Command, Output};

pub const ALLOC: u64 = elf::SHF_ALLOC.0;
pub const EXEC: u64 = elf::SHF_EXECINSTR.0;
pub const WRITE: u64 = elf::SHF_WRITE.0;
pub const INFO_LINK: u64 = elf::SHF_INFO_LINK.0;
pub const R_64: u32 = elf::R_X86_64_64.0;
pub const R_PC32: u32 = elf::R_X86_64_PC32.0;
pub const R_PLT32: u32 = elf::R_X86_64_PLT32.0;

pub fn section(name: &str, sh_type: u32, flags: u64, align: u64, data: SectionData) -> Section {
    Section {
        name: name.as_bytes().to_vec(),
        sh_type,
        flags,
        addr: 0,
        align,
        entsize: 0,
        link: 0,
        info: 0,
        data,
    }
}

pub fn rela_section(name: &str, target: usize, relocs: Vec<Reloc>) -> Section {
    let mut s = section(
        name,
        elf::SHT_RELA.0,
        INFO_LINK,
        8,
        SectionData::Relocs {
            is_rela: true,
            relocs,
        },
    );
    s.info = target as u32;
    s.entsize = 24;
    s
}

pub fn symbol(name: &str, bind: u8, st_type: u8, section: SymSection, value: u64) -> Symbol {
    let st_shndx = match section {
        SymSection::Section(i) => i as u16,
        SymSection::Undef => 0,
        SymSection::Special(x) => x,
    };
    Symbol {
        name: name.as_bytes().to_vec(),
        info: Symbol::make_info(bind, st_type),
        other: 0,
        st_shndx,
        section,
        value,
        size: 0,
    }
}

/// Where an entry's `place` relocation points.
#[derive(Debug, Clone, Copy)]
pub enum PlaceSym {
    /// The section symbol of `.text.patched`, addend = offset (what the differ writes).
    TextSection,
    /// The global function `__lp_f_foo` (value 0 in `.text.patched`).
    GlobalFunc,
    /// The local function `helper` (value 0x30 in `.text.patched`).
    LocalFunc,
    /// The undefined symbol `printk`.
    Undefined,
}

/// One `struct lp_klp_reloc` to build.
#[derive(Debug, Clone)]
pub struct EntrySpec {
    pub place: PlaceSym,
    /// Addend of the place relocation.
    pub place_addend: i64,
    pub name: String,
    pub r_type: u32,
    pub addend: i64,
}

pub fn entry(
    place: PlaceSym,
    place_addend: i64,
    name: &str,
    r_type: u32,
    addend: i64,
) -> EntrySpec {
    EntrySpec {
        place,
        place_addend,
        name: name.to_string(),
        r_type,
        addend,
    }
}

/// The entries of the standard sample: two vmlinux symbols (one used twice) and one of module
/// `nfsd`, with places given in the three ways the link can leave them.
pub fn sample_entries() -> Vec<EntrySpec> {
    vec![
        entry(
            PlaceSym::TextSection,
            0x1,
            ".klp.sym.vmlinux.secret_func,0",
            R_PLT32,
            -4,
        ),
        entry(
            PlaceSym::GlobalFunc,
            0x8,
            ".klp.sym.vmlinux.secret_var,2",
            R_PC32,
            -4,
        ),
        entry(
            PlaceSym::LocalFunc,
            0x2,
            ".klp.sym.nfsd.nfsd_helper,0",
            R_64,
            16,
        ),
        entry(
            PlaceSym::TextSection,
            0x10,
            ".klp.sym.vmlinux.secret_func,0",
            R_PLT32,
            -4,
        ),
    ]
}

/// Section indices of the sample module.
pub const TEXT: usize = 1;
pub const DATA: usize = 2;
pub const MODINFO: usize = 3;
pub const KLP_RELOCS: usize = 4;
pub const RELA_KLP_RELOCS: usize = 5;
pub const KLP_STRS: usize = 6;
pub const RELA_TEXT: usize = 7;

/// Symbol indices of the sample module.
pub const SYM_TEXT: u32 = 2;
pub const SYM_RELOCS: u32 = 3;
pub const SYM_STRS: u32 = 4;
pub const SYM_HELPER: u32 = 5;
pub const SYM_FOO: u32 = 6;
pub const SYM_PRINTK: u32 = 7;

/// A linked patch module (ET_REL) with a 64-byte `.text.patched` (zeros where the entries
/// point, `0xcc` elsewhere), `.data`, `.modinfo` with `livepatch=Y`, the metadata for
/// `entries`, and an ordinary relocation to the exported `printk` at `.text.patched+0x20`.
pub fn sample_module(entries: &[EntrySpec]) -> Object {
    let mut o = Object::new_relocatable(elf::EM_X86_64.0);
    let mut text = vec![0xccu8; 64];
    for e in entries {
        let base = match e.place {
            PlaceSym::TextSection | PlaceSym::GlobalFunc | PlaceSym::Undefined => 0,
            PlaceSym::LocalFunc => 0x30,
        };
        let size = if e.r_type == R_64 { 8 } else { 4 };
        let start = (base + e.place_addend) as usize;
        for b in text.iter_mut().skip(start).take(size) {
            *b = 0;
        }
    }
    // The ordinary relocation's field.
    for b in text.iter_mut().skip(0x20).take(4) {
        *b = 0;
    }
    o.push_section(section(
        ".text.patched",
        elf::SHT_PROGBITS.0,
        ALLOC | EXEC,
        16,
        SectionData::Bytes(text),
    ));
    o.push_section(section(
        ".data",
        elf::SHT_PROGBITS.0,
        ALLOC | WRITE,
        8,
        SectionData::Bytes(vec![0; 16]),
    ));
    o.push_section(section(
        ".modinfo",
        elf::SHT_PROGBITS.0,
        ALLOC,
        1,
        SectionData::Bytes(b"license=GPL\0livepatch=Y\0lp_cumulative=Y\0".to_vec()),
    ));

    let mut strs: Vec<u8> = Vec::new();
    let mut table = Vec::new();
    let mut relocs = Vec::new();
    for (k, e) in entries.iter().enumerate() {
        let name_off = match find(&strs, e.name.as_bytes()) {
            Some(off) => off,
            None => {
                let off = strs.len();
                strs.extend_from_slice(e.name.as_bytes());
                strs.push(0);
                off
            }
        };
        let base = (k * 32) as u64;
        table.extend_from_slice(&[0u8; 16]);
        table.extend_from_slice(&e.r_type.to_le_bytes());
        table.extend_from_slice(&0u32.to_le_bytes());
        table.extend_from_slice(&e.addend.to_le_bytes());
        let sym = match e.place {
            PlaceSym::TextSection => SYM_TEXT,
            PlaceSym::GlobalFunc => SYM_FOO,
            PlaceSym::LocalFunc => SYM_HELPER,
            PlaceSym::Undefined => SYM_PRINTK,
        };
        relocs.push(Reloc {
            offset: base,
            sym,
            r_type: R_64,
            addend: e.place_addend,
        });
        relocs.push(Reloc {
            offset: base + 8,
            sym: SYM_STRS,
            r_type: R_64,
            addend: name_off as i64,
        });
    }
    let mut t = section(
        ".lp.klp_relocs",
        elf::SHT_PROGBITS.0,
        ALLOC,
        8,
        SectionData::Bytes(table),
    );
    t.entsize = 32;
    o.push_section(t);
    o.push_section(rela_section(".rela.lp.klp_relocs", KLP_RELOCS, relocs));
    o.push_section(section(
        ".lp.klp_strs",
        elf::SHT_PROGBITS.0,
        ALLOC,
        1,
        SectionData::Bytes(strs),
    ));
    o.push_section(rela_section(
        ".rela.text.patched",
        TEXT,
        vec![Reloc {
            offset: 0x20,
            sym: SYM_PRINTK,
            r_type: R_PLT32,
            addend: -4,
        }],
    ));
    o.push_section(section(
        ".symtab",
        elf::SHT_SYMTAB.0,
        0,
        8,
        SectionData::SymTab,
    ));
    o.push_section(section(
        ".strtab",
        elf::SHT_STRTAB.0,
        0,
        1,
        SectionData::StrTab,
    ));
    o.push_section(section(
        ".shstrtab",
        elf::SHT_STRTAB.0,
        0,
        1,
        SectionData::ShStrTab,
    ));
    // What modpost's `.mod.c` gives every module (`struct module`; its size does not matter
    // here).
    o.push_section(section(
        ".gnu.linkonce.this_module",
        elf::SHT_PROGBITS.0,
        ALLOC | WRITE,
        64,
        SectionData::Bytes(vec![0; 64]),
    ));

    let local = elf::STB_LOCAL.0;
    let global = elf::STB_GLOBAL.0;
    o.push_symbol(symbol(
        "patch.o",
        local,
        elf::STT_FILE.0,
        SymSection::Special(elf::SHN_ABS.0),
        0,
    ));
    o.push_symbol(symbol(
        "",
        local,
        elf::STT_SECTION.0,
        SymSection::Section(TEXT as u32),
        0,
    ));
    o.push_symbol(symbol(
        "",
        local,
        elf::STT_SECTION.0,
        SymSection::Section(KLP_RELOCS as u32),
        0,
    ));
    o.push_symbol(symbol(
        "",
        local,
        elf::STT_SECTION.0,
        SymSection::Section(KLP_STRS as u32),
        0,
    ));
    o.push_symbol(symbol(
        "helper",
        local,
        elf::STT_FUNC.0,
        SymSection::Section(TEXT as u32),
        0x30,
    ));
    o.push_symbol(symbol(
        "__lp_f_foo",
        global,
        elf::STT_FUNC.0,
        SymSection::Section(TEXT as u32),
        0,
    ));
    o.push_symbol(symbol(
        "printk",
        global,
        elf::STT_NOTYPE.0,
        SymSection::Undef,
        0,
    ));
    o
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let mut at = 0;
    while at < hay.len() {
        let end = hay[at..].iter().position(|&b| b == 0)? + at;
        if &hay[at..end] == needle {
            return Some(at);
        }
        at = end + 1;
    }
    None
}

pub fn bytes(o: &Object) -> Vec<u8> {
    o.write().expect("write sample")
}

/// The C compiler (`$CC`, default `gcc`).
pub fn cc() -> Command {
    Command::new(std::env::var("CC").unwrap_or_else(|_| "gcc".to_string()))
}

/// Runs a command and returns its output; panics with its stderr if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e} (a C compiler is needed for this test)")
    })
}

/// Runs a command that must succeed.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The repository's hooks-macros directory.
pub fn hooks_dir() -> std::path::PathBuf {
    manifest_dir().join("../../hooks-macros")
}

/// The `.modinfo` entries of an object.
pub fn modinfo(o: &Object) -> Vec<String> {
    o.sections
        .iter()
        .filter(|s| s.name == b".modinfo")
        .flat_map(|s| s.bytes().split(|&b| b == 0))
        .filter(|e| !e.is_empty())
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect()
}

/// Adds `.lp.klp_placeholder` (a `ud2` function) and ordinary stand-in relocations at the given
/// places of `.text.patched`: `(offset, r_type, against)` where `against` is `None` for the
/// placeholder function or `Some(name)` for an undefined global of that name. Sorts the
/// symbols afterwards (indices of globals change).
pub fn add_stand_ins(o: &mut Object, stand_ins: &[(u64, u32, Option<&str>)]) {
    let sec = o.push_section(section(
        lp_emit::KLP_PLACEHOLDER_SECTION,
        elf::SHT_PROGBITS.0,
        ALLOC | EXEC,
        16,
        SectionData::Bytes(vec![0x0f, 0x0b]),
    ));
    let mut f = symbol(
        "__lp_klp_placeholder",
        elf::STB_LOCAL.0,
        elf::STT_FUNC.0,
        SymSection::Section(sec as u32),
        0,
    );
    f.size = 2;
    let placeholder = o.push_symbol(f) as u32;
    for &(offset, r_type, against) in stand_ins {
        let sym = match against {
            None => placeholder,
            Some(name) => match o.symbols.iter().position(|s| s.name == name.as_bytes()) {
                Some(i) => i as u32,
                None => o.push_symbol(symbol(
                    name,
                    elf::STB_GLOBAL.0,
                    elf::STT_NOTYPE.0,
                    SymSection::Undef,
                    0,
                )) as u32,
            },
        };
        if let SectionData::Relocs { relocs, .. } = &mut o.sections[RELA_TEXT].data {
            relocs.push(Reloc {
                offset,
                sym,
                r_type,
                addend: -4,
            });
        }
    }
    o.sort_symbols_locals_first();
}
