//! The checked cursor the decoders read a payload with: every read is
//! bounds-checked, every error names its frame offset, and a TLV length is
//! checked against the bytes really there before it is used.

use super::{CodecError, HEADER_LEN, ReloadTime, TLV_HEADER_LEN, is_printable};

/// A cursor over (part of) a payload that reports errors with frame offsets.
pub(super) struct Fields<'a> {
    message: &'static str,
    bytes: &'a [u8],
    /// Frame offset of `bytes[0]`.
    base: usize,
    pos: usize,
}

impl<'a> Fields<'a> {
    /// A cursor over a whole payload, which starts at frame offset [`HEADER_LEN`].
    pub(super) fn new(message: &'static str, payload: &'a [u8]) -> Self {
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

    pub(super) fn remaining(&self) -> usize {
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

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let taken = self.take(N)?;
        <[u8; N]>::try_from(taken).map_err(|_| CodecError::Truncated {
            what: self.message,
            needed: N,
            got: taken.len(),
        })
    }

    pub(super) fn word(&mut self) -> Result<u32, CodecError> {
        self.array::<4>().map(u32::from_be_bytes)
    }

    pub(super) fn expect_word(&mut self, expected: u32) -> Result<(), CodecError> {
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

    pub(super) fn expect_byte(&mut self, expected: u8) -> Result<(), CodecError> {
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

    pub(super) fn expect_zeros(&mut self, count: usize) -> Result<(), CodecError> {
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
    pub(super) fn flag(&mut self) -> Result<bool, CodecError> {
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
    pub(super) fn reload_time(&mut self) -> Result<ReloadTime, CodecError> {
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
    pub(super) fn text(&mut self, field: &'static str, width: usize) -> Result<String, CodecError> {
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
    pub(super) fn tlv(&mut self) -> Result<(u16, Fields<'a>), CodecError> {
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
    pub(super) fn unexpected_tlv(&self, tlv_type: u16) -> CodecError {
        let value_len = self.bytes.len().saturating_add(TLV_HEADER_LEN);
        CodecError::UnexpectedTlv {
            offset: self.base.saturating_sub(TLV_HEADER_LEN),
            tlv_type,
            len: u16::try_from(value_len).unwrap_or(u16::MAX),
        }
    }

    /// Requires that every byte was consumed.
    pub(super) fn finish(&self) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(CodecError::TrailingBytes {
                message: self.message,
                count,
            }),
        }
    }
}
