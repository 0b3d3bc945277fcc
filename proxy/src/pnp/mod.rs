//! Plug-and-Play (PnP) agent side.

pub mod codec;
