//! The parent's symbol table: what the running kernel (vmlinux or a module) knows, used to
//! compute `sympos` the way the livepatch core counts it.
//!
//! vmlinux: kallsyms walks symbols in address order; a module: its symbol table order. The
//! position of a symbol is its 1-based rank among same-named symbols, or 0 when the name is
//! unique. Local symbols belong to the source file of the `STT_FILE` symbol before them.

use crate::HashMap;
use lp_elf::Object;

/// One symbol of the parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentSym {
    /// Name.
    pub name: String,
    /// STB_LOCAL.
    pub local: bool,
    /// Index into [`Parent::files`] for locals.
    pub file: Option<u32>,
    /// Address (vmlinux) or symtab index (modules): the kallsyms order key.
    pub order: u64,
}

/// A parent symbol table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parent {
    /// Defined, kallsyms-visible symbols in kallsyms order.
    pub syms: Vec<ParentSym>,
    /// `STT_FILE` names.
    pub files: Vec<String>,
    /// Name -> indices into `syms`, in order.
    pub by_name: HashMap<String, Vec<usize>>,
    /// Names of symbols that are exported (`__ksymtab_<name>` present).
    pub ksymtab: std::collections::HashSet<String>,
}

/// Why a position cannot be given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PosError {
    /// Several same-named symbols and none or several in our file.
    Ambiguous(usize),
}

impl Parent {
    /// How many symbols of each name it has: what the validator needs to check that a
    /// livepatch position is unambiguous.
    pub fn name_counts(&self) -> std::collections::HashMap<String, usize> {
        self.by_name
            .iter()
            .map(|(k, v)| (k.clone(), v.len()))
            .collect()
    }

    /// Reads the symbol table of vmlinux (`is_vmlinux`: address order) or of an object/module.
    pub fn from_object(obj: &Object, is_vmlinux: bool) -> Parent {
        let mut files = Vec::new();
        let mut current: Option<u32> = None;
        let mut syms = Vec::new();
        let mut ksymtab = std::collections::HashSet::new();
        for (i, s) in obj.symbols.iter().enumerate().skip(1) {
            let name = s.name_str().into_owned();
            if s.is_file() {
                files.push(name);
                current = Some((files.len() - 1) as u32);
                continue;
            }
            if let Some(exported) = name.strip_prefix("__ksymtab_") {
                ksymtab.insert(exported.to_string());
            }
            if s.is_section() || s.is_undef() || name.is_empty() {
                continue;
            }
            // kallsyms skips these.
            if name.starts_with("__crc_") || name.starts_with(".L") || name.starts_with('$') {
                continue;
            }
            let local = s.is_local();
            syms.push(ParentSym {
                name,
                local,
                file: if local { current } else { None },
                order: if is_vmlinux { s.value } else { i as u64 },
            });
        }
        syms.sort_by_key(|s| s.order);
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::default();
        for (i, s) in syms.iter().enumerate() {
            by_name.entry(s.name.clone()).or_default().push(i);
        }
        Parent {
            syms,
            files,
            by_name,
            ksymtab,
        }
    }

    /// True when the parent has a symbol of this name.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// True when the parent defines a global of this name.
    pub fn defines_global(&self, name: &str) -> bool {
        self.by_name
            .get(name)
            .is_some_and(|v| v.iter().any(|&i| !self.syms[i].local))
    }

    /// How many same-named symbols the parent has.
    pub fn count(&self, name: &str) -> usize {
        self.by_name.get(name).map_or(0, Vec::len)
    }

    /// The `STT_FILE` index of our translation unit: among files named `basename`, the one whose
    /// locals include most of `local_names`. `None` when no file matches.
    pub fn find_file(&self, basename: &str, local_names: &[&str]) -> Option<u32> {
        let cands: Vec<u32> = self
            .files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.rsplit('/').next() == Some(basename))
            .map(|(i, _)| i as u32)
            .collect();
        if cands.len() <= 1 {
            return cands.first().copied();
        }
        let mut best: Option<(usize, u32)> = None;
        let mut tie = false;
        for f in cands {
            let score = local_names
                .iter()
                .filter(|n| {
                    self.by_name
                        .get(**n)
                        .is_some_and(|v| v.iter().any(|&i| self.syms[i].file == Some(f)))
                })
                .count();
            match best {
                Some((b, _)) if score == b => tie = true,
                Some((b, _)) if score < b => {}
                _ => {
                    best = Some((score, f));
                    tie = false;
                }
            }
        }
        if tie {
            None
        } else {
            best.map(|(_, f)| f)
        }
    }

    /// The position of `name`: `Ok(None)` when the parent lacks it, `Ok(Some(0))` when unique,
    /// else the 1-based rank of the global one (`global`) or of the one local to `file`.
    pub fn position(
        &self,
        name: &str,
        file: Option<u32>,
        global: bool,
    ) -> Result<Option<u64>, PosError> {
        let Some(v) = self.by_name.get(name) else {
            return Ok(None);
        };
        if v.len() == 1 {
            return Ok(Some(0));
        }
        let mine: Vec<usize> = v
            .iter()
            .enumerate()
            .filter(|(_, &i)| {
                let s = &self.syms[i];
                if global {
                    !s.local
                } else {
                    file.is_some() && s.local && s.file == file
                }
            })
            .map(|(rank, _)| rank)
            .collect();
        match mine.as_slice() {
            [rank] => Ok(Some(*rank as u64 + 1)),
            _ => Err(PosError::Ambiguous(v.len())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lp_elf::{SymSection, Symbol};
    use object::elf;

    fn sym(name: &str, bind: u8, st_type: u8, value: u64) -> Symbol {
        Symbol {
            name: name.as_bytes().to_vec(),
            info: Symbol::make_info(bind, st_type),
            other: 0,
            st_shndx: if st_type == elf::STT_FILE.0 {
                0xfff1
            } else {
                1
            },
            section: if st_type == elf::STT_FILE.0 {
                SymSection::Special(0xfff1)
            } else {
                SymSection::Section(1)
            },
            value,
            size: 8,
        }
    }

    /// vmlinux-like: two files each with a local `count`, a unique global, and a file with two
    /// same-named locals of its own.
    fn vmlinux() -> Parent {
        let (l, g) = (elf::STB_LOCAL.0, elf::STB_GLOBAL.0);
        let (f, o, func) = (elf::STT_FILE.0, elf::STT_OBJECT.0, elf::STT_FUNC.0);
        let mut obj = lp_elf::Object::new_relocatable(elf::EM_X86_64.0);
        for s in [
            sym("a.c", l, f, 0),
            sym("count", l, o, 0x300),
            sym("a_only", l, func, 0x10),
            sym("b.c", l, f, 0),
            sym("count", l, o, 0x100),
            sym("c.c", l, f, 0),
            sym("dup", l, o, 0x400),
            sym("dup", l, o, 0x500),
            sym("global_fn", g, func, 0x200),
        ] {
            obj.push_symbol(s);
        }
        Parent::from_object(&obj, true)
    }

    #[test]
    fn positions_follow_kallsyms_address_order() {
        let p = vmlinux();
        let a = p.find_file("a.c", &["a_only"]);
        let b = p.find_file("b.c", &[]);
        // By address, b.c's count (0x100) comes before a.c's (0x300).
        assert_eq!(p.position("count", a, false), Ok(Some(2)));
        assert_eq!(p.position("count", b, false), Ok(Some(1)));
        assert_eq!(p.position("global_fn", None, true), Ok(Some(0)));
        assert_eq!(p.position("a_only", a, false), Ok(Some(0)));
        assert_eq!(p.position("missing", a, false), Ok(None));
    }

    #[test]
    fn ambiguous_positions_are_refused() {
        let p = vmlinux();
        let c = p.find_file("c.c", &["dup"]);
        assert_eq!(p.position("dup", c, false), Err(PosError::Ambiguous(2)));
        // No file known: a duplicated name cannot be placed.
        assert_eq!(
            p.position("count", None, false),
            Err(PosError::Ambiguous(2))
        );
    }
}
