//! Delivering files to clients: a director message names a staged file,
//! the client fetches it over TFTP, and the TFTP and telnet outcomes come
//! back here to complete whoever waits for them. Also the reload a
//! delivery may cause, and sending director messages at all.
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use proxy_common::state;
use tokio::sync::oneshot;

use super::{Core, CoreError, lock};
use crate::mac::Mac;
use crate::smi::codec::{Message, ReloadTime};
use crate::smi::director::{self, SMI_PORT};
use crate::smi::showver::ShowVersion;
use crate::smi::telnet::Session;
use crate::smi::tftp::{StagedFile, TftpEvent};

/// Waiters keyed by what completes them.
#[derive(Default)]
pub(super) struct Waiters {
    /// TFTP path -> waiter for the client's download.
    pub(super) downloads: HashMap<String, oneshot::Sender<Result<(), String>>>,
    /// TFTP path of a file the client fetches first (an image list) ->
    /// the path whose waiter fails if that fetch fails.
    pub(super) first_fetches: HashMap<String, String>,
    /// TFTP path of an upload slot -> waiter for the uploaded bytes.
    pub(super) uploads: HashMap<String, oneshot::Sender<Result<bytes::Bytes, String>>>,
    /// Client IPv4 -> waiter for its reverse-telnet session.
    pub(super) identities: HashMap<Ipv4Addr, oneshot::Sender<Result<ShowVersion, String>>>,
    /// Client MAC -> waiter for its restart after a reload.
    pub(super) restarts: HashMap<Mac, oneshot::Sender<()>>,
}

impl Waiters {
    /// A client's TFTP fetch of `path` ended: completes the delivery
    /// waiting for it, or fails the one whose first fetch it was.
    pub(super) fn fetch_finished(&mut self, path: &str, result: Result<(), String>) {
        if let Some(w) = self.downloads.remove(path) {
            let _ = w.send(result);
        } else if let Some(main) = self.first_fetches.remove(path)
            && let Err(reason) = result
            && let Some(w) = self.downloads.remove(&main)
        {
            let _ = w.send(Err(format!("{path}: {reason}")));
        }
    }
}

/// Attempts of one delivery whose transfers fail ([`Core::deliver`]).
const DELIVERY_ATTEMPTS: u32 = 3;

impl Core {
    pub(super) fn on_tftp(&self, ev: TftpEvent) {
        let peer = match &ev {
            TftpEvent::Completed { peer, .. }
            | TftpEvent::Failed { peer, .. }
            | TftpEvent::Uploaded { peer, .. } => *peer,
        };
        let _client = crate::logging::peer(peer.ip()).entered();
        let (path, result) = match ev {
            TftpEvent::Completed { path, bytes, .. } => {
                tracing::info!(target: "smi_proxy::download", "TFTP: fetched {path} ({bytes} bytes)");
                (path, Ok(()))
            }
            TftpEvent::Failed { path, reason, .. } => {
                tracing::warn!(target: "smi_proxy::download", "TFTP: failed to fetch {path}: {reason}");
                (path, Err(reason))
            }
            TftpEvent::Uploaded { path, data, .. } => {
                tracing::info!(target: "smi_proxy::download", "TFTP: uploaded {path} ({} bytes)", data.len());
                if let Some(w) = lock(&self.waiters).uploads.remove(&path) {
                    let _ = w.send(Ok(data));
                }
                return;
            }
        };
        let mut waiters = lock(&self.waiters);
        if let (Some(w), Err(reason)) = (waiters.uploads.remove(&path), &result) {
            let _ = w.send(Err(reason.clone()));
        }
        waiters.fetch_finished(&path, result);
    }

    pub(super) fn on_telnet(&self, s: Session) {
        let SocketAddr::V4(peer) = s.peer else {
            return;
        };
        let waiter = lock(&self.waiters).identities.remove(peer.ip());
        match waiter {
            Some(w) => {
                let _ = w.send(s.result.map_err(|e| e.to_string()));
            }
            None => {
                tracing::warn!(target: "smi_proxy", "reverse telnet from {peer}, which no onboarding expects")
            }
        }
    }

    /// Sends `msg` to `mac` and waits until the client has fetched `file`;
    /// a failed fetch of `file`, or of `first` (a file the client fetches
    /// before it, such as an image list), fails the attempt at once. A
    /// failed transfer (a client or segment overloaded for a moment: a
    /// block not acknowledged in time) is tried again, up to
    /// [`DELIVERY_ATTEMPTS`] in all, a second apart.
    pub(crate) async fn deliver(
        &self,
        mac: Mac,
        ip: Ipv4Addr,
        file: StagedFile,
        first: Option<&StagedFile>,
        msg: Message,
    ) -> Result<(), CoreError> {
        let mut attempt = 1;
        loop {
            let result = self
                .deliver_within(mac, ip, &file, first, msg.clone())
                .await;
            {
                let mut waiters = lock(&self.waiters);
                waiters.downloads.remove(file.path());
                if let Some(first) = first {
                    waiters.first_fetches.remove(first.path());
                }
            }
            match result {
                Err(CoreError::Transfer(reason)) if attempt < DELIVERY_ATTEMPTS => {
                    tracing::warn!(target: "smi_proxy::download", "{} failed ({reason}); trying again", msg.name());
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                result => return result,
            }
        }
    }

    /// One attempt of [`Core::deliver`], within one admission.
    async fn deliver_within(
        &self,
        mac: Mac,
        ip: Ipv4Addr,
        file: &StagedFile,
        first: Option<&StagedFile>,
        msg: Message,
    ) -> Result<(), CoreError> {
        let _turn = self
            .deliveries
            .acquire()
            .await
            .map_err(|_| CoreError::ShuttingDown)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut waiters = lock(&self.waiters);
            waiters.downloads.insert(file.path().to_owned(), tx);
            if let Some(first) = first {
                waiters
                    .first_fetches
                    .insert(first.path().to_owned(), file.path().to_owned());
            }
        }
        tracing::info!(target: "smi_proxy::download", "{} with {}", msg.name(), file.path());
        self.send_smi(mac, ip, &msg)
            .await
            .map_err(CoreError::Unreachable)?;
        match tokio::time::timeout(self.cfg.download_timeout, rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(reason))) => Err(CoreError::Transfer(reason)),
            Ok(Err(_)) => Err(CoreError::WaiterDropped("TFTP")),
            Err(_) => Err(CoreError::NotFetched {
                path: file.path().to_owned(),
                after: self.cfg.download_timeout,
            }),
        }
    }

    /// Waits for the restart registered by [`Core::expect_reload`] (a DHCP
    /// discover while upgrading), then probes and re-admits the client.
    pub(crate) async fn await_reload(
        &self,
        mac: Mac,
        ip: Ipv4Addr,
        restarted: oneshot::Receiver<()>,
    ) -> Result<(), CoreError> {
        match tokio::time::timeout(self.cfg.reload_timeout, restarted).await {
            Ok(Ok(())) => {}
            _ => {
                lock(&self.waiters).restarts.remove(&mac);
                return Err(CoreError::NotBack(self.cfg.reload_timeout));
            }
        }
        // A reloading switch boots, then runs DHCP again before it answers:
        // give it about a minute (tries 5 s apart once backed off).
        self.probe_and_admit_within(mac, ip, 16).await
    }

    /// Marks the client upgrading in the kernel (so that XDP reports its
    /// next DHCP discover as a restart) and registers the waiter for that
    /// restart. Called before the message that causes the reload is sent:
    /// a switch may reload before its download's completion is processed.
    pub(crate) fn expect_reload(&self, mac: Mac) -> Result<oneshot::Receiver<()>, CoreError> {
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).restarts.insert(mac, tx);
        self.table.set_state(mac.0, state::UPGRADING)?;
        Ok(rx)
    }

    /// Sends one director message to the client `mac` at `ip` and counts it.
    pub(super) async fn send_smi(
        &self,
        mac: Mac,
        ip: Ipv4Addr,
        msg: &Message,
    ) -> Result<(), director::DirectorError> {
        self.seed_neighbour(mac, ip);
        let result = {
            let _slot = self.smi_slot().await;
            director::send(SocketAddr::from((ip, SMI_PORT)), msg, &self.cfg.limits).await
        };
        self.smi.record(director::SmiMessage::of(msg), &result);
        result
    }

    /// Reload time used when a job asks for a reload (`delayIn` 0 -> 00:01,
    /// SIET's value; the units of `delayIn` are not public).
    pub(crate) fn reload_time() -> ReloadTime {
        ReloadTime {
            hours: 0,
            minutes: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    #[test]
    fn a_failed_first_fetch_fails_the_delivery() {
        let mut w = Waiters::default();
        let (tx, mut rx) = oneshot::channel();
        w.downloads.insert("d/img.tar".into(), tx);
        w.first_fetches
            .insert("d/img.txt".into(), "d/img.tar".into());
        w.fetch_finished("d/img.txt", Err("no answer after 5 retransmissions".into()));
        assert_eq!(
            rx.try_recv().expect("answered"),
            Err("d/img.txt: no answer after 5 retransmissions".into())
        );
        assert!(w.downloads.is_empty() && w.first_fetches.is_empty());
    }

    #[test]
    fn a_fetched_first_file_leaves_the_delivery_waiting() {
        let mut w = Waiters::default();
        let (tx, mut rx) = oneshot::channel();
        w.downloads.insert("d/img.tar".into(), tx);
        w.first_fetches
            .insert("d/img.txt".into(), "d/img.tar".into());
        w.fetch_finished("d/img.txt", Ok(()));
        assert!(rx.try_recv().is_err(), "still waiting for the image");
        w.fetch_finished("d/other.tar", Err("someone else's".into()));
        assert!(rx.try_recv().is_err());
        w.fetch_finished("d/img.tar", Ok(()));
        assert_eq!(rx.try_recv().expect("answered"), Ok(()));
    }
}
