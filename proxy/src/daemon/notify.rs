//! What the service manager is told (systemd's `Type=notify`, through the
//! `sd-notify` crate): ready once the dataplane is attached and every
//! listener bound, stopping when a stop begins. Without `NOTIFY_SOCKET`
//! (not started by systemd) nothing is sent.
use sd_notify::NotifyState;

/// Tells the service manager the daemon serves, with `status` as the line
/// `systemctl status` shows.
pub(crate) fn ready(status: &str) -> std::io::Result<()> {
    sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)])
}

/// Tells the service manager the daemon has begun to stop, and why.
pub(crate) fn stopping(status: &str) -> std::io::Result<()> {
    sd_notify::notify(&[NotifyState::Stopping, NotifyState::Status(status)])
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;
    use std::process::Command;
    use std::time::Duration;

    /// The child half of [`the_service_manager_hears_ready_then_stopping`]:
    /// run by it in a process of its own whose environment holds
    /// `NOTIFY_SOCKET` (setting it here would race the other tests).
    #[test]
    #[ignore = "run by the_service_manager_hears_ready_then_stopping"]
    fn notify_from_a_child() {
        super::ready("ready on eth1").unwrap();
        super::stopping("stopping").unwrap();
    }

    #[test]
    fn the_service_manager_hears_ready_then_stopping() {
        let dir = std::env::temp_dir().join(format!("smi-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let manager = UnixDatagram::bind(&path).unwrap();
        manager
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let module = module_path!().split_once("::").unwrap().1;
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &format!("{module}::notify_from_a_child")])
            .args(["--ignored", "--test-threads=1"])
            .env("NOTIFY_SOCKET", &path)
            .output()
            .unwrap();
        assert!(
            child.status.success(),
            "child test: {}\n{}",
            child.status,
            String::from_utf8_lossy(&child.stdout)
        );
        let mut buf = [0u8; 256];
        let mut next = || {
            let n = manager.recv(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        assert_eq!(next(), "READY=1\nSTATUS=ready on eth1\n");
        assert_eq!(next(), "STOPPING=1\nSTATUS=stopping\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn without_a_service_manager_nothing_is_sent() {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            super::ready("ready").unwrap();
            super::stopping("stopping").unwrap();
        }
    }
}
