//! smi-pnp-proxy: plays the Smart Install director toward legacy switches and
//! a Plug-and-Play agent toward the PnP server on their behalf.
//!
//! Data flows one way, from wire to state to wire:
//!
//! - [`dataplane`]: the XDP classifier (loading, maps, events).
//! - [`smi`]: the Smart Install side (pure codec, `show version` parser).
//! - [`pnp`]: the PnP side (pure XML codec).
//! - [`udi`]: the device identity both sides speak of.
//! - [`store`]: the proxy database on disk.
//! - [`cli`]: IOS-style show output.
//!
//! `smi` and `pnp` never import each other.
#![deny(missing_docs)]

pub mod cli;
pub mod daemon;
pub mod dataplane;
pub mod pnp;
pub mod smi;
pub mod store;
pub mod udi;
