//! What can go wrong with the proxy database.
use std::io;
use std::path::{Path, PathBuf};

use super::line::LineError;
use super::record::Mac;

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file system call failed (disk full, permissions, I/O error).
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "append to".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Another process (or another `Store` in this one) has the database open.
    #[error("{} is in use by another process", path.display())]
    Locked {
        /// The database directory.
        path: PathBuf,
    },
    /// A line of the snapshot file does not parse.
    #[error("{}, line {line}: {source}", path.display())]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        source: LineError,
    },
    /// A file's header or overall shape is wrong (not a torn write: these
    /// files are only ever replaced whole, so someone else changed it).
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An update named a MAC the database does not hold.
    #[error("no client with MAC {0} in the proxy database")]
    UnknownMac(Mac),
    /// An update tried to change a record's key.
    #[error("an update may not change a record's MAC (from {from} to {to})")]
    MacChanged {
        /// The record's MAC.
        from: Mac,
        /// The MAC the update tried to set.
        to: Mac,
    },
}

/// Builds a `map_err` adaptor turning an `io::Error` into [`StoreError::Io`].
pub(crate) fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}
