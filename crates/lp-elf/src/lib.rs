//! An owned, editable model of an ELF64 little-endian relocatable object (or the symbol table of a
//! linked one), loaded with `object`'s low-level `read::elf` API and written back with
//! `object::write::elf::Writer`.
//!
//! Layers, as in `object` itself: [`read`] parses bytes into the model and never writes;
//! [`model`] is plain data that callers edit; [`write`] turns the model into bytes.
//!
//! This crate does no I/O: callers hand it bytes and get bytes back. Every value read from the
//! input is checked; malformed input is an [`Error`], never a panic.

#![deny(missing_docs)]

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
}

impl From<object::read::Error> for Error {
    fn from(e: object::read::Error) -> Self {
        Error::Malformed(e.to_string())
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
