//! Builders of raw Ethernet frames (DHCP and TCP, with 802.1Q/QinQ tags and
//! IPv4 options) for `test_run`, AF_PACKET injection and the benchmarks.

/// TPID of an 802.1Q tag.
pub const TPID_8021Q: u16 = 0x8100;
/// TPID of an 802.1ad (QinQ service) tag.
pub const TPID_8021AD: u16 = 0x88a8;

/// DHCP message types (option 53).
pub mod msg {
    /// DHCPDISCOVER.
    pub const DISCOVER: u8 = 1;
    /// DHCPOFFER.
    pub const OFFER: u8 = 2;
    /// DHCPREQUEST.
    pub const REQUEST: u8 = 3;
    /// DHCPACK.
    pub const ACK: u8 = 5;
}

/// The option-55 list a Catalyst switch sends at first boot.
pub const CISCO_PARAM_REQUEST: [u8; 12] = [1, 66, 6, 15, 44, 3, 67, 12, 33, 150, 43, 125];

/// Ethernet header (and tags) of a frame.
#[derive(Clone, Debug)]
pub struct L2 {
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC.
    pub src: [u8; 6],
    /// VLAN tags, outermost first: (TPID, VLAN id).
    pub tags: Vec<(u16, u16)>,
}

impl L2 {
    /// Untagged broadcast from `src`.
    pub fn broadcast(src: [u8; 6]) -> Self {
        Self {
            dst: [0xff; 6],
            src,
            tags: Vec::new(),
        }
    }

    /// Adds an 802.1Q tag (inside any existing tags).
    pub fn tagged(mut self, vlan: u16) -> Self {
        self.tags.push((TPID_8021Q, vlan));
        self
    }

    /// Adds an outer 802.1ad tag and an inner 802.1Q tag.
    pub fn qinq(mut self, svlan: u16, cvlan: u16) -> Self {
        self.tags.push((TPID_8021AD, svlan));
        self.tags.push((TPID_8021Q, cvlan));
        self
    }

    fn write(&self, out: &mut Vec<u8>, ethertype: u16) {
        out.extend_from_slice(&self.dst);
        out.extend_from_slice(&self.src);
        for (tpid, vid) in &self.tags {
            out.extend_from_slice(&tpid.to_be_bytes());
            out.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
        }
        out.extend_from_slice(&ethertype.to_be_bytes());
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Header options padded with `fill` (IPv4 END 0, TCP NOP 1) to a
/// multiple of four bytes, as a header length in words needs.
fn padded_to_words(options: &[u8], fill: u8) -> Vec<u8> {
    let mut padded = options.to_vec();
    padded.resize(options.len().next_multiple_of(4), fill);
    padded
}

/// An IPv4 packet inside `l2`, with `ip_options` (padded to 4 bytes).
pub fn ipv4(
    l2: &L2,
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    ip_options: &[u8],
    l4: &[u8],
) -> Vec<u8> {
    let opts = padded_to_words(ip_options, 0);
    let ihl = 20 + opts.len();
    let total = (ihl + l4.len()) as u16;
    let mut ip = Vec::with_capacity(ihl);
    ip.push(0x40 | (ihl / 4) as u8);
    ip.push(0);
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    ip.extend_from_slice(&opts);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut out = Vec::new();
    l2.write(&mut out, 0x0800);
    out.extend_from_slice(&ip);
    out.extend_from_slice(l4);
    out
}

/// A UDP datagram (checksum 0, allowed for IPv4).
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// A TCP segment with the given flags (0x02 SYN, 0x18 PSH|ACK).
pub fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    tcp_with_options(sport, dport, flags, &[], payload)
}

/// A TCP segment whose header carries `options` (padded with NOPs to a
/// multiple of four bytes).
pub fn tcp_with_options(
    sport: u16,
    dport: u16,
    flags: u8,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let opts = padded_to_words(options, 1);
    let words = u8::try_from(5 + opts.len() / 4).expect("TCP options fit the header");
    let mut t = Vec::with_capacity(20 + opts.len() + payload.len());
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&1u32.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    t.push(words << 4);
    t.push(flags);
    t.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(&opts);
    t.extend_from_slice(payload);
    t
}

/// A BOOTP/DHCP message.
#[derive(Clone, Debug)]
pub struct Dhcp {
    /// 1 request, 2 reply.
    pub op: u8,
    /// Transaction id.
    pub xid: u32,
    /// Flags (0x8000 = broadcast).
    pub flags: u16,
    /// Client address from the server (`yiaddr`).
    pub yiaddr: [u8; 4],
    /// Client hardware address.
    pub chaddr: [u8; 6],
    /// Options in order, without the END option (added by `encode`).
    pub options: Vec<(u8, Vec<u8>)>,
    /// Raw bytes appended after the options instead of END (for malformed tests).
    pub raw_tail: Option<Vec<u8>>,
}

impl Dhcp {
    /// A client message of `msg_type` the way a Catalyst switch sends it:
    /// option 61 `cisco-<mac>-Vl1`, the switch's option-55 list.
    pub fn cisco_client(chaddr: [u8; 6], xid: u32, msg_type: u8) -> Self {
        let mut cid = vec![0u8];
        cid.extend_from_slice(cisco_client_id(&chaddr).as_bytes());
        Self {
            op: 1,
            xid,
            flags: 0x8000,
            yiaddr: [0; 4],
            chaddr,
            options: vec![
                (53, vec![msg_type]),
                (57, 1152u16.to_be_bytes().to_vec()),
                (61, cid),
                (12, b"Switch".to_vec()),
                (55, CISCO_PARAM_REQUEST.to_vec()),
                (60, b"cisco".to_vec()),
            ],
            raw_tail: None,
        }
    }

    /// A server reply of `msg_type` giving `yiaddr` to `chaddr`.
    pub fn server_reply(
        chaddr: [u8; 6],
        xid: u32,
        msg_type: u8,
        yiaddr: [u8; 4],
        server: [u8; 4],
    ) -> Self {
        Self {
            op: 2,
            xid,
            flags: 0x8000,
            yiaddr,
            chaddr,
            options: vec![
                (53, vec![msg_type]),
                (54, server.to_vec()),
                (51, 3600u32.to_be_bytes().to_vec()),
                (1, vec![255, 255, 255, 0]),
            ],
            raw_tail: None,
        }
    }

    /// The BOOTP payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; 236];
        b[0] = self.op;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&self.xid.to_be_bytes());
        b[10..12].copy_from_slice(&self.flags.to_be_bytes());
        b[16..20].copy_from_slice(&self.yiaddr);
        b[28..34].copy_from_slice(&self.chaddr);
        b.extend_from_slice(&[0x63, 0x82, 0x53, 0x63]);
        for (code, value) in &self.options {
            b.push(*code);
            b.push(value.len() as u8);
            b.extend_from_slice(value);
        }
        match &self.raw_tail {
            Some(tail) => b.extend_from_slice(tail),
            None => b.push(255),
        }
        b
    }

    /// The whole frame: client messages go 0.0.0.0:68 -> 255.255.255.255:67,
    /// replies `server`:67 -> 255.255.255.255:68.
    pub fn frame(&self, l2: &L2, server: [u8; 4]) -> Vec<u8> {
        self.frame_with_ip_options(l2, server, &[])
    }

    /// As [`Dhcp::frame`], with IPv4 options.
    pub fn frame_with_ip_options(&self, l2: &L2, server: [u8; 4], ip_options: &[u8]) -> Vec<u8> {
        let (src, sport, dport) = if self.op == 1 {
            ([0; 4], 68, 67)
        } else {
            (server, 67, 68)
        };
        ipv4(
            l2,
            src,
            [255; 4],
            17,
            ip_options,
            &udp(sport, dport, &self.encode()),
        )
    }
}

/// `cisco-<dotted mac>-Vl1`, as a Catalyst puts in option 61.
pub fn cisco_client_id(mac: &[u8; 6]) -> String {
    format!(
        "cisco-{:02x}{:02x}.{:02x}{:02x}.{:02x}{:02x}-Vl1",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    )
}

/// The 16-byte SMI header: w0 w1 type length.
pub fn smi_header(w0: u32, w1: u32, msg_type: u32, len: u32) -> Vec<u8> {
    [w0, w1, msg_type, len]
        .iter()
        .flat_map(|w| w.to_be_bytes())
        .collect()
}
