//! SIGINT and SIGTERM: a flag the driver polls. Children (make) run in their own process group
//! and are stopped by the driver, which then restores the tree and exits with the
//! "interrupted" status.

use crate::exit::{fail, Status};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

fn flag() -> &'static Arc<AtomicBool> {
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Installs the handlers (once). Afterwards SIGINT and SIGTERM no longer kill the process: they
/// set the flag.
pub fn install() -> anyhow::Result<()> {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(flag()))
            .map_err(|e| anyhow::anyhow!("installing the handler of signal {sig}: {e}"))?;
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM arrived.
pub fn interrupted() -> bool {
    flag().load(Ordering::SeqCst)
}

/// `Err(interrupted)` once a signal arrived.
pub fn check() -> anyhow::Result<()> {
    if interrupted() {
        Err(fail(Status::Interrupted, "interrupted"))
    } else {
        Ok(())
    }
}
