//! The local DHCP server (`vstack dhcp-localserver`): hands the clients on
//! the startup VLAN an address from the configured pool, the proxy as TFTP
//! server (option 150) and a host name, unless another DHCP server answers
//! on the segment.
//!
//! - [`codec`]: decoding client requests and building OFFER/ACK/NAK (pure).
//! - [`leases`]: the lease table and its file `vstack/dhcp_leases.txt`.
//! - [`server`]: the sockets, the request handling, the silence rule
//!   ([`ForeignServers`]) and the counters ([`DhcpStats`]).
//!
//! The daemon starts it with one call, [`start_from`], which also taps the
//! dataplane's event stream: `DhcpServerSeen` events feed
//! [`ForeignServers`]; and since XDP only sees incoming frames, it never
//! sees the local server's ACKs, so for each binding the tap does what XDP
//! does on an ACK: the kernel client entry gets the address and leaves the
//! `NEW` state (else the client's replies to the SMI probe are dropped), and
//! an `AddressLearned` event joins the stream.
//!
//! ```ignore
//! // cfg: &ProxyConfig (its [dhcp_localserver]); proxy_ip: the resolved proxy address.
//! let (dp_rx, _dhcp) =
//!     crate::dhcp::start_from(cfg, proxy_ip, dp.table(), dp_rx, cancel.clone()).await?;
//! ```
//!
//! The server reads its configuration once, at start: a `vstack
//! dhcp-localserver` command takes effect at the next start (with
//! `--config`, the daemon saves it to the file).
pub mod codec;
pub mod leases;
pub mod server;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use server::{
    DEFAULT_DECLINE_HOLD, DEFAULT_FOREIGN_HOLD, DEFAULT_OFFER_DEFER, DhcpCounts, DhcpError,
    DhcpServerConfig, DhcpStats, ForeignServer, ForeignServers, LeaseBound, ServeInterface, spawn,
};

use crate::clock::monotonic_ns;
use crate::config::{DhcpPool, ProxyConfig};
use crate::dataplane::{ClientTable, DataplaneEvent};
use crate::mac::Mac;
use proxy_common::state;

/// Capacity of the tapped event channel (as the daemon's own).
const EVENT_QUEUE: usize = 1024;

/// What the local DHCP server needs from the daemon's configuration.
#[derive(Clone, Debug)]
pub struct DhcpStart {
    /// The pool; `None`: the server is off.
    pub pool: Option<DhcpPool>,
    /// The proxy address; `None`: the proxy is off, and so is the server.
    pub proxy_ip: Option<Ipv4Addr>,
    /// Switch-facing interfaces.
    pub interfaces: Vec<String>,
    /// VLAN of untagged frames on those interfaces.
    pub untagged_vlan: u16,
    /// The startup VLANs: the server answers only if the untagged VLAN is one.
    pub startup_vlans: Vec<u16>,
    /// State directory (leases in `vstack/dhcp_leases.txt`).
    pub state_dir: PathBuf,
    /// How long an OFFER waits for a foreign server.
    pub offer_defer: Duration,
    /// How long a foreign server keeps the local one silent.
    pub foreign_hold: Duration,
}

impl DhcpStart {
    /// The settings of `cfg` (its `[dhcp_localserver]` table, interfaces,
    /// VLANs and state directory), with `proxy_ip` the proxy address the
    /// daemon resolved (`None`: the proxy is off).
    pub fn new(cfg: &ProxyConfig, proxy_ip: Option<Ipv4Addr>) -> Self {
        Self {
            pool: cfg.dhcp_localserver.pool(),
            proxy_ip,
            interfaces: cfg.interfaces.clone(),
            untagged_vlan: cfg.untagged_vlan,
            startup_vlans: vec![cfg.startup_vlan],
            state_dir: cfg.state_dir.clone(),
            offer_defer: DEFAULT_OFFER_DEFER,
            foreign_hold: DEFAULT_FOREIGN_HOLD,
        }
    }
}

/// The running local DHCP server.
#[derive(Debug)]
pub struct DhcpHandle {
    /// The server task (ends after cancellation).
    pub task: JoinHandle<()>,
    /// The event tap (ends after cancellation or when the events end).
    pub tap: JoinHandle<()>,
    /// Its counters (for `/metrics`: [`DhcpStats::collect`]).
    pub stats: Arc<DhcpStats>,
    /// The foreign servers it defers to.
    pub foreign: Arc<ForeignServers>,
}

/// Starts the local DHCP server if `cfg` enables it, and returns the
/// dataplane event stream to use from now on: `events` with every
/// `DhcpServerSeen` fed to the server's [`ForeignServers`] and the local
/// server's new bindings added as `AddressLearned`. When the server is off,
/// `events` comes back untouched.
///
/// Off when there is no pool, no proxy address, or when the untagged VLAN
/// of the interfaces is not a startup VLAN (logged). Fails when the lease
/// file is corrupt or a socket cannot be opened.
pub async fn start_from(
    cfg: &ProxyConfig,
    proxy_ip: Option<Ipv4Addr>,
    table: ClientTable,
    events: mpsc::Receiver<Vec<DataplaneEvent>>,
    cancel: CancellationToken,
) -> anyhow::Result<(mpsc::Receiver<Vec<DataplaneEvent>>, Option<DhcpHandle>)> {
    let learn = move |b: &LeaseBound| {
        if let Err(e) = learn_in_kernel(&table, b) {
            crate::logging::client(Mac(b.mac)).in_scope(|| {
                tracing::warn!(
                    "DHCP: bound to {}, but the kernel client table was not updated: {e}",
                    b.ip
                );
            });
        }
    };
    start_with(DhcpStart::new(cfg, proxy_ip), learn, events, cancel).await
}

/// What XDP does to a client's entry when it sees its ACK: the address,
/// and `NEW` (or no entry) becomes `DISCOVERED`.
fn learn_in_kernel(
    table: &ClientTable,
    b: &LeaseBound,
) -> Result<(), crate::dataplane::DataplaneError> {
    table.update(b.mac, |e| {
        if e.state == 0 {
            // No entry (evicted, or the DISCOVER was not seen): a new one.
            let now = monotonic_ns();
            e.first_seen_ns = now;
            e.last_seen_ns = now;
            e.vlan = b.vlan;
        }
        e.ipv4 = b.ip.octets();
        if matches!(e.state, 0 | state::NEW) {
            e.state = state::DISCOVERED;
        }
    })
}

/// [`start_from`] with the settings spelt out; `learn` is called for each
/// new binding before it is added to the event stream.
pub async fn start_with(
    start: DhcpStart,
    learn: impl Fn(&LeaseBound) + Send + 'static,
    events: mpsc::Receiver<Vec<DataplaneEvent>>,
    cancel: CancellationToken,
) -> anyhow::Result<(mpsc::Receiver<Vec<DataplaneEvent>>, Option<DhcpHandle>)> {
    let Some(pool) = start.pool else {
        return Ok((events, None));
    };
    let Some(proxy_ip) = start.proxy_ip else {
        tracing::warn!("local DHCP server configured, but the proxy has no address: not started");
        return Ok((events, None));
    };
    if !start.startup_vlans.contains(&start.untagged_vlan) {
        tracing::warn!(
            "local DHCP server not started: the untagged VLAN {} of {} is not a startup VLAN ({:?})",
            start.untagged_vlan,
            start.interfaces.join(", "),
            start.startup_vlans
        );
        return Ok((events, None));
    }
    let interfaces = start
        .interfaces
        .iter()
        .map(|name| ServeInterface {
            name: name.clone(),
            vlan: start.untagged_vlan,
        })
        .collect();
    let (bound_tx, bound_rx) = mpsc::channel(EVENT_QUEUE);
    let mut cfg = DhcpServerConfig::new(pool, proxy_ip, interfaces, start.state_dir);
    cfg.offer_defer = start.offer_defer;
    cfg.bound_events = Some(bound_tx);
    let foreign = Arc::new(ForeignServers::new(start.foreign_hold).with_own_address(proxy_ip));
    let (task, stats) = spawn(cfg, foreign.clone(), cancel.clone())
        .await
        .context("local DHCP server")?;
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    let tap = tokio::spawn(tap(events, bound_rx, learn, tx, foreign.clone(), cancel));
    Ok((
        rx,
        Some(DhcpHandle {
            task,
            tap,
            stats,
            foreign,
        }),
    ))
}

/// Forwards `events` to `out`, feeding `foreign` on the way, and adds the
/// local server's bindings (after `learn`). Keeps feeding `foreign` if
/// `out` closes.
async fn tap(
    mut events: mpsc::Receiver<Vec<DataplaneEvent>>,
    mut bound: mpsc::Receiver<LeaseBound>,
    learn: impl Fn(&LeaseBound),
    out: mpsc::Sender<Vec<DataplaneEvent>>,
    foreign: Arc<ForeignServers>,
    cancel: CancellationToken,
) {
    let mut forwarding = true;
    loop {
        let batch = tokio::select! {
            () = cancel.cancelled() => break,
            batch = events.recv() => match batch {
                Some(batch) => {
                    batch.iter().for_each(|ev| foreign.observe(ev));
                    batch
                }
                None => break,
            },
            Some(b) = bound.recv() => {
                learn(&b);
                vec![b.to_event()]
            }
        };
        if forwarding && out.send(batch).await.is_err() {
            forwarding = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::EventKind;

    fn event(kind: EventKind) -> DataplaneEvent {
        DataplaneEvent {
            ts_ns: 1,
            mac: [2, 0, 0, 0, 0, 2],
            vlan: 1,
            svlan: 0,
            xid: 0,
            dhcp_msg: 2,
            kind,
        }
    }

    fn start() -> DhcpStart {
        DhcpStart {
            pool: None,
            proxy_ip: Some(Ipv4Addr::new(192, 0, 2, 1)),
            interfaces: vec!["lo".into()],
            untagged_vlan: 1,
            startup_vlans: vec![1],
            state_dir: std::env::temp_dir(),
            offer_defer: DEFAULT_OFFER_DEFER,
            foreign_hold: DEFAULT_FOREIGN_HOLD,
        }
    }

    #[tokio::test]
    async fn off_leaves_the_event_stream_alone() {
        let pool = DhcpPool {
            start: Ipv4Addr::new(192, 0, 2, 100),
            end: Ipv4Addr::new(192, 0, 2, 199),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            default_router: None,
            lease_secs: 600,
        };
        let cases = [
            start(),
            DhcpStart {
                pool: Some(pool),
                proxy_ip: None,
                ..start()
            },
            DhcpStart {
                pool: Some(pool),
                startup_vlans: vec![10],
                ..start()
            },
        ];
        for input in cases {
            let (tx, rx) = mpsc::channel(4);
            let (mut rx, handle) = start_with(input, |_| {}, rx, CancellationToken::new())
                .await
                .unwrap();
            assert!(handle.is_none());
            tx.send(vec![event(EventKind::ClientRestarted)])
                .await
                .unwrap();
            assert_eq!(rx.recv().await.map(|b| b.len()), Some(1));
        }
    }

    #[tokio::test]
    async fn tap_feeds_foreign_servers_and_adds_bindings() {
        let (events_tx, events_rx) = mpsc::channel(4);
        let (bound_tx, bound_rx) = mpsc::channel(4);
        let (out_tx, mut out_rx) = mpsc::channel(4);
        let foreign = Arc::new(ForeignServers::new(DEFAULT_FOREIGN_HOLD));
        let cancel = CancellationToken::new();
        let learned = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = learned.clone();
        let learn = move |b: &LeaseBound| log.lock().unwrap().push(*b);
        let task = tokio::spawn(tap(
            events_rx,
            bound_rx,
            learn,
            out_tx,
            foreign.clone(),
            cancel.clone(),
        ));
        let seen = event(EventKind::DhcpServerSeen(Ipv4Addr::new(192, 0, 2, 2)));
        events_tx.send(vec![seen.clone()]).await.unwrap();
        assert_eq!(out_rx.recv().await, Some(vec![seen]));
        assert_eq!(
            foreign.active(1).map(|s| s.ip),
            Some(Ipv4Addr::new(192, 0, 2, 2))
        );
        let bound = LeaseBound {
            mac: [0, 0x1e, 0xf7, 0, 0, 1],
            ip: Ipv4Addr::new(192, 0, 2, 100),
            vlan: 1,
        };
        bound_tx.send(bound).await.unwrap();
        let got = out_rx.recv().await.unwrap();
        assert_eq!(
            got[0].kind,
            EventKind::AddressLearned(Ipv4Addr::new(192, 0, 2, 100))
        );
        assert_eq!(got[0].mac, bound.mac);
        assert_eq!(*learned.lock().unwrap(), vec![bound], "learned first");
        // The consumer goes away: the tap keeps feeding the foreign servers.
        drop(out_rx);
        let mut other_vlan = event(EventKind::DhcpServerSeen(Ipv4Addr::new(192, 0, 2, 3)));
        other_vlan.vlan = 2;
        events_tx.send(vec![other_vlan]).await.unwrap();
        drop(events_tx);
        task.await.unwrap();
        assert_eq!(
            foreign.active(2).map(|s| s.ip),
            Some(Ipv4Addr::new(192, 0, 2, 3))
        );
    }
}
