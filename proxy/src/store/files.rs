//! File system helpers: replacing a file atomically, and locking the
//! database directory against a second writer.
use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::error::{StoreError, io_error};

/// Replaces `dir/name` with what `write` produces, so that after a crash at
/// any instant the file holds either its old or its new content in full.
///
/// Writes `dir/name.tmp`, flushes it to disk, renames it over `dir/name`
/// and flushes the directory so the rename itself is durable.
pub(crate) fn replace(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let result = write_tmp(&tmp, write).and_then(|()| {
        fs::rename(&tmp, &target).map_err(io_error("rename into place", &tmp))?;
        sync_dir(dir)
    });
    if result.is_err() {
        // Best effort: a leftover .tmp is also removed at the next open.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_tmp(
    tmp: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<(), StoreError> {
    let file = File::create(tmp).map_err(io_error("create", tmp))?;
    let mut out = BufWriter::new(file);
    write(&mut out).map_err(io_error("write", tmp))?;
    let file = out
        .into_inner()
        .map_err(|e| io_error("write", tmp)(e.into_error()))?;
    file.sync_all().map_err(io_error("flush to disk", tmp))
}

/// Flushes a directory's entries (creations, renames) to disk.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("flush to disk the directory", dir))
}

/// Removes `dir/name.tmp` left by a crash in the middle of [`replace`].
pub(crate) fn remove_leftover_tmp(dir: &Path, name: &str) {
    let tmp = dir.join(format!("{name}.tmp"));
    match fs::remove_file(&tmp) {
        Ok(()) => tracing::info!("removed {} left by an interrupted rewrite", tmp.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove {}: {e}", tmp.display()),
    }
}

/// An exclusive `flock` on the database directory, held while it lives.
/// The kernel drops it when the process dies, even by SIGKILL.
#[derive(Debug)]
pub(crate) struct DirLock {
    _dir: Flock<File>,
}

impl DirLock {
    /// Takes the lock, or fails at once with [`StoreError::Locked`].
    pub(crate) fn acquire(dir: &Path) -> Result<Self, StoreError> {
        let handle = File::open(dir).map_err(io_error("open", dir))?;
        match Flock::lock(handle, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Self { _dir: lock }),
            Err((_, Errno::EWOULDBLOCK)) => Err(StoreError::Locked {
                path: dir.to_path_buf(),
            }),
            Err((_, errno)) => Err(io_error("lock", dir)(errno.into())),
        }
    }
}
