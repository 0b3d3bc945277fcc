//! Hostile traffic put on the lab's switch segment while the switches
//! onboard (`smi-lab --attack`, `smi-bench hostile`): one sender, as fast
//! as it goes, from its own thread, for at least [`ATTACK_MIN`] and at most
//! [`ATTACK_MAX`] (the onboarding ends it in between).
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::frames::{self, Dhcp, L2, msg};
use crate::lab::{PROXY_IP, Topology};
use crate::netns::RawSocket;

/// Longest an attack runs.
pub const ATTACK_MAX: Duration = Duration::from_secs(30);
/// Shortest an attack runs, even when the switches finish sooner (the
/// DHCP flood: [`ATTACK_MAX`]).
pub const ATTACK_MIN: Duration = Duration::from_secs(10);

/// Which attack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Attack {
    /// None: the baseline.
    #[default]
    None,
    /// DHCP DISCOVERs from random MACs.
    DhcpFlood,
    /// 1,000 idle connections, half to 4786 and half to 19140, from the
    /// proxy's own namespace (past XDP: the listeners' caps bound them),
    /// and one more streaming an endless `IAC SB` to 19140.
    IdleConnections,
    /// DHCP OFFERs from a host on a switch port.
    SpoofedOffers,
    /// TFTP read requests for guessed paths: from random MACs on the
    /// segment, and from the proxy's own namespace (past XDP).
    TftpGuess,
    /// TCP segments to 4786 from random MACs with SMI headers of every
    /// type and hostile length words.
    SmiGarbage,
}

impl Attack {
    /// Every attack, baseline first.
    pub const ALL: [Attack; 6] = [
        Attack::None,
        Attack::DhcpFlood,
        Attack::IdleConnections,
        Attack::SpoofedOffers,
        Attack::TftpGuess,
        Attack::SmiGarbage,
    ];

    /// The name `--attack` takes.
    pub fn name(self) -> &'static str {
        match self {
            Attack::None => "none",
            Attack::DhcpFlood => "dhcp-flood",
            Attack::IdleConnections => "idle-connections",
            Attack::SpoofedOffers => "spoofed-offers",
            Attack::TftpGuess => "tftp-guess",
            Attack::SmiGarbage => "smi-garbage",
        }
    }

    /// Shortest it runs, even when the switches finish sooner.
    pub fn min_duration(self) -> Duration {
        match self {
            Attack::DhcpFlood => ATTACK_MAX,
            _ => ATTACK_MIN,
        }
    }

    /// What the attack counts.
    pub fn unit(self) -> &'static str {
        match self {
            Attack::None => "-",
            Attack::IdleConnections => "connections",
            Attack::TftpGuess => "requests",
            _ => "frames",
        }
    }
}

/// What an attack sent, and for how long.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sent {
    /// Frames, requests or connections.
    pub units: u64,
    /// Seconds it ran.
    pub secs: f64,
}

/// Sends one frame of a flood: a full device queue (`ENOBUFS`, `EAGAIN`)
/// drops it, as a NIC would; any other error ends the attack.
fn flood(raw: &RawSocket, frame: &[u8]) -> anyhow::Result<()> {
    match raw.try_send(frame) {
        Err(e)
            if e.raw_os_error() == Some(libc::ENOBUFS)
                || e.kind() == std::io::ErrorKind::WouldBlock =>
        {
            Ok(())
        }
        other => other.context("attack frame"),
    }
}

/// A running attack.
pub struct Attacker {
    attack: Attack,
    started: Instant,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<Sent>>,
}

/// A locally administered unicast MAC from a counter.
fn mac_of(n: u64) -> [u8; 6] {
    let [_, _, _, a, b, c, d, e] = n.to_be_bytes();
    [0x06 | (a & 0xf0), b, c, d, e, 0x42]
}

impl Attacker {
    /// Starts `attack` on `topo`'s segment (`None` for [`Attack::None`]).
    pub fn start(attack: Attack, topo: &Topology) -> anyhow::Result<Option<Self>> {
        if attack == Attack::None {
            return Ok(None);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let sw_ns = topo.sw.name().to_owned();
        let px_ns = topo.px.name().to_owned();
        let proxy_mac = topo
            .px
            .link_mac(topo.l3_iface())
            .context("the proxy's MAC")?;
        let flag = stop.clone();
        let thread = std::thread::spawn(move || run(attack, &sw_ns, &px_ns, proxy_mac, &flag));
        Ok(Some(Self {
            attack,
            started: Instant::now(),
            stop,
            thread,
        }))
    }

    /// How much longer it must run to have run its
    /// [`Attack::min_duration`].
    pub fn min_remaining(&self) -> Duration {
        self.attack
            .min_duration()
            .saturating_sub(self.started.elapsed())
    }

    /// Stops it; what it sent.
    pub fn stop(self) -> anyhow::Result<Sent> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the attacker thread panicked"))?
    }
}

fn run(
    attack: Attack,
    sw_ns: &str,
    px_ns: &str,
    proxy_mac: [u8; 6],
    stop: &AtomicBool,
) -> anyhow::Result<Sent> {
    let started = Instant::now();
    let over = || stop.load(Ordering::Relaxed) || started.elapsed() >= ATTACK_MAX;
    let mut units = 0u64;
    let raw = || -> anyhow::Result<RawSocket> {
        let _in_sw = crate::netns::NsGuard::enter(sw_ns)?;
        RawSocket::open("sw0")
    };
    let to_proxy = |src: [u8; 6]| L2 {
        dst: proxy_mac,
        src,
        tags: Vec::new(),
    };
    match attack {
        Attack::None => {}
        Attack::DhcpFlood => {
            let raw = raw()?;
            while !over() {
                let mac = mac_of(units);
                let frame = Dhcp::cisco_client(mac, units as u32, msg::DISCOVER)
                    .frame(&L2::broadcast(mac), [0; 4]);
                flood(&raw, &frame)?;
                units += 1;
            }
        }
        Attack::SpoofedOffers => {
            let raw = raw()?;
            let spoofer = [0x06, 0x66, 0x66, 0x66, 0x66, 0x66];
            while !over() {
                let victim = mac_of(units);
                let mut l2 = L2::broadcast(victim);
                l2.src = spoofer;
                let frame = Dhcp::server_reply(
                    victim,
                    units as u32,
                    msg::OFFER,
                    [192, 0, 2, 200],
                    [192, 0, 2, 66],
                )
                .frame(&l2, [192, 0, 2, 66]);
                flood(&raw, &frame)?;
                units += 1;
            }
        }
        Attack::SmiGarbage => {
            let raw = raw()?;
            while !over() {
                let msg_type = (units % 11) as u32;
                let len_word = [0, 8, 4096, 65_536, u32::MAX][(units % 5) as usize];
                let mut payload = frames::smi_header(1 + (units % 4) as u32, 0, msg_type, len_word);
                payload.extend_from_slice(&[0xa5; 64]);
                let frame = frames::ipv4(
                    &to_proxy(mac_of(units)),
                    [192, 0, 2, 240],
                    PROXY_IP.octets(),
                    6,
                    &[],
                    &frames::tcp(40_000 + (units % 20_000) as u16, 4786, 0x18, &payload),
                );
                flood(&raw, &frame)?;
                units += 1;
            }
        }
        Attack::TftpGuess => {
            let raw = raw()?;
            let local = {
                let _in_px = crate::netns::NsGuard::enter(px_ns)?;
                UdpSocket::bind(("0.0.0.0", 0))?
            };
            while !over() {
                let mut rrq = vec![0, 1];
                rrq.extend_from_slice(format!("{units:016x}/client_cfg_pnp.txt").as_bytes());
                rrq.extend_from_slice(b"\0octet\0");
                if units.is_multiple_of(2) {
                    let frame = frames::ipv4(
                        &to_proxy(mac_of(units)),
                        [192, 0, 2, 241],
                        PROXY_IP.octets(),
                        17,
                        &[],
                        &frames::udp(40_069, 69, &rrq),
                    );
                    flood(&raw, &frame)?;
                } else {
                    // Past XDP: the server refuses it (and answers ERROR).
                    let _ = local.send_to(&rrq, SocketAddr::from((PROXY_IP, 69)));
                }
                units += 1;
            }
        }
        Attack::IdleConnections => {
            let _in_px = crate::netns::NsGuard::enter(px_ns)?;
            let mut held = Vec::new();
            for i in 0..1_000u32 {
                if over() {
                    break;
                }
                let port = if i.is_multiple_of(2) { 4786 } else { 19140 };
                if let Ok(s) = TcpStream::connect_timeout(
                    &SocketAddr::from((PROXY_IP, port)),
                    Duration::from_secs(1),
                ) {
                    held.push(s);
                    units += 1;
                }
            }
            // One more streams an endless `IAC SB` to 19140 (refused or
            // bounded by the session's subnegotiation cap).
            let mut sb = TcpStream::connect_timeout(
                &SocketAddr::from((PROXY_IP, 19140)),
                Duration::from_secs(1),
            )
            .ok();
            if let Some(s) = &sb {
                s.set_write_timeout(Some(Duration::from_millis(100)))?;
            }
            let mut chunk = vec![0x41u8; 4096];
            chunk[..2].copy_from_slice(&[0xff, 0xfa]);
            let mut first = true;
            while !over() {
                match sb.as_mut() {
                    Some(s) => {
                        let bytes = if first { &chunk[..] } else { &chunk[2..] };
                        match s.write(bytes) {
                            Ok(_) => first = false,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                            Err(_) => sb = None,
                        }
                    }
                    None => std::thread::sleep(Duration::from_millis(50)),
                }
            }
            drop(held);
        }
    }
    Ok(Sent {
        units,
        secs: started.elapsed().as_secs_f64(),
    })
}
