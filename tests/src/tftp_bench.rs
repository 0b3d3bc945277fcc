//! `smi-bench tftp`: the proxy's TFTP server beside tftpd-hpa, the same
//! files, the same load generator ([`crate::tftp_load`]), the same run.
//!
//! Both servers run as processes of their own on 127.0.0.1, each in a
//! cgroup of its own ([`CpuGroup`]) whose CPU time (user + system, in
//! microseconds) is read before and after each case: tftpd-hpa forks one
//! process per transfer, and their time counts too. The proxy is `smi-tftp-bench-server` (the binary next to
//! this one): `proxy::smi::tftp::serve` with the files staged in memory, as
//! the daemon stages images. tftpd-hpa is `in.tftpd --foreground --secure`
//! on a port of its own; a system tftpd service is neither used nor touched.
//!
//! Each case is one file size, one number of concurrent clients and one
//! block size; every client downloads the file in full, verified by length
//! and CRC-32. A case moves at least `--min-mib`: with few clients each one
//! downloads the file several times in sequence (the table says how many),
//! so that a case lasts long enough to be more than its start and end. The servers take turns on the cases (the first alternates) so
//! that a neighbour's load drifting over the run does not favour one.
use std::collections::HashMap;
use std::io::BufRead as _;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

use crate::cpu_group::CpuGroup;
use crate::figures::proc_sample;
use crate::tftp_load::{self, LoadReport, LoadSpec};

/// tftpd-hpa's daemon, from the Debian package.
const IN_TFTPD: &str = "/usr/sbin/in.tftpd";
/// How long a server may take to end its finished transfers.
const SETTLE: Duration = Duration::from_secs(30);
/// One MB, as the table counts it.
const MB: f64 = 1e6;

/// Options of `smi-bench tftp`.
#[derive(clap::Args, Clone, Debug)]
pub struct TftpArgs {
    /// `tftp`: file sizes (suffix k for KiB, m for MiB).
    #[arg(long, value_delimiter = ',', default_value = "256k,16m", value_parser = parse_size)]
    pub file_sizes: Vec<u64>,
    /// `tftp`: numbers of concurrent clients.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    pub clients: Vec<usize>,
    /// `tftp`: block sizes; 512 sends no options (as a switch does unless
    /// told otherwise), others ask for `blksize` and `tsize`.
    #[arg(long, value_delimiter = ',', default_value = "512")]
    pub blksize: Vec<u16>,
    /// `tftp`: every case moves at least this many MiB (clients repeat
    /// their download in sequence until it does).
    #[arg(long, default_value_t = 256)]
    pub min_mib: u64,
    /// `tftp`: cut the file of a case whose clients would move more than
    /// this many MiB in one round, to this divided by the clients (for
    /// 1,000 clients of 16 MiB, 16 GiB per server); the table says so.
    #[arg(long)]
    pub max_case_mib: Option<u64>,
    /// `tftp`: worker threads of the load generator.
    #[arg(long, default_value_t = 2)]
    pub generator_threads: usize,
    /// `tftp`: the proxy's bench server binary (default: the
    /// `smi-tftp-bench-server` next to this binary), to compare builds.
    #[arg(long)]
    pub proxy_server: Option<PathBuf>,
    /// `tftp`: which CPUs the servers and the load generator run on.
    #[arg(long, value_enum, default_value_t = Placement::Free)]
    pub placement: Placement,
}

/// Which CPUs the servers and the load generator run on (both servers
/// alike; tftpd-hpa's transfer processes inherit its CPUs).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The servers on the first CPU, the generator on the others: neither
    /// competes with the other for a CPU, and every wake-up crosses CPUs,
    /// as between a server and clients on other hosts.
    Split,
    /// Everything on the first CPU: no wake-up crosses CPUs.
    Shared,
    /// Wherever the kernel puts them.
    Free,
}

/// The CPUs a party of the bench may run on; `None`: any.
type Cpus = Option<Vec<usize>>;

impl Placement {
    /// The CPUs of the servers and of the generator.
    fn cpus(self) -> anyhow::Result<(Cpus, Cpus)> {
        let online = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(match self {
            Placement::Free => (None, None),
            Placement::Shared => (Some(vec![0]), Some(vec![0])),
            Placement::Split => {
                ensure!(
                    online >= 2,
                    "--placement split needs two CPUs, this machine has {online}"
                );
                (Some(vec![0]), Some((1..online).collect()))
            }
        })
    }

    fn describe(self) -> &'static str {
        match self {
            Placement::Split => "servers on CPU 0, the generator on the other CPUs",
            Placement::Shared => "servers and generator all on CPU 0",
            Placement::Free => "CPUs as the kernel places them",
        }
    }
}

/// Restricts the calling thread (`pid` 0), or process `pid`, to `cpus`;
/// threads and processes it starts afterwards inherit them.
fn pin(pid: libc::pid_t, cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET indexes its
    // words with a bounds check (a CPU past the set panics, it writes
    // nothing outside); sched_setaffinity reads the set we pass.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(pid, size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Parses `256k`, `16m` or a number of bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((at, 'k' | 'K')) => (&text[..at], 1u64 << 10),
        Some((at, 'm' | 'M')) => (&text[..at], 1 << 20),
        _ => (text, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{text:?} is not a size such as 256k or 16m"))
}

/// `256 KiB`, `16 MiB` or bytes.
fn size_label(len: u64) -> String {
    if len.is_multiple_of(1 << 20) {
        format!("{} MiB", len >> 20)
    } else if len.is_multiple_of(1 << 10) {
        format!("{} KiB", len >> 10)
    } else {
        format!("{len} B")
    }
}

/// A file both servers serve.
struct BenchFile {
    name: String,
    len: u64,
    crc: u32,
}

/// Writes one file per size into `dir`: pseudo-random bytes (xorshift),
/// readable by the `nobody` tftpd-hpa runs as.
fn make_files(dir: &Path, sizes: &[u64]) -> anyhow::Result<Vec<BenchFile>> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    let mut files = Vec::new();
    for &len in sizes {
        let name = format!("file-{}.bin", size_label(len).replace(' ', ""));
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ len;
        let bytes: Vec<u8> = (0..len.div_ceil(8))
            .flat_map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()
            })
            .take(usize::try_from(len)?)
            .collect();
        let path = dir.join(&name);
        std::fs::write(&path, &bytes)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        files.push(BenchFile {
            name,
            len,
            crc: crc32fast::hash(&bytes),
        });
    }
    Ok(files)
}

/// Removes the files' directory when the bench ends, however it ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Proxy,
    TftpdHpa,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Proxy => "proxy",
            Kind::TftpdHpa => "tftpd-hpa",
        }
    }
}

/// A server process in a cgroup of its own. It stays in the bench's
/// process group, so that an interrupt from the terminal reaches it too.
struct Server {
    kind: Kind,
    child: Child,
    group: CpuGroup,
    addr: SocketAddr,
    /// File name -> the name to request.
    paths: HashMap<String, String>,
}

impl Server {
    /// `smi-tftp-bench-server` with the files staged; reads the staged
    /// paths and the address from its stdout.
    fn proxy(
        exe: Option<&Path>,
        dir: &Path,
        files: &[BenchFile],
        cpus: Option<&[usize]>,
    ) -> anyhow::Result<Self> {
        let exe = match exe {
            Some(exe) => exe.to_owned(),
            None => std::env::current_exe()?.with_file_name("smi-tftp-bench-server"),
        };
        let group = CpuGroup::new(&group_name(Kind::Proxy))?;
        let mut child = Command::new(&exe)
            .args(["--listen", "127.0.0.1:0"])
            .args(files.iter().map(|f| dir.join(&f.name)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        group.add(child.id())?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut paths = HashMap::new();
        let mut addr = None;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line?;
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["staged", name, path] => {
                    paths.insert((*name).to_owned(), (*path).to_owned());
                }
                ["listening", at] => addr = Some(at.parse()?),
                ["ready"] => break,
                _ => bail!("smi-tftp-bench-server said {line:?}"),
            }
        }
        let addr = addr.context("smi-tftp-bench-server stopped before it was ready")?;
        // Ready: every thread it runs has started.
        pin_server(&child, cpus)?;
        Ok(Server {
            kind: Kind::Proxy,
            child,
            group,
            addr,
            paths,
        })
    }

    /// `in.tftpd` in the foreground, chrooted to `dir`, on a free port;
    /// ready once it answers a request.
    fn tftpd_hpa(dir: &Path, files: &[BenchFile], cpus: Option<&[usize]>) -> anyhow::Result<Self> {
        ensure!(
            Path::new(IN_TFTPD).exists(),
            "{IN_TFTPD} is missing: apt-get install tftpd-hpa (cargo xtask bench tftp does)"
        );
        let port = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let group = CpuGroup::new(&group_name(Kind::TftpdHpa))?;
        let child = Command::new(IN_TFTPD)
            .args(["--foreground", "--ipv4", "--address"])
            .arg(addr.to_string())
            .arg("--secure")
            .arg(dir)
            .stdin(Stdio::null())
            .spawn()
            .context("starting in.tftpd")?;
        // Before any request: the transfers it forks are born in the group,
        // on its CPUs.
        group.add(child.id())?;
        pin_server(&child, cpus)?;
        let paths = files
            .iter()
            .map(|f| (f.name.clone(), f.name.clone()))
            .collect();
        Ok(Server {
            kind: Kind::TftpdHpa,
            child,
            group,
            addr,
            paths,
        })
    }

    /// Waits until the server's transfers have ended (tftpd-hpa's
    /// processes have exited), so that their CPU time is counted.
    fn settle(&self) -> anyhow::Result<()> {
        let until = Instant::now() + SETTLE;
        while self.group.processes()?.len() > 1 {
            if Instant::now() > until {
                eprintln!(
                    "smi-bench tftp: {} still runs transfers after {SETTLE:?}",
                    self.kind.name()
                );
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    fn cpu_s(&self) -> anyhow::Result<f64> {
        self.group.cpu_s()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) of the server this bench started.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
        // Then whatever it left (tftpd-hpa's transfers), so the group can go.
        let until = Instant::now() + SETTLE;
        while self.group.processes().is_ok_and(|p| !p.is_empty()) && Instant::now() < until {
            let _ = self.group.kill_all();
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Restricts a server, every thread it has now, to `cpus`, if given.
fn pin_server(child: &Child, cpus: Option<&[usize]>) -> anyhow::Result<()> {
    let Some(cpus) = cpus else {
        return Ok(());
    };
    let pid = child.id();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let tid: libc::pid_t = task?.file_name().to_string_lossy().parse()?;
        pin(tid, cpus)
            .with_context(|| format!("pinning thread {tid} of {pid} to CPUs {cpus:?}"))?;
    }
    Ok(())
}

/// Prefix of the cgroups of this bench, before the bench's pid.
const GROUP_PREFIX: &str = "smi-bench-tftp-";

/// The cgroup of one server of this bench.
fn group_name(kind: Kind) -> String {
    format!("{GROUP_PREFIX}{}-{}", std::process::id(), kind.name())
}

/// One case: a file, a number of clients, a block size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Case {
    /// Index of the file in the served files.
    file: usize,
    /// Its length.
    len: u64,
    /// The size asked for with `--file-sizes` (larger when cut).
    asked: u64,
    clients: usize,
    blksize: u16,
    /// Downloads per client, in sequence.
    downloads: u32,
}

impl Case {
    /// The size column: `16 MiB`, or `4 MiB (16 MiB cut by --max-case-mib)`.
    fn size(&self) -> String {
        if self.len == self.asked {
            size_label(self.len)
        } else {
            format!(
                "{} ({} cut by --max-case-mib)",
                size_label(self.len),
                size_label(self.asked)
            )
        }
    }
}

/// The cases of a run: every block size, file size and number of clients,
/// each file cut to `--max-case-mib` divided by the clients if asked (to
/// whole MiB, or 64 KiB below 1 MiB), each client repeating its download until the case
/// moves `--min-mib`.
fn plan(args: &TftpArgs) -> Vec<Case> {
    let min_bytes = args.min_mib.saturating_mul(1 << 20);
    let mut cases = Vec::new();
    for &blksize in &args.blksize {
        for &asked in &args.file_sizes {
            for &clients in &args.clients {
                let clients = clients.max(1);
                let count = u64::try_from(clients).unwrap_or(u64::MAX);
                let len = match args.max_case_mib {
                    Some(max) if asked.saturating_mul(count) > max.saturating_mul(1 << 20) => {
                        let share = max.saturating_mul(1 << 20) / count;
                        let unit = if share >= 1 << 20 { 1 << 20 } else { 64 << 10 };
                        (share - share % unit).max(64 << 10).min(asked)
                    }
                    _ => asked,
                };
                let per_round = len.saturating_mul(count).max(1);
                let downloads =
                    u32::try_from(min_bytes.div_ceil(per_round).max(1)).unwrap_or(u32::MAX);
                cases.push(Case {
                    file: 0,
                    len,
                    asked,
                    clients,
                    blksize,
                    downloads,
                });
            }
        }
    }
    cases
}

/// One server's figures for one case.
struct Measured {
    report: LoadReport,
    cpu_s: f64,
    /// CPU seconds of the load generator (this process).
    generator_cpu_s: f64,
    /// CPU seconds the rest of the machine used meanwhile (other users,
    /// kernel threads): the noise of the figure.
    others_cpu_s: f64,
}

impl Measured {
    fn mb(&self) -> f64 {
        self.report.bytes as f64 / MB
    }

    fn mb_per_s(&self) -> f64 {
        self.mb() / self.report.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    fn cpu_ms_per_mb(&self) -> f64 {
        self.cpu_s * 1e3 / self.mb().max(f64::MIN_POSITIVE)
    }
}

/// Runs the cases against both servers and prints the table.
pub fn run(args: &TftpArgs) -> anyhow::Result<()> {
    ensure!(
        !args.file_sizes.is_empty() && !args.clients.is_empty() && !args.blksize.is_empty(),
        "nothing to run"
    );
    for &size in &args.blksize {
        ensure!(
            (8..=65464).contains(&size),
            "block size {size} outside 8..=65464"
        );
    }
    crate::cpu_group::remove_stale(GROUP_PREFIX)?;
    let mut cases = plan(args);
    let mut sizes: Vec<u64> = cases.iter().map(|c| c.len).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let dir = TempDir(std::env::temp_dir().join(format!("smi-bench-tftp-{}", std::process::id())));
    let files = make_files(&dir.0, &sizes)?;
    for case in &mut cases {
        case.file = files.iter().position(|f| f.len == case.len).unwrap_or(0);
    }
    let (server_cpus, generator_cpus) = args.placement.cpus()?;
    let servers = [
        Server::proxy(
            args.proxy_server.as_deref(),
            &dir.0,
            &files,
            server_cpus.as_deref(),
        )?,
        Server::tftpd_hpa(&dir.0, &files, server_cpus.as_deref())?,
    ];
    if let Some(cpus) = &generator_cpus {
        // This thread, and so the generator's workers it starts.
        pin(0, cpus).with_context(|| format!("pinning the generator to CPUs {cpus:?}"))?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.generator_threads.max(1))
        .enable_all()
        .build()?;
    // Warm both up (and prove they serve) before anything is counted.
    for server in &servers {
        for &blksize in &args.blksize {
            let warm = Case {
                file: 0,
                len: files.first().map_or(0, |f| f.len),
                asked: 0,
                clients: 1,
                blksize,
                downloads: 3,
            };
            let report = runtime.block_on(tftp_load::run(&spec(server, &files, warm)?));
            ensure!(
                report.failed == 0,
                "{} fails the warm-up: {}",
                server.kind.name(),
                report.first_error.unwrap_or_default()
            );
        }
    }
    let load_before = load_average();
    let started = Instant::now();
    let mut rows = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let order: [&Server; 2] = if index % 2 == 0 {
            [&servers[0], &servers[1]]
        } else {
            [&servers[1], &servers[0]]
        };
        let mut got: [Option<Measured>; 2] = [None, None];
        for server in order {
            let measured = measure(&runtime, server, &files, *case)?;
            eprintln!(
                "smi-bench tftp: {} x {} (x{}) blksize {} {}: {:.1} MB/s, server {:.2} CPU s, \
                 generator {:.2} CPU s, others {:.2} CPU s, resends {} requests + {} ACKs",
                case.clients,
                case.size(),
                case.downloads,
                case.blksize,
                server.kind.name(),
                measured.mb_per_s(),
                measured.cpu_s,
                measured.generator_cpu_s,
                measured.others_cpu_s,
                measured.report.request_resends,
                measured.report.resends - measured.report.request_resends,
            );
            let slot = usize::from(server.kind == Kind::TftpdHpa);
            got[slot] = Some(measured);
        }
        if let [Some(proxy), Some(hpa)] = got {
            rows.push((*case, proxy, hpa));
        }
    }
    let took = started.elapsed();
    print_table(args, &rows, &load_before, took);
    Ok(())
}

/// The load generator's task for one server and case.
fn spec(server: &Server, files: &[BenchFile], case: Case) -> anyhow::Result<LoadSpec> {
    let file = files.get(case.file).context("no such file")?;
    Ok(LoadSpec {
        server: server.addr,
        path: server
            .paths
            .get(&file.name)
            .with_context(|| format!("{} has no path for {}", server.kind.name(), file.name))?
            .clone(),
        blksize: case.blksize,
        clients: case.clients,
        downloads: case.downloads,
        len: file.len,
        crc: file.crc,
        timeout: Duration::from_secs(1),
        retries: 5,
    })
}

/// Runs one case against one server: its CPU time across the case.
fn measure(
    runtime: &tokio::runtime::Runtime,
    server: &Server,
    files: &[BenchFile],
    case: Case,
) -> anyhow::Result<Measured> {
    let spec = spec(server, files, case)?;
    let me = std::process::id();
    server.settle()?;
    let before = server.cpu_s()?;
    let generator_before = proc_sample(me)?.cpu_s;
    let machine_before = machine_busy_s()?;
    // An interrupt ends the bench through its destructors, which stop the
    // servers and remove their cgroups.
    let report = runtime.block_on(async {
        tokio::select! {
            report = tftp_load::run(&spec) => Ok(report),
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    })?;
    let generator_cpu_s = proc_sample(me)?.cpu_s - generator_before;
    let machine_after = machine_busy_s()?;
    server.settle()?;
    let cpu_s = server.cpu_s()? - before;
    let busy = machine_after - machine_before;
    let others_cpu_s = (busy - cpu_s - generator_cpu_s).max(0.0);
    if report.failed > 0 {
        eprintln!(
            "smi-bench tftp: {}: {} of {} downloads failed, first: {}",
            server.kind.name(),
            report.failed,
            report.failed + report.completed,
            report.first_error.as_deref().unwrap_or("?")
        );
    }
    Ok(Measured {
        report,
        cpu_s,
        generator_cpu_s,
        others_cpu_s,
    })
}

/// Busy CPU seconds of the whole machine since boot (all but idle and
/// iowait), from `/proc/stat`.
fn machine_busy_s() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is in user).
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(busy as f64 / hz)
}

/// The 1-minute load average, for the record.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

fn tftpd_hpa_version() -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "tftpd-hpa"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|| "?".to_owned())
}

fn print_table(
    args: &TftpArgs,
    rows: &[(Case, Measured, Measured)],
    load_before: &str,
    took: Duration,
) {
    println!(
        "\ntftp: one load generator for both (tokio, {} worker threads, a socket per download) on 127.0.0.1; \
         proxy = smi-tftp-bench-server (proxy::smi::tftp::serve on one thread, as in the daemon, files in memory); \
         tftpd-hpa {} (in.tftpd -L -s, a process per transfer, files from the page cache); \
         MB = 10^6 bytes; CPU = user + system of the server's cgroup (tftpd-hpa's transfer processes included); \
         each case moves at least {} MiB; {:.0} s; load average {load_before} before the run; \
         others = CPU the rest of the machine used during the case (the noise); placement {:?}: {}",
        args.generator_threads,
        tftpd_hpa_version(),
        args.min_mib,
        took.as_secs_f64(),
        args.placement,
        args.placement.describe(),
    );
    println!(
        "\n| size | clients | downloads per client | blksize | server | MB/s | server CPU s | CPU ms per MB | ratio proxy/tftpd-hpa (MB/s; CPU per MB) | resends | others CPU s | goal |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (case, proxy, hpa) in rows {
        let speed = proxy.mb_per_s() / hpa.mb_per_s().max(f64::MIN_POSITIVE);
        let cpu = proxy.cpu_ms_per_mb() / hpa.cpu_ms_per_mb().max(f64::MIN_POSITIVE);
        let mut goal = format!("MB/s >= 1.00x {}", verdict(speed >= 1.0));
        if case.clients >= 1000 {
            goal.push_str(&format!("; CPU/MB < 1.00x {}", verdict(cpu < 1.0)));
        }
        for (server, m, ratio, goal) in [
            (
                Kind::Proxy,
                proxy,
                format!("{speed:.2}x; {cpu:.2}x"),
                goal.as_str(),
            ),
            (Kind::TftpdHpa, hpa, String::new(), ""),
        ] {
            let failed = if m.report.failed > 0 {
                format!(" ({} FAILED)", m.report.failed)
            } else {
                String::new()
            };
            println!(
                "| {} | {} | {} | {} | {}{failed} | {:.1} | {:.2} | {:.2} | {ratio} | {} | {:.1} | {goal} |",
                case.size(),
                case.clients,
                case.downloads,
                case.blksize,
                server.name(),
                m.mb_per_s(),
                m.cpu_s,
                m.cpu_ms_per_mb(),
                m.report.resends,
                m.others_cpu_s,
            );
        }
    }
    println!(
        "\ngoals: the proxy at least as fast as tftpd-hpa in every case; less CPU per MB at 1,000 clients"
    );
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256k"), Ok(256 << 10));
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("k").is_err());
        assert!(parse_size("-1m").is_err());
        assert_eq!(size_label(256 << 10), "256 KiB");
        assert_eq!(size_label(16 << 20), "16 MiB");
        assert_eq!(size_label(1000), "1000 B");
    }

    #[test]
    fn plans() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            tftp: TftpArgs,
        }
        let args = Cli::parse_from(["x", "--max-case-mib", "4096"]).tftp;
        let cases = plan(&args);
        assert_eq!(cases.len(), 6);
        let big = cases.last().unwrap();
        assert_eq!((big.clients, big.len, big.asked), (1000, 4 << 20, 16 << 20));
        assert_eq!(big.size(), "4 MiB (16 MiB cut by --max-case-mib)");
        let one = cases.first().unwrap();
        assert_eq!(
            (one.len, one.downloads, one.size()),
            (256 << 10, 1024, "256 KiB".into())
        );
        let uncut = plan(&Cli::parse_from(["x"]).tftp);
        assert!(uncut.iter().all(|c| c.len == c.asked));
    }

    #[test]
    fn files_are_deterministic() {
        let dir = std::env::temp_dir().join(format!(
            "smi-bench-tftp-test-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let _cleanup = TempDir(dir.clone());
        let files = make_files(&dir, &[1000, 4096]).unwrap();
        let again = make_files(&dir, &[1000]).unwrap();
        assert_eq!(files[0].crc, again[0].crc);
        assert_eq!(std::fs::read(dir.join(&files[1].name)).unwrap().len(), 4096);
    }
}
