//! Table tests of the XDP classifier with BPF_PROG_TEST_RUN on crafted
//! frames: verdict, client-map contents, counters and events. Needs root.
use proxy::dataplane::{Dataplane, DataplaneEvent, DropReason, EventKind, Options};
use proxy_common::{Policy, counter, state};
use proxy_tests::frames::{
    Dhcp, L2, cisco_client_id, ipv4, msg, smi_header, tcp, tcp_with_options, udp,
};
use proxy_tests::netns::{require_root, unique_prefix};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const SERVER: [u8; 4] = [192, 0, 2, 1];
const PROXY_IP: [u8; 4] = [192, 0, 2, 2];
const CLIENT_IP: [u8; 4] = [192, 0, 2, 50];

/// A loaded classifier with its own pin directory, removed on drop.
struct Fixture {
    dp: Dataplane,
    pin_dir: std::path::PathBuf,
    before: [u64; counter::COUNT as usize],
}

impl Fixture {
    fn new() -> Self {
        Self::with_policy(policy(&[1, 10]))
    }

    fn with_policy(p: Policy) -> Self {
        require_root();
        let pin_dir = std::path::PathBuf::from(format!("/sys/fs/bpf/{}", unique_prefix("smitr")));
        let loaded = Dataplane::load(&Options {
            pin_dir: pin_dir.clone(),
            policy: p,
            ..Options::default()
        });
        let dp = loaded.unwrap_or_else(|e| {
            let _ = std::fs::remove_dir_all(&pin_dir);
            panic!("load classifier: {e}")
        });
        let before = dp.counters().expect("counters");
        Self {
            dp,
            pin_dir,
            before,
        }
    }

    /// Sets the daemon's admission state of `m`, as the daemon does.
    fn set_state(&self, m: [u8; 6], st: u8) {
        self.dp.table().set_state(m, st).expect("set state");
    }

    fn run(&mut self, frame: &[u8]) -> u32 {
        self.dp.test_run(frame, 1).expect("test_run").0
    }

    /// Counter increments since creation (or the last call).
    fn delta(&mut self) -> Vec<(&'static str, u64)> {
        let now = self.dp.counters().expect("counters");
        let d = now
            .iter()
            .zip(self.before.iter())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| (counter::NAMES[i], a - b))
            .collect();
        self.before = now;
        d
    }

    fn entry(&self, mac: [u8; 6]) -> Option<proxy_common::ClientEntry> {
        self.dp.table().get(mac).expect("map read")
    }

    fn events(&mut self) -> Vec<DataplaneEvent> {
        self.dp.drain_events()
    }

    /// Makes `m` a known client (its DISCOVER on `l2`), then forgets the
    /// events and counters that caused.
    fn learn(&mut self, m: [u8; 6], l2: &L2) {
        self.run(&discover(m, l2));
        self.events();
        self.delta();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.pin_dir);
    }
}

fn policy(vlans: &[u16]) -> Policy {
    let mut p = Policy {
        startup_vlans: [0; proxy_common::VLAN_WORDS],
        ..Policy::default()
    };
    for v in vlans {
        p.set_startup_vlan(*v, true);
    }
    p
}

fn mac(n: u8) -> [u8; 6] {
    [0x00, 0x1e, 0xf7, 0x6d, 0xaf, n]
}

fn discover(m: [u8; 6], l2: &L2) -> Vec<u8> {
    Dhcp::cisco_client(m, 0x1234_5678, msg::DISCOVER).frame(l2, SERVER)
}

fn ack(m: [u8; 6], l2: &L2, ip: [u8; 4]) -> Vec<u8> {
    let mut reply_l2 = l2.clone();
    reply_l2.src = [0x02, 0, 0, 0, 0, 0x01];
    Dhcp::server_reply(m, 0x1234_5678, msg::ACK, ip, SERVER).frame(&reply_l2, SERVER)
}

fn smi_frame(src: [u8; 6], l2: &L2, len_word: u32) -> Vec<u8> {
    let mut l2 = l2.clone();
    l2.src = src;
    let mut payload = smi_header(4, 0, 3, len_word);
    payload.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    ipv4(
        &l2,
        CLIENT_IP,
        PROXY_IP,
        6,
        &[],
        &tcp(50_000, 4786, 0x18, &payload),
    )
}

fn new_client_event(evs: &[DataplaneEvent], m: [u8; 6]) -> &DataplaneEvent {
    evs.iter()
        .find(|e| e.mac == m && matches!(e.kind, EventKind::NewClient { .. }))
        .expect("a NewClient event")
}

#[test]
fn dhcp_untagged_creates_client_and_event() {
    let mut f = Fixture::new();
    let m = mac(1);
    assert_eq!(f.run(&discover(m, &L2::broadcast(m))), XDP_PASS);
    let e = f.entry(m).expect("entry created");
    assert_eq!(
        (e.state, e.vlan, e.svlan, e.dhcp_pkts),
        (state::NEW, 1, 0, 1)
    );
    assert_eq!(e.xid, 0x1234_5678);
    assert_eq!(e.dhcp_msg, msg::DISCOVER);
    assert_eq!(f.delta(), vec![("dhcp_request_pass", 1), ("new_client", 1)]);
    let evs = f.events();
    let ev = new_client_event(&evs, m);
    let EventKind::NewClient {
        client_id,
        vendor_class,
        requested,
    } = &ev.kind
    else {
        unreachable!()
    };
    let cid = cisco_client_id(&m);
    assert_eq!(&client_id[1..], &cid.as_bytes()[..client_id.len() - 1]);
    assert_eq!(vendor_class, b"cisco");
    assert_eq!(*requested, None);

    // A known client: counters rise, no second event.
    assert_eq!(f.run(&discover(m, &L2::broadcast(m))), XDP_PASS);
    assert_eq!(f.entry(m).expect("entry").dhcp_pkts, 2);
    assert_eq!(f.delta(), vec![("dhcp_request_pass", 1)]);
    assert!(f.events().is_empty(), "no event for a known client");
}

#[test]
fn dhcp_single_tagged_and_qinq() {
    let mut f = Fixture::new();
    let (a, b) = (mac(2), mac(3));
    assert_eq!(f.run(&discover(a, &L2::broadcast(a).tagged(10))), XDP_PASS);
    assert_eq!(
        f.run(&discover(b, &L2::broadcast(b).qinq(100, 10))),
        XDP_PASS
    );
    let ea = f.entry(a).expect("tagged entry");
    assert_eq!((ea.vlan, ea.svlan), (10, 0));
    let eb = f.entry(b).expect("qinq entry");
    assert_eq!((eb.vlan, eb.svlan), (10, 100));
    assert_eq!(f.delta(), vec![("dhcp_request_pass", 2), ("new_client", 2)]);
    let evs = f.events();
    assert_eq!(new_client_event(&evs, b).svlan, 100);
}

#[test]
fn dhcp_on_other_vlan_is_not_learned() {
    let mut f = Fixture::new();
    let m = mac(4);
    assert_eq!(f.run(&discover(m, &L2::broadcast(m).tagged(30))), XDP_PASS);
    assert!(f.entry(m).is_none());
    assert_eq!(
        f.delta(),
        vec![("dhcp_request_pass", 1), ("dhcp_other_vlan", 1)]
    );
    assert!(f.events().is_empty());
}

#[test]
fn dhcp_with_ipv4_options() {
    let mut f = Fixture::new();
    for (i, opt_len) in [4usize, 8, 40].into_iter().enumerate() {
        let m = mac(10 + i as u8);
        // Router-alert style options padded with NOPs (1).
        let mut opts = vec![148u8, 4, 0, 0];
        opts.resize(opt_len, 1);
        let frame = Dhcp::cisco_client(m, 7, msg::DISCOVER).frame_with_ip_options(
            &L2::broadcast(m),
            SERVER,
            &opts,
        );
        assert_eq!(f.run(&frame), XDP_PASS);
        assert!(f.entry(m).is_some(), "IHL {} learned", 5 + opt_len / 4);
    }
    assert_eq!(f.delta(), vec![("dhcp_request_pass", 3), ("new_client", 3)]);
}

#[test]
fn ack_learns_address() {
    let mut f = Fixture::new();
    let m = mac(5);
    let l2 = L2::broadcast(m);
    f.learn(m, &l2);
    assert_eq!(f.run(&ack(m, &l2, CLIENT_IP)), XDP_PASS);
    let e = f.entry(m).expect("entry");
    assert_eq!(
        (e.ipv4, e.state, e.dhcp_msg),
        (CLIENT_IP, state::DISCOVERED, msg::ACK)
    );
    assert_eq!(
        f.delta(),
        vec![("dhcp_reply_pass", 1), ("address_learned", 1)]
    );
    let evs = f.events();
    assert!(
        evs.iter().any(|e| e.mac == m
            && e.kind == EventKind::AddressLearned(std::net::Ipv4Addr::from(CLIENT_IP)))
    );
    // The same ACK again: no new event.
    f.run(&ack(m, &l2, CLIENT_IP));
    assert_eq!(f.delta(), vec![("dhcp_reply_pass", 1)]);
    assert!(f.events().is_empty());
}

#[test]
fn truncated_at_every_boundary_passes_and_learns_nothing() {
    let mut f = Fixture::new();
    for (name, l2) in [
        ("untagged", L2::broadcast(mac(6))),
        ("tagged", L2::broadcast(mac(6)).tagged(10)),
        ("qinq", L2::broadcast(mac(6)).qinq(100, 10)),
    ] {
        let full = discover(mac(6), &l2);
        // Every length from the bare Ethernet header up to one byte short
        // of the END option.
        for len in 14..full.len() - 1 {
            assert_eq!(f.run(&full[..len]), XDP_PASS, "{name} cut at {len}");
            assert!(
                f.entry(mac(6)).is_none(),
                "{name} cut at {len} created an entry"
            );
        }
        let runs = (full.len() - 1 - 14) as u64;
        let d = f.delta();
        let stopped: u64 = d
            .iter()
            .filter(|(n, _)| ["truncated_pass", "dhcp_malformed_pass"].contains(n))
            .map(|(_, v)| v)
            .sum();
        assert_eq!(
            stopped, runs,
            "{name}: every cut frame counted as stopped: {d:?}"
        );
        assert!(
            d.iter().any(|(n, v)| *n == "truncated_pass" && *v > 0),
            "{name}: {d:?}"
        );
        assert!(
            d.iter().any(|(n, v)| *n == "dhcp_malformed_pass" && *v > 0),
            "{name}: {d:?}"
        );
    }
    assert!(f.events().is_empty());
}

#[test]
fn option_overrun_is_malformed() {
    let mut f = Fixture::new();
    let m = mac(7);
    // An option whose length runs past the end of the frame.
    let mut d = Dhcp::cisco_client(m, 1, msg::DISCOVER);
    d.raw_tail = Some(vec![43, 200, 1, 2, 3]);
    assert_eq!(f.run(&d.frame(&L2::broadcast(m), SERVER)), XDP_PASS);
    // No END option within the walk bound: 100 one-byte options.
    let mut d2 = Dhcp::cisco_client(m, 2, msg::DISCOVER);
    d2.options = (0..100).map(|_| (250u8, vec![])).collect();
    assert_eq!(f.run(&d2.frame(&L2::broadcast(m), SERVER)), XDP_PASS);
    // No magic cookie.
    let mut frame = discover(m, &L2::broadcast(m));
    let cookie = 14 + 20 + 8 + 236;
    frame[cookie] = 0;
    assert_eq!(f.run(&frame), XDP_PASS);
    assert!(f.entry(m).is_none());
    assert_eq!(f.delta(), vec![("dhcp_malformed_pass", 3)]);
}

#[test]
fn non_ipv4_and_other_traffic_pass() {
    let mut f = Fixture::new();
    let m = mac(8);
    let l2 = L2::broadcast(m);
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&m);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.resize(60, 0);
    let mut v6 = vec![0x33, 0x33, 0, 0, 0, 1];
    v6.extend_from_slice(&m);
    v6.extend_from_slice(&[0x86, 0xdd]);
    v6.resize(80, 0);
    let http = ipv4(
        &l2,
        CLIENT_IP,
        PROXY_IP,
        6,
        &[],
        &tcp(40_000, 80, 0x02, &[]),
    );
    let dns = ipv4(
        &l2,
        CLIENT_IP,
        PROXY_IP,
        17,
        &[],
        &proxy_tests::frames::udp(5353, 53, &[1; 20]),
    );
    for frame in [&arp, &v6, &http, &dns] {
        assert_eq!(f.run(frame), XDP_PASS);
    }
    assert_eq!(
        f.delta(),
        vec![],
        "frames not the classifier's are not counted"
    );
    assert!(f.entry(m).is_none());
}

#[test]
fn smi_admission() {
    let mut f = Fixture::new();
    let (admitted, stranger, fresh) = (mac(20), mac(21), mac(22));
    let l2 = L2::broadcast(mac(0));
    f.set_state(admitted, state::ADMITTED);
    f.learn(fresh, &L2::broadcast(fresh));

    assert_eq!(f.run(&smi_frame(admitted, &l2, 8)), XDP_PASS, "admitted");
    let e = f.entry(admitted).expect("entry");
    assert_eq!((e.smi_pkts, e.smi_dropped), (1, 0));
    assert_eq!(f.delta(), vec![("smi_pass", 1)]);

    assert_eq!(f.run(&smi_frame(stranger, &l2, 8)), XDP_DROP, "unknown MAC");
    assert!(f.entry(stranger).is_none(), "drops create no entry");
    assert_eq!(f.delta(), vec![("smi_drop_not_admitted", 1)]);
    let evs = f.events();
    assert!(evs.iter().any(|e| e.mac == stranger
        && matches!(
            e.kind,
            EventKind::SmiDropped {
                reason: DropReason::NotAdmitted,
                ..
            }
        )));

    assert_eq!(
        f.run(&smi_frame(fresh, &l2, 8)),
        XDP_DROP,
        "known but not admitted"
    );
    assert_eq!(f.entry(fresh).expect("entry").smi_dropped, 1);
    assert_eq!(f.delta(), vec![("smi_drop_not_admitted", 1)]);

    assert_eq!(
        f.run(&smi_frame(admitted, &l2.clone().tagged(30), 8)),
        XDP_DROP,
        "wrong VLAN"
    );
    assert_eq!(f.delta(), vec![("smi_drop_wrong_vlan", 1)]);

    assert_eq!(
        f.run(&smi_frame(admitted, &l2, 0x0010_0000)),
        XDP_DROP,
        "oversize"
    );
    assert_eq!(f.delta(), vec![("smi_drop_oversize", 1)]);
    assert_eq!(f.entry(admitted).expect("entry").smi_dropped, 2);

    // Exactly at the cap passes.
    assert_eq!(
        f.run(&smi_frame(admitted, &l2, 4096)),
        XDP_PASS,
        "at the cap"
    );
    assert_eq!(f.delta(), vec![("smi_pass", 1)]);
}

/// The SMI header's length word is read behind TCP options too, on
/// untagged frames (the classifier's fast path) as on tagged ones (its
/// general parse).
#[test]
fn the_smi_length_word_is_read_behind_tcp_options_tagged_or_not() {
    let mut f = Fixture::new();
    let admitted = mac(23);
    f.set_state(admitted, state::ADMITTED);
    // Timestamps (10 bytes, padded to 12), as Linux sends them.
    let timestamps = [8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
    for l2 in [L2::broadcast(admitted), L2::broadcast(admitted).tagged(10)] {
        let segment = |flags: u8, payload: &[u8]| {
            let tcp = tcp_with_options(50_000, 4786, flags, &timestamps, payload);
            ipv4(&l2, CLIENT_IP, PROXY_IP, 6, &[], &tcp)
        };
        let smi = |len_word: u32| {
            let mut payload = smi_header(4, 0, 3, len_word);
            payload.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
            segment(0x18, &payload)
        };
        let tags = l2.tags.len();
        assert_eq!(f.run(&smi(4096)), XDP_PASS, "at the cap, {tags} tags");
        assert_eq!(f.delta(), vec![("smi_pass", 1)]);
        assert_eq!(f.run(&smi(4097)), XDP_DROP, "over the cap, {tags} tags");
        assert_eq!(f.delta(), vec![("smi_drop_oversize", 1)]);
        // A bare ACK has no SMI header to read: it passes.
        assert_eq!(f.run(&segment(0x10, &[])), XDP_PASS, "ACK, {tags} tags");
        assert_eq!(f.delta(), vec![("smi_pass", 1)]);
    }
    let e = f.entry(admitted).expect("entry");
    assert_eq!((e.smi_pkts, e.smi_dropped), (4, 2));
}

/// An admitted client's SMI segment cut short of its SMI header (which
/// its IPv4 length still claims) passes as truncated, on the fast path and
/// the general parse alike; with the header whole it passes as SMI.
#[test]
fn an_smi_segment_cut_inside_its_headers_passes_as_truncated() {
    let mut f = Fixture::new();
    let admitted = mac(24);
    f.set_state(admitted, state::ADMITTED);
    let mut whole = 0;
    for l2 in [L2::broadcast(admitted), L2::broadcast(admitted).tagged(1)] {
        let full = smi_frame(admitted, &l2, 8);
        // Ethernet and tags, IPv4, TCP, then the 16-byte SMI header.
        let header_end = 14 + 4 * l2.tags.len() + 20 + 20 + 16;
        for len in 14..=full.len() {
            assert_eq!(f.run(&full[..len]), XDP_PASS, "cut at {len}");
        }
        whole += (full.len() + 1 - header_end) as u64;
        let expected = vec![
            ("smi_pass", (full.len() + 1 - header_end) as u64),
            ("truncated_pass", (header_end - 14) as u64),
        ];
        assert_eq!(f.delta(), expected, "{} tags", l2.tags.len());
    }
    let passed = f.entry(admitted).expect("entry").smi_pkts;
    assert_eq!(passed, whole, "only whole headers count as SMI");
}

/// A known client's steady request updates its VLAN whichever parse reads
/// it: the tag of a tagged frame (the general parse), the policy's
/// untagged VLAN for an untagged one (the fast path).
#[test]
fn a_known_clients_steady_dhcp_records_the_vlan_it_came_on() {
    let mut f = Fixture::new();
    let m = mac(0x41);
    f.learn(m, &L2::broadcast(m));
    for (l2, vlan, xid) in [
        (L2::broadcast(m).tagged(10), 10, 0xabcd_0003),
        (L2::broadcast(m), 1, 0xabcd_0004),
    ] {
        let request = Dhcp::cisco_client(m, xid, msg::REQUEST).frame(&l2, SERVER);
        assert_eq!(f.run(&request), XDP_PASS);
        let e = f.entry(m).expect("entry");
        assert_eq!((e.xid, e.vlan, e.dhcp_msg), (xid, vlan, msg::REQUEST));
        assert_eq!(f.delta(), vec![("dhcp_request_pass", 1)]);
        assert!(f.events().is_empty());
    }
    assert_eq!(f.entry(m).expect("entry").dhcp_pkts, 3);
}

/// The IPv4 fragment fields of `frame` (whose IPv4 header starts at `l3`)
/// set to `flags_offset`: the flags' three bits and the offset in 8-byte
/// units, as on the wire.
fn fragmented(mut frame: Vec<u8>, l3: usize, flags_offset: u16) -> Vec<u8> {
    frame[l3 + 6..l3 + 8].copy_from_slice(&flags_offset.to_be_bytes());
    frame
}

/// A later fragment has no L4 header: bytes where the ports would be are
/// payload, so it is neither DHCP nor SMI, on either parse, whatever they
/// hold. A first fragment (more-fragments set, offset 0) has its header
/// and is read as usual.
#[test]
fn a_later_fragment_is_not_read_for_ports() {
    const MORE_FRAGMENTS: u16 = 0x2000;
    let mut f = Fixture::new();
    let (known, stranger) = (mac(0x51), mac(0x52));
    f.learn(known, &L2::broadcast(known));
    for (l2, l3) in [
        (L2::broadcast(known), 14),
        (L2::broadcast(known).tagged(1), 18),
    ] {
        let request = Dhcp::cisco_client(known, 0x5151, msg::REQUEST).frame(&l2, SERVER);
        let smi = smi_frame(stranger, &l2, 8);
        for offset in [1, 0x1fff, MORE_FRAGMENTS | 185] {
            let before = f.entry(known).expect("entry").dhcp_pkts;
            assert_eq!(f.run(&fragmented(request.clone(), l3, offset)), XDP_PASS);
            assert_eq!(f.run(&fragmented(smi.clone(), l3, offset)), XDP_PASS);
            assert_eq!(f.delta(), vec![], "offset {offset:#x}: not counted");
            assert_eq!(f.entry(known).expect("entry").dhcp_pkts, before);
        }
        let first = fragmented(request, l3, MORE_FRAGMENTS);
        assert_eq!(f.run(&first), XDP_PASS);
        assert_eq!(f.delta(), vec![("dhcp_request_pass", 1)]);
        let first_smi = fragmented(smi, l3, MORE_FRAGMENTS);
        assert_eq!(f.run(&first_smi), XDP_DROP, "a first fragment is read");
        assert_eq!(f.delta(), vec![("smi_drop_not_admitted", 1)]);
        f.events();
    }
}

/// XDP caches the daemon's admission state in the client's entry; every
/// change of the daemon's state must reach the very next frame, and a
/// reloaded program must not believe what the old one cached.
#[test]
fn admission_changes_reach_the_next_frame_through_the_cache() {
    let mut f = Fixture::new();
    let m = mac(40);
    let l2 = L2::broadcast(mac(0));
    f.learn(m, &L2::broadcast(m));

    // Not admitted: dropped twice (the second from the cache).
    for _ in 0..2 {
        assert_eq!(f.run(&smi_frame(m, &l2, 8)), XDP_DROP, "learned NEW");
    }
    let steps = [
        (state::ADMITTED, XDP_PASS),
        (state::BLOCKED, XDP_DROP),
        (state::UPGRADING, XDP_PASS),
        (state::NOT_SMI, XDP_DROP),
        (state::DONE, XDP_PASS),
    ];
    for (st, verdict) in steps {
        f.set_state(m, st);
        for n in 0..3 {
            assert_eq!(
                f.run(&smi_frame(m, &l2, 8)),
                verdict,
                "frame {n} after state {st}"
            );
        }
    }
    let cached = f.entry(m).expect("entry").admission_cache;
    assert_eq!(cached & 0xff, u64::from(state::DONE), "cache holds DONE");

    // Another client's change bumps the epoch: this one's cache is read
    // again and still gives DONE.
    f.set_state(mac(41), state::BLOCKED);
    assert_eq!(f.run(&smi_frame(m, &l2, 8)), XDP_PASS, "re-read");
    assert_ne!(
        f.entry(m).expect("entry").admission_cache,
        cached,
        "cache refreshed at the new epoch"
    );

    // A reload (a second load on the same pinned maps, as a restarted
    // daemon does) bumps the epoch: the cache is read again, and the
    // daemon's state still decides.
    f.set_state(m, state::BLOCKED);
    assert_eq!(f.run(&smi_frame(m, &l2, 8)), XDP_DROP, "blocked");
    let before = f.entry(m).expect("entry").admission_cache;
    let mut reloaded = Dataplane::load(&Options {
        pin_dir: f.pin_dir.clone(),
        policy: policy(&[1, 10]),
        ..Options::default()
    })
    .expect("reload on the pinned maps");
    assert_eq!(
        reloaded
            .test_run(&smi_frame(m, &l2, 8), 1)
            .expect("test_run")
            .0,
        XDP_DROP,
        "still blocked after the reload"
    );
    let after = f.entry(m).expect("entry").admission_cache;
    assert_eq!(after & 0xff, u64::from(state::BLOCKED));
    assert!(after >> 8 > before >> 8, "read again at the reload's epoch");
}

/// Every admission state, in both directions, on either parse (untagged:
/// the fast path; tagged: the general parse): a segment to the director
/// passes only for ADMITTED, UPGRADING and DONE; one from the client's
/// port 4786 for every learned state but BLOCKED; no state outside the
/// known ones admits anything. The table is written out here, apart from
/// `proxy_common::state`, which the classifier is built from.
#[test]
fn every_admission_state_admits_smi_by_direction_on_either_parse() {
    const TO_DIRECTOR: [u8; 3] = [state::ADMITTED, state::UPGRADING, state::DONE];
    const FROM_4786: [u8; 5] = [
        state::DISCOVERED,
        state::ADMITTED,
        state::UPGRADING,
        state::DONE,
        state::NOT_SMI,
    ];
    let mut f = Fixture::new();
    let mut payload = smi_header(4, 0, 3, 8);
    payload.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    for (i, st) in (0..=9).chain([200, 255]).enumerate() {
        let m = mac(100 + u8::try_from(i).expect("few states"));
        f.set_state(m, st);
        f.delta();
        for l2 in [L2::broadcast(m), L2::broadcast(m).tagged(10)] {
            let tagged = !l2.tags.is_empty();
            for to_director in [true, false] {
                let (sport, dport) = if to_director {
                    (50_000, 4786)
                } else {
                    (4786, 50_000)
                };
                let frame = ipv4(
                    &l2,
                    CLIENT_IP,
                    PROXY_IP,
                    6,
                    &[],
                    &tcp(sport, dport, 0x18, &payload),
                );
                let admitted = if to_director {
                    TO_DIRECTOR.contains(&st)
                } else {
                    FROM_4786.contains(&st)
                };
                let (verdict, counted) = if admitted {
                    (XDP_PASS, "smi_pass")
                } else {
                    (XDP_DROP, "smi_drop_not_admitted")
                };
                let case = format!("state {st}, to director {to_director}, tagged {tagged}");
                assert_eq!(f.run(&frame), verdict, "{case}");
                assert_eq!(f.delta(), vec![(counted, 1)], "{case}");
            }
        }
    }
}

#[test]
fn smi_reply_to_probe_passes_for_discovered_client() {
    let mut f = Fixture::new();
    let m = mac(30);
    let l2 = L2::broadcast(m);
    f.run(&discover(m, &l2));
    f.run(&ack(m, &l2, CLIENT_IP));
    f.delta();
    // The client's answer from its port 4786 to the director's probe.
    let reply = ipv4(
        &l2,
        CLIENT_IP,
        PROXY_IP,
        6,
        &[],
        &tcp(4786, 50_001, 0x12, &[]),
    );
    assert_eq!(f.run(&reply), XDP_PASS);
    // But it may not open connections to the director yet.
    assert_eq!(f.run(&smi_frame(m, &l2, 8)), XDP_DROP);
    assert_eq!(
        f.delta(),
        vec![("smi_pass", 1), ("smi_drop_not_admitted", 1)]
    );
}

#[test]
fn enforcement_off_only_counts() {
    let mut p = policy(&[1]);
    p.enforce = 0;
    let mut f = Fixture::with_policy(p);
    assert_eq!(
        f.run(&smi_frame(mac(40), &L2::broadcast(mac(0)), 8)),
        XDP_PASS
    );
    assert_eq!(f.delta(), vec![("smi_would_drop", 1)]);
}

#[test]
fn discover_from_upgrading_client_reports_restart() {
    let mut f = Fixture::new();
    let m = mac(50);
    let l2 = L2::broadcast(m);
    f.run(&discover(m, &l2));
    f.run(&ack(m, &l2, CLIENT_IP));
    f.events();
    // Not upgrading: a DISCOVER is just counted.
    f.run(&discover(m, &l2));
    assert!(f.events().is_empty());
    f.set_state(m, state::UPGRADING);
    f.run(&discover(m, &l2));
    let evs = f.events();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!((evs[0].mac, &evs[0].kind), (m, &EventKind::ClientRestarted));
    // The admission state is the daemon's: it stays until the daemon,
    // reading the event, moves the client on; later DISCOVERs are ordinary.
    assert_eq!(f.entry(m).expect("entry").state, state::UPGRADING);
    f.set_state(m, state::DISCOVERED);
    f.run(&discover(m, &l2));
    assert!(f.events().is_empty());
    // A REQUEST from an upgrading client is not a restart.
    f.set_state(m, state::UPGRADING);
    f.run(&Dhcp::cisco_client(m, 9, msg::REQUEST).frame(&l2, SERVER));
    assert!(f.events().is_empty());
}

/// An OFFER from a DHCP server (MAC 02:..:01) to client `m`.
fn offer(m: [u8; 6], l2: &L2) -> Vec<u8> {
    let mut reply_l2 = l2.clone();
    reply_l2.src = [0x02, 0, 0, 0, 0, 0x01];
    Dhcp::server_reply(m, 0x1234_5678, msg::OFFER, CLIENT_IP, SERVER).frame(&reply_l2, SERVER)
}

#[test]
fn offers_are_believed_only_on_trusted_ports_and_reported_at_a_bounded_rate() {
    let mut p = policy(&[1]);
    p.dhcp_trusted_only = 1;
    let mut f = Fixture::with_policy(p);
    let m = mac(40);
    let l2 = L2::broadcast(m);
    // test_run frames arrive on the namespace's loopback (ifindex 1),
    // which is not trusted yet: counted, no event.
    assert_eq!(f.run(&offer(m, &l2)), XDP_PASS);
    assert_eq!(
        f.delta(),
        vec![("dhcp_reply_pass", 1), ("dhcp_offer_untrusted", 1)]
    );
    assert!(f.events().is_empty());
    // Trusted: one event, then at most one per CPU per 100 ms (the five
    // repeats of one test run are on one CPU, within microseconds).
    f.dp.set_dhcp_trusted(&[1]).expect("trust lo");
    f.dp.test_run(&offer(m, &l2), 5).expect("test_run");
    assert_eq!(
        f.delta(),
        vec![("dhcp_reply_pass", 5), ("server_event_limited", 4)]
    );
    let evs = f.events();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert!(matches!(evs[0].kind, EventKind::DhcpServerSeen(_)));
    // Every port trusted (the default): believed again.
    f.dp.set_dhcp_trusted(&[]).expect("untrust");
    f.dp.set_policy(&policy(&[1])).expect("policy");
    std::thread::sleep(std::time::Duration::from_millis(150));
    f.run(&offer(m, &l2));
    assert_eq!(f.delta(), vec![("dhcp_reply_pass", 1)]);
    assert_eq!(f.events().len(), 1);
}

#[test]
fn the_daemons_state_changes_never_lose_what_xdp_learns() {
    let mut f = Fixture::new();
    let m = mac(41);
    let l2 = L2::broadcast(m);
    f.run(&discover(m, &l2));
    let request = Dhcp::cisco_client(m, 9, msg::REQUEST).frame(&l2, SERVER);
    let table = f.dp.table();
    let before = f.entry(m).expect("learned").dhcp_pkts;
    // A DHCP storm from the client (one test run of 200,000 frames, in the
    // kernel) while the daemon changes the client's state 5,000 times.
    const FRAMES: u32 = 200_000;
    let writer = std::thread::spawn(move || {
        let states = [
            state::ADMITTED,
            state::UPGRADING,
            state::NOT_SMI,
            state::ADMITTED,
        ];
        for i in 0..5_000 {
            table
                .set_state(m, states[i % states.len()])
                .expect("set state");
        }
    });
    f.dp.test_run(&request, FRAMES).expect("test_run");
    writer.join().expect("writer");
    let e = f.entry(m).expect("entry");
    assert_eq!(
        e.dhcp_pkts - before,
        u64::from(FRAMES),
        "no count of XDP's lost to a write of the daemon"
    );
    assert_eq!(e.state, state::ADMITTED, "the daemon's last state stands");
    // The learned state underneath is XDP's own.
    let learned = f.dp.table().entries().expect("entries");
    assert!(
        learned
            .iter()
            .any(|(mac, e)| *mac == m && e.state == state::ADMITTED)
    );
}

#[test]
fn tftp_and_reverse_telnet_only_from_admitted_clients() {
    let mut f = Fixture::new();
    let (admitted, stranger) = (mac(60), mac(61));
    f.set_state(admitted, state::ADMITTED);
    f.delta();
    let rrq = |src: [u8; 6]| {
        let mut l2 = L2::broadcast(src);
        l2.src = src;
        ipv4(
            &l2,
            CLIENT_IP,
            PROXY_IP,
            17,
            &[],
            &udp(50_001, 69, b"\x00\x01abc/x.cfg\x00octet\x00"),
        )
    };
    let syn = |src: [u8; 6]| {
        let mut l2 = L2::broadcast(src);
        l2.src = src;
        ipv4(
            &l2,
            CLIENT_IP,
            PROXY_IP,
            6,
            &[],
            &tcp(50_002, 19140, 0x02, &[]),
        )
    };
    assert_eq!(f.run(&rrq(admitted)), XDP_PASS);
    assert_eq!(f.run(&syn(admitted)), XDP_PASS);
    assert_eq!(f.delta(), vec![], "admitted: passed, nothing counted");
    assert_eq!(f.run(&rrq(stranger)), XDP_DROP);
    assert_eq!(f.run(&syn(stranger)), XDP_DROP);
    assert_eq!(
        f.delta(),
        vec![
            ("tftp_drop_not_admitted", 1),
            ("telnet_drop_not_admitted", 1)
        ]
    );
    assert!(f.entry(stranger).is_none(), "drops create no entry");
    // Without enforcement: counted and passed.
    let mut p = policy(&[1, 10]);
    p.enforce = 0;
    f.dp.set_policy(&p).expect("policy");
    assert_eq!(f.run(&rrq(stranger)), XDP_PASS);
    assert_eq!(
        f.delta(),
        vec![("smi_would_drop", 1), ("tftp_drop_not_admitted", 1)]
    );
}

/// The lines the classifier's aya-log records became, through the `log`
/// facade (installed once for this test binary, before any load).
fn captured_log() -> &'static std::sync::Mutex<Vec<String>> {
    struct Capture(std::sync::Mutex<Vec<String>>);
    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            // Only the classifier's records (aya logs its own loading too).
            if !record.target().starts_with("proxy_ebpf") {
                return;
            }
            let line = record.args().to_string();
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(line);
        }
        fn flush(&self) {}
    }
    static CAPTURE: std::sync::OnceLock<&'static Capture> = std::sync::OnceLock::new();
    let capture = CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture(Default::default())));
        log::set_logger(capture).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Trace);
        capture
    });
    &capture.0
}

/// Takes the lines logged since the last call.
fn log_lines(f: &mut Fixture) -> Vec<String> {
    f.dp.drain_log();
    std::mem::take(
        &mut *captured_log()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}

#[test]
fn rare_events_are_logged_only_while_asked_and_at_a_bounded_rate() {
    captured_log();
    let mut f = Fixture::new();
    let l2 = L2::broadcast(mac(0));
    let stranger = mac(0x31);
    log_lines(&mut f);
    assert_eq!(f.run(&smi_frame(stranger, &l2, 8)), XDP_DROP);
    assert_eq!(log_lines(&mut f), Vec::<String>::new(), "off: no line");

    f.dp.set_log_events(true).expect("log on");
    assert_eq!(f.run(&smi_frame(stranger, &l2, 8)), XDP_DROP);
    assert_eq!(
        log_lines(&mut f),
        vec!["SMI dropped from 00:1e:f7:6d:af:31 on vlan 1: client not admitted"]
    );
    // A flood right after: the same 10 ms window, no more lines.
    for _ in 0..100 {
        assert_eq!(f.run(&smi_frame(stranger, &l2, 8)), XDP_DROP);
    }
    assert_eq!(log_lines(&mut f), Vec::<String>::new(), "bounded");

    // A fresh classifier (its own rate-limit slot), a malformed frame.
    let mut g = Fixture::new();
    g.dp.set_log_events(true).expect("log on");
    let m = mac(0x32);
    let mut d = Dhcp::cisco_client(m, 1, msg::DISCOVER);
    d.raw_tail = Some(vec![43, 200, 1, 2, 3]);
    assert_eq!(g.run(&d.frame(&L2::broadcast(m), SERVER)), XDP_PASS);
    assert_eq!(
        log_lines(&mut g),
        vec!["malformed DHCP frame from 00:1e:f7:6d:af:32: passed, not learned"]
    );

    // A policy written afterwards (a configuration change) keeps it on.
    let mut h = Fixture::new();
    h.dp.set_log_events(true).expect("log on");
    h.dp.set_policy(&policy(&[1, 10])).expect("policy");
    h.set_state(mac(0x20), state::ADMITTED);
    assert_eq!(h.run(&smi_frame(mac(0x20), &l2, 1 << 20)), XDP_DROP);
    assert_eq!(
        log_lines(&mut h),
        vec!["SMI dropped from 00:1e:f7:6d:af:20 on vlan 1: length word 1048576 over the cap"],
        "still on, after a policy write"
    );
}

#[test]
fn a_known_clients_steady_dhcp_updates_it_without_events_whatever_the_option_order() {
    let mut f = Fixture::new();
    let m = mac(0x40);
    let l2 = L2::broadcast(m);
    f.learn(m, &l2);
    // The fast path: option 53 first, a REQUEST.
    let request = Dhcp::cisco_client(m, 0xabcd_0001, msg::REQUEST).frame(&l2, SERVER);
    assert_eq!(f.run(&request), XDP_PASS);
    let e = f.entry(m).expect("entry");
    assert_eq!(
        (e.dhcp_pkts, e.xid, e.dhcp_msg),
        (2, 0xabcd_0001, msg::REQUEST)
    );
    assert_eq!(f.delta(), vec![("dhcp_request_pass", 1)]);
    assert!(f.events().is_empty());
    // The full path: option 53 last; the same outcome.
    let mut late = Dhcp::cisco_client(m, 0xabcd_0002, msg::REQUEST);
    late.options.rotate_left(1);
    assert_eq!(f.run(&late.frame(&l2, SERVER)), XDP_PASS);
    let e = f.entry(m).expect("entry");
    assert_eq!(
        (e.dhcp_pkts, e.xid, e.dhcp_msg),
        (3, 0xabcd_0002, msg::REQUEST)
    );
    assert_eq!(f.delta(), vec![("dhcp_request_pass", 1)]);
    assert!(f.events().is_empty());
    // An ACK with another address than the one it has is news, even with
    // option 53 first.
    f.run(&ack(m, &l2, CLIENT_IP));
    f.events();
    f.delta();
    assert_eq!(f.run(&ack(m, &l2, [192, 0, 2, 51])), XDP_PASS);
    assert_eq!(f.entry(m).expect("entry").ipv4, [192, 0, 2, 51]);
    assert_eq!(
        f.delta(),
        vec![("dhcp_reply_pass", 1), ("address_learned", 1)]
    );
    assert_eq!(f.events().len(), 1);
}
