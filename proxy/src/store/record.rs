//! One client's row in the proxy database and the small value types it holds.
//!
//! Every enum has two spellings: [`Display`](fmt::Display) gives the text
//! Cisco prints in `show vstack` output (`NO STATE`, `NOT STARTED`, `**`),
//! and `token()` / `from_token()` give the lower-case identifier used in the
//! database file and in JSON (`no-state`, `not-started`, `not-applicable`).
use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

pub use crate::mac::{Mac, MacError};
use crate::udi::Udi;

/// Declares a fieldless enum with its Cisco display text and its file/JSON
/// token, and derives `Display`, `token()` and `from_token()` from that table.
macro_rules! spelled_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => ($display:literal, $token:literal), )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $token)] $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The identifier used in the database file and in JSON.
            pub fn token(self) -> &'static str {
                match self {
                    $($name::$variant => $token,)+
                }
            }

            /// Parses the identifier written by [`Self::token`].
            pub fn from_token(token: &str) -> Option<Self> {
                match token {
                    $($token => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self {
                    $($name::$variant => $display,)+
                })
            }
        }
    };
}

spelled_enum! {
    /// Where a client is in its conversation with the PnP server (the
    /// `State` column of `show vstack proxy-db`).
    pub enum EntryState {
        /// Known by MAC, not yet announced to the PnP server.
        NoState => ("NO STATE", "no-state"),
        /// Announced to the PnP server (work request sent).
        Hello => ("HELLO", "hello"),
        /// The server asked us to come back later.
        Backoff => ("BACKOFF", "backoff"),
        /// An image or configuration job is running.
        Upgrading => ("UPGRADING", "upgrading"),
        /// The server's work is complete.
        Done => ("DONE", "done"),
        /// The server ended the conversation (`bye`).
        Terminated => ("TERMINATED", "terminated"),
        /// The conversation failed.
        Failed => ("FAILED", "failed"),
    }
}

spelled_enum! {
    /// The kind of download job (`Method` column of `show vstack download-status`).
    pub enum Method {
        /// Image only.
        ImageUpgrade => ("image-upgrade", "image-upgrade"),
        /// Configuration only.
        ConfigUpgrade => ("config-upgrade", "config-upgrade"),
        /// Image, configuration and post-install script.
        ZeroTouch => ("zero-touch", "zero-touch"),
    }
}

spelled_enum! {
    /// Progress of one file of a download job (`Image-status`,
    /// `Config-status`, `Script-status` columns).
    #[derive(Default)]
    pub enum JobStatus {
        /// This file is not part of the job; Cisco prints `**`.
        #[default]
        NotApplicable => ("**", "not-applicable"),
        /// Part of the job, not begun.
        NotStarted => ("NOT STARTED", "not-started"),
        /// Being transferred or installed.
        Upgrading => ("UPGRADING", "upgrading"),
        /// Installed.
        Upgraded => ("UPGRADED", "upgraded"),
        /// Gave up; see the fail reason.
        Failed => ("FAILED", "failed"),
        /// Cut short by the proxy (`no vstack proxy`, a restart); the
        /// server's next attempt picks it up.
        Interrupted => ("INTERRUPTED", "interrupted"),
    }
}

spelled_enum! {
    /// Who gave a client the startup configuration it holds now.
    pub enum ConfigSource {
        /// The proxy's tailored configuration, pushed to identify the client.
        Proxy => ("proxy", "proxy"),
        /// The PnP server, by a config-upgrade job.
        Server => ("PnP server", "pnp-server"),
    }
}

spelled_enum! {
    /// How the proxy knows the version and image a client runs.
    pub enum VersionSource {
        /// Read from the client's own `show version`.
        ShowVersion => ("verified", "show-version"),
        /// The image the proxy installed, not confirmed by the client.
        Installed => ("unverified", "installed"),
    }
}

/// One file (image, configuration or script) of a client's download job.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// How far the transfer got.
    pub status: JobStatus,
    /// Why it failed, if it did (Cisco prints `NA` when there is none).
    pub fail_reason: Option<String>,
    /// When the file was downloaded, in Unix seconds.
    pub downloaded_at: Option<u64>,
}

/// A client's download job: what kind, and the state of each of its files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadJob {
    /// The kind of job; `None` while the client has none.
    pub method: Option<Method>,
    /// The IOS image.
    pub image: Transfer,
    /// The startup configuration.
    pub config: Transfer,
    /// The post-install script.
    pub script: Transfer,
}

/// Everything the proxy keeps about one Smart Install client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    /// The key: one record per MAC, ever.
    pub mac: Mac,
    /// The identity the PnP server knows the client by, once learned.
    pub udi: Option<Udi>,
    /// The client's address, once learned from DHCP.
    pub ip: Option<Ipv4Addr>,
    /// The client's host name (`Switch` until it says otherwise).
    pub hostname: String,
    /// The VLAN the client was learned on.
    pub vlan: u16,
    /// Where the client is in its conversation with the PnP server.
    pub state: EntryState,
    /// Software version from `show version`, e.g. `12.2(55)SE5`.
    pub version: Option<String>,
    /// Image name from `show version`, e.g. `C3750E-UNIVERSALK9-M`.
    pub image: Option<String>,
    /// Where `version` and `image` come from.
    pub version_source: Option<VersionSource>,
    /// Who gave the client its startup configuration (`None`: nobody yet).
    pub config_source: Option<ConfigSource>,
    /// The name of that configuration file.
    pub config_file: Option<String>,
    /// The current or last download job.
    pub job: DownloadJob,
    /// When the client was first seen, in Unix seconds.
    pub first_seen: u64,
    /// When this record last changed, in Unix seconds.
    pub last_change: u64,
}

impl ClientRecord {
    /// A fresh record for a client first seen at `now` (Unix seconds): host
    /// name `Switch`, VLAN 1, state `NO STATE`, nothing else known.
    pub fn new(mac: Mac, now: u64) -> Self {
        Self {
            mac,
            udi: None,
            ip: None,
            hostname: "Switch".to_owned(),
            vlan: 1,
            state: EntryState::NoState,
            version: None,
            image: None,
            version_source: None,
            config_source: None,
            config_file: None,
            job: DownloadJob::default(),
            first_seen: now,
            last_change: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_forms() {
        let want = Mac([0x00, 0x1e, 0xf7, 0x6d, 0xaf, 0x80]);
        for text in ["001e.f76d.af80", "00:1E:F7:6D:AF:80", "00-1e-f7-6d-af-80"] {
            assert_eq!(text.parse::<Mac>(), Ok(want), "{text}");
        }
        assert_eq!(want.to_string(), "001e.f76d.af80");
        for bad in [
            "",
            "001e.f76d",
            "001e.f76d.af8g",
            "00:1e:f7:6d:af",
            "001e:f76d:af80",
            "0+1e.f76d.af80",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    #[test]
    fn enum_spellings() {
        assert_eq!(EntryState::NoState.to_string(), "NO STATE");
        assert_eq!(JobStatus::NotApplicable.to_string(), "**");
        assert_eq!(JobStatus::NotStarted.to_string(), "NOT STARTED");
        for s in EntryState::ALL {
            assert_eq!(EntryState::from_token(s.token()), Some(*s));
        }
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::from_token(s.token()), Some(*s));
        }
        for m in Method::ALL {
            assert_eq!(Method::from_token(m.token()), Some(*m));
        }
        for c in ConfigSource::ALL {
            assert_eq!(ConfigSource::from_token(c.token()), Some(*c));
        }
        for v in VersionSource::ALL {
            assert_eq!(VersionSource::from_token(v.token()), Some(*v));
        }
        assert_eq!(
            serde_json::to_string(&EntryState::NoState).ok().as_deref(),
            Some("\"no-state\"")
        );
    }
}
