//! The CPU time of a process and every process it starts, exited ones
//! included, from a cgroup v2 of its own (`cpu.stat`, microseconds).
//!
//! `/proc/<pid>/stat` does not do: a server that forks a process per
//! transfer and lets the kernel reap them (SIGCHLD ignored, as tftpd-hpa
//! does) never sees their time in its own `cutime`, and clock ticks are
//! 10 ms. The group is made under the root of the cgroup v2 hierarchy and
//! removed on drop; nothing else in the hierarchy is touched.
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// A cgroup v2 made for one measured process tree.
pub struct CpuGroup {
    dir: PathBuf,
}

impl CpuGroup {
    /// Makes `<cgroup2 mount>/<name>`.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let root = cgroup2_mount()?;
        let dir = root.join(name);
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(CpuGroup { dir })
    }

    /// Moves process `pid` (all its threads) into the group; the
    /// processes it starts from now on are born there.
    pub fn add(&self, pid: u32) -> anyhow::Result<()> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .with_context(|| format!("moving {pid} into {}", self.dir.display()))
    }

    /// CPU seconds (user + system) used in the group since it was made.
    pub fn cpu_s(&self) -> anyhow::Result<f64> {
        let path = self.dir.join("cpu.stat");
        let stat = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        usage_usec(&stat)
            .map(|usec| usec as f64 / 1e6)
            .with_context(|| format!("no usage_usec in {}", path.display()))
    }

    /// Processes in the group now.
    pub fn processes(&self) -> anyhow::Result<Vec<u32>> {
        let procs = std::fs::read_to_string(self.dir.join("cgroup.procs"))?;
        Ok(procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect())
    }

    /// Sends SIGKILL to every process in the group (the processes the
    /// measured one started and left behind).
    pub fn kill_all(&self) -> anyhow::Result<()> {
        for pid in self.processes()? {
            if let Ok(pid) = i32::try_from(pid) {
                // SAFETY: kill(2) has no memory preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        Ok(())
    }
}

/// Removes the empty groups named `<prefix><pid>-...` left by runs whose
/// process `<pid>` is gone (a run killed before it could clean up).
pub fn remove_stale(prefix: &str) -> anyhow::Result<()> {
    let root = cgroup2_mount()?;
    for entry in std::fs::read_dir(&root)?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        // Fails, harmlessly, while a process is left in it.
        let _ = std::fs::remove_dir(entry.path());
    }
    Ok(())
}

impl Drop for CpuGroup {
    fn drop(&mut self) {
        // Fails while a process is left in it; the caller ends them first.
        if let Err(err) = std::fs::remove_dir(&self.dir) {
            eprintln!("cannot remove {}: {err}", self.dir.display());
        }
    }
}

/// `usage_usec` of a `cpu.stat`.
fn usage_usec(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` on a
/// systemd machine, `/sys/fs/cgroup/unified` in hybrid mode).
fn cgroup2_mount() -> anyhow::Result<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").context("/proc/mounts")?;
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [_, at, "cgroup2", ..] = fields.as_slice() {
            return Ok(Path::new(at).to_owned());
        }
    }
    bail!("no cgroup v2 hierarchy is mounted: the CPU time of forked servers cannot be measured")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_stat() {
        let stat = "usage_usec 809275\nuser_usec 809275\nsystem_usec 0\n";
        assert_eq!(usage_usec(stat), Some(809_275));
        assert_eq!(usage_usec("user_usec 5\n"), None);
    }
}
