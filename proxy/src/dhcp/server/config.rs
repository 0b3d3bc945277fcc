//! The server's settings ([`DhcpServerConfig`], [`ServeInterface`]) and
//! what it reports of a new binding ([`LeaseBound`]).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{DEFAULT_DECLINE_HOLD, DEFAULT_OFFER_DEFER};
use crate::config::DhcpPool;
use crate::dataplane::{DataplaneEvent, EventKind};
use crate::dhcp::codec::ReplyOptions;

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

    /// The options every reply carries.
    pub(super) fn reply_options(&self) -> ReplyOptions {
        ReplyOptions {
            server_ip: self.server_ip,
            netmask: self.pool.netmask,
            router: self.pool.default_router.unwrap_or(self.server_ip),
            lease_secs: self.pool.lease_secs,
        }
    }
}
