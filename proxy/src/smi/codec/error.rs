//! Why a frame or a message is refused: [`CodecError`], and the text
//! checks ([`cli_safe`], [`url_safe`]) every URL and command passes before it
//! is written into a message or an IOS CLI line.

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
    /// The payload handed to [`decode_parts`](super::decode_parts) or an `Unknown` message does not
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
