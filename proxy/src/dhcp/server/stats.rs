//! The server's counters ([`DhcpStats`]), their snapshot ([`DhcpCounts`])
//! and their `/metrics` rendering.

use std::sync::atomic::{AtomicU64, Ordering};

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

/// Adds one to `counter`.
pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
