//! The emulated switch's own SMI wire code, written from the public layouts
//! in `docs/smi-protocol.md` (framing §1, probe and client reply §2, reject
//! §3, types 3/2/5/8 §5, hardening §12) and deliberately independent of the
//! proxy's codec: a peer that decodes with the product's code cannot catch
//! the product's encoding bugs. Pure functions, bytes in, values out.
//!
//! Reading one message: [`Header::parse`] on exactly [`HEADER_LEN`] bytes,
//! [`Header::payload_len`] before reading or allocating anything, then
//! [`decode`] on exactly that many payload bytes.
//!
//! A known header triple (`w0`, `w1`, `w2`) must carry its exact payload
//! length and the constant words of every public sample; the emulator
//! answers a known type that breaks either rule with [`REJECT`]. Any other
//! triple is [`Sent::Other`].

/// Length of the fixed header: four big-endian `u32` words.
pub const HEADER_LEN: usize = 16;
/// Largest payload the emulator reads (doc §12: 4 KiB; the largest
/// legitimate one is 1032 bytes).
pub const PAYLOAD_CAP: usize = 4096;

/// The client's reply to the probe (doc §2), 24 bytes.
pub const CLIENT_REPLY: [u8; 24] = [
    0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0,
];
/// The client's "message not accepted" (doc §3), 20 bytes.
pub const REJECT: [u8; 20] = [0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 1];

/// Payload lengths of the known director messages (doc §12 rule 1).
const PROBE_LEN: usize = 8;
const CONFIG_LEN: usize = 296;
const IMAGE_LEN: usize = 452;
const EXECUTE_LEN: usize = 528;
const RUN_CLI_THREE_LEN: usize = 1032;
const RUN_CLI_ONE_LEN: usize = 360;

/// Width of one type-8 command slot.
const SLOT: usize = 336;

/// The 16-byte header as received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `w0`: sender role (1 director, 2 in SIET's type 5, 4 client).
    pub from: u32,
    /// `w1`: version (1 from directors).
    pub version: u32,
    /// `w2`: message type.
    pub kind: u32,
    /// `w3`: payload length as the sender claims it; never trusted unchecked.
    pub len: u32,
}

/// What the header announces, by its (`w0`, `w1`, `w2`) triple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    Probe,
    ConfigUpgrade,
    ImageUpgrade,
    ExecuteFile,
    RunCli,
}

impl Header {
    /// The four big-endian words.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Self {
        let word =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        Self {
            from: word(0),
            version: word(4),
            kind: word(8),
            len: word(12),
        }
    }

    fn known(&self) -> Option<Known> {
        match (self.from, self.version, self.kind) {
            (1, 1, 4) => Some(Known::Probe),
            (1, 1, 3) => Some(Known::ConfigUpgrade),
            (1, 1, 2) => Some(Known::ImageUpgrade),
            (2, 1, 5) => Some(Known::ExecuteFile),
            (1, 1, 8) => Some(Known::RunCli),
            _ => None,
        }
    }

    /// How many payload bytes to read: checked against [`PAYLOAD_CAP`], and
    /// for a known type against its exact size.
    pub fn payload_len(&self) -> Result<usize, LengthError> {
        let len = usize::try_from(self.len)
            .ok()
            .filter(|&len| len <= PAYLOAD_CAP)
            .ok_or(LengthError::OverCap(self.len))?;
        let fits = match self.known() {
            None => true,
            Some(Known::Probe) => len == PROBE_LEN,
            Some(Known::ConfigUpgrade) => len == CONFIG_LEN,
            Some(Known::ImageUpgrade) => len == IMAGE_LEN,
            Some(Known::ExecuteFile) => len == EXECUTE_LEN,
            Some(Known::RunCli) => len == RUN_CLI_THREE_LEN || len == RUN_CLI_ONE_LEN,
        };
        if fits {
            Ok(len)
        } else {
            Err(LengthError::WrongForType(self.len))
        }
    }
}

/// Why a header's length word is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LengthError {
    /// More than [`PAYLOAD_CAP`]: nothing is read or allocated.
    #[error("payload length {0} is over the cap of {PAYLOAD_CAP}")]
    OverCap(u32),
    /// A known type with a length other than its fixed size.
    #[error("payload length {0} does not fit the message type")]
    WrongForType(u32),
}

/// Why a payload of a known type is refused (with its payload offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The payload is not as long as the header says.
    #[error("payload of {got} bytes, header says {want}")]
    Length {
        /// Bytes given.
        got: usize,
        /// Bytes the header claims.
        want: usize,
    },
    /// A word differs from the value of every public sample.
    #[error("word at payload offset {at:#x} is {got:#x}")]
    Word {
        /// Payload offset.
        at: usize,
        /// The value found.
        got: u32,
    },
    /// A fixed string field without a NUL, with a non-printable byte, or
    /// with data after its NUL.
    #[error("bad string field at payload offset {at:#x}")]
    Text {
        /// Payload offset of the field.
        at: usize,
    },
    /// A type-8 TLV that does not fit, or is not the expected one.
    #[error("bad TLV at payload offset {at:#x}")]
    Tlv {
        /// Payload offset of the TLV header.
        at: usize,
    },
}

/// When a configuration upgrade asks the switch to reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReloadAt {
    /// Hours, 0 to 23.
    pub hours: u32,
    /// Minutes, 0 to 59.
    pub minutes: u32,
}

/// When an image upgrade asks the switch to reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageReload {
    /// Flags 0x821: at once.
    Immediate,
    /// Flags 0x801: at the given time.
    At(ReloadAt),
}

/// What the director sent, as the emulated switch understood it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Type 4: the probe.
    Probe,
    /// Type 3: replace the startup configuration with the file at `url`.
    ConfigUpgrade {
        /// TFTP URL of the configuration.
        url: String,
        /// Reload after applying (`None`: Talos' fetch-only form).
        reload: Option<ReloadAt>,
    },
    /// Type 2: install the image named by the image-list file at `url`.
    ImageUpgrade {
        /// TFTP URL of the image list.
        url: String,
        /// When to reload.
        reload: ImageReload,
    },
    /// Type 5 (`w0` = 2): run the quoted commands of the file at `url`.
    ExecuteFile {
        /// TFTP URL of the command file.
        url: String,
    },
    /// Type 8: run the exec commands of the non-empty slots.
    RunCli {
        /// The MAC field of the identity TLV.
        mac: [u8; 6],
        /// Number of slots of the command block (3, or 1 in the TLV-2 form).
        slots: usize,
        /// The commands of the non-empty slots, in order.
        commands: Vec<String>,
    },
    /// Any other header triple; the switch closes without answering.
    Other {
        /// The header.
        header: Header,
        /// The payload.
        payload: Vec<u8>,
    },
}

/// Decodes the payload of a message whose header passed
/// [`Header::payload_len`].
pub fn decode(header: &Header, payload: &[u8]) -> Result<Sent, Malformed> {
    let want = usize::try_from(header.len).unwrap_or(usize::MAX);
    if payload.len() != want {
        return Err(Malformed::Length {
            got: payload.len(),
            want,
        });
    }
    let p = Payload(payload);
    match header.known() {
        None => Ok(Sent::Other {
            header: *header,
            payload: payload.to_vec(),
        }),
        Some(Known::Probe) => {
            p.expect(0, 1)?;
            p.expect(4, 0)?;
            Ok(Sent::Probe)
        }
        Some(Known::ConfigUpgrade) => config_upgrade(&p),
        Some(Known::ImageUpgrade) => image_upgrade(&p),
        Some(Known::ExecuteFile) => {
            p.expect(0, 1)?;
            p.zeros(0x04, 128)?;
            p.zeros(0x84, 264)?;
            let url = p.text(0x18c, 131)?;
            p.byte_is(0x20f, 1)?;
            Ok(Sent::ExecuteFile { url })
        }
        Some(Known::RunCli) => run_cli(&p),
    }
}

/// Type 3 (doc §5.1); offsets are payload offsets (frame offset − 16).
fn config_upgrade(p: &Payload<'_>) -> Result<Sent, Malformed> {
    p.expect(0x00, 3)?;
    p.expect(0x04, 0)?;
    p.expect(0x08, 0)?;
    p.expect(0x0c, 2)?;
    p.expect(0x10, 0)?;
    let flag = p.word(0x14)?;
    let time = reload_time(p, 0x18)?;
    let reload = match flag {
        1 => Some(time),
        0 if time
            == (ReloadAt {
                hours: 0,
                minutes: 0,
            }) =>
        {
            None
        }
        0 => return Err(Malformed::Word { at: 0x14, got: 0 }),
        got => return Err(Malformed::Word { at: 0x14, got }),
    };
    p.zeros(0x20, 132)?;
    let url = p.text(0xa4, 132)?;
    Ok(Sent::ConfigUpgrade { url, reload })
}

/// Type 2 (doc §5.2).
fn image_upgrade(p: &Payload<'_>) -> Result<Sent, Malformed> {
    p.expect(0x00, 2)?;
    let flags = p.word(0x04)?;
    p.expect(0x08, 0)?;
    p.expect(0x0c, 0)?;
    let reload = match flags {
        0x821 => {
            p.expect(0x10, 1)?;
            p.expect(0x14, 0)?;
            p.expect(0x18, 0)?;
            p.expect(0x1c, 0)?;
            ImageReload::Immediate
        }
        0x801 => {
            p.expect(0x10, 0)?;
            p.expect(0x14, 1)?;
            ImageReload::At(reload_time(p, 0x18)?)
        }
        got => return Err(Malformed::Word { at: 0x04, got }),
    };
    p.expect(0x20, 1)?;
    let url = p.text(0x24, 415)?;
    p.byte_is(0x1c3, 1)?;
    Ok(Sent::ImageUpgrade { url, reload })
}

/// Type 8 (doc §5.5): identity TLV (type 1), then one command block (type
/// 3 with three slots, or type 2 with one); TLV lengths include their
/// 4-byte header; nothing may follow the block.
fn run_cli(p: &Payload<'_>) -> Result<Sent, Malformed> {
    let mut tlvs = Vec::new();
    let mut at = 0usize;
    while at < p.0.len() {
        let kind = p.half(at)?;
        let len = usize::from(p.half(at + 2)?);
        let end = at.checked_add(len).ok_or(Malformed::Tlv { at })?;
        if len < 4 || end > p.0.len() {
            return Err(Malformed::Tlv { at });
        }
        tlvs.push((kind, at, at + 4, end));
        at = end;
    }
    let [
        (1, id_at, id, id_end),
        (block_kind, block_at, block, block_end),
    ] = tlvs[..]
    else {
        return Err(Malformed::Tlv { at: 0 });
    };
    if id_end - id != 16 {
        return Err(Malformed::Tlv { at: id_at });
    }
    p.expect(id, 1)?;
    p.expect(id + 4, 0)?;
    let mac: [u8; 6] = p
        .field(id + 8, 6)?
        .try_into()
        .map_err(|_| Malformed::Tlv { at: id_at })?;
    p.zeros(id + 14, 2)?;
    let slots = match block_kind {
        3 => 3,
        2 => 1,
        _ => return Err(Malformed::Tlv { at: block_at }),
    };
    if block_end - block != slots * SLOT {
        return Err(Malformed::Tlv { at: block_at });
    }
    let mut commands = Vec::new();
    for slot in 0..slots {
        let text = p.text(block + slot * SLOT, SLOT)?;
        if !text.is_empty() {
            commands.push(text);
        }
    }
    if commands.is_empty() {
        return Err(Malformed::Text { at: block });
    }
    Ok(Sent::RunCli {
        mac,
        slots,
        commands,
    })
}

/// Hours and minutes words at `at`, in range.
fn reload_time(p: &Payload<'_>, at: usize) -> Result<ReloadAt, Malformed> {
    let hours = p.word(at)?;
    let minutes = p.word(at + 4)?;
    if hours > 23 {
        return Err(Malformed::Word { at, got: hours });
    }
    if minutes > 59 {
        return Err(Malformed::Word {
            at: at + 4,
            got: minutes,
        });
    }
    Ok(ReloadAt { hours, minutes })
}

/// A payload read with bounds-checked accessors.
struct Payload<'a>(&'a [u8]);

impl Payload<'_> {
    fn field(&self, at: usize, width: usize) -> Result<&[u8], Malformed> {
        at.checked_add(width)
            .and_then(|end| self.0.get(at..end))
            .ok_or(Malformed::Length {
                got: self.0.len(),
                want: at.saturating_add(width),
            })
    }

    fn word(&self, at: usize) -> Result<u32, Malformed> {
        let b = self.field(at, 4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn half(&self, at: usize) -> Result<u16, Malformed> {
        let b = self.field(at, 2).map_err(|_| Malformed::Tlv { at })?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn expect(&self, at: usize, want: u32) -> Result<(), Malformed> {
        match self.word(at)? {
            got if got == want => Ok(()),
            got => Err(Malformed::Word { at, got }),
        }
    }

    fn byte_is(&self, at: usize, want: u8) -> Result<(), Malformed> {
        match self.field(at, 1)? {
            [got] if *got == want => Ok(()),
            [got, ..] => Err(Malformed::Word {
                at,
                got: u32::from(*got),
            }),
            [] => Err(Malformed::Word { at, got: 0 }),
        }
    }

    fn zeros(&self, at: usize, width: usize) -> Result<(), Malformed> {
        if self.field(at, width)?.iter().all(|&b| b == 0) {
            Ok(())
        } else {
            Err(Malformed::Text { at })
        }
    }

    /// A NUL-padded ASCII field (doc §12 rule 3): a NUL inside it,
    /// printable ASCII before it, only NULs after it.
    fn text(&self, at: usize, width: usize) -> Result<String, Malformed> {
        let field = self.field(at, width)?;
        let bad = Malformed::Text { at };
        let nul = field.iter().position(|&b| b == 0).ok_or(bad)?;
        let (text, rest) = field.split_at(nul);
        if !text.iter().all(|&b| (0x20..=0x7e).contains(&b)) || rest.iter().any(|&b| b != 0) {
            return Err(bad);
        }
        String::from_utf8(text.to_vec()).map_err(|_| bad)
    }
}

#[cfg(test)]
mod tests {
    //! Every fixture is text copied from `docs/smi-protocol.md`, so the
    //! emulator is anchored to the document, not to the proxy's codec.
    use super::*;

    /// Bytes of a `hexdump -C` listing: a `*` line repeats the previous
    /// line up to the next offset; the last line is the total length.
    fn from_hexdump(dump: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut last: Vec<u8> = Vec::new();
        let mut repeat = false;
        for line in dump.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if line == "*" {
                repeat = true;
                continue;
            }
            let (offset, rest) = line.split_once(' ').unwrap_or((line, ""));
            let offset = usize::from_str_radix(offset, 16).expect("offset");
            if repeat {
                while out.len() < offset {
                    out.extend_from_slice(&last);
                }
                repeat = false;
            }
            assert_eq!(out.len(), offset, "offset of {line:?}");
            let hex = rest.split('|').next().unwrap_or("");
            last = hex
                .split_whitespace()
                .map(|b| u8::from_str_radix(b, 16).expect("byte"))
                .collect();
            out.extend_from_slice(&last);
        }
        out
    }

    /// Bytes of the doc's word notation: groups of hex digits, any spacing.
    fn from_words(text: &str) -> Vec<u8> {
        let digits: String = text.split_whitespace().collect();
        hex::decode(digits).expect("hex")
    }

    /// Header, length checks and payload decode of a whole frame.
    fn decode_frame(frame: &[u8]) -> Result<Sent, String> {
        let head: &[u8; HEADER_LEN] = frame[..HEADER_LEN].try_into().expect("header");
        let header = Header::parse(head);
        let len = header.payload_len().map_err(|e| e.to_string())?;
        assert_eq!(frame.len() - HEADER_LEN, len, "total - 16 == w3");
        decode(&header, &frame[HEADER_LEN..]).map_err(|e| e.to_string())
    }

    const TYPE3: &str = "
00000000  00 00 00 01 00 00 00 01  00 00 00 03 00 00 01 28  |...............(|
00000010  00 00 00 03 00 00 00 00  00 00 00 00 00 00 00 02  |................|
00000020  00 00 00 00 00 00 00 01  00 00 00 00 00 00 00 01  |................|
00000030  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
*
000000b0  00 00 00 00 74 66 74 70  3a 2f 2f 31 39 32 2e 30  |....tftp://192.0|
000000c0  2e 32 2e 31 2f 78 2e 63  66 67 00 00 00 00 00 00  |.2.1/x.cfg......|
000000d0  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
*
00000130  00 00 00 00 00 00 00 00                           |........|
00000138
";

    const TYPE2: &str = "
00000000  00 00 00 01 00 00 00 01  00 00 00 02 00 00 01 c4  |................|
00000010  00 00 00 02 00 00 08 21  00 00 00 00 00 00 00 00  |.......!........|
00000020  00 00 00 01 00 00 00 00  00 00 00 00 00 00 00 00  |................|
00000030  00 00 00 01 74 66 74 70  3a 2f 2f 31 39 32 2e 30  |....tftp://192.0|
00000040  2e 32 2e 31 2f 69 6d 61  67 65 6c 69 73 74 2e 74  |.2.1/imagelist.t|
00000050  78 74 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |xt..............|
00000060  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
*
000001d0  00 00 00 01                                       |....|
000001d4
";

    const TYPE5: &str = "
00000000  00 00 00 02 00 00 00 01  00 00 00 05 00 00 02 10  |................|
00000010  00 00 00 01 00 00 00 00  00 00 00 00 00 00 00 00  |................|
00000020  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
*
00000190  00 00 00 00 00 00 00 00  00 00 00 00 74 66 74 70  |............tftp|
000001a0  3a 2f 2f 31 39 32 2e 30  2e 32 2e 31 2f 78 2e 74  |://192.0.2.1/x.t|
000001b0  78 74 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |xt..............|
000001c0  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
*
00000210  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 01  |................|
00000220
";

    const TYPE8: &str = "
00000000  00 00 00 01 00 00 00 01  00 00 00 08 00 00 04 08  |................|
00000010  00 01 00 14 00 00 00 01  00 00 00 00 fc 99 47 37  |..............G7|
00000020  86 60 00 00 00 03 03 f4  63 6f 70 79 20 73 79 73  |.`......copy sys|
00000030  74 65 6d 3a 72 75 6e 6e  69 6e 67 2d 63 6f 6e 66  |tem:running-conf|
00000040  69 67 20 74 66 74 70 3a  2f 2f 31 39 32 2e 30 2e  |ig tftp://192.0.|
00000050  32 2e 31 2f 78 2e 63 66  67 00 00 00 00 00 00 00  |2.1/x.cfg.......|
00000060  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
*
00000410  00 00 00 00 00 00 00 00                           |........|
00000418
";

    #[test]
    fn probe_reply_and_reject_are_the_documented_bytes() {
        let probe = from_words("00000001 00000001 00000004 00000008  00000001 00000000");
        assert_eq!(decode_frame(&probe), Ok(Sent::Probe));
        assert_eq!(
            CLIENT_REPLY.to_vec(),
            from_words("00000004 00000000 00000003 00000008  00000001 00000000")
        );
        assert_eq!(
            REJECT.to_vec(),
            from_words("00000004 00000000 00000004 00000004  00000001")
        );
    }

    #[test]
    fn greenbone_probe_is_a_wrong_length_for_type_3() {
        let probe = from_words("00000001 00000001 00000003 00000001  00");
        let header = Header::parse(probe[..16].try_into().unwrap());
        assert_eq!(header.payload_len(), Err(LengthError::WrongForType(1)));
    }

    #[test]
    fn type_3_both_forms() {
        let frame = from_hexdump(TYPE3);
        assert_eq!(frame.len(), 312);
        assert_eq!(
            decode_frame(&frame),
            Ok(Sent::ConfigUpgrade {
                url: "tftp://192.0.2.1/x.cfg".into(),
                reload: Some(ReloadAt {
                    hours: 0,
                    minutes: 1
                }),
            })
        );
        // Talos' form: 0x27 and 0x2f become 00.
        let mut talos = frame.clone();
        talos[0x27] = 0;
        talos[0x2f] = 0;
        assert_eq!(
            decode_frame(&talos),
            Ok(Sent::ConfigUpgrade {
                url: "tftp://192.0.2.1/x.cfg".into(),
                reload: None,
            })
        );
        // A changed constant word is refused.
        let mut odd = frame.clone();
        odd[0x1f] = 3;
        assert!(decode_frame(&odd).is_err());
    }

    #[test]
    fn type_2_both_forms() {
        let frame = from_hexdump(TYPE2);
        assert_eq!(frame.len(), 468);
        assert_eq!(
            decode_frame(&frame),
            Ok(Sent::ImageUpgrade {
                url: "tftp://192.0.2.1/imagelist.txt".into(),
                reload: ImageReload::Immediate,
            })
        );
        let mut timed = frame.clone();
        timed[0x14..0x30].copy_from_slice(&from_words(
            "00 00 08 01  00 00 00 00  00 00 00 00  00 00 00 00  00 00 00 01  00 00 00 01  00 00 00 1e",
        ));
        assert_eq!(
            decode_frame(&timed),
            Ok(Sent::ImageUpgrade {
                url: "tftp://192.0.2.1/imagelist.txt".into(),
                reload: ImageReload::At(ReloadAt {
                    hours: 1,
                    minutes: 30
                }),
            })
        );
        let mut no_trailer = frame;
        no_trailer[0x1d3] = 0;
        assert!(decode_frame(&no_trailer).is_err());
    }

    #[test]
    fn type_5_needs_w0_2() {
        let frame = from_hexdump(TYPE5);
        assert_eq!(frame.len(), 544);
        assert_eq!(
            decode_frame(&frame),
            Ok(Sent::ExecuteFile {
                url: "tftp://192.0.2.1/x.txt".into()
            })
        );
        let mut from_director = frame;
        from_director[3] = 1;
        assert!(matches!(
            decode_frame(&from_director),
            Ok(Sent::Other { .. })
        ));
    }

    #[test]
    fn type_8_three_slots_and_one_slot() {
        let frame = from_hexdump(TYPE8);
        assert_eq!(frame.len(), 1048);
        assert_eq!(
            decode_frame(&frame),
            Ok(Sent::RunCli {
                mac: [0xfc, 0x99, 0x47, 0x37, 0x86, 0x60],
                slots: 3,
                commands: vec!["copy system:running-config tftp://192.0.2.1/x.cfg".into()],
            })
        );
        // Papathanasiou's one-slot form.
        let mut one = from_words(
            "00000001 00000001 00000008 00000168  0001 0014 00000001 00000000 0021d863a560 0000  0002 0154",
        );
        let mut slot = b"configure tftp-server nvram:startup-config".to_vec();
        slot.resize(SLOT, 0);
        one.extend_from_slice(&slot);
        assert_eq!(one.len(), 376);
        assert_eq!(
            decode_frame(&one),
            Ok(Sent::RunCli {
                mac: [0x00, 0x21, 0xd8, 0x63, 0xa5, 0x60],
                slots: 1,
                commands: vec!["configure tftp-server nvram:startup-config".into()],
            })
        );
        // A TLV length that overruns the payload is refused.
        let mut overrun = frame;
        overrun[0x26..0x28].copy_from_slice(&[0x03, 0xf8]);
        assert!(decode_frame(&overrun).is_err());
    }

    #[test]
    fn lengths_and_strings_are_never_trusted() {
        let over = Header::parse(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 0x7f, 0xff, 0xff, 0xff]);
        assert_eq!(over.payload_len(), Err(LengthError::OverCap(0x7fff_ffff)));
        let other = Header::parse(&[0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 8]);
        assert_eq!(other.payload_len(), Ok(8));
        assert!(matches!(decode(&other, &[0; 8]), Ok(Sent::Other { .. })));
        assert!(decode(&other, &[0; 7]).is_err(), "short payload");

        let frame = from_hexdump(TYPE3);
        let mut no_nul = frame.clone();
        no_nul[0xc4..0x138].fill(b'a');
        assert!(decode_frame(&no_nul).is_err(), "URL field without NUL");
        let mut after_nul = frame.clone();
        after_nul[0xd0] = b'x';
        assert!(decode_frame(&after_nul).is_err(), "data after the NUL");
        let mut control = frame;
        control[0xc0] = b'\n';
        assert!(decode_frame(&control).is_err(), "control character");
    }
}
