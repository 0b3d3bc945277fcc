//! The one place where a PnP service becomes SMI operations.
//!
//! | PnP service                 | What the proxy does                                         |
//! |-----------------------------|-------------------------------------------------------------|
//! | capability                  | lists the seven services below                              |
//! | device-info all/udi/image/profile | answers from the proxy database (UDI, version, image) |
//! | device-info hardware        | refuses: XSVC_ERROR_DEVICE_INFO_UNSUPPORTED                 |
//! | device-info filesystem      | refuses: XSVC_ERROR_DEVICE_INFO_UNSUPPORTED                 |
//! | config-upgrade, running     | refuses: XSVC_ERROR_CONFIG_UPGRADE_UNSUPPORTED              |
//! | config-upgrade, startup     | fetch + md5, stage on TFTP, SMI type 3 (reload as asked), success when fetched (and back) |
//! | image-install               | fetch + md5, stage image + image list, SMI type 2 (immediate reload), success when fetched, back and running it (`show version` by type 8) |
//! | topology                    | the attachment the proxy knows (MODELLED body)              |
//! | backoff, bye                | handled by the PnP agent loop itself                        |
//! | anything else               | refuses: PNP_ERROR_UNSUPPORTED_REQUEST                      |
use std::sync::Arc;

use super::identify::runs_installed_archive;
use super::{Core, CoreError};
use crate::pnp::agent::JobRequest;
use crate::pnp::codec::{
    ApplyTo, ConfigUpgrade, DeviceInfoReply, DeviceInfoType, ErrorInfo, ImageInfo, ImageInstall,
    Job, ReloadPolicy, Response, ResponseBody, Service, SmiRefusal, Topology,
};
use crate::smi::codec::{ImageReload, Message};
use crate::store::{ConfigSource, EntryState, JobStatus, Mac, Method};

/// Runs one job for one client and answers the agent.
pub async fn handle(core: Arc<Core>, job: JobRequest) {
    let correlator = job.request.correlator.clone();
    let service = job.request.job.service();
    tracing::debug!(target: "smi_proxy::fsm", "job {} {correlator} started", service.name());
    let response = run(&core, job.mac, &job.request.job, &correlator).await;
    tracing::info!(
        target: "smi_proxy",
        "{} -> {}",
        service.name(),
        if response.success { "success" } else { "failure" }
    );
    let _ = job.respond(response);
}

fn failed(service: Service, correlator: &str, code: &str, message: &str) -> Response {
    Response::failed(
        service,
        correlator,
        ErrorInfo {
            severity: "ERROR".into(),
            code: code.into(),
            message: format!("SMI PROXY: {message}"),
        },
    )
}

async fn run(core: &Arc<Core>, mac: Mac, job: &Job, correlator: &str) -> Response {
    let service = job.service();
    match job {
        Job::Capability => Response {
            body: ResponseBody::smi_proxy_capabilities(),
            ..Response::ok(service, correlator)
        },
        Job::DeviceInfo(DeviceInfoType::Hardware) => {
            Response::refused(service, correlator, SmiRefusal::DeviceInfoHardware)
        }
        Job::DeviceInfo(DeviceInfoType::Filesystem) => {
            Response::refused(service, correlator, SmiRefusal::DeviceInfoFilesystem)
        }
        Job::DeviceInfo(_) => {
            let Some(rec) = core.record(mac) else {
                return failed(
                    service,
                    correlator,
                    "PnP Service Error 1402",
                    "client unknown",
                );
            };
            Response {
                body: ResponseBody::DeviceInfo(DeviceInfoReply {
                    udi: rec.udi.clone(),
                    image: Some(ImageInfo {
                        version_string: rec.version.clone(),
                        image_file: rec.image.clone(),
                    }),
                    hardware: None,
                }),
                ..Response::ok(service, correlator)
            }
        }
        Job::ConfigUpgrade(c) if c.apply_to == ApplyTo::Running => {
            Response::refused(service, correlator, SmiRefusal::ConfigUpgradeRunning)
        }
        Job::ConfigUpgrade(c) => match config_upgrade(core, mac, c).await {
            Ok(()) => Response::ok(service, correlator),
            Err(reason) => failed(
                service,
                correlator,
                "PnP Service Error 1412",
                &reason.to_string(),
            ),
        },
        Job::ImageInstall(i) => match image_install(core, mac, i).await {
            Ok(()) => Response::ok(service, correlator),
            Err(reason) => failed(
                service,
                correlator,
                "PnP Service Error 1829",
                &reason.to_string(),
            ),
        },
        Job::Topology => {
            let rec = core.record(mac);
            Response {
                body: ResponseBody::Topology(Topology {
                    interface: Some(core.config().interface.clone()),
                    vlan: rec.as_ref().map(|r| r.vlan),
                    mac_address: Some(mac.to_string()),
                    ip_address: rec.and_then(|r| r.ip).map(Into::into),
                }),
                ..Response::ok(service, correlator)
            }
        }
        Job::Backoff(_) => Response::ok(service, correlator),
        Job::Unsupported { .. } => {
            Response::refused(service, correlator, SmiRefusal::UnsupportedRequest)
        }
    }
}

/// `md5` (of the fetched file) against the job's checksum, if it gives one.
fn check_md5(md5: &str, want: Option<&String>) -> Result<(), CoreError> {
    match want {
        Some(want) if !md5.eq_ignore_ascii_case(want.trim()) => Err(CoreError::Checksum {
            got: md5.to_owned(),
            want: want.clone(),
        }),
        _ => Ok(()),
    }
}

async fn fetch(core: &Core, url: &str, cap: usize) -> Result<bytes::Bytes, CoreError> {
    let pnp = core.pnp().ok_or(CoreError::NoProfile)?;
    pnp.fetch(url, cap)
        .await
        .map_err(|e| CoreError::SourceNotFetched(e.to_string()))
}

fn client_ip(core: &Core, mac: Mac) -> Result<std::net::Ipv4Addr, CoreError> {
    core.record(mac)
        .and_then(|r| r.ip)
        .ok_or(CoreError::NoAddress)
}

/// Which file of a client's download job a status is about.
#[derive(Clone, Copy, PartialEq, Eq)]
enum File {
    Config,
    Image,
}

/// Records the progress of one file of the client's download job (the
/// `show vstack download-status` columns) and the entry state it implies.
fn set_status(core: &Core, mac: Mac, file: File, status: JobStatus, reason: Option<String>) {
    let now = crate::clock::unix_secs();
    core.update(mac, move |r| {
        let (alone, other) = match file {
            File::Config => (Method::ConfigUpgrade, Method::ImageUpgrade),
            File::Image => (Method::ImageUpgrade, Method::ConfigUpgrade),
        };
        r.job.method = Some(match r.job.method {
            Some(m) if m == other || m == Method::ZeroTouch => Method::ZeroTouch,
            _ => alone,
        });
        let transfer = match file {
            File::Config => &mut r.job.config,
            File::Image => &mut r.job.image,
        };
        transfer.status = status;
        transfer.fail_reason = reason;
        if status == JobStatus::Upgraded {
            transfer.downloaded_at = Some(now);
        }
        r.state = match status {
            JobStatus::Upgrading => EntryState::Upgrading,
            JobStatus::Failed => EntryState::Failed,
            _ => EntryState::Done,
        };
    });
}

async fn config_upgrade(core: &Arc<Core>, mac: Mac, c: &ConfigUpgrade) -> Result<(), CoreError> {
    set_status(core, mac, File::Config, JobStatus::Upgrading, None);
    let result = config_upgrade_steps(core, mac, c).await;
    match &result {
        Ok(()) => set_status(core, mac, File::Config, JobStatus::Upgraded, None),
        Err(reason) => set_status(
            core,
            mac,
            File::Config,
            JobStatus::Failed,
            Some(reason.to_string()),
        ),
    }
    result
}

async fn config_upgrade_steps(
    core: &Arc<Core>,
    mac: Mac,
    c: &ConfigUpgrade,
) -> Result<(), CoreError> {
    let ip = client_ip(core, mac)?;
    let url = &c.source.location;
    let (_shared, fetched) = core
        .fetches()
        .get(url, || fetch(core, url, core.config().config_cap))
        .await?;
    check_md5(&fetched.md5, c.source.checksum.as_ref())?;
    let data = fetched.data;
    let name = c
        .source
        .location
        .rsplit('/')
        .next()
        .unwrap_or("startup.cfg");
    let file = core.staging().stage(mac.to_string(), name, data);
    let reload = matches!(c.reload, ReloadPolicy::Reload(_));
    let msg = Message::ConfigUpgrade {
        url: file.url(core.config().proxy_ip.into()),
        reload: reload.then(Core::reload_time),
    };
    let restarted = if reload {
        Some(core.expect_reload(mac)?)
    } else {
        None
    };
    let delivered = core.deliver(mac, ip, file.clone(), None, msg).await;
    // The configuration may hold secrets: it is served once.
    core.staging().unstage(file.path());
    delivered?;
    // The client saved it as its startup configuration: never push the
    // tailored one over it again.
    let saved = name.to_owned();
    core.update(mac, move |r| {
        r.config_source = Some(ConfigSource::Server);
        r.config_file = Some(saved);
    });
    if let Some(restarted) = restarted {
        core.await_reload(mac, ip, restarted).await?;
    }
    Ok(())
}

async fn image_install(core: &Arc<Core>, mac: Mac, i: &ImageInstall) -> Result<(), CoreError> {
    // An earlier attempt (before a proxy restart, or whose answer never
    // reached the server) may have installed it already.
    let repeat = core.record(mac).is_some_and(|r| {
        !matches!(
            r.job.image.status,
            JobStatus::NotApplicable | JobStatus::NotStarted
        )
    });
    set_status(core, mac, File::Image, JobStatus::Upgrading, None);
    let result = image_install_steps(core, mac, i, repeat).await;
    match &result {
        Ok(()) => set_status(core, mac, File::Image, JobStatus::Upgraded, None),
        Err(reason) => set_status(
            core,
            mac,
            File::Image,
            JobStatus::Failed,
            Some(reason.to_string()),
        ),
    }
    result
}

async fn image_install_steps(
    core: &Arc<Core>,
    mac: Mac,
    i: &ImageInstall,
    repeat: bool,
) -> Result<(), CoreError> {
    let ip = client_ip(core, mac)?;
    let name = i
        .source
        .location
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .ok_or(CoreError::NoFileName)?
        .to_owned();
    if !name.ends_with(".tar") {
        return Err(CoreError::NotTar(name));
    }
    // A repeated job (the server re-sent it after a proxy restart, or never
    // got the first answer) must not install and reload a second time: the
    // client runs the archive an earlier attempt installed. (The same image
    // file booted from elsewhere does not count: a first attempt installs
    // it too, and a repeat must not end differently because the first was
    // cut short, e.g. by a kill -9 mid-transfer.)
    if repeat
        && core
            .record(mac)
            .is_some_and(|r| runs_installed_archive(r.image.as_deref(), &name))
    {
        tracing::info!(target: "smi_proxy", "already runs {name}; image-install done without reloading");
        return Ok(());
    }
    // One download (and one copy in memory) for every client installing
    // this image at the same time.
    let url = &i.source.location;
    let (_shared, fetched) = core
        .fetches()
        .get(url, || fetch(core, url, core.config().image_cap))
        .await?;
    check_md5(&fetched.md5, i.source.checksum.as_ref())?;
    let data = fetched.data;
    let dir = core.staging().stage_dir(mac.to_string());
    let image = dir.add(&name, data)?;
    let list_name = format!("{}.txt", name.trim_end_matches(".tar"));
    let list = dir.add(&list_name, name.clone())?;
    let msg = Message::ImageUpgrade {
        url: list.url(core.config().proxy_ip.into()),
        reload: ImageReload::Immediate,
    };
    let restarted = core.expect_reload(mac)?;
    let delivered = core.deliver(mac, ip, image.clone(), Some(&list), msg).await;
    core.staging().unstage(list.path());
    core.staging().unstage(image.path());
    delivered?;
    core.await_reload(mac, ip, restarted).await?;
    // Learn the new version without touching the configuration.
    core.confirm_image(mac, ip, &name).await
}
