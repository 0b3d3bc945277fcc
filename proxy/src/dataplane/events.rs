//! The classifier's event ring buffer and its aya-log ring, read with
//! tokio.
use std::net::Ipv4Addr;

use aya::maps::{MapData, RingBuf};
use proxy_common::{Event, drop_reason, event};
use tokio::io::unix::AsyncFd;

use super::DataplaneError;

/// What the classifier reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// First DHCP from an unknown MAC on a startup VLAN.
    NewClient {
        /// DHCP option 61, as sent (e.g. `\0cisco-b414.896c.12c0-Vl1`).
        client_id: Vec<u8>,
        /// DHCP option 60.
        vendor_class: Vec<u8>,
        /// Option 50, when the client asked for an address.
        requested: Option<Ipv4Addr>,
    },
    /// A DHCP ACK gave the client this address.
    AddressLearned(Ipv4Addr),
    /// SMI from the client was dropped.
    SmiDropped {
        /// Why.
        reason: DropReason,
        /// The SMI length word, for an oversize drop.
        len_word: u32,
    },
    /// A DHCP server (MAC in `mac`) offered an address.
    DhcpServerSeen(Ipv4Addr),
    /// A client that was upgrading sent a DISCOVER: it reloaded.
    ClientRestarted,
    /// A kind this daemon does not know (newer object?).
    Unknown(u32),
}

/// Why XDP dropped SMI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum DropReason {
    /// The client is unknown or not admitted.
    NotAdmitted,
    /// Not a startup VLAN.
    WrongVlan,
    /// The length word is over the cap.
    Oversize,
    /// A reason code this daemon does not know.
    Other(u8),
}

/// One event, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneEvent {
    /// Kernel monotonic time of the event, ns.
    pub ts_ns: u64,
    /// Client MAC (server MAC for `DhcpServerSeen`).
    pub mac: [u8; 6],
    /// VLAN (innermost tag, or the untagged VLAN).
    pub vlan: u16,
    /// Outer VLAN of a QinQ frame, 0 if none.
    pub svlan: u16,
    /// DHCP transaction id (0 for SMI events).
    pub xid: u32,
    /// DHCP message type, 0 if none.
    pub dhcp_msg: u8,
    /// What happened.
    pub kind: EventKind,
}

impl DataplaneEvent {
    /// Decodes one ring-buffer record; `None` if it is not a whole [`Event`].
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < size_of::<Event>() {
            return None;
        }
        // SAFETY: length checked; `Event` is plain integers, any bytes are valid.
        let ev: Event = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        let take = |buf: &[u8], len: u8| buf[..usize::from(len).min(buf.len())].to_vec();
        let ip = Ipv4Addr::from(ev.ipv4);
        let kind = match ev.kind {
            event::NEW_CLIENT => EventKind::NewClient {
                client_id: take(&ev.client_id, ev.client_id_len),
                vendor_class: take(&ev.vendor_class, ev.vendor_class_len),
                requested: (!ip.is_unspecified()).then_some(ip),
            },
            event::ADDRESS_LEARNED => EventKind::AddressLearned(ip),
            event::SMI_DROPPED => EventKind::SmiDropped {
                reason: match ev.reason {
                    drop_reason::NOT_ADMITTED => DropReason::NotAdmitted,
                    drop_reason::WRONG_VLAN => DropReason::WrongVlan,
                    drop_reason::OVERSIZE => DropReason::Oversize,
                    other => DropReason::Other(other),
                },
                len_word: ev.xid,
            },
            event::DHCP_SERVER_SEEN => EventKind::DhcpServerSeen(ip),
            event::CLIENT_RESTARTED => EventKind::ClientRestarted,
            other => EventKind::Unknown(other),
        };
        Some(Self {
            ts_ns: ev.ts_ns,
            mac: ev.mac,
            vlan: ev.vlan,
            svlan: ev.svlan,
            xid: if matches!(kind, EventKind::SmiDropped { .. }) {
                0
            } else {
                ev.xid
            },
            dhcp_msg: ev.dhcp_msg,
            kind,
        })
    }
}

/// Async reader of the event ring buffer.
pub struct EventStream {
    fd: AsyncFd<RingBuf<MapData>>,
}

impl EventStream {
    pub(super) fn new(ring: RingBuf<MapData>) -> Result<Self, DataplaneError> {
        // SAFETY: the RingBuf owns its map fd for as long as the AsyncFd
        // owns the RingBuf, and `as_raw_fd` always returns that fd.
        let fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| DataplaneError::EventPoll(e.into_parts().1))?;
        Ok(Self { fd })
    }

    /// Waits for events and returns every one available (at least one).
    pub async fn next_batch(&mut self) -> std::io::Result<Vec<DataplaneEvent>> {
        loop {
            let mut guard = self.fd.readable_mut().await?;
            let mut out = Vec::new();
            let ring = guard.get_inner_mut();
            while let Some(item) = ring.next() {
                match DataplaneEvent::decode(&item) {
                    Some(ev) => out.push(ev),
                    None => tracing::warn!("dataplane: short event record ({} bytes)", item.len()),
                }
            }
            guard.clear_ready();
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }
}

/// The classifier's aya-log records (rare events, written only while the
/// policy's `log_events` is set), forwarded to the daemon's log.
pub struct XdpLog {
    fd: AsyncFd<aya_log::EbpfLogger<&'static dyn tracing_log::log::Log>>,
}

impl XdpLog {
    pub(super) fn new(
        logger: aya_log::EbpfLogger<&'static dyn tracing_log::log::Log>,
    ) -> Result<Self, DataplaneError> {
        // SAFETY: the logger owns its ring's map fd for as long as the
        // AsyncFd owns the logger, and `as_raw_fd` always returns that fd.
        let fd = unsafe { AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE) }
            .map_err(|e| DataplaneError::EventPoll(e.into_parts().1))?;
        Ok(Self { fd })
    }

    /// Forwards records as they arrive; returns only on a poll error.
    pub async fn forward(&mut self) -> std::io::Result<()> {
        loop {
            let mut guard = self.fd.readable_mut().await?;
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    }
}
