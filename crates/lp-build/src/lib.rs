//! lp-build, the build driver: from a kernel source patch to a livepatch module.
//!
//! Code map (one module per concept, in pipeline order; see [`pipeline`] for the phases):
//! [`cli`] the command line; [`input`] bounded, interruptible reads of input files; [`patchfile`] parsing unified diffs; [`apply`] applying them to a
//! scratch copy; [`tree`] checks of the kernel tree, configuration, vmlinux and compiler;
//! [`toolchain`] the kernel's compiler from its configuration, found on the host, and the make
//! variables every kbuild run gets;
//! [`cache`] the cached function-sections build, its key, stamp and lock; [`journal`] the
//! crash-safe record of what a run changes and the restore; [`ccwrap`] the compiler wrapper
//! kbuild runs as `CC`; [`runner`] running make in its own process group; [`kbuild`] which
//! object belongs to vmlinux or to which module, Module.symvers; [`probe`] special-section
//! entry sizes; [`pipeline`] the phases; [`commands`] the `diff` and `check` subcommands;
//! [`exit`] exit statuses; [`hooks`] the hooks headers built into the binary; [`install`] the
//! hidden `completions`, `man` and `hooks` subcommands; [`signals`] SIGINT/SIGTERM; [`ui`] progress output.
//!
//! Architecture invariant: this crate is the only one that touches the kernel tree, writes files
//! and starts processes; lp-diff and lp-emit are pure.

pub mod apply;
pub mod cache;
pub mod ccwrap;
pub mod cli;
pub mod commands;
pub mod exit;
pub mod fsutil;
pub mod ftrace_sites;
pub mod hooks;
pub mod input;
pub mod install;
pub mod journal;
pub mod kbuild;
pub mod packaged;
pub mod patchfile;
pub mod pipeline;
pub mod pristine;
pub mod probe;
pub mod runner;
pub mod sign;
pub mod signals;
pub mod toolchain;
pub mod tree;
pub mod ui;
pub mod vermagic;
