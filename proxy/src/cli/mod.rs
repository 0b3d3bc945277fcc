//! Operator command line: IOS-style show output.

pub mod show;
