//! Test peers and helpers for smi-pnp-proxy: frame builders, network
//! namespaces, the legacy-switch emulator, a site DHCP server, a PnP server,
//! the lab topology and the figures of a lab run.

pub mod attack;
pub mod cpu_group;
pub mod dhcp_server;
pub mod emulator;
pub mod end_state;
pub mod figures;
pub mod frames;
pub mod lab;
pub mod netns;
pub mod pnp_server;
pub mod scenario;
pub mod tftp_bench;
pub mod tftp_client;
pub mod tftp_load;
