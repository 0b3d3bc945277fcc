//! The "site" DHCP server of the lab: its own network namespace with one
//! macvlan (mode bridge) on the switches' parent interface and a fixed
//! address. It answers DISCOVER with OFFER and REQUEST with ACK (or NAK),
//! always broadcast to ff:ff:ff:ff:ff:ff / 255.255.255.255:68, so the
//! replies also cross the parent's veth to where the proxy snoops them.
//!
//! Leases are deterministic: a MAC gets `first + (low 24 bits of the MAC
//! mod pool size)`, the next free address on a collision, and keeps it.
//! Emulated switch `i` (MAC `00:1e:f7` + `i`) thus gets `first + i`.
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, ensure};
use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable as _, Decoder, Encodable as _, Encoder};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::emulator::dhcp_client::image_list_option;
use crate::emulator::net::{self, IFACE, Macvlan, MacvlanMode, Namespaces, PacketSocket};
use crate::frames::{self, L2};

/// An address pool with its prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    /// First address handed out.
    pub first: Ipv4Addr,
    /// Last address handed out.
    pub last: Ipv4Addr,
    /// Prefix length given as option 1.
    pub prefix_len: u8,
}

impl Pool {
    /// 192.0.2.100 - 192.0.2.250 /24 (TEST-NET-1, next to the proxy's 192.0.2.1).
    pub fn test() -> Self {
        Self {
            first: Ipv4Addr::new(192, 0, 2, 100),
            last: Ipv4Addr::new(192, 0, 2, 250),
            prefix_len: 24,
        }
    }

    /// 198.18.0.10 - 198.19.255.250 /15 (the benchmark range, for large labs).
    pub fn large() -> Self {
        Self {
            first: Ipv4Addr::new(198, 18, 0, 10),
            last: Ipv4Addr::new(198, 19, 255, 250),
            prefix_len: 15,
        }
    }

    /// Number of addresses.
    pub fn size(&self) -> u32 {
        u32::from(self.last).saturating_sub(u32::from(self.first)) + 1
    }

    /// The address `mac` gets when nothing collides.
    pub fn preferred(&self, mac: &[u8; 6]) -> Ipv4Addr {
        let low = u32::from_be_bytes([0, mac[3], mac[4], mac[5]]);
        Ipv4Addr::from(u32::from(self.first) + low % self.size())
    }

    fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(
            u32::MAX
                .checked_shl(32 - u32::from(self.prefix_len))
                .unwrap_or(0),
        )
    }
}

/// Where the site DHCP server is plugged in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// A macvlan (mode bridge) on the switches' parent; replies are
    /// broadcast so that they also cross the parent to the proxy.
    #[default]
    SwitchSegment,
    /// A port of its own on the proxy's bridge: a veth `port` (in `px_ns`,
    /// enslaved to `bridge`) whose peer is the server's interface. Replies
    /// are unicast to the client's MAC, so a segment of thousands of
    /// switches is not flooded; the proxy sees them by attaching its XDP
    /// program to `port` too.
    ProxyPort {
        /// The proxy's namespace.
        px_ns: String,
        /// The bridge there.
        bridge: String,
        /// Name of the bridge port to create.
        port: String,
    },
}

/// Settings of the site DHCP server.
#[derive(Clone, Debug)]
pub struct DhcpServerConfig {
    /// Namespace to create for the server.
    pub netns: String,
    /// Namespace holding the parent interface.
    pub sw_ns: String,
    /// Parent interface (e.g. `sw0`).
    pub parent: String,
    /// Where the server is plugged in (`sw_ns` and `parent` serve
    /// [`Placement::SwitchSegment`] only).
    pub placement: Placement,
    /// MAC of the server's macvlan.
    pub mac: [u8; 6],
    /// The server's own address.
    pub address: Ipv4Addr,
    /// Prefix length of the server's own address.
    pub prefix_len: u8,
    /// Addresses to lease.
    pub pool: Pool,
    /// Option 3, if any.
    pub router: Option<Ipv4Addr>,
    /// Option 150 (TFTP server address), if any.
    pub tftp_server: Option<Ipv4Addr>,
    /// Option 67 (configuration file), if any.
    pub bootfile: Option<String>,
    /// Option 125 enterprise 9 sub-option 5 (image-list file), if any.
    pub image_list: Option<String>,
    /// Option 51, seconds.
    pub lease_secs: u32,
    /// Answer only these clients (a site server with reservations, as one
    /// behind DHCP snooping would be in a lab under attack); `None`: any.
    pub clients: Option<std::collections::HashSet<[u8; 6]>>,
}

impl DhcpServerConfig {
    /// A server at 192.0.2.2/24 leasing [`Pool::test`], with the proxy
    /// `proxy` as router and TFTP server (option 150), one-day leases.
    pub fn new(netns: &str, sw_ns: &str, parent: &str, proxy: Ipv4Addr) -> Self {
        Self {
            netns: netns.into(),
            sw_ns: sw_ns.into(),
            parent: parent.into(),
            placement: Placement::SwitchSegment,
            mac: [0x02, 0x00, 0x5e, 0x00, 0x00, 0x02],
            address: Ipv4Addr::new(192, 0, 2, 2),
            prefix_len: 24,
            pool: Pool::test(),
            router: Some(proxy),
            tftp_server: Some(proxy),
            bootfile: None,
            image_list: None,
            lease_secs: 86_400,
            clients: None,
        }
    }
}

/// Counters and leases of a running server.
#[derive(Debug, Default)]
struct Book {
    leases: HashMap<[u8; 6], Ipv4Addr>,
    taken: HashMap<Ipv4Addr, [u8; 6]>,
    offers: u64,
    acks: u64,
    naks: u64,
}

impl Book {
    /// The address of `mac`, allocating one if needed.
    fn lease_for(&mut self, pool: &Pool, mac: [u8; 6]) -> Option<Ipv4Addr> {
        if let Some(ip) = self.leases.get(&mac) {
            return Some(*ip);
        }
        let start = u32::from(pool.preferred(&mac)) - u32::from(pool.first);
        let ip = (0..pool.size())
            .map(|i| Ipv4Addr::from(u32::from(pool.first) + (start + i) % pool.size()))
            .find(|ip| !self.taken.contains_key(ip))?;
        self.leases.insert(mac, ip);
        self.taken.insert(ip, mac);
        Some(ip)
    }
}

/// The running server; dropping it stops it and deletes its namespace.
pub struct DhcpServer {
    task: JoinHandle<()>,
    book: Arc<Mutex<Book>>,
    config: DhcpServerConfig,
    _netns: Namespaces,
}

impl DhcpServer {
    /// Creates the namespace and macvlan, adds the address and starts
    /// answering on UDP 67. Needs a tokio runtime and root.
    pub async fn start(config: DhcpServerConfig) -> anyhow::Result<Self> {
        ensure!(
            (1..=32).contains(&config.pool.prefix_len) && config.pool.first <= config.pool.last,
            "bad pool {:?}",
            config.pool
        );
        let cfg = config.clone();
        let netns = tokio::task::spawn_blocking(move || {
            let netns = Namespaces::create(vec![cfg.netns.clone()])?;
            match &cfg.placement {
                Placement::SwitchSegment => net::create_macvlans(
                    &cfg.sw_ns,
                    &cfg.parent,
                    MacvlanMode::Bridge,
                    &[Macvlan {
                        netns: cfg.netns.clone(),
                        mac: cfg.mac,
                    }],
                )?,
                Placement::ProxyPort {
                    px_ns,
                    bridge,
                    port,
                } => {
                    let mac = net::mac_string(&cfg.mac);
                    crate::netns::ip_in(
                        px_ns,
                        &[
                            "link", "add", port, "type", "veth", "peer", "name", IFACE, "netns",
                            &cfg.netns, "address", &mac,
                        ],
                    )?;
                    crate::netns::ip_in(px_ns, &["link", "set", port, "master", bridge, "up"])?;
                }
            }
            net::up_without_ipv6_in(netns.names())?;
            let cidr = format!("{}/{}", cfg.address, cfg.prefix_len);
            crate::netns::ip_in(&cfg.netns, &["addr", "add", &cidr, "dev", IFACE])?;
            anyhow::Ok(netns)
        })
        .await
        .context("namespace task")??;
        // Room for a boot storm: hundreds of DISCOVERs at once.
        let socket = net::udp_socket_in_with_rcvbuf(&config.netns, 67, 8 << 20).await?;
        socket.set_broadcast(true)?;
        socket.bind_device(Some(IFACE.as_bytes()))?;
        // Unicast replies go out as whole frames: the client has no address
        // to ARP for yet. The socket's filter (UDP 68 to chaddr 0) lets
        // nothing in.
        let unicast = match config.placement {
            Placement::SwitchSegment => None,
            Placement::ProxyPort { .. } => {
                Some(PacketSocket::open_in(&config.netns, 68, [0; 6]).await?)
            }
        };
        let book = Arc::new(Mutex::new(Book::default()));
        let task = tokio::spawn(serve(socket, unicast, config.clone(), book.clone()));
        Ok(Self {
            task,
            book,
            config,
            _netns: netns,
        })
    }

    /// Its settings.
    pub fn config(&self) -> &DhcpServerConfig {
        &self.config
    }

    /// The lease of `mac`, if it has one.
    pub fn lease_of(&self, mac: &[u8; 6]) -> Option<Ipv4Addr> {
        self.book().leases.get(mac).copied()
    }

    /// All leases.
    pub fn leases(&self) -> Vec<([u8; 6], Ipv4Addr)> {
        let mut all: Vec<_> = self.book().leases.iter().map(|(m, ip)| (*m, *ip)).collect();
        all.sort();
        all
    }

    /// OFFERs, ACKs and NAKs sent so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        let book = self.book();
        (book.offers, book.acks, book.naks)
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for DhcpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    socket: UdpSocket,
    unicast: Option<PacketSocket>,
    config: DhcpServerConfig,
    book: Arc<Mutex<Book>>,
) {
    let mut buf = vec![0u8; 2048];
    let to = SocketAddr::from((Ipv4Addr::BROADCAST, 68));
    loop {
        let n = match socket.recv_from(&mut buf).await {
            Ok((n, _)) => n,
            Err(e) => {
                log::warn!("DHCP server: recv: {e}");
                continue;
            }
        };
        let Ok(request) = Message::decode(&mut Decoder::new(&buf[..n])) else {
            continue;
        };
        let reply = {
            let mut book = book.lock().unwrap_or_else(|p| p.into_inner());
            answer(&request, &config, &mut book)
        };
        let Some(reply) = reply else {
            continue;
        };
        let mut out = Vec::with_capacity(400);
        if let Err(e) = reply.encode(&mut Encoder::new(&mut out)) {
            log::warn!("DHCP server: encode: {e}");
            continue;
        }
        let sent = match &unicast {
            Some(raw) => raw.send(&unicast_frame(&config, &reply, &out)).await,
            None => socket.send_to(&out, to).await.map(drop),
        };
        if let Err(e) = sent {
            log::warn!("DHCP server: send: {e}");
        }
    }
}

/// `payload` (the encoded `reply`) as an Ethernet frame from the server to
/// the client's MAC and offered address (broadcast IP for a NAK).
fn unicast_frame(config: &DhcpServerConfig, reply: &Message, payload: &[u8]) -> Vec<u8> {
    let mut dst = [0xff; 6];
    if let Some(chaddr) = reply.chaddr().get(..6) {
        dst.copy_from_slice(chaddr);
    }
    let to = match reply.yiaddr() {
        ip if ip.is_unspecified() => Ipv4Addr::BROADCAST,
        ip => ip,
    };
    let l2 = L2 {
        dst,
        src: config.mac,
        tags: Vec::new(),
    };
    frames::ipv4(
        &l2,
        config.address.octets(),
        to.octets(),
        17,
        &[],
        &frames::udp(67, 68, payload),
    )
}

/// The reply to one client message, if it deserves one.
fn answer(request: &Message, config: &DhcpServerConfig, book: &mut Book) -> Option<Message> {
    if request.opcode() != Opcode::BootRequest || request.hlen() != 6 {
        return None;
    }
    let mac: [u8; 6] = request.chaddr().get(..6)?.try_into().ok()?;
    if config.clients.as_ref().is_some_and(|c| !c.contains(&mac)) {
        return None;
    }
    let opts = request.opts();
    let (kind, ip) = match opts.msg_type()? {
        MessageType::Discover => {
            book.offers += 1;
            (MessageType::Offer, book.lease_for(&config.pool, mac)?)
        }
        MessageType::Request => {
            let chosen = match opts.get(OptionCode::ServerIdentifier) {
                Some(DhcpOption::ServerIdentifier(server)) => *server,
                _ => config.address,
            };
            if chosen != config.address {
                // The client chose another server.
                return None;
            }
            let asked = match opts.get(OptionCode::RequestedIpAddress) {
                Some(DhcpOption::RequestedIpAddress(ip)) => *ip,
                _ => request.ciaddr(),
            };
            match book.lease_for(&config.pool, mac) {
                Some(ip) if ip == asked => {
                    book.acks += 1;
                    (MessageType::Ack, ip)
                }
                _ => {
                    book.naks += 1;
                    (MessageType::Nak, Ipv4Addr::UNSPECIFIED)
                }
            }
        }
        _ => return None,
    };
    let mut reply = Message::new_with_id(
        request.xid(),
        Ipv4Addr::UNSPECIFIED,
        ip,
        config.tftp_server.unwrap_or(Ipv4Addr::UNSPECIFIED),
        request.giaddr(),
        &mac,
    );
    reply
        .set_opcode(Opcode::BootReply)
        .set_flags(request.flags());
    let o = reply.opts_mut();
    o.insert(DhcpOption::MessageType(kind));
    o.insert(DhcpOption::ServerIdentifier(config.address));
    if kind == MessageType::Nak {
        return Some(reply);
    }
    o.insert(DhcpOption::AddressLeaseTime(config.lease_secs));
    o.insert(DhcpOption::SubnetMask(config.pool.mask()));
    if let Some(router) = config.router {
        o.insert(DhcpOption::Router(vec![router]));
    }
    if let Some(tftp) = config.tftp_server {
        o.insert(DhcpOption::TFTPServerAddress(tftp));
    }
    if let Some(file) = &config.bootfile {
        o.insert(DhcpOption::BootfileName(file.as_bytes().to_vec()));
    }
    if let Some(list) = &config.image_list {
        o.insert(image_list_option(list));
    }
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_deterministic_and_unique() {
        let pool = Pool {
            first: Ipv4Addr::new(192, 0, 2, 100),
            last: Ipv4Addr::new(192, 0, 2, 103),
            prefix_len: 24,
        };
        assert_eq!(pool.mask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(Pool::large().mask(), Ipv4Addr::new(255, 254, 0, 0));
        assert_eq!(Pool::large().size(), 131_072 - 10 - 5);
        let mac = |n: u8| [0, 0x1e, 0xf7, 0, 0, n];
        let mut book = Book::default();
        assert_eq!(
            book.lease_for(&pool, mac(1)),
            Some(Ipv4Addr::new(192, 0, 2, 101))
        );
        // 5 % 4 == 1: collides with mac(1), takes the next free one.
        assert_eq!(
            book.lease_for(&pool, mac(5)),
            Some(Ipv4Addr::new(192, 0, 2, 102))
        );
        assert_eq!(
            book.lease_for(&pool, mac(1)),
            Some(Ipv4Addr::new(192, 0, 2, 101))
        );
        assert!(book.lease_for(&pool, mac(0)).is_some());
        assert!(book.lease_for(&pool, mac(3)).is_some());
        assert_eq!(book.lease_for(&pool, mac(9)), None, "pool exhausted");
    }
}
