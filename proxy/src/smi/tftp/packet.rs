//! TFTP packet codec: bytes in, values out, no I/O.
//!
//! Covers RFC 1350 (RRQ, WRQ, DATA, ACK, ERROR), the option extension of
//! RFC 2347 (options appended to RRQ/WRQ, answered by OACK) and the options
//! `blksize` (RFC 2348) and `tsize`/`timeout` (RFC 2349).
//!
//! Parsing is strict: every string must be NUL-terminated UTF-8, requests,
//! OACKs and ERRORs fit in [`MAX_CONTROL_LEN`] bytes, a DATA block holds at
//! most [`MAX_BLKSIZE`] bytes, ACKs are exactly four bytes, option values are
//! range-checked and an option may appear only once. Unknown options are
//! skipped, as RFC 2347 asks of a server. Any other deviation is a
//! [`DecodeError`].
//!
//! Modes: `octet` and `netascii` are accepted (case-insensitive); `mail` and
//! anything else are refused. The server sends netascii requests the file's
//! bytes unchanged, as octet: the staged files are produced by this project
//! and already use the line endings the switches expect.

use std::fmt;

/// Largest RRQ, WRQ, OACK or ERROR packet accepted (RFC 1350 and RFC 2347).
pub const MAX_CONTROL_LEN: usize = 512;
/// Block size without the `blksize` option.
pub const DEFAULT_BLKSIZE: u16 = 512;
/// Smallest `blksize` value (RFC 2348).
pub const MIN_BLKSIZE: u16 = 8;
/// Largest `blksize` value (RFC 2348).
pub const MAX_BLKSIZE: u16 = 65464;
/// Length of the opcode and block number in front of DATA contents.
pub const DATA_HEADER_LEN: usize = 4;

const OP_RRQ: u16 = 1;
const OP_WRQ: u16 = 2;
const OP_DATA: u16 = 3;
const OP_ACK: u16 = 4;
const OP_ERROR: u16 = 5;
const OP_OACK: u16 = 6;

/// Decimal digits of the largest `u64`; longer `tsize` values are refused.
const MAX_DECIMAL_DIGITS: usize = 20;
/// Smallest `timeout` value in seconds (RFC 2349).
const MIN_TIMEOUT_SECS: u8 = 1;

const OPT_BLKSIZE: &str = "blksize";
const OPT_TSIZE: &str = "tsize";
const OPT_TIMEOUT: &str = "timeout";

/// Transfer mode of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `netascii`: text with CR LF line ends (served as octet, see module doc).
    Netascii,
    /// `octet`: raw bytes.
    Octet,
}

impl Mode {
    /// The mode name as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Netascii => "netascii",
            Mode::Octet => "octet",
        }
    }
}

/// Negotiated options (RFC 2347); `None` means the option is absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// `blksize`: data bytes per block, [`MIN_BLKSIZE`]`..=`[`MAX_BLKSIZE`].
    pub blksize: Option<u16>,
    /// `tsize`: transfer size in bytes (0 in an RRQ asks the server for it).
    pub tsize: Option<u64>,
    /// `timeout`: retransmission timeout in seconds, 1..=255.
    pub timeout: Option<u8>,
}

impl Options {
    /// True when no option is set.
    pub fn is_empty(&self) -> bool {
        self.blksize.is_none() && self.tsize.is_none() && self.timeout.is_none()
    }
}

/// A read or write request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The requested file name, as sent.
    pub filename: String,
    /// Transfer mode.
    pub mode: Mode,
    /// Recognised options; unknown ones are dropped.
    pub options: Options,
}

/// TFTP error codes (RFC 1350, RFC 2347).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 0: not defined, see the message.
    NotDefined,
    /// 1: file not found.
    FileNotFound,
    /// 2: access violation.
    AccessViolation,
    /// 3: disk full or allocation exceeded.
    DiskFull,
    /// 4: illegal TFTP operation.
    IllegalOperation,
    /// 5: unknown transfer ID.
    UnknownTransferId,
    /// 6: file already exists.
    FileExists,
    /// 7: no such user.
    NoSuchUser,
    /// 8: option negotiation refused (RFC 2347).
    OptionNegotiation,
    /// Any other code.
    Other(u16),
}

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::NotDefined => 0,
            ErrorCode::FileNotFound => 1,
            ErrorCode::AccessViolation => 2,
            ErrorCode::DiskFull => 3,
            ErrorCode::IllegalOperation => 4,
            ErrorCode::UnknownTransferId => 5,
            ErrorCode::FileExists => 6,
            ErrorCode::NoSuchUser => 7,
            ErrorCode::OptionNegotiation => 8,
            ErrorCode::Other(code) => code,
        }
    }

    /// The code for a numeric value.
    pub fn from_code(code: u16) -> Self {
        match code {
            0 => ErrorCode::NotDefined,
            1 => ErrorCode::FileNotFound,
            2 => ErrorCode::AccessViolation,
            3 => ErrorCode::DiskFull,
            4 => ErrorCode::IllegalOperation,
            5 => ErrorCode::UnknownTransferId,
            6 => ErrorCode::FileExists,
            7 => ErrorCode::NoSuchUser,
            8 => ErrorCode::OptionNegotiation,
            other => ErrorCode::Other(other),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// One TFTP packet. DATA borrows its contents from the decoded buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Read request (opcode 1).
    Rrq(Request),
    /// Write request (opcode 2).
    Wrq(Request),
    /// Data block (opcode 3).
    Data {
        /// Block number (wraps from 65535 to 0).
        block: u16,
        /// Block contents, at most [`MAX_BLKSIZE`] bytes.
        data: &'a [u8],
    },
    /// Acknowledgement (opcode 4).
    Ack {
        /// Acknowledged block number.
        block: u16,
    },
    /// Error (opcode 5); ends the transfer.
    Error {
        /// Error code.
        code: ErrorCode,
        /// Human-readable message.
        message: String,
    },
    /// Option acknowledgement (opcode 6, RFC 2347).
    Oack(Options),
}

/// Why a datagram is not a valid TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the fixed part of its packet type.
    #[error("packet of {len} bytes is too short")]
    TooShort {
        /// Datagram length.
        len: usize,
    },
    /// Longer than its packet type allows.
    #[error("packet of {len} bytes exceeds the {max}-byte limit")]
    TooLong {
        /// Datagram length.
        len: usize,
        /// Limit for this packet type.
        max: usize,
    },
    /// The opcode is not 1..=6.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    /// A string field lacks its terminating NUL.
    #[error("string field is not NUL-terminated")]
    Unterminated,
    /// A string field is not UTF-8.
    #[error("string field is not valid UTF-8")]
    NotUtf8,
    /// A request names no file.
    #[error("empty file name")]
    EmptyFilename,
    /// A request has a file name but no mode.
    #[error("request has no mode")]
    MissingMode,
    /// The mode is neither `octet` nor `netascii`.
    #[error("unsupported transfer mode {0:?}")]
    UnsupportedMode(String),
    /// An option name has no value after it.
    #[error("option {0:?} has no value")]
    MissingOptionValue(String),
    /// An option name is empty.
    #[error("empty option name")]
    EmptyOptionName,
    /// An option appears twice.
    #[error("option {0:?} appears more than once")]
    DuplicateOption(String),
    /// A known option has a value outside its range.
    #[error("option {name:?} has invalid value {value:?}")]
    InvalidOption {
        /// Option name.
        name: String,
        /// Offending value.
        value: String,
    },
    /// An OACK carries no option.
    #[error("OACK without options")]
    EmptyOack,
    /// Bytes follow the last field.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
}

/// Why a packet cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A string contains a NUL byte.
    #[error("string field contains NUL")]
    NulInString,
    /// A request has an empty file name.
    #[error("empty file name")]
    EmptyFilename,
    /// A DATA block exceeds [`MAX_BLKSIZE`].
    #[error("data block of {0} bytes exceeds {MAX_BLKSIZE}")]
    DataTooLong(usize),
    /// A control packet exceeds [`MAX_CONTROL_LEN`].
    #[error("packet of {0} bytes exceeds {MAX_CONTROL_LEN}")]
    TooLong(usize),
    /// An option value is outside its range.
    #[error("option {0} out of range")]
    InvalidOption(&'static str),
    /// An OACK carries no option.
    #[error("OACK without options")]
    EmptyOack,
}

impl<'a> Packet<'a> {
    /// Decodes one datagram.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let [hi, lo, body @ ..] = buf else {
            return Err(DecodeError::TooShort { len: buf.len() });
        };
        match u16::from_be_bytes([*hi, *lo]) {
            OP_RRQ => Ok(Packet::Rrq(decode_request(buf.len(), body)?)),
            OP_WRQ => Ok(Packet::Wrq(decode_request(buf.len(), body)?)),
            OP_DATA => {
                let [b0, b1, data @ ..] = body else {
                    return Err(DecodeError::TooShort { len: buf.len() });
                };
                if data.len() > usize::from(MAX_BLKSIZE) {
                    return Err(DecodeError::TooLong {
                        len: buf.len(),
                        max: DATA_HEADER_LEN + usize::from(MAX_BLKSIZE),
                    });
                }
                Ok(Packet::Data {
                    block: u16::from_be_bytes([*b0, *b1]),
                    data,
                })
            }
            OP_ACK => match body {
                [b0, b1] => Ok(Packet::Ack {
                    block: u16::from_be_bytes([*b0, *b1]),
                }),
                [_, _, rest @ ..] => Err(DecodeError::TrailingBytes(rest.len())),
                _ => Err(DecodeError::TooShort { len: buf.len() }),
            },
            OP_ERROR => {
                check_control_len(buf.len())?;
                let [c0, c1, text @ ..] = body else {
                    return Err(DecodeError::TooShort { len: buf.len() });
                };
                let mut fields = split_strings(text)?;
                let message = fields.next().ok_or(DecodeError::Unterminated)?;
                if fields.next().is_some() {
                    // The message ends at its first NUL; nothing may follow.
                    let rest = text.len().saturating_sub(message.len().saturating_add(1));
                    return Err(DecodeError::TrailingBytes(rest));
                }
                Ok(Packet::Error {
                    code: ErrorCode::from_code(u16::from_be_bytes([*c0, *c1])),
                    message: message.to_owned(),
                })
            }
            OP_OACK => {
                check_control_len(buf.len())?;
                let options = decode_options(split_strings(body)?)?;
                if options.is_empty() {
                    return Err(DecodeError::EmptyOack);
                }
                Ok(Packet::Oack(options))
            }
            other => Err(DecodeError::UnknownOpcode(other)),
        }
    }

    /// Encodes the packet into `out`, replacing its contents.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.clear();
        match self {
            Packet::Rrq(request) => encode_request(OP_RRQ, request, out)?,
            Packet::Wrq(request) => encode_request(OP_WRQ, request, out)?,
            Packet::Data { block, data } => {
                if data.len() > usize::from(MAX_BLKSIZE) {
                    return Err(EncodeError::DataTooLong(data.len()));
                }
                out.extend_from_slice(&OP_DATA.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
                out.extend_from_slice(data);
            }
            Packet::Ack { block } => {
                out.extend_from_slice(&OP_ACK.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
            }
            Packet::Error { code, message } => {
                out.extend_from_slice(&OP_ERROR.to_be_bytes());
                out.extend_from_slice(&code.code().to_be_bytes());
                put_string(out, message)?;
                check_encoded_len(out.len())?;
            }
            Packet::Oack(options) => {
                if options.is_empty() {
                    return Err(EncodeError::EmptyOack);
                }
                out.extend_from_slice(&OP_OACK.to_be_bytes());
                encode_options(options, out)?;
                check_encoded_len(out.len())?;
            }
        }
        Ok(())
    }

    /// Encodes the packet into a new buffer.
    pub fn to_vec(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }
}

fn check_control_len(len: usize) -> Result<(), DecodeError> {
    if len > MAX_CONTROL_LEN {
        return Err(DecodeError::TooLong {
            len,
            max: MAX_CONTROL_LEN,
        });
    }
    Ok(())
}

fn check_encoded_len(len: usize) -> Result<(), EncodeError> {
    if len > MAX_CONTROL_LEN {
        return Err(EncodeError::TooLong(len));
    }
    Ok(())
}

/// Splits NUL-terminated strings; the body must end with a NUL.
fn split_strings(body: &[u8]) -> Result<impl Iterator<Item = &str>, DecodeError> {
    let Some((&0, fields)) = body.split_last() else {
        return Err(DecodeError::Unterminated);
    };
    let text = std::str::from_utf8(fields).map_err(|_| DecodeError::NotUtf8)?;
    Ok(text.split('\0'))
}

fn decode_request(len: usize, body: &[u8]) -> Result<Request, DecodeError> {
    check_control_len(len)?;
    let mut fields = split_strings(body)?;
    let filename = fields.next().ok_or(DecodeError::Unterminated)?;
    if filename.is_empty() {
        return Err(DecodeError::EmptyFilename);
    }
    let mode = fields.next().ok_or(DecodeError::MissingMode)?;
    let mode = if mode.eq_ignore_ascii_case("octet") {
        Mode::Octet
    } else if mode.eq_ignore_ascii_case("netascii") {
        Mode::Netascii
    } else {
        return Err(DecodeError::UnsupportedMode(mode.to_owned()));
    };
    Ok(Request {
        filename: filename.to_owned(),
        mode,
        options: decode_options(fields)?,
    })
}

fn decode_options<'s>(mut fields: impl Iterator<Item = &'s str>) -> Result<Options, DecodeError> {
    let mut options = Options::default();
    let mut seen_unknown: Vec<&str> = Vec::new();
    while let Some(name) = fields.next() {
        if name.is_empty() {
            return Err(DecodeError::EmptyOptionName);
        }
        let value = fields
            .next()
            .ok_or_else(|| DecodeError::MissingOptionValue(name.to_owned()))?;
        let invalid = || DecodeError::InvalidOption {
            name: name.to_owned(),
            value: value.to_owned(),
        };
        let duplicate = || DecodeError::DuplicateOption(name.to_owned());
        if name.eq_ignore_ascii_case(OPT_BLKSIZE) {
            let size = parse_decimal(value)
                .and_then(|v| u16::try_from(v).ok())
                .filter(|v| (MIN_BLKSIZE..=MAX_BLKSIZE).contains(v))
                .ok_or_else(invalid)?;
            if options.blksize.replace(size).is_some() {
                return Err(duplicate());
            }
        } else if name.eq_ignore_ascii_case(OPT_TSIZE) {
            let size = parse_decimal(value).ok_or_else(invalid)?;
            if options.tsize.replace(size).is_some() {
                return Err(duplicate());
            }
        } else if name.eq_ignore_ascii_case(OPT_TIMEOUT) {
            let secs = parse_decimal(value)
                .and_then(|v| u8::try_from(v).ok())
                .filter(|v| *v >= MIN_TIMEOUT_SECS)
                .ok_or_else(invalid)?;
            if options.timeout.replace(secs).is_some() {
                return Err(duplicate());
            }
        } else if seen_unknown.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return Err(duplicate());
        } else {
            seen_unknown.push(name);
        }
    }
    Ok(options)
}

/// Parses 1 to 20 ASCII digits; no sign, no spaces.
fn parse_decimal(value: &str) -> Option<u64> {
    if value.is_empty()
        || value.len() > MAX_DECIMAL_DIGITS
        || !value.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    value.parse().ok()
}

fn put_string(out: &mut Vec<u8>, s: &str) -> Result<(), EncodeError> {
    if s.as_bytes().contains(&0) {
        return Err(EncodeError::NulInString);
    }
    out.extend_from_slice(s.as_bytes());
    out.push(0);
    Ok(())
}

fn encode_request(op: u16, request: &Request, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if request.filename.is_empty() {
        return Err(EncodeError::EmptyFilename);
    }
    out.extend_from_slice(&op.to_be_bytes());
    put_string(out, &request.filename)?;
    put_string(out, request.mode.as_str())?;
    encode_options(&request.options, out)?;
    check_encoded_len(out.len())
}

fn encode_options(options: &Options, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if let Some(size) = options.blksize {
        if !(MIN_BLKSIZE..=MAX_BLKSIZE).contains(&size) {
            return Err(EncodeError::InvalidOption(OPT_BLKSIZE));
        }
        put_string(out, OPT_BLKSIZE)?;
        put_string(out, &size.to_string())?;
    }
    if let Some(size) = options.tsize {
        put_string(out, OPT_TSIZE)?;
        put_string(out, &size.to_string())?;
    }
    if let Some(secs) = options.timeout {
        if secs < MIN_TIMEOUT_SECS {
            return Err(EncodeError::InvalidOption(OPT_TIMEOUT));
        }
        put_string(out, OPT_TIMEOUT)?;
        put_string(out, &secs.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrq(filename: &str, options: Options) -> Packet<'static> {
        Packet::Rrq(Request {
            filename: filename.to_owned(),
            mode: Mode::Octet,
            options,
        })
    }

    fn all_options() -> Options {
        Options {
            blksize: Some(1468),
            tsize: Some(0),
            timeout: Some(3),
        }
    }

    fn samples() -> Vec<Vec<u8>> {
        let data = [0xa5u8; 600];
        [
            rrq("abc/x.cfg", Options::default()),
            rrq("abc/x.cfg", all_options()),
            Packet::Wrq(Request {
                filename: "up.bin".into(),
                mode: Mode::Netascii,
                options: Options {
                    tsize: Some(123_456),
                    ..Options::default()
                },
            }),
            Packet::Data {
                block: 7,
                data: &data,
            },
            Packet::Data {
                block: 0,
                data: &[],
            },
            Packet::Ack { block: 65535 },
            Packet::Error {
                code: ErrorCode::FileNotFound,
                message: "File not found".into(),
            },
            Packet::Oack(all_options()),
        ]
        .iter()
        .map(|p| p.to_vec().unwrap())
        .collect()
    }

    #[test]
    fn rrq_wire_format() {
        let bytes = rrq("a/b", Options::default()).to_vec().unwrap();
        assert_eq!(bytes, b"\x00\x01a/b\x00octet\x00");
        let bytes = rrq("f", all_options()).to_vec().unwrap();
        assert_eq!(
            bytes,
            b"\x00\x01f\x00octet\x00blksize\x001468\x00tsize\x000\x00timeout\x003\x00"
        );
    }

    #[test]
    fn data_ack_error_oack_wire_format() {
        let data = Packet::Data {
            block: 0x0102,
            data: b"hi",
        };
        assert_eq!(data.to_vec().unwrap(), b"\x00\x03\x01\x02hi");
        assert_eq!(
            Packet::Ack { block: 0xfffe }.to_vec().unwrap(),
            b"\x00\x04\xff\xfe"
        );
        let error = Packet::Error {
            code: ErrorCode::AccessViolation,
            message: "no".into(),
        };
        assert_eq!(error.to_vec().unwrap(), b"\x00\x05\x00\x02no\x00");
        let oack = Packet::Oack(Options {
            tsize: Some(42),
            ..Options::default()
        });
        assert_eq!(oack.to_vec().unwrap(), b"\x00\x06tsize\x0042\x00");
    }

    #[test]
    fn round_trips() {
        for bytes in samples() {
            let packet = Packet::decode(&bytes).unwrap();
            assert_eq!(packet.to_vec().unwrap(), bytes, "{packet:?}");
        }
    }

    #[test]
    fn every_truncation_is_handled() {
        for bytes in samples() {
            for len in 0..bytes.len() {
                let prefix = &bytes[..len];
                if let Ok(packet) = Packet::decode(prefix) {
                    // A shorter DATA block, or a request or OACK that ends
                    // after a complete option: it must still round-trip.
                    assert_eq!(packet.to_vec().unwrap(), prefix, "{packet:?}");
                }
            }
        }
    }

    #[test]
    fn every_single_byte_change_is_handled() {
        for bytes in samples() {
            for at in 0..bytes.len() {
                for value in [0u8, 1, b'/', b'.', 0x7f, 0xff] {
                    let mut changed = bytes.clone();
                    changed[at] = value;
                    let _ = Packet::decode(&changed);
                }
            }
        }
    }

    #[test]
    fn mode_and_option_names_are_case_insensitive() {
        let packet =
            Packet::decode(b"\x00\x01f\x00OcTeT\x00BLKSIZE\x008\x00TSize\x000\x00").unwrap();
        let Packet::Rrq(request) = packet else {
            panic!("not an RRQ: {packet:?}");
        };
        assert_eq!(request.mode, Mode::Octet);
        assert_eq!(request.options.blksize, Some(8));
        assert_eq!(request.options.tsize, Some(0));
        let packet = Packet::decode(b"\x00\x01f\x00NetAscii\x00").unwrap();
        assert!(matches!(
            packet,
            Packet::Rrq(Request {
                mode: Mode::Netascii,
                ..
            })
        ));
    }

    #[test]
    fn unknown_options_are_skipped() {
        let packet = Packet::decode(b"\x00\x01f\x00octet\x00windowsize\x004\x00").unwrap();
        assert_eq!(packet, rrq("f", Options::default()));
    }

    #[test]
    fn malformed_requests_are_refused() {
        let cases: &[(&[u8], DecodeError)] = &[
            (b"", DecodeError::TooShort { len: 0 }),
            (b"\x00", DecodeError::TooShort { len: 1 }),
            (b"\x00\x09", DecodeError::UnknownOpcode(9)),
            (b"\x00\x01", DecodeError::Unterminated),
            (b"\x00\x01f", DecodeError::Unterminated),
            (b"\x00\x01f\x00", DecodeError::MissingMode),
            (b"\x00\x01f\x00octet", DecodeError::Unterminated),
            (b"\x00\x01\x00octet\x00", DecodeError::EmptyFilename),
            (b"\x00\x01f\xff\x00octet\x00", DecodeError::NotUtf8),
            (
                b"\x00\x01f\x00mail\x00",
                DecodeError::UnsupportedMode("mail".into()),
            ),
            (
                b"\x00\x01f\x00octet\x00blksize\x00",
                DecodeError::MissingOptionValue("blksize".into()),
            ),
            (b"\x00\x01f\x00octet\x00\x00", DecodeError::EmptyOptionName),
            (
                b"\x00\x01f\x00octet\x00blksize\x007\x00",
                DecodeError::InvalidOption {
                    name: "blksize".into(),
                    value: "7".into(),
                },
            ),
            (
                b"\x00\x01f\x00octet\x00blksize\x0065465\x00",
                DecodeError::InvalidOption {
                    name: "blksize".into(),
                    value: "65465".into(),
                },
            ),
            (
                b"\x00\x01f\x00octet\x00blksize\x00+512\x00",
                DecodeError::InvalidOption {
                    name: "blksize".into(),
                    value: "+512".into(),
                },
            ),
            (
                b"\x00\x01f\x00octet\x00timeout\x000\x00",
                DecodeError::InvalidOption {
                    name: "timeout".into(),
                    value: "0".into(),
                },
            ),
            (
                b"\x00\x01f\x00octet\x00timeout\x00256\x00",
                DecodeError::InvalidOption {
                    name: "timeout".into(),
                    value: "256".into(),
                },
            ),
            (
                b"\x00\x01f\x00octet\x00tsize\x0018446744073709551616\x00",
                DecodeError::InvalidOption {
                    name: "tsize".into(),
                    value: "18446744073709551616".into(),
                },
            ),
            (
                b"\x00\x01f\x00octet\x00tsize\x000\x00TSIZE\x000\x00",
                DecodeError::DuplicateOption("TSIZE".into()),
            ),
            (
                b"\x00\x01f\x00octet\x00x\x001\x00X\x002\x00",
                DecodeError::DuplicateOption("X".into()),
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(Packet::decode(bytes).as_ref(), Err(expected), "{bytes:?}");
        }
    }

    #[test]
    fn oversized_packets_are_refused() {
        let mut request = b"\x00\x01".to_vec();
        request.extend(std::iter::repeat_n(b'a', MAX_CONTROL_LEN));
        request.extend_from_slice(b"\x00octet\x00");
        assert!(matches!(
            Packet::decode(&request),
            Err(DecodeError::TooLong { .. })
        ));
        let mut data = b"\x00\x03\x00\x01".to_vec();
        data.resize(DATA_HEADER_LEN + usize::from(MAX_BLKSIZE), 0);
        assert!(Packet::decode(&data).is_ok());
        data.push(0);
        assert!(matches!(
            Packet::decode(&data),
            Err(DecodeError::TooLong { .. })
        ));
    }

    #[test]
    fn ack_error_and_oack_are_strict() {
        assert_eq!(
            Packet::decode(b"\x00\x04\x00\x01\x00"),
            Err(DecodeError::TrailingBytes(1))
        );
        assert_eq!(
            Packet::decode(b"\x00\x04\x00"),
            Err(DecodeError::TooShort { len: 3 })
        );
        assert_eq!(
            Packet::decode(b"\x00\x05\x00\x01oops"),
            Err(DecodeError::Unterminated)
        );
        assert_eq!(
            Packet::decode(b"\x00\x05\x00\x01oops\x00x\x00"),
            Err(DecodeError::TrailingBytes(2))
        );
        assert_eq!(
            Packet::decode(b"\x00\x05\x00\x63\x00"),
            Ok(Packet::Error {
                code: ErrorCode::Other(99),
                message: String::new()
            })
        );
        assert_eq!(Packet::decode(b"\x00\x06"), Err(DecodeError::Unterminated));
        assert_eq!(
            Packet::decode(b"\x00\x06x\x001\x00"),
            Err(DecodeError::EmptyOack)
        );
    }

    #[test]
    fn encoder_refuses_what_the_decoder_would() {
        assert_eq!(
            rrq("", Options::default()).to_vec(),
            Err(EncodeError::EmptyFilename)
        );
        assert_eq!(
            rrq("a\0b", Options::default()).to_vec(),
            Err(EncodeError::NulInString)
        );
        assert_eq!(
            rrq("a".repeat(MAX_CONTROL_LEN).as_str(), Options::default()).to_vec(),
            Err(EncodeError::TooLong(MAX_CONTROL_LEN + 9))
        );
        let small = Options {
            blksize: Some(7),
            ..Options::default()
        };
        assert_eq!(
            rrq("f", small).to_vec(),
            Err(EncodeError::InvalidOption("blksize"))
        );
        assert_eq!(
            Packet::Oack(Options::default()).to_vec(),
            Err(EncodeError::EmptyOack)
        );
        let big = vec![0u8; usize::from(MAX_BLKSIZE) + 1];
        assert_eq!(
            Packet::Data {
                block: 1,
                data: &big
            }
            .to_vec(),
            Err(EncodeError::DataTooLong(big.len()))
        );
    }

    #[test]
    fn error_codes_round_trip() {
        for code in 0..=20u16 {
            assert_eq!(ErrorCode::from_code(code).code(), code);
        }
    }
}
