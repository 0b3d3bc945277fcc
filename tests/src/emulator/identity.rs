//! Who an emulated switch is: model, VID, serial, MAC, software version,
//! image file name and uptime text, all deterministic from its index.
use std::time::Duration;

/// One Catalyst model the emulator can play.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Model {
    /// Product ID, e.g. `WS-C2960-24TT-L`.
    pub pid: &'static str,
    /// Serial number prefix (factory code), e.g. `FOC`.
    pub serial_prefix: &'static str,
    /// Running image stem, e.g. `c2960-lanbasek9-mz`.
    pub image_stem: &'static str,
}

/// The default mix, cycled through by switch index.
pub const MODELS: [Model; 5] = [
    Model {
        pid: "WS-C2960-24TT-L",
        serial_prefix: "FOC",
        image_stem: "c2960-lanbasek9-mz",
    },
    Model {
        pid: "WS-C2960X-48FPD-L",
        serial_prefix: "FOC",
        image_stem: "c2960x-universalk9-mz",
    },
    Model {
        pid: "WS-C3560-24PS-S",
        serial_prefix: "FDO",
        image_stem: "c3560-ipbasek9-mz",
    },
    Model {
        pid: "WS-C3750X-24P-L",
        serial_prefix: "FDO",
        image_stem: "c3750e-universalk9-mz",
    },
    Model {
        pid: "WS-C3750E-48TD",
        serial_prefix: "FDO",
        image_stem: "c3750e-universalk9-mz",
    },
];

/// The two software versions of the default mix.
pub const VERSIONS: [&str; 2] = ["12.2(55)SE8", "15.0(2)SE11"];

/// Looks up a model of [`MODELS`] by PID.
pub fn model(pid: &str) -> Option<Model> {
    MODELS.iter().copied().find(|m| m.pid == pid)
}

/// `00:1e:f7:NN:NN:NN` with the low 24 bits of `index`.
pub fn mac_for(index: u32) -> [u8; 6] {
    let [_, a, b, c] = index.to_be_bytes();
    [0x00, 0x1e, 0xf7, a, b, c]
}

/// `<prefix>1234X<index in base 36, 3 digits>`, e.g. `FOC1234X00A`:
/// eleven characters, unique for the first 46 656 indexes.
pub fn serial_for(prefix: &str, index: u32) -> String {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut n = index % 46_656;
    let mut tail = [b'0'; 3];
    for slot in tail.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    format!("{prefix}1234X{}", String::from_utf8_lossy(&tail))
}

/// `V01`..`V07`, deterministic from `index`.
pub fn vid_for(index: u32) -> String {
    format!("V0{}", 1 + index % 7)
}

/// `12.2(55)SE8` -> `122-55.SE8`, the tag IOS puts in image file names.
pub fn version_tag(version: &str) -> String {
    let Some((train, rest)) = version.split_once('(') else {
        return version.replace('.', "");
    };
    let Some((rebuild, suffix)) = rest.split_once(')') else {
        return version.replace(['.', '(', ')'], "");
    };
    format!("{}-{rebuild}.{suffix}", train.replace('.', ""))
}

/// `122-55.SE8` -> `12.2(55)SE8`; `None` if the tag has another shape.
pub fn version_from_tag(tag: &str) -> Option<String> {
    let (train, rest) = tag.split_once('-')?;
    let (rebuild, suffix) = rest.split_once('.')?;
    let valid = train.len() >= 2
        && train.bytes().all(|b| b.is_ascii_digit())
        && !rebuild.is_empty()
        && !suffix.is_empty();
    let (major, minor) = train.split_at(train.len() - 1);
    valid.then(|| format!("{major}.{minor}({rebuild}){suffix}"))
}

/// The running image a fresh switch reports, e.g.
/// `flash:c2960-lanbasek9-mz.122-55.SE8.bin`.
pub fn boot_image(stem: &str, version: &str) -> String {
    format!("flash:{stem}.{}.bin", version_tag(version))
}

/// What `archive download-sw` leaves running for a `.tar` image name:
/// `c2960-lanbasek9-tar.150-2.SE11.tar` ->
/// `flash:/c2960-lanbasek9-mz.150-2.SE11/c2960-lanbasek9-mz.150-2.SE11.bin`.
pub fn installed_image(tar_name: &str) -> String {
    let base = tar_name.strip_suffix(".tar").unwrap_or(tar_name);
    let dir = base.replacen("-tar.", "-mz.", 1);
    format!("flash:/{dir}/{dir}.bin")
}

/// The version a `.tar` image name carries (`...-tar.150-2.SE11.tar` ->
/// `15.0(2)SE11`), if it follows the IOS naming scheme.
pub fn version_of_tar(tar_name: &str) -> Option<String> {
    let base = tar_name.strip_suffix(".tar")?;
    let (_, tag) = base.split_once("-tar.")?;
    version_from_tag(tag)
}

/// IOS uptime text: `2 weeks, 1 day, 3 hours, 5 minutes` (zero leading
/// units are left out; minutes are always shown).
pub fn uptime_text(uptime: Duration) -> String {
    let mut minutes = uptime.as_secs() / 60;
    let units = [("week", 7 * 24 * 60), ("day", 24 * 60), ("hour", 60)];
    let mut parts = Vec::new();
    for (name, size) in units {
        let n = minutes / size;
        minutes %= size;
        if n > 0 || !parts.is_empty() {
            parts.push(plural(n, name));
        }
    }
    parts.push(plural(minutes, "minute"));
    parts.join(", ")
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions() {
        assert_eq!(mac_for(0x0102_0304), [0, 0x1e, 0xf7, 2, 3, 4]);
        assert_eq!(serial_for("FOC", 10), "FOC1234X00A");
        assert_eq!(serial_for("FDO", 36 * 36 + 1), "FDO1234X101");
        assert_eq!(version_tag("12.2(55)SE8"), "122-55.SE8");
        assert_eq!(version_tag("15.0(2)SE11"), "150-2.SE11");
        assert_eq!(
            version_from_tag("150-2.SE11").as_deref(),
            Some("15.0(2)SE11")
        );
        assert_eq!(
            version_of_tar("c2960-lanbasek9-tar.152-2.E9.tar").as_deref(),
            Some("15.2(2)E9")
        );
        assert_eq!(version_of_tar("image.tar"), None);
        assert_eq!(
            installed_image("c2960-lanbasek9-tar.150-2.SE11.tar"),
            "flash:/c2960-lanbasek9-mz.150-2.SE11/c2960-lanbasek9-mz.150-2.SE11.bin"
        );
        assert_eq!(
            boot_image("c3560-ipbasek9-mz", "12.2(55)SE8"),
            "flash:c3560-ipbasek9-mz.122-55.SE8.bin"
        );
        assert_eq!(uptime_text(Duration::from_secs(59)), "0 minutes");
        assert_eq!(
            uptime_text(Duration::from_secs(((7 * 24 + 24 + 1) * 60 + 2) * 60)),
            "1 week, 1 day, 1 hour, 2 minutes"
        );
        assert_eq!(
            uptime_text(Duration::from_secs(3 * 3600)),
            "3 hours, 0 minutes"
        );
    }
}
