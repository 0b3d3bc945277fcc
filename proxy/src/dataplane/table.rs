//! Typed, shareable access to the kernel's client maps.
//!
//! Two maps, one writer per field:
//! - `CLIENTS` (client MAC -> [`ClientEntry`]) is what XDP learns: it
//!   creates entries, keeps the counters, the address from the ACK and the
//!   learned state (NEW, DISCOVERED). The daemon writes an entry only to
//!   create one the kernel has none of (a client restored from the proxy
//!   database) or to record a lease of its own DHCP server, whose ACK XDP
//!   never sees ([`ClientTable::update`]).
//! - `ADMISSION` (client MAC -> state) is the daemon's alone
//!   ([`ClientTable::set_state`]): admitted, upgrading, not SMI. XDP reads
//!   it and lets it override the learned state.
//!
//! So a state the daemon sets is never undone by XDP, and XDP's counters
//! are never overwritten by a read-modify-write of the daemon.
//!
//! XDP caches the admission state in the client's `CLIENTS` entry, tagged
//! with the admission epoch (`ADMISSION_EPOCH`, the daemon's alone): after
//! each `ADMISSION` write the daemon adds one to the epoch, and every cache
//! read before it is stale. The epoch is bumped once more when a table is
//! made, so entries from before a restart are never believed.
use std::sync::{Arc, Mutex, PoisonError};

use aya::maps::{Array, HashMap, MapData, MapError};
use proxy_common::{ClientEntry, ClientKey, maps};

use super::DataplaneError;

/// The maps behind a [`ClientTable`].
struct Maps {
    clients: HashMap<MapData, ClientKey, ClientEntry>,
    admission: HashMap<MapData, ClientKey, u32>,
    epoch: Array<MapData, u64>,
    /// The epoch last written: the daemon is its one writer, so it need not
    /// read the map back before each bump.
    epoch_now: u64,
}

impl Maps {
    fn new(
        clients: HashMap<MapData, ClientKey, ClientEntry>,
        admission: HashMap<MapData, ClientKey, u32>,
        epoch: Array<MapData, u64>,
    ) -> Result<Self, DataplaneError> {
        let epoch_now = epoch.get(&0, 0).map_err(map_err(maps::ADMISSION_EPOCH))?;
        Ok(Self {
            clients,
            admission,
            epoch,
            epoch_now,
        })
    }

    /// Tells XDP that the admission states it cached may be stale.
    fn bump_epoch(&mut self) -> Result<(), DataplaneError> {
        let next = self.epoch_now.wrapping_add(1);
        self.epoch
            .set(0, next, 0)
            .map_err(map_err(maps::ADMISSION_EPOCH))?;
        self.epoch_now = next;
        Ok(())
    }
}

/// A handle on the client maps (client MAC -> [`ClientEntry`], its state
/// being the daemon's admission where it set one).
///
/// Clones share the map file descriptors. Every call is one or a few
/// `bpf(2)` syscalls; the lock only serialises user-space writers.
#[derive(Clone)]
pub struct ClientTable {
    maps: Arc<Mutex<Maps>>,
}

fn map_err(map: &'static str) -> impl Fn(MapError) -> DataplaneError {
    move |source| DataplaneError::Map { map, source }
}

impl ClientTable {
    /// The daemon's table, made when it loads the program: the one writer
    /// of `ADMISSION` and its epoch.
    pub(super) fn new(
        clients: HashMap<MapData, ClientKey, ClientEntry>,
        admission: HashMap<MapData, ClientKey, u32>,
        epoch: Array<MapData, u64>,
    ) -> Result<Self, DataplaneError> {
        let mut maps = Maps::new(clients, admission, epoch)?;
        maps.bump_epoch()?;
        Ok(Self {
            maps: Arc::new(Mutex::new(maps)),
        })
    }

    /// Opens the pinned maps in `pin_dir` to read them (the CLI, without
    /// loading the program). Only the daemon's table may call
    /// [`ClientTable::set_state`]: the epoch has one writer.
    pub fn from_pin_dir(pin_dir: &std::path::Path) -> Result<Self, DataplaneError> {
        let open =
            |name: &'static str| MapData::from_pin(pin_dir.join(name)).map_err(map_err(name));
        let clients = HashMap::try_from(aya::maps::Map::LruHashMap(open(maps::CLIENTS)?))
            .map_err(map_err(maps::CLIENTS))?;
        let admission = HashMap::try_from(aya::maps::Map::LruHashMap(open(maps::ADMISSION)?))
            .map_err(map_err(maps::ADMISSION))?;
        let epoch = Array::try_from(aya::maps::Map::Array(open(maps::ADMISSION_EPOCH)?))
            .map_err(map_err(maps::ADMISSION_EPOCH))?;
        Ok(Self {
            maps: Arc::new(Mutex::new(Maps::new(clients, admission, epoch)?)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry for `mac`, if the kernel has one, with the daemon's
    /// admission state where it set one.
    pub fn get(&self, mac: [u8; 6]) -> Result<Option<ClientEntry>, DataplaneError> {
        let key = ClientKey::new(mac);
        let m = self.lock();
        let entry = match m.clients.get(&key, 0) {
            Ok(e) => Some(e),
            Err(MapError::KeyNotFound) => None,
            Err(e) => return Err(map_err(maps::CLIENTS)(e)),
        };
        let admission = match m.admission.get(&key, 0) {
            Ok(s) => Some(s),
            Err(MapError::KeyNotFound) => None,
            Err(e) => return Err(map_err(maps::ADMISSION)(e)),
        };
        Ok(match (entry, admission) {
            (Some(mut e), Some(s)) => {
                e.state = s as u8;
                Some(e)
            }
            (Some(e), None) => Some(e),
            (None, Some(s)) => Some(ClientEntry {
                state: s as u8,
                ..ClientEntry::default()
            }),
            (None, None) => None,
        })
    }

    /// Every entry, in the kernel's order, with the daemon's admission
    /// states (a client admitted but evicted from `CLIENTS` comes last).
    pub fn entries(&self) -> Result<Vec<([u8; 6], ClientEntry)>, DataplaneError> {
        let m = self.lock();
        let mut admission = std::collections::HashMap::new();
        for item in m.admission.iter() {
            match item {
                Ok((k, s)) => {
                    admission.insert(k.mac, s as u8);
                }
                Err(MapError::KeyNotFound) => continue,
                Err(e) => return Err(map_err(maps::ADMISSION)(e)),
            }
        }
        let mut out = Vec::new();
        for item in m.clients.iter() {
            match item {
                Ok((k, mut v)) => {
                    if let Some(s) = admission.remove(&k.mac) {
                        v.state = s;
                    }
                    out.push((k.mac, v));
                }
                // The LRU may evict the key between next_key and lookup.
                Err(MapError::KeyNotFound) => continue,
                Err(e) => return Err(map_err(maps::CLIENTS)(e)),
            }
        }
        out.extend(admission.into_iter().map(|(mac, state)| {
            (
                mac,
                ClientEntry {
                    state,
                    ..ClientEntry::default()
                },
            )
        }));
        Ok(out)
    }

    /// Sets the daemon's admission state of `mac` and bumps the admission
    /// epoch (two syscalls; XDP never writes either, so nothing it learns
    /// meanwhile is lost).
    ///
    /// A client the kernel has no entry for (evicted, or known from the
    /// proxy database) also gets an empty learned entry, created only if
    /// still missing (`BPF_NOEXIST`), so that XDP counts its frames.
    pub fn set_state(&self, mac: [u8; 6], state: u8) -> Result<(), DataplaneError> {
        /// `BPF_NOEXIST`: create, never replace.
        const NOEXIST: u64 = 1;
        let key = ClientKey::new(mac);
        let mut m = self.lock();
        m.admission
            .insert(key, u32::from(state), 0)
            .map_err(map_err(maps::ADMISSION))?;
        m.bump_epoch()?;
        if matches!(m.clients.get(&key, 0), Err(MapError::KeyNotFound)) {
            // EEXIST: XDP learned it in between, which is as good.
            let _ = m.clients.insert(key, ClientEntry::default(), NOEXIST);
        }
        Ok(())
    }

    /// Read-modify-write of one learned entry (created zeroed when
    /// missing): only for an entry XDP has not learned (see the module's
    /// comment), since XDP's own updates between the read and the write
    /// would be lost.
    pub fn update(
        &self,
        mac: [u8; 6],
        f: impl FnOnce(&mut ClientEntry),
    ) -> Result<(), DataplaneError> {
        let key = ClientKey::new(mac);
        let mut m = self.lock();
        let mut entry = match m.clients.get(&key, 0) {
            Ok(e) => e,
            Err(MapError::KeyNotFound) => ClientEntry::default(),
            Err(e) => return Err(map_err(maps::CLIENTS)(e)),
        };
        f(&mut entry);
        m.clients
            .insert(key, entry, 0)
            .map_err(map_err(maps::CLIENTS))
    }
}
