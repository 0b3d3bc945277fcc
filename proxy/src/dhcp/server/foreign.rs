//! The other DHCP servers seen answering on the segment
//! ([`ForeignServers`]): while one is active on a VLAN, the local server
//! stays silent there.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::dataplane::{DataplaneEvent, EventKind};

/// Most foreign servers remembered at once.
pub(super) const MAX_FOREIGN: usize = 256;

/// A DHCP server other than this one, seen answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForeignServer {
    /// Its address (source of its OFFER).
    pub ip: Ipv4Addr,
    /// Its MAC.
    pub mac: [u8; 6],
    /// The VLAN its OFFER came in on.
    pub vlan: u16,
}

/// When a server was last seen, and whether its silence was logged.
#[derive(Debug)]
pub(super) struct Seen {
    mac: [u8; 6],
    last: Instant,
    warned: bool,
}

/// The DHCP servers seen answering on the segment, shared between the
/// daemon (which reports them) and the local server (which stays silent
/// while one is active).
#[derive(Debug)]
pub struct ForeignServers {
    hold: Duration,
    own: Option<Ipv4Addr>,
    seen: Mutex<HashMap<(u16, Ipv4Addr), Seen>>,
}

impl ForeignServers {
    /// An empty set; a server stays active for `hold` after its last OFFER.
    pub fn new(hold: Duration) -> Self {
        Self {
            hold,
            own: None,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Reports of `ip` (the local server's own address) are ignored.
    pub fn with_own_address(mut self, ip: Ipv4Addr) -> Self {
        self.own = Some(ip);
        self
    }

    /// The hold time.
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// A server `ip` (MAC `mac`) offered an address on `vlan` just now.
    pub fn saw(&self, ip: Ipv4Addr, mac: [u8; 6], vlan: u16) {
        if Some(ip) == self.own {
            return;
        }
        let now = Instant::now();
        let mut seen = self.lock();
        if seen.len() >= MAX_FOREIGN && !seen.contains_key(&(vlan, ip)) {
            let hold = self.hold;
            seen.retain(|_, s| now.duration_since(s.last) < hold);
            if seen.len() >= MAX_FOREIGN {
                let oldest = seen.iter().min_by_key(|(_, s)| s.last).map(|(k, _)| *k);
                if let Some(key) = oldest {
                    seen.remove(&key);
                }
            }
        }
        let entry = seen.entry((vlan, ip)).or_insert(Seen {
            mac,
            last: now,
            warned: false,
        });
        if now.duration_since(entry.last) >= self.hold {
            // Gone for a whole hold time: a new episode, warned about anew.
            entry.warned = false;
        }
        entry.mac = mac;
        entry.last = now;
    }

    /// Feeds a dataplane event; only `DhcpServerSeen` counts.
    pub fn observe(&self, ev: &DataplaneEvent) {
        if let EventKind::DhcpServerSeen(ip) = ev.kind {
            self.saw(ip, ev.mac, ev.vlan);
        }
    }

    /// The server most recently seen on `vlan` within the hold time.
    pub fn active(&self, vlan: u16) -> Option<ForeignServer> {
        self.active_entry(&mut self.lock(), vlan)
            .map(|(server, _)| server)
    }

    /// Like [`ForeignServers::active`], and whether this is the first time
    /// the local server is silenced by it (then it is marked warned).
    pub(super) fn silencer(&self, vlan: u16) -> Option<(ForeignServer, bool)> {
        let mut seen = self.lock();
        let (server, _) = self.active_entry(&mut seen, vlan)?;
        let entry = seen.get_mut(&(vlan, server.ip))?;
        let first = !entry.warned;
        entry.warned = true;
        Some((server, first))
    }

    fn active_entry(
        &self,
        seen: &mut HashMap<(u16, Ipv4Addr), Seen>,
        vlan: u16,
    ) -> Option<(ForeignServer, Instant)> {
        let now = Instant::now();
        seen.iter()
            .filter(|((v, _), s)| *v == vlan && now.duration_since(s.last) < self.hold)
            .max_by_key(|(_, s)| s.last)
            .map(|((vlan, ip), s)| {
                (
                    ForeignServer {
                        ip: *ip,
                        mac: s.mac,
                        vlan: *vlan,
                    },
                    s.last,
                )
            })
    }

    /// The table of servers seen (a poisoned lock is taken over).
    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<(u16, Ipv4Addr), Seen>> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
