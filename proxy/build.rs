//! Builds the XDP object (`proxy-ebpf`) with aya-build and leaves it in
//! `OUT_DIR` for `include_bytes_aligned!`, as the aya template does.
//! With the `embed-ebpf` feature off (codec work, fuzzing) nothing is built.
use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_EMBED_EBPF");
    if std::env::var_os("CARGO_FEATURE_EMBED_EBPF").is_none() {
        return Ok(());
    }
    let manifest = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let root = std::path::Path::new(&manifest)
        .parent()
        .ok_or_else(|| anyhow!("no workspace root"))?
        .join("proxy-ebpf");
    let root = root.to_str().ok_or_else(|| anyhow!("non-UTF-8 path"))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "proxy-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
