//! Server tests over 127.0.0.1 with a small test-only client.
//!
//! Tests that depend on retransmission timers run with tokio's clock paused
//! (it jumps to the next timer whenever every task waits); every wait for
//! the server is on a packet or an event, never on a sleep.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::packet::{ErrorCode, Mode, Options, Packet, Request};
use super::*;

/// Guard against a hung test; not used for synchronisation.
const HANG: Duration = Duration::from_secs(20);

struct TestServer {
    addr: SocketAddr,
    staging: Staging,
    events: mpsc::Receiver<TftpEvent>,
    cancel: CancellationToken,
    task: JoinHandle<Result<(), TftpError>>,
}

impl TestServer {
    async fn start(limits: TftpLimits) -> Self {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = socket.local_addr().unwrap();
        let staging = Staging::new();
        let (tx, events) = mpsc::channel(64);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(serve(socket, staging.clone(), tx, limits, cancel.clone()));
        TestServer {
            addr,
            staging,
            events,
            cancel,
            task,
        }
    }

    async fn event(&mut self) -> TftpEvent {
        tokio::time::timeout(HANG, self.events.recv())
            .await
            .expect("no event in time")
            .expect("event channel closed")
    }

    async fn stop(self) -> mpsc::Receiver<TftpEvent> {
        self.cancel.cancel();
        tokio::time::timeout(HANG, self.task)
            .await
            .expect("server did not stop")
            .unwrap()
            .unwrap();
        self.events
    }
}

/// A client socket and the server's transfer ID once known.
struct Client {
    socket: UdpSocket,
    server: SocketAddr,
    tid: Option<SocketAddr>,
    buf: Vec<u8>,
}

impl Client {
    async fn new(server: SocketAddr) -> Self {
        Client {
            socket: UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap(),
            server,
            tid: None,
            buf: vec![0; 70_000],
        }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    async fn send_to_server(&self, packet: &Packet<'_>) {
        self.send_raw_to_server(&packet.to_vec().unwrap()).await;
    }

    async fn send_raw_to_server(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.server).await.unwrap();
    }

    async fn send(&self, packet: &Packet<'_>) {
        let tid = self.tid.expect("no transfer ID yet");
        self.socket
            .send_to(&packet.to_vec().unwrap(), tid)
            .await
            .unwrap();
    }

    async fn request(&self, filename: &str, options: Options, write: bool) {
        let request = Request {
            filename: filename.to_owned(),
            mode: Mode::Octet,
            options,
        };
        let packet = if write {
            Packet::Wrq(request)
        } else {
            Packet::Rrq(request)
        };
        self.send_to_server(&packet).await;
    }

    /// The next packet; the first non-ERROR sender becomes the TID.
    async fn recv(&mut self) -> Packet<'_> {
        let (len, from) = tokio::time::timeout(HANG, self.socket.recv_from(&mut self.buf))
            .await
            .expect("no packet in time")
            .unwrap();
        let packet = Packet::decode(&self.buf[..len]).unwrap();
        match self.tid {
            Some(tid) => assert_eq!(from, tid, "packet from a second TID"),
            None if matches!(packet, Packet::Error { .. }) => {}
            None => {
                assert_ne!(from, self.server, "transfer from the server port");
                self.tid = Some(from);
            }
        }
        packet
    }
}

/// A finished download: contents and the options acknowledged.
struct Download {
    data: Vec<u8>,
    oack: Option<Options>,
    client: SocketAddr,
}

async fn download(
    server: SocketAddr,
    path: &str,
    options: Options,
) -> Result<Download, (ErrorCode, String)> {
    let mut client = Client::new(server).await;
    client.request(path, options, false).await;
    client.finish_download().await
}

impl Client {
    /// Receives a download after the request was sent, acknowledging each
    /// block once (and repeated blocks again).
    async fn finish_download(&mut self) -> Result<Download, (ErrorCode, String)> {
        let mut data = Vec::new();
        let mut oack = None;
        let mut blksize = 512usize;
        let mut expected = 1u16;
        loop {
            let reply = match self.recv().await {
                Packet::Oack(granted) => {
                    assert!(oack.is_none() && data.is_empty());
                    blksize = usize::from(granted.blksize.unwrap_or(512));
                    oack = Some(granted);
                    Packet::Ack { block: 0 }
                }
                Packet::Data { block, data: chunk } if block == expected => {
                    assert!(chunk.len() <= blksize);
                    data.extend_from_slice(chunk);
                    if chunk.len() < blksize {
                        self.send(&Packet::Ack { block }).await;
                        return Ok(Download {
                            data,
                            oack,
                            client: self.addr(),
                        });
                    }
                    expected = expected.wrapping_add(1);
                    Packet::Ack { block }
                }
                Packet::Data { block, .. } => Packet::Ack { block },
                Packet::Error { code, message } => return Err((code, message)),
                other => panic!("unexpected {other:?}"),
            };
            self.send(&reply).await;
        }
    }
}

async fn upload(
    server: SocketAddr,
    path: &str,
    content: &[u8],
    options: Options,
) -> Result<(), (ErrorCode, String)> {
    let mut client = Client::new(server).await;
    client.request(path, options, true).await;
    let blksize = match client.recv().await {
        Packet::Ack { block: 0 } => 512,
        Packet::Oack(granted) => usize::from(granted.blksize.unwrap_or(512)),
        Packet::Error { code, message } => return Err((code, message)),
        other => panic!("unexpected {other:?}"),
    };
    let mut chunks: Vec<&[u8]> = content.chunks(blksize).collect();
    if content.len().is_multiple_of(blksize) {
        chunks.push(&[]);
    }
    for (index, chunk) in chunks.into_iter().enumerate() {
        let block = u16::try_from(index + 1).unwrap();
        client.send(&Packet::Data { block, data: chunk }).await;
        loop {
            match client.recv().await {
                Packet::Ack { block: acked } if acked == block => break,
                Packet::Ack { .. } => {}
                Packet::Error { code, message } => return Err((code, message)),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    Ok(())
}

fn pattern(len: usize) -> Bytes {
    (0..len)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect::<Vec<u8>>()
        .into()
}

fn completed(event: TftpEvent) -> (String, String, SocketAddr, u64) {
    match event {
        TftpEvent::Completed {
            owner,
            path,
            peer,
            bytes,
            ..
        } => (owner, path, peer, bytes),
        other => panic!("expected Completed, got {other:?}"),
    }
}

fn failed(event: TftpEvent) -> (String, String, SocketAddr, String) {
    match event {
        TftpEvent::Failed {
            owner,
            path,
            peer,
            reason,
        } => (owner, path, peer, reason),
        other => panic!("expected Failed, got {other:?}"),
    }
}

fn options(blksize: Option<u16>, tsize: Option<u64>) -> Options {
    Options {
        blksize,
        tsize,
        timeout: None,
    }
}

#[tokio::test]
async fn downloads_of_various_sizes_and_block_sizes() {
    let mut server = TestServer::start(TftpLimits::default()).await;
    let mut total = 0u64;
    for size in [0usize, 511, 512, 513, 1468, 8192, 1 << 20] {
        let content = pattern(size);
        let file = server.staging.stage("mac-1", "image.bin", content.clone());
        let size = u64::try_from(size).unwrap();
        for blksize in [None, Some(512), Some(1468), Some(8192)] {
            let got = download(server.addr, file.path(), options(blksize, Some(0)))
                .await
                .unwrap();
            assert!(got.data == content, "size {size} blksize {blksize:?}");
            assert_eq!(got.oack, Some(options(blksize, Some(size))));
            assert_eq!(
                completed(server.event().await),
                ("mac-1".into(), file.path().into(), got.client, size),
                "size {size} blksize {blksize:?}"
            );
            total += size;
        }
    }
    let stats = server.staging.stats();
    assert_eq!(stats.transfers_started(), 28);
    assert_eq!(stats.transfers_completed(), 28);
    assert_eq!(stats.transfers_failed(), 0);
    assert_eq!(stats.bytes_served(), total);
    server.stop().await;
}

#[tokio::test]
async fn plain_and_netascii_requests_get_data_without_oack() {
    let mut server = TestServer::start(TftpLimits::default()).await;
    let content = Bytes::from_static(b"hostname sw1\nend\n");
    let file = server.staging.stage("m", "sw1.cfg", content.clone());
    let got = download(server.addr, file.path(), Options::default())
        .await
        .unwrap();
    assert_eq!(got.data, content);
    assert_eq!(got.oack, None);
    completed(server.event().await);

    let mut client = Client::new(server.addr).await;
    let request = Request {
        filename: format!("/{}", file.path()),
        mode: Mode::Netascii,
        options: Options::default(),
    };
    client.send_to_server(&Packet::Rrq(request)).await;
    let got = client.finish_download().await.unwrap();
    assert_eq!(got.data, content, "netascii is served as octet");
    let (_, path, _, _) = completed(server.event().await);
    assert_eq!(path, file.path(), "events carry the staged path");
    server.stop().await;
}

#[tokio::test]
async fn download_from_a_file_on_disk() {
    let mut server = TestServer::start(TftpLimits::default()).await;
    let disk = std::env::temp_dir().join(format!(
        "tftp-test-{}-{:016x}.tar",
        std::process::id(),
        rand::random::<u64>()
    ));
    let content = pattern(300_000);
    std::fs::write(&disk, &content).unwrap();
    let dir = server.staging.stage_dir("m");
    let list = dir.add("image.txt", "image.tar").unwrap();
    let image = dir.add("image.tar", Content::File(disk.clone())).unwrap();

    let got = download(server.addr, list.path(), Options::default())
        .await
        .unwrap();
    assert_eq!(got.data, b"image.tar");
    completed(server.event().await);
    // A type-2 client resolves the name inside the list next to the list.
    let (list_dir, _) = list.path().rsplit_once('/').unwrap();
    let next = format!("{list_dir}/{}", String::from_utf8(got.data).unwrap());
    let got = download(server.addr, &next, options(Some(1468), Some(0)))
        .await
        .unwrap();
    assert!(got.data == content);
    assert_eq!(got.oack.unwrap().tsize, Some(300_000));
    let (_, path, _, bytes) = completed(server.event().await);
    assert_eq!((path.as_str(), bytes), (image.path(), 300_000));

    std::fs::remove_file(&disk).unwrap();
    let err = download(server.addr, image.path(), Options::default())
        .await
        .err()
        .unwrap();
    assert_eq!(err.0, ErrorCode::FileNotFound);
    let (owner, path, _, reason) = failed(server.event().await);
    assert_eq!((owner.as_str(), path.as_str()), ("m", image.path()));
    assert!(reason.contains("cannot open"), "{reason}");
    server.stop().await;
}

#[tokio::test]
async fn unknown_paths_get_file_not_found() {
    let server = TestServer::start(TftpLimits::default()).await;
    let file = server.staging.stage("m", "x.cfg", "data");
    let other = server.staging.stage("m", "y.cfg", "data");
    assert!(server.staging.unstage(other.path()));
    let (dir, name) = file.path().split_once('/').unwrap();
    for path in [
        "x.cfg".to_owned(),
        name.to_owned(),
        dir.to_owned(),
        format!("{dir}/"),
        format!("//{}", file.path()),
        format!("{}x", file.path()),
        file.path().to_uppercase(),
        other.path().to_owned(),
        "/etc/passwd".to_owned(),
        "Cargo.toml".to_owned(),
        "/".to_owned(),
    ] {
        let err = download(server.addr, &path, Options::default())
            .await
            .err()
            .unwrap_or_else(|| panic!("{path:?} was served"));
        assert_eq!(
            err,
            (ErrorCode::FileNotFound, "File not found".into()),
            "{path:?}"
        );
    }
    assert_eq!(server.staging.stats().requests_refused(), 11);
    assert_eq!(server.staging.stats().transfers_started(), 0);
    let mut events = server.stop().await;
    assert!(events.try_recv().is_err(), "no event for unstaged paths");
}

#[tokio::test]
async fn traversal_attempts_are_refused() {
    let server = TestServer::start(TftpLimits::default()).await;
    let file = server.staging.stage("m", "x.cfg", "data");
    let (dir, name) = file.path().split_once('/').unwrap();
    for path in [
        format!("../{}", file.path()),
        format!("{dir}/../{dir}/{name}"),
        format!("/{dir}/./../{dir}/{name}"),
        format!("{dir}\\{name}"),
        format!("{}\u{1}", file.path()),
        format!("{}\u{7f}", file.path()),
        "../../../../etc/passwd".to_owned(),
        "..\\..\\windows\\win.ini".to_owned(),
    ] {
        let err = download(server.addr, &path, Options::default())
            .await
            .err()
            .unwrap_or_else(|| panic!("{path:?} was served"));
        assert_eq!(err.0, ErrorCode::AccessViolation, "{path:?}");
    }
    // A NUL ends the name early: the rest is taken as the mode and refused.
    let mut client = Client::new(server.addr).await;
    let mut raw = b"\x00\x01".to_vec();
    raw.extend_from_slice(file.path().as_bytes());
    raw.extend_from_slice(b"\x00/../x\x00octet\x00");
    client.send_raw_to_server(&raw).await;
    assert!(matches!(
        client.recv().await,
        Packet::Error {
            code: ErrorCode::IllegalOperation,
            ..
        }
    ));
    // The staged path itself still works.
    let got = download(server.addr, file.path(), Options::default())
        .await
        .unwrap();
    assert_eq!(got.data, b"data");
    server.stop().await;
}

#[tokio::test]
async fn write_requests_are_refused() {
    let server = TestServer::start(TftpLimits::default()).await;
    let file = server.staging.stage("m", "x.cfg", "data");
    for path in [file.path(), "new.cfg", "../x"] {
        let err = upload(server.addr, path, b"evil", Options::default())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            (ErrorCode::AccessViolation, "Access violation".into()),
            "{path}"
        );
    }
    let got = download(server.addr, file.path(), Options::default())
        .await
        .unwrap();
    assert_eq!(got.data, b"data");
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn expected_uploads_are_accepted_once() {
    let mut server = TestServer::start(TftpLimits::default()).await;
    let slot = server.staging.expect_upload("mac-2", "running.cfg", 10_000);
    let content = pattern(1500);
    upload(server.addr, slot.path(), &content, Options::default())
        .await
        .unwrap();
    match server.event().await {
        TftpEvent::Uploaded {
            owner, path, data, ..
        } => {
            assert_eq!((owner.as_str(), path.as_str()), ("mac-2", slot.path()));
            assert_eq!(data, content);
        }
        other => panic!("expected Uploaded, got {other:?}"),
    }
    assert!(!server.staging.contains(slot.path()));
    let err = upload(server.addr, slot.path(), b"again", Options::default())
        .await
        .unwrap_err();
    assert_eq!(err.0, ErrorCode::AccessViolation);

    // Options, and a size that is a multiple of the block size.
    let dir = server.staging.stage_dir("mac-2");
    let slot = dir.expect_upload("show-version.txt", 64).unwrap();
    let content = pattern(64);
    upload(
        server.addr,
        slot.path(),
        &content,
        options(Some(8), Some(64)),
    )
    .await
    .unwrap();
    match server.event().await {
        TftpEvent::Uploaded { data, .. } => assert_eq!(data, content),
        other => panic!("expected Uploaded, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn oversized_uploads_are_refused() {
    let mut server = TestServer::start(TftpLimits::default()).await;
    let slot = server.staging.expect_upload("m", "up.bin", 100);
    let err = upload(
        server.addr,
        slot.path(),
        &pattern(10),
        options(None, Some(101)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.0, ErrorCode::DiskFull);
    let (_, _, _, reason) = failed(server.event().await);
    assert!(reason.contains("exceeds 100 bytes"), "{reason}");

    let err = upload(
        server.addr,
        slot.path(),
        &pattern(101),
        options(Some(8), None),
    )
    .await
    .unwrap_err();
    assert_eq!(err.0, ErrorCode::DiskFull);
    failed(server.event().await);

    assert!(
        server.staging.contains(slot.path()),
        "a failed upload keeps the slot"
    );
    upload(server.addr, slot.path(), &pattern(100), Options::default())
        .await
        .unwrap();
    assert!(matches!(server.event().await, TftpEvent::Uploaded { .. }));
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn silent_client_fails_after_retries() {
    let mut server = TestServer::start(TftpLimits::default()).await;
    let file = server.staging.stage("m", "x.cfg", "data");
    let mut client = Client::new(server.addr).await;
    client.request(file.path(), Options::default(), false).await;
    let mut copies = 0;
    loop {
        match client.recv().await {
            Packet::Data { block: 1, data } => {
                assert_eq!(data, b"data");
                copies += 1;
            }
            Packet::Error { code, message } => {
                assert_eq!(
                    (code, message.as_str()),
                    (ErrorCode::NotDefined, "transfer timed out")
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(copies, 1 + 5, "first send and five retransmissions");
    let (owner, path, peer, reason) = failed(server.event().await);
    assert_eq!(
        (owner.as_str(), path.as_str(), peer),
        ("m", file.path(), client.addr())
    );
    assert_eq!(reason, "no answer after 5 retransmissions");
    assert_eq!(server.staging.stats().transfers_failed(), 1);
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn transfers_end_at_their_deadline() {
    let limits = TftpLimits {
        retries: u32::MAX,
        deadline: Duration::from_secs(60),
        ..TftpLimits::default()
    };
    let mut server = TestServer::start(limits).await;
    let file = server.staging.stage("m", "x.cfg", "data");
    let mut client = Client::new(server.addr).await;
    client.request(file.path(), Options::default(), false).await;
    while !matches!(client.recv().await, Packet::Error { .. }) {}
    let (_, _, _, reason) = failed(server.event().await);
    assert!(reason.contains("deadline"), "{reason}");
    server.stop().await;
}

#[tokio::test]
async fn duplicate_acks_do_not_trigger_retransmission() {
    let limits = TftpLimits {
        timeout: Duration::from_secs(30),
        ..TftpLimits::default()
    };
    let mut server = TestServer::start(limits).await;
    let file = server.staging.stage("m", "x.bin", pattern(24));
    let mut client = Client::new(server.addr).await;
    client
        .request(file.path(), options(Some(8), None), false)
        .await;
    assert!(matches!(client.recv().await, Packet::Oack(_)));
    client.send(&Packet::Ack { block: 0 }).await;
    assert!(matches!(client.recv().await, Packet::Data { block: 1, .. }));
    client.send(&Packet::Ack { block: 1 }).await;
    client.send(&Packet::Ack { block: 1 }).await;
    client.send(&Packet::Ack { block: 0 }).await;
    assert!(matches!(client.recv().await, Packet::Data { block: 2, .. }));
    client.send(&Packet::Ack { block: 2 }).await;
    // Had a duplicate ACK 1 caused a resend, DATA 2 would come first.
    assert!(matches!(client.recv().await, Packet::Data { block: 3, .. }));
    client.send(&Packet::Ack { block: 3 }).await;
    match client.recv().await {
        Packet::Data { block: 4, data } => assert!(data.is_empty()),
        other => panic!("unexpected {other:?}"),
    }
    client.send(&Packet::Ack { block: 4 }).await;
    let (_, _, _, bytes) = completed(server.event().await);
    assert_eq!(bytes, 24);
    server.stop().await;
}

#[tokio::test]
async fn packets_from_other_ports_get_unknown_tid() {
    let limits = TftpLimits {
        timeout: Duration::from_secs(30),
        ..TftpLimits::default()
    };
    let mut server = TestServer::start(limits).await;
    let file = server.staging.stage("m", "x.bin", pattern(12));
    let mut client = Client::new(server.addr).await;
    client
        .request(file.path(), options(Some(8), None), false)
        .await;
    assert!(matches!(client.recv().await, Packet::Oack(_)));
    let tid = client.tid.unwrap();

    let mut stranger = Client::new(server.addr).await;
    stranger.tid = Some(tid);
    stranger.send(&Packet::Ack { block: 0 }).await;
    assert!(matches!(
        stranger.recv().await,
        Packet::Error {
            code: ErrorCode::UnknownTransferId,
            ..
        }
    ));

    client.send(&Packet::Ack { block: 0 }).await;
    let got = {
        assert!(matches!(client.recv().await, Packet::Data { block: 1, .. }));
        client.send(&Packet::Ack { block: 1 }).await;
        client.recv().await.to_vec().unwrap()
    };
    assert_eq!(got, b"\x00\x03\x00\x02\x08\x09\x0a\x0b");
    client.send(&Packet::Ack { block: 2 }).await;
    assert_eq!(completed(server.event().await).3, 12);
    server.stop().await;
}

#[tokio::test]
async fn block_numbers_wrap_past_65535() {
    let mut server = TestServer::start(TftpLimits::default()).await;
    // 65536 full 8-byte blocks and a short one: numbers run 1..=65535, 0, 1.
    let content = pattern(8 * 65536 + 5);
    let file = server.staging.stage("m", "big.bin", content.clone());
    let got = download(server.addr, file.path(), options(Some(8), Some(0)))
        .await
        .unwrap();
    assert!(got.data == content);
    assert_eq!(completed(server.event().await).3, 8 * 65536 + 5);
    server.stop().await;
}

#[tokio::test]
async fn concurrency_is_capped() {
    let limits = TftpLimits {
        max_transfers: 2,
        timeout: Duration::from_secs(30),
        ..TftpLimits::default()
    };
    let mut server = TestServer::start(limits).await;
    let file = server.staging.stage("m", "x.cfg", "data");
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut client = Client::new(server.addr).await;
        client.request(file.path(), Options::default(), false).await;
        assert!(matches!(client.recv().await, Packet::Data { block: 1, .. }));
        holders.push(client);
    }
    let err = download(server.addr, file.path(), Options::default())
        .await
        .err()
        .unwrap();
    assert_eq!(err, (ErrorCode::NotDefined, "server busy".into()));
    assert_eq!(server.staging.stats().requests_busy(), 1);

    // A holder gives up: its slot frees before its event is reported.
    let first = &holders[0];
    first
        .send(&Packet::Error {
            code: ErrorCode::NotDefined,
            message: "bye".into(),
        })
        .await;
    let (_, _, peer, reason) = failed(server.event().await);
    assert_eq!(peer, first.addr());
    assert_eq!(reason, "client sent ERROR 0: bye");
    let got = download(server.addr, file.path(), Options::default())
        .await
        .unwrap();
    assert_eq!(got.data, b"data");
    completed(server.event().await);

    // Shutdown cancels the transfer still held and reports it.
    let second = holders.pop().unwrap();
    let mut events = server.stop().await;
    let (_, _, peer, reason) = failed(events.recv().await.unwrap());
    assert_eq!(
        (peer, reason.as_str()),
        (second.addr(), "server shutting down")
    );
}

#[tokio::test]
async fn repeated_requests_start_one_transfer() {
    let mut server = TestServer::start(TftpLimits::default()).await;
    let file = server.staging.stage("m", "x.cfg", pattern(2000));
    let mut client = Client::new(server.addr).await;
    client.request(file.path(), Options::default(), false).await;
    client.request(file.path(), Options::default(), false).await;
    let got = client.finish_download().await.unwrap();
    assert_eq!(got.data.len(), 2000);
    completed(server.event().await);
    assert_eq!(server.staging.stats().transfers_started(), 1);
    server.stop().await;
}

#[tokio::test]
async fn options_are_capped_and_may_be_refused() {
    let limits = TftpLimits {
        max_blksize: 1024,
        ..TftpLimits::default()
    };
    let mut server = TestServer::start(limits).await;
    let content = pattern(5000);
    let file = server.staging.stage("m", "x.bin", content.clone());
    let asked = Options {
        blksize: Some(8192),
        tsize: None,
        timeout: Some(3),
    };
    let got = download(server.addr, file.path(), asked).await.unwrap();
    assert!(got.data == content);
    assert_eq!(
        got.oack,
        Some(Options {
            blksize: Some(1024),
            tsize: None,
            timeout: Some(3),
        })
    );
    completed(server.event().await);

    let mut client = Client::new(server.addr).await;
    client.request(file.path(), asked, false).await;
    assert!(matches!(client.recv().await, Packet::Oack(_)));
    client
        .send(&Packet::Error {
            code: ErrorCode::OptionNegotiation,
            message: "no".into(),
        })
        .await;
    let (_, _, _, reason) = failed(server.event().await);
    assert_eq!(reason, "client sent ERROR 8: no");
    server.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_errors() {
    let server = TestServer::start(TftpLimits::default()).await;
    let file = server.staging.stage("m", "x.cfg", "data");
    let mut client = Client::new(server.addr).await;
    let cases: [(&[u8], ErrorCode); 5] = [
        (b"\x00\x01x.cfg", ErrorCode::IllegalOperation),
        (b"\x00\x01x.cfg\x00mail\x00", ErrorCode::IllegalOperation),
        (
            b"\x00\x01x.cfg\x00octet\x00blksize\x007\x00",
            ErrorCode::OptionNegotiation,
        ),
        (b"\x00\x03\x00\x01data", ErrorCode::IllegalOperation),
        (b"\x00\x63", ErrorCode::IllegalOperation),
    ];
    for (bytes, expected) in cases {
        client.send_raw_to_server(bytes).await;
        match client.recv().await {
            Packet::Error { code, .. } => assert_eq!(code, expected, "{bytes:?}"),
            other => panic!("unexpected {other:?}"),
        }
    }
    // An ERROR sent to the server port gets no answer: the next packet is
    // the reply to the request after it.
    client
        .send_to_server(&Packet::Error {
            code: ErrorCode::NotDefined,
            message: "x".into(),
        })
        .await;
    let mut oversized = b"\x00\x01".to_vec();
    oversized.extend(std::iter::repeat_n(b'a', 600));
    oversized.extend_from_slice(b"\x00octet\x00");
    client.send_raw_to_server(&oversized).await;
    assert!(matches!(
        client.recv().await,
        Packet::Error {
            code: ErrorCode::IllegalOperation,
            ..
        }
    ));
    client.request(file.path(), Options::default(), false).await;
    assert!(matches!(client.recv().await, Packet::Data { block: 1, .. }));
    server.stop().await;
}

#[tokio::test]
async fn invalid_limits_are_refused() {
    for limits in [
        TftpLimits {
            max_transfers: 0,
            ..TftpLimits::default()
        },
        TftpLimits {
            timeout: Duration::ZERO,
            ..TftpLimits::default()
        },
        TftpLimits {
            max_blksize: 7,
            ..TftpLimits::default()
        },
    ] {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let result = serve(socket, Staging::new(), tx, limits, CancellationToken::new()).await;
        assert!(
            matches!(result, Err(TftpError::InvalidLimits(_))),
            "{limits:?}"
        );
    }
}

/// A transfer's lines are in the span of the client at the peer's
/// address: they name its MAC, whoever asked for the file.
#[tokio::test]
async fn a_transfer_logs_in_the_span_of_its_client() {
    use crate::logging::{LogFormat, follow, testing::capture};
    let log = capture(LogFormat::Plain, "proxy::smi::tftp=info");
    let _default = tracing::dispatcher::set_default(&log.dispatch);
    // An address of its own on the loopback, so that no other test's
    // client is taken for this one.
    let at = Ipv4Addr::new(127, 0, 0, 77);
    let mac: crate::mac::Mac = "0011.2233.7777".parse().unwrap();
    follow(mac, Some(at), None);
    let mut server = TestServer::start(TftpLimits::default()).await;
    let file = server
        .staging
        .stage("0011.2233.7777", "sw.cfg", Bytes::from_static(b"end\n"));
    let mut client = Client {
        socket: UdpSocket::bind((at, 0)).await.unwrap(),
        server: server.addr,
        tid: None,
        buf: vec![0; 70_000],
    };
    client.request(file.path(), Options::default(), false).await;
    client.finish_download().await.unwrap();
    completed(server.event().await);
    server.stop().await;
    let out = log.out.take();
    let line = out
        .lines()
        .find(|l| l.contains("completed"))
        .unwrap_or_else(|| panic!("no completion line in {out}"));
    assert!(
        line.contains(&format!(
            "INFO client{{mac=0011.2233.7777 ip=127.0.0.77}}: proxy::smi::tftp::transfer: \
             tftp: RRQ {} completed, 4 bytes in ",
            file.path()
        )),
        "{out}"
    );
}
