//! The clients the logic knows: identified ones in the proxy database,
//! unidentified ones in a bounded table in memory.
//!
//! The chapter adds a database entry once the proxy has the client's UDI.
//! A startup VLAN is where unknown boxes appear, and any host can send DHCP
//! with any MAC: a record per MAC seen would let a DISCOVER flood grow the
//! database without end. So a client lives in [`Pending`] (at most
//! [`PENDING_MAX`], the oldest evicted first and counted, those without an
//! address before those with one) until an edit
//! gives it a UDI, and only then is written to the database. A client
//! evicted or lost with a restart is not forgotten by the kernel's client
//! map, which the logic reads again at start.
//!
//! A database write is a journal append into the page cache and runs in
//! place; the compaction one may trigger (snapshot, fsync, rename) blocks,
//! and runs through [`blocking`], so a tokio worker hands its other tasks
//! over first instead of stalling them.
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::store::{ClientRecord, Mac, Store};
use crate::udi::Udi;

/// Unidentified clients kept at once.
pub const PENDING_MAX: usize = 16_384;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f`, which may block (a compaction's fsyncs and rename, a scan of
/// the kernel map), so that a worker of a multi-threaded tokio runtime
/// hands its other tasks over first ([`block_in_place`]); elsewhere (a
/// current-thread runtime, no runtime) it simply runs it. The hand-over
/// wakes another thread, so it is kept for what really blocks.
///
/// [`block_in_place`]: tokio::task::block_in_place
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Runs the change `f` on `store`: in place when it is a journal append,
/// through [`blocking`] when it compacts ([`Store::next_change_compacts`]).
fn change<R>(store: &mut Store, f: impl FnOnce(&mut Store) -> R) -> R {
    if store.next_change_compacts() {
        blocking(|| f(store))
    } else {
        f(store)
    }
}

/// Unidentified clients, oldest first out: those the dataplane saw only
/// asking (a DISCOVER flood of random MACs is all of this kind) before
/// those that got an address, so that a flood cannot evict a real switch
/// on its way to identification.
#[derive(Debug, Default)]
struct Pending {
    /// MAC -> record, insertion number.
    records: HashMap<Mac, (ClientRecord, u64)>,
    /// Insertion number -> MAC of the clients without an address, for
    /// eviction in age order.
    asking: BTreeMap<u64, Mac>,
    /// The same for the clients with an address.
    addressed: BTreeMap<u64, Mac>,
    next: u64,
}

impl Pending {
    fn order(&mut self, record: &ClientRecord) -> &mut BTreeMap<u64, Mac> {
        if record.ip.is_some() {
            &mut self.addressed
        } else {
            &mut self.asking
        }
    }

    fn remove(&mut self, mac: Mac) -> Option<ClientRecord> {
        let (record, seq) = self.records.remove(&mac)?;
        self.order(&record).remove(&seq);
        Some(record)
    }

    /// Adds `record`; the oldest (without an address first) is evicted
    /// when full (returns whether).
    fn insert(&mut self, record: ClientRecord, cap: usize) -> bool {
        let mut evicted = false;
        if self.records.len() >= cap {
            let oldest = match self.asking.pop_first() {
                Some(oldest) => Some(oldest),
                None => self.addressed.pop_first(),
            };
            if let Some((_, mac)) = oldest {
                self.records.remove(&mac);
                evicted = true;
            }
        }
        self.next += 1;
        let seq = self.next;
        self.order(&record).insert(seq, record.mac);
        self.records.insert(record.mac, (record, seq));
        evicted
    }

    /// Replaces the record of a held client (moving it to the addressed
    /// order if it got an address).
    fn replace(&mut self, record: ClientRecord) {
        let Some((old, seq)) = self.records.remove(&record.mac) else {
            return;
        };
        self.order(&old).remove(&seq);
        self.order(&record).insert(seq, record.mac);
        self.records.insert(record.mac, (record, seq));
    }
}

/// Why an edit of a client was not stored.
#[derive(Debug, thiserror::Error)]
pub enum ClientsError {
    /// The database refused it (a full disk, an I/O error).
    #[error("proxy database: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// Identified clients (the database) and unidentified ones (in memory).
pub struct Clients {
    store: Arc<Mutex<Store>>,
    pending: Mutex<Pending>,
    cap: usize,
    evicted: AtomicU64,
}

impl Clients {
    /// Over the proxy database `store`, at most `cap` unidentified clients.
    pub fn new(store: Arc<Mutex<Store>>, cap: usize) -> Self {
        Self {
            store,
            pending: Mutex::default(),
            cap: cap.max(1),
            evicted: AtomicU64::new(0),
        }
    }

    /// The record of `mac`, wherever it is.
    pub fn get(&self, mac: Mac) -> Option<ClientRecord> {
        if let Some(r) = lock(&self.store).get(mac) {
            return Some(r.clone());
        }
        lock(&self.pending)
            .records
            .get(&mac)
            .map(|(r, _)| r.clone())
    }

    /// Every record: the database's in DevNo order, then the unidentified.
    pub fn all(&self) -> Vec<ClientRecord> {
        let mut all: Vec<ClientRecord> = lock(&self.store).iter().cloned().collect();
        let pending = lock(&self.pending);
        let mut held: Vec<(u64, ClientRecord)> = pending
            .records
            .values()
            .map(|(r, seq)| (*seq, r.clone()))
            .collect();
        held.sort_by_key(|(seq, _)| *seq);
        all.extend(held.into_iter().map(|(_, r)| r));
        all
    }

    /// Adds `record` unless its MAC is known: to the database if it has a
    /// UDI, else to the unidentified. Whether it was added.
    pub fn insert(&self, record: ClientRecord) -> Result<bool, ClientsError> {
        let mut store = lock(&self.store);
        if store.get(record.mac).is_some() {
            return Ok(false);
        }
        if record.udi.is_some() {
            return Ok(change(&mut store, |s| s.insert_if_missing(record))?);
        }
        let mut pending = lock(&self.pending);
        if pending.records.contains_key(&record.mac) {
            return Ok(false);
        }
        if pending.insert(record, self.cap) {
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(true)
    }

    /// Edits the record of `mac` (nothing if unknown). An unidentified one
    /// that the edit gives a UDI moves to the database. On a database
    /// error the record stays as it was.
    pub fn update(
        &self,
        mac: Mac,
        edit: impl FnOnce(&mut ClientRecord) + Send,
    ) -> Result<(), ClientsError> {
        let mut store = lock(&self.store);
        if store.get(mac).is_some() {
            change(&mut store, |s| s.update(mac, edit))?;
            return Ok(());
        }
        let mut pending = lock(&self.pending);
        let Some((record, _)) = pending.records.get(&mac) else {
            return Ok(());
        };
        let mut next = record.clone();
        edit(&mut next);
        if next.udi.is_some() {
            change(&mut store, |s| s.insert_if_missing(next))?;
            pending.remove(mac);
        } else {
            pending.replace(next);
        }
        Ok(())
    }

    /// The MAC the device with `udi` has now (see [`Store::find_by_udi`]).
    pub fn owner_of(&self, udi: &Udi) -> Option<Mac> {
        lock(&self.store).find_by_udi(udi).map(|r| r.mac)
    }

    /// The MACs of the identified records that `pick` selects.
    pub fn identified_where(&self, pick: impl Fn(&ClientRecord) -> bool) -> Vec<Mac> {
        lock(&self.store)
            .iter()
            .filter(|r| pick(r))
            .map(|r| r.mac)
            .collect()
    }

    /// Unidentified clients held now.
    pub fn pending(&self) -> usize {
        lock(&self.pending).records.len()
    }

    /// Unidentified clients evicted to make room, since start.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let p = std::env::temp_dir().join(format!(
                "smi-clients-{name}-{}-{}",
                std::process::id(),
                rand::random::<u32>()
            ));
            std::fs::create_dir_all(&p).expect("temp dir");
            Self(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn mac(n: u32) -> Mac {
        let [_, a, b, c] = n.to_be_bytes();
        Mac([2, 0, 0, a, b, c])
    }

    #[test]
    fn blocking_runs_in_every_context() {
        assert_eq!(blocking(|| 1), 1);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .expect("runtime");
        // On a worker, in a blocking thread, and in a block_on from one
        // (the control socket's path to Core::stop).
        assert_eq!(rt.block_on(async { blocking(|| 2) }), 2);
        let nested = rt.block_on(async {
            tokio::spawn(async { blocking(|| 3) }).await.expect("task")
                + tokio::task::spawn_blocking(|| {
                    tokio::runtime::Handle::current().block_on(async { blocking(|| 4) })
                })
                .await
                .expect("blocking task")
        });
        assert_eq!(nested, 7);
        let current = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        assert_eq!(current.block_on(async { blocking(|| 5) }), 5);
    }

    #[test]
    fn a_flood_of_unknown_macs_stays_in_memory_and_bounded() {
        let dir = TempDir::new("flood");
        let store = Arc::new(Mutex::new(Store::open(&dir.0).expect("store")));
        let clients = Clients::new(store.clone(), 100);
        for n in 0..1_000 {
            assert!(
                clients
                    .insert(ClientRecord::new(mac(n), 1))
                    .expect("insert")
            );
        }
        assert_eq!(clients.pending(), 100);
        assert_eq!(clients.evicted(), 900);
        assert!(clients.get(mac(0)).is_none(), "the oldest went first");
        assert!(clients.get(mac(999)).is_some());
        assert_eq!(lock(&store).len(), 0, "nothing written to the database");
        // Identified: it moves to the database, and stays there.
        let udi: Udi = "PID:WS-C2960-24TT-L,VID:V01,SN:FOC1234X000"
            .parse()
            .expect("udi");
        clients
            .update(mac(999), |r| r.udi = Some(udi.clone()))
            .expect("update");
        assert_eq!(clients.pending(), 99);
        assert_eq!(lock(&store).len(), 1);
        assert_eq!(clients.owner_of(&udi), Some(mac(999)));
        clients.update(mac(999), |r| r.vlan = 7).expect("update");
        assert_eq!(clients.get(mac(999)).map(|r| r.vlan), Some(7));
        assert!(
            !clients
                .insert(ClientRecord::new(mac(999), 2))
                .expect("insert")
        );
        assert_eq!(clients.all().len(), 100);
    }

    #[test]
    fn a_flood_does_not_evict_a_client_with_an_address() {
        let dir = TempDir::new("flood-addressed");
        let store = Arc::new(Mutex::new(Store::open(&dir.0).expect("store")));
        let clients = Clients::new(store, 100);
        let switch = mac(5_000);
        assert!(
            clients
                .insert(ClientRecord::new(switch, 1))
                .expect("insert")
        );
        clients
            .update(switch, |r| {
                r.ip = Some(std::net::Ipv4Addr::new(192, 0, 2, 100))
            })
            .expect("update");
        for n in 0..1_000 {
            clients
                .insert(ClientRecord::new(mac(n), 1))
                .expect("insert");
        }
        assert_eq!(clients.pending(), 100);
        assert!(
            clients.get(switch).is_some(),
            "the addressed client outlived the flood"
        );
        assert!(clients.get(mac(899)).is_none() && clients.get(mac(999)).is_some());
    }
}
