//! Types shared by the XDP classifier (`proxy-ebpf`) and the daemon (`proxy`).
//!
//! Every map key and value is `#[repr(C)]` with explicit, zeroed padding:
//! the kernel hashes every key byte, and `aya::Pod` on a type with implicit
//! padding would be unsound. Sizes are pinned by `const` assertions.
//! No `bool`, `Option` or enum appears in a map value; states and kinds are
//! plain integers with named constants.
#![no_std]

use core::mem::size_of;

/// Default capacity of the client map (sized for 10,000 clients with headroom).
pub const CLIENTS_MAX: u32 = 16_384;
/// Ring buffer size for events to user space, in bytes (a power of two).
pub const EVENTS_BYTES: u32 = 256 * 1024;
/// TCP port of Smart Install.
pub const SMI_PORT: u16 = 4786;
/// The proxy's reverse-telnet port (clients connect to it after the
/// tailored configuration).
pub const TELNET_PORT: u16 = 19140;
/// TFTP's well-known port (clients fetch staged files from the proxy).
pub const TFTP_PORT: u16 = 69;
/// Default cap on the SMI header's length word (w3), in bytes.
pub const SMI_LEN_CAP_DEFAULT: u32 = 4096;
/// Bytes of DHCP option 61 (client identifier) and 60 (vendor class) carried in events.
pub const OPT_BYTES: usize = 32;
/// Number of `u64` words in the startup-VLAN bitmap (4096 VLAN ids).
pub const VLAN_WORDS: usize = 64;

/// Map names, as declared in the eBPF object.
pub mod maps {
    /// Client MAC -> [`crate::ClientEntry`] (LRU hash, pinned).
    pub const CLIENTS: &str = "CLIENTS";
    /// One [`crate::Policy`] at index 0: the classifier's global variable
    /// in the data section of this name, which aya loads as an array.
    pub const POLICY: &str = ".data.policy";
    /// Per-CPU counters indexed by [`crate::counter`] (per-CPU array).
    pub const COUNTERS: &str = "COUNTERS";
    /// [`crate::Event`]s to user space (ring buffer).
    pub const EVENTS: &str = "EVENTS";
    /// Client MAC -> admission state (LRU hash, pinned), written only by
    /// the daemon; it overrides `ClientEntry::state`.
    pub const ADMISSION: &str = "ADMISSION";
    /// Ports (ifindex -> 1) trusted for DHCP servers (hash).
    pub const DHCP_TRUSTED: &str = "DHCP_TRUSTED";
    /// The admission epoch, one `u64` at index 0 (array, pinned): the
    /// daemon adds one after each write to `ADMISSION`, which tells XDP
    /// that the admission states it cached in `CLIENTS` may be stale.
    pub const ADMISSION_EPOCH: &str = "ADMISSION_EPOCH";
}

/// Name of the XDP program in the eBPF object.
pub const XDP_PROGRAM: &str = "smi_classifier";
/// Benchmark reference programs in the same object: an empty `XDP_PASS`
/// program, one that does a single hash lookup + update, and the floor of
/// an admitted SMI segment (the parse to the port, the lookup and the
/// per-client counters, without the classifier's checks).
pub const REFERENCE_PROGRAMS: [&str; 3] = ["ref_pass", "ref_lookup_update", "ref_smi_floor"];

/// Key of the client map: the client's MAC address. Aligned to 8 bytes,
/// so that the classifier can store one in a single aligned word (the
/// verifier refuses misaligned stack accesses).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// Client MAC (the BOOTP `chaddr`, or the Ethernet source for SMI frames).
    pub mac: [u8; 6],
    /// Explicit padding, always zero.
    pub _pad: [u8; 2],
}

impl ClientKey {
    /// The key for `mac`, padding zeroed.
    pub const fn new(mac: [u8; 6]) -> Self {
        Self { mac, _pad: [0; 2] }
    }
}

/// Lifecycle states of a client, as stored in [`ClientEntry::state`].
///
/// XDP writes `NEW` and `DISCOVERED`; the daemon writes the others.
pub mod state {
    /// First DHCP packet seen from this MAC on a startup VLAN.
    pub const NEW: u8 = 1;
    /// A DHCP ACK gave the client an address.
    pub const DISCOVERED: u8 = 2;
    /// The client answered the SMI probe: its SMI traffic is admitted.
    pub const ADMITTED: u8 = 3;
    /// An image or configuration upgrade is in progress.
    pub const UPGRADING: u8 = 4;
    /// Onboarding finished.
    pub const DONE: u8 = 5;
    /// The operator or the daemon blocked this client: all SMI is dropped.
    pub const BLOCKED: u8 = 6;
    /// The client is not SMI-capable (probe failed); SMI to the director is dropped.
    pub const NOT_SMI: u8 = 7;

    /// Whether a client in state `s` may send SMI to the director (TCP to 4786).
    pub const fn admits_smi(s: u8) -> bool {
        matches!(s, ADMITTED | UPGRADING | DONE)
    }

    /// Whether replies *from* the client's 4786 (to the director's probe or
    /// command connections) pass: every learned state but `BLOCKED`.
    pub const fn admits_smi_reply(s: u8) -> bool {
        matches!(s, DISCOVERED | ADMITTED | UPGRADING | DONE | NOT_SMI)
    }
}

/// The admission cache of a [`ClientEntry`]: the admission state in bits
/// 0..8 (0: the daemon set none) and, above them, the admission epoch
/// (`ADMISSION_EPOCH`) at which XDP read it. The cache is good while the
/// epoch is unchanged; one 8-byte word, so two CPUs refreshing it at once
/// can only leave one consistent pair, never a state with a newer epoch.
pub mod admission_cache {
    /// The cache word for `state` read at `epoch`.
    pub const fn pack(epoch: u64, state: u8) -> u64 {
        (epoch << 8) | state as u64
    }

    /// The cached state if `cache` was read at `epoch`, else `None`.
    pub const fn state_at(cache: u64, epoch: u64) -> Option<u8> {
        if cache >> 8 == epoch & (u64::MAX >> 8) {
            Some(cache as u8)
        } else {
            None
        }
    }
}

/// Value of the client map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientEntry {
    /// `CLOCK_MONOTONIC` ns (at tick resolution from XDP) when the entry was created.
    pub first_seen_ns: u64,
    /// `CLOCK_MONOTONIC` ns (at tick resolution) of the latest DHCP or SMI
    /// frame from the client.
    pub last_seen_ns: u64,
    /// DHCP frames from or to this client.
    pub dhcp_pkts: u64,
    /// Bytes of those frames.
    pub dhcp_bytes: u64,
    /// SMI frames (TCP 4786) from this client that passed.
    pub smi_pkts: u64,
    /// Bytes of those frames.
    pub smi_bytes: u64,
    /// SMI frames from this client dropped by policy.
    pub smi_dropped: u64,
    /// XDP's cache of the daemon's admission state (`ADMISSION`), so that a
    /// steady-state SMI frame costs one hash lookup: see [`admission_cache`].
    /// Written only by XDP, in one 8-byte store; zero when created.
    pub admission_cache: u64,
    /// IPv4 address from the latest DHCP ACK, network byte order (0 = none).
    pub ipv4: [u8; 4],
    /// Transaction id of the latest DHCP message.
    pub xid: u32,
    /// VLAN id the client was seen on (innermost tag, or the untagged VLAN).
    pub vlan: u16,
    /// Outer (service) VLAN id of a QinQ frame, 0 otherwise.
    pub svlan: u16,
    /// One of [`state`].
    pub state: u8,
    /// DHCP message type (option 53) of the latest DHCP frame.
    pub dhcp_msg: u8,
    /// Explicit padding, always zero.
    pub _pad: [u8; 2],
}

/// Policy written by the daemon, read by XDP for every classified frame.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Non-zero: drop SMI that is not admitted. Zero: observe and count only.
    pub enforce: u32,
    /// SMI frames whose header length word exceeds this are dropped (0: no cap).
    pub smi_len_cap: u32,
    /// VLAN id assumed for untagged frames (the access VLAN of the port).
    pub untagged_vlan: u16,
    /// Non-zero: a DHCP OFFER is believed (reported as a server seen) only
    /// on a port in `DHCP_TRUSTED`, as `ip dhcp snooping trust`; zero:
    /// every port is trusted.
    pub dhcp_trusted_only: u8,
    /// Non-zero: the classifier logs its rare events (an SMI drop with its
    /// reason, a malformed DHCP frame) through aya-log; the daemon sets it
    /// while `debug vstack smi-proxy` (or `all`) is on. Zero: no log code
    /// runs at all.
    pub log_events: u8,
    /// Explicit padding, always zero.
    pub _pad: [u8; 4],
    /// Bitmap of startup VLANs: bit `v % 64` of word `v / 64`.
    pub startup_vlans: [u64; VLAN_WORDS],
}

impl Default for Policy {
    fn default() -> Self {
        let mut p = Self {
            enforce: 1,
            smi_len_cap: SMI_LEN_CAP_DEFAULT,
            untagged_vlan: 1,
            dhcp_trusted_only: 0,
            log_events: 0,
            _pad: [0; 4],
            startup_vlans: [0; VLAN_WORDS],
        };
        p.set_startup_vlan(1, true);
        p
    }
}

impl Policy {
    /// Where `vlan` is in [`Policy::startup_vlans`]: the word's index and
    /// the bit within it (ids past 4095 wrap, never index out of bounds).
    pub const fn startup_vlan_bit(vlan: u16) -> (usize, u64) {
        ((vlan as usize >> 6) & (VLAN_WORDS - 1), 1u64 << (vlan & 63))
    }

    /// Whether `vlan` is a startup VLAN.
    pub const fn is_startup_vlan(&self, vlan: u16) -> bool {
        let (w, bit) = Self::startup_vlan_bit(vlan);
        self.startup_vlans[w] & bit != 0
    }

    /// Adds or removes `vlan` (0..4095) from the startup set.
    pub fn set_startup_vlan(&mut self, vlan: u16, on: bool) {
        let (w, bit) = Self::startup_vlan_bit(vlan);
        if on {
            self.startup_vlans[w] |= bit;
        } else {
            self.startup_vlans[w] &= !bit;
        }
    }
}

/// Kinds of [`Event`].
pub mod event {
    /// First DHCP frame from an unknown MAC on a startup VLAN.
    pub const NEW_CLIENT: u32 = 1;
    /// A DHCP ACK gave a known client a new address.
    pub const ADDRESS_LEARNED: u32 = 2;
    /// SMI from this client was dropped (first drop per client per state).
    pub const SMI_DROPPED: u32 = 3;
    /// A DHCP OFFER from a server (server MAC in `mac`, server IP in `ipv4`).
    pub const DHCP_SERVER_SEEN: u32 = 4;
    /// A DHCPDISCOVER from a client in state `UPGRADING`: it reloaded. XDP
    /// moves it back to `DISCOVERED` (its SMI is admitted again only after
    /// the director probes it).
    pub const CLIENT_RESTARTED: u32 = 5;
}

/// Why an SMI frame was dropped, in [`Event::reason`].
pub mod drop_reason {
    /// The client MAC is unknown or not admitted.
    pub const NOT_ADMITTED: u8 = 1;
    /// The frame came on a VLAN that is not a startup VLAN.
    pub const WRONG_VLAN: u8 = 2;
    /// The SMI header's length word exceeds the cap.
    pub const OVERSIZE: u8 = 3;
}

/// A record in the event ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// `CLOCK_MONOTONIC` ns (at tick resolution) at the event.
    pub ts_ns: u64,
    /// One of [`event`].
    pub kind: u32,
    /// DHCP transaction id, or the SMI length word for an oversize drop.
    pub xid: u32,
    /// Client MAC (server MAC for `DHCP_SERVER_SEEN`).
    pub mac: [u8; 6],
    /// VLAN id (innermost tag or the untagged VLAN).
    pub vlan: u16,
    /// Outer VLAN id of a QinQ frame, 0 otherwise.
    pub svlan: u16,
    /// DHCP message type (option 53), 0 if none.
    pub dhcp_msg: u8,
    /// One of [`drop_reason`] for `SMI_DROPPED`, else 0.
    pub reason: u8,
    /// Address: ACK's yiaddr, option 50, or the frame's IPv4 source.
    pub ipv4: [u8; 4],
    /// Valid bytes in `client_id`.
    pub client_id_len: u8,
    /// Valid bytes in `vendor_class`.
    pub vendor_class_len: u8,
    /// Explicit padding, always zero.
    pub _pad: [u8; 6],
    /// DHCP option 61, first [`OPT_BYTES`] bytes.
    pub client_id: [u8; OPT_BYTES],
    /// DHCP option 60, first [`OPT_BYTES`] bytes.
    pub vendor_class: [u8; OPT_BYTES],
}

/// Most ports trusted for DHCP servers (entries of `DHCP_TRUSTED`).
pub const DHCP_TRUSTED_MAX: u32 = 64;

/// Indexes of the per-CPU counter array: one per (class, verdict) and per
/// reason. Frames that are not the classifier's (neither DHCP, SMI, nor a
/// TFTP request or reverse telnet to the director) pass uncounted, with no
/// per-frame work: the interface's own counters have them.
pub mod counter {
    /// DHCP client-to-server frames, passed.
    pub const DHCP_REQUEST_PASS: u32 = 0;
    /// DHCP server-to-client frames, passed.
    pub const DHCP_REPLY_PASS: u32 = 1;
    /// SMI frames passed.
    pub const SMI_PASS: u32 = 2;
    /// SMI dropped: client not admitted.
    pub const SMI_DROP_NOT_ADMITTED: u32 = 3;
    /// SMI dropped: not a startup VLAN.
    pub const SMI_DROP_WRONG_VLAN: u32 = 4;
    /// SMI dropped: length word over the cap.
    pub const SMI_DROP_OVERSIZE: u32 = 5;
    /// SMI that policy would drop, passed because enforcement is off.
    pub const SMI_WOULD_DROP: u32 = 6;
    /// Frames cut short inside a header we parse, passed.
    pub const TRUNCATED_PASS: u32 = 7;
    /// DHCP frames whose options ran past the frame or the walk bound, passed.
    pub const DHCP_MALFORMED_PASS: u32 = 8;
    /// New clients created in the map.
    pub const NEW_CLIENT: u32 = 9;
    /// Addresses learned from ACKs.
    pub const ADDRESS_LEARNED: u32 = 10;
    /// Events lost because the ring buffer was full.
    pub const EVENT_LOST: u32 = 11;
    /// Client-map inserts that failed.
    pub const MAP_INSERT_FAILED: u32 = 12;
    /// DHCP from unknown clients on a VLAN that is not a startup VLAN (ignored).
    pub const DHCP_OTHER_VLAN: u32 = 13;
    /// DHCP OFFERs on a port not trusted for DHCP servers: counted, not believed.
    pub const DHCP_OFFER_UNTRUSTED: u32 = 14;
    /// Server-seen events not sent: one per CPU per 100 ms at most.
    pub const SERVER_EVENT_LIMITED: u32 = 15;
    /// TFTP requests (UDP to port 69) from a client the daemon has not
    /// admitted, dropped (counted only when enforcement is off).
    pub const TFTP_DROP_NOT_ADMITTED: u32 = 16;
    /// Reverse-telnet segments (TCP to port 19140) from a client the
    /// daemon has not admitted, dropped (counted only when enforcement is off).
    pub const TELNET_DROP_NOT_ADMITTED: u32 = 17;
    /// Number of counters.
    pub const COUNT: u32 = 18;

    /// Names of the counters, in index order, for metrics and the CLI.
    pub const NAMES: [&str; COUNT as usize] = [
        "dhcp_request_pass",
        "dhcp_reply_pass",
        "smi_pass",
        "smi_drop_not_admitted",
        "smi_drop_wrong_vlan",
        "smi_drop_oversize",
        "smi_would_drop",
        "truncated_pass",
        "dhcp_malformed_pass",
        "new_client",
        "address_learned",
        "event_lost",
        "map_insert_failed",
        "dhcp_other_vlan",
        "dhcp_offer_untrusted",
        "server_event_limited",
        "tftp_drop_not_admitted",
        "telnet_drop_not_admitted",
    ];
}

const _: () = assert!(size_of::<ClientKey>() == 8 && core::mem::align_of::<ClientKey>() == 8);
const _: () = assert!(size_of::<ClientEntry>() == 80);
const _: () = assert!(size_of::<Policy>() == 16 + 8 * VLAN_WORDS);
const _: () = assert!(size_of::<Event>() == 40 + 2 * OPT_BYTES);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all four are `#[repr(C)]`, made only of integers and integer
    // arrays, with every padding byte an explicit field (sizes asserted above).
    unsafe impl aya::Pod for super::ClientKey {}
    unsafe impl aya::Pod for super::ClientEntry {}
    unsafe impl aya::Pod for super::Policy {}
    unsafe impl aya::Pod for super::Event {}
}
