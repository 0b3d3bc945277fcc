//! The local DHCP server's lease table: client MAC -> address with an
//! expiry, allocated from the configured pool, kept on disk as
//! `<state-dir>/vstack/dhcp_leases.txt` next to the proxy database.
//!
//! Allocation ([`LeaseTable::offer`]) is stable per MAC: a client gets the
//! address it had before (even after its lease expired) unless another
//! client took it meanwhile; else the address it asks for (option 50) if
//! that is in the pool and free; else the first address of the pool no
//! client ever had; else the address of the longest-expired lease of another
//! client. An address a client declined (DHCPDECLINE: in use on the segment)
//! is not handed out until its hold ends. A release expires the lease at
//! once but leaves the binding, so the client still gets the same address
//! back if nobody else took it.
//!
//! Times are Unix seconds, passed in by the caller, so the table itself is
//! deterministic.
//!
//! # The file
//!
//! Comment lines start with `#`; every other line is a record, its kind
//! then `key=value` fields separated by tabs (blanks are accepted too;
//! shown as two spaces here):
//!
//! ```text
//! lease  mac=001e.f700.0007  ip=192.0.2.100  expires=1767225600  hostname=Switch
//! declined  ip=192.0.2.101  until=1767222000
//! ```
//!
//! Only bound leases (acknowledged once) and declined addresses are written;
//! offers in flight are not. The file is replaced whole and atomically
//! (written to `dhcp_leases.txt.tmp`, flushed, renamed) after each change.
//! A line that does not parse stops the load with its line number; a lease
//! outside the current pool (the pool was changed) is dropped with a log.
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::config::DhcpPool;
use crate::store::{self, Mac, StoreError};

use super::codec::is_usable_hostname;

/// Name of the lease file in `<state-dir>/vstack/`.
pub const FILE_NAME: &str = "dhcp_leases.txt";
/// Seconds an offered address stays reserved for the client it was offered to.
pub const OFFER_HOLD_SECS: u64 = 60;

/// One client's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The client.
    pub mac: Mac,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Unix seconds at which the lease (or the offer) ends.
    pub expires: u64,
    /// Acknowledged at least once (only those are written to disk).
    pub bound: bool,
    /// The host name handed out with it.
    pub hostname: Option<String>,
}

impl Lease {
    /// Whether the lease has ended at `now`.
    pub fn expired(&self, now: u64) -> bool {
        self.expires <= now
    }
}

/// Why an address could not be given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// Every address of the pool is leased or declined.
    #[error("address pool {start}-{end} is exhausted: every address is leased or declined")]
    PoolExhausted {
        /// First address of the pool.
        start: Ipv4Addr,
        /// Last address of the pool.
        end: Ipv4Addr,
    },
    /// The address is not in the pool.
    #[error("{0} is not in the pool")]
    OutsidePool(Ipv4Addr),
    /// The address is leased to another client.
    #[error("{ip} is leased to {holder}")]
    Taken {
        /// The address.
        ip: Ipv4Addr,
        /// Its holder.
        holder: Mac,
    },
    /// The address was declined and is on hold.
    #[error("{0} was declined (in use on the segment) and is on hold")]
    Declined(Ipv4Addr),
    /// The client holds another address.
    #[error("the client holds {held}, not {asked}")]
    Mismatch {
        /// The address it holds.
        held: Ipv4Addr,
        /// The address it asked for.
        asked: Ipv4Addr,
    },
}

/// Why the lease file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LeaseFileError {
    /// The file exists but could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A line does not parse.
    #[error("{}, line {line}: {reason}", path.display())]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The file could not be written.
    #[error(transparent)]
    Write(#[from] StoreError),
}

/// The leases of one pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseTable {
    start: u32,
    end: u32,
    by_mac: HashMap<[u8; 6], Lease>,
    by_ip: BTreeMap<u32, [u8; 6]>,
    /// Declined address -> Unix seconds its hold ends.
    declined: BTreeMap<u32, u64>,
}

impl LeaseTable {
    /// An empty table for `pool`.
    pub fn new(pool: &DhcpPool) -> Self {
        Self {
            start: u32::from(pool.start),
            end: u32::from(pool.end),
            by_mac: HashMap::new(),
            by_ip: BTreeMap::new(),
            declined: BTreeMap::new(),
        }
    }

    /// Number of clients with an address (offered or bound, live or expired).
    pub fn len(&self) -> usize {
        self.by_mac.len()
    }

    /// Whether no client has an address.
    pub fn is_empty(&self) -> bool {
        self.by_mac.is_empty()
    }

    /// The lease of `mac`, if any.
    pub fn lease_of(&self, mac: &[u8; 6]) -> Option<&Lease> {
        self.by_mac.get(mac)
    }

    /// The client holding `ip`, if any.
    pub fn holder(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.by_ip
            .get(&u32::from(ip))
            .and_then(|mac| self.by_mac.get(mac))
    }

    /// Every lease, by address.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.by_ip.values().filter_map(|mac| self.by_mac.get(mac))
    }

    /// Whether `ip` is declined at `now`.
    pub fn is_declined(&self, ip: Ipv4Addr, now: u64) -> bool {
        self.declined
            .get(&u32::from(ip))
            .is_some_and(|&until| until > now)
    }

    /// Whether `ip` lies in the pool.
    pub fn in_pool(&self, ip: Ipv4Addr) -> bool {
        (self.start..=self.end).contains(&u32::from(ip))
    }

    /// The address to offer `mac` (see the module documentation for the
    /// order of preference), reserved for it for [`OFFER_HOLD_SECS`].
    pub fn offer(
        &mut self,
        mac: [u8; 6],
        requested: Option<Ipv4Addr>,
        now: u64,
    ) -> Result<Ipv4Addr, LeaseError> {
        self.drop_ended_declines(now);
        let ip = self.choose(mac, requested, now)?;
        self.assign(mac, ip, now + OFFER_HOLD_SECS, false, None);
        Ok(ip)
    }

    fn choose(
        &self,
        mac: [u8; 6],
        requested: Option<Ipv4Addr>,
        now: u64,
    ) -> Result<Ipv4Addr, LeaseError> {
        if let Some(own) = self.by_mac.get(&mac) {
            if self.in_pool(own.ip) && !self.is_declined(own.ip, now) {
                return Ok(own.ip);
            }
        }
        if let Some(ip) = requested {
            if self.available_to(mac, ip, now).is_ok() {
                return Ok(ip);
            }
        }
        // First address no client holds: each miss is a distinct held or
        // declined address, so this loop is bounded by their number.
        let mut candidate = self.start;
        loop {
            if !self.by_ip.contains_key(&candidate) && !self.declined.contains_key(&candidate) {
                return Ok(Ipv4Addr::from(candidate));
            }
            if candidate == self.end {
                break;
            }
            candidate += 1;
        }
        // Reclaim the longest-expired lease of another client.
        self.by_mac
            .values()
            .filter(|l| l.expired(now) && !self.is_declined(l.ip, now) && self.in_pool(l.ip))
            .min_by_key(|l| (l.expires, u32::from(l.ip)))
            .map(|l| l.ip)
            .ok_or(LeaseError::PoolExhausted {
                start: Ipv4Addr::from(self.start),
                end: Ipv4Addr::from(self.end),
            })
    }

    /// Whether `ip` may be given to `mac`: in the pool, not declined, and
    /// held by nobody, by `mac` itself, or by an expired lease.
    fn available_to(&self, mac: [u8; 6], ip: Ipv4Addr, now: u64) -> Result<(), LeaseError> {
        if !self.in_pool(ip) {
            return Err(LeaseError::OutsidePool(ip));
        }
        if self.is_declined(ip, now) {
            return Err(LeaseError::Declined(ip));
        }
        match self.holder(ip) {
            Some(l) if l.mac.0 != mac && !l.expired(now) => {
                Err(LeaseError::Taken { ip, holder: l.mac })
            }
            _ => Ok(()),
        }
    }

    /// Binds `ip` to `mac` for `lease_secs` (a DHCPREQUEST being
    /// acknowledged). Refused if `mac` holds another address, or if `ip`
    /// is not available to it. Returns whether this is a new binding (the
    /// client had no bound lease of this address before).
    pub fn bind(
        &mut self,
        mac: [u8; 6],
        ip: Ipv4Addr,
        lease_secs: u32,
        hostname: Option<String>,
        now: u64,
    ) -> Result<bool, LeaseError> {
        self.drop_ended_declines(now);
        let previous = self.by_mac.get(&mac).map(|l| (l.ip, l.bound));
        if let Some((held, _)) = previous {
            if held != ip && self.in_pool(held) && !self.is_declined(held, now) {
                return Err(LeaseError::Mismatch { held, asked: ip });
            }
        }
        self.available_to(mac, ip, now)?;
        let hostname = hostname.filter(|h| is_usable_hostname(h));
        self.assign(mac, ip, now + u64::from(lease_secs), true, hostname);
        Ok(previous != Some((ip, true)))
    }

    /// A client declined `ip` (in use on the segment): the address is put
    /// on hold until `now + hold_secs` and the client's lease is dropped.
    /// Returns whether `mac` held `ip`.
    pub fn decline(&mut self, mac: [u8; 6], ip: Ipv4Addr, hold_secs: u64, now: u64) -> bool {
        if self.by_mac.get(&mac).map(|l| l.ip) != Some(ip) {
            return false;
        }
        self.remove(mac);
        self.declined.insert(u32::from(ip), now + hold_secs);
        true
    }

    /// A client released `ip`: its lease ends now (the binding stays, so
    /// it gets the address back if nobody takes it). Returns whether `mac`
    /// held `ip`.
    pub fn release(&mut self, mac: [u8; 6], ip: Ipv4Addr, now: u64) -> bool {
        match self.by_mac.get_mut(&mac) {
            Some(l) if l.ip == ip => {
                l.expires = l.expires.min(now);
                true
            }
            _ => false,
        }
    }

    /// The client chose another server: an offer not yet acknowledged is
    /// withdrawn (a bound lease stays).
    pub fn withdraw_offer(&mut self, mac: [u8; 6]) {
        if self.by_mac.get(&mac).is_some_and(|l| !l.bound) {
            self.remove(mac);
        }
    }

    fn assign(
        &mut self,
        mac: [u8; 6],
        ip: Ipv4Addr,
        expires: u64,
        bound: bool,
        hostname: Option<String>,
    ) {
        let key = u32::from(ip);
        // Whoever held the address before (an expired lease) loses it.
        if let Some(other) = self.by_ip.get(&key).copied() {
            if other != mac {
                self.by_mac.remove(&other);
            }
        }
        let (expires, bound, hostname) = match self.by_mac.remove(&mac) {
            Some(old) => {
                self.by_ip.remove(&u32::from(old.ip));
                if old.ip == ip {
                    // An offer never shortens a lease nor unbinds it.
                    let expires = if bound {
                        expires
                    } else {
                        expires.max(old.expires)
                    };
                    (expires, bound || old.bound, hostname.or(old.hostname))
                } else {
                    (expires, bound, hostname)
                }
            }
            None => (expires, bound, hostname),
        };
        self.by_ip.insert(key, mac);
        self.by_mac.insert(
            mac,
            Lease {
                mac: Mac(mac),
                ip,
                expires,
                bound,
                hostname,
            },
        );
    }

    fn remove(&mut self, mac: [u8; 6]) {
        if let Some(old) = self.by_mac.remove(&mac) {
            self.by_ip.remove(&u32::from(old.ip));
        }
    }

    fn drop_ended_declines(&mut self, now: u64) {
        self.declined.retain(|_, until| *until > now);
    }

    /// The file's text: bound leases and declined addresses, by address.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# smi-pnp-proxy: leases of the local DHCP server (vstack dhcp-localserver)\n\
             # Replaced whole by the daemon after every change; edit only while it is stopped.\n\
             # lease <mac> <ip> <expires, Unix seconds> [<hostname>] | declined <ip> <until, Unix seconds>\n",
        );
        for lease in self.leases().filter(|l| l.bound) {
            let _ = write!(
                out,
                "lease\tmac={}\tip={}\texpires={}",
                lease.mac, lease.ip, lease.expires
            );
            if let Some(name) = &lease.hostname {
                let _ = write!(out, "\thostname={name}");
            }
            out.push('\n');
        }
        for (ip, until) in &self.declined {
            let _ = writeln!(out, "declined\tip={}\tuntil={until}", Ipv4Addr::from(*ip));
        }
        out
    }

    /// Parses a file's text for `pool`. `path` names the file in errors.
    pub fn parse(text: &str, pool: &DhcpPool, path: &Path) -> Result<Self, LeaseFileError> {
        let mut table = Self::new(pool);
        for (index, line) in text.lines().enumerate() {
            let bad = |reason: String| LeaseFileError::BadLine {
                path: path.to_path_buf(),
                line: index + 1,
                reason,
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line).map_err(bad)? {
                Record::Lease(lease) => {
                    if table.by_mac.contains_key(&lease.mac.0) {
                        return Err(bad(format!("second lease of {}", lease.mac)));
                    }
                    if let Some(holder) = table.holder(lease.ip) {
                        return Err(bad(format!(
                            "{} is also leased to {}",
                            lease.ip, holder.mac
                        )));
                    }
                    if !table.in_pool(lease.ip) {
                        tracing::info!(
                            "{}, line {}: {} ({}) is outside the pool {}-{}: dropped",
                            path.display(),
                            index + 1,
                            lease.ip,
                            lease.mac,
                            pool.start,
                            pool.end
                        );
                        continue;
                    }
                    table.by_ip.insert(u32::from(lease.ip), lease.mac.0);
                    table.by_mac.insert(lease.mac.0, lease);
                }
                Record::Declined { ip, until } => {
                    if table.in_pool(ip) {
                        table.declined.insert(u32::from(ip), until);
                    }
                }
            }
        }
        Ok(table)
    }

    /// Loads `<vstack_dir>/dhcp_leases.txt`; a missing file is an empty
    /// table. Removes a `.tmp` left by an interrupted write.
    pub fn load(vstack_dir: &Path, pool: &DhcpPool) -> Result<Self, LeaseFileError> {
        store::files::remove_leftover_tmp(vstack_dir, FILE_NAME);
        let path = vstack_dir.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, pool, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::new(pool)),
            Err(source) => Err(LeaseFileError::Read { path, source }),
        }
    }

    /// Writes the table to `<vstack_dir>/dhcp_leases.txt`, atomically.
    pub fn save(&self, vstack_dir: &Path) -> Result<(), LeaseFileError> {
        let text = self.render();
        Self::write_text(vstack_dir, &text)
    }

    /// Writes an already rendered table (see [`LeaseTable::render`]) to
    /// `<vstack_dir>/dhcp_leases.txt`, atomically.
    pub fn write_text(vstack_dir: &Path, text: &str) -> Result<(), LeaseFileError> {
        use std::io::Write as _;
        store::files::replace(vstack_dir, FILE_NAME, |out| out.write_all(text.as_bytes()))?;
        Ok(())
    }
}

enum Record {
    Lease(Lease),
    Declined { ip: Ipv4Addr, until: u64 },
}

fn parse_line(line: &str) -> Result<Record, String> {
    let mut words = line.split_ascii_whitespace();
    let kind = words.next().unwrap_or_default();
    let allowed: &[&str] = match kind {
        "lease" => &["mac", "ip", "expires", "hostname"],
        "declined" => &["ip", "until"],
        other => {
            return Err(format!(
                "unknown record {:?} (expected lease or declined)",
                other.chars().take(40).collect::<String>()
            ));
        }
    };
    let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
    for word in words {
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| format!("{word:?} is not key=value"))?;
        if !allowed.contains(&key) {
            return Err(format!("unknown key {key:?} in a {kind} record"));
        }
        if fields.insert(key, value).is_some() {
            return Err(format!("key {key:?} given twice"));
        }
    }
    let field = |key: &str| {
        fields
            .get(key)
            .copied()
            .ok_or_else(|| format!("{kind} record without {key}="))
    };
    let ip_text = field("ip")?;
    let ip: Ipv4Addr = ip_text
        .parse()
        .map_err(|_| format!("ip={ip_text:?} is not an IPv4 address"))?;
    let seconds = |key: &str| -> Result<u64, String> {
        let text = field(key)?;
        text.parse()
            .map_err(|_| format!("{key}={text:?} is not a number of seconds"))
    };
    if kind == "declined" {
        return Ok(Record::Declined {
            ip,
            until: seconds("until")?,
        });
    }
    let mac: Mac = field("mac")?.parse().map_err(|e| format!("{e}"))?;
    let hostname = match fields.get("hostname") {
        Some(name) if is_usable_hostname(name) => Some((*name).to_owned()),
        Some(name) => return Err(format!("hostname={name:?} is not a usable host name")),
        None => None,
    };
    Ok(Record::Lease(Lease {
        mac,
        ip,
        expires: seconds("expires")?,
        bound: true,
        hostname,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn pool(first: u8, last: u8) -> DhcpPool {
        DhcpPool {
            start: Ipv4Addr::new(192, 0, 2, first),
            end: Ipv4Addr::new(192, 0, 2, last),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            default_router: None,
            lease_secs: 3600,
        }
    }

    fn mac(n: u8) -> [u8; 6] {
        [0x00, 0x1e, 0xf7, 0, 0, n]
    }

    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, n)
    }

    #[test]
    fn first_free_and_stable_per_mac() {
        let mut t = LeaseTable::new(&pool(100, 110));
        assert_eq!(t.offer(mac(1), None, NOW), Ok(ip(100)));
        assert_eq!(t.offer(mac(2), None, NOW), Ok(ip(101)));
        // The same client gets the same offer again.
        assert_eq!(t.offer(mac(1), None, NOW + 5), Ok(ip(100)));
        assert_eq!(t.bind(mac(1), ip(100), 3600, None, NOW + 6), Ok(true));
        assert_eq!(t.bind(mac(1), ip(100), 3600, None, NOW + 7), Ok(false));
        // Even long after its lease ended, if nobody took the address.
        assert_eq!(t.offer(mac(1), None, NOW + 100_000), Ok(ip(100)));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn honours_a_requested_address_if_free_and_in_the_pool() {
        let mut t = LeaseTable::new(&pool(100, 110));
        assert_eq!(t.offer(mac(1), Some(ip(105)), NOW), Ok(ip(105)));
        // Taken by mac(1): mac(2) gets the first free one instead.
        assert_eq!(t.offer(mac(2), Some(ip(105)), NOW), Ok(ip(100)));
        // Outside the pool: ignored.
        assert_eq!(t.offer(mac(3), Some(ip(50)), NOW), Ok(ip(101)));
        // An expired offer is free for whoever asks.
        assert_eq!(
            t.offer(mac(4), Some(ip(105)), NOW + OFFER_HOLD_SECS),
            Ok(ip(105))
        );
        assert_eq!(t.lease_of(&mac(1)), None, "mac(1) lost its stale offer");
    }

    #[test]
    fn pool_exhaustion_then_reclaim_of_expired_leases() {
        let mut t = LeaseTable::new(&pool(100, 102));
        for n in 0..3 {
            let got = t.offer(mac(n), None, NOW).unwrap();
            assert_eq!(t.bind(mac(n), got, 60, None, NOW), Ok(true));
        }
        let err = t.offer(mac(9), None, NOW + 1).unwrap_err();
        assert_eq!(
            err,
            LeaseError::PoolExhausted {
                start: ip(100),
                end: ip(102)
            }
        );
        assert_eq!(
            err.to_string(),
            "address pool 192.0.2.100-192.0.2.102 is exhausted: every address is leased or declined"
        );
        // mac(1) renews; the others expire: the oldest expired one is reclaimed.
        t.bind(mac(1), ip(101), 3600, None, NOW + 30).unwrap();
        assert_eq!(t.offer(mac(9), None, NOW + 61), Ok(ip(100)));
        assert_eq!(t.lease_of(&mac(0)), None);
        assert_eq!(t.holder(ip(101)).map(|l| l.mac.0), Some(mac(1)));
    }

    #[test]
    fn bind_checks_who_holds_what() {
        let mut t = LeaseTable::new(&pool(100, 110));
        t.offer(mac(1), None, NOW).unwrap();
        assert_eq!(
            t.bind(mac(2), ip(100), 3600, None, NOW),
            Err(LeaseError::Taken {
                ip: ip(100),
                holder: Mac(mac(1))
            })
        );
        assert_eq!(
            t.bind(mac(1), ip(103), 3600, None, NOW),
            Err(LeaseError::Mismatch {
                held: ip(100),
                asked: ip(103)
            })
        );
        assert_eq!(
            t.bind(mac(3), ip(20), 3600, None, NOW),
            Err(LeaseError::OutsidePool(ip(20)))
        );
        // A request for a free address without an offer (offer lost): bound.
        assert_eq!(t.bind(mac(3), ip(104), 3600, None, NOW), Ok(true));
        assert_eq!(t.lease_of(&mac(3)).map(|l| l.expires), Some(NOW + 3600));
    }

    #[test]
    fn decline_holds_the_address_and_release_keeps_the_binding() {
        let mut t = LeaseTable::new(&pool(100, 110));
        let first = t.offer(mac(1), None, NOW).unwrap();
        assert!(!t.decline(mac(2), first, 600, NOW), "not mac(2)'s address");
        assert!(t.decline(mac(1), first, 600, NOW));
        assert!(t.is_declined(first, NOW + 599));
        assert_eq!(t.offer(mac(1), None, NOW + 1), Ok(ip(101)));
        assert_eq!(
            t.offer(mac(2), Some(first), NOW + 1),
            Ok(ip(102)),
            "a declined address is not offered even when asked for"
        );
        // The hold ends.
        assert_eq!(t.offer(mac(3), None, NOW + 600), Ok(ip(100)));

        t.bind(mac(1), ip(101), 3600, None, NOW + 2).unwrap();
        assert!(!t.release(mac(1), ip(105), NOW + 3));
        assert!(t.release(mac(1), ip(101), NOW + 3));
        assert!(t.lease_of(&mac(1)).unwrap().expired(NOW + 3));
        assert_eq!(t.offer(mac(1), None, NOW + 10), Ok(ip(101)));
        // Another client may take a released address when it asks for it.
        t.release(mac(1), ip(101), NOW + 11);
        assert_eq!(t.offer(mac(4), Some(ip(101)), NOW + 12), Ok(ip(101)));
    }

    #[test]
    fn withdrawn_offers_free_the_address_but_bound_leases_stay() {
        let mut t = LeaseTable::new(&pool(100, 110));
        t.offer(mac(1), None, NOW).unwrap();
        t.withdraw_offer(mac(1));
        assert!(t.is_empty());
        t.offer(mac(2), None, NOW).unwrap();
        t.bind(mac(2), ip(100), 3600, None, NOW).unwrap();
        t.withdraw_offer(mac(2));
        assert_eq!(t.lease_of(&mac(2)).map(|l| l.ip), Some(ip(100)));
        // A new offer never shortens a bound lease.
        t.offer(mac(2), None, NOW + 1).unwrap();
        assert_eq!(t.lease_of(&mac(2)).map(|l| l.expires), Some(NOW + 3600));
    }

    #[test]
    fn file_round_trip_and_reload_from_disk() {
        let dir = std::env::temp_dir().join(format!("dhcp-leases-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = pool(100, 110);
        assert!(
            LeaseTable::load(&dir, &p).unwrap().is_empty(),
            "no file yet"
        );
        let mut t = LeaseTable::new(&p);
        for n in [3, 1, 2] {
            let got = t.offer(mac(n), None, NOW).unwrap();
            t.bind(mac(n), got, 3600, Some(format!("sw{n}")), NOW)
                .unwrap();
        }
        t.offer(mac(7), None, NOW).unwrap(); // an offer in flight: not written
        let declined = t.offer(mac(8), None, NOW).unwrap();
        t.decline(mac(8), declined, 600, NOW);
        t.save(&dir).unwrap();
        let text = std::fs::read_to_string(dir.join(FILE_NAME)).unwrap();
        assert!(
            text.contains(
                "lease\tmac=001e.f700.0003\tip=192.0.2.100\texpires=1700003600\thostname=sw3\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("declined\tip=192.0.2.104\tuntil=1700000600\n"),
            "{text}"
        );
        assert!(!dir.join(format!("{FILE_NAME}.tmp")).exists());

        let back = LeaseTable::load(&dir, &p).unwrap();
        assert_eq!(back.len(), 3);
        for n in [1, 2, 3] {
            assert_eq!(back.lease_of(&mac(n)), t.lease_of(&mac(n)));
        }
        assert!(back.is_declined(declined, NOW + 1));
        // After a restart, each client gets its address back whatever the order.
        let mut again = back.clone();
        for n in [2, 3, 1] {
            assert_eq!(
                again.offer(mac(n), None, NOW + 50),
                Ok(t.lease_of(&mac(n)).unwrap().ip)
            );
        }
        // A smaller pool drops the leases outside it.
        let smaller = LeaseTable::load(&dir, &pool(100, 100)).unwrap();
        assert_eq!(smaller.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_lines_are_refused_with_their_number() {
        let p = pool(100, 110);
        let path = Path::new("/x/dhcp_leases.txt");
        let good = "# comment\n\nlease\tmac=001e.f700.0001\tip=192.0.2.100\texpires=5\n";
        assert_eq!(LeaseTable::parse(good, &p, path).unwrap().len(), 1);
        let cases = [
            (
                "lease mac=001e.f700.0001 ip=192.0.2.300 expires=5",
                "not an IPv4 address",
            ),
            (
                "lease mac=nonsense ip=192.0.2.101 expires=5",
                "not a MAC address",
            ),
            (
                "lease mac=001e.f700.0002 ip=192.0.2.101",
                "without expires=",
            ),
            (
                "lease mac=001e.f700.0002 ip=192.0.2.101 expires=soon",
                "not a number",
            ),
            (
                "lease mac=001e.f700.0002 ip=192.0.2.101 expires=5 color=red",
                "unknown key",
            ),
            (
                "lease mac=001e.f700.0002 ip=192.0.2.101 ip=192.0.2.102 expires=5",
                "twice",
            ),
            (
                "lease mac=001e.f700.0002 ip=192.0.2.100 expires=5",
                "also leased to",
            ),
            (
                "lease mac=001e.f700.0001 ip=192.0.2.102 expires=5",
                "second lease",
            ),
            (
                "lease mac=001e.f700.0002 ip=192.0.2.101 expires=5 hostname=a\u{1}b",
                "host name",
            ),
            ("lease junk", "not key=value"),
            ("frobnicate ip=192.0.2.101", "unknown record"),
            ("declined ip=192.0.2.101", "without until="),
        ];
        for (line, expected) in cases {
            let text = format!("{good}{line}\n");
            let err = LeaseTable::parse(&text, &p, path).unwrap_err();
            let LeaseFileError::BadLine {
                line: n, reason, ..
            } = &err
            else {
                panic!("{err}");
            };
            assert_eq!(*n, 4, "{line}");
            assert!(reason.contains(expected), "{line}: {reason}");
            assert!(
                err.to_string().starts_with("/x/dhcp_leases.txt, line 4: "),
                "{err}"
            );
        }
    }
}
