//! `smi-proxy`: the daemon and its operator commands.
use clap::Parser as _;

/// jemalloc rather than glibc's malloc: it keeps each size class in pages
/// of its own, so the records of thousands of resting clients do not pin
/// the pages that onboarding's short-lived buffers came from, and it hands
/// freed pages back by itself (`docs/performance.md`, the RSS reading).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts: a background thread returns
/// pages unused for a second to the system, at once rather than lazily.
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: Option<&'static u8> =
    Some(&b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0]);

fn main() -> std::process::ExitCode {
    proxy::cli::run(proxy::cli::Args::parse())
}
