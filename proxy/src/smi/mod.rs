//! Smart Install (SMI) director side.

pub mod codec;
pub mod director;
pub mod showver;
pub mod tailored;
pub mod telnet;
pub mod tftp;
