//! `cargo xtask`: set-up, build, test, lab and benchmarks for smi-pnp-proxy.
//!
//! Thin by design: it installs what a fresh machine lacks and runs cargo and
//! the project's own binaries. Every subcommand runs `setup` first, so the
//! README's commands work on a fresh machine.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use clap::Parser as _;

#[derive(clap::Parser)]
#[command(about = "Build, test and run smi-pnp-proxy")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(clap::Subcommand)]
enum Task {
    /// Install what a fresh machine lacks (idempotent).
    Setup,
    /// Build the eBPF object and the release binaries.
    Build,
    /// Run every test: unit, eBPF test_run, namespace tests (needs root).
    Test {
        /// Skip the formatting and clippy checks.
        #[arg(long)]
        no_lint: bool,
        /// Seconds of fuzzing per target (0 = none).
        #[arg(long, default_value_t = 20)]
        fuzz_seconds: u32,
    },
    /// Run the lab: emulated switches, the proxy with XDP, in namespaces.
    Lab {
        /// Arguments for the lab runner (`--help` lists them).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run a benchmark and print its figures (`dataplane`, `tftp`, `lab`, `hostile`).
    Bench {
        /// Which benchmark.
        which: String,
        /// Arguments for the benchmark.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = workspace_root()?;
    std::env::set_current_dir(&root)?;
    setup()?;
    match cli.command {
        Task::Setup => Ok(()),
        Task::Build => build(),
        Task::Test {
            no_lint,
            fuzz_seconds,
        } => test(no_lint, fuzz_seconds),
        Task::Lab { args } => run_bin_release("smi-lab", &args),
        Task::Bench { which, args } => {
            match which.as_str() {
                "dataplane" => apt(&["nftables"])?,
                "tftp" => apt(&["tftpd-hpa"])?,
                _ => {}
            }
            let mut all = vec![which];
            all.extend(args);
            run_bin_release("smi-bench", &all)
        }
    }
}

fn workspace_root() -> anyhow::Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .context("xtask has no parent directory")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a command, failing with its name when it fails.
fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.output().map(|o| o.status.success()).unwrap_or(false)
}

fn capture(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Installs missing Debian packages (apt-get update once, only if needed).
fn apt(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !succeeds(Command::new("dpkg").args(["-s", p])))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!("Debian packages {missing:?} are missing; run `cargo xtask setup` as root");
    }
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// nightly + rust-src, bpf-linker on nightly's own LLVM, Debian packages.
fn setup() -> anyhow::Result<()> {
    let sysroot = capture(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
        .context("the nightly toolchain is required (rustup toolchain install nightly)")?;
    let sysroot = PathBuf::from(sysroot.trim());
    let rust_src = sysroot.join("lib/rustlib/src/rust/library/core");
    if !rust_src.exists() {
        let rustup = Command::new("rustup")
            .args(["component", "add", "rust-src", "--toolchain", "nightly"])
            .status();
        if !matches!(rustup, Ok(s) if s.success()) {
            install_rust_src_fallback(&sysroot)?;
        } else {
            eprintln!("xtask: rust-src installed with rustup");
        }
    }
    if !succeeds(Command::new("bpf-linker").arg("--version")) {
        install_bpf_linker(&sysroot)?;
    }
    apt(&["iproute2"])?;
    Ok(())
}

/// The rust-src tarball kept in ../shared/toolchain, for the same nightly.
fn install_rust_src_fallback(sysroot: &Path) -> anyhow::Result<()> {
    let version = capture(Command::new("rustc").args(["+nightly", "-vV"]))?;
    let tarball = Path::new("../shared/toolchain/rust-src-nightly-e50aa6fba-2026-05-19.tar.xz");
    if !version.contains("e50aa6fba") || !tarball.exists() {
        bail!("rustup could not add rust-src and no matching fallback tarball exists");
    }
    eprintln!(
        "xtask: rustup failed; installing rust-src from {}",
        tarball.display()
    );
    run(Command::new("tar")
        .arg("-xJf")
        .arg(tarball)
        .arg("-C")
        .arg(sysroot.join("lib/rustlib")))
}

/// bpf-linker 0.13 linked against nightly's libLLVM, so their LLVMs match.
fn install_bpf_linker(sysroot: &Path) -> anyhow::Result<()> {
    let lib = std::fs::read_dir(sysroot.join("lib"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so.") && n.contains("-rust-"))
        })
        .context("nightly ships no libLLVM.so")?;
    let version = capture(Command::new("rustc").args(["+nightly", "-vV"]))?;
    let major = version
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .context("no LLVM version in rustc -vV")?
        .to_owned();
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let prefix = home.join("bpf-llvm");
    std::fs::create_dir_all(prefix.join("lib"))?;
    for name in [
        "libLLVM.so".to_owned(),
        lib.file_name()
            .and_then(|n| n.to_str())
            .context("libLLVM name")?
            .to_owned(),
    ] {
        let link = prefix.join("lib").join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&lib, &link)?;
    }
    run(Command::new("cargo")
        .args(["install", "bpf-linker", "--version", "0.13.0", "--locked"])
        .args(["--no-default-features", "--features"])
        .arg(format!("llvm-{major}"))
        .env("LLVM_PREFIX", &prefix))
}

fn build() -> anyhow::Result<()> {
    run(Command::new("cargo").args(["build", "--release", "--bins"]))
}

fn run_bin_release(bin: &str, args: &[String]) -> anyhow::Result<()> {
    if !is_root() {
        bail!("{bin} needs root (XDP, network namespaces): run it as root");
    }
    run(Command::new("cargo").args(["build", "--release", "--bins"]))?;
    run(Command::new(target_dir()?.join("release").join(bin)).args(args))
}

/// Cargo's target directory as cargo resolves it (`CARGO_TARGET_DIR`,
/// `build.target-dir` in a config file, or `target`).
fn target_dir() -> anyhow::Result<PathBuf> {
    let meta =
        capture(Command::new("cargo").args(["metadata", "--format-version", "1", "--no-deps"]))?;
    let meta: serde_json::Value = serde_json::from_str(&meta).context("cargo metadata output")?;
    meta.get("target_directory")
        .and_then(serde_json::Value::as_str)
        .map(PathBuf::from)
        .context("cargo metadata gives no target_directory")
}

fn test(no_lint: bool, fuzz_seconds: u32) -> anyhow::Result<()> {
    if !no_lint {
        run(Command::new("cargo").args(["fmt", "--all", "--check"]))?;
        run(Command::new("cargo").args(["clippy", "--all-targets", "--", "-D", "warnings"]))?;
    }
    if !is_root() {
        run(Command::new("cargo").args(["test", "--lib", "--bins"]))?;
        bail!(
            "unit tests passed, but the eBPF test_run and network-namespace tests need root: \
             run `cargo xtask test` as root"
        );
    }
    if fuzz_seconds > 0 && Path::new("fuzz/Cargo.toml").exists() {
        fuzz(fuzz_seconds)?;
    }
    // One thread: the namespace tests create interfaces and attach programs.
    // Last, so that the test runner's summary closes the output.
    run(Command::new("cargo").args(["test", "--", "--test-threads=1"]))
}

/// Every fuzz target for a bounded time, from the corpora kept in the repo.
fn fuzz(seconds: u32) -> anyhow::Result<()> {
    if !succeeds(Command::new("cargo").args(["fuzz", "--version"])) {
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let list = capture(
        Command::new("cargo")
            .args(["+nightly", "fuzz", "list"])
            .current_dir("fuzz"),
    )?;
    for target in list.lines().map(str::trim).filter(|t| !t.is_empty()) {
        // New inputs go to the first (scratch) directory, not the repo.
        let scratch = std::env::temp_dir().join(format!("smi-fuzz-{target}"));
        std::fs::create_dir_all(&scratch)?;
        let corpus = format!("corpus/{target}");
        run(Command::new("cargo")
            .args(["+nightly", "fuzz", "run", target])
            .arg(&scratch)
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .current_dir("fuzz"))?;
    }
    Ok(())
}
