//! The neighbour seeder against the kernel's ARP table, in namespaces this
//! test creates: a snooped binding becomes a `STALE` entry; a confirmed or
//! static entry is left alone; an unconfirmed one (`DELAY`, `PROBE`) or one
//! the kernel gave up on (`FAILED`, `INCOMPLETE`) is set back to `STALE`,
//! so the next packets go unicast to the known MAC instead of a broadcast
//! request. Needs root.
use std::net::Ipv4Addr;
use std::process::Command;

use proxy::dataplane::{NeighbourSeeder, Seeded};
use proxy_tests::netns::{NetNs, require_root, unique_prefix, veth};

const PROXY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 77);
const MAC: [u8; 6] = [0x00, 0x1e, 0xf7, 0x00, 0x00, 0x4d];

/// `ip neigh show` of `ip` in `ns`: (MAC, state), or None.
fn entry(ns: &NetNs, ip: Ipv4Addr) -> Option<(String, String)> {
    let out = Command::new("ip")
        .args([
            "-n",
            ns.name(),
            "neigh",
            "show",
            &ip.to_string(),
            "dev",
            "px0",
        ])
        .output()
        .expect("ip neigh show");
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    let mac = words
        .iter()
        .position(|w| *w == "lladdr")
        .and_then(|i| words.get(i + 1))
        .map_or_else(String::new, |m| (*m).to_owned());
    words.last().map(|state| (mac, (*state).to_owned()))
}

#[test]
fn seeded_entries_never_fall_back_to_broadcast() {
    require_root();
    let p = unique_prefix("ng");
    let px = NetNs::new(&format!("{p}px")).expect("px namespace");
    let sw = NetNs::new(&format!("{p}sw")).expect("sw namespace");
    veth(&px, "px0", &sw, "sw0").expect("veth");
    px.ip(&["addr", "add", "192.0.2.1/24", "dev", "px0"])
        .expect("address");
    let seeder = {
        let _in = px.enter().expect("enter px");
        NeighbourSeeder::for_address(PROXY).expect("seeder")
    };
    let want = "00:1e:f7:00:00:4d".to_owned();

    assert_eq!(seeder.seed(CLIENT, MAC).expect("seed"), Seeded::Added);
    assert_eq!(entry(&px, CLIENT), Some((want.clone(), "STALE".into())));
    assert_eq!(seeder.seed(CLIENT, MAC).expect("seed"), Seeded::Kept);

    // What the kernel may show right after: its timers run on.
    for (gave_up, shown) in [
        ("failed", &["FAILED"][..]),
        ("incomplete", &["INCOMPLETE", "FAILED"]),
        ("delay", &["DELAY", "PROBE"]),
        ("probe", &["PROBE", "FAILED"]),
    ] {
        px.ip(&[
            "neigh",
            "replace",
            &CLIENT.to_string(),
            "dev",
            "px0",
            "nud",
            gave_up,
        ])
        .expect("set state");
        let state = entry(&px, CLIENT).map(|(_, s)| s).unwrap_or_default();
        assert!(
            shown.contains(&state.as_str()),
            "{gave_up}: the kernel shows {state}"
        );
        assert_eq!(seeder.seed(CLIENT, MAC).expect("seed"), Seeded::Refreshed);
        assert_eq!(entry(&px, CLIENT), Some((want.clone(), "STALE".into())));
    }

    px.ip(&[
        "neigh",
        "replace",
        &CLIENT.to_string(),
        "lladdr",
        "00:1e:f7:00:00:4d",
        "dev",
        "px0",
        "nud",
        "reachable",
    ])
    .expect("confirmed entry");
    assert_eq!(seeder.seed(CLIENT, MAC).expect("seed"), Seeded::Kept);
    assert_eq!(entry(&px, CLIENT).map(|(_, s)| s), Some("REACHABLE".into()));

    let other = "02:00:00:00:00:01";
    px.ip(&[
        "neigh",
        "replace",
        &CLIENT.to_string(),
        "lladdr",
        other,
        "dev",
        "px0",
        "nud",
        "permanent",
    ])
    .expect("static entry");
    assert_eq!(seeder.seed(CLIENT, MAC).expect("seed"), Seeded::Kept);
    assert_eq!(
        entry(&px, CLIENT),
        Some((other.to_owned(), "PERMANENT".into())),
        "a static entry is the operator's"
    );
}
