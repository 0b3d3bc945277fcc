//! Encoding: [`Message::encode`] and the writers of each message type, which
//! check every URL, command and reload time before writing it.

use std::iter;

use super::{
    CLI_COMMAND_MAX, CLI_SLOT_WIDTH, COMMAND_FILE_URL_MAX, COMMAND_FILE_URL_WIDTH, CONFIG_URL_MAX,
    CONFIG_URL_WIDTH, CodecError, CommandBlock, EXECUTE_NAME_WIDTH, EXECUTE_PATH_WIDTH,
    FROM_CLIENT, FROM_DIRECTOR, FROM_EXECUTOR, HEADER_LEN, Header, IDENTITY_VALUE_LEN,
    IMAGE_FLAGS_IMMEDIATE, IMAGE_FLAGS_TIMED, IMAGE_LIST_URL_MAX, IMAGE_LIST_URL_WIDTH,
    ImageReload, Message, PAYLOAD_CAP, ReloadTime, SLOT_NAMES, TLV_HEADER_LEN, TLV_IDENTITY,
    TYPE_CONFIG_UPGRADE, TYPE_EXECUTE_FILE, TYPE_IMAGE_UPGRADE, TYPE_PROBE, TYPE_RUN_CLI,
    UnsafeText, VERSION_CLIENT, VERSION_DIRECTOR, cli_safe, is_printable, url_safe,
};

impl Message {
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
