//! Parser for the IOS `show version` output of legacy Catalyst switches
//! (2940, 2960, 3560, 3750, 4500 families), text in, values out, no I/O.
//!
//! What is read, from the first switch's block only (in a stack the active
//! switch's block comes first; member blocks start at a `Switch 0N` line):
//!
//! | Field    | Source line |
//! |----------|-------------|
//! | PID      | `Model number : WS-C3750X-24P-L`; else `cisco WS-C4507R+E (MPC8572) processor ...` |
//! | VID      | `Version ID : V07`; empty when the model prints none (2940, 4500) |
//! | SN       | `System serial number : FDO2028F1WK`; else `Processor board ID FXS1729E2S3` |
//! | version  | `... Software (...), Version 12.2(55)SE8, RELEASE SOFTWARE (fc2)` |
//! | image    | `System image file is "flash:c3750e-universalk9-mz"` |
//! | hostname, uptime | `R5 uptime is 9 weeks, 4 days, 2 hours, 3 minutes` |
//!
//! Key/value lines are `Key<spaces>: value`; keys are compared without regard
//! to ASCII case (IOS-XE prints `Model Number`). The fallbacks serve the 4500
//! (IOS-XE on a supervisor), which prints no `Model number` / `System serial
//! number` lines: there the chassis PID is on the processor line and the
//! chassis serial is the processor board ID. When both forms are present
//! (e.g. the 2940, whose board ID differs from its system serial), the
//! key/value line wins.

use crate::udi::{Udi, UdiError};

/// Largest `show version` text accepted; real outputs, even of stacks, are
/// well under 20 KiB.
pub const INPUT_MAX: usize = 64 * 1024;

const MODEL_NUMBER: &str = "Model number";
const VERSION_ID: &str = "Version ID";
const SYSTEM_SERIAL: &str = "System serial number";

/// The facts the proxy needs from one `show version` output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShowVersion {
    /// Product ID, e.g. `WS-C3750X-24P-L`.
    pub pid: String,
    /// Version ID, e.g. `V07`; empty if the model prints none.
    pub vid: String,
    /// Serial number, e.g. `FDO2028F1WK`.
    pub sn: String,
    /// Software version, e.g. `12.2(55)SE8`.
    pub version: Option<String>,
    /// Running image, e.g. `flash:c3750e-universalk9-mz`.
    pub image: Option<String>,
    /// Host name, from the uptime line.
    pub hostname: Option<String>,
    /// Uptime text, e.g. `9 weeks, 4 days, 2 hours, 3 minutes`.
    pub uptime: Option<String>,
}

/// Why a `show version` text could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShowVersionError {
    /// The text is larger than [`INPUT_MAX`].
    #[error("show version output is {len} bytes, more than the limit of {max}")]
    TooLong {
        /// Length of the text.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A mandatory field is missing (or empty) in the first switch's block.
    #[error("show version output has no {0:?} line")]
    Missing(&'static str),
}

impl ShowVersion {
    /// The device's UDI, with each field checked against the UDI grammar.
    pub fn udi(&self) -> Result<Udi, UdiError> {
        Udi::new(&self.pid, &self.vid, &self.sn)
    }
}

/// Parses a `show version` output.
///
/// Fails with [`ShowVersionError::Missing`] naming `Model number` or `System
/// serial number` when neither the key/value line nor its fallback is present.
pub fn parse(text: &str) -> Result<ShowVersion, ShowVersionError> {
    if text.len() > INPUT_MAX {
        return Err(ShowVersionError::TooLong {
            len: text.len(),
            max: INPUT_MAX,
        });
    }
    let block: Vec<&str> = text
        .lines()
        .map(clean_line)
        .take_while(|line| !is_member_header(line))
        .collect();
    // The value `find` yields for the first block line that has one.
    let first = |find: fn(&str) -> Option<&str>| block.iter().find_map(|line| find(line));

    let pid = first(|line| value_of(line, MODEL_NUMBER))
        .or_else(|| first(processor_pid))
        .ok_or(ShowVersionError::Missing(MODEL_NUMBER))?;
    let sn = first(|line| value_of(line, SYSTEM_SERIAL))
        .or_else(|| first(processor_board_id))
        .ok_or(ShowVersionError::Missing(SYSTEM_SERIAL))?;
    let vid = first(|line| value_of(line, VERSION_ID)).unwrap_or_default();
    let host_and_uptime = block.iter().find_map(|line| hostname_and_uptime(line));

    Ok(ShowVersion {
        pid: pid.to_owned(),
        vid: vid.to_owned(),
        sn: sn.to_owned(),
        version: first(software_version).map(str::to_owned),
        image: first(image_file).map(str::to_owned),
        hostname: host_and_uptime.map(|(host, _)| host.to_owned()),
        uptime: host_and_uptime.map(|(_, uptime)| uptime.to_owned()),
    })
}

/// Drops the residue of a `--More--` pager prompt (erased with backspaces
/// on a terminal) and surrounding white space.
fn clean_line(line: &str) -> &str {
    line.rsplit('\u{8}').next().unwrap_or(line).trim()
}

/// `Switch 02`: the start of a stack member's block.
fn is_member_header(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("Switch") else {
        return false;
    };
    let number = rest.trim_start();
    number.len() < rest.len() && !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())
}

/// The non-empty value of a `Key<spaces>: value` line whose key is `key`.
fn value_of<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let (found, value) = line.split_once(':')?;
    let value = value.trim();
    (found.trim().eq_ignore_ascii_case(key) && !value.is_empty()).then_some(value)
}

/// `cisco WS-C4507R+E (MPC8572) processor (revision 10) with ...` → the PID.
fn processor_pid(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("cisco ")?;
    let (pid, cpu) = rest.split_once(' ')?;
    let is_processor_line = cpu.starts_with('(') && cpu.contains(") processor");
    (is_processor_line && !pid.is_empty()).then_some(pid)
}

/// `Processor board ID FXS1729E2S3` → the ID (up to a space or comma).
fn processor_board_id(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("Processor board ID")?;
    let id = rest.trim_start().split([' ', ',']).next()?;
    (!id.is_empty()).then_some(id)
}

/// The token after `, Version ` on the software banner line, e.g.
/// `IOS (tm) C2940 Software (C2940-I6K2L2Q4-M), Version 12.1(22)EA12, RELEASE ...`.
/// Boot loader lines (`BOOTLDR: ...`) do not say "Software" and are skipped.
fn software_version(line: &str) -> Option<&str> {
    if !line.contains(" Software") {
        return None;
    }
    let (_, rest) = line.split_once(", Version ")?;
    let version = rest.split([',', ' ']).next()?;
    (!version.is_empty()).then_some(version)
}

/// `System image file is "flash:..."` → the quoted path.
fn image_file(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("System image file is \"")?;
    let (image, _) = rest.split_once('"')?;
    (!image.is_empty()).then_some(image)
}

/// `<hostname> uptime is <uptime>` → both parts; the host name is one word.
fn hostname_and_uptime(line: &str) -> Option<(&str, &str)> {
    let (host, uptime) = line.split_once(" uptime is ")?;
    let uptime = uptime.trim();
    let valid = !host.is_empty() && !host.contains(char::is_whitespace) && !uptime.is_empty();
    valid.then_some((host, uptime))
}

/// Renders a realistic `show version` text, modelled on a single Catalyst
/// 3750-X running classic IOS, for the switch emulator.
///
/// Values are written verbatim; lines whose optional value is `None` (and the
/// `Version ID` line when `vid` is empty) are left out, so that
/// `parse(&render_legacy(v)) == Ok(v)` for values that `parse` can produce.
/// The uptime line needs both `hostname` and `uptime`.
pub fn render_legacy(info: &ShowVersion) -> String {
    let family = info
        .pid
        .trim_start_matches("WS-")
        .split('-')
        .next()
        .unwrap_or_default();
    let feature_set = info
        .image
        .as_deref()
        .map(feature_set_of)
        .unwrap_or_else(|| format!("{family}-UNIVERSALK9-M"));
    let version = info.version.as_deref().unwrap_or("unknown");

    let mut lines: Vec<String> = Vec::new();
    lines.push(match &info.version {
        Some(v) => format!(
            "Cisco IOS Software, {family} Software ({feature_set}), Version {v}, RELEASE SOFTWARE (fc1)"
        ),
        None => format!("Cisco IOS Software, {family} Software ({feature_set}), RELEASE SOFTWARE (fc1)"),
    });
    lines.extend(
        [
            "Technical Support: http://www.cisco.com/techsupport",
            "Copyright (c) 1986-2013 by Cisco Systems, Inc.",
            "Compiled Wed 26-Jun-13 09:56 by prod_rel_team",
            "",
            &format!("ROM: Bootstrap program is {family} boot loader"),
            "",
        ]
        .map(String::from),
    );
    if let (Some(host), Some(uptime)) = (&info.hostname, &info.uptime) {
        lines.push(format!("{host} uptime is {uptime}"));
    }
    lines.push("System returned to ROM by power-on".into());
    if let Some(image) = &info.image {
        lines.push(format!("System image file is \"{image}\""));
    }
    lines.extend(
        [
            "",
            "License Level: ipbase",
            "License Type: Permanent",
            "Next reload license Level: ipbase",
            "",
            &format!(
                "cisco {} (PowerPC405) processor (revision A0) with 262144K bytes of memory.",
                info.pid
            ),
            &format!("Processor board ID {}", info.sn),
            "Last reset from power-on",
            "1 Virtual Ethernet interface",
            "28 Gigabit Ethernet interfaces",
            "The password-recovery mechanism is enabled.",
            "",
            "512K bytes of flash-simulated non-volatile configuration memory.",
            "Model revision number           : A0",
            "Motherboard revision number     : A0",
            &format!("Model number                    : {}", info.pid),
            &format!("System serial number            : {}", info.sn),
        ]
        .map(String::from),
    );
    if !info.vid.is_empty() {
        lines.push(format!("Version ID                      : {}", info.vid));
    }
    lines.extend(
        [
            "",
            "",
            "Switch Ports Model              SW Version            SW Image",
            "------ ----- -----              ----------            ----------",
            &format!(
                "*    1 28    {:<18} {:<21} {feature_set}",
                info.pid, version
            ),
            "",
            "",
            "Configuration register is 0xF",
            "",
        ]
        .map(String::from),
    );
    lines.join("\n")
}

/// `flash:c3750e-universalk9-mz.122-55.SE8.bin` → `C3750E-UNIVERSALK9-M`
/// (the file name up to its first dot, upper case, without the trailing `z`
/// that marks a compressed image).
fn feature_set_of(image: &str) -> String {
    let file = image.rsplit([':', '/']).next().unwrap_or(image);
    let stem = file.split('.').next().unwrap_or(file).to_ascii_uppercase();
    match stem.strip_suffix("-MZ") {
        Some(base) => format!("{base}-M"),
        None => stem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const EXPECTED_TSV: &str = include_str!("../../tests/fixtures/show-version/expected.tsv");

    fn fixture_dir() -> &'static Path {
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/show-version"
        ))
    }

    #[test]
    fn fixtures_give_the_expected_udi() {
        let mut checked = Vec::new();
        for row in EXPECTED_TSV
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
        {
            let fields: Vec<&str> = row.split('\t').collect();
            let [file, pid, vid, sn] = fields[..] else {
                panic!("expected.tsv row {row:?} does not have 4 columns");
            };
            let text = std::fs::read_to_string(fixture_dir().join(file)).unwrap();
            let parsed = parse(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(
                (parsed.pid.as_str(), parsed.vid.as_str(), parsed.sn.as_str()),
                (pid, vid, sn),
                "{file}"
            );
            let udi = parsed.udi().unwrap();
            assert_eq!(udi.to_string(), format!("PID:{pid},VID:{vid},SN:{sn}"));
            checked.push(file.to_owned());
        }
        let mut on_disk: Vec<String> = std::fs::read_dir(fixture_dir())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".txt"))
            .collect();
        on_disk.sort();
        checked.sort();
        assert_eq!(checked, on_disk, "every fixture is listed in expected.tsv");
    }

    #[test]
    fn fixtures_give_the_optional_fields() {
        let read = |file: &str| {
            let text = std::fs::read_to_string(fixture_dir().join(file)).unwrap();
            parse(&text).unwrap()
        };
        let c3750 = read("ws-c3750x-24p-l.txt");
        assert_eq!(c3750.version.as_deref(), Some("12.2(55)SE8"));
        assert_eq!(c3750.image.as_deref(), Some("flash:c3750e-universalk9-mz"));
        assert_eq!(c3750.hostname.as_deref(), Some("R5"));
        assert_eq!(
            c3750.uptime.as_deref(),
            Some("9 weeks, 4 days, 2 hours, 3 minutes")
        );

        let c2940 = read("ws-c2940-8tt-s.txt");
        assert_eq!(c2940.version.as_deref(), Some("12.1(22)EA12"));
        assert_eq!(
            c2940.image.as_deref(),
            Some("flash:f1111-aei43934-mz.121-22.EA12.bin")
        );
        assert_eq!(c2940.hostname.as_deref(), Some("testsw01"));

        let stack = read("ws-c2960x-48fpd-l-stack.txt");
        assert_eq!(stack.version.as_deref(), Some("15.2(2)E7"));
        assert_eq!(stack.hostname.as_deref(), Some("testname"));
    }

    /// Modelled on a Catalyst 4507R+E with a Sup7-E on IOS-XE: no "Model number",
    /// "System serial number" or "Version ID" lines, and no comma after the version.
    const C4500_SYNTHETIC: &str = "\
Cisco IOS Software, IOS-XE Software, Catalyst 4500 L3 Switch Software (cat4500e-UNIVERSALK9-M), Version 03.06.06.E RELEASE SOFTWARE (fc1)
Technical Support: http://www.cisco.com/techsupport
Copyright (c) 1986-2016 by Cisco Systems, Inc.

Cisco IOS-XE software, Copyright (c) 2005-2016 by cisco Systems, Inc.
All rights reserved.

ROM: 15.0(1r)SG10
core-4500 uptime is 2 weeks, 4 days, 5 hours, 35 minutes
Uptime for this control processor is 2 weeks, 4 days, 5 hours, 37 minutes
System returned to ROM by reload
System image file is \"bootflash:cat4500e-universalk9.SPA.03.06.06.E.152-2.E6.bin\"
Last reload reason: Reload command

License Information for 'WS-X45-SUP7-E'
    License Level: entservices   Type: Permanent
    Next reboot license Level: entservices

cisco WS-C4507R+E (MPC8572) processor (revision 10) with 2097152K/20480K bytes of memory.
Processor board ID FXS1729E2S3
MPC8572 CPU at 1.5GHz, Supervisor 7
Last reset from Reload
5 Virtual Ethernet interfaces
48 Gigabit Ethernet interfaces
4 Ten Gigabit Ethernet interfaces
511K bytes of non-volatile configuration memory.

Configuration register is 0x2102
";

    #[test]
    fn c4500_falls_back_to_processor_line_and_board_id() {
        let parsed = parse(C4500_SYNTHETIC).unwrap();
        assert_eq!(parsed.pid, "WS-C4507R+E");
        assert_eq!(parsed.vid, "");
        assert_eq!(parsed.sn, "FXS1729E2S3");
        assert_eq!(parsed.version.as_deref(), Some("03.06.06.E"));
        assert_eq!(
            parsed.image.as_deref(),
            Some("bootflash:cat4500e-universalk9.SPA.03.06.06.E.152-2.E6.bin")
        );
        assert_eq!(parsed.hostname.as_deref(), Some("core-4500"));
        assert_eq!(
            parsed.udi().unwrap().to_string(),
            "PID:WS-C4507R+E,VID:,SN:FXS1729E2S3"
        );
    }

    #[test]
    fn stack_members_are_ignored_and_keys_ignore_case() {
        // The first block lacks a Version ID; the member's must not be taken.
        let text = "\
Cisco IOS Software, C3560 Software (C3560-IPBASEK9-M), Version 12.2(55)SE12, RELEASE SOFTWARE (fc2)\r
sw1 uptime is 1 day, 2 hours\r
MODEL NUMBER: WS-C3560-24PS-S\r
system serial number   :   FDO1111A1AA  \r
\r
Switch 02\r
---------\r
Switch Uptime                   : 1 day, 2 hours\r
Model number                    : WS-C3560-48PS-S\r
System serial number            : FDO2222B2BB\r
Version ID                      : V09\r
";
        let parsed = parse(text).unwrap();
        assert_eq!(
            (parsed.pid.as_str(), parsed.vid.as_str(), parsed.sn.as_str()),
            ("WS-C3560-24PS-S", "", "FDO1111A1AA")
        );
        assert_eq!(parsed.version.as_deref(), Some("12.2(55)SE12"));
        assert_eq!(parsed.uptime.as_deref(), Some("1 day, 2 hours"));
    }

    #[test]
    fn pager_residue_is_dropped() {
        let text = "Model number : WS-C2960-24TT-L\n --More-- \u{8}\u{8}\u{8}\u{8}        \u{8}\u{8}\u{8}\u{8}System serial number : FOC1234X0YZ\n";
        let parsed = parse(text).unwrap();
        assert_eq!(parsed.sn, "FOC1234X0YZ");
    }

    #[test]
    fn missing_fields_are_named() {
        assert_eq!(parse(""), Err(ShowVersionError::Missing("Model number")));
        assert_eq!(
            parse("Model number : X\n"),
            Err(ShowVersionError::Missing("System serial number"))
        );
        assert_eq!(
            parse("Model number :\nSystem serial number : S\n"),
            Err(ShowVersionError::Missing("Model number"))
        );
        let huge = "x".repeat(INPUT_MAX + 1);
        assert_eq!(
            parse(&huge),
            Err(ShowVersionError::TooLong {
                len: INPUT_MAX + 1,
                max: INPUT_MAX
            })
        );
    }

    #[test]
    fn bad_udi_fields_are_reported_by_udi() {
        let parsed = parse("Model number : WS C2960\nSystem serial number : S1\n").unwrap();
        assert!(matches!(
            parsed.udi(),
            Err(UdiError::BadChar { field: "PID", .. })
        ));
    }

    #[test]
    fn render_legacy_round_trips() {
        let full = ShowVersion {
            pid: "WS-C3750X-24P-L".into(),
            vid: "V07".into(),
            sn: "FDO2028F1WK".into(),
            version: Some("12.2(55)SE8".into()),
            image: Some("flash:c3750e-universalk9-mz.122-55.SE8.bin".into()),
            hostname: Some("R5".into()),
            uptime: Some("9 weeks, 4 days, 2 hours, 3 minutes".into()),
        };
        let text = render_legacy(&full);
        assert!(text.starts_with(
            "Cisco IOS Software, C3750X Software (C3750E-UNIVERSALK9-M), Version 12.2(55)SE8,"
        ));
        assert_eq!(parse(&text), Ok(full));

        let minimal = ShowVersion {
            pid: "WS-C2940-8TT-S".into(),
            sn: "FOC6666U4BB".into(),
            ..ShowVersion::default()
        };
        assert_eq!(parse(&render_legacy(&minimal)), Ok(minimal));
    }

    #[test]
    fn never_panics_on_odd_input() {
        let samples = [
            "\u{8}",
            "Switch",
            "Switch 1",
            ":",
            "cisco ",
            "cisco X (",
            "Processor board ID",
            "Processor board ID ,",
            "System image file is \"",
            " uptime is ",
            "a uptime is ",
            "IOS Software, Version ",
            "Model number: é\u{0}\nSystem serial number: ü",
        ];
        for sample in samples {
            let _ = parse(sample);
        }
        let fixture = std::fs::read_to_string(fixture_dir().join("ws-c3750x-24p-l.txt")).unwrap();
        for (end, _) in fixture.char_indices() {
            let _ = parse(&fixture[..end]);
        }
    }
}
