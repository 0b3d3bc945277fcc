//! The text form of one record, shared by the snapshot and the journal.
//!
//! A record is one line of tab-separated `key=value` fields, for example
//! (tabs shown as two spaces):
//!
//! ```text
//! mac=001e.f76d.af80  udi=PID:WS-C3750E-48TD,VID:V01,SN:FDO1152V10R  ip=5.1.1.4  hostname=Switch  vlan=1  state=hello  first-seen=1301453259  last-change=1301453260
//! ```
//!
//! Keys, in the order they are written ([`KEYS`]); a key that is absent
//! means "none" (or the default: host name `Switch`, VLAN 1, state
//! `no-state`, job status `not-applicable`):
//!
//! | key | value |
//! |---|---|
//! | `mac` | dotted MAC, required |
//! | `udi` | `PID:..,VID:..,SN:..` |
//! | `ip` | dotted IPv4 |
//! | `hostname` | text |
//! | `vlan` | 1..4094 |
//! | `state` | `no-state`, `hello`, `backoff`, `upgrading`, `done`, `terminated`, `failed` |
//! | `version`, `image` | text from `show version` |
//! | `version-source` | `show-version` (read from the client), `installed` (what the proxy installed, unverified) |
//! | `config-source` | `proxy` (the tailored configuration), `pnp-server` |
//! | `config-file` | name of the startup configuration the client was last given |
//! | `method` | `image-upgrade`, `config-upgrade`, `zero-touch` |
//! | `image-status`, `config-status`, `script-status` | `not-applicable`, `not-started`, `upgrading`, `upgraded`, `failed` |
//! | `image-fail-reason`, `config-fail-reason`, `script-fail-reason` | text |
//! | `image-downloaded-at`, `config-downloaded-at`, `script-downloaded-at` | Unix seconds |
//! | `first-seen`, `last-change` | Unix seconds |
//!
//! In values a backslash, tab, carriage return and line feed are written
//! `\\`, `\t`, `\r` and `\n`, so a record always stays on one line.
use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::record::{
    ClientRecord, ConfigSource, EntryState, JobStatus, Mac, Method, Transfer, VersionSource,
};
use crate::udi::Udi;

/// Every key, in the order [`encode`] writes them.
pub const KEYS: &[&str] = &[
    "mac",
    "udi",
    "ip",
    "hostname",
    "vlan",
    "state",
    "version",
    "image",
    "version-source",
    "config-source",
    "config-file",
    "method",
    "image-status",
    "image-fail-reason",
    "image-downloaded-at",
    "config-status",
    "config-fail-reason",
    "config-downloaded-at",
    "script-status",
    "script-fail-reason",
    "script-downloaded-at",
    "first-seen",
    "last-change",
];

/// Why a record line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// A field has no `=`.
    #[error("field {0:?} is not of the form key=value")]
    NoEquals(String),
    /// A key this version does not know.
    #[error("unknown key {0:?}")]
    UnknownKey(String),
    /// The same key twice on one line.
    #[error("key {0:?} appears twice")]
    DuplicateKey(String),
    /// The line has no `mac=` field.
    #[error("the mac= field is missing")]
    MissingMac,
    /// A backslash not followed by `\`, `t`, `r` or `n`.
    #[error("bad escape sequence in {0:?}")]
    BadEscape(String),
    /// A value that does not parse as its key requires.
    #[error("bad value {value:?} for key {key}")]
    BadValue {
        /// The key.
        key: String,
        /// The value as written.
        value: String,
    },
}

/// Writes `record` as one line, without the line feed.
pub fn encode(record: &ClientRecord) -> String {
    let mut out = String::with_capacity(256);
    let mut put = |key: &str, value: &str| {
        if !out.is_empty() {
            out.push('\t');
        }
        out.push_str(key);
        out.push('=');
        escape_into(&mut out, value);
    };
    put("mac", &record.mac.to_string());
    if let Some(udi) = &record.udi {
        put("udi", &udi.to_string());
    }
    if let Some(ip) = record.ip {
        put("ip", &ip.to_string());
    }
    put("hostname", &record.hostname);
    put("vlan", &record.vlan.to_string());
    put("state", record.state.token());
    if let Some(version) = &record.version {
        put("version", version);
    }
    if let Some(image) = &record.image {
        put("image", image);
    }
    if let Some(source) = record.version_source {
        put("version-source", source.token());
    }
    if let Some(source) = record.config_source {
        put("config-source", source.token());
    }
    if let Some(file) = &record.config_file {
        put("config-file", file);
    }
    if let Some(method) = record.job.method {
        put("method", method.token());
    }
    for (name, transfer) in [
        ("image", &record.job.image),
        ("config", &record.job.config),
        ("script", &record.job.script),
    ] {
        if transfer.status != JobStatus::NotApplicable {
            put(&format!("{name}-status"), transfer.status.token());
        }
        if let Some(reason) = &transfer.fail_reason {
            put(&format!("{name}-fail-reason"), reason);
        }
        if let Some(at) = transfer.downloaded_at {
            put(&format!("{name}-downloaded-at"), &at.to_string());
        }
    }
    put("first-seen", &record.first_seen.to_string());
    put("last-change", &record.last_change.to_string());
    out
}

/// Reads a line written by [`encode`] (without its line feed).
pub fn decode(line: &str) -> Result<ClientRecord, LineError> {
    let mut record = ClientRecord::new(Mac([0; 6]), 0);
    let mut seen = HashSet::new();
    for field in line.split('\t') {
        let (key, raw) = field
            .split_once('=')
            .ok_or_else(|| LineError::NoEquals(field.to_owned()))?;
        if !KEYS.contains(&key) {
            return Err(LineError::UnknownKey(key.to_owned()));
        }
        if !seen.insert(key) {
            return Err(LineError::DuplicateKey(key.to_owned()));
        }
        let value = unescape(raw)?;
        set_field(&mut record, key, value)?;
    }
    if !seen.contains("mac") {
        return Err(LineError::MissingMac);
    }
    Ok(record)
}

/// Stores one already-unescaped `value` under `key` (a member of [`KEYS`]).
fn set_field(record: &mut ClientRecord, key: &str, value: String) -> Result<(), LineError> {
    match key {
        "mac" => record.mac = parse(key, &value)?,
        "udi" => record.udi = Some(parse::<Udi>(key, &value)?),
        "ip" => record.ip = Some(parse::<Ipv4Addr>(key, &value)?),
        "hostname" => record.hostname = value,
        "vlan" => record.vlan = parse(key, &value)?,
        "state" => record.state = token(key, &value, EntryState::from_token)?,
        "version" => record.version = Some(value),
        "image" => record.image = Some(value),
        "version-source" => {
            record.version_source = Some(token(key, &value, VersionSource::from_token)?)
        }
        "config-source" => {
            record.config_source = Some(token(key, &value, ConfigSource::from_token)?)
        }
        "config-file" => record.config_file = Some(value),
        "method" => record.job.method = Some(token(key, &value, Method::from_token)?),
        "first-seen" => record.first_seen = parse(key, &value)?,
        "last-change" => record.last_change = parse(key, &value)?,
        _ => {
            let (file, attribute) = key
                .split_once('-')
                .ok_or_else(|| LineError::UnknownKey(key.to_owned()))?;
            let transfer: &mut Transfer = match file {
                "image" => &mut record.job.image,
                "config" => &mut record.job.config,
                "script" => &mut record.job.script,
                _ => return Err(LineError::UnknownKey(key.to_owned())),
            };
            match attribute {
                "status" => transfer.status = token(key, &value, JobStatus::from_token)?,
                "fail-reason" => transfer.fail_reason = Some(value),
                "downloaded-at" => transfer.downloaded_at = Some(parse(key, &value)?),
                _ => return Err(LineError::UnknownKey(key.to_owned())),
            }
        }
    }
    Ok(())
}

fn bad_value(key: &str, value: &str) -> LineError {
    LineError::BadValue {
        key: key.to_owned(),
        value: value.chars().take(200).collect(),
    }
}

fn parse<T: FromStr>(key: &str, value: &str) -> Result<T, LineError> {
    value.parse().map_err(|_| bad_value(key, value))
}

fn token<T>(key: &str, value: &str, from_token: fn(&str) -> Option<T>) -> Result<T, LineError> {
    from_token(value).ok_or_else(|| bad_value(key, value))
}

fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
}

fn unescape(raw: &str) -> Result<String, LineError> {
    if !raw.contains('\\') {
        return Ok(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            _ => return Err(LineError::BadEscape(raw.chars().take(200).collect())),
        }
    }
    Ok(out)
}

/// Formats `line` with its CRC-32 in front, as the journal stores it:
/// eight lower-case hex digits, a tab, the line, a line feed.
pub fn frame(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 10);
    let _ = writeln!(out, "{:08x}\t{line}", crc32fast::hash(line.as_bytes()));
    out
}

/// Checks and strips the CRC written by [`frame`] (the line feed already
/// removed). `None` if the CRC is missing or does not match.
pub fn unframe(framed: &[u8]) -> Option<&str> {
    let (crc_hex, payload) = framed.split_at_checked(8)?;
    let payload = payload.strip_prefix(b"\t")?;
    let crc_text = std::str::from_utf8(crc_hex).ok()?;
    let crc = u32::from_str_radix(crc_text, 16).ok()?;
    if crc != crc32fast::hash(payload) {
        return None;
    }
    std::str::from_utf8(payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::DownloadJob;

    fn full_record() -> ClientRecord {
        ClientRecord {
            mac: Mac([0x00, 0x1e, 0xf7, 0x6d, 0xaf, 0x80]),
            udi: "PID:WS-C3750E-48TD,VID:V01,SN:FDO1152V10R".parse().ok(),
            ip: Some(Ipv4Addr::new(5, 1, 1, 4)),
            hostname: "sw\\1\tx".to_owned(),
            vlan: 10,
            state: EntryState::Upgrading,
            version: Some("12.2(55)SE5".to_owned()),
            image: Some("C3750E-UNIVERSALK9-M".to_owned()),
            version_source: Some(VersionSource::Installed),
            config_source: Some(ConfigSource::Server),
            config_file: Some("site 1.cfg".to_owned()),
            job: DownloadJob {
                method: Some(Method::ZeroTouch),
                image: Transfer {
                    status: JobStatus::Failed,
                    fail_reason: Some("TFTP timeout\nretrying=no".to_owned()),
                    downloaded_at: None,
                },
                config: Transfer {
                    status: JobStatus::Upgraded,
                    fail_reason: None,
                    downloaded_at: Some(1_301_454_143),
                },
                script: Transfer::default(),
            },
            first_seen: 1_301_453_259,
            last_change: 1_301_454_143,
        }
    }

    #[test]
    fn round_trips() {
        let record = full_record();
        let line = encode(&record);
        assert!(!line.contains('\n'));
        assert_eq!(decode(&line), Ok(record));
        let fresh = ClientRecord::new(Mac([2, 0, 0, 0, 0, 1]), 7);
        assert_eq!(
            encode(&fresh),
            "mac=0200.0000.0001\thostname=Switch\tvlan=1\tstate=no-state\tfirst-seen=7\tlast-change=7"
        );
        assert_eq!(decode(&encode(&fresh)), Ok(fresh));
    }

    #[test]
    fn refuses_bad_lines() {
        assert_eq!(decode("hostname=x"), Err(LineError::MissingMac));
        assert!(matches!(
            decode("mac=0200.0000.0001\tcolour=red"),
            Err(LineError::UnknownKey(_))
        ));
        assert!(matches!(
            decode("mac=0200.0000.0001\tmac=0200.0000.0001"),
            Err(LineError::DuplicateKey(_))
        ));
        assert!(matches!(
            decode("mac=0200.0000.0001\tvlan"),
            Err(LineError::NoEquals(_))
        ));
        assert!(matches!(
            decode("mac=0200.0000.0001\tvlan=x"),
            Err(LineError::BadValue { .. })
        ));
        assert!(matches!(
            decode("mac=0200.0000.0001\thostname=a\\q"),
            Err(LineError::BadEscape(_))
        ));
        assert!(matches!(
            decode("mac=0200.0000.0001\timage-colour=x"),
            Err(LineError::UnknownKey(_))
        ));
    }

    #[test]
    fn frames_and_checks_crc() {
        let framed = frame("mac=0200.0000.0001");
        let body = framed.strip_suffix('\n').unwrap_or_default();
        assert_eq!(unframe(body.as_bytes()), Some("mac=0200.0000.0001"));
        let mut flipped = body.as_bytes().to_vec();
        if let Some(last) = flipped.last_mut() {
            *last ^= 1;
        }
        assert_eq!(unframe(&flipped), None);
        assert_eq!(unframe(b"1234"), None);
    }
}
