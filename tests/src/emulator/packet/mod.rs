//! The packet-socket network of the emulator: every switch is a smoltcp
//! interface (its own MAC and address, ARP, TCP, UDP) inside this process,
//! and all of them share one AF_PACKET socket on the switch segment
//! ([`ring`]). No namespace, macvlan or kernel route per switch: the kernel
//! work per frame is one ring slot on receive and one `send(2)`, so the lab
//! measures the proxy rather than the emulated network.
//!
//! One driver task owns the socket. It reads bursts from the ring, hands
//! each frame to the switch it is for ([`Inner::deliver`]: unicast by
//! destination MAC, ARP by target address, DHCP replies by `chaddr`), polls
//! the interfaces that have work (a frame, an application write, a due
//! timer), and sends what they emit. The switches' tasks use
//! [`sockets`] wrappers that lock the shared state for one socket call and
//! kick the driver; smoltcp wakes them back through its socket wakers.
//!
//! Why smoltcp: it is the maintained user-space TCP/IP stack of the Rust
//! ecosystem (embassy-net builds on it), with ARP, TCP retransmission and
//! windows done; a purpose-built stack would re-derive them. Its one
//! mismatch: it ignores ARP from outside its subnets, while a switch with
//! an on-link host route to an off-subnet TFTP server (the large pools)
//! must answer it. [`Host::configure`] covers that route with a second
//! prefix on the same address, the shortest one holding the server.
mod ring;
mod sockets;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium};
use smoltcp::socket::{Socket, tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Cidr};
use tokio::sync::{Notify, mpsc};

pub use sockets::{DhcpPort, Listener, TcpStream, UdpSocket};

use super::dhcp_client::Lease;
use super::net;

/// Frames queued for one switch's DHCP client before it reads them.
const DHCP_QUEUE: usize = 16;
/// Frames queued for one interface between two polls.
const RX_QUEUE: usize = 256;

/// The shared network of all packet-mode switches; cheap to clone.
#[derive(Clone)]
pub struct Stack {
    shared: Arc<Shared>,
}

struct Shared {
    inner: Mutex<Inner>,
    /// Wakes the driver after an application call changed a socket.
    kick: Notify,
    /// Zero of the smoltcp clock.
    epoch: std::time::Instant,
    /// Frames the kernel dropped on a full ring, so far.
    drops: AtomicU64,
}

/// Everything behind the lock: the interfaces and the driver's queues.
struct Inner {
    nodes: Vec<Node>,
    by_mac: HashMap<[u8; 6], usize>,
    by_ip: HashMap<Ipv4Addr, usize>,
    /// Interfaces to poll on the next round.
    dirty: Vec<usize>,
    /// Interfaces' next timer, earliest first (stale entries are skipped).
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Frames to send at the end of the round.
    tx: Vec<Vec<u8>>,
}

/// One switch's interface and sockets.
struct Node {
    iface: Interface,
    sockets: SocketSet<'static>,
    rx: VecDeque<Vec<u8>>,
    dhcp: mpsc::Sender<Vec<u8>>,
    dirty: bool,
    wake_at: Option<Instant>,
    /// Sockets the application dropped, removed once closed (TCP) or
    /// once their last datagram left (UDP: a TFTP client's final ACK).
    closing: Vec<Closing>,
    next_port: u16,
}

impl Node {
    /// Marks node `index` (this one) for the next round.
    fn mark(&mut self, index: usize, dirty: &mut Vec<usize>) {
        if !self.dirty {
            self.dirty = true;
            dirty.push(index);
        }
    }

    /// Runs smoltcp on the node: its queued frames in, its sockets' frames
    /// out to `tx`.
    fn poll(&mut self, now: Instant, tx: &mut Vec<Vec<u8>>) {
        self.iface.poll(
            now,
            &mut Port {
                rx: &mut self.rx,
                tx,
            },
            &mut self.sockets,
        );
    }
}

/// A socket the application dropped, by kind.
#[derive(Clone, Copy)]
enum Closing {
    Tcp(SocketHandle),
    Udp(SocketHandle),
}

impl Closing {
    fn handle(self) -> SocketHandle {
        match self {
            Self::Tcp(h) | Self::Udp(h) => h,
        }
    }
}

/// smoltcp's view of one interface during a poll: its receive queue, and
/// the round's transmit list.
struct Port<'a> {
    rx: &'a mut VecDeque<Vec<u8>>,
    tx: &'a mut Vec<Vec<u8>>,
}

/// A received frame, owned.
struct RxToken(Vec<u8>);

/// Room for one frame on the round's transmit list.
struct TxToken<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let r = f(&mut frame);
        self.0.push(frame);
        r
    }
}

impl phy::Device for Port<'_> {
    type RxToken<'a>
        = RxToken
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, _: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((RxToken(frame), TxToken(self.tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_>> {
        Some(TxToken(self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        // The proxy's kernel leaves TCP and UDP checksums to the (veth)
        // "hardware", so the ring sees them unfinished (TP_STATUS_CSUMNOTREADY):
        // compute ours, do not verify theirs.
        caps.checksum.tcp = Checksum::Tx;
        caps.checksum.udp = Checksum::Tx;
        caps
    }
}

/// One switch's attachment: its interface in the stack and its DHCP frames.
pub struct Host {
    stack: Stack,
    index: usize,
    dhcp: tokio::sync::Mutex<mpsc::Receiver<Vec<u8>>>,
}

impl Stack {
    /// Opens the packet socket on `parent` in namespace `sw_ns`, creates
    /// one interface per MAC, and spawns the driver on the current runtime.
    /// Returns the stack, its driver task and one [`Host`] per MAC, in order.
    pub async fn start(
        sw_ns: &str,
        parent: &str,
        macs: &[[u8; 6]],
    ) -> anyhow::Result<(Self, tokio::task::JoinHandle<()>, Vec<Host>)> {
        let parent_name = parent.to_owned();
        let fd = net::in_netns(sw_ns, move || {
            net::up_without_ipv6(&parent_name)?;
            ring::Ring::open_fd(&parent_name)
        })
        .await
        .with_context(|| format!("packet socket on {parent} in {sw_ns}"))?;
        let ring = ring::Ring::from_fd(fd)?;
        let epoch = std::time::Instant::now();
        let mut inner = Inner {
            nodes: Vec::with_capacity(macs.len()),
            by_mac: HashMap::with_capacity(macs.len()),
            by_ip: HashMap::new(),
            dirty: Vec::new(),
            timers: BinaryHeap::new(),
            tx: Vec::new(),
        };
        let mut receivers = Vec::with_capacity(macs.len());
        for (index, &mac) in macs.iter().enumerate() {
            let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
            config.random_seed = rand::random();
            let mut rx = VecDeque::new();
            let iface = Interface::new(
                config,
                &mut Port {
                    rx: &mut rx,
                    tx: &mut inner.tx,
                },
                Instant::ZERO,
            );
            let (dhcp, receiver) = mpsc::channel(DHCP_QUEUE);
            receivers.push(receiver);
            inner.by_mac.insert(mac, index);
            inner.nodes.push(Node {
                iface,
                sockets: SocketSet::new(Vec::new()),
                rx,
                dhcp,
                dirty: false,
                wake_at: None,
                closing: Vec::new(),
                next_port: 49152,
            });
        }
        let stack = Self {
            shared: Arc::new(Shared {
                inner: Mutex::new(inner),
                kick: Notify::new(),
                epoch,
                drops: AtomicU64::new(0),
            }),
        };
        let driver = tokio::spawn(drive(stack.clone(), ring));
        let hosts = receivers
            .into_iter()
            .enumerate()
            .map(|(index, receiver)| Host {
                stack: stack.clone(),
                index,
                dhcp: tokio::sync::Mutex::new(receiver),
            })
            .collect();
        Ok((stack, driver, hosts))
    }

    /// Frames the kernel dropped because the driver fell behind the ring
    /// (read once a second): the emulated network's own losses.
    pub fn ring_drops(&self) -> u64 {
        self.shared.drops.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.shared.epoch.elapsed().as_micros() as i64)
    }

    /// Runs `f` on interface `index` and its sockets; if `f` sets
    /// [`HostSlot::kick`], marks the interface for polling and wakes the driver.
    fn with_host<R>(&self, index: usize, f: impl FnOnce(&mut HostSlot<'_>) -> R) -> R {
        let (r, kick) = {
            let mut inner = self.lock();
            let Inner { nodes, dirty, .. } = &mut *inner;
            let node = &mut nodes[index];
            let mut slot = HostSlot {
                iface: &mut node.iface,
                sockets: &mut node.sockets,
                closing: &mut node.closing,
                next_port: &mut node.next_port,
                kick: false,
            };
            let r = f(&mut slot);
            let kick = slot.kick;
            if kick {
                node.mark(index, dirty);
            }
            (r, kick)
        };
        if kick {
            self.shared.kick.notify_one();
        }
        r
    }
}

/// What a socket call may touch of one interface.
pub(crate) struct HostSlot<'a> {
    iface: &'a mut Interface,
    sockets: &'a mut SocketSet<'static>,
    closing: &'a mut Vec<Closing>,
    next_port: &'a mut u16,
    /// Set by a call that queued data, a close or a new socket: the
    /// interface must be polled.
    kick: bool,
}

impl HostSlot<'_> {
    /// A local port for an outgoing connection or a client socket.
    fn ephemeral_port(&mut self) -> u16 {
        let port = *self.next_port;
        *self.next_port = if port == u16::MAX { 49152 } else { port + 1 };
        port
    }
}

impl Inner {
    /// Queues a received frame for the switch it is addressed to; drops the
    /// rest (other hosts' traffic, broadcasts nobody here answers).
    fn deliver(&mut self, frame: &[u8]) {
        match destination(frame, &self.by_mac, &self.by_ip) {
            Some(Destination::Dhcp(index)) => {
                // Full queue: the client's retransmission covers it.
                let _ = self.nodes[index].dhcp.try_send(frame.to_vec());
            }
            Some(Destination::Stack(index)) => {
                let node = &mut self.nodes[index];
                if node.rx.len() >= RX_QUEUE {
                    return;
                }
                node.rx.push_back(frame.to_vec());
                node.mark(index, &mut self.dirty);
            }
            None => {}
        }
    }

    /// Marks the interfaces whose timer is due.
    fn fire_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, index))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let node = &mut self.nodes[index];
            if node.wake_at == Some(at) {
                node.wake_at = None;
                node.mark(index, &mut self.dirty);
            }
        }
    }

    /// Polls every marked interface once; their frames go to `self.tx`.
    fn poll_dirty(&mut self, now: Instant) {
        let Self {
            nodes,
            dirty,
            timers,
            tx,
            ..
        } = self;
        for index in dirty.drain(..) {
            let node = &mut nodes[index];
            node.dirty = false;
            node.poll(now, tx);
            let sockets = &mut node.sockets;
            node.closing.retain(|&handle| {
                let gone = match handle {
                    Closing::Tcp(h) => matches!(
                        sockets.get::<tcp::Socket>(h).state(),
                        tcp::State::Closed | tcp::State::TimeWait
                    ),
                    Closing::Udp(h) => sockets.get::<udp::Socket>(h).send_queue() == 0,
                };
                if gone {
                    sockets.remove(handle.handle());
                }
                !gone
            });
            let at = node.iface.poll_at(now, &node.sockets);
            if at != node.wake_at {
                node.wake_at = at;
                if let Some(at) = at {
                    timers.push(Reverse((at, index)));
                }
            }
        }
    }

    /// When the driver must wake for a timer.
    fn next_timer(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }
}

/// Which switch a frame from the segment is for, and which part of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Destination {
    /// Its DHCP client (BOOTP to UDP port 68).
    Dhcp(usize),
    /// Its interface (ARP, TCP, UDP).
    Stack(usize),
}

/// Where `frame` goes: unicast by destination MAC, a broadcast ARP request
/// by its target address, a broadcast DHCP reply by its `chaddr`; `None`
/// for everything else.
fn destination(
    frame: &[u8],
    by_mac: &HashMap<[u8; 6], usize>,
    by_ip: &HashMap<Ipv4Addr, usize>,
) -> Option<Destination> {
    let (dst, _) = frame.split_first_chunk::<6>()?;
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let to_dhcp = net::udp_payload(frame).is_some_and(|(_, _, dport, _)| dport == 68);
    let index = if *dst != [0xff; 6] {
        *by_mac.get(dst)?
    } else if ethertype == 0x0806 {
        let ip = frame.get(38..42)?;
        *by_ip.get(&Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]))?
    } else if to_dhcp {
        *by_mac.get(&dhcp_chaddr(frame)?)?
    } else {
        return None;
    };
    Some(if to_dhcp {
        Destination::Dhcp(index)
    } else {
        Destination::Stack(index)
    })
}

/// The client hardware address of a BOOTP frame.
fn dhcp_chaddr(frame: &[u8]) -> Option<[u8; 6]> {
    let (_, _, _, bootp) = net::udp_payload(frame)?;
    bootp.get(28..34)?.try_into().ok()
}

/// The driver: ring bursts, application kicks and timers in, polls, frames out.
async fn drive(stack: Stack, mut ring: ring::Ring) {
    let mut received: Vec<Vec<u8>> = Vec::new();
    let mut stats_at = std::time::Instant::now();
    loop {
        if stats_at.elapsed() >= std::time::Duration::from_secs(1) {
            stats_at = std::time::Instant::now();
            if let Ok(drops) = ring.take_drops() {
                stack
                    .shared
                    .drops
                    .fetch_add(u64::from(drops), Ordering::Relaxed);
            }
        }
        let timer = stack.lock().next_timer().map(|at| {
            let micros = u64::try_from(at.total_micros()).unwrap_or(0);
            tokio::time::Instant::from_std(stack.shared.epoch)
                + std::time::Duration::from_micros(micros)
        });
        let sleep = async {
            match timer {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            got = ring.recv(|frame| received.push(frame.to_vec())) => {
                if let Err(e) = got {
                    log::error!("packet ring: {e}");
                    return;
                }
            }
            () = stack.shared.kick.notified() => {}
            () = sleep => {}
        }
        let out = {
            let mut inner = stack.lock();
            for frame in received.drain(..) {
                inner.deliver(&frame);
            }
            let now = stack.now();
            inner.fire_timers(now);
            inner.poll_dirty(now);
            std::mem::take(&mut inner.tx)
        };
        for frame in out {
            if let Err(e) = ring.send(&frame).await {
                log::debug!("packet send: {e}");
            }
        }
    }
}

impl Host {
    /// Position of the switch's interface.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Gives the interface the leased address, its default route, and the
    /// on-link reach of an off-subnet router or TFTP server (see the module
    /// documentation).
    pub fn configure(&self, lease: &Lease) {
        let ip = lease.ip;
        let on_link = lease
            .router
            .or(lease.tftp_server)
            .filter(|&peer| !Ipv4Cidr::new(ip, lease.prefix_len).contains_addr(&peer));
        self.stack.with_host(self.index, |slot| {
            slot.iface.update_ip_addrs(|addrs| {
                addrs.clear();
                let _ = addrs.push(IpCidr::Ipv4(Ipv4Cidr::new(ip, lease.prefix_len)));
                if let Some(peer) = on_link {
                    let common = (u32::from(ip) ^ u32::from(peer)).leading_zeros() as u8;
                    let _ = addrs.push(IpCidr::Ipv4(Ipv4Cidr::new(ip, common)));
                }
            });
            let routes = slot.iface.routes_mut();
            routes.remove_default_ipv4_route();
            if let Some(router) = lease.router {
                let _ = routes.add_default_ipv4_route(router);
            }
            slot.kick = true;
        });
        self.stack.lock().by_ip.insert(ip, self.index);
    }

    /// Removes the address and routes, as a reload does: what the sockets
    /// have queued leaves first (a TFTP client's final ACK), then open
    /// connections are aborted.
    pub fn deconfigure(&self) {
        let now = self.stack.now();
        {
            let mut inner = self.stack.lock();
            let Inner {
                nodes,
                by_ip,
                dirty,
                tx,
                ..
            } = &mut *inner;
            let node = &mut nodes[self.index];
            node.poll(now, tx);
            for cidr in node.iface.ip_addrs() {
                let IpCidr::Ipv4(cidr) = cidr;
                if by_ip.get(&cidr.address()) == Some(&self.index) {
                    by_ip.remove(&cidr.address());
                }
            }
            node.iface.update_ip_addrs(|addrs| addrs.clear());
            node.iface.routes_mut().remove_default_ipv4_route();
            for (_, socket) in node.sockets.iter_mut() {
                if let Socket::Tcp(tcp) = socket {
                    tcp.abort();
                }
            }
            node.mark(self.index, dirty);
        }
        self.stack.shared.kick.notify_one();
    }

    /// The switch's DHCP client port.
    pub fn dhcp(&self) -> DhcpPort<'_> {
        DhcpPort { host: self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::{self, Dhcp, L2};

    const A: [u8; 6] = [0x00, 0x1e, 0xf7, 0, 0, 1];
    const B: [u8; 6] = [0x00, 0x1e, 0xf7, 0, 0, 2];
    const PROXY: [u8; 6] = [0x02, 0, 0, 0, 0, 1];

    fn unicast(dst: [u8; 6]) -> L2 {
        L2 {
            dst,
            ..L2::broadcast(PROXY)
        }
    }

    /// An ARP request from the proxy for `target`.
    fn arp_request(target: [u8; 4]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&PROXY);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&PROXY);
        f.extend_from_slice(&[192, 0, 2, 1]);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&target);
        f
    }

    #[test]
    fn frames_reach_the_switch_they_are_for() {
        let by_mac = HashMap::from([(A, 0), (B, 1)]);
        let by_ip = HashMap::from([(Ipv4Addr::new(192, 0, 2, 101), 1)]);
        let to = |frame: &[u8]| destination(frame, &by_mac, &by_ip);
        let syn = frames::tcp(40_000, 4786, 0x02, &[]);
        let to_b = frames::ipv4(&unicast(B), [192, 0, 2, 1], [192, 0, 2, 101], 6, &[], &syn);
        assert_eq!(to(&to_b), Some(Destination::Stack(1)));
        let stranger = frames::ipv4(
            &unicast([2; 6]),
            [192, 0, 2, 1],
            [192, 0, 2, 9],
            6,
            &[],
            &syn,
        );
        assert_eq!(to(&stranger), None);
        assert_eq!(
            to(&arp_request([192, 0, 2, 101])),
            Some(Destination::Stack(1))
        );
        assert_eq!(to(&arp_request([192, 0, 2, 100])), None, "nobody holds it");
        let offer = Dhcp::server_reply(A, 7, 2, [192, 0, 2, 100], [192, 0, 2, 2]);
        assert_eq!(
            to(&offer.frame(&L2::broadcast(PROXY), [192, 0, 2, 2])),
            Some(Destination::Dhcp(0)),
            "a broadcast reply goes by chaddr"
        );
        assert_eq!(
            to(&offer.frame(&unicast(A), [192, 0, 2, 2])),
            Some(Destination::Dhcp(0))
        );
        let stranger_offer = Dhcp::server_reply([2; 6], 7, 2, [192, 0, 2, 9], [192, 0, 2, 2]);
        assert_eq!(
            to(&stranger_offer.frame(&L2::broadcast(PROXY), [192, 0, 2, 2])),
            None
        );
        let discover = Dhcp::cisco_client(B, 9, 1).frame(&L2::broadcast(B), [0; 4]);
        assert_eq!(
            to(&discover),
            None,
            "another client's DISCOVER (to port 67)"
        );
        assert_eq!(to(&[0xff; 10]), None, "a runt");
    }
}
