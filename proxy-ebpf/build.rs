//! Rebuild the object when bpf-linker changes (aya-template), and let LLVM
//! read a frame's multi-byte fields with one load each.
//!
//! bpf-linker generates the code. By default LLVM assumes BPF needs aligned
//! accesses, so every field of a frame (whose alignment nothing promises)
//! is read a byte at a time and put together with shifts: a MAC address
//! took 16 instructions. With `allows-misaligned-mem-access` (LLVM 22)
//! each is one or two loads. The kernel accepts misaligned packet and map
//! accesses on every architecture with efficient unaligned access (x86-64,
//! arm64, powerpc64: what white-box switches run); elsewhere it refuses
//! the program at load. Stack accesses must stay aligned everywhere, which
//! is why `maps::key_at` builds a client key in a register.
fn main() {
    let linker = which::which("bpf-linker").expect("bpf-linker not found: run `cargo xtask setup`");
    println!("cargo:rerun-if-changed={}", linker.display());
    println!("cargo:rustc-link-arg-bins=--cpu-features=+allows-misaligned-mem-access");
}
