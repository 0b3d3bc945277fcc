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
//!
//! The code is split by concern:
//! - this file: the default timings;
//! - `config`: [`DhcpServerConfig`], [`ServeInterface`] and [`LeaseBound`]
//!   (a new binding, as the daemon is told of it);
//! - `stats`: the counters, [`DhcpStats`] and [`DhcpCounts`];
//! - `foreign`: [`ForeignServers`], the other DHCP servers seen answering;
//! - `engine`: the sans-IO request handling (request in, reply and lease
//!   changes out);
//! - `socket`: [`open_socket`], one UDP socket bound to one interface;
//! - `run`: [`spawn`] and the serving loops, which do the I/O the engine
//!   asks for (lease file, replies, bound events), and [`DhcpError`].

use std::time::Duration;

mod config;
mod engine;
mod foreign;
mod run;
mod socket;
mod stats;
#[cfg(test)]
mod tests;

pub use config::{DhcpServerConfig, LeaseBound, ServeInterface};
pub use foreign::{ForeignServer, ForeignServers};
pub use run::{DhcpError, spawn};
pub use socket::open_socket;
pub use stats::{DhcpCounts, DhcpStats};

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
