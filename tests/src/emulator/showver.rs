//! The emulated switch's own `show version` text, laid out after real
//! outputs of classic-IOS Catalysts (the 3750-X and 2960-X captures in
//! `fixtures/show-version/`), and independent of the proxy's parser and
//! renderer: the proxy must read what a switch prints, not what its own
//! code writes.
//!
//! What the proxy reads from it, as a real switch prints it: the software
//! banner (`..., Version 12.2(55)SE8, RELEASE SOFTWARE (fc2)`), the
//! `<hostname> uptime is ...` line, `System image file is "..."`, the
//! `Processor board ID`, and the padded key/value block (`Model number`,
//! `System serial number`, `Version ID`, absent when the model has none).
//! Lines join with `\n`; the CLI and the TFTP upload turn them into `\r\n`.

/// What an emulated switch reports in `show version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShowVersion {
    /// Product ID, e.g. `WS-C3750X-24P-L`.
    pub pid: String,
    /// Version ID, e.g. `V07`; empty: no `Version ID` line.
    pub vid: String,
    /// System serial number.
    pub sn: String,
    /// Running software version, e.g. `12.2(55)SE8`.
    pub version: String,
    /// Running image, e.g. `flash:c3750e-universalk9-mz.122-55.SE8.bin`.
    pub image: String,
    /// Host name (the uptime line).
    pub hostname: String,
    /// Uptime text, e.g. `9 weeks, 4 days, 2 hours, 3 minutes`.
    pub uptime: String,
    /// Base ethernet MAC address.
    pub mac: [u8; 6],
}

/// Width of the key column of the key/value block (key, then spaces, then
/// `: value`), as classic IOS prints it on these models.
const KEY_WIDTH: usize = 32;

const EXPORT_NOTICE: &str = "\
This product contains cryptographic features and is subject to United
States and local country laws governing import, export, transfer and
use. Delivery of Cisco cryptographic products does not imply
third-party authority to import, export, distribute or use encryption.
Importers, exporters, distributors and users are responsible for
compliance with U.S. and local country laws. By using this product you
agree to comply with applicable laws and regulations. If you are unable
to comply with U.S. and local laws, return this product immediately.

A summary of U.S. laws governing Cisco cryptographic products may be found at:
http://www.cisco.com/wwl/export/crypto/tool/stqrg.html

If you require further assistance please contact us by sending email to
export@cisco.com.";

impl ShowVersion {
    /// The UDI the switch has, in the PnP form `PID:..,VID:..,SN:..`.
    pub fn udi(&self) -> String {
        format!("PID:{},VID:{},SN:{}", self.pid, self.vid, self.sn)
    }

    /// The whole `show version` text, lines joined with `\n`.
    pub fn render(&self) -> String {
        let (family, feature_set) = software_names(&self.image, &self.pid);
        let ports = port_count(&self.pid);
        let mac = self
            .mac
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let mut out: Vec<String> = vec![
            format!(
                "Cisco IOS Software, {family} Software ({feature_set}), Version {}, RELEASE SOFTWARE (fc2)",
                self.version
            ),
            "Technical Support: http://www.cisco.com/techsupport".into(),
            "Copyright (c) 1986-2013 by Cisco Systems, Inc.".into(),
            "Compiled Wed 26-Jun-13 09:56 by prod_rel_team".into(),
            "Image text-base: 0x00003000, data-base: 0x02800000".into(),
            String::new(),
            format!("ROM: Bootstrap program is {family} boot loader"),
            format!(
                "BOOTLDR: {family} Boot Loader ({family}-HBOOT-M) Version 12.2(44)SE5, RELEASE SOFTWARE (fc1)"
            ),
            String::new(),
            format!("{} uptime is {}", self.hostname, self.uptime),
            "System returned to ROM by power-on".into(),
            "System restarted at 12:22:21 UTC Mon Sep 10 2018".into(),
            format!("System image file is \"{}\"", self.image),
            String::new(),
            String::new(),
            EXPORT_NOTICE.into(),
            String::new(),
            format!(
                "cisco {} (PowerPC405) processor (revision A0) with 262144K bytes of memory.",
                self.pid
            ),
            format!("Processor board ID {}", self.sn),
            "Last reset from power-on".into(),
            "1 Virtual Ethernet interface".into(),
            format!("{ports} Gigabit Ethernet interfaces"),
            "The password-recovery mechanism is enabled.".into(),
            String::new(),
            "512K bytes of flash-simulated non-volatile configuration memory.".into(),
        ];
        let mut fields = vec![
            ("Base ethernet MAC Address", mac),
            ("Motherboard assembly number", "73-10390-03".into()),
            ("Motherboard serial number", format!("{}MB", self.sn)),
            ("Model revision number", "A0".into()),
            ("Motherboard revision number", "A0".into()),
            ("Model number", self.pid.clone()),
            ("System serial number", self.sn.clone()),
            ("Top Assembly Part Number", "800-30000-01".into()),
            ("Top Assembly Revision Number", "A0".into()),
        ];
        if !self.vid.is_empty() {
            fields.push(("Version ID", self.vid.clone()));
        }
        fields.push(("CLEI Code Number", "COMDE00ARA".into()));
        fields.push(("Hardware Board Revision Number", "0x01".into()));
        out.extend(
            fields
                .into_iter()
                .map(|(key, value)| format!("{key:<KEY_WIDTH$}: {value}")),
        );
        out.extend([
            String::new(),
            String::new(),
            format!(
                "{:<7}{:<6}{:<26}{:<22}{:<25}",
                "Switch", "Ports", "Model", "SW Version", "SW Image"
            ),
            format!(
                "{:<7}{:<6}{:<26}{:<22}{:<25}",
                "------", "-----", "-----", "----------", "----------"
            ),
            format!(
                "*    1 {ports:<5} {:<25} {:<21} {feature_set:<25}",
                self.pid, self.version
            ),
            String::new(),
            String::new(),
            "Configuration register is 0xF".into(),
            String::new(),
        ]);
        out.join("\n")
    }
}

/// The software family and feature set IOS prints for a running image:
/// `flash:/c2960-lanbasek9-mz.150-2.SE11/c2960-lanbasek9-mz.150-2.SE11.bin`
/// -> (`C2960`, `C2960-LANBASEK9-M`). An image name of another shape falls
/// back to the PID's family (`WS-C3560-24PS-S` -> `C3560`).
fn software_names(image: &str, pid: &str) -> (String, String) {
    let file = image.rsplit(['/', ':']).next().unwrap_or_default();
    let stem = file.split('.').next().unwrap_or_default().to_uppercase();
    if let Some(feature) = stem.strip_suffix("-MZ") {
        let family = feature.split('-').next().unwrap_or_default();
        if !family.is_empty() {
            return (family.to_owned(), format!("{feature}-M"));
        }
    }
    let family = pid
        .strip_prefix("WS-")
        .unwrap_or(pid)
        .split('-')
        .next()
        .unwrap_or_default()
        .to_owned();
    let feature = format!("{family}-UNIVERSALK9-M");
    (family, feature)
}

/// Ports of the model: the access ports its PID names, plus four uplinks
/// (`WS-C2960X-48FPD-L` -> 52); 28 if the PID names none.
fn port_count(pid: &str) -> u32 {
    let access: String = pid
        .split('-')
        .nth(2)
        .unwrap_or_default()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    access.parse::<u32>().map_or(28, |n| n + 4)
}

#[cfg(test)]
mod tests {
    //! The expected lines are copied from the real captures in
    //! `fixtures/show-version/`, not from the proxy's code.
    use super::*;

    fn c3750x() -> ShowVersion {
        ShowVersion {
            pid: "WS-C3750X-24P-L".into(),
            vid: "V07".into(),
            sn: "FDO2028F1WK".into(),
            version: "12.2(55)SE8".into(),
            image: "flash:c3750e-universalk9-mz".into(),
            hostname: "R5".into(),
            uptime: "9 weeks, 4 days, 2 hours, 3 minutes".into(),
            mac: [0x84, 0x3d, 0xc6, 0xff, 0xf1, 0xb8],
        }
    }

    #[test]
    fn lines_the_proxy_reads_are_laid_out_as_on_a_3750x() {
        let text = c3750x().render();
        let lines: Vec<&str> = text.lines().collect();
        // Verbatim from ws-c3750x-24p-l.txt.
        for want in [
            "Cisco IOS Software, C3750E Software (C3750E-UNIVERSALK9-M), Version 12.2(55)SE8, RELEASE SOFTWARE (fc2)",
            "R5 uptime is 9 weeks, 4 days, 2 hours, 3 minutes",
            "System image file is \"flash:c3750e-universalk9-mz\"",
            "Processor board ID FDO2028F1WK",
            "Base ethernet MAC Address       : 84:3D:C6:FF:F1:B8",
            "Model number                    : WS-C3750X-24P-L",
            "System serial number            : FDO2028F1WK",
            "Version ID                      : V07",
            "Configuration register is 0xF",
        ] {
            assert!(lines.contains(&want), "missing {want:?} in\n{text}");
        }
        assert_eq!(c3750x().udi(), "PID:WS-C3750X-24P-L,VID:V07,SN:FDO2028F1WK");
    }

    #[test]
    fn the_switch_table_is_laid_out_as_on_a_2960x() {
        let sv = ShowVersion {
            pid: "WS-C2960X-48FPD-L".into(),
            vid: "V02".into(),
            sn: "FOC4444S23V".into(),
            version: "15.2(2)E7".into(),
            image: "flash:c2960x-universalk9-mz.152-2.E7/c2960x-universalk9-mz.152-2.E7.bin".into(),
            hostname: "testname".into(),
            uptime: "25 weeks, 5 days, 15 hours, 45 minutes".into(),
            mac: [0xcc, 0x44, 0x33, 0xff, 0x99, 0x22],
        };
        let text = sv.render();
        let lines: Vec<&str> = text.lines().collect();
        // From ws-c2960x-48fpd-l-stack.txt (its active switch is number 2,
        // ours number 1; the banner's fc number differs).
        for want in [
            "Switch Ports Model                     SW Version            SW Image                 ",
            "------ ----- -----                     ----------            ----------               ",
            "*    1 52    WS-C2960X-48FPD-L         15.2(2)E7             C2960X-UNIVERSALK9-M     ",
            "ROM: Bootstrap program is C2960X boot loader",
            "System image file is \"flash:c2960x-universalk9-mz.152-2.E7/c2960x-universalk9-mz.152-2.E7.bin\"",
        ] {
            assert!(lines.contains(&want), "missing {want:?} in\n{text}");
        }
        assert!(text.starts_with(
            "Cisco IOS Software, C2960X Software (C2960X-UNIVERSALK9-M), Version 15.2(2)E7, RELEASE SOFTWARE"
        ));
    }

    #[test]
    fn no_version_id_line_without_a_vid_and_no_stack_member_block() {
        let sv = ShowVersion {
            vid: String::new(),
            ..c3750x()
        };
        let text = sv.render();
        assert!(!text.contains("Version ID"), "{text}");
        assert!(
            !text.lines().any(|l| l.starts_with("Switch 0")),
            "a single switch prints no member block"
        );
        assert_eq!(
            software_names("bogus", "WS-C3560-24PS-S"),
            ("C3560".into(), "C3560-UNIVERSALK9-M".into())
        );
    }
}
