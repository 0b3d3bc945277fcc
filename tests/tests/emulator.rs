//! The legacy-switch emulator and the site DHCP server in namespaces this
//! test creates: a switch side (`sw0`) and a proxy side (`px0`,
//! 192.0.2.1/24) joined by a veth, no XDP. The proxy side is played by the
//! test itself (probes, the proxy's TFTP server, a telnet listener).
//! Needs root.
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use md5::{Digest as _, Md5};
use proxy::smi::codec::{self, ImageReload, Message};
use proxy::smi::showver;
use proxy::smi::tftp::{self, Staging, TftpLimits};
use proxy_tests::dhcp_server::{DhcpServer, DhcpServerConfig};
use proxy_tests::emulator::net::{tcp_connect_in, tcp_listener_in};
use proxy_tests::emulator::{
    Emulator, EmulatorConfig, Event, Misbehaviour, Sent, SwitchCommand, SwitchHandle,
};
use proxy_tests::netns::{NetNs, NsGuard, require_root, unique_prefix, veth};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const PROXY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const WAIT: Duration = Duration::from_secs(20);

/// Switch side, proxy side, the site DHCP server and `n` switches.
struct Lab {
    emulator: Emulator,
    dhcp: DhcpServer,
    px: NetNs,
    _sw: NetNs,
}

impl Lab {
    async fn start(n: u32, tweak: impl FnOnce(&mut EmulatorConfig)) -> Self {
        require_root();
        let p = unique_prefix("emu");
        let sw = NetNs::new(&format!("{p}sw")).expect("switch-side netns");
        let px = NetNs::new(&format!("{p}px")).expect("proxy netns");
        veth(&sw, "sw0", &px, "px0").expect("veth");
        px.ip(&["addr", "add", "192.0.2.1/24", "dev", "px0"])
            .expect("proxy address");
        let dhcp = DhcpServer::start(DhcpServerConfig::new(
            &format!("{p}dhcp"),
            sw.name(),
            "sw0",
            PROXY,
        ))
        .await
        .expect("DHCP server");
        let mut config = EmulatorConfig::new(sw.name(), "sw0", &p, n);
        tweak(&mut config);
        let emulator = Emulator::start(config).await.expect("emulator");
        Self {
            emulator,
            dhcp,
            px,
            _sw: sw,
        }
    }

    /// Waits until every switch has reported a lease.
    async fn all_bound(&mut self) {
        for i in 0..self.emulator.switches().len() {
            self.emulator
                .wait_event(
                    WAIT,
                    |e| matches!(e, Event::DhcpBound { switch, .. } if *switch == i),
                )
                .await
                .expect("DHCP lease");
        }
    }

    fn switch(&self, i: usize) -> SwitchHandle {
        self.emulator.switch(i).clone()
    }

    /// Connects from the proxy namespace to `ip:port`.
    async fn connect(&self, ip: Ipv4Addr, port: u16) -> TcpStream {
        tcp_connect_in(
            self.px.name(),
            SocketAddr::from((ip, port)),
            Duration::from_secs(3),
        )
        .await
        .expect("connect from the proxy namespace")
    }

    /// Sends `bytes` to the switch's 4786 from the proxy namespace and reads
    /// until it closes or `window` ends; returns the bytes and whether it closed.
    async fn smi(&self, sw: &SwitchHandle, bytes: &[u8], window: Duration) -> (Vec<u8>, bool) {
        let mut stream = self.connect(sw.ip().expect("bound"), 4786).await;
        stream.write_all(bytes).await.expect("send");
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        let deadline = tokio::time::Instant::now() + window;
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Err(_) => return (got, false),
                Ok(Ok(0) | Err(_)) => return (got, true),
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Sends one director message and closes, as the proxy does for commands.
    async fn command(&self, sw: &SwitchHandle, message: &Message) {
        let bytes = message.encode().expect("encode");
        let mut stream = self.connect(sw.ip().expect("bound"), 4786).await;
        stream.write_all(&bytes).await.expect("send");
        stream.shutdown().await.expect("close");
    }

    /// The proxy's TFTP server on 192.0.2.1:69, on a runtime of its own
    /// whose thread lives in the proxy namespace (its transfer sockets are
    /// opened as it goes, like in the daemon).
    fn tftp(&self) -> (Staging, CancellationToken) {
        let staging = Staging::with_ttl(None);
        let cancel = CancellationToken::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (ns, files, stop) = (self.px.name().to_owned(), staging.clone(), cancel.clone());
        std::thread::spawn(move || {
            let _in = NsGuard::enter(&ns).expect("enter proxy netns");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let socket = tokio::net::UdpSocket::bind((PROXY, tftp::TFTP_PORT))
                    .await
                    .expect("TFTP socket");
                let (events, mut received) = tokio::sync::mpsc::channel(64);
                tokio::spawn(async move { while received.recv().await.is_some() {} });
                ready_tx.send(()).expect("ready");
                tftp::serve(socket, files, events, TftpLimits::default(), stop)
                    .await
                    .expect("TFTP server");
            });
        });
        ready_rx.recv().expect("TFTP server started");
        (staging, cancel)
    }
}

async fn read_until(stream: &mut TcpStream, suffix: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(suffix.as_bytes()) {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("telnet answer in time")
            .expect("read");
        assert!(
            n > 0,
            "closed before {suffix:?}; got {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).expect("ASCII")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_switches_lease_and_answer_probes() {
    let mut lab = Lab::start(5, |_| {}).await;
    lab.all_bound().await;
    let reply = Message::ClientReply.encode().expect("reply");
    for i in 0..5 {
        let sw = lab.switch(i);
        let ip = sw.ip().expect("bound");
        assert_eq!(ip, Ipv4Addr::new(192, 0, 2, 100 + i as u8), "lease by MAC");
        assert_eq!(lab.dhcp.lease_of(&sw.mac()), Some(ip));
        let lease = sw.lease().expect("lease");
        assert_eq!(
            (lease.tftp_server, lease.router),
            (Some(PROXY), Some(PROXY))
        );
        assert_eq!(lease.prefix_len, 24);

        let (got, closed) = lab
            .smi(&sw, &Message::Probe.encode().expect("probe"), WAIT)
            .await;
        assert!(closed);
        assert_eq!(got.len(), 24);
        assert_eq!(codec::decode(&got), Ok(Message::ClientReply));
        assert_eq!(got, reply);
        lab.emulator
            .wait_event(WAIT, |e| matches!(e, Event::Probed { switch, from } if *switch == i && from.ip() == PROXY))
            .await
            .expect("probe event");
    }
    let models: Vec<String> = lab
        .emulator
        .switches()
        .iter()
        .map(|s| s.config().pid.clone())
        .collect();
    assert_eq!(
        models,
        [
            "WS-C2960-24TT-L",
            "WS-C2960X-48FPD-L",
            "WS-C3560-24PS-S",
            "WS-C3750X-24P-L",
            "WS-C3750E-48TD"
        ]
    );
    assert_eq!(lab.dhcp.leases().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_upgrade_then_reverse_telnet() {
    let mut lab = Lab::start(2, |_| {}).await;
    lab.all_bound().await;
    let (staging, cancel) = lab.tftp();
    let listener = tcp_listener_in(lab.px.name(), SocketAddr::from((PROXY, 19140)))
        .await
        .expect("telnet listener");
    let sw = lab.switch(1);
    let tailored = "version 12.2\nenable password cisco\nusername cisco\nip http authentication enable\ndo telnet 192.0.2.1 19140\nvstack director 192.0.2.1\nend\n";
    let file = staging.stage(
        "00:1e:f7:00:00:01",
        "client_cfg_pnp.txt",
        tailored.to_owned(),
    );
    let url = file.url(PROXY.into());
    lab.command(
        &sw,
        &Message::ConfigUpgrade {
            url: url.clone(),
            reload: None,
        },
    )
    .await;

    let (mut cli, peer) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("switch telnets back in time")
        .expect("accept");
    assert_eq!(peer.ip(), sw.ip().expect("bound"));
    assert_eq!(read_until(&mut cli, "#").await, "\r\nSwitch#");
    cli.write_all(b"terminal length 0\r\n").await.expect("send");
    assert_eq!(read_until(&mut cli, "#").await, "\r\nSwitch#");
    cli.write_all(b"show version\n").await.expect("send");
    let text = read_until(&mut cli, "\r\nSwitch#").await;
    let parsed = showver::parse(text.trim_end_matches("\r\nSwitch#")).expect("parse");
    let expected = sw.config();
    assert_eq!(
        parsed.udi().expect("UDI").to_string(),
        format!(
            "PID:{},VID:{},SN:{}",
            expected.pid, expected.vid, expected.sn
        )
    );
    assert_eq!(parsed.version.as_deref(), Some(expected.version.as_str()));
    assert_eq!(parsed.hostname.as_deref(), Some("Switch"));
    cli.write_all(b"show running-config\r\n")
        .await
        .expect("send");
    assert_eq!(
        read_until(&mut cli, "#").await,
        "\r\n% Invalid input detected at '^' marker.\r\nSwitch#"
    );
    cli.write_all(b"exit\r\n").await.expect("send");
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, cli.read_to_end(&mut rest))
        .await
        .expect("switch closes after exit")
        .expect("read");
    assert!(rest.is_empty());

    let fetched = lab
        .emulator
        .wait_event(WAIT, |e| {
            matches!(e, Event::ConfigFetched { switch: 1, .. })
        })
        .await
        .expect("config event");
    assert_eq!(
        fetched,
        Event::ConfigFetched {
            switch: 1,
            url,
            bytes: tailored.len()
        }
    );
    let done = lab
        .emulator
        .wait_event(WAIT, |e| matches!(e, Event::TelnetDone { switch: 1, .. }))
        .await
        .expect("telnet event");
    let Event::TelnetDone { commands, peer, .. } = done else {
        unreachable!()
    };
    assert_eq!(peer, SocketAddr::from((PROXY, 19140)));
    assert_eq!(
        commands,
        [
            "terminal length 0",
            "show version",
            "show running-config",
            "exit"
        ]
    );
    assert_eq!(sw.startup_config().as_deref(), Some(tailored.as_bytes()));
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_upgrade_reloads_and_comes_back_through_dhcp() {
    let image: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let md5 = hex::encode(Md5::digest(&image));
    let mut lab = Lab::start(1, |c| c.switches[0].image_md5 = Some(md5)).await;
    lab.all_bound().await;
    let (staging, cancel) = lab.tftp();
    let sw = lab.switch(0);
    let first_xid = sw.lease().expect("lease").xid;
    assert_eq!(sw.version(), "12.2(55)SE8");

    let tar = "c2960-lanbasek9-tar.150-2.SE11.tar";
    let dir = staging.stage_dir("00:1e:f7:00:00:00");
    dir.add(tar, image.clone()).expect("stage image");
    let list = dir
        .add("c2960-lanbasek9-tar.150-2.SE11.txt", tar.to_owned())
        .expect("stage list");
    lab.command(
        &sw,
        &Message::ImageUpgrade {
            url: list.url(PROXY.into()),
            reload: ImageReload::Immediate,
        },
    )
    .await;

    let installed = lab
        .emulator
        .wait_event(WAIT, |e| matches!(e, Event::ImageInstalled { .. }))
        .await
        .expect("installed");
    assert_eq!(
        installed,
        Event::ImageInstalled {
            switch: 0,
            image: tar.into(),
            bytes: image.len(),
            version: "15.0(2)SE11".into()
        }
    );
    lab.emulator
        .wait_event(
            WAIT,
            |e| matches!(e, Event::Reloaded { version, .. } if version == "15.0(2)SE11"),
        )
        .await
        .expect("reloaded");
    let bound = lab
        .emulator
        .wait_event(WAIT, |e| matches!(e, Event::DhcpBound { .. }))
        .await
        .expect("new lease after reload");
    let Event::DhcpBound { lease, ip, .. } = bound else {
        unreachable!()
    };
    assert_ne!(lease.xid, first_xid, "a new DHCP exchange");
    assert_eq!(ip, Ipv4Addr::new(192, 0, 2, 100));
    assert_eq!(sw.reloads(), 1);
    let now = sw.show_version();
    assert_eq!(now.version, "15.0(2)SE11");
    assert_eq!(
        now.image,
        "flash:/c2960-lanbasek9-mz.150-2.SE11/c2960-lanbasek9-mz.150-2.SE11.bin"
    );
    assert_eq!(now.uptime, "0 minutes");
    let (got, _) = lab
        .smi(&sw, &Message::Probe.encode().expect("probe"), WAIT)
        .await;
    assert_eq!(
        codec::decode(&got),
        Ok(Message::ClientReply),
        "serves SMI again"
    );

    // A wrong checksum is refused and nothing reloads.
    let bad = staging.stage_dir("00:1e:f7:00:00:00");
    bad.add(tar, vec![1u8; 100]).expect("stage image");
    let list = bad.add("list.txt", tar.to_owned()).expect("stage list");
    lab.command(
        &sw,
        &Message::ImageUpgrade {
            url: list.url(PROXY.into()),
            reload: ImageReload::Immediate,
        },
    )
    .await;
    let failed = lab
        .emulator
        .wait_event(WAIT, |e| matches!(e, Event::Failed { .. }))
        .await
        .expect("failure event");
    let Event::Failed { what, error, .. } = failed else {
        unreachable!()
    };
    assert_eq!(what, "image upgrade");
    assert!(error.contains("MD5"), "{error}");
    assert_eq!(sw.reloads(), 1);
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_behaviour_on_demand() {
    let mut lab = Lab::start(4, |c| {
        c.switches[0].misbehaviour = Misbehaviour::Silent;
        c.switches[1].misbehaviour = Misbehaviour::Truncated;
        c.switches[2].misbehaviour = Misbehaviour::OversizeLength;
        c.switches[3].misbehaviour = Misbehaviour::Slow(Duration::from_millis(700));
    })
    .await;
    lab.all_bound().await;
    let probe = Message::Probe.encode().expect("probe");
    let window = Duration::from_millis(1500);

    let (got, closed) = lab.smi(&lab.switch(0), &probe, window).await;
    assert_eq!((got.len(), closed), (0, false), "silent: open, no answer");

    let (got, closed) = lab.smi(&lab.switch(1), &probe, window).await;
    assert_eq!((got.len(), closed), (12, true), "truncated");

    let (got, closed) = lab.smi(&lab.switch(2), &probe, window).await;
    assert!(closed);
    assert_eq!(&got[8..16], &[0, 0, 0, 3, 0x7f, 0xff, 0xff, 0xff]);

    let started = tokio::time::Instant::now();
    let (got, _) = lab.smi(&lab.switch(3), &probe, WAIT).await;
    assert!(started.elapsed() >= Duration::from_millis(700), "slow");
    assert_eq!(codec::decode(&got), Ok(Message::ClientReply));

    // Back to normal on demand.
    let sw = lab.switch(1);
    sw.set_misbehaviour(Misbehaviour::None);
    let (got, _) = lab.smi(&sw, &probe, WAIT).await;
    assert_eq!(codec::decode(&got), Ok(Message::ClientReply));

    // Greenbone's 1-byte type-3 probe draws the reject reply (doc section 3).
    let (got, closed) = lab
        .smi(
            &sw,
            &[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 1, 0],
            WAIT,
        )
        .await;
    assert!(closed);
    assert_eq!(codec::decode(&got), Ok(Message::Reject));

    // Type 8 is recorded.
    let run = Message::RunCli {
        mac: codec::DEFAULT_CLI_MAC,
        block: codec::CommandBlock::ThreeSlots,
        commands: vec!["show clock".into()],
    };
    lab.command(&sw, &run).await;
    let event = lab
        .emulator
        .wait_event(WAIT, |e| matches!(e, Event::Command { .. }))
        .await
        .expect("command event");
    assert_eq!(
        event,
        Event::Command {
            switch: 1,
            command: SwitchCommand::RunCli {
                commands: vec!["show clock".into()]
            }
        }
    );
    assert!(sw.received().contains(&Sent::RunCli {
        mac: codec::DEFAULT_CLI_MAC,
        slots: 3,
        commands: vec!["show clock".into()],
    }));

    // Garbage toward the proxy's 4786, from the switch's own address.
    let listener = tcp_listener_in(lab.px.name(), SocketAddr::from((PROXY, 4786)))
        .await
        .expect("director listener");
    let sender = tokio::spawn({
        let sw = sw.clone();
        async move { sw.send_garbage_to(PROXY).await }
    });
    let (mut conn, peer) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("garbage arrives")
        .expect("accept");
    assert_eq!(peer.ip(), sw.ip().expect("bound"));
    let mut junk = vec![0u8; 1];
    conn.read_exact(&mut junk).await.expect("some bytes");
    drop(conn);
    let exchange = sender.await.expect("task").expect("garbage sent");
    assert!(exchange.closed && exchange.reply.is_empty());
}
