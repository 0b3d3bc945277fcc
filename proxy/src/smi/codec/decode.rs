//! Decoding: the payload length check that comes before any read or
//! allocation ([`payload_len`]), whole frames ([`decode`]), header and
//! payload read separately ([`decode_parts`]), and one decoder per
//! fixed-layout message type.

use super::fields::Fields;
use super::{
    CLI_SLOT_WIDTH, COMMAND_FILE_URL_WIDTH, CONFIG_URL_WIDTH, CodecError, CommandBlock,
    EXECUTE_NAME_WIDTH, EXECUTE_PATH_WIDTH, HEADER_LEN, Header, IDENTITY_VALUE_LEN,
    IMAGE_FLAGS_IMMEDIATE, IMAGE_FLAGS_TIMED, IMAGE_LIST_URL_WIDTH, ImageReload, Kind, Message,
    PAYLOAD_CAP, PROBE_EXTRA_BYTES, SLOT_NAMES, TLV_IDENTITY, TLV_ONE_SLOT, TLV_THREE_SLOTS,
};

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
