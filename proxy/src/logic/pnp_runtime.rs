//! The runtime the PnP side of the core runs on: every agent, the HTTP
//! connections it opens, and the jobs it hands to the core.
//!
//! Apart from the daemon's runtime for the same reason as the TFTP server
//! (`daemon::wiring`): a wave of switches booting together keeps thousands
//! of onboarding tasks ready there at once, and a PnP exchange woken behind
//! them waits its turn at every step (5 to 30 ms a step at 10,000
//! switches). Here its queue holds PnP work only.
//!
//! Its thread also runs at a higher priority ([`PNP_NICE`]): on cores the
//! wave saturates, the kernel otherwise gave the thread its turn behind the
//! onboarding and TFTP threads. PnP work comes in short turns, each of
//! which the server waits on. The priority changes when they run, not how
//! much they take: the daemon's CPU for 10,000 switches was the same at
//! nice 0 and -10, and the onboarding as fast.

use tokio::runtime::{Builder, Handle, Runtime};

/// The nice value of the PnP runtime's threads (the daemon's are at 0).
/// Measured at 10,000 switches booting together on two cores: the PnP
/// turnaround p99 went from 34 to 14 ms, the time to onboard them all
/// did not change.
pub(super) const PNP_NICE: i32 = -10;

/// One worker thread named `pnp`, shut down when dropped.
#[derive(Debug)]
pub(super) struct PnpRuntime(Option<Runtime>);

impl PnpRuntime {
    /// Starts the runtime's worker. (Multi-thread with one worker rather
    /// than current-thread: a compacting database edit from a job goes
    /// through `block_in_place`, which needs the former.)
    pub(super) fn start() -> std::io::Result<Self> {
        let rt = Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pnp")
            .on_thread_start(raise_priority)
            .enable_all()
            .build()?;
        Ok(Self(Some(rt)))
    }

    /// Where to spawn the PnP side's tasks.
    pub(super) fn handle(&self) -> Option<&Handle> {
        self.0.as_ref().map(Runtime::handle)
    }
}

/// Sets the calling thread's nice value to [`PNP_NICE`] (on Linux the
/// nice value is per thread). Without `CAP_SYS_NICE` it stays as it is.
fn raise_priority() {
    // SAFETY: gettid and setpriority take and return plain integers.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, PNP_NICE)
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        tracing::warn!(target: "smi_proxy", "PnP thread keeps the daemon's priority: {e}");
    }
}

impl Drop for PnpRuntime {
    /// Shuts the runtime down on a thread of its own: the core may be
    /// dropped in an async context, or by the last of its PnP tasks.
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            let _ = std::thread::Builder::new()
                .name("pnp-stop".into())
                .spawn(move || drop(rt));
        }
    }
}
