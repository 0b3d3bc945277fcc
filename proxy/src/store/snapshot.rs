//! The snapshot `smi_pnp_proxy_db.txt`: every record, one per line, under a
//! short comment header. It is only ever replaced whole (written to a
//! `.tmp` file, flushed, renamed), so it is never torn; a line that does not
//! parse is an error, not something to skip. Example (tabs shown as two
//! spaces):
//!
//! ```text
//! # smi-pnp-proxy database: one client per line, tab-separated key=value fields.
//! # format=1 generation=4 entries=2
//! # Newer changes are in smi_pnp_proxy_db.journal; do not edit while the daemon runs.
//! mac=001e.f76d.af80  udi=PID:WS-C3750E-48TD,VID:V01,SN:FDO1152V10R  ip=5.1.1.4  ...
//! mac=0022.5699.c800  hostname=Switch  vlan=1  state=no-state  ...
//! ```
use std::fs;
use std::io::{self, Write as _};
use std::path::Path;

use super::error::{StoreError, io_error};
use super::files;
use super::journal;
use super::line;
use super::record::ClientRecord;

/// File name of the snapshot inside the `vstack` directory.
pub const FILE_NAME: &str = "smi_pnp_proxy_db.txt";

/// The only format this code reads and writes.
const FORMAT: u64 = 1;

/// A snapshot as read from disk.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// Which journal generation continues this snapshot.
    pub generation: u64,
    /// The records, in DevNo order.
    pub records: Vec<ClientRecord>,
}

/// Atomically replaces the snapshot in `dir` with `records`.
pub(crate) fn write(
    dir: &Path,
    generation: u64,
    records: &[ClientRecord],
) -> Result<(), StoreError> {
    files::replace(dir, FILE_NAME, |out| {
        writeln!(
            out,
            "# smi-pnp-proxy database: one client per line, tab-separated key=value fields."
        )?;
        writeln!(
            out,
            "# format={FORMAT} generation={generation} entries={}",
            records.len()
        )?;
        writeln!(
            out,
            "# Newer changes are in {}; do not edit while the daemon runs.",
            journal::FILE_NAME
        )?;
        for record in records {
            writeln!(out, "{}", line::encode(record))?;
        }
        Ok(())
    })
}

/// Reads the snapshot at `path`; `None` if there is none yet.
pub(crate) fn read(path: &Path) -> Result<Option<Snapshot>, StoreError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", path)(e)),
    };
    let bad_file = |reason: String| StoreError::BadFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut header: Option<(u64, usize)> = None;
    let mut records = Vec::new();
    for (index, text_line) in text.lines().enumerate() {
        if let Some(comment) = text_line.strip_prefix('#') {
            if let Some(meta) = parse_meta(comment) {
                header = Some(meta.map_err(bad_file)?);
            }
            continue;
        }
        let record = line::decode(text_line).map_err(|source| StoreError::BadLine {
            path: path.to_path_buf(),
            line: index + 1,
            source,
        })?;
        records.push(record);
    }
    let (generation, entries) = header.ok_or_else(|| {
        bad_file("no \"# format=1 generation=N entries=N\" header line".to_owned())
    })?;
    if entries != records.len() {
        return Err(bad_file(format!(
            "header says {entries} entries, the file holds {}",
            records.len()
        )));
    }
    Ok(Some(Snapshot {
        generation,
        records,
    }))
}

/// Reads the `format=1 generation=G entries=N` comment. `None` if `comment`
/// is some other comment; `Some(Err)` if it is this one but malformed.
fn parse_meta(comment: &str) -> Option<Result<(u64, usize), String>> {
    let comment = comment.trim();
    if !comment.starts_with("format=") {
        return None;
    }
    let mut format = None;
    let mut generation = None;
    let mut entries = None;
    for word in comment.split_whitespace() {
        match word.split_once('=') {
            Some(("format", v)) => format = v.parse::<u64>().ok(),
            Some(("generation", v)) => generation = v.parse::<u64>().ok(),
            Some(("entries", v)) => entries = v.parse::<usize>().ok(),
            _ => {}
        }
    }
    Some(match (format, generation, entries) {
        (Some(FORMAT), Some(generation), Some(entries)) => Ok((generation, entries)),
        (Some(other), _, _) if other != FORMAT => {
            Err(format!("format {other} is not supported (only {FORMAT})"))
        }
        _ => Err(format!("malformed header line {comment:?}")),
    })
}
