//! Crash test of the proxy database.
//!
//! The test re-runs its own binary as a *writer* child (selected by an
//! environment variable) that opens the database and applies numbered
//! operations in a loop, printing `ACK <n>` once operation `n` is
//! acknowledged. The parent counts acknowledgements, kills the child with
//! SIGKILL after a varying number of them (no sleeps anywhere), reopens the
//! database and checks that every acknowledged operation is there, whole,
//! once, in insertion order. Twenty rounds run on the same directory, each
//! child resuming after the last acknowledged operation.
//!
//! Operation `n` is a pure function of `n`: every 8th inserts client
//! `n / 8`, the others rewrite all fields of an earlier client from `n`
//! (host name `seq-<n>`, IP, VLAN, UDI, state, job, a fail reason holding a
//! tab and a line feed). Operations whose `n % 10 == 7` start a batch of
//! five. A small compaction threshold makes compactions frequent, so kills
//! land in them too.
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use proxy::store::{
    Change, ClientRecord, EntryState, JobStatus, Mac, Method, Store, StoreOptions, Transfer,
};
use proxy::udi::Udi;

/// Set in the child's environment: the state directory to write to.
const DIR_ENV: &str = "SMI_STORE_KILL9_DIR";
/// Set in the child's environment: the first operation number to run.
const START_ENV: &str = "SMI_STORE_KILL9_START";
/// Operations per batch.
const BATCH: u64 = 5;
/// Every `INSERT_EVERY`-th operation inserts a client.
const INSERT_EVERY: u64 = 8;
/// After acknowledging an operation `n` with `n % COMPACT_EVERY ==
/// COMPACT_EVERY - 1`, the writer also compacts explicitly.
const COMPACT_EVERY: u64 = 50;
/// Per round: how many acknowledgements to wait for before the kill (0
/// kills at once, possibly while the child is still opening and compacting
/// the database), and whether to then wait for the next acknowledgement
/// followed by an explicit compaction, so the kill lands in it.
const KILLS: [(usize, bool); 20] = [
    (0, false),
    (1, false),
    (7, true),
    (50, false),
    (0, false),
    (120, true),
    (3, false),
    (250, true),
    (33, false),
    (400, true),
    (5, true),
    (90, false),
    (180, true),
    (0, false),
    (60, true),
    (310, false),
    (15, true),
    (140, true),
    (2, false),
    (500, true),
];

fn options() -> StoreOptions {
    StoreOptions {
        compact_min_lines: 16,
    }
}

fn mac(index: u64) -> Mac {
    let b = index.to_be_bytes();
    Mac([0x02, 0x4b, b[4], b[5], b[6], b[7]])
}

/// The client operation `n` touches.
fn target(n: u64) -> u64 {
    if n.is_multiple_of(INSERT_EVERY) {
        n / INSERT_EVERY
    } else {
        n.wrapping_mul(2_654_435_761) % (n / INSERT_EVERY + 1)
    }
}

/// Sets every field but the MAC and `first_seen` from `n`.
fn fill(record: &mut ClientRecord, n: u64) {
    let small = |modulus: u64| usize::try_from(n % modulus).unwrap_or(0);
    record.hostname = format!("seq-{n}");
    record.ip = Some(Ipv4Addr::from(0x0a00_0000 | (n as u32 & 0x00ff_ffff)));
    record.vlan = (n % 4000 + 1) as u16;
    record.udi = Udi::new("WS-C2960-24TT-L", "V01", &format!("FOC{n:08}")).ok();
    record.state = EntryState::ALL[small(EntryState::ALL.len() as u64)];
    record.version = Some(format!("15.0(2)SE{n}"));
    record.job.method = Some(Method::ALL[small(Method::ALL.len() as u64)]);
    record.job.image = Transfer {
        status: JobStatus::ALL[small(JobStatus::ALL.len() as u64)],
        fail_reason: Some(format!("reason {n}\twith a tab\nand a line feed")),
        downloaded_at: Some(n),
    };
    record.job.config.downloaded_at = Some(2 * n);
    record.last_change = n;
}

fn operation(n: u64) -> Change<'static> {
    let index = target(n);
    if n.is_multiple_of(INSERT_EVERY) {
        let mut record = ClientRecord::new(mac(index), n);
        fill(&mut record, n);
        Change::insert(record)
    } else {
        Change::update(mac(index), move |record| fill(record, n))
    }
}

/// The child: applies operations from `START_ENV` on until killed.
#[test]
#[ignore = "the writer role of kill9_keeps_every_acknowledged_write, started by it"]
fn kill9_writer_role() {
    let (Ok(dir), Ok(start)) = (std::env::var(DIR_ENV), std::env::var(START_ENV)) else {
        return;
    };
    let mut n: u64 = start.parse().expect("start number");
    let mut store = Store::open_with(Path::new(&dir), options()).expect("writer opens the store");
    let mut out = std::io::stdout().lock();
    // End the line libtest started ("test kill9_writer_role ... ").
    writeln!(out).expect("stdout");
    loop {
        let count = if n % 10 == 7 { BATCH } else { 1 };
        let changes = (n..n + count).map(operation).collect();
        store.apply_batch(changes).expect("writer applies a change");
        for acked in n..n + count {
            writeln!(out, "ACK {acked}").expect("stdout");
        }
        out.flush().expect("stdout");
        if (n..n + count).any(compacts_after) {
            store.compact().expect("writer compacts");
        }
        n += count;
    }
}

/// What the parent knows: the last acknowledged operation, and for each
/// client the last acknowledged operation that touched it.
#[derive(Default)]
struct Acked {
    last: Option<u64>,
    per_client: HashMap<u64, u64>,
}

impl Acked {
    fn record(&mut self, n: u64) {
        let expected = self.last.map_or(0, |last| last + 1);
        assert_eq!(n, expected, "acknowledgements must arrive in order");
        self.last = Some(n);
        self.per_client.insert(target(n), n);
    }

    fn next(&self) -> u64 {
        self.last.map_or(0, |last| last + 1)
    }
}

/// Whether the writer compacts after acknowledging operation `n`.
fn compacts_after(n: u64) -> bool {
    n % COMPACT_EVERY == COMPACT_EVERY - 1
}

fn parse_ack(line: &str) -> Option<u64> {
    line.strip_prefix("ACK ").and_then(|n| n.parse().ok())
}

/// Runs one child, kills it after `kill_after` acknowledgements (and, if
/// `in_compaction`, right after the next one followed by a compaction), and
/// collects every acknowledgement it printed.
fn run_writer(dir: &Path, acked: &mut Acked, kill_after: usize, in_compaction: bool) {
    let exe = std::env::current_exe().expect("own executable");
    let mut child = Command::new(exe)
        .args([
            "kill9_writer_role",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, dir)
        .env(START_ENV, acked.next().to_string())
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("start the writer");
    let stdout = child.stdout.take().expect("writer stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = 0;
    let mut aligned = !in_compaction;
    while seen < kill_after || !aligned {
        let line = lines
            .next()
            .unwrap_or_else(|| {
                panic!(
                    "writer ended after {seen} acknowledgements: {:?}",
                    child.wait()
                )
            })
            .expect("read writer output");
        if let Some(n) = parse_ack(&line) {
            acked.record(n);
            seen += 1;
            aligned = !in_compaction || (seen >= kill_after && compacts_after(n));
        }
    }
    child.kill().expect("SIGKILL the writer");
    child.wait().expect("reap the writer");
    // Acknowledgements already in the pipe were given before the kill.
    for line in lines {
        if let Some(n) = parse_ack(&line.expect("read writer output")) {
            acked.record(n);
        }
    }
}

/// Reopens the database and checks it against what was acknowledged.
fn verify(dir: &Path, acked: &Acked, round: usize) {
    let store = Store::open_with(dir, options()).expect("reopen after kill");
    let report = store.load_report();
    assert!(
        report.corrupt_journal_lines.is_empty(),
        "round {round}: corrupt journal lines {:?}",
        report.corrupt_journal_lines
    );
    println!(
        "round {round}: {} operations acknowledged, {} clients, torn tail {} bytes, stale journal ignored: {}",
        acked.next(),
        store.len(),
        report.torn_tail_bytes,
        report.stale_journal_ignored
    );
    // Highest operation the child may have started (a whole batch).
    let ceiling = acked.next() + BATCH;
    let must_exist = acked.last.map_or(0, |last| last / INSERT_EVERY + 1);
    assert!(
        store.len() as u64 >= must_exist,
        "round {round}: {} clients, {must_exist} inserts acknowledged",
        store.len()
    );
    for (position, record) in store.iter().enumerate() {
        let index = position as u64;
        // Insertion (DevNo) order, no duplicates, no gaps.
        assert_eq!(
            record.mac,
            mac(index),
            "round {round}: client at position {position}"
        );
        let n: u64 = record
            .hostname
            .strip_prefix("seq-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("round {round}: torn host name {:?}", record.hostname));
        assert_eq!(
            target(n),
            index,
            "round {round}: operation {n} never touched client {index}"
        );
        assert!(
            n < ceiling,
            "round {round}: operation {n} was never started"
        );
        if let Some(&last) = acked.per_client.get(&index) {
            assert!(
                n >= last,
                "round {round}: client {index} lost acknowledged operation {last} (has {n})"
            );
        }
        let mut expected = ClientRecord::new(mac(index), index * INSERT_EVERY);
        fill(&mut expected, n);
        assert_eq!(record, &expected, "round {round}: client {index} is torn");
    }
}

#[test]
fn kill9_keeps_every_acknowledged_write() {
    let dir = scratch_dir();
    let mut acked = Acked::default();
    for (round, &(kill_after, in_compaction)) in KILLS.iter().enumerate() {
        run_writer(&dir, &mut acked, kill_after, in_compaction);
        verify(&dir, &acked, round);
    }
    assert!(
        acked.next() > 1000,
        "only {} operations acknowledged",
        acked.next()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smi-store-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch directory");
    dir
}
