//! Plug-and-Play (PnP) agent side.

pub mod agent;
pub mod codec;
