//! The life of one switch: boot, DHCP, serve SMI, reload, again.
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::dhcp_client::{self, DhcpTiming, Lease};
use super::net::{self, IFACE, PacketSocket};
use super::{Event, SMI_PORT, Switch, smi};

/// What an installed image asks of the switch task.
#[derive(Debug)]
pub(super) struct Reload {
    /// Image now running.
    pub image: String,
    /// Version now running.
    pub version: String,
}

/// Runs the switch until the task is aborted (or its namespace breaks).
pub(super) async fn run(sw: Arc<Switch>, dhcp: DhcpTiming, boot_delay: Duration) {
    if !boot_delay.is_zero() {
        tokio::time::sleep(boot_delay).await;
    }
    loop {
        let listener = match boot(&sw, &dhcp).await {
            Ok(listener) => listener,
            Err(e) => {
                sw.fail("boot", &e);
                return;
            }
        };
        let reload = serve(&sw, listener).await;
        if let Err(e) = net::in_netns(&sw.netns, || net::clear_ipv4(IFACE)).await {
            sw.fail("reload", &e);
            return;
        }
        let version = {
            let mut state = sw.state();
            state.lease = None;
            state.version = reload.version;
            state.image = reload.image;
            state.booted = Instant::now();
            state.uptime_at_boot = Duration::ZERO;
            state.boots += 1;
            if let Some(name) = state
                .startup_config
                .as_deref()
                .and_then(configured_hostname)
            {
                state.hostname = name;
            }
            state.version.clone()
        };
        sw.emit(Event::Reloaded {
            switch: sw.position,
            version,
        });
    }
}

/// DHCP until bound, address and routes, then the SMI listener.
async fn boot(sw: &Switch, dhcp: &DhcpTiming) -> anyhow::Result<tokio::net::TcpListener> {
    let lease = {
        let sock = PacketSocket::open_in(&sw.netns, 68, sw.config.mac).await?;
        let hostname = sw.hostname();
        dhcp_client::acquire(&sock, sw.config.mac, &hostname, dhcp).await
    };
    configure(&sw.netns, &lease).await?;
    let listener = net::tcp_listener_in(&sw.netns, SocketAddr::from((lease.ip, SMI_PORT))).await?;
    sw.state().lease = Some(lease.clone());
    sw.emit(Event::DhcpBound {
        switch: sw.position,
        ip: lease.ip,
        lease,
    });
    Ok(listener)
}

/// Adds the leased address; a default route through the router (after a
/// host route to it when it lies outside the subnet, as `onlink` would);
/// and, without a router, an on-link host route to a TFTP server outside
/// the subnet (the proxy, in large pools). All with ioctls from one thread
/// in the namespace: spawning `ip` for each of thousands of switches costs
/// more than their whole DHCP exchange.
async fn configure(netns: &str, lease: &Lease) -> anyhow::Result<()> {
    let (ip, prefix_len) = (lease.ip, lease.prefix_len);
    let router = lease.router;
    let onlink_router = router.filter(|&r| !same_subnet(r, ip, prefix_len));
    let host_route = lease
        .tftp_server
        .filter(|&server| router.is_none() && !same_subnet(server, ip, prefix_len));
    net::in_netns(netns, move || {
        net::set_ipv4(IFACE, ip, prefix_len)?;
        if let Some(router) = onlink_router {
            net::add_route(IFACE, router, 32, None)?;
        }
        if let Some(router) = router {
            net::add_route(IFACE, Ipv4Addr::UNSPECIFIED, 0, Some(router))?;
        }
        if let Some(server) = host_route {
            net::add_route(IFACE, server, 32, None)?;
        }
        Ok(())
    })
    .await
}

fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, prefix_len: u8) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0);
    u32::from(a) & mask == u32::from(b) & mask
}

/// Serves one connection per SMI message until an image install asks for a
/// reload; open connections are dropped then, as on a real reload.
async fn serve(sw: &Arc<Switch>, listener: tokio::net::TcpListener) -> Reload {
    let (reload_tx, mut reload_rx) = mpsc::channel(1);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(smi::handle(sw.clone(), stream, peer, reload_tx.clone()));
                }
                Err(e) => log::warn!("switch {}: accept: {e}", sw.position),
            },
            Some(reload) = reload_rx.recv() => return reload,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The name of a `hostname <name>` line of a configuration.
fn configured_hostname(config: &[u8]) -> Option<String> {
    String::from_utf8_lossy(config).lines().find_map(|line| {
        let name = line.trim().strip_prefix("hostname ")?.trim();
        let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic());
        valid.then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_and_hostnames() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(same_subnet(ip("192.0.2.1"), ip("192.0.2.200"), 24));
        assert!(!same_subnet(ip("192.0.2.1"), ip("198.18.0.5"), 15));
        assert!(same_subnet(ip("198.19.255.1"), ip("198.18.0.5"), 15));
        assert!(same_subnet(ip("1.2.3.4"), ip("5.6.7.8"), 0));
        assert_eq!(
            configured_hostname(b"version 12.2\n hostname Edge-7 \nend\n").as_deref(),
            Some("Edge-7")
        );
        assert_eq!(configured_hostname(b"no hostname\n"), None);
    }
}
