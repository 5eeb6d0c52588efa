//! lpctl: load, list and unload livepatch modules built by lp-build.
//!
//! The decision logic ([`policy`]) is pure; all reads of the running
//! kernel go through [`sysfs::Sys`] (rooted, so tests can use a fake tree)
//! and all changes through the [`kernel::Kernel`] trait.

pub mod cli;
pub mod compress;
pub mod error;
pub mod install;
pub mod kernel;
pub mod modinfo;
pub mod ops;
pub mod output;
pub mod policy;
pub mod sysfs;

pub use error::{Error, ErrorClass, Result};
