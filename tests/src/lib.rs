//! Test peers and helpers for smi-pnp-proxy: frame builders, network
//! namespaces, and (later) the legacy-switch emulator and a PnP server.

pub mod frames;
pub mod netns;
