//! IOS-style `show vstack ...` output, as Cisco's SMI Proxy prints it
//! (chapter "Configuring SMI Proxy", `docs/reference/`). Pure renderers:
//! a [`ShowView`] goes in, text comes out; every command also has a JSON
//! form ([`render_json`]) built from the same rows.
//!
//! Layout choices where the chapter's copy is ragged or silent:
//!
//! - Column widths are those of the chapter's data rows, used for headers
//!   too: `proxy-db` 18 / 45 (MAC, UDI) and 18 / 18 / 19 (MAC, IP,
//!   host name); `status` 7 / 18 / 19 / 18 / 18; `download-status`
//!   4 / 16 / 15 / 16 / 14 / 15. A value as wide as its column or wider is
//!   followed by one space.
//! - Under a table header each column gets its own rule, `=` or `-` as the
//!   chapter shows, two characters (one in `download-status`) shorter than
//!   the column; the last column's rule is as long as its label.
//! - Detail views label fields in a column of 18 (`proxy-db detail`) or 17
//!   (`status detail`) and start each entry with `-----`, as printed.
//! - Cisco numbers the director itself DevNo 0. This proxy is not a switch,
//!   so clients are numbered from 1 in the order they were first seen.
//! - A value not known yet prints as `-` (`Not Found` for serial, product
//!   ID, version and image in `status detail`, as Cisco does for a serial).
//! - Status flags: `S` once the client's UDI is known, `P` (pending)
//!   before; `A`/`I` from the caller's health verdict; join window always
//!   `a` (the proxy has none); then image `i`/`I`/`X`, config `c`/`C`/`x`,
//!   script `p`/`P`/`F` while a file is in progress, done or failed.
//! - Download times print as `02:47:39 UTC Mar 30 2011` (day not padded).
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::store::{
    ClientRecord, ConfigSource, EntryState, JobStatus, Mac, Method, Transfer, VersionSource,
};
use crate::udi::Udi;

/// The proxy's own configuration, as `show vstack config` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyConfig {
    /// Whether the proxy is on (`no vstack` turns it off).
    pub enabled: bool,
    /// The address clients know the director by.
    pub proxy_ip: Ipv4Addr,
    /// The default management VLAN (1 on Cisco).
    pub default_vlan: u16,
    /// The VLAN new clients are provisioned on.
    pub startup_vlan: u16,
    /// Management VLANs; empty prints `none`.
    pub management_vlans: Vec<u16>,
}

/// One client as the show commands see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientView {
    /// The database record.
    pub record: ClientRecord,
    /// Whether the client was heard from recently (the caller decides,
    /// from the dataplane's last-seen time).
    pub health_active: bool,
}

/// Everything the show commands print.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShowView {
    /// The proxy's configuration.
    pub config: ProxyConfig,
    /// The clients, in database (DevNo) order.
    pub clients: Vec<ClientView>,
}

/// The `show vstack` commands the proxy answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShowCommand {
    /// `show vstack config`.
    Config,
    /// `show vstack proxy-db`.
    ProxyDb,
    /// `show vstack proxy-db detail`.
    ProxyDbDetail,
    /// `show vstack status`.
    Status,
    /// `show vstack status detail`.
    StatusDetail,
    /// `show vstack download-status`.
    DownloadStatus,
    /// `show vstack download-status detail`.
    DownloadStatusDetail,
}

/// Why JSON output could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    /// serde_json refused the data.
    #[error("cannot encode show output as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The IOS text of `command`.
pub fn render(command: ShowCommand, view: &ShowView) -> String {
    match command {
        ShowCommand::Config => show_config(view),
        ShowCommand::ProxyDb => show_proxy_db(view),
        ShowCommand::ProxyDbDetail => show_proxy_db_detail(view),
        ShowCommand::Status => show_status(view),
        ShowCommand::StatusDetail => show_status_detail(view),
        ShowCommand::DownloadStatus => show_download_status(view),
        ShowCommand::DownloadStatusDetail => show_download_status_detail(view),
    }
}

/// The JSON form of `command` (pretty-printed). A command and its `detail`
/// variant give the same JSON, which holds every field of both.
pub fn render_json(command: ShowCommand, view: &ShowView) -> Result<String, ShowError> {
    let json = match command {
        ShowCommand::Config => serde_json::to_string_pretty(&ConfigOutput::from_view(view)),
        ShowCommand::ProxyDb | ShowCommand::ProxyDbDetail => {
            serde_json::to_string_pretty(&ProxyDbOutput::from_view(view))
        }
        ShowCommand::Status | ShowCommand::StatusDetail => {
            serde_json::to_string_pretty(&StatusOutput::from_view(view))
        }
        ShowCommand::DownloadStatus | ShowCommand::DownloadStatusDetail => {
            serde_json::to_string_pretty(&DownloadStatusOutput::from_view(view))
        }
    }?;
    Ok(json)
}

// ---------------------------------------------------------------- rows

/// `show vstack config`, as data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigOutput {
    /// Always `SMI PnP Proxy`.
    pub role: &'static str,
    /// Whether the proxy is on.
    pub enabled: bool,
    /// The director address.
    pub proxy_ip: Ipv4Addr,
    /// The default management VLAN.
    pub default_vlan: u16,
    /// The start-up management VLAN.
    pub startup_vlan: u16,
    /// The management VLANs.
    pub management_vlans: Vec<u16>,
}

impl ConfigOutput {
    /// Picks the fields out of `view`.
    pub fn from_view(view: &ShowView) -> Self {
        let c = &view.config;
        Self {
            role: "SMI PnP Proxy",
            enabled: c.enabled,
            proxy_ip: c.proxy_ip,
            default_vlan: c.default_vlan,
            startup_vlan: c.startup_vlan,
            management_vlans: c.management_vlans.clone(),
        }
    }
}

/// `show vstack proxy-db [detail]`, as data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProxyDbOutput {
    /// Whether the proxy is on; if not, `entries` is empty.
    pub enabled: bool,
    /// One entry per client.
    pub entries: Vec<ProxyDbEntry>,
}

/// One client in `show vstack proxy-db`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProxyDbEntry {
    /// Position in the database, from 1.
    pub dev_no: usize,
    /// The client's MAC.
    pub mac: Mac,
    /// The client's address, if known.
    pub ip: Option<Ipv4Addr>,
    /// The client's host name.
    pub hostname: String,
    /// The client's UDI, if known.
    pub udi: Option<Udi>,
    /// The entry state.
    pub state: EntryState,
    /// Whether the client is active.
    pub health_active: bool,
}

impl ProxyDbOutput {
    /// Builds the rows from `view`.
    pub fn from_view(view: &ShowView) -> Self {
        let entries = if view.config.enabled {
            numbered(view)
                .map(|(dev_no, client)| ProxyDbEntry {
                    dev_no,
                    mac: client.record.mac,
                    ip: client.record.ip,
                    hostname: client.record.hostname.clone(),
                    udi: client.record.udi.clone(),
                    state: client.record.state,
                    health_active: client.health_active,
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            enabled: view.config.enabled,
            entries,
        }
    }
}

/// `show vstack status [detail]`, as data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusOutput {
    /// Whether Smart Install (the proxy) is on; if not, `entries` is empty.
    pub enabled: bool,
    /// One entry per client.
    pub entries: Vec<StatusEntry>,
}

/// One client in `show vstack status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusEntry {
    /// Position in the database, from 1.
    pub dev_no: usize,
    /// The client's MAC.
    pub mac: Mac,
    /// Product ID from the UDI, if known.
    pub product_id: Option<String>,
    /// Serial number from the UDI, if known.
    pub serial: Option<String>,
    /// The client's address, if known.
    pub ip: Option<Ipv4Addr>,
    /// The client's host name.
    pub hostname: String,
    /// Software version, if known.
    pub version: Option<String>,
    /// Image name, if known.
    pub image: Option<String>,
    /// Whether the client is active.
    pub health_active: bool,
    /// The flags of the `Status` column, e.g. `S A a I C`.
    pub status: String,
}

impl StatusOutput {
    /// Builds the rows from `view`.
    pub fn from_view(view: &ShowView) -> Self {
        let entries = if view.config.enabled {
            numbered(view)
                .map(|(dev_no, client)| {
                    let r = &client.record;
                    StatusEntry {
                        dev_no,
                        mac: r.mac,
                        product_id: r.udi.as_ref().map(|u| u.pid().to_owned()),
                        serial: r.udi.as_ref().map(|u| u.sn().to_owned()),
                        ip: r.ip,
                        hostname: r.hostname.clone(),
                        version: r.version.clone(),
                        image: r.image.clone(),
                        health_active: client.health_active,
                        status: status_flags(client),
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            enabled: view.config.enabled,
            entries,
        }
    }
}

/// `show vstack download-status [detail]`, as data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DownloadStatusOutput {
    /// Whether Smart Install (the proxy) is on; if not, `entries` is empty.
    pub enabled: bool,
    /// Clients with a download job.
    pub entries: Vec<DownloadEntry>,
}

/// One client's download job in `show vstack download-status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DownloadEntry {
    /// Entry number, from 1.
    pub no: usize,
    /// The client's address, if known.
    pub ip: Option<Ipv4Addr>,
    /// The client's host name.
    pub hostname: String,
    /// The client's MAC.
    pub mac: Mac,
    /// The kind of job.
    pub method: Method,
    /// The image transfer.
    pub image: Transfer,
    /// The configuration transfer.
    pub config: Transfer,
    /// The script transfer.
    pub script: Transfer,
    /// The image the client runs, as far as the proxy knows.
    pub running_image: Option<String>,
    /// Whether the client itself confirmed `running_image`.
    pub image_check: Option<VersionSource>,
    /// Who gave the client its startup configuration.
    pub config_source: Option<ConfigSource>,
    /// The name of that configuration.
    pub config_file: Option<String>,
}

impl DownloadStatusOutput {
    /// Builds the rows from `view`: the clients that have a job.
    pub fn from_view(view: &ShowView) -> Self {
        let entries = if view.config.enabled {
            view.clients
                .iter()
                .filter_map(|client| {
                    let r = &client.record;
                    r.job.method.map(|method| (r, method))
                })
                .enumerate()
                .map(|(i, (r, method))| DownloadEntry {
                    no: i + 1,
                    ip: r.ip,
                    hostname: r.hostname.clone(),
                    mac: r.mac,
                    method,
                    image: r.job.image.clone(),
                    config: r.job.config.clone(),
                    script: r.job.script.clone(),
                    running_image: r.image.clone(),
                    image_check: r.version_source,
                    config_source: r.config_source,
                    config_file: r.config_file.clone(),
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            enabled: view.config.enabled,
            entries,
        }
    }
}

fn numbered(view: &ShowView) -> impl Iterator<Item = (usize, &ClientView)> {
    view.clients.iter().enumerate().map(|(i, c)| (i + 1, c))
}

/// The `Status` column: device type, health, join window, upgrade flags.
fn status_flags(client: &ClientView) -> String {
    let r = &client.record;
    let mut flags = vec![
        if r.udi.is_some() { "S" } else { "P" },
        if client.health_active { "A" } else { "I" },
        "a",
    ];
    let job = &r.job;
    for (transfer, [running, done, failed]) in [
        (&job.image, ["i", "I", "X"]),
        (&job.config, ["c", "C", "x"]),
        (&job.script, ["p", "P", "F"]),
    ] {
        match transfer.status {
            JobStatus::Upgrading => flags.push(running),
            JobStatus::Upgraded => flags.push(done),
            JobStatus::Failed | JobStatus::Interrupted => flags.push(failed),
            JobStatus::NotApplicable | JobStatus::NotStarted => {}
        }
    }
    flags.join(" ")
}

// ---------------------------------------------------------------- text

/// A fixed-width table.
struct Table {
    /// Label and width of each column; the last column's width is unused.
    columns: &'static [(&'static str, usize)],
    /// The rule character under the header.
    rule: char,
    /// Blanks between one column's rule and the next.
    rule_gap: usize,
}

impl Table {
    fn header(&self, out: &mut String) {
        let labels: Vec<&str> = self.columns.iter().map(|(label, _)| *label).collect();
        self.row(out, &labels);
        let mut line = String::new();
        for (i, (label, width)) in self.columns.iter().enumerate() {
            if i + 1 == self.columns.len() {
                line.extend(std::iter::repeat_n(self.rule, label.len()));
            } else {
                let rule_len = width.saturating_sub(self.rule_gap);
                line.extend(std::iter::repeat_n(self.rule, rule_len));
                line.extend(std::iter::repeat_n(' ', width - rule_len));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }

    fn row(&self, out: &mut String, cells: &[&str]) {
        for (i, (cell, (_, width))) in cells.iter().zip(self.columns).enumerate() {
            out.push_str(cell);
            if i + 1 < self.columns.len() {
                let pad = width.saturating_sub(cell.chars().count()).max(1);
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
}

const PROXY_DB_TABLE: Table = Table {
    columns: &[("MAC ADDR", 18), ("UDI", 45), ("State", 0)],
    rule: '-',
    rule_gap: 2,
};

const HEALTH_TABLE: Table = Table {
    columns: &[
        ("MAC ADDR", 18),
        ("IP_addr", 18),
        ("Hostname", 19),
        ("Status", 0),
    ],
    rule: '-',
    rule_gap: 2,
};

const STATUS_TABLE: Table = Table {
    columns: &[
        ("DevNo", 7),
        ("MAC Address", 18),
        ("Product-ID", 19),
        ("IP_addr", 18),
        ("Hostname", 18),
        ("Status", 0),
    ],
    rule: '=',
    rule_gap: 2,
};

const DOWNLOAD_TABLE: Table = Table {
    columns: &[
        ("No", 4),
        ("client-IP", 16),
        ("client-MAC", 15),
        ("Method", 16),
        ("Image-status", 14),
        ("Config-status", 15),
        ("Script-status", 0),
    ],
    rule: '=',
    rule_gap: 1,
};

/// Writes `label : value` lines with the label padded to `width`.
fn field(out: &mut String, width: usize, label: &str, value: &str) {
    let _ = writeln!(out, "{label:<width$}: {value}");
}

fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn or_not_found(value: Option<&str>) -> &str {
    value.unwrap_or("Not Found")
}

fn enabled_word(enabled: bool) -> &'static str {
    if enabled { "ENABLED" } else { "DISABLED" }
}

/// IOS VLAN list: `1,5-7,10`, or `none`.
fn vlan_list(vlans: &[u16]) -> String {
    let mut sorted = vlans.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(&start) = sorted.get(i) {
        let mut end = start;
        while sorted
            .get(i + 1)
            .is_some_and(|&next| Some(next) == end.checked_add(1))
        {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(",")
    }
}

/// `show vstack config`.
pub fn show_config(view: &ShowView) -> String {
    let c = ConfigOutput::from_view(view);
    format!(
        "Role: {}\n\
         Vstack SMI PnP Proxy IP address: {}\n\
         Vstack default management vlan: {}\n\
         Vstack start-up management vlan: {}\n\
         Vstack management Vlans: {}\n",
        c.role,
        c.proxy_ip,
        c.default_vlan,
        c.startup_vlan,
        vlan_list(&c.management_vlans)
    )
}

/// `show vstack proxy-db`: the MAC/UDI/state table, then the health table.
pub fn show_proxy_db(view: &ShowView) -> String {
    let db = ProxyDbOutput::from_view(view);
    let mut out = format!("Smi PnP Proxy:      {}\n", enabled_word(db.enabled));
    if !db.enabled {
        return out;
    }
    out.push_str("\nProxy Database:\n");
    PROXY_DB_TABLE.header(&mut out);
    for e in &db.entries {
        let (mac, udi) = (e.mac.to_string(), or_dash(e.udi.as_ref()));
        PROXY_DB_TABLE.row(&mut out, &[&mac, &udi, &e.state.to_string()]);
    }
    out.push_str(
        "\nStatus: Health_status\nHealth_status: A - Active I - Inactive\nProxy Database:\n",
    );
    HEALTH_TABLE.header(&mut out);
    for e in &db.entries {
        let (mac, ip) = (e.mac.to_string(), or_dash(e.ip));
        let health = if e.health_active { "A" } else { "I" };
        HEALTH_TABLE.row(&mut out, &[&mac, &ip, &e.hostname, health]);
    }
    out
}

/// `show vstack proxy-db detail`.
pub fn show_proxy_db_detail(view: &ShowView) -> String {
    let db = ProxyDbOutput::from_view(view);
    let mut out = format!("Smi PnP Proxy:      {}\n", enabled_word(db.enabled));
    if !db.enabled {
        return out;
    }
    out.push('\n');
    for e in &db.entries {
        out.push_str("-----\n");
        field(&mut out, 18, "Device ID", &e.hostname);
        field(&mut out, 18, "MAC Address", &e.mac.to_string());
        field(&mut out, 18, "IP Addr", &or_dash(e.ip));
        field(&mut out, 18, "UDI", &or_dash(e.udi.as_ref()));
        field(&mut out, 18, "state", &e.state.to_string());
        field(
            &mut out,
            18,
            "status",
            if e.health_active { "A" } else { "I" },
        );
    }
    out
}

const STATUS_LEGEND: &str = "\
Status: Device_type Health_status Join-window_status Upgrade_status
Device_type: S - Smart install N - Non smart install P - Pending
Health_status: A - Active I - Inactive
Join-window_Status: a - Allowed h - On-hold d - Denied
Image Upgrade: i - in progress I - done X - failed
Config Upgrade: c - in progress C - done x - failed
Script Upgrade: p - in progress P - done F - failed
";

/// `show vstack status`.
pub fn show_status(view: &ShowView) -> String {
    let status = StatusOutput::from_view(view);
    let mut out = format!("SmartInstall: {}\n", enabled_word(status.enabled));
    if !status.enabled {
        return out;
    }
    out.push_str(STATUS_LEGEND);
    out.push_str("Director Database:\n");
    STATUS_TABLE.header(&mut out);
    for e in &status.entries {
        let dev_no = e.dev_no.to_string();
        let mac = e.mac.to_string();
        let pid = or_dash(e.product_id.as_deref());
        let ip = or_dash(e.ip);
        STATUS_TABLE.row(
            &mut out,
            &[&dev_no, &mac, &pid, &ip, &e.hostname, &e.status],
        );
    }
    out
}

/// `show vstack status detail`.
pub fn show_status_detail(view: &ShowView) -> String {
    let status = StatusOutput::from_view(view);
    let mut out = format!("SmartInstall: {}\n", enabled_word(status.enabled));
    for e in &status.entries {
        out.push_str("-----\n");
        field(&mut out, 17, "Device Num", &e.dev_no.to_string());
        field(&mut out, 17, "Device ID", &e.hostname);
        field(&mut out, 17, "MAC Address", &e.mac.to_string());
        field(&mut out, 17, "IP Addr", &or_dash(e.ip));
        field(&mut out, 17, "Hop value", "-");
        field(&mut out, 17, "Serial", or_not_found(e.serial.as_deref()));
        field(
            &mut out,
            17,
            "Product-ID",
            or_not_found(e.product_id.as_deref()),
        );
        field(&mut out, 17, "Version", or_not_found(e.version.as_deref()));
        field(&mut out, 17, "Image", or_not_found(e.image.as_deref()));
        field(&mut out, 17, "Entry Role", "IBC Entry");
        field(&mut out, 17, "(N-1)HOP Entry", "-");
        field(&mut out, 17, "Backup done", "no");
        field(&mut out, 17, "Latest backup file", "none");
        field(&mut out, 17, "Latest backup client name", "none");
        field(&mut out, 17, "File checksum", "none");
        field(&mut out, 17, "Status", &e.status);
    }
    out
}

/// `show vstack download-status`.
pub fn show_download_status(view: &ShowView) -> String {
    let downloads = DownloadStatusOutput::from_view(view);
    if !downloads.enabled {
        return "SmartInstall: DISABLED\n".to_owned();
    }
    let mut out = format!("Total no of entries : {}\n", downloads.entries.len());
    DOWNLOAD_TABLE.header(&mut out);
    for e in &downloads.entries {
        let no = e.no.to_string();
        let ip = or_dash(e.ip);
        let mac = e.mac.to_string();
        let method = e.method.to_string();
        let [image, config, script] =
            [&e.image, &e.config, &e.script].map(|t| t.status.to_string());
        DOWNLOAD_TABLE.row(
            &mut out,
            &[&no, &ip, &mac, &method, &image, &config, &script],
        );
    }
    out
}

/// `show vstack download-status detail`.
pub fn show_download_status_detail(view: &ShowView) -> String {
    let downloads = DownloadStatusOutput::from_view(view);
    let mut out = format!("SmartInstall: {}\n", enabled_word(downloads.enabled));
    for e in &downloads.entries {
        let _ = writeln!(out, "\nNo {}:", e.no);
        let _ = writeln!(out, "client-ip: {}", or_dash(e.ip));
        let _ = writeln!(out, "client-hostname: {}", e.hostname);
        let _ = writeln!(out, "client-mac: {}", e.mac);
        let _ = writeln!(out, "method: {}", e.method);
        for (name, t) in [
            ("config", &e.config),
            ("image", &e.image),
            ("script", &e.script),
        ] {
            let _ = writeln!(
                out,
                "{name}-fail-reason: {}",
                t.fail_reason.as_deref().unwrap_or("NA")
            );
        }
        for (name, t) in [
            ("config", &e.config),
            ("image", &e.image),
            ("script", &e.script),
        ] {
            let at = t.downloaded_at.map_or_else(|| "-".to_owned(), ios_time);
            let _ = writeln!(out, "{name} downloaded at: {at}");
        }
        // Beyond the chapter: what the client runs and boots with now.
        if let (Some(image), Some(check)) = (&e.running_image, e.image_check) {
            let _ = writeln!(out, "running image: {image} ({check})");
        }
        if let (Some(file), Some(source)) = (&e.config_file, e.config_source) {
            let _ = writeln!(out, "startup config: {file} (from {source})");
        }
    }
    out
}

/// Formats Unix seconds the way IOS prints download times:
/// `02:47:39 UTC Mar 30 2011`.
pub fn ios_time(unix_secs: u64) -> String {
    let date = crate::clock::utc_date(unix_secs);
    let secs = unix_secs % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC {} {} {}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        date.month_name,
        date.day,
        date.year
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DownloadJob;

    /// Compares line by line, so a failure names the first differing line.
    fn assert_text(actual: &str, expected: &[&str]) {
        let actual_lines: Vec<&str> = actual.lines().collect();
        for (i, (a, e)) in actual_lines.iter().zip(expected).enumerate() {
            assert_eq!(a, e, "line {} differs\nwhole output:\n{actual}", i + 1);
        }
        assert_eq!(
            actual_lines.len(),
            expected.len(),
            "line count differs\nwhole output:\n{actual}"
        );
        assert!(actual.ends_with('\n'), "output must end with a line feed");
    }

    fn config(enabled: bool) -> ProxyConfig {
        ProxyConfig {
            enabled,
            proxy_ip: Ipv4Addr::new(4, 1, 1, 1),
            default_vlan: 1,
            startup_vlan: 1,
            management_vlans: vec![1],
        }
    }

    fn record(mac: &str, ip: [u8; 4], hostname: &str, udi: Option<&str>) -> ClientRecord {
        let mut r = ClientRecord::new(mac.parse().expect("test MAC"), 1_301_450_000);
        r.ip = Some(Ipv4Addr::from(ip));
        r.hostname = hostname.to_owned();
        r.udi = udi.map(|u| u.parse().expect("test UDI"));
        r
    }

    fn view(enabled: bool, clients: Vec<(ClientRecord, bool)>) -> ShowView {
        ShowView {
            config: config(enabled),
            clients: clients
                .into_iter()
                .map(|(record, health_active)| ClientView {
                    record,
                    health_active,
                })
                .collect(),
        }
    }

    /// The client of the chapter's `show vstack proxy-db` example.
    fn chapter_proxy_client(state: EntryState) -> ClientRecord {
        let mut r = record(
            "001e.f76d.af80",
            [5, 1, 1, 4],
            "Switch",
            Some("PID:WS-C3750E-48TD,VID:V01,SN:FDO1152V10R"),
        );
        r.state = state;
        r
    }

    #[test]
    fn config_matches_the_chapter() {
        assert_text(
            &render(ShowCommand::Config, &view(true, vec![])),
            &[
                "Role: SMI PnP Proxy",
                "Vstack SMI PnP Proxy IP address: 4.1.1.1",
                "Vstack default management vlan: 1",
                "Vstack start-up management vlan: 1",
                "Vstack management Vlans: 1",
            ],
        );
    }

    #[test]
    fn proxy_db_matches_the_chapter() {
        let v = view(
            true,
            vec![(chapter_proxy_client(EntryState::NoState), true)],
        );
        assert_text(
            &render(ShowCommand::ProxyDb, &v),
            &[
                "Smi PnP Proxy:      ENABLED",
                "",
                "Proxy Database:",
                "MAC ADDR          UDI                                          State",
                "----------------  -------------------------------------------  -----",
                "001e.f76d.af80    PID:WS-C3750E-48TD,VID:V01,SN:FDO1152V10R    NO STATE",
                "",
                "Status: Health_status",
                "Health_status: A - Active I - Inactive",
                "Proxy Database:",
                "MAC ADDR          IP_addr           Hostname           Status",
                "----------------  ----------------  -----------------  ------",
                "001e.f76d.af80    5.1.1.4           Switch             A",
            ],
        );
    }

    #[test]
    fn proxy_db_shows_unknowns_and_inactive_clients() {
        let mut fresh = ClientRecord::new("0022.0d26.6300".parse().expect("MAC"), 0);
        fresh.hostname = "Switch".to_owned();
        let v = view(true, vec![(fresh, false)]);
        let text = render(ShowCommand::ProxyDb, &v);
        assert!(text.contains(
            "\n0022.0d26.6300    -                                            NO STATE\n"
        ));
        assert!(text.ends_with("\n0022.0d26.6300    -                 Switch             I\n"));
        assert_text(
            &render(ShowCommand::ProxyDb, &view(false, vec![])),
            &["Smi PnP Proxy:      DISABLED"],
        );
    }

    #[test]
    fn proxy_db_detail_matches_the_chapter() {
        let v = view(true, vec![(chapter_proxy_client(EntryState::Hello), true)]);
        assert_text(
            &render(ShowCommand::ProxyDbDetail, &v),
            &[
                "Smi PnP Proxy:      ENABLED",
                "",
                "-----",
                "Device ID         : Switch",
                "MAC Address       : 001e.f76d.af80",
                "IP Addr           : 5.1.1.4",
                "UDI               : PID:WS-C3750E-48TD,VID:V01,SN:FDO1152V10R",
                "state             : HELLO",
                "status            : A",
            ],
        );
    }

    /// Clients of the chapter's `show vstack status` examples (the
    /// director's own rows left out: this proxy is not a switch).
    fn status_view() -> ShowView {
        let mut with_image_and_config = record(
            "0021.a1ab.9b80",
            [172, 20, 249, 249],
            "DEV-ab.9bc",
            Some("PID:WS-C2960-48TC-S,VID:V02,SN:FOC1234X0AB"),
        );
        with_image_and_config.job.image.status = JobStatus::Upgraded;
        with_image_and_config.job.config.status = JobStatus::Upgraded;
        let mut with_script = record(
            "0024.5111.0900",
            [172, 20, 249, 222],
            "DEV-11.094",
            Some("PID:WS-C3750E-24TD,VID:V03,SN:FDO1234X094"),
        );
        with_script.job.image.status = JobStatus::Upgraded;
        with_script.job.config.status = JobStatus::Upgraded;
        with_script.job.script.status = JobStatus::Upgraded;
        let mut inactive = record(
            "68ef.bd08.6000",
            [1, 1, 1, 2],
            "IBC_WOW-08",
            Some("PID:WS-C4507R-E,VID:V01,SN:FOX1234X600"),
        );
        inactive.job.config.status = JobStatus::Upgraded;
        let mut failing = record("0cd9.9649.cb80", [172, 20, 249, 98], "Switch", None);
        failing.job.image.status = JobStatus::Failed;
        failing.job.config.status = JobStatus::Upgrading;
        failing.job.script.status = JobStatus::NotStarted;
        view(
            true,
            vec![
                (
                    record(
                        "0024.13c6.b580",
                        [172, 20, 249, 115],
                        "DEV-c6.b5c",
                        Some("PID:WS-C3750E-24TD,VID:V01,SN:FDO1234X0C6"),
                    ),
                    true,
                ),
                (with_image_and_config, true),
                (with_script, true),
                (inactive, false),
                (failing, true),
            ],
        )
    }

    #[test]
    fn status_matches_the_chapter() {
        assert_text(
            &render(ShowCommand::Status, &status_view()),
            &[
                "SmartInstall: ENABLED",
                "Status: Device_type Health_status Join-window_status Upgrade_status",
                "Device_type: S - Smart install N - Non smart install P - Pending",
                "Health_status: A - Active I - Inactive",
                "Join-window_Status: a - Allowed h - On-hold d - Denied",
                "Image Upgrade: i - in progress I - done X - failed",
                "Config Upgrade: c - in progress C - done x - failed",
                "Script Upgrade: p - in progress P - done F - failed",
                "Director Database:",
                "DevNo  MAC Address       Product-ID         IP_addr           Hostname          Status",
                "=====  ================  =================  ================  ================  ======",
                "1      0024.13c6.b580    WS-C3750E-24TD     172.20.249.115    DEV-c6.b5c        S A a",
                "2      0021.a1ab.9b80    WS-C2960-48TC-S    172.20.249.249    DEV-ab.9bc        S A a I C",
                "3      0024.5111.0900    WS-C3750E-24TD     172.20.249.222    DEV-11.094        S A a I C P",
                "4      68ef.bd08.6000    WS-C4507R-E        1.1.1.2           IBC_WOW-08        S I a C",
                "5      0cd9.9649.cb80    -                  172.20.249.98     Switch            P A a X c",
            ],
        );
        assert_text(
            &render(ShowCommand::Status, &view(false, vec![])),
            &["SmartInstall: DISABLED"],
        );
    }

    #[test]
    fn status_detail_lists_every_field() {
        let mut v = status_view();
        v.clients.truncate(1);
        if let Some(client) = v.clients.first_mut() {
            client.record.version = Some("12.2(55)SE5".to_owned());
            client.record.image = Some("C3750E-UNIVERSALK9-M".to_owned());
        }
        v.clients.push(ClientView {
            record: record("0013.c4b4.bc00", [10, 5, 113, 11], "3560g-10net-11", None),
            health_active: false,
        });
        assert_text(
            &render(ShowCommand::StatusDetail, &v),
            &[
                "SmartInstall: ENABLED",
                "-----",
                "Device Num       : 1",
                "Device ID        : DEV-c6.b5c",
                "MAC Address      : 0024.13c6.b580",
                "IP Addr          : 172.20.249.115",
                "Hop value        : -",
                "Serial           : FDO1234X0C6",
                "Product-ID       : WS-C3750E-24TD",
                "Version          : 12.2(55)SE5",
                "Image            : C3750E-UNIVERSALK9-M",
                "Entry Role       : IBC Entry",
                "(N-1)HOP Entry   : -",
                "Backup done      : no",
                "Latest backup file: none",
                "Latest backup client name: none",
                "File checksum    : none",
                "Status           : S A a",
                "-----",
                "Device Num       : 2",
                "Device ID        : 3560g-10net-11",
                "MAC Address      : 0013.c4b4.bc00",
                "IP Addr          : 10.5.113.11",
                "Hop value        : -",
                "Serial           : Not Found",
                "Product-ID       : Not Found",
                "Version          : Not Found",
                "Image            : Not Found",
                "Entry Role       : IBC Entry",
                "(N-1)HOP Entry   : -",
                "Backup done      : no",
                "Latest backup file: none",
                "Latest backup client name: none",
                "File checksum    : none",
                "Status           : P I a",
            ],
        );
    }

    /// The three clients of the chapter's `show vstack download-status`
    /// example, plus one without a job, which is not listed. (The chapter's
    /// detail example misprints entry 2's MAC as `0022.5699.c8000` and entry
    /// 3's IP as `217.20.249.2`; the table's values are used.)
    fn download_view() -> ShowView {
        let mut one = record("001e.be67.3000", [172, 20, 249, 3], "Switch", None);
        one.job = DownloadJob {
            method: Some(Method::ImageUpgrade),
            image: Transfer {
                status: JobStatus::Upgraded,
                fail_reason: None,
                downloaded_at: Some(1_301_453_259),
            },
            ..DownloadJob::default()
        };
        let mut two = record("0022.5699.c800", [172, 20, 249, 1], "Switch", None);
        two.job = DownloadJob {
            method: Some(Method::ZeroTouch),
            image: Transfer {
                status: JobStatus::Upgrading,
                ..Transfer::default()
            },
            config: Transfer {
                status: JobStatus::Upgraded,
                fail_reason: None,
                downloaded_at: Some(1_301_454_143),
            },
            script: Transfer {
                status: JobStatus::Upgraded,
                fail_reason: None,
                downloaded_at: Some(1_301_453_259),
            },
        };
        let idle = record("0cd9.9649.cb80", [172, 20, 249, 98], "Switch", None);
        let mut three = record("0022.0d26.6300", [172, 20, 249, 2], "Switch", None);
        three.job = DownloadJob {
            method: Some(Method::ImageUpgrade),
            image: Transfer {
                status: JobStatus::NotStarted,
                ..Transfer::default()
            },
            ..DownloadJob::default()
        };
        view(
            true,
            vec![(one, true), (two, true), (idle, true), (three, false)],
        )
    }

    #[test]
    fn download_status_matches_the_chapter() {
        assert_text(
            &render(ShowCommand::DownloadStatus, &download_view()),
            &[
                "Total no of entries : 3",
                "No  client-IP       client-MAC     Method          Image-status  Config-status  Script-status",
                "=== =============== ============== =============== ============= ============== =============",
                "1   172.20.249.3    001e.be67.3000 image-upgrade   UPGRADED      **             **",
                "2   172.20.249.1    0022.5699.c800 zero-touch      UPGRADING     UPGRADED       UPGRADED",
                "3   172.20.249.2    0022.0d26.6300 image-upgrade   NOT STARTED   **             **",
            ],
        );
        assert_text(
            &render(ShowCommand::DownloadStatus, &view(false, vec![])),
            &["SmartInstall: DISABLED"],
        );
    }

    #[test]
    fn download_status_detail_matches_the_chapter() {
        let mut v = download_view();
        if let Some(client) = v.clients.last_mut() {
            client.record.job.image.status = JobStatus::Failed;
            client.record.job.image.fail_reason = Some("TFTP timeout".to_owned());
        }
        assert_text(
            &render(ShowCommand::DownloadStatusDetail, &v),
            &[
                "SmartInstall: ENABLED",
                "",
                "No 1:",
                "client-ip: 172.20.249.3",
                "client-hostname: Switch",
                "client-mac: 001e.be67.3000",
                "method: image-upgrade",
                "config-fail-reason: NA",
                "image-fail-reason: NA",
                "script-fail-reason: NA",
                "config downloaded at: -",
                "image downloaded at: 02:47:39 UTC Mar 30 2011",
                "script downloaded at: -",
                "",
                "No 2:",
                "client-ip: 172.20.249.1",
                "client-hostname: Switch",
                "client-mac: 0022.5699.c800",
                "method: zero-touch",
                "config-fail-reason: NA",
                "image-fail-reason: NA",
                "script-fail-reason: NA",
                "config downloaded at: 03:02:23 UTC Mar 30 2011",
                "image downloaded at: -",
                "script downloaded at: 02:47:39 UTC Mar 30 2011",
                "",
                "No 3:",
                "client-ip: 172.20.249.2",
                "client-hostname: Switch",
                "client-mac: 0022.0d26.6300",
                "method: image-upgrade",
                "config-fail-reason: NA",
                "image-fail-reason: TFTP timeout",
                "script-fail-reason: NA",
                "config downloaded at: -",
                "image downloaded at: -",
                "script downloaded at: -",
            ],
        );
    }

    #[test]
    fn json_forms_carry_the_same_rows() -> Result<(), ShowError> {
        let v = view(
            true,
            vec![(chapter_proxy_client(EntryState::NoState), true)],
        );
        let db: serde_json::Value = serde_json::from_str(&render_json(ShowCommand::ProxyDb, &v)?)?;
        assert_eq!(db["enabled"], true);
        assert_eq!(db["entries"][0]["dev_no"], 1);
        assert_eq!(db["entries"][0]["mac"], "001e.f76d.af80");
        assert_eq!(
            db["entries"][0]["udi"],
            "PID:WS-C3750E-48TD,VID:V01,SN:FDO1152V10R"
        );
        assert_eq!(db["entries"][0]["ip"], "5.1.1.4");
        assert_eq!(db["entries"][0]["state"], "no-state");
        assert_eq!(db["entries"][0]["health_active"], true);
        assert_eq!(
            render_json(ShowCommand::ProxyDbDetail, &v)?,
            render_json(ShowCommand::ProxyDb, &v)?
        );

        let config: serde_json::Value =
            serde_json::from_str(&render_json(ShowCommand::Config, &v)?)?;
        assert_eq!(config["role"], "SMI PnP Proxy");
        assert_eq!(config["proxy_ip"], "4.1.1.1");
        assert_eq!(config["management_vlans"], serde_json::json!([1]));

        let status: serde_json::Value =
            serde_json::from_str(&render_json(ShowCommand::Status, &status_view())?)?;
        assert_eq!(status["entries"][2]["status"], "S A a I C P");
        assert_eq!(status["entries"][4]["product_id"], serde_json::Value::Null);

        let downloads: serde_json::Value = serde_json::from_str(&render_json(
            ShowCommand::DownloadStatusDetail,
            &download_view(),
        )?)?;
        assert_eq!(downloads["entries"].as_array().map(Vec::len), Some(3));
        assert_eq!(downloads["entries"][0]["method"], "image-upgrade");
        assert_eq!(downloads["entries"][0]["image"]["status"], "upgraded");
        assert_eq!(
            downloads["entries"][0]["image"]["downloaded_at"],
            1_301_453_259
        );
        assert_eq!(
            downloads["entries"][1]["config"]["fail_reason"],
            serde_json::Value::Null
        );

        let off: serde_json::Value =
            serde_json::from_str(&render_json(ShowCommand::Status, &view(false, vec![]))?)?;
        assert_eq!(off["enabled"], false);
        Ok(())
    }

    #[test]
    fn view_round_trips_through_json() -> Result<(), ShowError> {
        let v = download_view();
        let text = serde_json::to_string(&v)?;
        let back: ShowView = serde_json::from_str(&text)?;
        assert_eq!(back, v);
        Ok(())
    }

    #[test]
    fn times_and_vlan_lists() {
        assert_eq!(ios_time(1_301_453_259), "02:47:39 UTC Mar 30 2011");
        assert_eq!(ios_time(1_301_454_143), "03:02:23 UTC Mar 30 2011");
        assert_eq!(ios_time(0), "00:00:00 UTC Jan 1 1970");
        assert_eq!(ios_time(951_782_399), "23:59:59 UTC Feb 28 2000");
        assert_eq!(ios_time(951_782_400), "00:00:00 UTC Feb 29 2000");
        assert_eq!(ios_time(4_102_444_800), "00:00:00 UTC Jan 1 2100");
        assert_eq!(vlan_list(&[]), "none");
        assert_eq!(vlan_list(&[1]), "1");
        assert_eq!(vlan_list(&[10, 1, 2, 3, 5, 2]), "1-3,5,10");
        assert_eq!(vlan_list(&[4094, 4093]), "4093-4094");
    }
}
