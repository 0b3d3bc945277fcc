//! The end-state check of a run, on the switches themselves: each one's
//! startup configuration is byte for byte what the PnP server installed,
//! and it runs the image the server asked for.
use std::fmt;

use crate::emulator::SwitchHandle;
use crate::emulator::identity::installed_image;

/// What the PnP server asked every switch to end with.
#[derive(Clone, Debug)]
pub struct Expected<'a> {
    /// The configuration file the server installed to startup.
    pub startup_config: &'a [u8],
    /// The `.tar` archive the server had installed; `None`: the switch
    /// keeps the image it booted with.
    pub image_tar: Option<&'a str>,
}

/// How many switches ended as asked, and what is wrong with the others.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Switches checked.
    pub switches: usize,
    /// Switches whose startup configuration is the server's, byte for byte.
    pub configs_as_installed: usize,
    /// Switches running the image the server asked for.
    pub images_as_asked: usize,
    /// One line per switch that did not end as asked.
    pub wrong: Vec<String>,
}

impl Report {
    /// Whether every switch ended as asked.
    pub fn all_as_asked(&self) -> bool {
        self.wrong.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "startup configuration as installed: {}/{}; image as asked: {}/{}",
            self.configs_as_installed, self.switches, self.images_as_asked, self.switches
        )?;
        for line in self.wrong.iter().take(20) {
            write!(f, "\n  {line}")?;
        }
        if self.wrong.len() > 20 {
            write!(f, "\n  ... and {} more", self.wrong.len() - 20)?;
        }
        Ok(())
    }
}

/// Checks every switch of `switches` against `expected`.
pub fn check(switches: &[SwitchHandle], expected: &Expected<'_>) -> Report {
    let mut report = Report {
        switches: switches.len(),
        ..Report::default()
    };
    for sw in switches {
        let config = sw.startup_config();
        let config_ok = config.as_deref() == Some(expected.startup_config);
        let want_image = expected
            .image_tar
            .map_or_else(|| sw.config().image.clone(), installed_image);
        let image = sw.image();
        let image_ok = image == want_image;
        report.configs_as_installed += usize::from(config_ok);
        report.images_as_asked += usize::from(image_ok);
        if !config_ok || !image_ok {
            let config_text = config.map_or_else(
                || "none".to_owned(),
                |c| format!("{:?}", String::from_utf8_lossy(&c)),
            );
            report.wrong.push(format!(
                "switch {}: startup config {config_text}, image {image} (want {want_image})",
                sw.position()
            ));
        }
    }
    report
}
