//! The loader's rules for a livepatch module, checked on the bytes of a `.ko`.
//!
//! The rules are those of `kernel/module/main.c` (`check_modinfo_livepatch`,
//! `simplify_symbols`, `apply_relocations`), `kernel/livepatch/core.c`
//! (`klp_write_section_relocs`, `klp_resolve_symbols`, `klp_find_object_symbol`) and
//! each architecture's `apply_relocate_add` ([`crate::loader`]: the relocation types it
//! applies, x86_64's refusal of non-zero places, ppc64's nop after a call out of the module): a
//! module that breaks one of them fails to load, or loads and is patched wrongly. Every problem
//! is reported, not only the first.
//!
//! Nothing here reads a file.

use crate::loader::{self, Loader};
pub use crate::sites::CodeTables;
use lp_elf::klp::{
    parse_klp_rela, parse_klp_sym, KLP_RELA_PREFIX, KLP_SYM_PREFIX, SHF_RELA_LIVEPATCH,
    SHN_LIVEPATCH,
};
use lp_elf::{Object, Reloc, SectionData, SymSection};
use object::elf;
use std::collections::{BTreeMap, HashMap, HashSet};

/// What the checker may know about the kernel the module is for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidateContext {
    /// The symbols the kernel exports (vmlinux and modules, from Module.symvers). `None`: the
    /// undefined symbols of the module are not checked.
    pub exports: Option<HashSet<String>>,
    /// Per object (`vmlinux` or a module name with underscores), how many symbols of each name
    /// it has (vmlinux: in kallsyms; a module: in its symbol table). `None`, or an object not
    /// in the map: positions are not checked for that object.
    pub symbol_counts: Option<BTreeMap<String, HashMap<String, usize>>>,
    /// The CRC of every exported symbol of a kernel built with `CONFIG_MODVERSIONS`
    /// (Module.symvers' first column). `None` or empty: `__versions` is not checked.
    pub crcs: Option<HashMap<String, u32>>,
    /// The kernel's `vermagic` (`VERMAGIC_STRING`, e.g. `6.12.57 SMP mod_unload modversions `).
    /// `None`: not checked.
    pub vermagic: Option<String>,
    /// The code tables the kernel's configuration requires of module code (ORC, call sites);
    /// `None`: guessed from the module ([`CodeTables::guess`]). The return-thunk and retpoline
    /// tables are always checked against the code (crate::sites).
    pub code_tables: Option<CodeTables>,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The section concerned (may be empty).
    pub section: String,
    /// The symbol concerned (may be empty).
    pub symbol: String,
    /// What is wrong and what the kernel would do.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.section.is_empty() {
            write!(f, "{}: ", self.section)?;
        }
        if !self.symbol.is_empty() {
            write!(f, "{}: ", self.symbol)?;
        }
        f.write_str(&self.message)
    }
}

struct Report(Vec<Problem>);

impl Report {
    fn add(&mut self, section: impl Into<String>, symbol: impl Into<String>, message: String) {
        self.0.push(Problem {
            section: section.into(),
            symbol: symbol.into(),
            message,
        });
    }
}

/// Checks a livepatch module against the loader's rules; an empty list means it passes.
pub fn validate(ko: &[u8], ctx: &ValidateContext) -> Vec<Problem> {
    let mut report = Report(Vec::new());
    match Object::parse(ko) {
        Ok(obj) => check(&obj, ctx, &mut report),
        Err(e) => report.add("", "", format!("not a readable ELF object: {e}")),
    }
    report.0
}

fn section_name(obj: &Object, i: usize) -> String {
    obj.sections
        .get(i)
        .map(|s| s.name_str().into_owned())
        .unwrap_or_else(|| format!("section {i}"))
}

fn is_metadata_name(name: &str) -> bool {
    // The placeholder is code the module keeps (see convert::KLP_PLACEHOLDER_SECTION).
    (name.starts_with(".lp.") || name.starts_with(".kpatch."))
        && name != crate::convert::KLP_PLACEHOLDER_SECTION
}

fn check(obj: &Object, ctx: &ValidateContext, report: &mut Report) {
    if obj.e_type != elf::ET_REL.0 {
        report.add(
            "",
            "",
            format!(
                "e_type {} is not ET_REL: modules are relocatable objects",
                obj.e_type
            ),
        );
    }
    check_modinfo(obj, ctx, report);
    if obj.symtab_index().is_none() {
        report.add("", "", "the module has no symbol table".to_string());
    }
    check_metadata(obj, report);
    let ld = loader::for_machine(obj.e_machine);
    check_loader_basics(obj, ld, report);
    check_symbols(obj, ctx, report);
    check_klp_sections(obj, ld, report);
    if let Some(crcs) = ctx.crcs.as_ref().filter(|c| !c.is_empty()) {
        check_versions(obj, crcs, report);
    }
    if obj.e_machine == object::elf::EM_X86_64.0 {
        let tables = ctx.code_tables.unwrap_or_else(|| CodeTables::guess(obj));
        report.0.extend(crate::sites::check(obj, tables));
    }
}

/// `sizeof(struct modversion_info)` on 64-bit: `unsigned long crc; char name[56]`.
const MODVERSION_INFO_SIZE: usize = 64;

/// The entries of `__versions` (name -> CRC), as `check_version` reads them; `Err` with the
/// reason when the section is malformed.
fn parse_versions(data: &[u8]) -> Result<Vec<(String, u64)>, String> {
    if !data.len().is_multiple_of(MODVERSION_INFO_SIZE) {
        return Err(format!(
            "size {} is not a multiple of {MODVERSION_INFO_SIZE} (struct modversion_info)",
            data.len()
        ));
    }
    let mut out = Vec::new();
    for entry in data.chunks_exact(MODVERSION_INFO_SIZE) {
        let (crc, name) = entry.split_at(8);
        let crc = u64::from_le_bytes(crc.try_into().map_err(|_| "short entry".to_string())?);
        let Some(end) = name.iter().position(|&b| b == 0) else {
            return Err("an entry's name is not NUL-terminated within 56 bytes".to_string());
        };
        out.push((String::from_utf8_lossy(&name[..end]).into_owned(), crc));
    }
    Ok(out)
}

/// CONFIG_MODVERSIONS: `resolve_symbol` calls `check_version` for every undefined symbol the
/// kernel exports with a CRC, and `check_modstruct_version` for `module_layout`. A symbol
/// missing from `__versions` ("no symbol version for") or with another CRC ("disagrees about
/// version of symbol") fails the load with -EINVAL; no `__versions` at all fails it too unless
/// the kernel allows forced loads (and then taints it).
fn check_versions(obj: &Object, crcs: &HashMap<String, u32>, report: &mut Report) {
    const HINT: &str = "link the module against the running kernel's build directory (its \
                        Module.symvers), as lp-build does with -v/--vmlinux";
    let Some(i) = obj.section_by_name("__versions") else {
        report.add(
            "__versions",
            "",
            format!(
                "missing, but the kernel was built with CONFIG_MODVERSIONS: the loader \
                 refuses the module (\"no versions for exported symbols\"); {HINT}"
            ),
        );
        return;
    };
    let data = obj.sections.get(i).map(|s| s.bytes()).unwrap_or_default();
    let versions = match parse_versions(data) {
        Ok(v) => v,
        Err(why) => {
            report.add("__versions", "", format!("malformed: {why}"));
            return;
        }
    };
    // Every undefined symbol, and module_layout (check_modstruct_version), by name.
    let wanted: std::collections::BTreeMap<String, u32> = obj
        .symbols
        .iter()
        .skip(1)
        .filter(|s| s.is_undef() && !s.name.is_empty())
        .map(|s| s.name_str().into_owned())
        .chain(std::iter::once("module_layout".to_string()))
        .filter_map(|n| crcs.get(&n).map(|&c| (n, c)))
        .collect();
    for (name, kernel_crc) in wanted {
        // check_version: the first entry of that name decides; its unsigned long must equal
        // the kernel's u32.
        match versions.iter().find(|(n, _)| *n == name) {
            None => report.add(
                "__versions",
                name,
                format!(
                    "no symbol version, but the kernel exports it with CRC {kernel_crc:#010x}: \
                     the loader fails with \"no symbol version for\"; {HINT}"
                ),
            ),
            Some(&(_, crc)) if crc != u64::from(kernel_crc) => report.add(
                "__versions",
                name,
                format!(
                    "CRC {crc:#010x}, the kernel's Module.symvers has {kernel_crc:#010x}: the \
                     loader fails with \"disagrees about version of symbol\"; {HINT}"
                ),
            ),
            Some(_) => {}
        }
    }
}

fn check_modinfo(obj: &Object, ctx: &ValidateContext, report: &mut Report) {
    let Some(i) = obj.section_by_name(".modinfo") else {
        report.add(
            ".modinfo",
            "",
            "no .modinfo section, so no `livepatch=Y`: the kernel loads this as an ordinary \
             module and klp_enable_patch refuses it"
                .to_string(),
        );
        return;
    };
    let data = obj.sections.get(i).map(|s| s.bytes()).unwrap_or_default();
    if !data.split(|&b| b == 0).any(|e| e == b"livepatch=Y") {
        report.add(
            ".modinfo",
            "",
            "no `livepatch=Y` (MODULE_INFO(livepatch, \"Y\")): the kernel loads this as an \
             ordinary module and klp_enable_patch refuses it"
                .to_string(),
        );
    }
    if let Some(kernel) = &ctx.vermagic {
        let module = data
            .split(|&b| b == 0)
            .find_map(|e| e.strip_prefix(b"vermagic="))
            .map(|v| String::from_utf8_lossy(v).into_owned());
        check_vermagic(obj, module.as_deref(), kernel, report);
    }
}

/// `check_modinfo` in kernel/module/main.c: no vermagic fails the load (unless forced); so does
/// one that `same_magic` finds different. With `__versions` the kernel compares only what
/// follows the first space (the release may differ; the CRCs decide).
fn check_vermagic(obj: &Object, module: Option<&str>, kernel: &str, report: &mut Report) {
    let Some(module) = module else {
        report.add(
            ".modinfo",
            "",
            format!(
                "no vermagic: the loader refuses the module (\"bad vermagic\"); the kernel's \
                 is `{kernel}`"
            ),
        );
        return;
    };
    let has_crcs = obj.section_by_name("__versions").is_some();
    let tail = |m: &str| {
        m.split_once(' ')
            .map_or(String::new(), |(_, t)| t.to_string())
    };
    let same = if has_crcs {
        tail(module) == tail(kernel)
    } else {
        module == kernel
    };
    if !same {
        report.add(
            ".modinfo",
            "",
            format!(
                "vermagic `{module}` is not the kernel's `{kernel}`: the loader fails with \
                 \"version magic ... should be ...\"; build the module against the running \
                 kernel's tree and configuration"
            ),
        );
    }
}

fn check_metadata(obj: &Object, report: &mut Report) {
    for s in &obj.sections {
        let name = s.name_str();
        let target_is_meta = s.is_reloc()
            && obj
                .sections
                .get(s.info as usize)
                .is_some_and(|t| is_metadata_name(&t.name_str()));
        if is_metadata_name(&name) || target_is_meta {
            report.add(
                name.into_owned(),
                "",
                "lp-build metadata left in the module: the post-link pass (convert_klp_relocs) \
                 did not run or did not finish"
                    .to_string(),
            );
        }
    }
}

fn check_symbols(obj: &Object, ctx: &ValidateContext, report: &mut Report) {
    for sym in obj.symbols.iter().skip(1) {
        let name = sym.name_str();
        let klp = sym.section == SymSection::Special(SHN_LIVEPATCH);
        if klp {
            match parse_klp_sym(&name) {
                None => report.add(
                    "",
                    name.clone().into_owned(),
                    "SHN_LIVEPATCH symbol whose name is not `.klp.sym.<objname>.<symbol>,<pos>` \
                     as the kernel parses it (objname 1-55 characters without '.', symbol \
                     1-511 without ',', decimal pos): \"has an incorrectly formatted name\""
                        .to_string(),
                ),
                Some((objname, symbol, pos)) => {
                    check_objname(objname, "", &name, report);
                    check_position(ctx, objname, symbol, pos, &name, report);
                }
            }
        } else if name.starts_with(KLP_SYM_PREFIX) {
            report.add(
                "",
                name.clone().into_owned(),
                format!(
                    "named like a livepatch symbol but st_shndx is {:#x}, not SHN_LIVEPATCH \
                     (0xff20): the module loader resolves it as an ordinary symbol",
                    sym.st_shndx
                ),
            );
        }
        if let Some(exports) = &ctx.exports {
            let undefined_strong = sym.is_undef()
                && sym.st_bind() == elf::STB_GLOBAL.0
                && !sym.name.is_empty()
                // The x86 loader ignores it (ignore_undef_symbol).
                && name != "_GLOBAL_OFFSET_TABLE_";
            if undefined_strong && !exports.contains(name.as_ref()) {
                report.add(
                    "",
                    name.into_owned(),
                    "undefined and not exported by the kernel: the module loader fails with \
                     \"Unknown symbol\"; unexported symbols need a klp relocation"
                        .to_string(),
                );
            }
        }
    }
}

fn check_objname(objname: &str, section: &str, symbol: &str, report: &mut Report) {
    if objname.contains('-') {
        report.add(
            section,
            symbol,
            format!(
                "object name `{objname}` has '-': the kernel's module names use '_', so it \
                 never matches"
            ),
        );
    }
}

fn check_position(
    ctx: &ValidateContext,
    objname: &str,
    symbol: &str,
    pos: u64,
    klp_name: &str,
    report: &mut Report,
) {
    let Some(count) = ctx
        .symbol_counts
        .as_ref()
        .and_then(|m| m.get(objname))
        .map(|names| names.get(symbol).copied().unwrap_or(0))
    else {
        return;
    };
    let count = count as u64;
    let message = if count == 0 {
        format!("`{symbol}` does not exist in {objname}: the kernel cannot resolve it")
    } else if pos == 0 && count > 1 {
        format!(
            "ambiguous: {objname} has {count} symbols named `{symbol}` and position 0 means \
             \"the only one\"; the kernel refuses it (\"unresolvable ambiguity\")"
        )
    } else if pos > count {
        format!(
            "position {pos} but {objname} has only {count} symbol(s) named `{symbol}`: the \
             kernel cannot resolve it"
        )
    } else {
        return;
    };
    report.add("", klp_name, message);
}

fn check_klp_sections(obj: &Object, ld: Option<&dyn Loader>, report: &mut Report) {
    // Normal relocations by target, to find places relocated twice.
    let mut normal: HashMap<usize, Vec<(u64, u64)>> = HashMap::new();
    for s in &obj.sections {
        let name = s.name_str();
        let is_klp = name.starts_with(KLP_RELA_PREFIX) || s.flags & SHF_RELA_LIVEPATCH != 0;
        if is_klp {
            continue;
        }
        let Some(relocs) = s.relocs() else { continue };
        for r in relocs {
            if let Some(sym) = obj.symbol(r.sym as usize) {
                if sym.section == SymSection::Special(SHN_LIVEPATCH) {
                    report.add(
                        name.clone().into_owned(),
                        sym.name_str().into_owned(),
                        format!(
                            "ordinary relocation at {:#x} against a SHN_LIVEPATCH symbol: the \
                             module loader applies it with value 0",
                            r.offset
                        ),
                    );
                }
            }
            let size = ld.and_then(|l| l.field_size(r.r_type)).unwrap_or(4);
            normal
                .entry(s.info as usize)
                .or_default()
                .push((r.offset, r.offset.saturating_add(size)));
        }
    }
    for ranges in normal.values_mut() {
        ranges.sort_unstable();
    }

    for s in &obj.sections {
        let name = s.name_str().into_owned();
        let named_klp = name.starts_with(KLP_RELA_PREFIX);
        let flagged = s.flags & SHF_RELA_LIVEPATCH != 0;
        if !named_klp && !flagged {
            continue;
        }
        if !named_klp {
            report.add(
                name.clone(),
                "",
                "SHF_RELA_LIVEPATCH on a section not named `.klp.rela.<objname>.<section>`: the \
                 kernel fails with \"incorrectly formatted name\""
                    .to_string(),
            );
            continue;
        }
        let Some((sec_obj, _)) = parse_klp_rela(&name) else {
            report.add(
                name.clone(),
                "",
                "not `.klp.rela.<objname>.<section>` as the kernel parses it (objname 1-55 \
                 characters without '.', then '.')"
                    .to_string(),
            );
            continue;
        };
        check_objname(sec_obj, &name, "", report);
        if s.sh_type != elf::SHT_RELA.0 {
            report.add(
                name.clone(),
                "",
                format!("sh_type {} is not SHT_RELA", s.sh_type),
            );
        }
        if !flagged {
            report.add(
                name.clone(),
                "",
                "no SHF_RELA_LIVEPATCH flag: the module loader applies it as an ordinary \
                 relocation section against unresolved symbols"
                    .to_string(),
            );
        }
        if !s.is_alloc() {
            report.add(
                name.clone(),
                "",
                "not SHF_ALLOC: the livepatch core cannot read it after the module loaded"
                    .to_string(),
            );
        }
        let target = s.info as usize;
        let tsec = obj.sections.get(target).filter(|t| {
            target != 0 && matches!(t.data, SectionData::Bytes(_) | SectionData::NoBits(_))
        });
        let Some(tsec) = tsec else {
            report.add(
                name.clone(),
                "",
                format!("sh_info {target} is not a code or data section of the module"),
            );
            continue;
        };
        let tname = section_name(obj, target);
        if !tsec.is_alloc() {
            report.add(
                name.clone(),
                "",
                format!("target {tname} is not SHF_ALLOC: the kernel skips this section"),
            );
        }
        if sec_obj != "vmlinux" && (tname.starts_with(".init") || tname.starts_with(".exit")) {
            report.add(
                name.clone(),
                "",
                format!(
                    "target {tname} is freed after the module's init, but relocations for \
                     module {sec_obj} may be applied later, when it loads"
                ),
            );
        }
        let Some(relocs) = s.relocs() else { continue };
        for r in relocs {
            let Some(ld) = ld else { continue }; // check_machine
            check_klp_reloc(
                obj, ld, &name, sec_obj, tsec, &tname, r, &normal, target, report,
            );
        }
    }
}

#[allow(clippy::too_many_arguments)] // One relocation and everything it is checked against.
fn check_klp_reloc(
    obj: &Object,
    ld: &dyn Loader,
    name: &str,
    sec_obj: &str,
    tsec: &lp_elf::Section,
    tname: &str,
    r: &Reloc,
    normal: &HashMap<usize, Vec<(u64, u64)>>,
    target: usize,
    report: &mut Report,
) {
    let Some(sym) = obj.symbol(r.sym as usize) else {
        report.add(
            name,
            "",
            format!("relocation at {:#x} against a missing symbol", r.offset),
        );
        return;
    };
    let symname = sym.name_str().into_owned();
    if sym.section != SymSection::Special(SHN_LIVEPATCH) {
        report.add(
            name,
            symname.clone(),
            format!(
                "relocation at {:#x} against a symbol that is not SHN_LIVEPATCH: the kernel \
                 fails with \"not marked as a livepatch symbol\"",
                r.offset
            ),
        );
    } else if let Some((sym_obj, _, _)) = parse_klp_sym(&symname) {
        if sym_obj != sec_obj {
            let message = if sym_obj == "vmlinux" {
                "module-specific section refers to a vmlinux symbol: the kernel refuses it \
                 (\"invalid access to vmlinux symbol\"); use an ordinary relocation to an \
                 exported symbol, or a .klp.rela.vmlinux section"
                    .to_string()
            } else {
                format!(
                    "symbol of object `{sym_obj}` in a section of object `{sec_obj}`: it is \
                     resolved when `{sec_obj}` is patched, whether or not `{sym_obj}` is loaded"
                )
            };
            report.add(name, symname.clone(), message);
        }
    }
    let Some(size) = ld.field_size(r.r_type) else {
        report.add(
            name,
            symname,
            format!(
                "relocation type {} at {:#x} is not one the {} module loader applies",
                r.r_type,
                r.offset,
                ld.name()
            ),
        );
        return;
    };
    let end = r.offset.checked_add(size);
    if end.is_none_or(|e| e > tsec.size()) {
        report.add(
            name,
            symname,
            format!(
                "place {:#x} + {size} bytes is past the end of {tname} ({:#x} bytes)",
                r.offset,
                tsec.size()
            ),
        );
        return;
    }
    if let SectionData::Bytes(b) = &tsec.data {
        if let Some(message) =
            ld.check_external_site(b, r.offset, r.r_type, &symname, obj.big_endian)
        {
            report.add(name, symname.clone(), message);
        }
        let field = usize::try_from(r.offset)
            .ok()
            .and_then(|o| Some(o..o.checked_add(size as usize)?))
            .and_then(|range| b.get(range));
        if ld.place_must_be_zero() && field.is_some_and(|f| f.iter().any(|&x| x != 0)) {
            report.add(
                name,
                symname.clone(),
                format!(
                    "place {tname}+{:#x} is not zero: the kernel refuses to apply it \
                     (\"Invalid relocation target, existing value is nonzero\")",
                    r.offset
                ),
            );
        }
    }
    let end = r.offset.saturating_add(size);
    if let Some(ranges) = normal.get(&target) {
        // Fields are at most 8 bytes, so an overlapping one starts less than 8 bytes before.
        let idx = ranges.partition_point(|&(start, _)| start < end);
        let overlaps = ranges
            .get(..idx)
            .unwrap_or_default()
            .iter()
            .rev()
            .take_while(|&&(start, _)| start.saturating_add(8) > r.offset)
            .any(|&(_, e)| e > r.offset);
        if overlaps {
            report.add(
                name,
                symname,
                format!(
                    "place {tname}+{:#x} is also relocated by an ordinary relocation",
                    r.offset
                ),
            );
        }
    }
}

/// What `load_module` checks before anything livepatch-specific, and what the architecture's
/// `apply_relocate_add` trusts without checking: the machine (`elf_check_arch`), the
/// `.gnu.linkonce.this_module` section (`struct module`), and every ordinary relocation section
/// (`apply_relocations`): a target out of range is silently skipped (the code runs unrelocated),
/// `SHT_REL` and unknown types are refused, and a place past the end of its section or not zero
/// is written anyway or refused.
fn check_loader_basics(obj: &Object, ld: Option<&dyn Loader>, report: &mut Report) {
    check_machine(obj, ld, report);
    check_this_module(obj, report);
    for (i, s) in obj.sections.iter().enumerate() {
        let Some(relocs) = s.relocs() else { continue };
        if s.flags & SHF_RELA_LIVEPATCH != 0 || s.name_str().starts_with(KLP_RELA_PREFIX) {
            continue; // check_klp_sections
        }
        if let Some(ld) = ld {
            check_ordinary_relocs(obj, ld, i, relocs, report);
        }
    }
}

fn check_machine(obj: &Object, ld: Option<&dyn Loader>, report: &mut Report) {
    if ld.is_none() {
        report.add(
            "",
            "",
            format!(
                "e_machine {} is none of the architectures lp-build knows the module loader of \
                 (x86_64, ppc64le, s390x, aarch64, loongarch64)",
                obj.e_machine,
            ),
        );
    }
}

fn check_this_module(obj: &Object, report: &mut Report) {
    const THIS_MODULE: &str = ".gnu.linkonce.this_module";
    match obj
        .section_by_name(THIS_MODULE)
        .and_then(|i| obj.sections.get(i))
    {
        None => report.add(
            THIS_MODULE,
            "",
            "missing: it holds the module's `struct module`, and the kernel refuses a module \
             without it (\"No module found in object\"); link the module with kbuild \
             (modpost writes it)"
                .to_string(),
        ),
        Some(s) if !matches!(&s.data, SectionData::Bytes(b) if !b.is_empty()) => report.add(
            THIS_MODULE,
            "",
            "empty or SHT_NOBITS: the kernel refuses it (\"section must have a size set\")"
                .to_string(),
        ),
        Some(_) => {}
    }
}

fn check_ordinary_relocs(
    obj: &Object,
    ld: &dyn Loader,
    i: usize,
    relocs: &[Reloc],
    report: &mut Report,
) {
    let name = section_name(obj, i);
    let Some(s) = obj.sections.get(i) else { return };
    let target = s.info as usize;
    let Some(tsec) = obj.sections.get(target).filter(|_| target != 0) else {
        report.add(
            name,
            "",
            format!(
                "sh_info {target} is not a section of the module: the loader skips this \
                 relocation section and the code it was for runs unrelocated"
            ),
        );
        return;
    };
    if !tsec.is_alloc() {
        return; // not loaded: the loader does not relocate it (debug info)
    }
    let tname = section_name(obj, target);
    if s.sh_type == elf::SHT_REL.0 {
        report.add(
            name,
            "",
            format!(
                "SHT_REL: the {} loader applies only SHT_RELA (\"REL relocation unsupported\")",
                ld.name()
            ),
        );
        return;
    }
    let bytes = match &tsec.data {
        SectionData::Bytes(b) => Some(b.as_slice()),
        _ => None,
    };
    for r in relocs {
        let symname = obj
            .symbol(r.sym as usize)
            .map(|s| s.name_str().into_owned())
            .unwrap_or_default();
        let Some(size) = ld.field_size(r.r_type) else {
            report.add(
                name.clone(),
                symname,
                format!(
                    "relocation type {} at {tname}+{:#x} is not one the {} module loader \
                     applies: it refuses the module (\"Unknown rela relocation\")",
                    r.r_type,
                    r.offset,
                    ld.name()
                ),
            );
            continue;
        };
        if size == 0 {
            continue; // R_*_NONE, markers
        }
        let field = r
            .offset
            .checked_add(size)
            .filter(|&end| end <= tsec.size())
            .and_then(|end| Some(usize::try_from(r.offset).ok()?..usize::try_from(end).ok()?));
        let Some(field) = field else {
            report.add(
                name.clone(),
                symname,
                format!(
                    "place {tname}+{:#x} + {size} bytes is past the end of {tname} ({:#x} \
                     bytes): apply_relocate_add does no bounds check and would write into \
                     whatever follows",
                    r.offset,
                    tsec.size()
                ),
            );
            continue;
        };
        let external = obj.symbol(r.sym as usize).is_some_and(|s| s.is_undef());
        if let Some(message) = bytes
            .filter(|_| external)
            .and_then(|b| ld.check_external_site(b, r.offset, r.r_type, &symname, obj.big_endian))
        {
            report.add(name.clone(), symname.clone(), message);
        }
        if ld.place_must_be_zero()
            && bytes
                .and_then(|b| b.get(field))
                .is_some_and(|f| f.iter().any(|&x| x != 0))
        {
            report.add(
                name.clone(),
                symname,
                format!(
                    "place {tname}+{:#x} is not zero: the x86_64 loader refuses to apply it \
                     (\"Invalid relocation target, existing value is nonzero\")",
                    r.offset
                ),
            );
        }
    }
}
