//! Unit tests of the local DHCP server: the engine's answers, the lease
//! file, foreign servers, the counters and the sockets.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, OptionCode};
use dhcproto::{Decodable as _, Decoder, Encodable as _, Encoder};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::engine::{Engine, Outcome};
use super::foreign::MAX_FOREIGN;
use super::*;
use crate::config::DhcpPool;
use crate::dataplane::{DataplaneEvent, EventKind};
use crate::dhcp::codec::{ClientMessage, ReplyKind, decode_request};
use crate::dhcp::leases::LeaseTable;

const PROXY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const SITE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const NOW: u64 = 1_700_000_000;

fn mac(n: u8) -> [u8; 6] {
    [0x00, 0x1e, 0xf7, 0, 0, n]
}

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, n)
}

fn pool() -> DhcpPool {
    DhcpPool {
        start: ip(100),
        end: ip(101),
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        default_router: None,
        lease_secs: 3600,
    }
}

fn engine(dir: &std::path::Path) -> Engine {
    let cfg = DhcpServerConfig::new(
        pool(),
        PROXY,
        vec![ServeInterface {
            name: "lo".into(),
            vlan: 1,
        }],
        dir.to_path_buf(),
    );
    std::fs::create_dir_all(dir.join(crate::store::DIR_NAME)).unwrap();
    let foreign = Arc::new(ForeignServers::new(DEFAULT_FOREIGN_HOLD).with_own_address(PROXY));
    Engine::new(cfg, LeaseTable::new(&pool()), foreign)
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dhcp-server-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

struct Client {
    mac: [u8; 6],
    kind: MessageType,
    requested: Option<Ipv4Addr>,
    server: Option<Ipv4Addr>,
    ciaddr: Ipv4Addr,
}

impl Client {
    fn new(n: u8, kind: MessageType) -> Self {
        Self {
            mac: mac(n),
            kind,
            requested: None,
            server: None,
            ciaddr: Ipv4Addr::UNSPECIFIED,
        }
    }

    fn msg(&self) -> ClientMessage {
        let mut m = Message::new_with_id(
            7,
            self.ciaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &self.mac,
        );
        m.set_flags(Flags::default().set_broadcast());
        m.opts_mut().insert(DhcpOption::MessageType(self.kind));
        if let Some(r) = self.requested {
            m.opts_mut().insert(DhcpOption::RequestedIpAddress(r));
        }
        if let Some(s) = self.server {
            m.opts_mut().insert(DhcpOption::ServerIdentifier(s));
        }
        let mut out = Vec::new();
        m.encode(&mut Encoder::new(&mut out)).unwrap();
        decode_request(&out).unwrap()
    }
}

fn reply(out: &Outcome) -> (ReplyKind, Message, SocketAddrV4) {
    let r = out.reply.as_ref().expect("a reply");
    (
        r.kind,
        Message::decode(&mut Decoder::new(&r.bytes)).unwrap(),
        r.to,
    )
}

#[test]
fn discover_request_ack_then_renew() {
    let dir = temp_dir("dora");
    let e = engine(&dir);
    let out = e.handle(&Client::new(1, MessageType::Discover).msg(), 1, NOW);
    let (kind, offer, to) = reply(&out);
    assert_eq!(kind, ReplyKind::Offer);
    assert_eq!(offer.yiaddr(), ip(100));
    assert_eq!(
        offer.opts().get(OptionCode::Router),
        Some(&DhcpOption::Router(vec![PROXY])),
        "no default router configured: the proxy"
    );
    assert_eq!(to, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68));
    assert!(!out.persist, "offers are not written");

    let mut req = Client::new(1, MessageType::Request);
    req.requested = Some(ip(100));
    req.server = Some(PROXY);
    let out = e.handle(&req.msg(), 1, NOW + 1);
    let (kind, ack, _) = reply(&out);
    assert_eq!(kind, ReplyKind::Ack);
    assert_eq!(ack.yiaddr(), ip(100));
    assert!(out.persist);
    assert_eq!(
        out.bound,
        Some(LeaseBound {
            mac: mac(1),
            ip: ip(100),
            vlan: 1
        })
    );

    // Renewing: unicast to ciaddr, no new binding.
    let mut renew = Client::new(1, MessageType::Request);
    renew.ciaddr = ip(100);
    let out = e.handle(&renew.msg(), 1, NOW + 1800);
    let (kind, ack, to) = reply(&out);
    assert_eq!((kind, ack.ciaddr()), (ReplyKind::Ack, ip(100)));
    assert_eq!(to, SocketAddrV4::new(ip(100), 68));
    assert_eq!(out.bound, None);
    assert_eq!(
        e.table().lease_of(&mac(1)).map(|l| l.expires),
        Some(NOW + 1800 + 3600)
    );
    // Init-reboot asking for another address: NAK.
    let mut reboot = Client::new(1, MessageType::Request);
    reboot.requested = Some(ip(101));
    let (kind, _, to) = reply(&e.handle(&reboot.msg(), 1, NOW + 1900));
    assert_eq!(kind, ReplyKind::Nak);
    assert_eq!(to, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68));
    let c = e.stats.snapshot();
    assert_eq!((c.offers, c.acks, c.naks), (1, 2, 1));
}

#[test]
fn requests_for_other_servers_or_unknown_clients_are_ignored() {
    let dir = temp_dir("ignored");
    let e = engine(&dir);
    e.handle(&Client::new(1, MessageType::Discover).msg(), 1, NOW);
    // The client chose the site server: our offer is withdrawn.
    let mut req = Client::new(1, MessageType::Request);
    req.requested = Some(ip(50));
    req.server = Some(SITE);
    assert!(e.handle(&req.msg(), 1, NOW).reply.is_none());
    assert!(e.table().is_empty());
    // Init-reboot and renew of a client we never leased to: silence.
    let mut reboot = Client::new(2, MessageType::Request);
    reboot.requested = Some(ip(100));
    assert!(e.handle(&reboot.msg(), 1, NOW).reply.is_none());
    let mut renew = Client::new(2, MessageType::Request);
    renew.ciaddr = ip(100);
    assert!(e.handle(&renew.msg(), 1, NOW).reply.is_none());
    assert!(
        e.handle(&Client::new(2, MessageType::Inform).msg(), 1, NOW)
            .reply
            .is_none()
    );
    assert_eq!(e.stats.snapshot().ignored, 4);
}

#[test]
fn selecting_request_for_a_taken_address_is_naked() {
    let dir = temp_dir("taken");
    let e = engine(&dir);
    e.handle(&Client::new(1, MessageType::Discover).msg(), 1, NOW);
    let mut req = Client::new(2, MessageType::Request);
    req.requested = Some(ip(100));
    req.server = Some(PROXY);
    let (kind, nak, _) = reply(&e.handle(&req.msg(), 1, NOW));
    assert_eq!(kind, ReplyKind::Nak);
    assert_eq!(
        nak.opts().get(OptionCode::Message),
        Some(&DhcpOption::Message("address not available".into()))
    );
}

#[test]
fn pool_exhaustion_means_no_offer() {
    let dir = temp_dir("exhausted");
    let e = engine(&dir);
    for n in 1..=2 {
        assert!(
            e.handle(&Client::new(n, MessageType::Discover).msg(), 1, NOW)
                .reply
                .is_some()
        );
    }
    let out = e.handle(&Client::new(3, MessageType::Discover).msg(), 1, NOW);
    assert!(out.reply.is_none());
    assert_eq!(e.stats.snapshot().exhausted, 1);
    assert!(e.exhausted_warned.load(Ordering::Relaxed));
    // Offers expire; the next DISCOVER gets an address again.
    let out = e.handle(&Client::new(3, MessageType::Discover).msg(), 1, NOW + 61);
    assert!(out.reply.is_some());
    assert!(!e.exhausted_warned.load(Ordering::Relaxed));
}

#[test]
fn decline_and_release() {
    let dir = temp_dir("decline");
    let e = engine(&dir);
    e.handle(&Client::new(1, MessageType::Discover).msg(), 1, NOW);
    let mut decline = Client::new(1, MessageType::Decline);
    decline.requested = Some(ip(100));
    decline.server = Some(PROXY);
    let out = e.handle(&decline.msg(), 1, NOW);
    assert!(out.reply.is_none() && out.persist);
    let (_, offer, _) = reply(&e.handle(&Client::new(1, MessageType::Discover).msg(), 1, NOW));
    assert_eq!(offer.yiaddr(), ip(101), "the declined address is on hold");
    let mut release = Client::new(1, MessageType::Release);
    release.ciaddr = ip(101);
    release.server = Some(PROXY);
    assert!(e.handle(&release.msg(), 1, NOW).persist);
    let c = e.stats.snapshot();
    assert_eq!((c.declines, c.releases), (1, 1));
}

#[tokio::test]
async fn ack_writes_the_lease_file_first() {
    let dir = temp_dir("persist");
    let e = engine(&dir);
    e.handle(&Client::new(1, MessageType::Discover).msg(), 1, NOW);
    let mut req = Client::new(1, MessageType::Request);
    req.requested = Some(ip(100));
    req.server = Some(PROXY);
    let out = e.handle(&req.msg(), 1, NOW);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // The broadcast send fails on this unbound socket; the file is written anyway.
    e.finish(out, &socket).await;
    let back = LeaseTable::load(&dir.join(crate::store::DIR_NAME), &pool()).unwrap();
    assert_eq!(back.lease_of(&mac(1)).map(|l| l.ip), Some(ip(100)));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(start_paused = true)]
async fn foreign_servers_silence_for_the_hold_time_and_warn_once() {
    let f = ForeignServers::new(Duration::from_secs(300)).with_own_address(PROXY);
    assert_eq!(f.active(1), None);
    f.saw(PROXY, [2; 6], 1);
    assert_eq!(f.active(1), None, "our own address is not foreign");
    f.observe(&DataplaneEvent {
        ts_ns: 0,
        mac: [2, 0, 0x5e, 0, 0, 2],
        vlan: 1,
        svlan: 0,
        xid: 9,
        dhcp_msg: 2,
        kind: EventKind::DhcpServerSeen(SITE),
    });
    let site = ForeignServer {
        ip: SITE,
        mac: [2, 0, 0x5e, 0, 0, 2],
        vlan: 1,
    };
    assert_eq!(f.active(1), Some(site));
    assert_eq!(f.active(10), None, "another VLAN is not silenced");
    assert_eq!(f.silencer(1), Some((site, true)));
    assert_eq!(f.silencer(1), Some((site, false)), "warned once");
    tokio::time::advance(Duration::from_secs(299)).await;
    assert!(f.active(1).is_some());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(f.active(1), None, "the hold time ended");
    f.saw(SITE, site.mac, 1);
    assert_eq!(
        f.silencer(1),
        Some((site, true)),
        "a new episode warns again"
    );
}

#[tokio::test(start_paused = true)]
async fn silence_counts_and_foreign_memory_is_bounded() {
    let dir = temp_dir("silence");
    let e = engine(&dir);
    assert!(!e.silenced(1));
    e.foreign.saw(SITE, [2; 6], 1);
    assert!(e.silenced(1));
    assert!(e.silenced(1));
    assert_eq!(e.stats.snapshot().silenced, 2);
    for n in 0..(MAX_FOREIGN as u32 + 10) {
        e.foreign.saw(Ipv4Addr::from(0x0a00_0000 + n), [3; 6], 2);
    }
    assert!(e.foreign.lock().len() <= MAX_FOREIGN);
}

#[test]
fn metrics_render() {
    /// Encodes the stats as the daemon's collector does.
    #[derive(Debug)]
    struct Scrape(Arc<DhcpStats>);
    impl prometheus_client::collector::Collector for Scrape {
        fn encode(
            &self,
            mut encoder: prometheus_client::encoding::DescriptorEncoder,
        ) -> Result<(), std::fmt::Error> {
            self.0.collect(&mut encoder)
        }
    }
    let stats = Arc::new(DhcpStats::default());
    stats.silenced.inc_by(3);
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(Scrape(stats)));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).expect("encoded");
    assert!(
        text.contains("smi_proxy_dhcp_server_total{event=\"silenced\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("smi_proxy_dhcp_server_total{event=\"release\"} 0"),
        "{text}"
    );
}

#[test]
fn socket_binds_to_a_device() {
    match open_socket("lo", 0) {
        Ok(s) => assert!(s.local_addr().unwrap().port() != 0),
        // Old kernels want CAP_NET_RAW for SO_BINDTODEVICE.
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}"),
    }
    assert!(open_socket("", 0).is_err());
    assert!(open_socket("a-name-far-too-long", 0).is_err());
}

#[tokio::test(start_paused = true)]
async fn spawned_server_stops_on_cancel() {
    let dir = temp_dir("spawn");
    let mut cfg = DhcpServerConfig::new(
        pool(),
        PROXY,
        vec![ServeInterface {
            name: "lo".into(),
            vlan: 1,
        }],
        dir.clone(),
    );
    cfg.offer_defer = Duration::ZERO;
    let foreign = Arc::new(ForeignServers::new(DEFAULT_FOREIGN_HOLD));
    let cancel = CancellationToken::new();
    match spawn(cfg, foreign, cancel.clone()).await {
        Ok((task, stats)) => {
            cancel.cancel();
            task.await.unwrap();
            assert_eq!(stats.snapshot(), DhcpCounts::default());
        }
        // Port 67 needs root (or is taken by a DHCP server on this machine).
        Err(DhcpError::Socket { source, .. }) => {
            assert!(
                matches!(
                    source.raw_os_error(),
                    Some(libc::EACCES | libc::EADDRINUSE | libc::EPERM)
                ),
                "{source}"
            );
        }
        Err(e) => panic!("{e}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
