//! A client's Ethernet MAC address: the one type, formatter and parser
//! every part uses (the kernel map key, the database key, the PnP agent's
//! identity, the DHCP server's bindings).
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A client's Ethernet MAC address, the key Smart Install knows it by.
///
/// Printed the Cisco way (`001e.f76d.af80`); parsed from the dotted, the
/// colon (`00:1e:f7:6d:af:80`) or the dash (`00-1e-f7-6d-af-80`) form, in
/// either case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mac(pub [u8; 6]);

/// Why a MAC address text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a MAC address (expected 001e.f76d.af80, 00:1e:f7:6d:af:80 or 00-1e-f7-6d-af-80)"
)]
pub struct MacError(pub String);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}{:02x}.{:02x}{:02x}.{:02x}{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for Mac {
    type Err = MacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let refuse = || MacError(s.chars().take(40).collect());
        // Each form is a list of hex groups of a fixed count and width.
        let (groups, group_len): (Vec<&str>, usize) = if s.contains('.') {
            (s.split('.').collect(), 4)
        } else if s.contains(':') {
            (s.split(':').collect(), 2)
        } else {
            (s.split('-').collect(), 2)
        };
        if groups.len() * group_len != 12 {
            return Err(refuse());
        }
        let mut hex = String::with_capacity(12);
        for group in groups {
            if group.len() != group_len || !group.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(refuse());
            }
            hex.push_str(group);
        }
        let mut bytes = [0u8; 6];
        for (i, byte) in bytes.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).ok_or_else(refuse)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| refuse())?;
        }
        Ok(Mac(bytes))
    }
}

impl TryFrom<String> for Mac {
    type Error = MacError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Mac> for String {
    fn from(mac: Mac) -> Self {
        mac.to_string()
    }
}
