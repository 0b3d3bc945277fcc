//! Running the server: [`spawn`] loads the lease file and opens the
//! sockets, one loop per interface receives and decodes requests, defers
//! OFFERs, and does the I/O the engine asks for (the lease file, the
//! reply, the bound event).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use super::engine::{Engine, Outcome};
use super::stats::bump;
use super::{
    DhcpServerConfig, DhcpStats, ForeignServers, MAX_DEFERRED_OFFERS, ServeInterface, open_socket,
};
use crate::clock::unix_secs;
use crate::dhcp::codec::{RequestKind, SERVER_PORT, decode_request};
use crate::dhcp::leases::{FILE_NAME, LeaseFileError, LeaseTable};
use crate::mac::Mac;

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

impl Engine {
    /// Writes the lease file (if needed), sends the reply, then reports a
    /// new binding: an ACK leaves only once its lease is on disk, and the
    /// proxy hears of the address only once the client can have it.
    pub(super) async fn finish(&self, out: Outcome, socket: &UdpSocket) {
        if out.persist {
            self.persist().await;
        }
        if let Some(reply) = out.reply {
            if let Err(e) = socket.send_to(&reply.bytes, reply.to).await {
                tracing::warn!("DHCP: sending {:?} to {}: {e}", reply.kind, reply.to);
            }
        }
        if let (Some(bound), Some(tx)) = (out.bound, &self.cfg.bound_events) {
            if tx.try_send(bound).is_err() {
                tracing::warn!(
                    "DHCP: bound to {}, but the daemon was not told (queue full or closed)",
                    bound.ip
                );
            }
        }
    }

    /// Writes the whole lease table to its file (one writer at a time).
    async fn persist(&self) {
        let _one_writer = self.writer.lock().await;
        let text = self.table().render();
        let dir = self.vstack_dir.clone();
        let written =
            tokio::task::spawn_blocking(move || LeaseTable::write_text(&dir, &text)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("DHCP: cannot save the leases: {e}"),
            Err(e) => tracing::error!("DHCP: lease writer: {e}"),
        }
    }
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
    tracing::info!(
        "local DHCP server: pool {}-{} mask {} router {} lease {} s, {} lease(s) from {}, serving {}",
        cfg.pool.start,
        cfg.pool.end,
        cfg.pool.netmask,
        cfg.pool.default_router.unwrap_or(cfg.server_ip),
        cfg.pool.lease_secs,
        table.leases().filter(|l| l.bound).count(),
        vstack.join(FILE_NAME).display(),
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
        tracing::info!("local DHCP server stopped");
    });
    Ok((task, stats))
}

/// Serves the requests that arrive on one interface until `cancel`.
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
                    tracing::warn!("DHCP on {}: receive: {e}", iface.name);
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
                tracing::debug!("DHCP on {}: {n} bytes refused: {e}", iface.name);
                continue;
            }
        };
        if engine.silenced(vlan) {
            continue;
        }
        // This exchange is part of the client's story.
        let client = crate::logging::client(Mac(req.mac));
        let defer = engine.cfg.offer_defer;
        if req.kind == RequestKind::Discover && !defer.is_zero() {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                client.in_scope(|| engine.ignore(&req, "too many OFFERs pending"));
                continue;
            };
            let (engine, socket, cancel) = (engine.clone(), socket.clone(), cancel.clone());
            let deferred = async move {
                let _permit = permit;
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(defer) => {}
                }
                if engine.silenced(vlan) {
                    return;
                }
                let out = engine.offer(&req, unix_secs());
                engine.finish(out, &socket).await;
            };
            tracker.spawn(deferred.instrument(client));
            continue;
        }
        let out = client.in_scope(|| engine.handle(&req, vlan, unix_secs()));
        engine.finish(out, &socket).instrument(client).await;
    }
}
