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
//! [`decode`] does the same for a frame already in memory.
//!
//! The header triple (`w0`, `w1`, `w2`) decides what a frame holds. A known
//! triple must carry its exact payload length and the constant words every
//! public sample carries; any other triple becomes [`Message::Unknown`].
//!
//! MODELLED: the meaning of the constant words in types 2, 3, 5 and 8, of
//! `w0 = 2` and of the type-8 MAC field is not public (doc section 11). The
//! decoder refuses values that differ from the public samples instead of
//! guessing what they mean.

use std::iter;

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

/// Why a frame could not be decoded or a message could not be encoded.
///
/// Offsets count from the first byte of the header, as in the protocol document.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Fewer bytes than the header or the declared payload needs.
    #[error("{what} needs {needed} bytes, only {got} available")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes required.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// The header's payload length exceeds the caller's cap.
    #[error("payload length {len} exceeds the cap of {cap} bytes")]
    TooLong {
        /// `w3` as received.
        len: u32,
        /// The cap in force.
        cap: usize,
    },
    /// A fixed-layout message declares a payload length other than its own.
    #[error("{message} payload must be one of {expected:?} bytes, header says {len}")]
    WrongLength {
        /// The message kind.
        message: &'static str,
        /// The lengths this kind may have.
        expected: &'static [usize],
        /// `w3` as received.
        len: u32,
    },
    /// The payload handed to [`decode_parts`] or an `Unknown` message does not
    /// match the header's `w3`.
    #[error("header declares {declared} payload bytes but {got} were given")]
    LengthMismatch {
        /// `w3` of the header.
        declared: u32,
        /// Payload bytes present.
        got: usize,
    },
    /// Bytes follow the end of the message.
    #[error("{message}: {count} unexpected byte(s) after the end")]
    TrailingBytes {
        /// The message kind.
        message: &'static str,
        /// How many bytes are left over.
        count: usize,
    },
    /// A word that is constant in every public sample has another value.
    #[error("{message}: word at offset {offset:#x} is {found:#x}, expected {expected:#x}")]
    UnexpectedWord {
        /// The message kind.
        message: &'static str,
        /// Frame offset of the word.
        offset: usize,
        /// The value found.
        found: u32,
        /// The value of the public samples.
        expected: u32,
    },
    /// A byte that is constant in every public sample has another value.
    #[error("{message}: byte at offset {offset:#x} is {found:#04x}, expected {expected:#04x}")]
    UnexpectedByte {
        /// The message kind.
        message: &'static str,
        /// Frame offset of the byte.
        offset: usize,
        /// The value found.
        found: u8,
        /// The value of the public samples.
        expected: u8,
    },
    /// A flag word holds neither 0 nor 1.
    #[error("{message}: flag word at offset {offset:#x} is {found:#x}, expected 0 or 1")]
    NotAFlag {
        /// The message kind.
        message: &'static str,
        /// Frame offset of the word.
        offset: usize,
        /// The value found.
        found: u32,
    },
    /// The image-upgrade flags word is neither the immediate nor the timed form.
    #[error("image upgrade: flags word is {found:#x}, expected 0x821 (immediate) or 0x801 (timed)")]
    UnknownImageFlags {
        /// The value found.
        found: u32,
    },
    /// Bytes that are zero in every public sample are not.
    #[error("{message}: reserved bytes at offset {offset:#x} are not all zero")]
    ReservedNotZero {
        /// The message kind.
        message: &'static str,
        /// Frame offset of the reserved area.
        offset: usize,
    },
    /// A fixed-width string field has no NUL terminator.
    #[error("{field}: no NUL terminator within its {width}-byte field")]
    StringUnterminated {
        /// The field's name.
        field: &'static str,
        /// The field's width.
        width: usize,
    },
    /// A fixed-width string field holds a byte outside printable ASCII before its NUL.
    #[error("{field}: byte {byte:#04x} at position {position} is not printable ASCII")]
    StringNotPrintable {
        /// The field's name.
        field: &'static str,
        /// Position of the byte within the field.
        position: usize,
        /// The byte.
        byte: u8,
    },
    /// A fixed-width string field holds a non-NUL byte after its terminator.
    #[error("{field}: non-NUL byte at position {position} after the terminator")]
    StringPadding {
        /// The field's name.
        field: &'static str,
        /// Position of the byte within the field.
        position: usize,
    },
    /// A URL or command refused by [`url_safe`] or [`cli_safe`].
    #[error("{field} refused: {reason}")]
    Unsafe {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        #[source]
        reason: UnsafeText,
    },
    /// A reload time outside 00:00..=23:59.
    #[error("reload time {hours}:{minutes} is outside 00:00 to 23:59")]
    BadReloadTime {
        /// Hours as given.
        hours: u32,
        /// Minutes as given.
        minutes: u32,
    },
    /// A run-CLI TLV declares a length below its own 4-byte header.
    #[error("run CLI: TLV at offset {offset:#x} declares length {len}, below its 4-byte header")]
    TlvTooShort {
        /// Frame offset of the TLV.
        offset: usize,
        /// The declared length.
        len: u16,
    },
    /// A run-CLI TLV declares a length past the end of the payload.
    #[error(
        "run CLI: TLV at offset {offset:#x} declares length {len}, past the end of the payload"
    )]
    TlvOverrun {
        /// Frame offset of the TLV.
        offset: usize,
        /// The declared length.
        len: u16,
    },
    /// A run-CLI TLV has a type or length the message does not carry there.
    #[error("run CLI: TLV type {tlv_type} with length {len} at offset {offset:#x} is not expected")]
    UnexpectedTlv {
        /// Frame offset of the TLV.
        offset: usize,
        /// The TLV type found.
        tlv_type: u16,
        /// The declared length.
        len: u16,
    },
    /// A run-CLI message with no command, or more than its block holds.
    #[error("run CLI: {count} commands given, the block holds 1 to {max}")]
    CommandCount {
        /// Commands given.
        count: usize,
        /// Slots in the block.
        max: usize,
    },
    /// A run-CLI slot is empty while a later slot holds a command.
    #[error("run CLI: slot {slot} is empty but a later slot holds a command")]
    CommandGap {
        /// The empty slot, counted from 1.
        slot: usize,
    },
}

/// Why text may not be interpolated into IOS CLI or used as a URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeText {
    /// The text is empty.
    #[error("text is empty")]
    Empty,
    /// The text is longer than its destination allows.
    #[error("{len} bytes, longer than the limit of {max}")]
    TooLong {
        /// Length of the text.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A carriage return, which would end the CLI line.
    #[error("carriage return at byte {0}")]
    CarriageReturn(usize),
    /// A line feed, which would end the CLI line.
    #[error("line feed at byte {0}")]
    LineFeed(usize),
    /// Another ASCII control character (including tab and DEL).
    #[error("control character {byte:#04x} at byte {at}")]
    Control {
        /// Position of the byte.
        at: usize,
        /// The byte.
        byte: u8,
    },
    /// A double quote, which would end a quoted command in a type-5 file.
    #[error("double quote at byte {0}")]
    DoubleQuote(usize),
    /// A single quote.
    #[error("single quote at byte {0}")]
    SingleQuote(usize),
    /// A byte outside ASCII.
    #[error("non-ASCII byte at byte {0}")]
    NonAscii(usize),
    /// A space in a URL, which would add an argument to the IOS command.
    #[error("space at byte {0} in a URL")]
    Space(usize),
}

/// Checks that `s` may be interpolated into one IOS CLI line.
///
/// Refuses empty text, text longer than `max_len` bytes, CR, LF, any other
/// control character, `"`, `'` and non-ASCII. Returns `s` unchanged when safe.
pub fn cli_safe(s: &str, max_len: usize) -> Result<&str, UnsafeText> {
    if s.is_empty() {
        return Err(UnsafeText::Empty);
    }
    if s.len() > max_len {
        return Err(UnsafeText::TooLong {
            len: s.len(),
            max: max_len,
        });
    }
    for (at, byte) in s.bytes().enumerate() {
        match byte {
            b'\r' => return Err(UnsafeText::CarriageReturn(at)),
            b'\n' => return Err(UnsafeText::LineFeed(at)),
            b'"' => return Err(UnsafeText::DoubleQuote(at)),
            b'\'' => return Err(UnsafeText::SingleQuote(at)),
            _ if !byte.is_ascii() => return Err(UnsafeText::NonAscii(at)),
            _ if byte.is_ascii_control() => return Err(UnsafeText::Control { at, byte }),
            _ => {}
        }
    }
    Ok(s)
}

/// Checks that `s` may be used as a URL in a message or in IOS CLI: everything
/// [`cli_safe`] requires, and no space.
pub fn url_safe(s: &str, max_len: usize) -> Result<&str, UnsafeText> {
    cli_safe(s, max_len)?;
    match s.bytes().position(|b| b == b' ') {
        Some(at) => Err(UnsafeText::Space(at)),
        None => Ok(s),
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

/// Validates the header's payload length and returns it, before the caller
/// reads or allocates the payload.
///
/// Fixed-layout messages must declare their exact size (probe and client reply
/// 8, reject 4, config upgrade 296, image upgrade 452, execute file 528, run CLI
/// 1032 or 360); every payload must also be at most `cap` bytes. Pass
/// [`PAYLOAD_CAP`] unless a smaller bound is wanted: [`decode_parts`] refuses
/// unknown payloads above [`PAYLOAD_CAP`] whatever `cap` was.
///
/// MSF sends its probe with one extra byte (a `\n`, 25 bytes in all); that byte
/// is not part of the payload and is left unread in the stream, which is
/// harmless since a connection carries one message.
pub fn payload_len(header: &Header, cap: usize) -> Result<usize, CodecError> {
    let too_long = CodecError::TooLong {
        len: header.payload_len,
        cap,
    };
    let len = usize::try_from(header.payload_len).map_err(|_| too_long.clone())?;
    let kind = Kind::of(header);
    let expected = kind.exact_payload_lens();
    if !expected.is_empty() && !expected.contains(&len) {
        return Err(CodecError::WrongLength {
            message: kind.name(),
            expected,
            len: header.payload_len,
        });
    }
    if len > cap {
        return Err(too_long);
    }
    Ok(len)
}

/// Decodes one whole frame (header and payload, nothing else).
///
/// One trailing byte after a probe is tolerated, as real clients do (MSF sends
/// 25 bytes); any other trailing byte is an error.
pub fn decode(frame: &[u8]) -> Result<Message, CodecError> {
    let (head, rest) = frame
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(CodecError::Truncated {
            what: "header",
            needed: HEADER_LEN,
            got: frame.len(),
        })?;
    let header = Header::decode(head);
    let len = payload_len(&header, PAYLOAD_CAP)?;
    let (payload, trailing) = rest.split_at_checked(len).ok_or(CodecError::Truncated {
        what: "payload",
        needed: len,
        got: rest.len(),
    })?;
    let kind = Kind::of(&header);
    let tolerated = if kind == Kind::Probe {
        PROBE_EXTRA_BYTES
    } else {
        0
    };
    if trailing.len() > tolerated {
        return Err(CodecError::TrailingBytes {
            message: kind.name(),
            count: trailing.len(),
        });
    }
    decode_parts(&header, payload)
}

/// Decodes a message from its header and its payload, read separately.
///
/// `payload` must hold exactly the header's `w3` bytes, within the limits of
/// [`payload_len`] with [`PAYLOAD_CAP`].
pub fn decode_parts(header: &Header, payload: &[u8]) -> Result<Message, CodecError> {
    let len = payload_len(header, PAYLOAD_CAP)?;
    if payload.len() != len {
        return Err(CodecError::LengthMismatch {
            declared: header.payload_len,
            got: payload.len(),
        });
    }
    let kind = Kind::of(header);
    let mut fields = Fields::new(kind.name(), payload);
    let message = match kind {
        Kind::Probe => {
            fields.expect_word(1)?;
            fields.expect_word(0)?;
            Message::Probe
        }
        Kind::ClientReply => {
            fields.expect_word(1)?;
            fields.expect_word(0)?;
            Message::ClientReply
        }
        Kind::Reject => {
            fields.expect_word(1)?;
            Message::Reject
        }
        Kind::ConfigUpgrade => decode_config_upgrade(&mut fields)?,
        Kind::ImageUpgrade => decode_image_upgrade(&mut fields)?,
        Kind::ExecuteFile => decode_execute_file(&mut fields)?,
        Kind::RunCli => decode_run_cli(&mut fields)?,
        Kind::Unknown => {
            return Ok(Message::Unknown {
                header: *header,
                payload: payload.to_vec(),
            });
        }
    };
    fields.finish()?;
    Ok(message)
}

/// Payload from offset 0x10: 3, 0, 0, 2, 0, reload flag, hours, minutes,
/// 132 unused bytes, the 132-byte URL.
fn decode_config_upgrade(fields: &mut Fields<'_>) -> Result<Message, CodecError> {
    fields.expect_word(3)?;
    fields.expect_word(0)?;
    fields.expect_word(0)?;
    fields.expect_word(2)?;
    fields.expect_word(0)?;
    let reload = if fields.flag()? {
        Some(fields.reload_time()?)
    } else {
        fields.expect_word(0)?;
        fields.expect_word(0)?;
        None
    };
    fields.expect_zeros(CONFIG_URL_WIDTH)?;
    let url = fields.text("config URL", CONFIG_URL_WIDTH)?;
    Ok(Message::ConfigUpgrade { url, reload })
}

/// Payload from offset 0x10: 2, flags, 0, 0, immediate flag, timer flag,
/// hours, minutes, 1, the 415-byte URL, trailer byte 1.
fn decode_image_upgrade(fields: &mut Fields<'_>) -> Result<Message, CodecError> {
    fields.expect_word(2)?;
    let flags = fields.word()?;
    fields.expect_word(0)?;
    fields.expect_word(0)?;
    let reload = match flags {
        IMAGE_FLAGS_IMMEDIATE => {
            fields.expect_word(1)?;
            fields.expect_word(0)?;
            fields.expect_word(0)?;
            fields.expect_word(0)?;
            ImageReload::Immediate
        }
        IMAGE_FLAGS_TIMED => {
            fields.expect_word(0)?;
            fields.expect_word(1)?;
            ImageReload::At(fields.reload_time()?)
        }
        found => return Err(CodecError::UnknownImageFlags { found }),
    };
    fields.expect_word(1)?;
    let url = fields.text("image-list URL", IMAGE_LIST_URL_WIDTH)?;
    fields.expect_byte(1)?;
    Ok(Message::ImageUpgrade { url, reload })
}

/// Payload from offset 0x10: 1, two empty string fields (128 and 264 bytes),
/// the 131-byte URL, trailer byte 1.
fn decode_execute_file(fields: &mut Fields<'_>) -> Result<Message, CodecError> {
    fields.expect_word(1)?;
    fields.expect_zeros(EXECUTE_NAME_WIDTH)?;
    fields.expect_zeros(EXECUTE_PATH_WIDTH)?;
    let url = fields.text("command-file URL", COMMAND_FILE_URL_WIDTH)?;
    fields.expect_byte(1)?;
    Ok(Message::ExecuteFile { url })
}

/// Payload: identity TLV (type 1: 1, 0, MAC, two zero bytes), then one command
/// block TLV (type 3 with three slots or type 2 with one).
fn decode_run_cli(fields: &mut Fields<'_>) -> Result<Message, CodecError> {
    let (tlv_type, mut identity) = fields.tlv()?;
    if tlv_type != TLV_IDENTITY || identity.remaining() != IDENTITY_VALUE_LEN {
        return Err(identity.unexpected_tlv(tlv_type));
    }
    identity.expect_word(1)?;
    identity.expect_word(0)?;
    let mac = identity.array::<6>()?;
    identity.expect_zeros(2)?;
    identity.finish()?;

    let (tlv_type, mut slots) = fields.tlv()?;
    let block = match tlv_type {
        TLV_THREE_SLOTS => CommandBlock::ThreeSlots,
        TLV_ONE_SLOT => CommandBlock::OneSlot,
        _ => return Err(slots.unexpected_tlv(tlv_type)),
    };
    let slots_len = block.slots().checked_mul(CLI_SLOT_WIDTH);
    if slots_len != Some(slots.remaining()) {
        return Err(slots.unexpected_tlv(tlv_type));
    }
    let mut commands = Vec::with_capacity(block.slots());
    for name in SLOT_NAMES.iter().take(block.slots()) {
        commands.push(slots.text(name, CLI_SLOT_WIDTH)?);
    }
    slots.finish()?;

    while commands.last().is_some_and(String::is_empty) {
        commands.pop();
    }
    if commands.is_empty() {
        return Err(CodecError::CommandCount {
            count: 0,
            max: block.slots(),
        });
    }
    if let Some(gap) = commands.iter().position(String::is_empty) {
        return Err(CodecError::CommandGap {
            slot: gap.saturating_add(1),
        });
    }
    Ok(Message::RunCli {
        mac,
        block,
        commands,
    })
}

const SLOT_NAMES: [&str; 3] = ["command slot 1", "command slot 2", "command slot 3"];

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

    /// Encodes the whole frame, header included.
    ///
    /// URLs must pass [`url_safe`] and commands [`cli_safe`] within their
    /// field; reload times must lie within 00:00..=23:59. `Unknown` is
    /// written verbatim and must have `w3` equal to its payload length, at
    /// most [`PAYLOAD_CAP`].
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let mut payload = Vec::new();
        let (from, version, msg_type) = match self {
            Self::Probe => {
                put_words(&mut payload, &[1, 0]);
                (FROM_DIRECTOR, VERSION_DIRECTOR, TYPE_PROBE)
            }
            Self::ClientReply => {
                put_words(&mut payload, &[1, 0]);
                (FROM_CLIENT, VERSION_CLIENT, TYPE_CONFIG_UPGRADE)
            }
            Self::Reject => {
                put_words(&mut payload, &[1]);
                (FROM_CLIENT, VERSION_CLIENT, TYPE_PROBE)
            }
            Self::ConfigUpgrade { url, reload } => {
                encode_config_upgrade(&mut payload, url, *reload)?;
                (FROM_DIRECTOR, VERSION_DIRECTOR, TYPE_CONFIG_UPGRADE)
            }
            Self::ImageUpgrade { url, reload } => {
                encode_image_upgrade(&mut payload, url, *reload)?;
                (FROM_DIRECTOR, VERSION_DIRECTOR, TYPE_IMAGE_UPGRADE)
            }
            Self::ExecuteFile { url } => {
                encode_execute_file(&mut payload, url)?;
                (FROM_EXECUTOR, VERSION_DIRECTOR, TYPE_EXECUTE_FILE)
            }
            Self::RunCli {
                mac,
                block,
                commands,
            } => {
                encode_run_cli(&mut payload, mac, *block, commands)?;
                (FROM_DIRECTOR, VERSION_DIRECTOR, TYPE_RUN_CLI)
            }
            Self::Unknown { header, payload } => return encode_unknown(header, payload),
        };
        let header = Header {
            from,
            version,
            msg_type,
            payload_len: u32::try_from(payload.len()).map_err(|_| CodecError::TooLong {
                len: u32::MAX,
                cap: PAYLOAD_CAP,
            })?,
        };
        let mut frame = Vec::with_capacity(HEADER_LEN.saturating_add(payload.len()));
        frame.extend_from_slice(&header.encode());
        frame.extend_from_slice(&payload);
        Ok(frame)
    }
}

fn encode_config_upgrade(
    out: &mut Vec<u8>,
    url: &str,
    reload: Option<ReloadTime>,
) -> Result<(), CodecError> {
    let url = checked_url("config URL", url, CONFIG_URL_MAX)?;
    let (flag, time) = match reload {
        Some(time) => (1, checked_reload_time(time)?),
        None => (0, (0, 0)),
    };
    put_words(out, &[3, 0, 0, 2, 0, flag, time.0, time.1]);
    put_zeros(out, CONFIG_URL_WIDTH);
    put_text(out, "config URL", url, CONFIG_URL_WIDTH)
}

fn encode_image_upgrade(
    out: &mut Vec<u8>,
    url: &str,
    reload: ImageReload,
) -> Result<(), CodecError> {
    let url = checked_url("image-list URL", url, IMAGE_LIST_URL_MAX)?;
    match reload {
        ImageReload::Immediate => put_words(out, &[2, IMAGE_FLAGS_IMMEDIATE, 0, 0, 1, 0, 0, 0]),
        ImageReload::At(time) => {
            let (hours, minutes) = checked_reload_time(time)?;
            put_words(out, &[2, IMAGE_FLAGS_TIMED, 0, 0, 0, 1, hours, minutes]);
        }
    }
    put_words(out, &[1]);
    put_text(out, "image-list URL", url, IMAGE_LIST_URL_WIDTH)?;
    out.push(1);
    Ok(())
}

fn encode_execute_file(out: &mut Vec<u8>, url: &str) -> Result<(), CodecError> {
    let url = checked_url("command-file URL", url, COMMAND_FILE_URL_MAX)?;
    put_words(out, &[1]);
    put_zeros(out, EXECUTE_NAME_WIDTH);
    put_zeros(out, EXECUTE_PATH_WIDTH);
    put_text(out, "command-file URL", url, COMMAND_FILE_URL_WIDTH)?;
    out.push(1);
    Ok(())
}

fn encode_run_cli(
    out: &mut Vec<u8>,
    mac: &[u8; 6],
    block: CommandBlock,
    commands: &[String],
) -> Result<(), CodecError> {
    let slots = block.slots();
    if commands.is_empty() || commands.len() > slots {
        return Err(CodecError::CommandCount {
            count: commands.len(),
            max: slots,
        });
    }
    let identity_len = tlv_len(IDENTITY_VALUE_LEN)?;
    let block_len = tlv_len(slots.saturating_mul(CLI_SLOT_WIDTH))?;

    put_u16(out, TLV_IDENTITY);
    put_u16(out, identity_len);
    put_words(out, &[1, 0]);
    out.extend_from_slice(mac);
    put_zeros(out, 2);

    put_u16(out, block.tlv_type());
    put_u16(out, block_len);
    for (index, name) in SLOT_NAMES.iter().take(slots).enumerate() {
        match commands.get(index) {
            Some(command) => {
                cli_safe(command, CLI_COMMAND_MAX).map_err(|reason| CodecError::Unsafe {
                    field: name,
                    reason,
                })?;
                put_text(out, name, command, CLI_SLOT_WIDTH)?;
            }
            None => put_zeros(out, CLI_SLOT_WIDTH),
        }
    }
    Ok(())
}

fn encode_unknown(header: &Header, payload: &[u8]) -> Result<Vec<u8>, CodecError> {
    if usize::try_from(header.payload_len).ok() != Some(payload.len()) {
        return Err(CodecError::LengthMismatch {
            declared: header.payload_len,
            got: payload.len(),
        });
    }
    if payload.len() > PAYLOAD_CAP {
        return Err(CodecError::TooLong {
            len: header.payload_len,
            cap: PAYLOAD_CAP,
        });
    }
    let mut frame = Vec::with_capacity(HEADER_LEN.saturating_add(payload.len()));
    frame.extend_from_slice(&header.encode());
    frame.extend_from_slice(payload);
    Ok(frame)
}

/// The 16-bit length of a type-8 TLV whose value is `value_len` bytes.
fn tlv_len(value_len: usize) -> Result<u16, CodecError> {
    let too_long = || CodecError::TooLong {
        len: u32::MAX,
        cap: usize::from(u16::MAX),
    };
    let total = value_len.checked_add(TLV_HEADER_LEN).ok_or_else(too_long)?;
    u16::try_from(total).map_err(|_| too_long())
}

fn checked_url<'a>(field: &'static str, url: &'a str, max: usize) -> Result<&'a str, CodecError> {
    url_safe(url, max).map_err(|reason| CodecError::Unsafe { field, reason })
}

fn checked_reload_time(time: ReloadTime) -> Result<(u32, u32), CodecError> {
    let (hours, minutes) = (u32::from(time.hours), u32::from(time.minutes));
    if hours > 23 || minutes > 59 {
        return Err(CodecError::BadReloadTime { hours, minutes });
    }
    Ok((hours, minutes))
}

fn put_words(out: &mut Vec<u8>, words: &[u32]) {
    for word in words {
        out.extend_from_slice(&word.to_be_bytes());
    }
}

fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_zeros(out: &mut Vec<u8>, count: usize) {
    out.extend(iter::repeat_n(0u8, count));
}

/// Writes `text` NUL-padded to `width` bytes, keeping at least one NUL.
fn put_text(
    out: &mut Vec<u8>,
    field: &'static str,
    text: &str,
    width: usize,
) -> Result<(), CodecError> {
    let max = width.saturating_sub(1);
    if text.len() > max {
        return Err(CodecError::Unsafe {
            field,
            reason: UnsafeText::TooLong {
                len: text.len(),
                max,
            },
        });
    }
    let padding = width.saturating_sub(text.len());
    if let Some((position, byte)) = text.bytes().enumerate().find(|(_, b)| !is_printable(*b)) {
        return Err(CodecError::StringNotPrintable {
            field,
            position,
            byte,
        });
    }
    out.extend_from_slice(text.as_bytes());
    put_zeros(out, padding);
    Ok(())
}

fn is_printable(byte: u8) -> bool {
    (0x20..=0x7e).contains(&byte)
}

/// A cursor over (part of) a payload that reports errors with frame offsets.
struct Fields<'a> {
    message: &'static str,
    bytes: &'a [u8],
    /// Frame offset of `bytes[0]`.
    base: usize,
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(message: &'static str, payload: &'a [u8]) -> Self {
        Self {
            message,
            bytes: payload,
            base: HEADER_LEN,
            pos: 0,
        }
    }

    /// Frame offset of the next byte.
    fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], CodecError> {
        let truncated = CodecError::Truncated {
            what: self.message,
            needed: count,
            got: self.remaining(),
        };
        let end = self.pos.checked_add(count).ok_or(truncated.clone())?;
        let taken = self.bytes.get(self.pos..end).ok_or(truncated)?;
        self.pos = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let taken = self.take(N)?;
        <[u8; N]>::try_from(taken).map_err(|_| CodecError::Truncated {
            what: self.message,
            needed: N,
            got: taken.len(),
        })
    }

    fn word(&mut self) -> Result<u32, CodecError> {
        self.array::<4>().map(u32::from_be_bytes)
    }

    fn expect_word(&mut self, expected: u32) -> Result<(), CodecError> {
        let offset = self.offset();
        let found = self.word()?;
        if found != expected {
            return Err(CodecError::UnexpectedWord {
                message: self.message,
                offset,
                found,
                expected,
            });
        }
        Ok(())
    }

    fn expect_byte(&mut self, expected: u8) -> Result<(), CodecError> {
        let offset = self.offset();
        let [found] = self.array::<1>()?;
        if found != expected {
            return Err(CodecError::UnexpectedByte {
                message: self.message,
                offset,
                found,
                expected,
            });
        }
        Ok(())
    }

    fn expect_zeros(&mut self, count: usize) -> Result<(), CodecError> {
        let offset = self.offset();
        if self.take(count)?.iter().any(|&b| b != 0) {
            return Err(CodecError::ReservedNotZero {
                message: self.message,
                offset,
            });
        }
        Ok(())
    }

    /// A word that must be 0 or 1.
    fn flag(&mut self) -> Result<bool, CodecError> {
        let offset = self.offset();
        match self.word()? {
            0 => Ok(false),
            1 => Ok(true),
            found => Err(CodecError::NotAFlag {
                message: self.message,
                offset,
                found,
            }),
        }
    }

    /// Two words, hours then minutes.
    fn reload_time(&mut self) -> Result<ReloadTime, CodecError> {
        let hours = self.word()?;
        let minutes = self.word()?;
        let bad = CodecError::BadReloadTime { hours, minutes };
        if hours > 23 || minutes > 59 {
            return Err(bad);
        }
        Ok(ReloadTime {
            hours: u8::try_from(hours).map_err(|_| bad.clone())?,
            minutes: u8::try_from(minutes).map_err(|_| bad)?,
        })
    }

    /// A NUL-terminated, NUL-padded printable ASCII field of `width` bytes.
    fn text(&mut self, field: &'static str, width: usize) -> Result<String, CodecError> {
        let bytes = self.take(width)?;
        let mut end = None;
        for (position, &byte) in bytes.iter().enumerate() {
            match (end, byte) {
                (None, 0) => end = Some(position),
                (None, _) if is_printable(byte) => {}
                (None, _) => {
                    return Err(CodecError::StringNotPrintable {
                        field,
                        position,
                        byte,
                    });
                }
                (Some(_), 0) => {}
                (Some(_), _) => return Err(CodecError::StringPadding { field, position }),
            }
        }
        let end = end.ok_or(CodecError::StringUnterminated { field, width })?;
        Ok(bytes.iter().take(end).map(|&b| char::from(b)).collect())
    }

    /// A type-8 TLV: 16-bit type, 16-bit length including this 4-byte header.
    /// Returns the type and a cursor over the value.
    fn tlv(&mut self) -> Result<(u16, Fields<'a>), CodecError> {
        let offset = self.offset();
        let [t0, t1, l0, l1] = self.array::<4>()?;
        let tlv_type = u16::from_be_bytes([t0, t1]);
        let len = u16::from_be_bytes([l0, l1]);
        let value_len = usize::from(len)
            .checked_sub(TLV_HEADER_LEN)
            .ok_or(CodecError::TlvTooShort { offset, len })?;
        if value_len > self.remaining() {
            return Err(CodecError::TlvOverrun { offset, len });
        }
        let value_base = self.offset();
        let value = self.take(value_len)?;
        Ok((
            tlv_type,
            Fields {
                message: self.message,
                bytes: value,
                base: value_base,
                pos: 0,
            },
        ))
    }

    /// The error for a TLV (whose value this cursor covers) that does not belong here.
    fn unexpected_tlv(&self, tlv_type: u16) -> CodecError {
        let value_len = self.bytes.len().saturating_add(TLV_HEADER_LEN);
        CodecError::UnexpectedTlv {
            offset: self.base.saturating_sub(TLV_HEADER_LEN),
            tlv_type,
            len: u16::try_from(value_len).unwrap_or(u16::MAX),
        }
    }

    /// Requires that every byte was consumed.
    fn finish(&self) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(CodecError::TrailingBytes {
                message: self.message,
                count,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expands a `hexdump -C` listing: a `*` line repeats the previous line up
    /// to the next printed offset, and the last line is the total length.
    fn from_hexdump(dump: &str) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::new();
        let mut last_line: Vec<u8> = Vec::new();
        let mut repeating = false;
        for line in dump.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if line == "*" {
                repeating = true;
                continue;
            }
            let hex_part = line.split('|').next().unwrap();
            let mut tokens = hex_part.split_whitespace();
            let offset = usize::from_str_radix(tokens.next().unwrap(), 16).unwrap();
            if repeating {
                while out.len() < offset {
                    out.extend_from_slice(&last_line);
                }
                repeating = false;
            }
            assert_eq!(out.len(), offset, "offset mismatch at line {line:?}");
            last_line = tokens.map(|t| u8::from_str_radix(t, 16).unwrap()).collect();
            out.extend_from_slice(&last_line);
        }
        out
    }

    fn from_hex(text: &str) -> Vec<u8> {
        let digits: String = text.split_whitespace().collect();
        hex::decode(digits).unwrap()
    }

    /// Every frame in the document satisfies total − 16 == w3.
    fn assert_w3_matches(frame: &[u8]) {
        let header = Header::decode(frame.first_chunk::<HEADER_LEN>().unwrap());
        assert_eq!(frame.len() - HEADER_LEN, header.payload_len as usize);
    }

    fn round_trip(message: &Message, frame: &[u8]) {
        assert_w3_matches(frame);
        assert_eq!(message.encode().unwrap(), frame, "encoding of {message:?}");
        assert_eq!(&decode(frame).unwrap(), message);
    }

    // Section 2.
    const PROBE: &str = "00000001 00000001 00000004 00000008  00000001 00000000";
    const REPLY: &str = "00000004 00000000 00000003 00000008  00000001 00000000";
    // Section 3.
    const GREENBONE_PROBE: &str = "00000001 00000001 00000003 00000001  00";
    const REJECT: &str = "00000004 00000000 00000004 00000004  00000001";

    // Section 5.1, reload after 00:01.
    const CONFIG_UPGRADE_DUMP: &str = "
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

    // Section 5.2, immediate form.
    const IMAGE_UPGRADE_DUMP: &str = "
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

    // Section 5.2, bytes 0x14..0x30 of the timed form at 01:30.
    const IMAGE_TIMED_WORDS: &str = "00 00 08 01  00 00 00 00  00 00 00 00  00 00 00 00
        00 00 00 01  00 00 00 01  00 00 00 1e";

    // Section 5.4.
    const EXECUTE_FILE_DUMP: &str = "
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

    // Section 5.5, MSF shape.
    const RUN_CLI_DUMP: &str = "
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

    // Section 5.5, Papathanasiou's one-slot prefix; the 336-byte slot follows.
    const RUN_CLI_ONE_SLOT_PREFIX: &str = "00000001 00000001 00000008 00000168
        0001 0014 00000001 00000000 0021d863a560 0000  0002 0154";
    const PAPATHANASIOU_COMMAND: &str = "configure tftp-server nvram:startup-config";

    /// Section 5.6: type 0x0a, 52 × ff, 555cca68, 16 × 00, ffffffff 00000001.
    fn papathanasiou_0a() -> Vec<u8> {
        let mut frame = from_hex("00000001 00000001 0000000a 00000050");
        frame.extend([0xff; 52]);
        frame.extend(from_hex("555cca68"));
        frame.extend([0; 16]);
        frame.extend(from_hex("ffffffff 00000001"));
        frame
    }

    /// Section 7: Embedi's type-7 shape with filler bytes only: w3 = 216 covers
    /// just the TLV-1 value, then a 32/32 TLV header, the value and 2 KiB trailer.
    fn embedi_type7() -> Vec<u8> {
        let mut frame = from_hex("00000001 00000001 00000007 000000d8  00000001 000000d8");
        frame.extend([0x41; 0xd8]);
        frame.extend([0x42; 2048]);
        frame
    }

    /// Section 1: a probe shaped like nmap's Firebird one (w1 = 0x13), filler payload.
    fn firebird_like() -> Vec<u8> {
        let mut frame = from_hex("00000001 00000013 00000002 00000024  0000001c");
        frame.extend(b"/opt/example/path/to/a/db.fdb");
        frame.resize(16 + 0x24 + 16, 0);
        frame
    }

    fn one_slot_frame() -> Vec<u8> {
        let mut frame = from_hex(RUN_CLI_ONE_SLOT_PREFIX);
        let mut slot = PAPATHANASIOU_COMMAND.as_bytes().to_vec();
        slot.resize(CLI_SLOT_WIDTH, 0);
        frame.extend(slot);
        frame
    }

    fn timed_image_frame() -> Vec<u8> {
        let mut frame = from_hexdump(IMAGE_UPGRADE_DUMP);
        let words = from_hex(IMAGE_TIMED_WORDS);
        frame.splice(0x14..0x30, words);
        frame
    }

    fn all_valid_frames() -> Vec<Vec<u8>> {
        vec![
            from_hex(PROBE),
            from_hex(REPLY),
            from_hex(REJECT),
            from_hexdump(CONFIG_UPGRADE_DUMP),
            from_hexdump(IMAGE_UPGRADE_DUMP),
            timed_image_frame(),
            from_hexdump(EXECUTE_FILE_DUMP),
            from_hexdump(RUN_CLI_DUMP),
            one_slot_frame(),
            papathanasiou_0a(),
        ]
    }

    #[test]
    fn hexdump_expansion_gives_documented_lengths() {
        assert_eq!(from_hexdump(CONFIG_UPGRADE_DUMP).len(), 0x138);
        assert_eq!(from_hexdump(IMAGE_UPGRADE_DUMP).len(), 0x1d4);
        assert_eq!(from_hexdump(EXECUTE_FILE_DUMP).len(), 0x220);
        assert_eq!(from_hexdump(RUN_CLI_DUMP).len(), 0x418);
        assert_eq!(one_slot_frame().len(), 376);
        assert_eq!(papathanasiou_0a().len(), 96);
    }

    #[test]
    fn header_round_trips() {
        let bytes: [u8; 16] = from_hex(PROBE)[..16].try_into().unwrap();
        let header = Header::decode(&bytes);
        assert_eq!(
            header,
            Header {
                from: 1,
                version: 1,
                msg_type: 4,
                payload_len: 8
            }
        );
        assert_eq!(header.encode(), bytes);
    }

    #[test]
    fn probe_reply_and_reject_match_the_document() {
        round_trip(&Message::Probe, &from_hex(PROBE));
        round_trip(&Message::ClientReply, &from_hex(REPLY));
        round_trip(&Message::Reject, &from_hex(REJECT));
        assert_eq!(from_hex(PROBE).len(), 24);
        assert_eq!(from_hex(REJECT).len(), 20);
    }

    #[test]
    fn probe_tolerates_one_trailing_byte_only() {
        let mut msf = from_hex(PROBE);
        msf.push(b'\n');
        assert_eq!(msf.len(), 25);
        assert_eq!(decode(&msf), Ok(Message::Probe));
        msf.push(b'\n');
        assert!(matches!(
            decode(&msf),
            Err(CodecError::TrailingBytes { count: 2, .. })
        ));
        let mut reply = from_hex(REPLY);
        reply.push(b'\n');
        assert!(matches!(
            decode(&reply),
            Err(CodecError::TrailingBytes { count: 1, .. })
        ));
    }

    #[test]
    fn config_upgrade_matches_the_document() {
        let siet = from_hexdump(CONFIG_UPGRADE_DUMP);
        let message = Message::ConfigUpgrade {
            url: "tftp://192.0.2.1/x.cfg".into(),
            reload: Some(ReloadTime {
                hours: 0,
                minutes: 1,
            }),
        };
        round_trip(&message, &siet);

        // The Talos (no reload) form differs only at 0x27 and 0x2f.
        let mut talos = siet;
        talos[0x27] = 0;
        talos[0x2f] = 0;
        let message = Message::ConfigUpgrade {
            url: "tftp://192.0.2.1/x.cfg".into(),
            reload: None,
        };
        round_trip(&message, &talos);
    }

    #[test]
    fn image_upgrade_matches_the_document() {
        let url = "tftp://192.0.2.1/imagelist.txt".to_string();
        let immediate = Message::ImageUpgrade {
            url: url.clone(),
            reload: ImageReload::Immediate,
        };
        round_trip(&immediate, &from_hexdump(IMAGE_UPGRADE_DUMP));
        let timed = Message::ImageUpgrade {
            url,
            reload: ImageReload::At(ReloadTime {
                hours: 1,
                minutes: 30,
            }),
        };
        round_trip(&timed, &timed_image_frame());
    }

    #[test]
    fn execute_file_matches_the_document() {
        let message = Message::ExecuteFile {
            url: "tftp://192.0.2.1/x.txt".into(),
        };
        round_trip(&message, &from_hexdump(EXECUTE_FILE_DUMP));
    }

    #[test]
    fn run_cli_matches_the_document() {
        let msf = Message::RunCli {
            mac: DEFAULT_CLI_MAC,
            block: CommandBlock::ThreeSlots,
            commands: vec!["copy system:running-config tftp://192.0.2.1/x.cfg".into()],
        };
        round_trip(&msf, &from_hexdump(RUN_CLI_DUMP));

        let papathanasiou = Message::RunCli {
            mac: [0x00, 0x21, 0xd8, 0x63, 0xa5, 0x60],
            block: CommandBlock::OneSlot,
            commands: vec![PAPATHANASIOU_COMMAND.into()],
        };
        round_trip(&papathanasiou, &one_slot_frame());
    }

    #[test]
    fn run_cli_three_commands_round_trip() {
        let message = Message::RunCli {
            mac: DEFAULT_CLI_MAC,
            block: CommandBlock::ThreeSlots,
            commands: vec![
                "copy system:running-config flash:/config.text".into(),
                "copy flash:/config.text tftp://192.0.2.1/a.conf".into(),
                "show version".into(),
            ],
        };
        let frame = message.encode().unwrap();
        assert_eq!(frame.len(), 1048);
        round_trip(&message, &frame);
    }

    #[test]
    fn unknown_messages_round_trip() {
        let frame = papathanasiou_0a();
        let message = decode(&frame).unwrap();
        assert!(matches!(&message, Message::Unknown { header, payload }
            if header.msg_type == 0x0a && payload.len() == 80));
        round_trip(&message, &frame);
    }

    #[test]
    fn scanner_probes_are_refused_or_unknown() {
        assert!(matches!(
            decode(&from_hex(GREENBONE_PROBE)),
            Err(CodecError::WrongLength {
                message: "config upgrade",
                len: 1,
                ..
            })
        ));
        assert!(matches!(
            decode(&embedi_type7()),
            Err(CodecError::TrailingBytes { .. })
        ));
        let header = Header::decode(embedi_type7().first_chunk().unwrap());
        assert_eq!(payload_len(&header, PAYLOAD_CAP), Ok(216));
        assert!(matches!(
            decode(&firebird_like()),
            Err(CodecError::TrailingBytes { .. })
        ));
        let firebird = firebird_like();
        let (head, rest) = firebird.split_first_chunk::<16>().unwrap();
        let header = Header::decode(head);
        assert!(matches!(
            decode_parts(&header, &rest[..0x24]),
            Ok(Message::Unknown { .. })
        ));
    }

    #[test]
    fn payload_len_enforces_exact_sizes_and_cap() {
        let header = |from, version, msg_type, payload_len| Header {
            from,
            version,
            msg_type,
            payload_len,
        };
        assert_eq!(payload_len(&header(1, 1, 8, 1032), PAYLOAD_CAP), Ok(1032));
        assert_eq!(payload_len(&header(1, 1, 8, 360), PAYLOAD_CAP), Ok(360));
        assert!(matches!(
            payload_len(&header(1, 1, 8, 1033), PAYLOAD_CAP),
            Err(CodecError::WrongLength { .. })
        ));
        assert!(matches!(
            payload_len(&header(2, 1, 5, 0xd2), PAYLOAD_CAP),
            Err(CodecError::WrongLength { .. })
        ));
        assert_eq!(payload_len(&header(9, 9, 9, 4096), PAYLOAD_CAP), Ok(4096));
        assert!(matches!(
            payload_len(&header(9, 9, 9, 4097), PAYLOAD_CAP),
            Err(CodecError::TooLong {
                len: 4097,
                cap: 4096
            })
        ));
        assert!(matches!(
            payload_len(&header(9, 9, 9, u32::MAX), PAYLOAD_CAP),
            Err(CodecError::TooLong { .. })
        ));
        assert!(matches!(
            payload_len(&header(1, 1, 8, 1032), 100),
            Err(CodecError::TooLong {
                len: 1032,
                cap: 100
            })
        ));
    }

    #[test]
    fn decode_parts_requires_the_declared_length() {
        let frame = from_hex(PROBE);
        let (head, payload) = frame.split_first_chunk::<16>().unwrap();
        let header = Header::decode(head);
        assert_eq!(decode_parts(&header, payload), Ok(Message::Probe));
        assert!(matches!(
            decode_parts(&header, &payload[..4]),
            Err(CodecError::LengthMismatch {
                declared: 8,
                got: 4
            })
        ));
    }

    #[test]
    fn string_fields_are_checked_on_decode() {
        let base = from_hexdump(CONFIG_UPGRADE_DUMP);
        let url_start = 0xb4;

        let mut unterminated = base.clone();
        unterminated[url_start..].fill(b'a');
        assert!(matches!(
            decode(&unterminated),
            Err(CodecError::StringUnterminated { width: 132, .. })
        ));

        let mut not_printable = base.clone();
        not_printable[url_start + 3] = b'\n';
        assert!(matches!(
            decode(&not_printable),
            Err(CodecError::StringNotPrintable {
                position: 3,
                byte: b'\n',
                ..
            })
        ));

        let mut padding = base.clone();
        padding[0x137] = b'x';
        assert!(matches!(
            decode(&padding),
            Err(CodecError::StringPadding { position: 131, .. })
        ));

        let mut longest = base.clone();
        longest[url_start..0x137].fill(b'a');
        let Ok(Message::ConfigUpgrade { url, .. }) = decode(&longest) else {
            panic!("a 131-byte URL decodes");
        };
        assert_eq!(url.len(), CONFIG_URL_MAX);

        let mut reserved = base;
        reserved[0x40] = 1;
        assert!(matches!(
            decode(&reserved),
            Err(CodecError::ReservedNotZero { offset: 0x30, .. })
        ));
    }

    #[test]
    fn constants_and_flags_are_checked_on_decode() {
        let mut frame = from_hexdump(CONFIG_UPGRADE_DUMP);
        frame[0x13] = 4;
        assert!(matches!(
            decode(&frame),
            Err(CodecError::UnexpectedWord {
                offset: 0x10,
                found: 4,
                expected: 3,
                ..
            })
        ));

        let mut frame = from_hexdump(CONFIG_UPGRADE_DUMP);
        frame[0x27] = 2;
        assert!(matches!(
            decode(&frame),
            Err(CodecError::NotAFlag {
                offset: 0x24,
                found: 2,
                ..
            })
        ));

        let mut frame = from_hexdump(CONFIG_UPGRADE_DUMP);
        frame[0x2f] = 60;
        assert!(matches!(
            decode(&frame),
            Err(CodecError::BadReloadTime {
                hours: 0,
                minutes: 60
            })
        ));

        let mut frame = from_hexdump(IMAGE_UPGRADE_DUMP);
        frame[0x17] = 0x22;
        assert!(matches!(
            decode(&frame),
            Err(CodecError::UnknownImageFlags { found: 0x822 })
        ));

        let mut frame = from_hexdump(IMAGE_UPGRADE_DUMP);
        frame[0x1d3] = 0;
        assert!(matches!(
            decode(&frame),
            Err(CodecError::UnexpectedByte {
                offset: 0x1d3,
                found: 0,
                expected: 1,
                ..
            })
        ));
    }

    #[test]
    fn run_cli_tlvs_are_checked_on_decode() {
        let base = from_hexdump(RUN_CLI_DUMP);

        let mut short = base.clone();
        short[0x13] = 3;
        assert!(matches!(
            decode(&short),
            Err(CodecError::TlvTooShort {
                offset: 0x10,
                len: 3
            })
        ));

        let mut overrun = base.clone();
        overrun[0x26..0x28].copy_from_slice(&[0x03, 0xf5]);
        assert!(matches!(
            decode(&overrun),
            Err(CodecError::TlvOverrun {
                offset: 0x24,
                len: 0x3f5
            })
        ));

        let mut wrong_type = base.clone();
        wrong_type[0x25] = 7;
        assert!(matches!(
            decode(&wrong_type),
            Err(CodecError::UnexpectedTlv {
                offset: 0x24,
                tlv_type: 7,
                len: 0x3f4
            })
        ));

        let mut one_slot_claim = base.clone();
        one_slot_claim[0x25] = 2;
        assert!(matches!(
            decode(&one_slot_claim),
            Err(CodecError::UnexpectedTlv { tlv_type: 2, .. })
        ));

        let mut gap = base.clone();
        gap[0x28 + 2 * CLI_SLOT_WIDTH] = b'x';
        gap[0x28..0x28 + 49].fill(0);
        assert!(matches!(
            decode(&gap),
            Err(CodecError::CommandGap { slot: 1 })
        ));

        let mut empty = base;
        empty[0x28..0x28 + 49].fill(0);
        assert!(matches!(
            decode(&empty),
            Err(CodecError::CommandCount { count: 0, max: 3 })
        ));
    }

    #[test]
    fn encoders_refuse_unsafe_or_oversized_input() {
        let config = |url: &str| Message::ConfigUpgrade {
            url: url.into(),
            reload: None,
        };
        assert!(config(&"a".repeat(CONFIG_URL_MAX)).encode().is_ok());
        assert!(matches!(
            config(&"a".repeat(CONFIG_URL_MAX + 1)).encode(),
            Err(CodecError::Unsafe {
                field: "config URL",
                reason: UnsafeText::TooLong { len: 132, max: 131 }
            })
        ));
        assert!(matches!(
            config("tftp://x/a b").encode(),
            Err(CodecError::Unsafe {
                reason: UnsafeText::Space(10),
                ..
            })
        ));
        assert!(matches!(
            config("").encode(),
            Err(CodecError::Unsafe {
                reason: UnsafeText::Empty,
                ..
            })
        ));

        let timed = Message::ConfigUpgrade {
            url: "tftp://x/a".into(),
            reload: Some(ReloadTime {
                hours: 24,
                minutes: 0,
            }),
        };
        assert!(matches!(
            timed.encode(),
            Err(CodecError::BadReloadTime { hours: 24, .. })
        ));

        let execute = Message::ExecuteFile {
            url: "tftp://x/a\r\nreload".into(),
        };
        assert!(matches!(
            execute.encode(),
            Err(CodecError::Unsafe {
                reason: UnsafeText::CarriageReturn(10),
                ..
            })
        ));

        let cli = |commands: Vec<&str>, block| Message::RunCli {
            mac: DEFAULT_CLI_MAC,
            block,
            commands: commands.into_iter().map(String::from).collect(),
        };
        assert!(matches!(
            cli(vec![], CommandBlock::ThreeSlots).encode(),
            Err(CodecError::CommandCount { count: 0, max: 3 })
        ));
        assert!(matches!(
            cli(vec!["a", "b"], CommandBlock::OneSlot).encode(),
            Err(CodecError::CommandCount { count: 2, max: 1 })
        ));
        assert!(matches!(
            cli(vec!["show version", ""], CommandBlock::ThreeSlots).encode(),
            Err(CodecError::Unsafe {
                field: "command slot 2",
                reason: UnsafeText::Empty
            })
        ));
        assert!(matches!(
            cli(vec!["username \"x\""], CommandBlock::ThreeSlots).encode(),
            Err(CodecError::Unsafe {
                reason: UnsafeText::DoubleQuote(9),
                ..
            })
        ));
        let longest = "a".repeat(CLI_COMMAND_MAX);
        assert!(
            cli(vec![&longest], CommandBlock::ThreeSlots)
                .encode()
                .is_ok()
        );

        let unknown = Message::Unknown {
            header: Header {
                from: 9,
                version: 9,
                msg_type: 9,
                payload_len: 3,
            },
            payload: vec![1, 2],
        };
        assert!(matches!(
            unknown.encode(),
            Err(CodecError::LengthMismatch {
                declared: 3,
                got: 2
            })
        ));
    }

    #[test]
    fn cli_safe_names_the_problem() {
        assert_eq!(cli_safe("show version", 100), Ok("show version"));
        assert_eq!(cli_safe("", 100), Err(UnsafeText::Empty));
        assert_eq!(
            cli_safe("abcd", 3),
            Err(UnsafeText::TooLong { len: 4, max: 3 })
        );
        assert_eq!(cli_safe("a\rb", 9), Err(UnsafeText::CarriageReturn(1)));
        assert_eq!(cli_safe("a\nb", 9), Err(UnsafeText::LineFeed(1)));
        assert_eq!(
            cli_safe("a\tb", 9),
            Err(UnsafeText::Control { at: 1, byte: 9 })
        );
        assert_eq!(
            cli_safe("a\x7f", 9),
            Err(UnsafeText::Control { at: 1, byte: 0x7f })
        );
        assert_eq!(cli_safe("a\"b", 9), Err(UnsafeText::DoubleQuote(1)));
        assert_eq!(cli_safe("a'b", 9), Err(UnsafeText::SingleQuote(1)));
        assert_eq!(cli_safe("aé", 9), Err(UnsafeText::NonAscii(1)));
        assert_eq!(url_safe("tftp://192.0.2.1/x", 99), Ok("tftp://192.0.2.1/x"));
        assert_eq!(url_safe("tftp://a b", 99), Err(UnsafeText::Space(8)));
        assert_eq!(url_safe("tftp://a\"", 99), Err(UnsafeText::DoubleQuote(8)));
    }

    /// A small deterministic generator (xorshift64*), so the test needs no crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    /// Decodes `frame` both ways; neither may panic, and whatever decodes and
    /// re-encodes must decode to the same message.
    fn exercise(frame: &[u8]) {
        let whole = decode(frame);
        if let Some((head, rest)) = frame.split_first_chunk::<HEADER_LEN>() {
            let header = Header::decode(head);
            assert_eq!(&header.encode(), head);
            let len = payload_len(&header, PAYLOAD_CAP);
            if let Some(payload) = len.ok().and_then(|len| rest.get(..len)) {
                let parts = decode_parts(&header, payload);
                if payload.len() == rest.len() {
                    assert_eq!(parts, whole);
                }
            }
        }
        if let Some(encoded) = whole.as_ref().ok().and_then(|m| m.encode().ok()) {
            assert_eq!(decode(&encoded).as_ref(), whole.as_ref());
        }
    }

    #[test]
    fn never_panics_on_hostile_input() {
        let mut frames = all_valid_frames();
        frames.extend([
            from_hex(GREENBONE_PROBE),
            embedi_type7(),
            firebird_like(),
            Vec::new(),
        ]);
        for frame in &frames {
            for end in 0..=frame.len() {
                exercise(&frame[..end]);
            }
            let mut longer = frame.clone();
            longer.extend([0u8; 3]);
            exercise(&longer);
        }

        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let exact_lens = [0usize, 1, 4, 8, 296, 360, 452, 528, 1032, 4096, 4097];
        for _ in 0..300 {
            // Random bytes of random length.
            let len = rng.below(1200);
            exercise(&rng.bytes(len));

            // A known header triple with a plausible length and a random payload.
            let triple = [
                (1, 1, 4),
                (4, 0, 3),
                (4, 0, 4),
                (1, 1, 3),
                (1, 1, 2),
                (2, 1, 5),
                (1, 1, 8),
            ][rng.below(7)];
            let w3 = exact_lens[rng.below(exact_lens.len())];
            let mut frame = Header {
                from: triple.0,
                version: triple.1,
                msg_type: triple.2,
                payload_len: w3 as u32,
            }
            .encode()
            .to_vec();
            frame.extend(rng.bytes(w3));
            exercise(&frame);

            // A valid frame with a few bytes flipped.
            let mut mutated = frames[rng.below(frames.len())].clone();
            for _ in 0..=rng.below(4) {
                if !mutated.is_empty() {
                    let at = rng.below(mutated.len());
                    mutated[at] ^= 1 << rng.below(8);
                }
            }
            exercise(&mutated);
        }
    }
}
