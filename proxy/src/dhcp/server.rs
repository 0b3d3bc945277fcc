//! The local DHCP server task: one UDP socket on `0.0.0.0:67` per served
//! switch-facing interface (`SO_BINDTODEVICE`, `SO_BROADCAST`), answering
//! DISCOVER with OFFER and REQUEST with ACK or NAK from the
//! [`LeaseTable`](super::leases::LeaseTable).
//!
//! - **Where**: only the interfaces the caller passes, each with the VLAN
//!   its untagged frames belong to; the caller passes only interfaces whose
//!   untagged VLAN is a startup VLAN.
//! - **Silence**: while another DHCP server is known on the VLAN (its OFFER
//!   was seen within the hold time, [`DEFAULT_FOREIGN_HOLD`]; the daemon
//!   feeds [`ForeignServers`] with the dataplane's `DhcpServerSeen`
//!   events), nothing is answered, and a warning is logged once per server.
//!   Every OFFER waits [`DEFAULT_OFFER_DEFER`] first and is dropped if a
//!   foreign OFFER arrived meanwhile, so that the very first DISCOVER of a
//!   segment with a site server is not raced.
//! - **REQUEST**: in the selecting state (option 54 present) it is ours
//!   only if option 54 is our address (another server id withdraws our
//!   offer, silently); init-reboot (no option 54, no `ciaddr`) and
//!   renewing/rebinding (`ciaddr` set) are answered for clients with a
//!   lease here (ACK for the same address, NAK for another) and ignored
//!   otherwise, as RFC 2131 section 4.3.2 asks.
//! - **DECLINE** puts the address on hold ([`DhcpServerConfig::decline_hold`]);
//!   **RELEASE** ends the lease; **INFORM** is not answered.
//! - Replies go by broadcast to `255.255.255.255:68`, by unicast to
//!   `ciaddr:68` for a client that has an address, or to `giaddr:67` when
//!   relayed. The lease file is written (atomically) before an ACK leaves.
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::codec::{
    self, ClientMessage, ReplyKind, ReplyOptions, RequestKind, SERVER_PORT, decode_request,
};
use super::leases::{LeaseError, LeaseFileError, LeaseTable};
use crate::config::DhcpPool;
use crate::dataplane::{DataplaneEvent, EventKind, format_mac};

/// How long a foreign DHCP server keeps the local one silent after its
/// last OFFER was seen.
pub const DEFAULT_FOREIGN_HOLD: Duration = Duration::from_secs(300);
/// How long an OFFER waits for a foreign server to answer first.
pub const DEFAULT_OFFER_DEFER: Duration = Duration::from_millis(500);
/// How long a declined address is not handed out.
pub const DEFAULT_DECLINE_HOLD: Duration = Duration::from_secs(600);
/// Most OFFERs waiting out their defer at once; more DISCOVERs are ignored
/// (the clients retransmit).
pub const MAX_DEFERRED_OFFERS: usize = 4096;
/// Most foreign servers remembered at once.
const MAX_FOREIGN: usize = 256;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    /// The pool is not usable.
    #[error("DHCP pool: {0}")]
    Pool(String),
    /// No interface to serve on.
    #[error("no switch-facing interface to serve DHCP on (none has a startup VLAN untagged)")]
    NoInterfaces,
    /// The state directory could not be created.
    #[error("cannot create {}: {source}", path.display())]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The lease file could not be read.
    #[error(transparent)]
    Leases(#[from] LeaseFileError),
    /// A socket could not be opened.
    #[error("DHCP server socket on {iface} (UDP 67): {source}")]
    Socket {
        /// The interface.
        iface: String,
        /// What the system said.
        source: std::io::Error,
    },
}

/// One interface the server answers on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeInterface {
    /// Linux interface name.
    pub name: String,
    /// The VLAN its untagged frames belong to (a startup VLAN).
    pub vlan: u16,
}

/// A client got (or changed) its address: the dataplane never sees the
/// local server's ACK (XDP only sees frames coming in), so the daemon is
/// told this way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseBound {
    /// The client.
    pub mac: [u8; 6],
    /// Its address.
    pub ip: Ipv4Addr,
    /// The VLAN it was served on.
    pub vlan: u16,
}

impl LeaseBound {
    /// The same news as the dataplane's `AddressLearned` event.
    pub fn to_event(&self) -> DataplaneEvent {
        DataplaneEvent {
            ts_ns: 0,
            mac: self.mac,
            vlan: self.vlan,
            svlan: 0,
            xid: 0,
            dhcp_msg: 5,
            kind: EventKind::AddressLearned(self.ip),
        }
    }
}

/// Settings of the local DHCP server.
#[derive(Clone, Debug)]
pub struct DhcpServerConfig {
    /// The pool, mask, router and lease time.
    pub pool: DhcpPool,
    /// The proxy address: server identifier, TFTP server, default router
    /// when the pool names none.
    pub server_ip: Ipv4Addr,
    /// Where to answer.
    pub interfaces: Vec<ServeInterface>,
    /// The daemon's state directory; leases go to `vstack/dhcp_leases.txt`.
    pub state_dir: PathBuf,
    /// How long an OFFER waits for a foreign server (zero: no wait).
    pub offer_defer: Duration,
    /// How long a declined address is on hold.
    pub decline_hold: Duration,
    /// Where new bindings are reported, if anywhere.
    pub bound_events: Option<mpsc::Sender<LeaseBound>>,
}

impl DhcpServerConfig {
    /// A configuration with the default timings and no bound-event channel.
    pub fn new(
        pool: DhcpPool,
        server_ip: Ipv4Addr,
        interfaces: Vec<ServeInterface>,
        state_dir: PathBuf,
    ) -> Self {
        Self {
            pool,
            server_ip,
            interfaces,
            state_dir,
            offer_defer: DEFAULT_OFFER_DEFER,
            decline_hold: DEFAULT_DECLINE_HOLD,
            bound_events: None,
        }
    }

    fn reply_options(&self) -> ReplyOptions {
        ReplyOptions {
            server_ip: self.server_ip,
            netmask: self.pool.netmask,
            router: self.pool.default_router.unwrap_or(self.server_ip),
            lease_secs: self.pool.lease_secs,
        }
    }
}

/// Counters of the local DHCP server.
#[derive(Debug, Default)]
pub struct DhcpStats {
    /// OFFERs sent.
    pub offers: AtomicU64,
    /// ACKs sent.
    pub acks: AtomicU64,
    /// NAKs sent.
    pub naks: AtomicU64,
    /// Requests not answered because they are not for this server (another
    /// server chosen, unknown client renewing, INFORM, too many OFFERs
    /// pending, a DECLINE or RELEASE of an address the client does not hold).
    pub ignored: AtomicU64,
    /// Requests not answered because another DHCP server answers on the VLAN.
    pub silenced: AtomicU64,
    /// Datagrams that are not a DHCP client request.
    pub malformed: AtomicU64,
    /// DISCOVERs left without an OFFER because the pool is exhausted.
    pub exhausted: AtomicU64,
    /// Addresses declined by clients.
    pub declines: AtomicU64,
    /// Leases released by clients.
    pub releases: AtomicU64,
}

/// A copy of [`DhcpStats`] at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DhcpCounts {
    /// OFFERs sent.
    pub offers: u64,
    /// ACKs sent.
    pub acks: u64,
    /// NAKs sent.
    pub naks: u64,
    /// Requests ignored.
    pub ignored: u64,
    /// Requests not answered because of a foreign server.
    pub silenced: u64,
    /// Malformed datagrams.
    pub malformed: u64,
    /// DISCOVERs without an OFFER for want of addresses.
    pub exhausted: u64,
    /// DECLINEs acted on.
    pub declines: u64,
    /// RELEASEs acted on.
    pub releases: u64,
}

impl DhcpStats {
    /// The counters now.
    pub fn snapshot(&self) -> DhcpCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DhcpCounts {
            offers: get(&self.offers),
            acks: get(&self.acks),
            naks: get(&self.naks),
            ignored: get(&self.ignored),
            silenced: get(&self.silenced),
            malformed: get(&self.malformed),
            exhausted: get(&self.exhausted),
            declines: get(&self.declines),
            releases: get(&self.releases),
        }
    }

    /// Adds `smi_proxy_dhcp_server_total{event="..."}` to a `/metrics`
    /// exposition.
    pub fn render(&self, out: &mut crate::metrics::Exposition) {
        let c = self.snapshot();
        out.counter(
            "smi_proxy_dhcp_server_total",
            "Local DHCP server (vstack dhcp-localserver): replies sent and requests left unanswered, by event.",
        )
        .sample(&[("event", "offer")], c.offers)
        .sample(&[("event", "ack")], c.acks)
        .sample(&[("event", "nak")], c.naks)
        .sample(&[("event", "ignored")], c.ignored)
        .sample(&[("event", "silenced")], c.silenced)
        .sample(&[("event", "malformed")], c.malformed)
        .sample(&[("event", "exhausted")], c.exhausted)
        .sample(&[("event", "decline")], c.declines)
        .sample(&[("event", "release")], c.releases);
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

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

#[derive(Debug)]
struct Seen {
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
    fn silencer(&self, vlan: u16) -> Option<(ForeignServer, bool)> {
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

    fn lock(&self) -> MutexGuard<'_, HashMap<(u16, Ipv4Addr), Seen>> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A reply ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Reply {
    kind: ReplyKind,
    bytes: Vec<u8>,
    to: SocketAddrV4,
}

/// What handling one request produced.
#[derive(Debug, Default)]
struct Outcome {
    reply: Option<Reply>,
    /// The lease table changed in a way the file must record.
    persist: bool,
    bound: Option<LeaseBound>,
}

/// The server's state, shared by the interface loops and deferred OFFERs.
struct Engine {
    cfg: DhcpServerConfig,
    reply: ReplyOptions,
    vstack_dir: PathBuf,
    table: Mutex<LeaseTable>,
    foreign: Arc<ForeignServers>,
    stats: Arc<DhcpStats>,
    /// Serialises lease file writes (each writes the latest table).
    writer: tokio::sync::Mutex<()>,
    /// The pool exhaustion warning was logged (cleared by the next offer).
    exhausted_warned: AtomicBool,
}

impl Engine {
    fn new(cfg: DhcpServerConfig, table: LeaseTable, foreign: Arc<ForeignServers>) -> Self {
        Self {
            reply: cfg.reply_options(),
            vstack_dir: cfg.state_dir.join(crate::store::DIR_NAME),
            table: Mutex::new(table),
            foreign,
            stats: Arc::new(DhcpStats::default()),
            writer: tokio::sync::Mutex::new(()),
            exhausted_warned: AtomicBool::new(false),
            cfg,
        }
    }

    fn table(&self) -> MutexGuard<'_, LeaseTable> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a foreign server answers on `vlan` (then counts and warns once).
    fn silenced(&self, vlan: u16) -> bool {
        let Some((server, first)) = self.foreign.silencer(vlan) else {
            return false;
        };
        bump(&self.stats.silenced);
        if first {
            log::warn!(
                "DHCP server {} ({}) answers on vlan {}: local DHCP server stays silent",
                server.ip,
                format_mac(&server.mac),
                server.vlan
            );
        }
        true
    }

    /// The answer to a request that arrived on `vlan` (no silence check:
    /// the caller did it). DISCOVERs are answered at once.
    fn handle(&self, req: &ClientMessage, vlan: u16, now: u64) -> Outcome {
        match req.kind {
            RequestKind::Discover => self.offer(req, now),
            RequestKind::Request => self.request(req, vlan, now),
            RequestKind::Decline => self.decline(req, now),
            RequestKind::Release => self.release(req, now),
            RequestKind::Inform => self.ignore(req, "DHCPINFORM is not served"),
        }
    }

    fn ignore(&self, req: &ClientMessage, why: &str) -> Outcome {
        bump(&self.stats.ignored);
        log::debug!("DHCP {:?} from {} ignored: {why}", req.kind, req.mac_text());
        Outcome::default()
    }

    fn offer(&self, req: &ClientMessage, now: u64) -> Outcome {
        let offered = self.table().offer(req.mac, req.requested_ip, now);
        let ip = match offered {
            Ok(ip) => ip,
            Err(e) => {
                bump(&self.stats.exhausted);
                if !self.exhausted_warned.swap(true, Ordering::Relaxed) {
                    log::warn!("DHCP: no offer for {}: {e}", req.mac_text());
                } else {
                    log::debug!("DHCP: no offer for {}: {e}", req.mac_text());
                }
                return Outcome::default();
            }
        };
        self.exhausted_warned.store(false, Ordering::Relaxed);
        self.reply_with(req, ReplyKind::Offer, ip, "")
    }

    fn request(&self, req: &ClientMessage, vlan: u16, now: u64) -> Outcome {
        let ours = self.cfg.server_ip;
        let selecting = match req.server_id {
            Some(id) if id != ours => {
                self.table().withdraw_offer(req.mac);
                return self.ignore(req, &format!("the client chose server {id}"));
            }
            Some(_) => true,
            None => false,
        };
        let asked = match (req.requested_ip, req.ciaddr.is_unspecified()) {
            (_, false) => req.ciaddr,
            (Some(ip), true) => ip,
            (None, true) => {
                if selecting {
                    return self.reply_with(
                        req,
                        ReplyKind::Nak,
                        Ipv4Addr::UNSPECIFIED,
                        "no requested address",
                    );
                }
                return self.ignore(req, "no requested address and no ciaddr");
            }
        };
        let mut table = self.table();
        if !selecting {
            // Init-reboot, renewing, rebinding: only clients we know.
            match table.lease_of(&req.mac) {
                None => {
                    drop(table);
                    return self.ignore(req, &format!("no lease here for {asked}"));
                }
                Some(l) if l.ip != asked => {
                    let held = l.ip;
                    drop(table);
                    log::info!(
                        "DHCP: {} asks for {asked} but has {held}: NAK",
                        req.mac_text()
                    );
                    return self.reply_with(
                        req,
                        ReplyKind::Nak,
                        Ipv4Addr::UNSPECIFIED,
                        "address not leased to this client",
                    );
                }
                Some(_) => {}
            }
        }
        let bound = table.bind(
            req.mac,
            asked,
            self.cfg.pool.lease_secs,
            Some(req.reply_hostname()),
            now,
        );
        drop(table);
        match bound {
            Ok(new) => {
                let mut out = self.reply_with(req, ReplyKind::Ack, asked, "");
                out.persist = true;
                if new {
                    log::info!("DHCP: {} bound to {asked} on vlan {vlan}", req.mac_text());
                    out.bound = Some(LeaseBound {
                        mac: req.mac,
                        ip: asked,
                        vlan,
                    });
                }
                out
            }
            Err(e) => {
                log::info!("DHCP: {} asks for {asked}: {e}: NAK", req.mac_text());
                let reason = match e {
                    LeaseError::OutsidePool(_) => "address not on this network",
                    _ => "address not available",
                };
                self.reply_with(req, ReplyKind::Nak, Ipv4Addr::UNSPECIFIED, reason)
            }
        }
    }

    fn decline(&self, req: &ClientMessage, now: u64) -> Outcome {
        if req.server_id.is_some_and(|id| id != self.cfg.server_ip) {
            return self.ignore(req, "declines another server's address");
        }
        let Some(ip) = req.requested_ip else {
            return self.ignore(req, "DHCPDECLINE without an address");
        };
        let hold = self.cfg.decline_hold.as_secs();
        if !self.table().decline(req.mac, ip, hold, now) {
            return self.ignore(req, &format!("declines {ip}, which it does not hold"));
        }
        bump(&self.stats.declines);
        log::warn!(
            "DHCP: {} declined {ip} (in use on the segment?): on hold for {hold} s",
            req.mac_text()
        );
        Outcome {
            persist: true,
            ..Outcome::default()
        }
    }

    fn release(&self, req: &ClientMessage, now: u64) -> Outcome {
        if req.server_id.is_some_and(|id| id != self.cfg.server_ip) {
            return self.ignore(req, "releases another server's address");
        }
        if !self.table().release(req.mac, req.ciaddr, now) {
            return self.ignore(
                req,
                &format!("releases {}, which it does not hold", req.ciaddr),
            );
        }
        bump(&self.stats.releases);
        log::info!("DHCP: {} released {}", req.mac_text(), req.ciaddr);
        Outcome {
            persist: true,
            ..Outcome::default()
        }
    }

    fn reply_with(&self, req: &ClientMessage, kind: ReplyKind, ip: Ipv4Addr, why: &str) -> Outcome {
        let encoded = match kind {
            ReplyKind::Offer => codec::offer(req, ip, &self.reply),
            ReplyKind::Ack => codec::ack(req, ip, &self.reply),
            ReplyKind::Nak => codec::nak(req, self.cfg.server_ip, why),
        };
        let bytes = match encoded {
            Ok(bytes) => bytes,
            Err(e) => {
                log::error!("DHCP: reply to {}: {e}", req.mac_text());
                return Outcome::default();
            }
        };
        let counter = match kind {
            ReplyKind::Offer => &self.stats.offers,
            ReplyKind::Ack => &self.stats.acks,
            ReplyKind::Nak => &self.stats.naks,
        };
        bump(counter);
        Outcome {
            reply: Some(Reply {
                kind,
                bytes,
                to: codec::reply_destination(req, kind),
            }),
            ..Outcome::default()
        }
    }

    /// Writes the lease file (if needed), sends the reply, then reports a
    /// new binding: an ACK leaves only once its lease is on disk, and the
    /// proxy hears of the address only once the client can have it.
    async fn finish(&self, out: Outcome, socket: &UdpSocket) {
        if out.persist {
            self.persist().await;
        }
        if let Some(reply) = out.reply {
            if let Err(e) = socket.send_to(&reply.bytes, reply.to).await {
                log::warn!("DHCP: sending {:?} to {}: {e}", reply.kind, reply.to);
            }
        }
        if let (Some(bound), Some(tx)) = (out.bound, &self.cfg.bound_events) {
            if tx.try_send(bound).is_err() {
                log::warn!(
                    "DHCP: {} bound to {}, but the daemon was not told (queue full or closed)",
                    format_mac(&bound.mac),
                    bound.ip
                );
            }
        }
    }

    async fn persist(&self) {
        let _one_writer = self.writer.lock().await;
        let text = self.table().render();
        let dir = self.vstack_dir.clone();
        let written =
            tokio::task::spawn_blocking(move || LeaseTable::write_text(&dir, &text)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::error!("DHCP: cannot save the leases: {e}"),
            Err(e) => log::error!("DHCP: lease writer: {e}"),
        }
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Opens a non-blocking UDP socket on `0.0.0.0:port` that only sees and
/// sends through `iface` (`SO_BINDTODEVICE`, set before `bind`, so several
/// interfaces can each have one), may send broadcasts (`SO_BROADCAST`) and
/// has a large receive buffer for boot storms.
pub fn open_socket(iface: &str, port: u16) -> std::io::Result<std::net::UdpSocket> {
    use std::io::{Error, ErrorKind};
    if iface.is_empty() || iface.len() >= libc::IFNAMSIZ || iface.contains('\0') {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{iface:?} is not an interface name"),
        ));
    }
    // SAFETY: socket(2) with constant arguments.
    let raw = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        return Err(Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let set = |option: libc::c_int, value: &[u8]| -> std::io::Result<()> {
        // SAFETY: `value` is valid for `value.len()` bytes for the call.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                value.as_ptr().cast(),
                value.len() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(Error::last_os_error())
        }
    };
    let one = 1i32.to_ne_bytes();
    set(libc::SO_REUSEADDR, &one)?;
    set(libc::SO_BROADCAST, &one)?;
    set(libc::SO_BINDTODEVICE, iface.as_bytes())?;
    // Best effort: the default buffer is enough outside boot storms.
    let _ = set(libc::SO_RCVBUF, &(4i32 << 20).to_ne_bytes());
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a valid sockaddr_in of the length given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(&addr).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(Error::last_os_error());
    }
    Ok(std::net::UdpSocket::from(fd))
}

/// Starts the server: loads the lease file, opens one socket per interface
/// and serves until `cancel`. The task ends once every interface loop and
/// every pending OFFER has stopped.
pub async fn spawn(
    cfg: DhcpServerConfig,
    foreign: Arc<ForeignServers>,
    cancel: CancellationToken,
) -> Result<(JoinHandle<()>, Arc<DhcpStats>), DhcpError> {
    cfg.pool.check().map_err(DhcpError::Pool)?;
    if cfg.interfaces.is_empty() {
        return Err(DhcpError::NoInterfaces);
    }
    let vstack = cfg.state_dir.join(crate::store::DIR_NAME);
    std::fs::create_dir_all(&vstack).map_err(|source| DhcpError::StateDir {
        path: vstack.clone(),
        source,
    })?;
    let table = LeaseTable::load(&vstack, &cfg.pool)?;
    let mut sockets = Vec::new();
    for iface in &cfg.interfaces {
        let socket = open_socket(&iface.name, SERVER_PORT)
            .and_then(UdpSocket::from_std)
            .map_err(|source| DhcpError::Socket {
                iface: iface.name.clone(),
                source,
            })?;
        sockets.push((iface.clone(), Arc::new(socket)));
    }
    log::info!(
        "local DHCP server: pool {}-{} mask {} router {} lease {} s, {} lease(s) from {}, serving {}",
        cfg.pool.start,
        cfg.pool.end,
        cfg.pool.netmask,
        cfg.pool.default_router.unwrap_or(cfg.server_ip),
        cfg.pool.lease_secs,
        table.leases().filter(|l| l.bound).count(),
        vstack.join(super::leases::FILE_NAME).display(),
        cfg.interfaces
            .iter()
            .map(|i| format!("{} (vlan {})", i.name, i.vlan))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let engine = Arc::new(Engine::new(cfg, table, foreign));
    let stats = engine.stats.clone();
    let task = tokio::spawn(async move {
        let tracker = TaskTracker::new();
        let slots = Arc::new(Semaphore::new(MAX_DEFERRED_OFFERS));
        for (iface, socket) in sockets {
            tracker.spawn(serve_interface(
                engine.clone(),
                socket,
                iface,
                slots.clone(),
                tracker.clone(),
                cancel.clone(),
            ));
        }
        tracker.close();
        tracker.wait().await;
        log::info!("local DHCP server stopped");
    });
    Ok((task, stats))
}

async fn serve_interface(
    engine: Arc<Engine>,
    socket: Arc<UdpSocket>,
    iface: ServeInterface,
    slots: Arc<Semaphore>,
    tracker: TaskTracker,
    cancel: CancellationToken,
) {
    let mut buf = vec![0u8; 4096];
    let vlan = iface.vlan;
    loop {
        let n = tokio::select! {
            () = cancel.cancelled() => break,
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, _)) => n,
                Err(e) => {
                    log::warn!("DHCP on {}: receive: {e}", iface.name);
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    }
                }
            },
        };
        let req = match decode_request(&buf[..n]) {
            Ok(req) => req,
            Err(e) => {
                bump(&engine.stats.malformed);
                log::debug!("DHCP on {}: {n} bytes refused: {e}", iface.name);
                continue;
            }
        };
        if engine.silenced(vlan) {
            continue;
        }
        let defer = engine.cfg.offer_defer;
        if req.kind == RequestKind::Discover && !defer.is_zero() {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                engine.ignore(&req, "too many OFFERs pending");
                continue;
            };
            let (engine, socket, cancel) = (engine.clone(), socket.clone(), cancel.clone());
            tracker.spawn(async move {
                let _permit = permit;
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(defer) => {}
                }
                if engine.silenced(vlan) {
                    return;
                }
                let out = engine.offer(&req, now_unix());
                engine.finish(out, &socket).await;
            });
            continue;
        }
        let out = engine.handle(&req, vlan, now_unix());
        engine.finish(out, &socket).await;
    }
}

#[cfg(test)]
mod tests {
    use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, OptionCode};
    use dhcproto::{Decodable as _, Decoder, Encodable as _, Encoder};

    use super::*;

    const PROXY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const SITE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    const NOW: u64 = 1_700_000_000;

    fn mac(n: u8) -> [u8; 6] {
        [0x00, 0x1e, 0xf7, 0, 0, n]
    }

    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, n)
    }

    fn pool() -> DhcpPool {
        DhcpPool {
            start: ip(100),
            end: ip(101),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            default_router: None,
            lease_secs: 3600,
        }
    }

    fn engine(dir: &std::path::Path) -> Engine {
        let cfg = DhcpServerConfig::new(
            pool(),
            PROXY,
            vec![ServeInterface {
                name: "lo".into(),
                vlan: 1,
            }],
            dir.to_path_buf(),
        );
        std::fs::create_dir_all(dir.join(crate::store::DIR_NAME)).unwrap();
        let foreign = Arc::new(ForeignServers::new(DEFAULT_FOREIGN_HOLD).with_own_address(PROXY));
        Engine::new(cfg, LeaseTable::new(&pool()), foreign)
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dhcp-server-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    struct Client {
        mac: [u8; 6],
        kind: MessageType,
        requested: Option<Ipv4Addr>,
        server: Option<Ipv4Addr>,
        ciaddr: Ipv4Addr,
    }

    impl Client {
        fn new(n: u8, kind: MessageType) -> Self {
            Self {
                mac: mac(n),
                kind,
                requested: None,
                server: None,
                ciaddr: Ipv4Addr::UNSPECIFIED,
            }
        }

        fn msg(&self) -> ClientMessage {
            let mut m = Message::new_with_id(
                7,
                self.ciaddr,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                &self.mac,
            );
            m.set_flags(Flags::default().set_broadcast());
            m.opts_mut().insert(DhcpOption::MessageType(self.kind));
            if let Some(r) = self.requested {
                m.opts_mut().insert(DhcpOption::RequestedIpAddress(r));
            }
            if let Some(s) = self.server {
                m.opts_mut().insert(DhcpOption::ServerIdentifier(s));
            }
            let mut out = Vec::new();
            m.encode(&mut Encoder::new(&mut out)).unwrap();
            decode_request(&out).unwrap()
        }
    }

    fn reply(out: &Outcome) -> (ReplyKind, Message, SocketAddrV4) {
        let r = out.reply.as_ref().expect("a reply");
        (
            r.kind,
            Message::decode(&mut Decoder::new(&r.bytes)).unwrap(),
            r.to,
        )
    }

    #[test]
    fn discover_request_ack_then_renew() {
        let dir = temp_dir("dora");
        let e = engine(&dir);
        let out = e.handle(&Client::new(1, MessageType::Discover).msg(), 1, NOW);
        let (kind, offer, to) = reply(&out);
        assert_eq!(kind, ReplyKind::Offer);
        assert_eq!(offer.yiaddr(), ip(100));
        assert_eq!(
            offer.opts().get(OptionCode::Router),
            Some(&DhcpOption::Router(vec![PROXY])),
            "no default router configured: the proxy"
        );
        assert_eq!(to, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68));
        assert!(!out.persist, "offers are not written");

        let mut req = Client::new(1, MessageType::Request);
        req.requested = Some(ip(100));
        req.server = Some(PROXY);
        let out = e.handle(&req.msg(), 1, NOW + 1);
        let (kind, ack, _) = reply(&out);
        assert_eq!(kind, ReplyKind::Ack);
        assert_eq!(ack.yiaddr(), ip(100));
        assert!(out.persist);
        assert_eq!(
            out.bound,
            Some(LeaseBound {
                mac: mac(1),
                ip: ip(100),
                vlan: 1
            })
        );

        // Renewing: unicast to ciaddr, no new binding.
        let mut renew = Client::new(1, MessageType::Request);
        renew.ciaddr = ip(100);
        let out = e.handle(&renew.msg(), 1, NOW + 1800);
        let (kind, ack, to) = reply(&out);
        assert_eq!((kind, ack.ciaddr()), (ReplyKind::Ack, ip(100)));
        assert_eq!(to, SocketAddrV4::new(ip(100), 68));
        assert_eq!(out.bound, None);
        assert_eq!(
            e.table().lease_of(&mac(1)).map(|l| l.expires),
            Some(NOW + 1800 + 3600)
        );
        // Init-reboot asking for another address: NAK.
        let mut reboot = Client::new(1, MessageType::Request);
        reboot.requested = Some(ip(101));
        let (kind, _, to) = reply(&e.handle(&reboot.msg(), 1, NOW + 1900));
        assert_eq!(kind, ReplyKind::Nak);
        assert_eq!(to, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68));
        let c = e.stats.snapshot();
        assert_eq!((c.offers, c.acks, c.naks), (1, 2, 1));
    }

    #[test]
    fn requests_for_other_servers_or_unknown_clients_are_ignored() {
        let dir = temp_dir("ignored");
        let e = engine(&dir);
        e.handle(&Client::new(1, MessageType::Discover).msg(), 1, NOW);
        // The client chose the site server: our offer is withdrawn.
        let mut req = Client::new(1, MessageType::Request);
        req.requested = Some(ip(50));
        req.server = Some(SITE);
        assert!(e.handle(&req.msg(), 1, NOW).reply.is_none());
        assert!(e.table().is_empty());
        // Init-reboot and renew of a client we never leased to: silence.
        let mut reboot = Client::new(2, MessageType::Request);
        reboot.requested = Some(ip(100));
        assert!(e.handle(&reboot.msg(), 1, NOW).reply.is_none());
        let mut renew = Client::new(2, MessageType::Request);
        renew.ciaddr = ip(100);
        assert!(e.handle(&renew.msg(), 1, NOW).reply.is_none());
        assert!(
            e.handle(&Client::new(2, MessageType::Inform).msg(), 1, NOW)
                .reply
                .is_none()
        );
        assert_eq!(e.stats.snapshot().ignored, 4);
    }

    #[test]
    fn selecting_request_for_a_taken_address_is_naked() {
        let dir = temp_dir("taken");
        let e = engine(&dir);
        e.handle(&Client::new(1, MessageType::Discover).msg(), 1, NOW);
        let mut req = Client::new(2, MessageType::Request);
        req.requested = Some(ip(100));
        req.server = Some(PROXY);
        let (kind, nak, _) = reply(&e.handle(&req.msg(), 1, NOW));
        assert_eq!(kind, ReplyKind::Nak);
        assert_eq!(
            nak.opts().get(OptionCode::Message),
            Some(&DhcpOption::Message("address not available".into()))
        );
    }

    #[test]
    fn pool_exhaustion_means_no_offer() {
        let dir = temp_dir("exhausted");
        let e = engine(&dir);
        for n in 1..=2 {
            assert!(
                e.handle(&Client::new(n, MessageType::Discover).msg(), 1, NOW)
                    .reply
                    .is_some()
            );
        }
        let out = e.handle(&Client::new(3, MessageType::Discover).msg(), 1, NOW);
        assert!(out.reply.is_none());
        assert_eq!(e.stats.snapshot().exhausted, 1);
        assert!(e.exhausted_warned.load(Ordering::Relaxed));
        // Offers expire; the next DISCOVER gets an address again.
        let out = e.handle(&Client::new(3, MessageType::Discover).msg(), 1, NOW + 61);
        assert!(out.reply.is_some());
        assert!(!e.exhausted_warned.load(Ordering::Relaxed));
    }

    #[test]
    fn decline_and_release() {
        let dir = temp_dir("decline");
        let e = engine(&dir);
        e.handle(&Client::new(1, MessageType::Discover).msg(), 1, NOW);
        let mut decline = Client::new(1, MessageType::Decline);
        decline.requested = Some(ip(100));
        decline.server = Some(PROXY);
        let out = e.handle(&decline.msg(), 1, NOW);
        assert!(out.reply.is_none() && out.persist);
        let (_, offer, _) = reply(&e.handle(&Client::new(1, MessageType::Discover).msg(), 1, NOW));
        assert_eq!(offer.yiaddr(), ip(101), "the declined address is on hold");
        let mut release = Client::new(1, MessageType::Release);
        release.ciaddr = ip(101);
        release.server = Some(PROXY);
        assert!(e.handle(&release.msg(), 1, NOW).persist);
        let c = e.stats.snapshot();
        assert_eq!((c.declines, c.releases), (1, 1));
    }

    #[tokio::test]
    async fn ack_writes_the_lease_file_first() {
        let dir = temp_dir("persist");
        let e = engine(&dir);
        e.handle(&Client::new(1, MessageType::Discover).msg(), 1, NOW);
        let mut req = Client::new(1, MessageType::Request);
        req.requested = Some(ip(100));
        req.server = Some(PROXY);
        let out = e.handle(&req.msg(), 1, NOW);
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // The broadcast send fails on this unbound socket; the file is written anyway.
        e.finish(out, &socket).await;
        let back = LeaseTable::load(&dir.join(crate::store::DIR_NAME), &pool()).unwrap();
        assert_eq!(back.lease_of(&mac(1)).map(|l| l.ip), Some(ip(100)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn foreign_servers_silence_for_the_hold_time_and_warn_once() {
        let f = ForeignServers::new(Duration::from_secs(300)).with_own_address(PROXY);
        assert_eq!(f.active(1), None);
        f.saw(PROXY, [2; 6], 1);
        assert_eq!(f.active(1), None, "our own address is not foreign");
        f.observe(&DataplaneEvent {
            ts_ns: 0,
            mac: [2, 0, 0x5e, 0, 0, 2],
            vlan: 1,
            svlan: 0,
            xid: 9,
            dhcp_msg: 2,
            kind: EventKind::DhcpServerSeen(SITE),
        });
        let site = ForeignServer {
            ip: SITE,
            mac: [2, 0, 0x5e, 0, 0, 2],
            vlan: 1,
        };
        assert_eq!(f.active(1), Some(site));
        assert_eq!(f.active(10), None, "another VLAN is not silenced");
        assert_eq!(f.silencer(1), Some((site, true)));
        assert_eq!(f.silencer(1), Some((site, false)), "warned once");
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(f.active(1).is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(f.active(1), None, "the hold time ended");
        f.saw(SITE, site.mac, 1);
        assert_eq!(
            f.silencer(1),
            Some((site, true)),
            "a new episode warns again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn silence_counts_and_foreign_memory_is_bounded() {
        let dir = temp_dir("silence");
        let e = engine(&dir);
        assert!(!e.silenced(1));
        e.foreign.saw(SITE, [2; 6], 1);
        assert!(e.silenced(1));
        assert!(e.silenced(1));
        assert_eq!(e.stats.snapshot().silenced, 2);
        for n in 0..(MAX_FOREIGN as u32 + 10) {
            e.foreign.saw(Ipv4Addr::from(0x0a00_0000 + n), [3; 6], 2);
        }
        assert!(e.foreign.lock().len() <= MAX_FOREIGN);
    }

    #[test]
    fn metrics_render() {
        let stats = DhcpStats::default();
        stats.silenced.fetch_add(3, Ordering::Relaxed);
        let mut out = crate::metrics::Exposition::new();
        stats.render(&mut out);
        let text = out.finish();
        assert!(
            text.contains("smi_proxy_dhcp_server_total{event=\"silenced\"} 3"),
            "{text}"
        );
    }

    #[test]
    fn socket_binds_to_a_device() {
        match open_socket("lo", 0) {
            Ok(s) => assert!(s.local_addr().unwrap().port() != 0),
            // Old kernels want CAP_NET_RAW for SO_BINDTODEVICE.
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}"),
        }
        assert!(open_socket("", 0).is_err());
        assert!(open_socket("a-name-far-too-long", 0).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn spawned_server_stops_on_cancel() {
        let dir = temp_dir("spawn");
        let mut cfg = DhcpServerConfig::new(
            pool(),
            PROXY,
            vec![ServeInterface {
                name: "lo".into(),
                vlan: 1,
            }],
            dir.clone(),
        );
        cfg.offer_defer = Duration::ZERO;
        let foreign = Arc::new(ForeignServers::new(DEFAULT_FOREIGN_HOLD));
        let cancel = CancellationToken::new();
        match spawn(cfg, foreign, cancel.clone()).await {
            Ok((task, stats)) => {
                cancel.cancel();
                task.await.unwrap();
                assert_eq!(stats.snapshot(), DhcpCounts::default());
            }
            // Port 67 needs root (or is taken by a DHCP server on this machine).
            Err(DhcpError::Socket { source, .. }) => {
                assert!(
                    matches!(
                        source.raw_os_error(),
                        Some(libc::EACCES | libc::EADDRINUSE | libc::EPERM)
                    ),
                    "{source}"
                );
            }
            Err(e) => panic!("{e}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
