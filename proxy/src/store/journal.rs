//! The journal `smi_pnp_proxy_db.journal`: changes since the snapshot, one
//! full record per line, written to the file before a change is
//! acknowledged and flushed to disk by a group commit ([`GroupSync`]).
//!
//! Example (tabs shown as two spaces):
//!
//! ```text
//! # smi-pnp-proxy journal format=1 generation=4
//! 5f0c7a1e  mac=001e.f76d.af80  udi=PID:WS-C3750E-48TD,VID:V01,SN:FDO1152V10R  ...
//! ```
//!
//! Each line is the CRC-32 of the record text (eight hex digits), a tab, the
//! record text (see [`super::line`]) and a line feed. The header is written
//! when the file is created (atomically, by rename) and never changes; it
//! names the snapshot generation the journal continues.
//!
//! On reading, a last line without its line feed is the remains of a write
//! cut short by a crash: it is ignored and cut off. A complete line whose
//! CRC does not match is skipped with a warning.
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use super::error::{StoreError, io_error};
use super::files;
use super::line;
use super::record::ClientRecord;

/// File name of the journal inside the `vstack` directory.
pub const FILE_NAME: &str = "smi_pnp_proxy_db.journal";

const HEADER_PREFIX: &str = "# smi-pnp-proxy journal format=1 generation=";

/// Where journal bytes go. A regular file in production; tests substitute
/// failing writers to check what a full disk does.
pub(crate) trait Sink: Send {
    /// Writes all of `bytes` at the end.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the data back to `len` bytes.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

impl Sink for File {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
}

/// The production sink: a journal file whose appends return once written
/// (into the page cache, which a killed process cannot lose) and whose
/// flushes to disk run on a background thread, back to back, so that one
/// `fdatasync` covers every append made while the previous one ran (a group
/// commit). An append never waits for the disk: with thousands of clients
/// changing state, a sync per change (milliseconds each on a VM disk)
/// would serialise the whole proxy behind it. A power cut can lose the
/// changes of the last flush interval (one `fdatasync`); a failed flush is
/// reported by the next append.
pub(crate) struct GroupSync {
    file: File,
    shared: std::sync::Arc<SyncShared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct SyncShared {
    state: std::sync::Mutex<SyncState>,
    wake: std::sync::Condvar,
}

#[derive(Default)]
struct SyncState {
    dirty: bool,
    closing: bool,
    error: Option<io::Error>,
}

impl SyncShared {
    fn state(&self) -> std::sync::MutexGuard<'_, SyncState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl GroupSync {
    /// Starts the flusher thread for `file`.
    pub(crate) fn new(file: File, path: &Path) -> Result<Self, StoreError> {
        let flusher = file
            .try_clone()
            .map_err(io_error("open for flushing", path))?;
        let shared = std::sync::Arc::new(SyncShared::default());
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("journal-sync".into())
            .spawn(move || flush_loop(&flusher, &theirs))
            .map_err(io_error("start the flusher thread for", path))?;
        Ok(Self {
            file,
            shared,
            thread: Some(thread),
        })
    }
}

/// Flushes whenever something was written since the last flush; returns
/// after a last flush once the sink is dropped.
fn flush_loop(file: &File, shared: &SyncShared) {
    loop {
        {
            let mut st = shared.state();
            while !st.dirty && !st.closing {
                st = shared
                    .wake
                    .wait(st)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if !st.dirty {
                return;
            }
            st.dirty = false;
        }
        if let Err(e) = file.sync_data() {
            shared.state().error = Some(e);
        }
    }
}

impl Sink for GroupSync {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut st = self.shared.state();
        if let Some(e) = st.error.take() {
            return Err(e);
        }
        st.dirty = true;
        self.shared.wake.notify_one();
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
}

impl Drop for GroupSync {
    fn drop(&mut self) {
        self.shared.state().closing = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A failed append. If `rolled_back`, the journal was cut back to its last
/// acknowledged line and can still be used; if not, it may end in a partial
/// line and must not be appended to again.
#[derive(Debug)]
pub(crate) struct AppendError {
    /// The write or flush failure.
    pub source: io::Error,
    /// Whether the journal is back to its state before the append.
    pub rolled_back: bool,
}

/// An open journal, positioned at its end.
pub(crate) struct Journal {
    sink: Box<dyn Sink>,
    path: PathBuf,
    /// Bytes up to the end of the last acknowledged line.
    len: u64,
    /// Complete lines in the file (good or corrupt), header excluded.
    lines: usize,
}

impl Journal {
    /// Creates an empty journal for `generation` in `dir`, replacing any old one.
    pub(crate) fn create(dir: &Path, generation: u64) -> Result<Self, StoreError> {
        let header = format!("{HEADER_PREFIX}{generation}\n");
        files::replace(dir, FILE_NAME, |out| out.write_all(header.as_bytes()))?;
        let path = dir.join(FILE_NAME);
        let len = header.len() as u64;
        Self::reopen(&path, len, 0)
    }

    /// Opens an existing journal for appending, first cutting off anything
    /// after `valid_len` (a torn last line).
    pub(crate) fn reopen(path: &Path, valid_len: u64, lines: usize) -> Result<Self, StoreError> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io_error("open for appending", path))?;
        let actual = file.metadata().map_err(io_error("inspect", path))?.len();
        if actual != valid_len {
            file.set_len(valid_len)
                .map_err(io_error("cut the torn tail off", path))?;
            file.sync_all().map_err(io_error("flush to disk", path))?;
        }
        Ok(Self {
            sink: Box::new(GroupSync::new(file, path)?),
            path: path.to_path_buf(),
            len: valid_len,
            lines,
        })
    }

    /// A journal writing to `sink`, for tests that simulate failing disks.
    #[cfg(test)]
    pub(crate) fn with_sink(sink: Box<dyn Sink>, path: &Path, len: u64, lines: usize) -> Self {
        Self {
            sink,
            path: path.to_path_buf(),
            len,
            lines,
        }
    }

    /// The journal's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Complete lines in the journal, header excluded.
    pub(crate) fn lines(&self) -> usize {
        self.lines
    }

    /// Appends one line per record text and asks for a flush to disk (see
    /// [`GroupSync`]). On failure, tries to cut the file back to where it was.
    pub(crate) fn append(&mut self, records: &[String]) -> Result<(), AppendError> {
        let mut bytes = String::new();
        for record in records {
            bytes.push_str(&line::frame(record));
        }
        let written = self
            .sink
            .append(bytes.as_bytes())
            .and_then(|()| self.sink.sync());
        match written {
            Ok(()) => {
                self.len += bytes.len() as u64;
                self.lines += records.len();
                Ok(())
            }
            Err(source) => {
                let rolled_back = self.sink.truncate(self.len).is_ok();
                Err(AppendError {
                    source,
                    rolled_back,
                })
            }
        }
    }
}

/// What reading a journal found.
#[derive(Debug)]
pub(crate) struct Replay {
    /// The snapshot generation this journal continues.
    pub generation: u64,
    /// Records from lines whose CRC matched, in file order.
    pub records: Vec<ClientRecord>,
    /// Complete lines (good or corrupt), header excluded.
    pub lines: usize,
    /// 1-based line numbers (header is line 1) of complete lines skipped
    /// because their CRC or content was bad.
    pub corrupt_lines: Vec<usize>,
    /// Length up to the end of the last complete line.
    pub valid_len: u64,
    /// Bytes after the last line feed: a write cut short.
    pub torn_bytes: u64,
}

/// Reads the journal at `path`; `None` if there is none.
pub(crate) fn read(path: &Path) -> Result<Option<Replay>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", path)(e)),
    };
    let mut pieces = bytes.split_inclusive(|&b| b == b'\n');
    let header = pieces.next().unwrap_or_default();
    let generation = header
        .strip_suffix(b"\n")
        .and_then(|header| std::str::from_utf8(header).ok())
        .and_then(|header| header.strip_prefix(HEADER_PREFIX))
        .and_then(|number| number.parse::<u64>().ok())
        .ok_or_else(|| StoreError::BadFile {
            path: path.to_path_buf(),
            reason: format!("first line is not \"{HEADER_PREFIX}<N>\""),
        })?;
    let mut replay = Replay {
        generation,
        records: Vec::new(),
        lines: 0,
        corrupt_lines: Vec::new(),
        valid_len: 0,
        torn_bytes: 0,
    };
    let mut offset = header.len();
    for (index, piece) in pieces.enumerate() {
        let Some(framed) = piece.strip_suffix(b"\n") else {
            replay.torn_bytes = piece.len() as u64;
            break;
        };
        offset += piece.len();
        replay.lines += 1;
        let record = line::unframe(framed).and_then(|text| line::decode(text).ok());
        match record {
            Some(record) => replay.records.push(record),
            None => replay.corrupt_lines.push(index + 2),
        }
    }
    replay.valid_len = offset as u64;
    Ok(Some(replay))
}
