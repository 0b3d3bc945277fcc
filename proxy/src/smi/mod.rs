//! Smart Install (SMI) director side.

pub mod codec;
pub mod showver;
