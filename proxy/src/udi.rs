//! The Unique Device Identifier (`PID:<pid>,VID:<vid>,SN:<sn>`), the key the
//! PnP server knows a device by. Both the SMI side (which learns it from
//! `show version`) and the PnP side (which sends it) speak of it.
//!
//! Grammar (PIDs may contain `/`, the VID may be empty):
//! ```text
//! udi = "PID:" pid ",VID:" vid ",SN:" sn
//! pid = 1*( %x21-2B / %x2D-7E )   ; printable, no space, no comma
//! vid = *( %x21-2B / %x2D-7E )
//! sn  = 1*( %x21-2B / %x2D-7E )
//! ```
use std::fmt;
use std::str::FromStr;

/// Longest field accepted, in bytes.
pub const FIELD_MAX: usize = 64;

/// A device's UDI.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Udi {
    pid: String,
    vid: String,
    sn: String,
}

/// Why a UDI or one of its fields was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UdiError {
    /// The text does not start with `PID:` or lacks `,VID:` / `,SN:`.
    #[error("UDI {0:?} is not of the form PID:<pid>,VID:<vid>,SN:<sn>")]
    Shape(String),
    /// A field that must not be empty is empty.
    #[error("UDI field {0} is empty")]
    Empty(&'static str),
    /// A field holds a space, comma, control or non-ASCII character.
    #[error(
        "UDI field {field} holds a character outside printable ASCII without space and comma: {value:?}"
    )]
    BadChar {
        /// PID, VID or SN.
        field: &'static str,
        /// The offending value.
        value: String,
    },
    /// A field is longer than [`FIELD_MAX`].
    #[error("UDI field {0} is longer than {FIELD_MAX} bytes")]
    TooLong(&'static str),
}

fn check(field: &'static str, value: &str, may_be_empty: bool) -> Result<(), UdiError> {
    if value.is_empty() && !may_be_empty {
        return Err(UdiError::Empty(field));
    }
    if value.len() > FIELD_MAX {
        return Err(UdiError::TooLong(field));
    }
    if !value
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        return Err(UdiError::BadChar {
            field,
            value: value.to_owned(),
        });
    }
    Ok(())
}

impl Udi {
    /// Builds a UDI from its fields, checking each against the grammar.
    pub fn new(pid: &str, vid: &str, sn: &str) -> Result<Self, UdiError> {
        check("PID", pid, false)?;
        check("VID", vid, true)?;
        check("SN", sn, false)?;
        Ok(Self {
            pid: pid.to_owned(),
            vid: vid.to_owned(),
            sn: sn.to_owned(),
        })
    }

    /// Product ID (model number), e.g. `WS-C3750X-24P-L`.
    pub fn pid(&self) -> &str {
        &self.pid
    }

    /// Version ID, e.g. `V07`; may be empty.
    pub fn vid(&self) -> &str {
        &self.vid
    }

    /// Serial number, e.g. `FDO2028F1WK`.
    pub fn sn(&self) -> &str {
        &self.sn
    }
}

impl fmt::Display for Udi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PID:{},VID:{},SN:{}", self.pid, self.vid, self.sn)
    }
}

impl FromStr for Udi {
    type Err = UdiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shape = || UdiError::Shape(s.chars().take(200).collect());
        let rest = s.strip_prefix("PID:").ok_or_else(shape)?;
        let (pid, rest) = rest.split_once(",VID:").ok_or_else(shape)?;
        let (vid, sn) = rest.split_once(",SN:").ok_or_else(shape)?;
        Self::new(pid, vid, sn)
    }
}

impl TryFrom<String> for Udi {
    type Error = UdiError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Udi> for String {
    fn from(u: Udi) -> Self {
        u.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let u: Udi = "PID:WS-C3750X-24T-E,VID:V04,SN:FDO1703P2EB"
            .parse()
            .unwrap();
        assert_eq!(
            (u.pid(), u.vid(), u.sn()),
            ("WS-C3750X-24T-E", "V04", "FDO1703P2EB")
        );
        assert_eq!(u.to_string(), "PID:WS-C3750X-24T-E,VID:V04,SN:FDO1703P2EB");
    }

    #[test]
    fn pid_with_slash_and_empty_vid() {
        let u: Udi = "PID:CISCO2921/K9,VID:,SN:FOC1234".parse().unwrap();
        assert_eq!((u.pid(), u.vid()), ("CISCO2921/K9", ""));
    }

    #[test]
    fn refuses_bad_input() {
        assert!(matches!(
            "PID:,VID:V1,SN:X".parse::<Udi>(),
            Err(UdiError::Empty("PID"))
        ));
        assert!(matches!(
            "PID:A B,VID:V1,SN:X".parse::<Udi>(),
            Err(UdiError::BadChar { .. })
        ));
        assert!(matches!("SN:X".parse::<Udi>(), Err(UdiError::Shape(_))));
        assert!(matches!(
            "PID:A,VID:V1,SN:".parse::<Udi>(),
            Err(UdiError::Empty("SN"))
        ));
        assert!(matches!(
            Udi::new("A", "V\n", "S"),
            Err(UdiError::BadChar { .. })
        ));
    }
}
