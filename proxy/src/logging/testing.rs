//! Log output captured in memory, for tests that check what is written.
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::Dispatch;
use tracing_subscriber::fmt::MakeWriter;

use super::{BaseDirectives, Control, LogFormat, Switches, subscriber};

/// The lines written so far, shared by every writer made from it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written since the last call.
    pub(crate) fn take(&self) -> String {
        let mut bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&std::mem::take(&mut *bytes)).into_owned()
    }
}

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'w> MakeWriter<'w> for Captured {
    type Writer = Captured;

    fn make_writer(&'w self) -> Self::Writer {
        self.clone()
    }
}

/// A subscriber writing into memory, its filter's control and its output.
pub(crate) struct Capture {
    /// Install with `tracing::dispatcher::with_default` or `set_default`.
    pub(crate) dispatch: Dispatch,
    /// The debug switches of this subscriber alone.
    pub(crate) control: Control,
    /// What it wrote.
    pub(crate) out: Captured,
}

/// A subscriber in `format` filtered by `rust_log` (as `RUST_LOG`) and
/// switches of its own, all off; `log` records reach it too.
pub(crate) fn capture(format: LogFormat, rust_log: &str) -> Capture {
    // The bridge is process-wide; it hands records to whichever
    // subscriber is the thread's default.
    let _ = tracing_log::LogTracer::init();
    let (base, refused) = BaseDirectives::parse(rust_log);
    assert!(refused.is_empty(), "{refused:?}");
    let switches: &'static Switches = Box::leak(Box::new(Switches::new()));
    let out = Captured::default();
    let (subscriber, control) = subscriber(format, base, switches, out.clone(), false);
    Capture {
        dispatch: Dispatch::new(subscriber),
        control,
        out,
    }
}
