//! The proxy database: one [`ClientRecord`] per Smart Install client MAC,
//! kept on disk in `<state_dir>/vstack/` the way Cisco's SMI Proxy keeps
//! `flash:/vstack/smi_pnp_proxy_db.txt`.
//!
//! Behaviour, as the SMI Proxy chapter describes it: a client is added if
//! its MAC is missing and left alone if present; entries of clients that
//! have left the network stay; nothing clears the database. Hence there is
//! no remove or clear call here.
//!
//! # Files
//!
//! - `smi_pnp_proxy_db.txt`, the *snapshot*: a comment header, then one
//!   client per line as tab-separated `key=value` fields (keys and escaping
//!   in [`mod@line`], header in [`snapshot`]). Readable with `cat` or
//!   `column -t -s $'\t'`. Rewritten only by compaction.
//! - `smi_pnp_proxy_db.journal`, the *journal*: the changes since the
//!   snapshot, one full record per line behind its CRC-32 (see [`journal`]).
//!   Replaying it over the snapshot gives the current database, so the
//!   snapshot alone may lag behind `show vstack proxy-db`.
//!
//! # Crash safety
//!
//! A SIGKILL or power cut at any instant leaves each file with its old or
//! its new content; a SIGKILL never loses a change that was acknowledged,
//! a power cut at most those of the last flush (a few milliseconds):
//!
//! - Every mutating call appends its records to the journal file before it
//!   returns `Ok`, and only then changes memory. A background thread
//!   flushes the journal to disk whenever it was written to, one
//!   `fdatasync` covering all appends since the previous one (a group
//!   commit: changes never wait for the disk, which with thousands of
//!   clients would serialise the proxy). If the write fails, or the
//!   previous flush did (a full disk), the journal
//!   is cut back to its last good line, memory is left alone and the call
//!   returns the error; if even that cut fails, the next change first
//!   rewrites everything from memory (a compaction).
//! - A crash during an append leaves at most a partial last line, which the
//!   CRC or the missing line feed gives away; it is ignored and cut off on
//!   the next open. Such a change was never acknowledged.
//! - Compaction writes a complete new snapshot to `*.tmp`, flushes it,
//!   renames it into place and flushes the directory, then creates an empty
//!   journal the same way. The snapshot header carries a *generation*
//!   number and the journal header names the generation it continues, so a
//!   crash between the two renames leaves an old journal that the loader
//!   recognises as already folded into the snapshot and ignores.
//! - Compaction runs when the journal holds more lines than
//!   `max(compact_min_lines, 2 × entries)`, so its cost, one pass over all
//!   entries, is spread over at least as many changes as there are entries.
//!
//! An exclusive lock (`flock`) on the `vstack` directory keeps a second
//! process from writing the same files.
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

pub mod journal;
pub mod line;
pub mod snapshot;

mod error;
pub(crate) mod files;
mod record;
#[cfg(test)]
mod tests;

pub use error::StoreError;
pub use line::LineError;
pub use record::{
    ClientRecord, ConfigSource, DownloadJob, EntryState, JobStatus, Mac, MacError, Method,
    Transfer, VersionSource,
};

use crate::udi::Udi;
use files::DirLock;
use journal::Journal;

/// Name of the directory under the state directory that holds the files.
pub const DIR_NAME: &str = "vstack";

/// Tuning knobs for [`Store::open_with`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Compact once the journal holds more than
    /// `max(compact_min_lines, 2 × entries)` lines. Default 1024.
    pub compact_min_lines: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            compact_min_lines: 1024,
        }
    }
}

/// What [`Store::open`] found on disk, for the daemon's start-up log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Records read from the snapshot.
    pub snapshot_records: usize,
    /// Journal lines replayed over the snapshot.
    pub journal_records: usize,
    /// 1-based line numbers of journal lines skipped for a bad CRC or content.
    pub corrupt_journal_lines: Vec<usize>,
    /// Bytes of a partial last journal line that were cut off.
    pub torn_tail_bytes: u64,
    /// Whether a journal already folded into the snapshot was found and ignored.
    pub stale_journal_ignored: bool,
}

/// One change for [`Store::apply_batch`].
pub enum Change<'a> {
    /// Add this record unless a record with its MAC exists (boxed: a
    /// record is large, an update small).
    InsertIfMissing(Box<ClientRecord>),
    /// Edit the record with this MAC, which must exist.
    Update(Mac, Box<dyn FnOnce(&mut ClientRecord) + Send + 'a>),
}

impl<'a> Change<'a> {
    /// A [`Change::InsertIfMissing`].
    pub fn insert(record: ClientRecord) -> Self {
        Change::InsertIfMissing(Box::new(record))
    }

    /// A [`Change::Update`] from a closure.
    pub fn update(mac: Mac, edit: impl FnOnce(&mut ClientRecord) + Send + 'a) -> Self {
        Change::Update(mac, Box::new(edit))
    }
}

/// What one [`Change`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The record was added.
    Inserted,
    /// A record with that MAC existed; nothing was written.
    AlreadyPresent,
    /// The record changed.
    Updated,
    /// The edit left the record as it was; nothing was written.
    Unchanged,
}

/// The proxy database, open for reading and writing.
pub struct Store {
    dir: PathBuf,
    options: StoreOptions,
    /// All records in insertion (DevNo) order.
    records: Vec<ClientRecord>,
    /// Position of each MAC in `records`.
    by_mac: HashMap<Mac, usize>,
    /// For each UDI, the position of the most recently changed record holding it.
    by_udi: HashMap<Udi, usize>,
    /// Generation of the snapshot on disk.
    generation: u64,
    /// `None` when the journal must not be appended to: the next change
    /// compacts first.
    journal: Option<Journal>,
    /// After a failed compaction, do not retry before the journal has this many lines.
    compaction_retry_at: usize,
    report: LoadReport,
    _lock: DirLock,
}

impl Store {
    /// Opens (creating if needed) the database in `<state_dir>/vstack/`
    /// with default options.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(state_dir, StoreOptions::default())
    }

    /// Opens (creating if needed) the database in `<state_dir>/vstack/`:
    /// takes the directory lock, loads the snapshot, replays the journal
    /// and cuts off a torn last journal line.
    pub fn open_with(state_dir: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        let dir = state_dir.join(DIR_NAME);
        fs::create_dir_all(&dir).map_err(error::io_error("create directory", &dir))?;
        let lock = DirLock::acquire(&dir)?;
        files::remove_leftover_tmp(&dir, snapshot::FILE_NAME);
        files::remove_leftover_tmp(&dir, journal::FILE_NAME);

        let mut store = Self {
            dir,
            options,
            records: Vec::new(),
            by_mac: HashMap::new(),
            by_udi: HashMap::new(),
            generation: 0,
            journal: None,
            compaction_retry_at: 0,
            report: LoadReport::default(),
            _lock: lock,
        };
        let snapshot_path = store.dir.join(snapshot::FILE_NAME);
        let snapshot = snapshot::read(&snapshot_path)?;
        let have_snapshot = snapshot.is_some();
        if let Some(snapshot) = snapshot {
            store.generation = snapshot.generation;
            store.report.snapshot_records = snapshot.records.len();
            for record in snapshot.records {
                if store.by_mac.contains_key(&record.mac) {
                    return Err(StoreError::BadFile {
                        path: snapshot_path,
                        reason: format!("MAC {} appears twice", record.mac),
                    });
                }
                store.commit(record);
            }
        }
        store.replay_journal()?;
        if !have_snapshot || store.journal.is_none() {
            store.compact()?;
        } else {
            store.compact_if_due();
        }
        Ok(store)
    }

    /// Replays the journal over the loaded snapshot, if it continues it.
    fn replay_journal(&mut self) -> Result<(), StoreError> {
        let path = self.dir.join(journal::FILE_NAME);
        let Some(replay) = journal::read(&path)? else {
            return Ok(());
        };
        if replay.generation < self.generation {
            tracing::info!(
                "{}: generation {} is already folded into the snapshot (generation {}); ignoring it",
                path.display(),
                replay.generation,
                self.generation
            );
            self.report.stale_journal_ignored = true;
            return Ok(());
        }
        if replay.generation > self.generation {
            tracing::warn!(
                "{}: generation {} is newer than the snapshot's ({}): the snapshot was replaced or lost; \
                 replaying the journal over it anyway",
                path.display(),
                replay.generation,
                self.generation
            );
            self.generation = replay.generation;
        }
        for line in &replay.corrupt_lines {
            tracing::warn!(
                "{}: line {line} has a bad checksum or content; ignoring it",
                path.display()
            );
        }
        if replay.torn_bytes > 0 {
            tracing::warn!(
                "{}: ignoring and cutting off a partial last line ({} bytes) left by a crash",
                path.display(),
                replay.torn_bytes
            );
        }
        self.report.journal_records = replay.records.len();
        self.report.corrupt_journal_lines = replay.corrupt_lines;
        self.report.torn_tail_bytes = replay.torn_bytes;
        for record in replay.records {
            self.commit(record);
        }
        self.journal = Some(Journal::reopen(&path, replay.valid_len, replay.lines)?);
        Ok(())
    }

    /// The directory holding the files (`<state_dir>/vstack`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What was found on disk when the database was opened.
    pub fn load_report(&self) -> &LoadReport {
        &self.report
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The record for `mac`, if any.
    pub fn get(&self, mac: Mac) -> Option<&ClientRecord> {
        self.by_mac.get(&mac).and_then(|&i| self.records.get(i))
    }

    /// All records in insertion order; DevNo `n` is the `n`-th (from 1).
    pub fn iter(&self) -> std::slice::Iter<'_, ClientRecord> {
        self.records.iter()
    }

    /// The record carrying `udi`. If several do (a stack whose active member
    /// changed comes back under a new MAC), the one first seen last, the
    /// later DevNo on a tie: the device's current MAC.
    pub fn find_by_udi(&self, udi: &Udi) -> Option<&ClientRecord> {
        self.by_udi.get(udi).and_then(|&i| self.records.get(i))
    }

    /// Adds `record` unless its MAC is already known. `Ok(true)` if added;
    /// the record is on disk when this returns `Ok`.
    pub fn insert_if_missing(&mut self, record: ClientRecord) -> Result<bool, StoreError> {
        let applied = self.apply_batch(vec![Change::insert(record)])?;
        Ok(applied.first() == Some(&Applied::Inserted))
    }

    /// Edits the record for `mac`. `Ok(true)` if the edit changed it (the
    /// change is then on disk), `Ok(false)` if it left it as it was.
    ///
    /// If the edit changes anything but does not itself set `last_change`,
    /// `last_change` becomes the current time.
    pub fn update(
        &mut self,
        mac: Mac,
        edit: impl FnOnce(&mut ClientRecord) + Send,
    ) -> Result<bool, StoreError> {
        let applied = self.apply_batch(vec![Change::update(mac, edit)])?;
        Ok(applied.first() == Some(&Applied::Updated))
    }

    /// Applies `changes` in order with a single flush to disk, and returns
    /// what each did. Either all of them are applied or, on error, none:
    /// an unknown MAC or an edit changing a MAC is refused before anything
    /// is written. (After a crash in the middle, some may be on disk; none
    /// was acknowledged.)
    pub fn apply_batch(&mut self, changes: Vec<Change<'_>>) -> Result<Vec<Applied>, StoreError> {
        let now = crate::clock::unix_secs();
        // New versions of the records touched, in first-touch order.
        let mut staged: Vec<ClientRecord> = Vec::new();
        let mut staged_at: HashMap<Mac, usize> = HashMap::new();
        let mut outcomes = Vec::with_capacity(changes.len());
        for change in changes {
            let outcome = match change {
                Change::InsertIfMissing(record) => {
                    if self.by_mac.contains_key(&record.mac) || staged_at.contains_key(&record.mac)
                    {
                        Applied::AlreadyPresent
                    } else {
                        staged_at.insert(record.mac, staged.len());
                        staged.push(*record);
                        Applied::Inserted
                    }
                }
                Change::Update(mac, edit) => {
                    let current = match staged_at.get(&mac) {
                        Some(&i) => staged.get(i),
                        None => self.get(mac),
                    }
                    .ok_or(StoreError::UnknownMac(mac))?
                    .clone();
                    let mut next = current.clone();
                    edit(&mut next);
                    if next.mac != mac {
                        return Err(StoreError::MacChanged {
                            from: mac,
                            to: next.mac,
                        });
                    }
                    if next == current {
                        Applied::Unchanged
                    } else {
                        if next.last_change == current.last_change {
                            next.last_change = now;
                        }
                        match staged_at.get(&mac) {
                            Some(&i) => staged[i] = next,
                            None => {
                                staged_at.insert(mac, staged.len());
                                staged.push(next);
                            }
                        }
                        Applied::Updated
                    }
                }
            };
            outcomes.push(outcome);
        }
        if staged.is_empty() {
            return Ok(outcomes);
        }
        let lines: Vec<String> = staged.iter().map(line::encode).collect();
        self.append(&lines)?;
        for record in staged {
            self.commit(record);
        }
        self.compact_if_due();
        Ok(outcomes)
    }

    /// Rewrites the snapshot from memory and starts an empty journal.
    /// Runs by itself when the journal grows; the daemon may also call it
    /// at shutdown so the snapshot file is current.
    pub fn compact(&mut self) -> Result<(), StoreError> {
        let journal = self.start_generation()?;
        self.journal = Some(journal);
        Ok(())
    }

    /// Writes the snapshot of the next generation and creates its empty
    /// journal. If the snapshot cannot be written, nothing changes.
    fn start_generation(&mut self) -> Result<Journal, StoreError> {
        let next = self.generation + 1;
        snapshot::write(&self.dir, next, &self.records)?;
        // From here the old journal is folded into the snapshot: never
        // append to it again, even if creating the new one fails.
        self.generation = next;
        self.journal = None;
        let journal = Journal::create(&self.dir, next)?;
        self.compaction_retry_at = 0;
        tracing::debug!(
            "{}: generation {next}, {} record(s) in the snapshot",
            self.dir.display(),
            self.records.len()
        );
        Ok(journal)
    }

    /// The journal to append to; if it is unusable, compacts to get a fresh one.
    fn usable_journal(&mut self) -> Result<&mut Journal, StoreError> {
        let journal = match self.journal.take() {
            Some(journal) => journal,
            None => self.start_generation()?,
        };
        Ok(self.journal.insert(journal))
    }

    /// Appends `lines` to the journal and flushes them. On failure the
    /// journal is cut back, or, if that fails too, marked unusable.
    fn append(&mut self, lines: &[String]) -> Result<(), StoreError> {
        let journal = self.usable_journal()?;
        match journal.append(lines) {
            Ok(()) => {
                tracing::debug!(
                    "{}: {} line(s) appended, {} in all",
                    journal.path().display(),
                    lines.len(),
                    journal.lines()
                );
                Ok(())
            }
            Err(failure) => {
                let path = journal.path().to_path_buf();
                if !failure.rolled_back {
                    tracing::warn!(
                        "{}: could not cut off a failed append; the next change rewrites the database",
                        path.display()
                    );
                    self.journal = None;
                }
                Err(StoreError::Io {
                    action: "append to",
                    path,
                    source: failure.source,
                })
            }
        }
    }

    /// Whether the next change (one more journal line) rewrites the
    /// database: a compaction, which writes and syncs the whole snapshot.
    /// Any other change is one `write` into the page cache (the journal's
    /// flushes run on their own thread), which never waits for the disk.
    pub fn next_change_compacts(&self) -> bool {
        match self.journal.as_ref().map(Journal::lines) {
            None => true,
            Some(lines) => self.compaction_due(lines.saturating_add(1)),
        }
    }

    /// Whether a journal of `lines` lines is due for compaction.
    fn compaction_due(&self, lines: usize) -> bool {
        let threshold = self.options.compact_min_lines.max(2 * self.records.len());
        lines > threshold && lines >= self.compaction_retry_at
    }

    /// Compacts if the journal has grown past its threshold. A failure is
    /// logged, not returned: the change that triggered it is already safe
    /// in the journal.
    fn compact_if_due(&mut self) {
        let Some(lines) = self.journal.as_ref().map(Journal::lines) else {
            return;
        };
        if !self.compaction_due(lines) {
            return;
        }
        if let Err(e) = self.compact() {
            self.compaction_retry_at = lines + self.options.compact_min_lines;
            tracing::warn!("compacting the proxy database failed, will retry later: {e}");
        }
    }

    /// Puts `record` into memory, replacing the one with its MAC or adding
    /// it at the end, and keeps the UDI index right.
    fn commit(&mut self, record: ClientRecord) {
        let mac = record.mac;
        let (index, old_udi) = match self.by_mac.get(&mac) {
            Some(&i) => (i, std::mem::replace(&mut self.records[i], record).udi),
            None => {
                let i = self.records.len();
                self.by_mac.insert(mac, i);
                self.records.push(record);
                (i, None)
            }
        };
        let new_udi = self.records[index].udi.clone();
        if let Some(old) = old_udi {
            if new_udi.as_ref() != Some(&old) && self.by_udi.get(&old) == Some(&index) {
                self.by_udi.remove(&old);
                if let Some(other) = self.best_holder(&old) {
                    self.by_udi.insert(old, other);
                }
            }
        }
        if let Some(udi) = new_udi {
            let replace = match self.by_udi.get(&udi) {
                Some(&holder) => holder == index || self.rank(index) >= self.rank(holder),
                None => true,
            };
            if replace {
                self.by_udi.insert(udi, index);
            }
        }
    }

    /// Orders records for [`Self::find_by_udi`]: first seen last, then later DevNo.
    fn rank(&self, index: usize) -> (u64, usize) {
        (self.records.get(index).map_or(0, |r| r.first_seen), index)
    }

    /// Scans for the best-ranked record holding `udi`.
    fn best_holder(&self, udi: &Udi) -> Option<usize> {
        (0..self.records.len())
            .filter(|&i| self.records[i].udi.as_ref() == Some(udi))
            .max_by_key(|&i| self.rank(i))
    }
}
