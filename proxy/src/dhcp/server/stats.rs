//! The server's counters ([`DhcpStats`]), their snapshot ([`DhcpCounts`])
//! and their `/metrics` family.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// Counters of the local DHCP server: the series of
/// `smi_proxy_dhcp_server_total{event}`, every one there (at 0) from the
/// start.
#[derive(Debug)]
pub struct DhcpStats {
    family: Family<[(&'static str, &'static str); 1], Counter>,
    /// OFFERs sent.
    pub offers: Counter,
    /// ACKs sent.
    pub acks: Counter,
    /// NAKs sent.
    pub naks: Counter,
    /// Requests not answered because they are not for this server (another
    /// server chosen, unknown client renewing, INFORM, too many OFFERs
    /// pending, a DECLINE or RELEASE of an address the client does not hold).
    pub ignored: Counter,
    /// Requests not answered because another DHCP server answers on the VLAN.
    pub silenced: Counter,
    /// Datagrams that are not a DHCP client request.
    pub malformed: Counter,
    /// DISCOVERs left without an OFFER because the pool is exhausted.
    pub exhausted: Counter,
    /// Addresses declined by clients.
    pub declines: Counter,
    /// Leases released by clients.
    pub releases: Counter,
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

impl Default for DhcpStats {
    fn default() -> Self {
        let family: Family<_, Counter> = Family::default();
        let [
            offers,
            acks,
            naks,
            ignored,
            silenced,
            malformed,
            exhausted,
            declines,
            releases,
        ] = [
            "offer",
            "ack",
            "nak",
            "ignored",
            "silenced",
            "malformed",
            "exhausted",
            "decline",
            "release",
        ]
        .map(|event| family.get_or_create_owned(&[("event", event)]));
        Self {
            family,
            offers,
            acks,
            naks,
            ignored,
            silenced,
            malformed,
            exhausted,
            declines,
            releases,
        }
    }
}

impl DhcpStats {
    /// The counters now.
    pub fn snapshot(&self) -> DhcpCounts {
        DhcpCounts {
            offers: self.offers.get(),
            acks: self.acks.get(),
            naks: self.naks.get(),
            ignored: self.ignored.get(),
            silenced: self.silenced.get(),
            malformed: self.malformed.get(),
            exhausted: self.exhausted.get(),
            declines: self.declines.get(),
            releases: self.releases.get(),
        }
    }

    /// Encodes `smi_proxy_dhcp_server_total{event}` at scrape time: the
    /// counters belong to one run of the server (they start at 0 with each
    /// one and show only while one runs), so the daemon's collector asks
    /// the running server rather than registering them once.
    pub fn collect(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.family.encode(encoder.encode_descriptor(
            "smi_proxy_dhcp_server",
            "Local DHCP server (vstack dhcp-localserver): replies sent and requests left \
             unanswered, by event.",
            None,
            self.family.metric_type(),
        )?)
    }
}

/// Adds one to `counter`.
pub(super) fn bump(counter: &Counter) {
    counter.inc();
}
