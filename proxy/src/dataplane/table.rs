//! Typed, shareable access to the kernel's client map.
use std::sync::{Arc, Mutex, PoisonError};

use aya::maps::{HashMap, MapData, MapError};
use proxy_common::{ClientEntry, ClientKey, maps};

use super::DataplaneError;

/// A handle on the `CLIENTS` map (client MAC -> [`ClientEntry`]).
///
/// Clones share one map file descriptor. Every call is one or a few
/// `bpf(2)` syscalls; the lock only serialises user-space writers.
#[derive(Clone)]
pub struct ClientTable {
    map: Arc<Mutex<HashMap<MapData, ClientKey, ClientEntry>>>,
}

fn map_err(source: MapError) -> DataplaneError {
    DataplaneError::Map {
        map: maps::CLIENTS,
        source,
    }
}

impl ClientTable {
    pub(super) fn new(map: HashMap<MapData, ClientKey, ClientEntry>) -> Self {
        Self {
            map: Arc::new(Mutex::new(map)),
        }
    }

    /// Opens the pinned map at `path` (e.g. for the CLI, without loading the program).
    pub fn from_pin(path: &std::path::Path) -> Result<Self, DataplaneError> {
        let data = MapData::from_pin(path).map_err(map_err)?;
        let map = HashMap::try_from(aya::maps::Map::LruHashMap(data)).map_err(map_err)?;
        Ok(Self::new(map))
    }

    /// The entry for `mac`, if the kernel has one.
    pub fn get(&self, mac: [u8; 6]) -> Result<Option<ClientEntry>, DataplaneError> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(&ClientKey::new(mac), 0) {
            Ok(e) => Ok(Some(e)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Every entry, in the kernel's order.
    pub fn entries(&self) -> Result<Vec<([u8; 6], ClientEntry)>, DataplaneError> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        for item in map.iter() {
            match item {
                Ok((k, v)) => out.push((k.mac, v)),
                // The LRU may evict the key between next_key and lookup.
                Err(MapError::KeyNotFound) => continue,
                Err(e) => return Err(map_err(e)),
            }
        }
        Ok(out)
    }

    /// Sets the state of `mac`, creating the entry if the kernel has none
    /// (e.g. after LRU eviction, or a client known from the proxy database).
    /// Other fields written by XDP are kept.
    pub fn set_state(&self, mac: [u8; 6], state: u8) -> Result<(), DataplaneError> {
        self.update(mac, |e| e.state = state)
    }

    /// Read-modify-write of one entry (created zeroed when missing).
    pub fn update(
        &self,
        mac: [u8; 6],
        f: impl FnOnce(&mut ClientEntry),
    ) -> Result<(), DataplaneError> {
        let key = ClientKey::new(mac);
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let mut entry = match map.get(&key, 0) {
            Ok(e) => e,
            Err(MapError::KeyNotFound) => ClientEntry::default(),
            Err(e) => return Err(map_err(e)),
        };
        f(&mut entry);
        map.insert(key, entry, 0).map_err(map_err)
    }
}
