//! The life of one switch: boot, DHCP, serve SMI, reload, again.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::dhcp_client::DhcpTiming;
use super::link::Listener;
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
        if let Err(e) = sw.link.deconfigure().await {
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
async fn boot(sw: &Switch, dhcp: &DhcpTiming) -> anyhow::Result<Listener> {
    let hostname = sw.hostname();
    let lease = sw.link.acquire(sw.config.mac, &hostname, dhcp).await?;
    sw.link.configure(&lease).await?;
    let listener = sw
        .link
        .listen(SocketAddr::from((lease.ip, SMI_PORT)))
        .await?;
    sw.state().lease = Some(lease.clone());
    sw.emit(Event::DhcpBound {
        switch: sw.position,
        ip: lease.ip,
        lease,
    });
    Ok(listener)
}

/// Serves one connection per SMI message until an image install asks for a
/// reload; open connections are dropped then, as on a real reload.
async fn serve(sw: &Arc<Switch>, mut listener: Listener) -> Reload {
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
    fn hostnames() {
        assert_eq!(
            configured_hostname(b"version 12.2\n hostname Edge-7 \nend\n").as_deref(),
            Some("Edge-7")
        );
        assert_eq!(configured_hostname(b"no hostname\n"), None);
    }
}
