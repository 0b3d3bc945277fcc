//! Rebuild the object when bpf-linker changes (aya-template).
fn main() {
    let linker = which::which("bpf-linker").expect("bpf-linker not found: run `cargo xtask setup`");
    println!("cargo:rerun-if-changed={}", linker.display());
}
