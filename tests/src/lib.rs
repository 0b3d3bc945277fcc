//! Test peers and helpers for smi-pnp-proxy: frame builders, network
//! namespaces, and (later) the legacy-switch emulator and a PnP server.

pub mod dhcp_server;
pub mod emulator;
pub mod frames;
pub mod lab;
pub mod netns;
pub mod pnp_server;
pub mod tftp_client;
