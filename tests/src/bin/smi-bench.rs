//! `smi-bench`: benchmarks that print figures (and assert nothing).
//!
//! `smi-bench dataplane`: ns per frame of the classifier by
//! BPF_PROG_TEST_RUN, next to an empty XDP_PASS program, a minimal
//! one-lookup-and-update program and the floor of an admitted SMI segment
//! measured in the same run; then the cost of dropping unadmitted SMI in
//! XDP versus an nftables rule and an empty XDP_DROP program, with the
//! same AF_PACKET generator across a veth pair in namespaces it creates,
//! for frames that reach the veth as skbs and as XDP frames (redirected
//! into it, as a NIC with native XDP hands frames over).
//!
//! `smi-bench tftp`: the proxy's TFTP server beside tftpd-hpa, the same
//! files and load generator in the same run (`proxy_tests::tftp_bench`).
//!
//! `smi-bench lab`: runs `smi-lab` (the binary next to this one) once per
//! size in `--sizes` and prints its figures as one table, with the goals
//! beside them: time to onboard all, per-switch time, the proxy's CPU time
//! and memory, PnP exchanges per second and the proxy's turnaround per PnP
//! exchange.
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser as _;
use proxy::dataplane::{Dataplane, Options};
use proxy_common::{Policy, state};
use proxy_tests::frames::{Dhcp, L2, ipv4, msg, smi_header, tcp};
use proxy_tests::netns::{NetNs, RawSocket, require_root, unique_prefix, veth};

#[derive(clap::Parser)]
struct Args {
    /// Benchmark to run: `dataplane`, `tftp`, `lab` or `hostile`.
    which: String,
    /// test_run repetitions per measurement.
    #[arg(long, default_value_t = 2_000_000)]
    repeat: u32,
    /// Measurements per case and load (the median is printed).
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// `dataplane`: times the object is loaded, each measured for
    /// `rounds`. The classifier's figures moved by up to 7 % between
    /// loads, where rounds within a load agree to 2 % (most likely with
    /// where the kernel places the program's code).
    #[arg(long, default_value_t = 3)]
    loads: usize,
    /// Frames sent per generator run in the nftables comparison (fewer
    /// than a million left the XDP-frame path's ratio to chance).
    #[arg(long, default_value_t = 2_000_000)]
    frames: u32,
    /// `lab`: the numbers of switches to run.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    sizes: Vec<u32>,
    /// `lab`: how the switches run (`netns` or `packet`; default: as
    /// `smi-lab` chooses for the size, packet above 300).
    #[arg(long)]
    emulator: Option<String>,
    /// `lab`: give up on one run after this many seconds.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
    /// `hostile`: switches onboarding beside each attack.
    #[arg(long, default_value_t = 50)]
    switches: u32,
    #[command(flatten)]
    tftp: proxy_tests::tftp_bench::TftpArgs,
}

const CLIENT: [u8; 6] = [0x00, 0x1e, 0xf7, 0x6d, 0xaf, 0x80];
const STRANGER: [u8; 6] = [0x00, 0x1e, 0xf7, 0x6d, 0xaf, 0x81];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.which.as_str() {
        "dataplane" => dataplane(&args),
        "lab" => lab(&args),
        "hostile" => hostile(&args),
        "tftp" => proxy_tests::tftp_bench::run(&args.tftp),
        other => bail!("unknown benchmark {other:?} (known: dataplane, tftp, lab, hostile)"),
    }
}

fn smi_frame(src: [u8; 6]) -> Vec<u8> {
    let mut l2 = L2::broadcast(src);
    l2.dst = [0x02, 0, 0, 0, 0, 1];
    let mut payload = smi_header(4, 0, 3, 8);
    payload.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    ipv4(
        &l2,
        [192, 0, 2, 50],
        [192, 0, 2, 1],
        6,
        &[],
        &tcp(50_000, 4786, 0x18, &payload),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// This thread's CPU time. A test run executes in the calling thread, so
/// this counts the program runs and not the time the thread was preempted.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// Ns per run of `prog` on `frame`: the thread's CPU time over `repeat`
/// runs. The kernel's own figure is whole nanoseconds, too coarse where an
/// empty program takes five; the one syscall around the runs adds under a
/// thousandth of a nanosecond per run at the default repeat.
fn ns_per_run(dp: &mut Dataplane, prog: &str, frame: &[u8], repeat: u32) -> anyhow::Result<f64> {
    let start = thread_cpu();
    dp.test_run_program(prog, frame, repeat)?;
    let spent = thread_cpu().saturating_sub(start);
    Ok(spent.as_nanos() as f64 / f64::from(repeat.max(1)))
}

/// Ns per run of each of `progs` on `frame`, one sample per round,
/// measured in alternating rounds (one run of each program per round), so
/// that noise from the rest of the machine hits every program alike.
fn ns_per_run_interleaved<const N: usize>(
    dp: &mut Dataplane,
    progs: [&str; N],
    frame: &[u8],
    args: &Args,
) -> anyhow::Result<[Vec<f64>; N]> {
    let mut samples: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(args.rounds));
    // One round first, not counted: the first case measured otherwise ran
    // on a cold CPU (its reference came out 20 % slower than the others').
    for prog in progs {
        dp.test_run_program(prog, frame, args.repeat)?;
    }
    for _ in 0..args.rounds {
        for (prog, out) in progs.iter().zip(samples.iter_mut()) {
            out.push(ns_per_run(dp, prog, frame, args.repeat)?);
        }
    }
    Ok(samples)
}

/// The ratio of `ours` to `reference` over paired rounds: the median of
/// the rounds' ratios, and their interquartile range. Each round measures
/// both programs back to back, so a round's ratio cancels what the machine
/// was doing then, which a ratio of the two medians would not.
fn paired_ratio(ours: &[f64], reference: &[f64]) -> (f64, f64, f64) {
    let mut r: Vec<f64> = ours.iter().zip(reference).map(|(o, r)| o / r).collect();
    r.sort_by(f64::total_cmp);
    let at = |q: usize| r[(r.len() - 1) * q / 4];
    (at(2), at(1), at(3))
}

fn dataplane(args: &Args) -> anyhow::Result<()> {
    require_root();
    let pin_dir = std::path::PathBuf::from(format!("/sys/fs/bpf/{}", unique_prefix("smibench")));
    let result = dataplane_in(args, &pin_dir);
    let _ = std::fs::remove_dir_all(&pin_dir);
    result
}

fn dataplane_in(args: &Args, pin_dir: &std::path::Path) -> anyhow::Result<()> {
    let mut other_l2 = L2::broadcast(CLIENT);
    other_l2.dst = [0x02, 0, 0, 0, 0, 1];
    let other = ipv4(
        &other_l2,
        [192, 0, 2, 50],
        [192, 0, 2, 1],
        6,
        &[],
        &tcp(50_000, 443, 0x18, &[0; 32]),
    );
    let dhcp =
        Dhcp::cisco_client(CLIENT, 7, msg::REQUEST).frame(&L2::broadcast(CLIENT), [192, 0, 2, 1]);
    /// Where the admitted SMI frame is in `cases`.
    const SMI_ADMITTED: usize = 2;
    /// The goal of the DHCP and SMI update paths, against `ref_lookup`.
    const UPDATE_GOAL: f64 = 1.15;
    let cases: [(&str, Vec<u8>); 4] = [
        ("non-matching (TCP 443)", other),
        ("DHCP REQUEST, known client", dhcp),
        ("SMI admitted", smi_frame(CLIENT)),
        ("SMI dropped (unadmitted)", smi_frame(STRANGER)),
    ];
    let [pass_prog, lookup_prog, floor_prog] = proxy_common::REFERENCE_PROGRAMS;
    let progs = [
        pass_prog,
        lookup_prog,
        floor_prog,
        proxy_common::XDP_PROGRAM,
    ];
    // Per case: every round's figure of each program, over all loads, and
    // each load's ratio to the reference of the case's goal.
    let mut samples: Vec<[Vec<f64>; 4]> = cases.iter().map(|_| Default::default()).collect();
    let mut per_load: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for load in 0..args.loads.max(1) {
        let dir = pin_dir.join(format!("load{load}"));
        let mut dp = Dataplane::load(&Options {
            pin_dir: dir.clone(),
            policy: Policy::default(),
            ..Options::default()
        })?;
        dp.table().set_state(CLIENT, state::ADMITTED)?;
        for (i, (_, frame)) in cases.iter().enumerate() {
            let [pass, lookup, floor, ours] = ns_per_run_interleaved(&mut dp, progs, frame, args)?;
            let reference = if i == 0 { &pass } else { &lookup };
            per_load[i].push(paired_ratio(&ours, reference).0);
            for (all, new) in samples[i].iter_mut().zip([pass, lookup, floor, ours]) {
                all.extend(new);
            }
        }
        drop(dp);
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "dataplane: BPF_PROG_TEST_RUN, repeat {} x {} rounds x {} loads of the object (the four programs alternate within each round), ns per frame of the test thread's CPU time (median over all rounds); ratios: median of the rounds' ratios [interquartile range]; per load: each load's median ratio to the goal's reference",
        args.repeat,
        args.rounds,
        args.loads.max(1)
    );
    println!(
        "{:<28} {:>10} {:>10} {:>12} {:>20} {:>20}  per load",
        "frame", "classifier", "ref_pass", "ref_lookup", "vs pass", "vs lookup"
    );
    let ratio = |(m, lo, hi): (f64, f64, f64)| format!("{m:.2}x [{lo:.2}-{hi:.2}]");
    for (((name, _), [pass, lookup, _, ours]), loads) in cases.iter().zip(&samples).zip(&per_load) {
        let vs_pass = ratio(paired_ratio(ours, pass));
        let vs_lookup = ratio(paired_ratio(ours, lookup));
        let loads: Vec<String> = loads.iter().map(|r| format!("{r:.2}x")).collect();
        let [pass, lookup, ours] = [pass, lookup, ours].map(|v| median(v.clone()));
        println!(
            "{name:<28} {ours:>10.2} {pass:>10.2} {lookup:>12.2} {vs_pass:>20} {vs_lookup:>20}  {}",
            loads.join(" ")
        );
    }
    println!(
        "goals: non-matching <= 1.25x ref_pass; DHCP/SMI update path <= {UPDATE_GOAL:.2}x ref_lookup"
    );
    // The admitted SMI frame through `ref_smi_floor`: what is left of the
    // goal's budget for the classifier's checks.
    let [_, lookup, floor, ours] = &samples[SMI_ADMITTED];
    println!(
        "SMI floor (ref_smi_floor: the parse to the port, the lookup and the client's SMI counters; no checks, no verdict counter): {:.2} ns, {} ref_lookup; the classifier's checks on an admitted segment cost {:.2} ns, the goal leaves them {:.2} ns",
        median(floor.clone()),
        ratio(paired_ratio(floor, lookup)),
        median(ours.clone()) - median(floor.clone()),
        UPDATE_GOAL * median(lookup.clone()) - median(floor.clone()),
    );
    drop_cost(args, pin_dir)
}

/// Sends `n` copies of `frame` on `iface` of the switch side; returns the
/// time taken. A copy the device refuses (`ENOBUFS`: a veth with XDP
/// queues into a ring its NAPI drains, which fills when the sender
/// outruns it) is sent again, so that all `n` go through.
fn generate(sw: &NetNs, iface: &str, frame: &[u8], n: u32) -> anyhow::Result<Duration> {
    let _in = sw.enter()?;
    let sock = RawSocket::open(iface)?;
    let start = Instant::now();
    for _ in 0..n {
        loop {
            match sock.try_send(frame) {
                Ok(()) => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => std::thread::yield_now(),
                Err(e) => bail!("send on {iface}: {e}"),
            }
        }
    }
    Ok(start.elapsed())
}

/// How frames reach `px0` in the drop comparison.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// As skbs: sent on `sw0`, the peer of `px0`.
    Skb,
    /// As XDP frames: sent on `swg`, whose peer `swr` redirects them
    /// (`ref_redirect`) into `sw0`, so that they reach `px0`'s ring as a NIC
    /// with native XDP hands frames over; `ref_pass` keeps that ring open
    /// while the classifier is not attached.
    XdpFrame,
}

impl Arrival {
    fn describe(self) -> &'static str {
        match self {
            Arrival::Skb => "frames arriving as skbs (AF_PACKET on the peer)",
            Arrival::XdpFrame => {
                "frames arriving as XDP frames (redirected into the veth, as from a native-XDP NIC)"
            }
        }
    }
}

/// Drop cost of unadmitted SMI: XDP versus an nftables ingress rule, for
/// frames arriving as skbs and as XDP frames.
fn drop_cost(args: &Args, pin_dir: &std::path::Path) -> anyhow::Result<()> {
    for arrival in [Arrival::Skb, Arrival::XdpFrame] {
        drop_cost_of(args, pin_dir, arrival)?;
    }
    Ok(())
}

/// The feeder of [`Arrival::XdpFrame`]: the benchmark programs of a second
/// copy of the object, attached for the no-filter and nftables phases.
struct Feeder {
    ebpf: aya::Ebpf,
    pass_link: Option<aya::programs::xdp::XdpLinkId>,
}

impl Feeder {
    /// `ref_redirect` on `swr` (in `sw`), sending to `sw0`; `ref_pass` on
    /// `px0` (in `px`).
    fn attach(sw: &NetNs, px: &NetNs, pin_dir: &std::path::Path) -> anyhow::Result<Self> {
        use aya::programs::{Xdp, XdpMode};
        std::fs::create_dir_all(pin_dir)?;
        let bytes = proxy::dataplane::embedded()?;
        let mut ebpf = aya::EbpfLoader::new()
            .default_map_pin_directory(pin_dir)
            .load(bytes)
            .context("loading the feeder")?;
        {
            let _in = sw.enter()?;
            let mut target = aya::maps::DevMap::try_from(
                ebpf.map_mut("REF_REDIRECT").context("no REF_REDIRECT")?,
            )?;
            target.set(0, ifindex("sw0")?, None, 0)?;
            let redirect: &mut Xdp = ebpf
                .program_mut("ref_redirect")
                .context("no ref_redirect")?
                .try_into()?;
            redirect.load()?;
            redirect.attach("swr", XdpMode::Driver)?;
        }
        let pass: &mut Xdp = ebpf
            .program_mut(proxy_common::REFERENCE_PROGRAMS[0])
            .context("no ref_pass")?
            .try_into()?;
        pass.load()?;
        let pass_link = {
            let _in = px.enter()?;
            Some(pass.attach("px0", XdpMode::Driver)?)
        };
        Ok(Self { ebpf, pass_link })
    }

    /// Takes `ref_pass` off `px0`, for the classifier.
    fn release_px0(&mut self) -> anyhow::Result<()> {
        if let Some(link) = self.pass_link.take() {
            let pass: &mut aya::programs::Xdp = self
                .ebpf
                .program_mut(proxy_common::REFERENCE_PROGRAMS[0])
                .context("no ref_pass")?
                .try_into()?;
            pass.detach(link)?;
        }
        Ok(())
    }
}

/// `ref_drop` attached to `px0` (in `px`) while it lives: every frame
/// dropped by an empty program, the veth's XDP path alone.
struct EmptyDrop {
    _ebpf: aya::Ebpf,
}

impl EmptyDrop {
    fn attach(px: &NetNs, pin_dir: &std::path::Path) -> anyhow::Result<Self> {
        use aya::programs::{Xdp, XdpMode};
        std::fs::create_dir_all(pin_dir)?;
        let mut ebpf = aya::EbpfLoader::new()
            .default_map_pin_directory(pin_dir)
            .load(proxy::dataplane::embedded()?)
            .context("loading ref_drop")?;
        let drop: &mut Xdp = ebpf
            .program_mut("ref_drop")
            .context("no ref_drop")?
            .try_into()?;
        drop.load()?;
        {
            let _in = px.enter()?;
            drop.attach("px0", XdpMode::Driver)?;
        }
        Ok(Self { _ebpf: ebpf })
    }
}

fn ifindex(iface: &str) -> anyhow::Result<u32> {
    let name = std::ffi::CString::new(iface)?;
    // SAFETY: a NUL-terminated name; the call only reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        bail!("no interface {iface}");
    }
    Ok(index)
}

/// The packets the nftables rule of the bench counted.
fn nft_counted(px: &NetNs) -> anyhow::Result<u64> {
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            px.name(),
            "nft",
            "list",
            "table",
            "netdev",
            "smibench",
        ])
        .output()
        .context("nft list")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "packets")
        .and_then(|w| w[1].parse().ok())
        .context("no counter in the nftables table")
}

/// [`drop_cost`] for one way of arriving.
fn drop_cost_of(args: &Args, pin_dir: &std::path::Path, arrival: Arrival) -> anyhow::Result<()> {
    let p = unique_prefix("smib");
    let sw = NetNs::new(&format!("{p}sw"))?;
    let px = NetNs::new(&format!("{p}px"))?;
    veth(&sw, "sw0", &px, "px0")?;
    px.ip(&["addr", "add", "192.0.2.1/24", "dev", "px0"])?;
    let tag = match arrival {
        Arrival::Skb => "skb",
        Arrival::XdpFrame => "frame",
    };
    let (sender, mut feeder) = match arrival {
        Arrival::Skb => ("sw0", None),
        Arrival::XdpFrame => {
            veth(&sw, "swg", &sw, "swr")?;
            let feeder = Feeder::attach(&sw, &px, &pin_dir.join(format!("feeder-{tag}")))?;
            ("swg", Some(feeder))
        }
    };
    let frame = smi_frame(STRANGER);
    let mut frame_to_px = frame.clone();
    // Unicast to px0's MAC so the stack (and nftables) takes it.
    let mac = {
        let _in = px.enter()?;
        mac_of("px0")?
    };
    frame_to_px[..6].copy_from_slice(&mac);
    // Warm up ARP-free paths and caches.
    generate(&sw, sender, &frame_to_px, 10_000)?;
    let base = generate(&sw, sender, &frame_to_px, args.frames)?;

    let rules = std::env::temp_dir().join(format!("{p}.nft"));
    std::fs::write(
        &rules,
        "table netdev smibench {\n  chain ingress {\n    type filter hook ingress device px0 priority 0;\n    tcp dport 4786 counter drop\n  }\n}\n",
    )?;
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", px.name(), "nft", "-f"])
        .arg(&rules)
        .output()
        .context("nft")?;
    let _ = std::fs::remove_file(&rules);
    if !out.status.success() {
        bail!("nft: {}", String::from_utf8_lossy(&out.stderr));
    }
    generate(&sw, sender, &frame_to_px, 10_000)?;
    let nft_time = generate(&sw, sender, &frame_to_px, args.frames)?;
    let nft_dropped = nft_counted(&px)?;
    let _ = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            px.name(),
            "nft",
            "delete",
            "table",
            "netdev",
            "smibench",
        ])
        .output();

    if let Some(feeder) = feeder.as_mut() {
        feeder.release_px0()?;
    }
    let empty_time = {
        let _drop = EmptyDrop::attach(&px, &pin_dir.join(format!("empty-{tag}")))?;
        generate(&sw, sender, &frame_to_px, 10_000)?;
        generate(&sw, sender, &frame_to_px, args.frames)?
    };
    let xdp_pin = pin_dir.join(format!("drop-{tag}"));
    let mut dp = Dataplane::load(&Options {
        pin_dir: xdp_pin,
        ..Options::default()
    })?;
    let mode = {
        let _in = px.enter()?;
        dp.attach("px0")?
    };
    generate(&sw, sender, &frame_to_px, 10_000)?;
    let xdp_time = generate(&sw, sender, &frame_to_px, args.frames)?;
    let dropped = dp.counters()?[proxy_common::counter::SMI_DROP_NOT_ADMITTED as usize];
    drop(dp);
    drop(feeder);

    let per = |d: Duration| d.as_nanos() as f64 / f64::from(args.frames);
    println!();
    println!(
        "drop cost of unadmitted SMI, {} frames from one AF_PACKET sender over veth, {} (ns per frame, send + receive path)",
        args.frames,
        arrival.describe()
    );
    println!("{:<34} {:>10}", "path", "ns/frame");
    println!(
        "{:<34} {:>10.1}",
        "no filter (stack answers RST)",
        per(base)
    );
    println!(
        "{:<34} {:>10.1}",
        "nftables netdev ingress drop",
        per(nft_time)
    );
    println!(
        "{:<34} {:>10.1}",
        "XDP_DROP, empty program (ref_drop)",
        per(empty_time)
    );
    println!(
        "{:<34} {:>10.1}",
        format!("XDP drop ({mode})"),
        per(xdp_time)
    );
    println!(
        "ratio nftables / XDP: {:.2}x (nftables counted {nft_dropped} drops, XDP {dropped}; {} sent to each with the warm-up); nftables / empty XDP_DROP: {:.2}x (what the veth's XDP path costs before any program); the classifier over the empty program: {:.1} ns",
        per(nft_time) / per(xdp_time),
        args.frames + 10_000,
        per(nft_time) / per(empty_time),
        per(xdp_time) - per(empty_time),
    );
    Ok(())
}

fn mac_of(iface: &str) -> anyhow::Result<[u8; 6]> {
    // SAFETY: ioctl SIOCGIFHWADDR on a throwaway socket with a zeroed ifreq.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if fd < 0 {
            bail!("socket: {}", std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, s) in req.ifr_name.iter_mut().zip(iface.bytes()) {
            *d = s as libc::c_char;
        }
        let r = libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req);
        libc::close(fd);
        if r != 0 {
            bail!("SIOCGIFHWADDR {iface}: {}", std::io::Error::last_os_error());
        }
        let mut mac = [0u8; 6];
        for (m, b) in mac.iter_mut().zip(req.ifr_ifru.ifru_hwaddr.sa_data.iter()) {
            *m = *b as u8;
        }
        Ok(mac)
    }
}

/// Runs `smi-lab` for each size and prints the figures.
fn lab(args: &Args) -> anyhow::Result<()> {
    use proxy_tests::figures::LabFigures;
    require_root();
    let mut rows: Vec<LabFigures> = Vec::new();
    for &n in &args.sizes {
        let fig = lab_run(n, proxy_tests::attack::Attack::None, args)?;
        if fig.done < fig.clients {
            eprintln!("smi-bench lab: {n} switches: only {} finished", fig.done);
        }
        rows.push(fig);
    }
    println!(
        "\n| switches | emulator | done | onboard all s | per switch p50 / p99 s | proxy CPU s | proxy CPU per switch ms | peak RSS MiB | RSS per client at rest KiB | PnP exchanges/s | proxy turnaround p50 / p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for f in &rows {
        println!(
            "| {} | {} | {} | {:.1} | {:.1} / {:.1} | {:.1} | {:.2} | {:.1} | {:.2} | {:.0} | {:.2} / {:.2} |",
            f.clients,
            f.emulator,
            f.done,
            f.onboard_s,
            f.per_switch_p50_s,
            f.per_switch_p99_s,
            f.proxy_cpu_s,
            f.proxy_cpu_s * 1000.0 / f.done.max(1) as f64,
            f.proxy_peak_rss_kib as f64 / 1024.0,
            f.rss_per_client_kib(),
            f.pnp_exchanges_per_s,
            f.added_latency_p50_ms,
            f.added_latency_p99_ms,
        );
    }
    println!(
        "\ngoals: 10,000 onboarded in <= 120 s; proxy CPU <= 4 ms per onboarded switch; <= 8 KiB RSS per client at rest at 10,000; proxy turnaround p99 <= 20 ms at 10,000"
    );
    Ok(())
}

/// One `smi-lab` run of `n` switches under `attack`: its figures.
fn lab_run(
    n: u32,
    attack: proxy_tests::attack::Attack,
    args: &Args,
) -> anyhow::Result<proxy_tests::figures::LabFigures> {
    let exe = std::env::current_exe()?;
    let lab_bin = exe.with_file_name("smi-lab");
    let report = std::env::temp_dir().join(format!("smi-bench-{}-{n}.json", attack.name()));
    let _ = std::fs::remove_file(&report);
    eprintln!("smi-bench: {n} switches, attack {} ...", attack.name());
    let status = std::process::Command::new(&lab_bin)
        .args(["--clients", &n.to_string(), "--prefix", "benchlab"])
        .args(["--timeout", &args.timeout.to_string()])
        .args(["--attack", attack.name()])
        .args(
            args.emulator
                .iter()
                .flat_map(|e| ["--emulator", e.as_str()]),
        )
        .arg("--report")
        .arg(&report)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("running {}", lab_bin.display()))?;
    let text = std::fs::read(&report)
        .with_context(|| format!("smi-lab --clients {n} wrote no report ({status})"))?;
    let fig: proxy_tests::figures::LabFigures = serde_json::from_slice(&text)?;
    if !status.success() {
        eprintln!(
            "smi-bench: attack {}: only {} of {n} finished",
            attack.name(),
            fig.done
        );
    }
    Ok(fig)
}

/// `smi-bench hostile`: the lab's zero-touch run of `--switches` switches
/// alone, then beside each attack; what the proxy absorbed, its peak RSS
/// and CPU, and the onboarding time against the run without an attack.
fn hostile(args: &Args) -> anyhow::Result<()> {
    use proxy_tests::attack::Attack;
    require_root();
    let mut rows = Vec::new();
    for attack in Attack::ALL {
        rows.push((attack, lab_run(args.switches, attack, args)?));
    }
    let base = rows.first().map(|(_, f)| f.onboard_s).unwrap_or(f64::NAN);
    println!(
        "\n| attack | absorbed | rate /s | switches done | onboard all s (x baseline) | proxy CPU s | proxy peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (attack, f) in &rows {
        let rate = if f.attack_secs > 0.0 {
            format!("{:.0}", f.attack_units as f64 / f.attack_secs)
        } else {
            "-".to_owned()
        };
        println!(
            "| {} | {} {} | {} | {}/{} | {:.1} ({:.2}x) | {:.1} | {:.1} |",
            attack.name(),
            f.attack_units,
            attack.unit(),
            rate,
            f.done,
            f.clients,
            f.onboard_s,
            f.onboard_s / base,
            f.proxy_cpu_s,
            f.proxy_peak_rss_kib as f64 / 1024.0,
        );
    }
    Ok(())
}
