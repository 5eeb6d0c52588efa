//! The module emitter: everything between the differ's patch objects and a loadable livepatch
//! module in the upstream format.
//!
//! - [`generate`]: the C source of the module's core (`klp_patch`, `klp_object`s, `klp_func`s,
//!   callback chains, `klp_state`s, identity `.modinfo` keys and parameters) and the Kbuild file
//!   that links it with the prebuilt patch objects.
//! - [`convert`]: the post-link pass that turns the `.lp.klp_relocs` metadata of the linked
//!   `.ko` into `.klp.rela.<obj>.<section>` sections and `SHN_LIVEPATCH` symbols.
//! - [`validate`]: the module loader's and the livepatch core's rules, checked on a `.ko`.
//! - [`sites`]: the mitigation and unwind tables (`.return_sites`, `.retpoline_sites`,
//!   `.call_sites`, ORC) checked against the module's code.
//! - [`names`]: the module name and the C spelling of names and strings.
//! - [`loader`]: each architecture's module loader rules (the relocation types its
//!   `apply_relocate_add` applies, one file per architecture).
//!
//! Architecture invariant: this crate does no I/O and starts no process. Bytes and strings in,
//! bytes and strings out; the build driver writes files and runs kbuild.

pub mod convert;
pub mod generate;
pub mod loader;
pub mod names;
pub mod sites;
pub mod validate;

pub use convert::{convert_klp_relocs, KLP_PLACEHOLDER_SECTION};
pub use generate::{core_source_name, generate_c, kbuild_file, ModuleSpec};
pub use names::module_name;
pub use validate::{validate, CodeTables, Problem, ValidateContext};

/// What can stop the emitter.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    /// The module name is not usable as a kernel module name.
    #[error("module name `{0}` is not usable: 1 to 55 characters of [A-Za-z0-9_-]")]
    BadModuleName(String),
    /// A record names an object the kernel cannot match.
    #[error("object `{object}`: {reason}")]
    BadObject {
        /// The object name as given.
        object: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A symbol the generated C must refer to is not a C identifier.
    #[error("object `{object}`: symbol `{symbol}` is not a C identifier the generated core can refer to")]
    BadSymbol {
        /// The object of the record.
        object: String,
        /// The symbol.
        symbol: String,
    },
    /// A symbol of a record collides with a name of the generated core.
    #[error(
        "object `{object}`: symbol `{symbol}` collides with the generated core's names \
         (`lp_core_*`)"
    )]
    ReservedSymbol {
        /// The object of the record.
        object: String,
        /// The symbol.
        symbol: String,
    },
    /// A function name cannot be given to the livepatch core.
    #[error("object `{object}`: function name `{function}` is not usable: {reason}")]
    BadFunctionName {
        /// The object of the record.
        object: String,
        /// The old name.
        function: String,
        /// What is wrong with it.
        reason: String,
    },
    /// One symbol would need two different C declarations.
    #[error("symbol `{symbol}` is used both as {first} and as {second}")]
    ConflictingUse {
        /// The symbol.
        symbol: String,
        /// Its first use.
        first: &'static str,
        /// The conflicting use.
        second: &'static str,
    },
    /// The same function of the same object is replaced twice.
    #[error(
        "object `{object}`: function `{function}` (position {sympos}) is replaced twice, by \
         `{first}` and by `{second}`"
    )]
    DuplicateFunction {
        /// The object.
        object: String,
        /// The old name.
        function: String,
        /// Its position.
        sympos: u64,
        /// The first replacement.
        first: String,
        /// The second replacement.
        second: String,
    },
    /// A state id is declared with two versions.
    #[error(
        "state {id} is declared with version {first} and with version {second}; a patch \
         carries one version of each state"
    )]
    StateConflict {
        /// The state id.
        id: u64,
        /// One version.
        first: u32,
        /// The other version.
        second: u32,
    },
    /// A state id of 0, which ends the kernel's `klp_state` array.
    #[error("object `{object}`: state id 0 is not allowed (it ends the kernel's klp_state array)")]
    ZeroStateId {
        /// The object whose record declares it.
        object: String,
    },
    /// A `(patch file name, sha256)` pair that cannot go into `.modinfo`.
    #[error("patch source `{name}`: {reason}")]
    BadSource {
        /// The patch file name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The lp-build version string cannot go into `.modinfo`.
    #[error("build version `{0}` is not printable ASCII")]
    BadBuildVersion(String),
    /// Neither functions, callbacks nor states, and no atomic replace: the module would do
    /// nothing.
    #[error("nothing to patch: no patch records, and the patch does not replace others")]
    EmptyPatch,
    /// The linked module cannot be read.
    #[error("reading the module: {0}")]
    Read(#[source] lp_elf::Error),
    /// The metadata sections cannot be removed from the module.
    #[error("removing the klp relocation metadata: {0}")]
    Edit(#[source] lp_elf::Error),
    /// The converted module cannot be written.
    #[error("writing the module: {0}")]
    Write(#[source] lp_elf::Error),
    /// The module is not for a machine whose relocation types we know.
    #[error(
        "e_machine {0}: the klp relocation pass handles x86_64, ppc64le, s390x, aarch64 and \
         loongarch64 modules"
    )]
    UnsupportedMachine(u16),
    /// The entry table is not a whole number of entries.
    #[error(
        "{section}: {size} bytes is not a whole number of {entry_size}-byte struct lp_klp_reloc \
         entries"
    )]
    BadEntryTable {
        /// The metadata section.
        section: String,
        /// Its size.
        size: u64,
        /// The entry size.
        entry_size: u64,
    },
    /// An entry lacks the relocation of one of its fields.
    #[error("{section}: entry {entry} has no relocation for its `{field}` field")]
    MissingReloc {
        /// The metadata section.
        section: String,
        /// The entry index.
        entry: u64,
        /// `place` or `name`.
        field: &'static str,
    },
    /// A relocation of the entry table that the format does not have.
    #[error("{section}: relocation at offset {offset:#x}: {message}")]
    UnexpectedReloc {
        /// The metadata section.
        section: String,
        /// Its offset in the section.
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// An entry's place does not resolve to a patchable place in the module.
    #[error("{section}: entry {entry} (`{symbol}`): place: {message}")]
    BadPlace {
        /// The metadata section.
        section: String,
        /// The entry index.
        entry: u64,
        /// The symbol the place relocation refers to.
        symbol: String,
        /// What is wrong.
        message: String,
    },
    /// An entry's name does not resolve to a `.klp.sym.<obj>.<sym>,<pos>` string.
    #[error("{section}: entry {entry}: name `{name}`: {message}")]
    BadName {
        /// The metadata section.
        section: String,
        /// The entry index.
        entry: u64,
        /// The name as far as it could be read.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// An entry asks for a relocation type the kernel's x86_64 loader does not apply.
    #[error(
        "{section}: entry {entry} (`{symbol}`): relocation type {r_type} is not one the kernel \
         applies (R_X86_64_64, _PC32, _PLT32, _32, _32S, _PC64)"
    )]
    UnsupportedType {
        /// The metadata section.
        section: String,
        /// The entry index.
        entry: u64,
        /// The klp symbol name.
        symbol: String,
        /// The type.
        r_type: u32,
    },
    /// Two entries relocate the same place.
    #[error("{section}: offset {offset:#x} is relocated twice (`{first}` and `{second}`)")]
    DuplicatePlace {
        /// The target section.
        section: String,
        /// The offset.
        offset: u64,
        /// The first symbol.
        first: String,
        /// The second symbol.
        second: String,
    },
    /// A klp symbol name is already taken by a symbol defined in the module.
    #[error(
        "symbol `{symbol}` is already defined in the module; it cannot become a livepatch symbol"
    )]
    NameClash {
        /// The symbol.
        symbol: String,
    },
    /// The module has no symbol table.
    #[error("the module has no symbol table")]
    NoSymtab,
}
