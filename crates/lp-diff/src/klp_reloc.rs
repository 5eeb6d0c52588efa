//! Decides how included code reaches a symbol the patch does not carry: a normal relocation
//! (the module loader resolves an exported symbol, or the linker another patch object's new
//! global) or a livepatch relocation against `.klp.sym.<obj>.<sym>,<pos>`.

use crate::parent::{Parent, PosError};
use crate::DiffOptions;
use lp_elf::klp;

/// How to reach an external symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// An undefined global symbol of this name.
    Normal(String),
    /// A livepatch symbol with this full name.
    Klp(String),
}

/// Where the symbol lives, as far as the differ knows.
pub struct Resolver<'a> {
    /// Options (object name, exports).
    pub opts: &'a DiffOptions,
    /// The parent symbol table of the patched object.
    pub parent: &'a Parent,
    /// Our translation unit's `STT_FILE` index in the parent.
    pub file: Option<u32>,
}

/// Why no relocation can be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReachError(pub String);

impl Resolver<'_> {
    fn exported(&self, name: &str) -> bool {
        match &self.opts.exports {
            Some(set) => set.contains(name),
            None => self.parent.ksymtab.contains(name),
        }
    }

    fn klp(&self, name: &str, pos: u64) -> Result<Reach, ReachError> {
        klp::klp_sym_name(&self.opts.object_name, name, pos)
            .map(Reach::Klp)
            .map_err(|e| ReachError(e.to_string()))
    }

    fn position(&self, name: &str, global: bool) -> Result<u64, ReachError> {
        match self.parent.position(name, self.file, global) {
            Ok(Some(pos)) => Ok(pos),
            Ok(None) => Err(ReachError(format!(
                "`{name}` is not in the symbol table of {}: the running kernel does not have \
                 it (was the parent built from the same source and config?)",
                self.opts.object_name
            ))),
            Err(PosError::Ambiguous(n)) => Err(ReachError(format!(
                "`{name}` appears {n} times in {} and its position cannot be told apart \
                 (no unique match in this source file): rename it in the patch or make the \
                 patched code not refer to it",
                self.opts.object_name
            ))),
        }
    }

    /// A symbol undefined in the patched object (defined elsewhere in the kernel or by
    /// another patch object).
    pub fn undefined(&self, name: &str) -> Result<Reach, ReachError> {
        // Not a global of this parent (another patch object's new global, another module's
        // export) or exported: the linker or the module loader resolves it.
        if !self.parent.defines_global(name) || self.exported(name) {
            return Ok(Reach::Normal(name.to_string()));
        }
        self.klp(name, self.position(name, true)?)
    }

    /// A symbol this object defines and the patch does not carry.
    pub fn defined(&self, name: &str, global: bool) -> Result<Reach, ReachError> {
        if global && self.exported(name) {
            return Ok(Reach::Normal(name.to_string()));
        }
        self.klp(name, self.position(name, global)?)
    }
}
