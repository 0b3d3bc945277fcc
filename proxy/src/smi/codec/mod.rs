//! Smart Install (SMI) wire codec: bytes in, values out, no I/O.
//!
//! Every message is a 16-byte [`Header`] of four big-endian `u32` words
//! (`w0` sender role, `w1` version, `w2` message type, `w3` payload length)
//! followed by `w3` payload bytes. Layouts and byte-exact examples are in
//! `docs/smi-protocol.md` (sections 1–5 and the hardening rules of section 12).
//!
//! Reading a message from a socket:
//! 1. read exactly [`HEADER_LEN`] bytes and call [`Header::decode`];
//! 2. call [`payload_len`] *before* reading or allocating the payload;
//! 3. read exactly that many bytes and call [`decode_parts`].
//!
//! [`decode()`] does the same for a frame already in memory.
//!
//! The header triple (`w0`, `w1`, `w2`) decides what a frame holds. A known
//! triple must carry its exact payload length and the constant words every
//! public sample carries; any other triple becomes [`Message::Unknown`].
//!
//! MODELLED: the meaning of the constant words in types 2, 3, 5 and 8, of
//! `w0 = 2` and of the type-8 MAC field is not public (doc section 11). The
//! decoder refuses values that differ from the public samples instead of
//! guessing what they mean.
//!
//! The code is split by concern:
//! - this file: the constants, [`Header`], [`Message`] and its parts, and
//!   which message a header triple announces;
//! - `error`: [`CodecError`], [`UnsafeText`] and the text checks
//!   [`cli_safe`] and [`url_safe`];
//! - `decode`: [`payload_len`], [`decode()`], [`decode_parts`] and one decoder
//!   per message type;
//! - `fields`: the checked cursor the decoders read with (errors carry frame
//!   offsets; no length field is trusted);
//! - `encode`: [`Message::encode`] and its writers.

mod decode;
mod encode;
mod error;
mod fields;
#[cfg(test)]
mod tests;

pub use decode::{decode, decode_parts, payload_len};
pub use error::{CodecError, UnsafeText, cli_safe, url_safe};

/// Length of the fixed message header.
pub const HEADER_LEN: usize = 16;

/// Default upper bound for a payload; the largest known one is 1032 bytes.
pub const PAYLOAD_CAP: usize = 4096;

/// The MAC address field every public type-8 sender uses (SIET, MSF).
pub const DEFAULT_CLI_MAC: [u8; 6] = [0xfc, 0x99, 0x47, 0x37, 0x86, 0x60];

/// Longest configuration URL a type-3 message holds (132-byte field).
pub const CONFIG_URL_MAX: usize = CONFIG_URL_WIDTH - 1;

/// Longest image-list URL a type-2 message holds (415-byte field).
pub const IMAGE_LIST_URL_MAX: usize = IMAGE_LIST_URL_WIDTH - 1;

/// Longest command-file URL a type-5 message holds (131-byte field).
pub const COMMAND_FILE_URL_MAX: usize = COMMAND_FILE_URL_WIDTH - 1;

/// Longest IOS command one type-8 slot holds (336-byte field).
pub const CLI_COMMAND_MAX: usize = CLI_SLOT_WIDTH - 1;

const CONFIG_URL_WIDTH: usize = 132;
const IMAGE_LIST_URL_WIDTH: usize = 415;
const COMMAND_FILE_URL_WIDTH: usize = 131;
const CLI_SLOT_WIDTH: usize = 336;
const EXECUTE_NAME_WIDTH: usize = 128;
const EXECUTE_PATH_WIDTH: usize = 264;

/// `w0` of messages from a director.
const FROM_DIRECTOR: u32 = 1;
/// `w0` of SIET's type-5 message (perhaps an SMI proxy role; unconfirmed).
const FROM_EXECUTOR: u32 = 2;
/// `w0` of messages from a client.
const FROM_CLIENT: u32 = 4;
/// `w1` of director messages.
const VERSION_DIRECTOR: u32 = 1;
/// `w1` of client replies.
const VERSION_CLIENT: u32 = 0;

const TYPE_IMAGE_UPGRADE: u32 = 2;
const TYPE_CONFIG_UPGRADE: u32 = 3;
const TYPE_PROBE: u32 = 4;
const TYPE_EXECUTE_FILE: u32 = 5;
const TYPE_RUN_CLI: u32 = 8;

/// Bytes tolerated after a probe: MSF sends it with Ruby `puts`, adding `\n`.
const PROBE_EXTRA_BYTES: usize = 1;

/// Image-upgrade flags word (offset 0x14) of the immediate form.
const IMAGE_FLAGS_IMMEDIATE: u32 = 0x821;
/// Image-upgrade flags word (offset 0x14) of the timed form.
const IMAGE_FLAGS_TIMED: u32 = 0x801;

/// Type-8 TLV carrying the sender identity (MAC field).
const TLV_IDENTITY: u16 = 1;
/// Type-8 TLV carrying one command slot (Papathanasiou).
const TLV_ONE_SLOT: u16 = 2;
/// Type-8 TLV carrying three command slots (SIET, MSF).
const TLV_THREE_SLOTS: u16 = 3;
/// Length of a type-8 TLV header (16-bit type, 16-bit length).
const TLV_HEADER_LEN: usize = 4;
/// Value length of the identity TLV: two words, the MAC, two padding bytes.
const IDENTITY_VALUE_LEN: usize = 16;

/// The 16-byte header in front of every SMI message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// `w0`: sender role (1 director, 4 client, 2 in SIET's type 5).
    pub from: u32,
    /// `w1`: protocol version (1 from directors, 0 in client replies).
    pub version: u32,
    /// `w2`: message type.
    pub msg_type: u32,
    /// `w3`: number of payload bytes after the header, as claimed by the sender.
    pub payload_len: u32,
}

impl Header {
    /// Reads the four big-endian words of a header.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Self {
        let [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p] = *bytes;
        Self {
            from: u32::from_be_bytes([a, b, c, d]),
            version: u32::from_be_bytes([e, f, g, h]),
            msg_type: u32::from_be_bytes([i, j, k, l]),
            payload_len: u32::from_be_bytes([m, n, o, p]),
        }
    }

    /// Writes the four words big-endian.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let words = [self.from, self.version, self.msg_type, self.payload_len];
        let mut out = [0u8; HEADER_LEN];
        for (chunk, word) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

/// When a client reloads after a configuration or image upgrade.
///
/// The wire carries two words, hours then minutes; SIET reads them from an
/// `HH:MM` argument, so the codec accepts 00:00 to 23:59 only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReloadTime {
    /// Hours, 0 to 23.
    pub hours: u8,
    /// Minutes, 0 to 59.
    pub minutes: u8,
}

/// Reload behaviour requested by an image upgrade (type 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageReload {
    /// Flags 0x821: reload as soon as the image is installed (SIET's "00:00").
    Immediate,
    /// Flags 0x801: reload at the given time.
    At(ReloadTime),
}

/// Which command block a run-CLI message (type 8) carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandBlock {
    /// TLV type 3 with three 336-byte slots (SIET, MSF); the form the project sends.
    ThreeSlots,
    /// TLV type 2 with a single 336-byte slot (Papathanasiou).
    OneSlot,
}

impl CommandBlock {
    fn tlv_type(self) -> u16 {
        match self {
            Self::ThreeSlots => TLV_THREE_SLOTS,
            Self::OneSlot => TLV_ONE_SLOT,
        }
    }

    fn slots(self) -> usize {
        match self {
            Self::ThreeSlots => 3,
            Self::OneSlot => 1,
        }
    }
}

/// One SMI message, as sent by a director or a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Director probe, type 4 (24 bytes): asks "is an SMI client listening?".
    Probe,
    /// Client answer to the probe, type 3 from `w0 = 4` (24 bytes).
    ClientReply,
    /// Client "message not accepted", type 4 from `w0 = 4` (20 bytes).
    Reject,
    /// Director type 3: replace the startup-config with the file at `url`.
    ConfigUpgrade {
        /// TFTP URL of the new configuration.
        url: String,
        /// Reload after applying, or `None` (Talos' fetch-only form).
        reload: Option<ReloadTime>,
    },
    /// Director type 2: install the image named in the image-list file at `url`.
    ImageUpgrade {
        /// TFTP URL of the image-list file (which holds the `.tar` name).
        url: String,
        /// When to reload into the new image.
        reload: ImageReload,
    },
    /// Type 5 (`w0 = 2`): run the quoted IOS commands in the file at `url`.
    ExecuteFile {
        /// TFTP URL of the command file.
        url: String,
    },
    /// Director type 8: run up to three IOS exec commands.
    RunCli {
        /// Sender MAC field; [`DEFAULT_CLI_MAC`] unless configured.
        mac: [u8; 6],
        /// Which command block the message carries.
        block: CommandBlock,
        /// The commands, one per slot, at least one and at most the block's slots.
        commands: Vec<String>,
    },
    /// Any header triple not listed above; the payload is at most [`PAYLOAD_CAP`] bytes.
    Unknown {
        /// The header as received.
        header: Header,
        /// The payload as received.
        payload: Vec<u8>,
    },
}

impl Message {
    /// A short name of the message kind, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Probe => Kind::Probe.name(),
            Self::ClientReply => Kind::ClientReply.name(),
            Self::Reject => Kind::Reject.name(),
            Self::ConfigUpgrade { .. } => Kind::ConfigUpgrade.name(),
            Self::ImageUpgrade { .. } => Kind::ImageUpgrade.name(),
            Self::ExecuteFile { .. } => Kind::ExecuteFile.name(),
            Self::RunCli { .. } => Kind::RunCli.name(),
            Self::Unknown { .. } => Kind::Unknown.name(),
        }
    }
}

/// The kinds of message a header triple (`w0`, `w1`, `w2`) can announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Probe,
    ClientReply,
    Reject,
    ConfigUpgrade,
    ImageUpgrade,
    ExecuteFile,
    RunCli,
    Unknown,
}

impl Kind {
    fn of(header: &Header) -> Self {
        match (header.from, header.version, header.msg_type) {
            (FROM_DIRECTOR, VERSION_DIRECTOR, TYPE_PROBE) => Self::Probe,
            (FROM_CLIENT, VERSION_CLIENT, TYPE_CONFIG_UPGRADE) => Self::ClientReply,
            (FROM_CLIENT, VERSION_CLIENT, TYPE_PROBE) => Self::Reject,
            (FROM_DIRECTOR, VERSION_DIRECTOR, TYPE_CONFIG_UPGRADE) => Self::ConfigUpgrade,
            (FROM_DIRECTOR, VERSION_DIRECTOR, TYPE_IMAGE_UPGRADE) => Self::ImageUpgrade,
            (FROM_EXECUTOR, VERSION_DIRECTOR, TYPE_EXECUTE_FILE) => Self::ExecuteFile,
            (FROM_DIRECTOR, VERSION_DIRECTOR, TYPE_RUN_CLI) => Self::RunCli,
            _ => Self::Unknown,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Probe => "probe",
            Self::ClientReply => "client reply",
            Self::Reject => "reject",
            Self::ConfigUpgrade => "config upgrade",
            Self::ImageUpgrade => "image upgrade",
            Self::ExecuteFile => "execute file",
            Self::RunCli => "run CLI",
            Self::Unknown => "unknown message",
        }
    }

    /// The payload lengths a fixed-layout kind may declare; empty for `Unknown`.
    fn exact_payload_lens(self) -> &'static [usize] {
        match self {
            Self::Probe | Self::ClientReply => &[8],
            Self::Reject => &[4],
            Self::ConfigUpgrade => &[296],
            Self::ImageUpgrade => &[452],
            Self::ExecuteFile => &[528],
            Self::RunCli => &[1032, 360],
            Self::Unknown => &[],
        }
    }
}

/// Field names of the type-8 command slots, as errors name them.
const SLOT_NAMES: [&str; 3] = ["command slot 1", "command slot 2", "command slot 3"];

/// Whether a byte may appear in a fixed-width string field (printable ASCII).
fn is_printable(byte: u8) -> bool {
    (0x20..=0x7e).contains(&byte)
}
