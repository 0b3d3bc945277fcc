//! Unit tests of the proxy database: semantics, reloading, damaged
//! journals, compaction and failing disks.
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::journal::{self, Journal, Sink};
use super::*;

/// A scratch directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("smi-store-{}-{label}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create test directory");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn journal(&self) -> PathBuf {
        self.0.join(DIR_NAME).join(journal::FILE_NAME)
    }

    fn snapshot(&self) -> PathBuf {
        self.0.join(DIR_NAME).join(snapshot::FILE_NAME)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn mac(n: u32) -> Mac {
    let b = n.to_be_bytes();
    Mac([0x02, 0x00, b[0], b[1], b[2], b[3]])
}

fn client(n: u32) -> ClientRecord {
    let mut record = ClientRecord::new(mac(n), 1_300_000_000 + u64::from(n));
    record.ip = Some(Ipv4Addr::from(0x0a00_0000 + n));
    record.udi = Udi::new("WS-C2960-24TT-L", "V01", &format!("FOC{n:08}")).ok();
    record
}

fn open(dir: &TempDir) -> Store {
    Store::open(dir.path()).expect("open store")
}

fn contents(store: &Store) -> Vec<ClientRecord> {
    store.iter().cloned().collect()
}

#[test]
fn insert_if_missing_never_duplicates() {
    let dir = TempDir::new("insert");
    let mut store = open(&dir);
    assert!(store.is_empty());
    assert_eq!(store.insert_if_missing(client(1)).ok(), Some(true));
    let mut again = client(1);
    again.hostname = "Other".to_owned();
    assert_eq!(store.insert_if_missing(again).ok(), Some(false));
    assert_eq!(store.len(), 1);
    assert_eq!(
        store.get(mac(1)).map(|r| r.hostname.as_str()),
        Some("Switch")
    );
    drop(store);
    let store = open(&dir);
    assert_eq!(store.len(), 1);
}

#[test]
fn reload_after_reopen_keeps_order_and_fields() {
    let dir = TempDir::new("reload");
    let mut store = open(&dir);
    for n in [5, 3, 9, 1] {
        store.insert_if_missing(client(n)).expect("insert");
    }
    let changed = store
        .update(mac(3), |r| {
            r.state = EntryState::Hello;
            r.hostname = "tab\there".to_owned();
            r.job.method = Some(Method::ImageUpgrade);
            r.job.image.status = JobStatus::Upgrading;
        })
        .expect("update");
    assert!(changed);
    let before = contents(&store);
    drop(store);

    let store = open(&dir);
    assert_eq!(contents(&store), before);
    let order: Vec<Mac> = store.iter().map(|r| r.mac).collect();
    assert_eq!(order, vec![mac(5), mac(3), mac(9), mac(1)]);
    assert_eq!(store.load_report().journal_records, 5);
    let udi = client(9).udi.expect("udi");
    assert_eq!(store.find_by_udi(&udi).map(|r| r.mac), Some(mac(9)));
}

#[test]
fn update_of_unknown_mac_or_mac_change_is_refused() {
    let dir = TempDir::new("refuse");
    let mut store = open(&dir);
    store.insert_if_missing(client(1)).expect("insert");
    assert!(matches!(
        store.update(mac(2), |r| r.vlan = 9),
        Err(StoreError::UnknownMac(_))
    ));
    assert!(matches!(
        store.update(mac(1), |r| r.mac = mac(7)),
        Err(StoreError::MacChanged { .. })
    ));
    assert_eq!(store.get(mac(1)), Some(&client(1)));
}

#[test]
fn unchanged_update_writes_nothing() {
    let dir = TempDir::new("unchanged");
    let mut store = open(&dir);
    store.insert_if_missing(client(1)).expect("insert");
    let size = fs::metadata(dir.journal()).map(|m| m.len()).ok();
    assert_eq!(store.update(mac(1), |r| r.vlan = 1).ok(), Some(false));
    assert_eq!(fs::metadata(dir.journal()).map(|m| m.len()).ok(), size);
}

#[test]
fn update_stamps_last_change_unless_the_edit_sets_it() {
    let dir = TempDir::new("stamp");
    let mut store = open(&dir);
    store.insert_if_missing(client(1)).expect("insert");
    store.update(mac(1), |r| r.vlan = 7).expect("update");
    let stamped = store.get(mac(1)).map_or(0, |r| r.last_change);
    assert!(stamped > client(1).last_change);
    store
        .update(mac(1), |r| {
            r.vlan = 8;
            r.last_change = 42;
        })
        .expect("update");
    assert_eq!(store.get(mac(1)).map(|r| r.last_change), Some(42));
}

#[test]
fn batch_is_applied_whole_or_not_at_all() {
    let dir = TempDir::new("batch");
    let mut store = open(&dir);
    let applied = store
        .apply_batch(vec![
            Change::insert(client(1)),
            Change::update(mac(1), |r| r.state = EntryState::Hello),
            Change::insert(client(1)),
            Change::insert(client(2)),
            Change::update(mac(2), |r| r.vlan = 1),
        ])
        .expect("batch");
    assert_eq!(
        applied,
        vec![
            Applied::Inserted,
            Applied::Updated,
            Applied::AlreadyPresent,
            Applied::Inserted,
            Applied::Unchanged
        ]
    );
    // One line per record touched, all flushed together.
    assert_eq!(store.journal.as_ref().map(Journal::lines), Some(2));

    let refused = store.apply_batch(vec![
        Change::insert(client(3)),
        Change::update(mac(99), |r| r.vlan = 2),
    ]);
    assert!(matches!(refused, Err(StoreError::UnknownMac(_))));
    assert_eq!(store.len(), 2);
    assert_eq!(store.journal.as_ref().map(Journal::lines), Some(2));
    drop(store);
    let store = open(&dir);
    assert_eq!(store.get(mac(1)).map(|r| r.state), Some(EntryState::Hello));
    assert_eq!(store.len(), 2);
}

#[test]
fn torn_journal_tail_is_ignored_and_cut_off() {
    let dir = TempDir::new("torn");
    let mut store = open(&dir);
    store.insert_if_missing(client(1)).expect("insert");
    store.insert_if_missing(client(2)).expect("insert");
    let before = contents(&store);
    drop(store);

    // A crash in the middle of an append: half a line, no line feed.
    let whole = line::frame(&line::encode(&client(3)));
    let good_len = fs::metadata(dir.journal())
        .map(|m| m.len())
        .expect("journal size");
    let mut file = OpenOptions::new()
        .append(true)
        .open(dir.journal())
        .expect("open journal");
    file.write_all(&whole.as_bytes()[..whole.len() / 2])
        .expect("write half a line");
    drop(file);

    let mut store = open(&dir);
    assert_eq!(contents(&store), before);
    assert_eq!(
        store.load_report().torn_tail_bytes,
        (whole.len() / 2) as u64
    );
    assert_eq!(
        fs::metadata(dir.journal()).map(|m| m.len()).ok(),
        Some(good_len)
    );

    // Appending after the cut gives clean lines.
    store.insert_if_missing(client(4)).expect("insert");
    drop(store);
    let store = open(&dir);
    assert_eq!(store.len(), 3);
    assert!(store.load_report().corrupt_journal_lines.is_empty());
}

#[test]
fn corrupted_crc_line_is_skipped_with_a_warning() {
    // Damage is reported.
    let warnings = crate::logging::testing::capture(crate::logging::LogFormat::Plain, "warn");
    let _default = tracing::dispatcher::set_default(&warnings.dispatch);
    let dir = TempDir::new("crc");
    let mut store = open(&dir);
    for n in 1..=3 {
        store.insert_if_missing(client(n)).expect("insert");
    }
    drop(store);

    // Flip one character in the second record line (line 3 of the file).
    let text = fs::read_to_string(dir.journal()).expect("read journal");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[2] = lines[2].replace("hostname=Switch", "hostname=Swatch");
    fs::write(dir.journal(), lines.join("\n") + "\n").expect("write journal");

    let store = open(&dir);
    assert_eq!(store.len(), 2);
    assert!(store.get(mac(2)).is_none());
    assert_eq!(store.load_report().corrupt_journal_lines, vec![3]);
    let needle = format!("{}: line 3 has a bad checksum", dir.journal().display());
    let written = warnings.out.take();
    assert!(
        written.contains(&needle),
        "no warning containing {needle:?}: {written}"
    );
}

#[test]
fn compaction_keeps_everything() {
    let dir = TempDir::new("compact");
    let options = StoreOptions {
        compact_min_lines: 4,
    };
    let mut store = Store::open_with(dir.path(), options.clone()).expect("open");
    for n in 0..10 {
        store.insert_if_missing(client(n)).expect("insert");
    }
    for round in 0..5u16 {
        for n in 0..10 {
            store
                .update(mac(n), |r| r.vlan = 100 + round)
                .expect("update");
        }
    }
    assert!(store.generation >= 3, "generation {}", store.generation);
    let journal_lines = store.journal.as_ref().map_or(usize::MAX, Journal::lines);
    assert!(journal_lines <= 20, "journal has {journal_lines} lines");
    let before = contents(&store);
    drop(store);

    let snapshot_text = fs::read_to_string(dir.snapshot()).expect("read snapshot");
    assert!(snapshot_text.starts_with("# smi-pnp-proxy database"));
    assert!(snapshot_text.contains(" entries=10"));

    let store = Store::open_with(dir.path(), options).expect("reopen");
    assert_eq!(contents(&store), before);
    assert!(store.iter().all(|r| r.vlan == 104));
}

#[test]
fn next_change_compacts_says_which_change_rewrites_the_database() {
    let dir = TempDir::new("predict");
    let options = StoreOptions {
        compact_min_lines: 4,
    };
    let mut store = Store::open_with(dir.path(), options).expect("open");
    store.insert_if_missing(client(0)).expect("insert");
    // Every change: the prediction made before it must match what it did.
    for round in 0..40u16 {
        let predicted = store.next_change_compacts();
        let generation = store.generation;
        store
            .update(mac(0), |r| r.vlan = 100 + round)
            .expect("update");
        assert_eq!(
            store.generation != generation,
            predicted,
            "change {round}: predicted a compaction: {predicted}"
        );
    }
    assert!(store.generation >= 5, "generation {}", store.generation);
}

#[test]
fn stale_journal_after_crash_between_renames_is_ignored() {
    let dir = TempDir::new("stale");
    let mut store = open(&dir);
    store.insert_if_missing(client(1)).expect("insert");
    store
        .update(mac(1), |r| r.state = EntryState::Done)
        .expect("update");
    let before = contents(&store);
    let generation = store.generation;
    drop(store);

    // The snapshot of the next generation made it, the new journal did not.
    snapshot::write(&dir.path().join(DIR_NAME), generation + 1, &before).expect("write snapshot");

    let store = open(&dir);
    assert!(store.load_report().stale_journal_ignored);
    assert_eq!(contents(&store), before);
    assert_eq!(store.generation, generation + 2);
}

#[test]
fn leftover_tmp_files_from_an_interrupted_rewrite_are_removed() {
    let dir = TempDir::new("tmp");
    let mut store = open(&dir);
    store.insert_if_missing(client(1)).expect("insert");
    drop(store);
    // A crash while writing the next snapshot and journal: half-written .tmp files.
    let vstack = dir.path().join(DIR_NAME);
    fs::write(
        vstack.join("smi_pnp_proxy_db.txt.tmp"),
        "# smi-pnp-proxy database\nmac=02",
    )
    .expect("write");
    fs::write(vstack.join("smi_pnp_proxy_db.journal.tmp"), "# smi-pnp").expect("write");
    let store = open(&dir);
    assert_eq!(store.len(), 1);
    assert!(!vstack.join("smi_pnp_proxy_db.txt.tmp").exists());
    assert!(!vstack.join("smi_pnp_proxy_db.journal.tmp").exists());
}

#[test]
fn store_can_move_to_a_blocking_task() {
    fn assert_send<T: Send>() {}
    assert_send::<Store>();
    assert_send::<Change<'static>>();
}

#[test]
fn second_open_is_refused_while_locked() {
    let dir = TempDir::new("lock");
    let store = open(&dir);
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::Locked { .. })
    ));
    drop(store);
    assert!(Store::open(dir.path()).is_ok());
}

#[test]
fn damaged_snapshot_is_an_error_not_a_silent_loss() {
    let dir = TempDir::new("badsnap");
    let mut store = open(&dir);
    store.insert_if_missing(client(1)).expect("insert");
    store.compact().expect("compact");
    drop(store);
    let text = fs::read_to_string(dir.snapshot()).expect("read snapshot");
    fs::write(dir.snapshot(), text.replace("vlan=1", "vlan=one")).expect("write");
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::BadLine { line: 4, .. })
    ));
    fs::write(dir.snapshot(), text.replace("entries=1", "entries=2")).expect("write");
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::BadFile { .. })
    ));
}

#[test]
fn full_disk_dev_full_leaves_memory_and_disk_consistent() {
    let dir = TempDir::new("devfull");
    let mut store = open(&dir);
    store.insert_if_missing(client(1)).expect("insert");
    let before = contents(&store);

    // /dev/full fails every write with ENOSPC, and cannot be truncated.
    let full = OpenOptions::new()
        .append(true)
        .open("/dev/full")
        .expect("open /dev/full");
    store.journal = Some(Journal::with_sink(
        Box::new(full),
        Path::new("/dev/full"),
        0,
        0,
    ));
    let err = store.insert_if_missing(client(2));
    match err {
        Err(StoreError::Io { source, .. }) => assert_eq!(source.raw_os_error(), Some(libc::ENOSPC)),
        other => panic!("expected ENOSPC, got {other:?}"),
    }
    assert_eq!(contents(&store), before);
    assert!(
        store.journal.is_none(),
        "an un-rolled-back journal must not be reused"
    );

    // Space is back: the next change rewrites everything and goes through.
    store
        .insert_if_missing(client(3))
        .expect("insert after the failure");
    drop(store);
    let store = open(&dir);
    let macs: Vec<Mac> = store.iter().map(|r| r.mac).collect();
    assert_eq!(macs, vec![mac(1), mac(3)]);
}

/// A journal file that accepts only `budget` more bytes, then fails with
/// ENOSPC after writing what fits, as a filling disk does.
struct FillingDisk {
    file: File,
    budget: usize,
}

impl Sink for FillingDisk {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let fits = bytes.len().min(self.budget);
        self.file.write_all(&bytes[..fits])?;
        self.budget -= fits;
        if fits < bytes.len() {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
}

#[test]
fn full_disk_partial_write_is_rolled_back() {
    let dir = TempDir::new("partial");
    let mut store = open(&dir);
    store.insert_if_missing(client(1)).expect("insert");
    let before = contents(&store);
    let len = fs::metadata(dir.journal())
        .map(|m| m.len())
        .expect("journal size");
    let lines = store.journal.as_ref().map_or(0, Journal::lines);
    let file = OpenOptions::new()
        .append(true)
        .open(dir.journal())
        .expect("open journal");
    let sink = FillingDisk { file, budget: 30 };
    store.journal = Some(Journal::with_sink(
        Box::new(sink),
        &dir.journal(),
        len,
        lines,
    ));

    let batch = vec![Change::insert(client(2)), Change::insert(client(3))];
    assert!(matches!(
        store.apply_batch(batch),
        Err(StoreError::Io { .. })
    ));
    assert_eq!(contents(&store), before);
    assert!(
        store.journal.is_some(),
        "a rolled-back journal stays usable"
    );
    assert_eq!(fs::metadata(dir.journal()).map(|m| m.len()).ok(), Some(len));
    drop(store);
    let store = open(&dir);
    assert_eq!(contents(&store), before);
    assert_eq!(store.load_report().torn_tail_bytes, 0);
}

#[test]
fn find_by_udi_prefers_the_holder_first_seen_last() {
    let dir = TempDir::new("udi");
    let mut store = open(&dir);
    let udi = client(1).udi.expect("udi");
    let mut twin = client(2);
    twin.udi = Some(udi.clone());
    store.insert_if_missing(client(1)).expect("insert");
    store.insert_if_missing(twin).expect("insert");
    assert_eq!(store.find_by_udi(&udi).map(|r| r.mac), Some(mac(2)));
    // A change to the older holder does not make it the device's MAC.
    store.update(mac(1), |r| r.vlan = 7).expect("update");
    assert_eq!(store.find_by_udi(&udi).map(|r| r.mac), Some(mac(2)));
    // The newer holder moves on: the older one is found again.
    store
        .update(mac(2), |r| r.udi = client(2).udi)
        .expect("update");
    assert_eq!(store.find_by_udi(&udi).map(|r| r.mac), Some(mac(1)));
    let other = client(2).udi.expect("udi");
    assert_eq!(store.find_by_udi(&other).map(|r| r.mac), Some(mac(2)));
}

/// Timing of 10,000 inserts (one batch) and 10,000 single updates, each
/// flushed to disk. Run with `cargo test -p proxy --lib store -- --ignored --nocapture`.
#[test]
#[ignore = "timing, not correctness; run by hand"]
fn timing_10000_entries_10000_updates() {
    let dir = TempDir::new("timing");
    let mut store = open(&dir);
    let start = Instant::now();
    let batch = (0..10_000).map(|n| Change::insert(client(n))).collect();
    store.apply_batch(batch).expect("batch insert");
    let inserted = start.elapsed();
    let start = Instant::now();
    for n in 0..10_000u32 {
        store
            .update(mac(n), |r| r.vlan = (n % 4000) as u16 + 2)
            .expect("update");
    }
    let updated = start.elapsed();
    let start = Instant::now();
    drop(store);
    let store = open(&dir);
    let reopened = start.elapsed();
    assert_eq!(store.len(), 10_000);
    println!(
        "10,000 inserts in one batch: {inserted:?}; 10,000 single updates: {updated:?} ({:?} each); reopen: {reopened:?}; generation {}",
        updated / 10_000,
        store.generation
    );
}
