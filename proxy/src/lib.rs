//! smi-pnp-proxy: plays the Smart Install director toward legacy switches and
//! a Plug-and-Play agent toward the PnP server on their behalf.
//!
//! Data flows one way, from wire to state to wire:
//!
//! - [`dataplane`]: the XDP classifier (loading, maps, events).
//! - [`smi`]: the Smart Install side (pure codec, `show version` parser).
//! - [`pnp`]: the PnP side (pure XML codec).
//! - [`udi`]: the device identity both sides speak of; [`mac`]: the client's
//!   address, the key SMI knows it by; [`clock`]: the two clocks.
//! - [`store`]: the proxy database on disk.
//! - [`dhcp`]: the local DHCP server (`vstack dhcp-localserver`).
//! - [`show`]: the IOS `show vstack` outputs (view types and rendering, pure).
//! - [`cli`]: the command line: the daemon and the operator commands.
//! - [`host`]: this machine's interfaces and addresses.
//! - [`config`]: the configuration file and the IOS `vstack` commands.
//! - [`control`]: the control socket the operator commands use.
//! - [`metrics`]: the Prometheus endpoint.
//! - [`logging`]: the logger and its run-time debug switches.
//!
//! `smi` and `pnp` never import each other.
#![deny(missing_docs)]

pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod dhcp;
pub mod host;
pub mod logging;
pub mod logic;
pub mod mac;
pub mod metrics;
pub mod pnp;
pub mod show;
pub mod smi;
pub mod store;
pub mod udi;
