//! An owned, editable model of an ELF64 (little- or big-endian) relocatable object (or the
//! symbol table of a linked one), loaded with `object`'s low-level `read::elf` API and written back with
//! `object::write::elf::Writer`.
//!
//! Layers, as in `object` itself: [`read`] parses bytes into the model and never writes;
//! [`model`] is plain data that callers edit; [`write`] turns the model into bytes.
//!
//! This crate does no I/O: callers hand it bytes and get bytes back. Every value read from the
//! input is checked; malformed input is an [`Error`], never a panic.

pub mod compress;
pub mod klp;
pub mod model;
pub mod read;
pub mod write;

pub use model::{Object, Reloc, Section, SectionData, SymSection, Symbol};

/// What can go wrong reading or writing an object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not an ELF object we can read (truncated, corrupt, wrong class).
    #[error("malformed ELF: {0}")]
    Malformed(String),
    /// The object is valid ELF but not of a kind this tool handles.
    #[error("unsupported ELF: {0}")]
    Unsupported(String),
    /// The model is inconsistent and cannot be written (a bug in the caller).
    #[error("cannot write ELF: {0}")]
    Write(String),
    /// The bytes are LLVM bitcode (raw or in its wrapper), not an ELF object: clang's output for
    /// link-time optimisation (`-flto`, a kernel with `CONFIG_LTO_CLANG`), which holds no
    /// machine code until the final link.
    #[error(
        "LLVM bitcode, not an ELF object: it was compiled for link-time optimisation (clang \
         LTO) and holds no machine code until the final link, and the differ compares machine \
         code"
    )]
    LlvmBitcode,
}

/// Whether `data` starts like LLVM bitcode: the raw magic `BC 0xC0DE` or the bitcode wrapper's
/// `0x0B17C0DE` (little-endian), as `llvm-dis` and the linkers recognise it.
pub fn is_llvm_bitcode(data: &[u8]) -> bool {
    data.starts_with(b"BC\xc0\xde") || data.starts_with(&[0xde, 0xc0, 0x17, 0x0b])
}

impl From<object::read::Error> for Error {
    fn from(e: object::read::Error) -> Self {
        Error::Malformed(e.to_string())
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
