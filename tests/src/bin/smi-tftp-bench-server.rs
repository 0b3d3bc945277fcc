//! `smi-tftp-bench-server`: the proxy's own TFTP server
//! (`proxy::smi::tftp::serve`, the daemon's code) run alone, for
//! `smi-bench tftp` to measure beside tftpd-hpa.
//!
//! Only the wiring is bench-specific: the files given on the command line
//! are read into memory and staged as the daemon stages images (in-memory
//! `Bytes` under an unguessable per-client path), the server runs as in
//! the daemon, on a current-thread runtime of its own, and the transfer
//! cap is `--max-transfers` instead of the daemon's
//! [`TftpLimits::default`] (512). Every other limit and timer is the
//! daemon's default.
//!
//! On stdout: `staged <file name> <path to request>` per file, then
//! `listening <addr>`, then `ready`. It serves until its stdin closes (the
//! bench holds the other end, so it also stops when the bench dies) or it
//! gets SIGINT/SIGTERM, then prints its transfer counts on stderr.
//!
//! ```text
//! smi-tftp-bench-server --listen 127.0.0.1:0 /tmp/files/256k.bin /tmp/files/16m.bin
//! ```
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser as _;
use proxy::smi::tftp::{self, Staging, TftpEvent, TftpLimits};
use tokio_util::sync::CancellationToken;

#[derive(clap::Parser)]
struct Args {
    /// Address of the listening socket (transfer sockets bind its IP).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Transfers running at once (the daemon's default is 512).
    #[arg(long, default_value_t = 4096)]
    max_transfers: usize,
    /// Files to stage, each under its file name.
    files: Vec<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

/// Stages the files, prints their paths, serves until told to stop.
async fn run(args: Args) -> anyhow::Result<()> {
    let staging = Staging::with_ttl(None);
    let mut out = std::io::stdout().lock();
    for file in &args.files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no UTF-8 file name", file.display()))?;
        let data = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let staged = staging.stage("bench", name, Bytes::from(data));
        writeln!(out, "staged {name} {}", staged.path())?;
    }
    let socket = tokio::net::UdpSocket::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    writeln!(out, "listening {}", socket.local_addr()?)?;
    writeln!(out, "ready")?;
    out.flush()?;
    drop(out);

    let limits = TftpLimits {
        max_transfers: args.max_transfers,
        ..TftpLimits::default()
    };
    let cancel = CancellationToken::new();
    let (events, received) = tokio::sync::mpsc::channel(4096);
    let server = tokio::spawn(tftp::serve(
        socket,
        staging.clone(),
        events,
        limits,
        cancel.clone(),
    ));
    let tally = tokio::spawn(count_events(received));
    stop_signal().await?;
    cancel.cancel();
    server.await?.context("TFTP server")?;
    let (completed, failed) = tally.await?;
    let stats = staging.stats();
    eprintln!(
        "smi-tftp-bench-server: {completed} transfers completed, {failed} failed, {} busy, {} refused, {} bytes served",
        stats.requests_busy(),
        stats.requests_refused(),
        stats.bytes_served()
    );
    Ok(())
}

/// Drains the server's events (the daemon consumes them too): completed
/// and failed transfers.
async fn count_events(mut received: tokio::sync::mpsc::Receiver<TftpEvent>) -> (u64, u64) {
    let (mut completed, mut failed) = (0u64, 0u64);
    while let Some(event) = received.recv().await {
        match event {
            TftpEvent::Completed { .. } | TftpEvent::Uploaded { .. } => completed += 1,
            TftpEvent::Failed { path, reason, .. } => {
                failed += 1;
                log::warn!("transfer of {path} failed: {reason}");
            }
        }
    }
    (completed, failed)
}

/// Returns when stdin reaches its end or SIGINT/SIGTERM arrives.
async fn stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (closed, stdin_closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        // Whatever ends the read (end of file or an error) means stop.
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = closed.send(());
    });
    tokio::select! {
        _ = stdin_closed => {}
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
