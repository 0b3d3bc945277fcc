//! `smi-proxy`: the daemon and its operator commands.
use clap::Parser as _;

fn main() -> std::process::ExitCode {
    proxy::cli::run(proxy::cli::Args::parse())
}
