//! The sans-IO request handling: a decoded client request in, an
//! [`Outcome`] out (the reply to send, whether the lease file must be
//! written, a new binding to report). The I/O it asks for is done in `run`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::stats::bump;
use super::{DhcpServerConfig, DhcpStats, ForeignServers, LeaseBound};
use crate::dhcp::codec::{self, ClientMessage, ReplyKind, ReplyOptions, RequestKind};
use crate::dhcp::leases::{LeaseError, LeaseTable};
use crate::mac::Mac;

/// A reply ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Reply {
    /// OFFER, ACK or NAK.
    pub(super) kind: ReplyKind,
    /// The encoded message.
    pub(super) bytes: Vec<u8>,
    /// Where it goes.
    pub(super) to: SocketAddrV4,
}

/// What handling one request produced.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    /// The reply to send, if any.
    pub(super) reply: Option<Reply>,
    /// The lease table changed in a way the file must record.
    pub(super) persist: bool,
    /// A new binding to report, if any.
    pub(super) bound: Option<LeaseBound>,
}

/// The server's state, shared by the interface loops and deferred OFFERs.
pub(super) struct Engine {
    /// The settings.
    pub(super) cfg: DhcpServerConfig,
    reply: ReplyOptions,
    /// Where the lease file is written.
    pub(super) vstack_dir: PathBuf,
    table: Mutex<LeaseTable>,
    /// The foreign servers that keep this one silent.
    pub(super) foreign: Arc<ForeignServers>,
    /// The counters.
    pub(super) stats: Arc<DhcpStats>,
    /// Serialises lease file writes (each writes the latest table).
    pub(super) writer: tokio::sync::Mutex<()>,
    /// The pool exhaustion warning was logged (cleared by the next offer).
    pub(super) exhausted_warned: AtomicBool,
}

impl Engine {
    /// The state of a server with `cfg`, the leases of `table` and the
    /// foreign servers of `foreign`.
    pub(super) fn new(
        cfg: DhcpServerConfig,
        table: LeaseTable,
        foreign: Arc<ForeignServers>,
    ) -> Self {
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

    /// The lease table (a poisoned lock is taken over).
    pub(super) fn table(&self) -> MutexGuard<'_, LeaseTable> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a foreign server answers on `vlan` (then counts and warns once).
    pub(super) fn silenced(&self, vlan: u16) -> bool {
        let Some((server, first)) = self.foreign.silencer(vlan) else {
            return false;
        };
        bump(&self.stats.silenced);
        if first {
            tracing::warn!(
                "DHCP server {} ({}) answers on vlan {}: local DHCP server stays silent",
                server.ip,
                Mac(server.mac),
                server.vlan
            );
        }
        true
    }

    /// The answer to a request that arrived on `vlan` (no silence check:
    /// the caller did it). DISCOVERs are answered at once.
    pub(super) fn handle(&self, req: &ClientMessage, vlan: u16, now: u64) -> Outcome {
        match req.kind {
            RequestKind::Discover => self.offer(req, now),
            RequestKind::Request => self.request(req, vlan, now),
            RequestKind::Decline => self.decline(req, now),
            RequestKind::Release => self.release(req, now),
            RequestKind::Inform => self.ignore(req, "DHCPINFORM is not served"),
        }
    }

    /// Counts and logs a request left unanswered.
    pub(super) fn ignore(&self, req: &ClientMessage, why: &str) -> Outcome {
        bump(&self.stats.ignored);
        tracing::debug!("DHCP {:?} ignored: {why}", req.kind);
        Outcome::default()
    }

    /// An OFFER from the pool, or nothing when it is exhausted.
    pub(super) fn offer(&self, req: &ClientMessage, now: u64) -> Outcome {
        let offered = self.table().offer(req.mac, req.requested_ip, now);
        let ip = match offered {
            Ok(ip) => ip,
            Err(e) => {
                bump(&self.stats.exhausted);
                if !self.exhausted_warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!("DHCP: no offer: {e}");
                } else {
                    tracing::debug!("DHCP: no offer: {e}");
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
                    tracing::info!("DHCP: asks for {asked} but has {held}: NAK");
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
                    tracing::info!("DHCP: bound to {asked} on vlan {vlan}");
                    out.bound = Some(LeaseBound {
                        mac: req.mac,
                        ip: asked,
                        vlan,
                    });
                }
                out
            }
            Err(e) => {
                tracing::info!("DHCP: asks for {asked}: {e}: NAK");
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
        tracing::warn!("DHCP: declined {ip} (in use on the segment?): on hold for {hold} s");
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
        tracing::info!("DHCP: released {}", req.ciaddr);
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
                tracing::error!("DHCP: reply: {e}");
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
}
