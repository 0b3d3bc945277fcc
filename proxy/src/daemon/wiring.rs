//! The director: its sockets (TFTP 69, SMI 4786, telnet 19140), the proxy
//! database, the tailored configuration and the proxy core.
use std::net::Ipv4Addr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::control::DirectorParts;
use super::flags::RunConfig;
use crate::dataplane::DataplaneEvent;

/// The director's core task and what it shares.
pub(super) struct StartedDirector {
    pub(super) task: tokio::task::JoinHandle<()>,
    pub(super) parts: DirectorParts,
}

/// Binds the director's sockets on `ip` (TFTP 69, SMI 4786, telnet 19140),
/// opens the proxy database, stages the tailored configuration and starts
/// the proxy core (with the PnP agents of the active profile, if any).
pub(super) async fn start_director(
    run: &RunConfig,
    ip: Ipv4Addr,
    table: crate::dataplane::ClientTable,
    dataplane: tokio::sync::mpsc::Receiver<Vec<DataplaneEvent>>,
    cancel: CancellationToken,
) -> anyhow::Result<StartedDirector> {
    use crate::smi::{director, tailored, telnet, tftp};
    let cfg = &run.config;
    let store = crate::store::Store::open(&cfg.state_dir)
        .with_context(|| format!("proxy database in {}", cfg.state_dir.display()))?;
    log::info!("proxy database: {} entries", store.len());

    let creds = tailored::Credentials {
        enable_password: cfg.credentials.enable_password.clone(),
        username: cfg.credentials.username.clone(),
    };
    let text = tailored::render(ip, &creds).context("tailored configuration")?;
    let vstack = cfg.state_dir.join("vstack");
    std::fs::create_dir_all(&vstack)?;
    std::fs::write(vstack.join(tailored::FILE_NAME), &text)?;
    let staging = tftp::Staging::new();
    let tailored_file = staging.stage("proxy", tailored::FILE_NAME, text);
    staging.set_ttl(tailored_file.path(), None);

    let udp = tokio::net::UdpSocket::bind((ip, tftp::TFTP_PORT))
        .await
        .with_context(|| format!("TFTP on {ip}:69"))?;
    let (tftp_tx, tftp_rx) = tokio::sync::mpsc::channel(4096);
    tokio::spawn(tftp::serve(
        udp,
        staging.clone(),
        tftp_tx,
        tftp::TftpLimits::default(),
        cancel.clone(),
    ));

    let limits = director::Limits {
        connect: cfg.limits.probe_timeout(),
        read: cfg.limits.probe_timeout(),
        max_inbound: cfg.limits.max_smi_connections,
    };
    let smi = tokio::net::TcpListener::bind((ip, director::SMI_PORT))
        .await
        .with_context(|| format!("SMI listener on {ip}:4786"))?;
    let (inbound_tx, mut inbound_rx) = tokio::sync::mpsc::channel(256);
    let listener_stats = Arc::new(director::ListenerStats::default());
    tokio::spawn(director::listen(
        smi,
        limits,
        listener_stats.clone(),
        inbound_tx,
        cancel.clone(),
    ));
    // MODELLED: client-to-director messages have no public layout; they
    // are logged by the listener and otherwise ignored.
    tokio::spawn(async move { while inbound_rx.recv().await.is_some() {} });

    let tel = tokio::net::TcpListener::bind((ip, telnet::TELNET_PORT))
        .await
        .with_context(|| format!("telnet listener on {ip}:19140"))?;
    let (tel_tx, tel_rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(telnet::listen(
        tel,
        cfg.limits.telnet_timeout(),
        tel_tx,
        cancel.clone(),
    ));

    let pnp = match run.pnp_profile() {
        Some(profile) => {
            log::info!("PnP profile {}: server {}", profile.name, profile.server);
            Some(crate::pnp::agent::AgentShared::new(profile)?)
        }
        None => {
            log::warn!("no PnP server configured: switches are identified, no PnP agent runs");
            None
        }
    };
    let pnp_stats = pnp.as_ref().map(|shared| shared.stats());

    let core_cfg = crate::logic::CoreConfig {
        proxy_ip: ip,
        interface: cfg.interfaces.first().cloned().unwrap_or_default(),
        limits,
        identify_timeout: run.identify_timeout,
        download_timeout: run.download_timeout,
        reload_timeout: run.reload_timeout,
        probe_attempts: 6,
        config_cap: 4 << 20,
        image_cap: 1 << 30,
        image_dir: cfg.state_dir.join("images"),
    };
    let (core, _jobs_tx, jobs_rx, reports_rx) = crate::logic::Core::new(
        core_cfg,
        table,
        store,
        staging,
        tailored_file,
        pnp,
        cancel.clone(),
    );
    let inputs = crate::logic::CoreInputs {
        dataplane,
        tftp: tftp_rx,
        telnet: tel_rx,
        jobs: jobs_rx,
        reports: reports_rx,
    };
    Ok(StartedDirector {
        task: tokio::spawn(core.clone().run(inputs)),
        parts: DirectorParts {
            core,
            listener: listener_stats,
            pnp: pnp_stats,
        },
    })
}
