//! One span per client, so that one switch's story reads as one thread in
//! the log: every task that works for a client (its onboarding and
//! identification, the deliveries and jobs of its PnP agent, the SMI
//! messages, TFTP transfers and DHCP exchanges it takes part in) runs
//! inside the client's span, whose fields `mac`, `ip` and `udi` are
//! recorded as the proxy learns them.
//!
//! The proxy logic *follows* a client ([`follow`]) from the moment it has
//! an address; the parts that know a client only by MAC ([`client`]) or by
//! address ([`client_at`], [`peer`]) find its span here. A client not
//! followed (a DHCP exchange before any address, a peer no client is known
//! at) gets a span of its own naming what is known of it, so its lines
//! still carry the MAC or the address. At most [`FOLLOWED_MAX`] clients
//! are followed, so that a flood of made-up MACs cannot grow the table.
//!
//! The span is a root span of level `ERROR`, named `client`, with target
//! [`SPAN_TARGET`]: the filter always lets it through (see
//! [`is_client_span`]), so that a line of any level the filter lets
//! through carries the client's fields.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use tracing::Span;
use tracing::field::{Empty, display};

use crate::mac::Mac;
use crate::udi::Udi;

/// The name of every client span.
pub const SPAN_NAME: &str = "client";

/// The target of every client span.
pub const SPAN_TARGET: &str = "smi_proxy::client";

/// Most clients followed at once (four times the kernel's client table).
pub const FOLLOWED_MAX: usize = 4 * proxy_common::CLIENTS_MAX as usize;

/// Whether `meta` is that of the client span.
pub fn is_client_span(meta: &tracing::Metadata<'_>) -> bool {
    meta.is_span() && meta.name() == SPAN_NAME && meta.target() == SPAN_TARGET
}

/// A followed client's span and the fields it carries.
struct Followed {
    span: Span,
    ip: Option<Ipv4Addr>,
    udi: Option<Udi>,
}

/// The followed clients, by MAC and by address.
#[derive(Default)]
struct Table {
    by_mac: HashMap<Mac, Followed>,
    by_ip: HashMap<Ipv4Addr, Mac>,
}

static FOLLOWED: LazyLock<Mutex<Table>> = LazyLock::new(Mutex::default);

fn table() -> MutexGuard<'static, Table> {
    FOLLOWED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A new client span with the fields given.
fn new_span(mac: Option<Mac>, ip: Option<IpAddr>, udi: Option<&Udi>) -> Span {
    let span = tracing::error_span!(
        target: SPAN_TARGET,
        parent: None,
        "client",
        mac = Empty,
        ip = Empty,
        udi = Empty
    );
    if let Some(mac) = mac {
        span.record("mac", display(mac));
    }
    if let Some(ip) = ip {
        span.record("ip", display(ip));
    }
    if let Some(udi) = udi {
        span.record("udi", display(udi));
    }
    span
}

impl Followed {
    /// Its span; made again if it was made while nothing listened (only
    /// before a subscriber is installed, e.g. in tests), so that it shows.
    fn span(&mut self, mac: Mac) -> Span {
        if self.span.is_disabled() {
            self.span = new_span(Some(mac), self.ip.map(IpAddr::V4), self.udi.as_ref());
        }
        self.span.clone()
    }
}

/// The span of the client `mac`: the followed one, or a new one naming
/// only the MAC.
pub fn client(mac: Mac) -> Span {
    match table().by_mac.get_mut(&mac) {
        Some(f) => f.span(mac),
        None => new_span(Some(mac), None, None),
    }
}

/// The span of the followed client at `ip`, if any.
pub fn client_at(ip: IpAddr) -> Option<Span> {
    let IpAddr::V4(v4) = ip else {
        return None;
    };
    let mut table = table();
    let mac = *table.by_ip.get(&v4)?;
    table.by_mac.get_mut(&mac).map(|f| f.span(mac))
}

/// The span of the followed client at `ip`, or a new one naming only the
/// address (a peer known as no client).
pub fn peer(ip: IpAddr) -> Span {
    client_at(ip).unwrap_or_else(|| new_span(None, Some(ip), None))
}

/// Follows the client `mac` (from now on [`client`], [`client_at`] and
/// [`peer`] find its span) and records what is given of its address and
/// UDI; returns its span. A field that changes (a new lease, another
/// device at the MAC) gets the client a new span, so that no line shows
/// two values of one field; tasks already running keep the old one.
pub fn follow(mac: Mac, ip: Option<Ipv4Addr>, udi: Option<&Udi>) -> Span {
    let mut table = table();
    let Table { by_mac, by_ip } = &mut *table;
    if !by_mac.contains_key(&mac) && by_mac.len() >= FOLLOWED_MAX {
        return new_span(Some(mac), ip.map(IpAddr::V4), udi);
    }
    let f = by_mac.entry(mac).or_insert_with(|| Followed {
        span: new_span(Some(mac), None, None),
        ip: None,
        udi: None,
    });
    let new_ip = ip.filter(|ip| f.ip != Some(*ip));
    let new_udi = udi.filter(|udi| f.udi.as_ref() != Some(*udi));
    let changes =
        new_ip.is_some_and(|_| f.ip.is_some()) || new_udi.is_some_and(|_| f.udi.is_some());
    if let Some(ip) = new_ip {
        if let Some(old) = f.ip
            && by_ip.get(&old) == Some(&mac)
        {
            by_ip.remove(&old);
        }
        by_ip.insert(ip, mac);
        f.ip = Some(ip);
    }
    if let Some(udi) = new_udi {
        f.udi = Some(udi.clone());
    }
    if changes || f.span.is_disabled() {
        f.span = new_span(Some(mac), f.ip.map(IpAddr::V4), f.udi.as_ref());
    } else {
        if let Some(ip) = new_ip {
            f.span.record("ip", display(ip));
        }
        if let Some(udi) = new_udi {
            f.span.record("udi", display(udi));
        }
    }
    f.span.clone()
}

#[cfg(test)]
mod tests {
    use tracing::dispatcher::with_default;

    use super::*;
    use crate::logging::LogFormat;
    use crate::logging::testing::capture;

    fn mac(last: u8) -> Mac {
        Mac([0x02, 0xc1, 0x1e, 0x47, 0x00, last])
    }

    #[test]
    fn a_followed_client_is_found_by_mac_and_by_address() {
        let c = capture(LogFormat::Plain, "info");
        with_default(&c.dispatch, || {
            let m = mac(1);
            let ip = Ipv4Addr::new(192, 0, 2, 201);
            let span = follow(m, Some(ip), None);
            assert!(span.id().is_some());
            assert_eq!(client(m).id(), span.id());
            assert_eq!(client_at(IpAddr::V4(ip)).map(|s| s.id()), Some(span.id()));
            assert_eq!(peer(IpAddr::V4(ip)).id(), span.id());
            // Recording the same again keeps the span.
            assert_eq!(follow(m, Some(ip), None).id(), span.id());
        });
    }

    #[test]
    fn a_new_address_moves_the_client_to_a_new_span() {
        let c = capture(LogFormat::Plain, "info");
        with_default(&c.dispatch, || {
            let m = mac(2);
            let (first, second) = (Ipv4Addr::new(192, 0, 2, 202), Ipv4Addr::new(192, 0, 2, 203));
            let before = follow(m, Some(first), None);
            let after = follow(m, Some(second), None);
            assert!(before.id().is_some() && before.id() != after.id());
            assert!(client_at(IpAddr::V4(first)).is_none());
            assert_eq!(
                client_at(IpAddr::V4(second)).map(|s| s.id()),
                Some(after.id())
            );
            after.in_scope(|| tracing::info!("moved"));
        });
        let out = c.out.take();
        assert!(
            out.contains("client{mac=02c1.1e47.0002 ip=192.0.2.203}: "),
            "{out}"
        );
    }

    #[test]
    fn unknown_clients_and_peers_are_not_followed() {
        let c = capture(LogFormat::Plain, "info");
        with_default(&c.dispatch, || {
            client(mac(3)).in_scope(|| tracing::info!("by MAC"));
            assert!(!table().by_mac.contains_key(&mac(3)));
            let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 204));
            peer(ip).in_scope(|| tracing::info!("by address"));
            assert!(client_at(ip).is_none());
        });
        let out = c.out.take();
        assert!(out.contains("client{mac=02c1.1e47.0003}: "), "{out}");
        assert!(out.contains("client{ip=192.0.2.204}: "), "{out}");
    }
}
