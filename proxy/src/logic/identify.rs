//! How the proxy learns who a client is and what it runs.
//!
//! - **First identification** (a client whose UDI is unknown and that holds
//!   no configuration the PnP server installed): the tailored
//!   configuration `client_cfg_pnp.txt` by SMI type 3, after which the
//!   client telnets back to port 19140 and the proxy reads `show version`
//!   ([`Core::identify`]). The client saves a type-3 file as its startup
//!   configuration, so this happens once per client.
//! - **Afterwards** (a reload into a new image, a proxy restart that cut an
//!   install short): the client is found by MAC and its `show version` is
//!   fetched with an SMI type-8 exec command that copies the output to the
//!   proxy's TFTP server ([`Core::read_version`]), which leaves the startup
//!   configuration alone. When that fails, the record keeps the image the
//!   proxy installed, marked unverified ([`VersionSource::Installed`]).
use std::net::Ipv4Addr;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::error::OtherDevice;
use super::{Core, CoreError, lock};
use crate::smi::codec::{CommandBlock, DEFAULT_CLI_MAC, Message};
use crate::smi::showver::{self, ShowVersion};
use crate::smi::tailored;
use crate::store::{ConfigSource, Mac, VersionSource};

/// Largest `show version` upload accepted (a stack of nine prints ~20 KB).
pub const SHOW_VERSION_UPLOAD_CAP: u64 = 64 * 1024;

/// The exec command that makes a client copy its `show version` output to
/// `url` (a `tftp://` URL of the proxy's TFTP server).
///
/// MODELLED: IOS 12.2 and later accept `| redirect <url>` after a `show`
/// command, and SMI type 8 runs exec commands (SIET and Metasploit send
/// `copy` commands in it); no public capture shows a director sending this
/// one. This is the only place the proxy composes it.
pub fn show_version_command(url: &str) -> String {
    format!("show version | redirect {url}")
}

/// The boot image `archive download-sw` of `tar_name` leaves a switch
/// running: `c2960-lanbasek9-tar.150-2.SE11.tar` ->
/// `flash:/c2960-lanbasek9-mz.150-2.SE11/c2960-lanbasek9-mz.150-2.SE11.bin`.
pub fn installed_boot_image(tar_name: &str) -> Option<String> {
    let base = tar_name.strip_suffix(".tar")?;
    let (platform, version) = base.split_once("-tar.")?;
    let stem = format!("{platform}-mz.{version}");
    Some(format!("flash:/{stem}/{stem}.bin"))
}

/// Whether `running` (the boot image `show version` reported) is what the
/// `.tar` archive `tar_name` installs (see [`installed_boot_image`]).
pub fn runs_image(running: Option<&str>, tar_name: &str) -> bool {
    let (Some(running), Some(boot)) = (running, installed_boot_image(tar_name)) else {
        return false;
    };
    let file = |path: &str| path.rsplit(['/', ':']).next().map(str::to_owned);
    file(running).is_some_and(|f| Some(f) == file(&boot))
}

/// Whether `running` is the image an `archive download-sw` of `tar_name`
/// left (its own directory: `.../<stem>/<stem>.bin`), not merely a file of
/// the same name booted from elsewhere: what a switch runs after the
/// proxy installed that archive.
pub fn runs_installed_archive(running: Option<&str>, tar_name: &str) -> bool {
    let (Some(running), Some(boot)) = (running, installed_boot_image(tar_name)) else {
        return false;
    };
    let tail = |path: &str| {
        let mut parts = path.rsplit(['/', ':']);
        match (parts.next(), parts.next()) {
            (Some(file), Some(dir)) if !dir.is_empty() => Some(format!("{dir}/{file}")),
            _ => None,
        }
    };
    tail(running).is_some_and(|t| Some(t) == tail(&boot))
}

impl Core {
    /// First identification: pushes the tailored configuration and waits
    /// for the client's reverse-telnet session; records PID/VID/SN, version
    /// and image, and that the client's startup configuration is now the
    /// proxy's.
    pub(crate) async fn identify(&self, mac: Mac, ip: Ipv4Addr) -> Result<(), CoreError> {
        let turn = self
            .deliveries
            .acquire()
            .await
            .map_err(|_| CoreError::ShuttingDown)?;
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).identities.insert(ip, tx);
        let msg = Message::ConfigUpgrade {
            url: self.tailored.url(self.cfg.proxy_ip.into()),
            reload: None,
        };
        if let Err(e) = self.send_smi(mac, ip, &msg).await {
            lock(&self.waiters).identities.remove(&ip);
            return Err(CoreError::Send {
                what: "sending the tailored configuration",
                source: e,
            });
        }
        let sv = match tokio::time::timeout(self.cfg.identify_timeout, rx).await {
            Ok(Ok(Ok(sv))) => sv,
            Ok(Ok(Err(e))) => return Err(CoreError::Telnet(e)),
            Ok(Err(_)) => return Err(CoreError::WaiterDropped("reverse telnet")),
            Err(_) => {
                lock(&self.waiters).identities.remove(&ip);
                return Err(CoreError::NoTelnet(self.cfg.identify_timeout));
            }
        };
        drop(turn);
        let udi = sv
            .udi()
            .map_err(|e| CoreError::ShowVersion(e.to_string()))?;
        // The lines from here on (this task's span) carry the UDI.
        crate::logging::follow(mac, Some(ip), Some(&udi));
        tracing::info!(target: "smi_proxy", "identified by its show version");
        self.update(mac, move |r| {
            r.udi = Some(udi);
            r.version = sv.version.clone();
            r.image = sv.image.clone();
            r.version_source = Some(VersionSource::ShowVersion);
            r.config_source = Some(ConfigSource::Proxy);
            r.config_file = Some(tailored::FILE_NAME.to_owned());
            if let Some(h) = &sv.hostname {
                r.hostname = h.clone();
            }
        });
        Ok(())
    }

    /// Reads the client's `show version` by SMI type 8 (see
    /// [`show_version_command`]), without touching its configuration, and
    /// records what it says. A client whose UDI is known must answer with
    /// that UDI; one without gets it recorded.
    pub(crate) async fn read_version(
        &self,
        mac: Mac,
        ip: Ipv4Addr,
    ) -> Result<ShowVersion, CoreError> {
        let turn = self
            .deliveries
            .acquire()
            .await
            .map_err(|_| CoreError::ShuttingDown)?;
        let upload = self.staging.expect_upload(
            mac.to_string(),
            "show-version.txt",
            SHOW_VERSION_UPLOAD_CAP,
        );
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters)
            .uploads
            .insert(upload.path().to_owned(), tx);
        let msg = Message::RunCli {
            mac: DEFAULT_CLI_MAC,
            block: CommandBlock::ThreeSlots,
            commands: vec![show_version_command(&upload.url(self.cfg.proxy_ip.into()))],
        };
        tracing::info!(target: "smi_proxy", "reading show version by type 8 into {}", upload.path());
        let sent = self.send_smi(mac, ip, &msg).await;
        let result = match sent {
            Err(e) => Err(CoreError::Send {
                what: "sending the show version command",
                source: e,
            }),
            Ok(()) => match tokio::time::timeout(self.cfg.identify_timeout, rx).await {
                Ok(Ok(Ok(data))) => Ok(data),
                Ok(Ok(Err(e))) => Err(CoreError::Upload(e)),
                Ok(Err(_)) => Err(CoreError::WaiterDropped("show version upload")),
                Err(_) => Err(CoreError::NoUpload(self.cfg.identify_timeout)),
            },
        };
        lock(&self.waiters).uploads.remove(upload.path());
        self.staging.unstage(upload.path());
        drop(turn);
        let data: Bytes = result?;
        let text = String::from_utf8_lossy(&data);
        let sv = showver::parse(&text).map_err(|e| CoreError::ShowVersion(e.to_string()))?;
        let udi = sv
            .udi()
            .map_err(|e| CoreError::ShowVersion(e.to_string()))?;
        let known = self.record(mac).and_then(|r| r.udi);
        if let Some(known) = &known
            && *known != udi
        {
            return Err(CoreError::OtherDevice(Box::new(OtherDevice {
                ip,
                udi,
                mac,
                known: known.clone(),
            })));
        }
        let recorded = sv.clone();
        crate::logging::follow(mac, Some(ip), Some(&udi));
        self.update(mac, move |r| {
            r.udi = Some(udi);
            r.version = recorded.version;
            r.image = recorded.image;
            r.version_source = Some(VersionSource::ShowVersion);
            if let Some(h) = recorded.hostname {
                r.hostname = h;
            }
        });
        Ok(sv)
    }

    /// After installing `tar_name` and the client's reload: confirms the
    /// client runs it ([`Core::read_version`]). A client that answers with
    /// another image fails the install; one that cannot be read keeps the
    /// installed image in its record, marked unverified.
    pub(crate) async fn confirm_image(
        &self,
        mac: Mac,
        ip: Ipv4Addr,
        tar_name: &str,
    ) -> Result<(), CoreError> {
        match self.read_version(mac, ip).await {
            Ok(sv) if runs_image(sv.image.as_deref(), tar_name) => Ok(()),
            Ok(sv) => Err(CoreError::WrongImage {
                running: sv.image.unwrap_or_else(|| "an unknown image".to_owned()),
                wanted: tar_name.to_owned(),
            }),
            Err(e) => {
                tracing::warn!(target: "smi_proxy", "{tar_name} installed but not verified: {e}");
                let image = installed_boot_image(tar_name).unwrap_or_else(|| tar_name.to_owned());
                self.update(mac, move |r| {
                    r.image = Some(image);
                    r.version = None;
                    r.version_source = Some(VersionSource::Installed);
                });
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_image_matches_the_archive() {
        let tar = "c2960-lanbasek9-tar.150-2.SE11.tar";
        assert!(runs_image(
            Some("flash:/c2960-lanbasek9-mz.150-2.SE11/c2960-lanbasek9-mz.150-2.SE11.bin"),
            tar
        ));
        assert!(runs_image(
            Some("flash:c2960-lanbasek9-mz.150-2.SE11.bin"),
            tar
        ));
        assert!(!runs_image(
            Some("flash:c2960-lanbasek9-mz.122-55.SE8.bin"),
            tar
        ));
        assert!(!runs_image(None, tar));
        assert!(!runs_image(Some("flash:x.bin"), "image.bin"));
        assert!(!runs_image(
            Some("flash:/c3750-ipbasek9-mz.150-2.SE11/c3750-ipbasek9-mz.150-2.SE11.bin"),
            tar
        ));
    }

    #[test]
    fn an_installed_archive_is_told_from_the_same_file_elsewhere() {
        let tar = "c2960-lanbasek9-tar.150-2.SE11.tar";
        assert!(runs_installed_archive(
            Some("flash:/c2960-lanbasek9-mz.150-2.SE11/c2960-lanbasek9-mz.150-2.SE11.bin"),
            tar
        ));
        assert!(runs_installed_archive(
            Some("flash:c2960-lanbasek9-mz.150-2.SE11/c2960-lanbasek9-mz.150-2.SE11.bin"),
            tar
        ));
        assert!(!runs_installed_archive(
            Some("flash:c2960-lanbasek9-mz.150-2.SE11.bin"),
            tar
        ));
        assert!(!runs_installed_archive(None, tar));
    }

    #[test]
    fn the_show_version_command_fits_a_type_8_slot() {
        let cmd = show_version_command("tftp://192.0.2.1/0123456789abcdef/show-version.txt");
        assert_eq!(
            cmd,
            "show version | redirect tftp://192.0.2.1/0123456789abcdef/show-version.txt"
        );
        let msg = Message::RunCli {
            mac: DEFAULT_CLI_MAC,
            block: CommandBlock::ThreeSlots,
            commands: vec![cmd],
        };
        assert_eq!(msg.encode().map(|b| b.len()), Ok(1048));
        assert_eq!(
            installed_boot_image("c2960-lanbasek9-tar.150-2.SE11.tar").as_deref(),
            Some("flash:/c2960-lanbasek9-mz.150-2.SE11/c2960-lanbasek9-mz.150-2.SE11.bin")
        );
        assert_eq!(installed_boot_image("image.bin"), None);
    }
}
