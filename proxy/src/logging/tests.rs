//! Unit tests of the switches, the filter they rebuild and the formats.
use std::net::Ipv4Addr;

use tracing::dispatcher::with_default;

use super::testing::{Capture, capture};
use super::*;
use crate::mac::Mac;
use crate::udi::Udi;

/// The captured lines without their timestamp (the `plain` format's first
/// word).
fn untimed(c: &Capture) -> Vec<String> {
    c.out
        .take()
        .lines()
        .map(|l| {
            l.split_once(' ')
                .map_or(l, |(_, rest)| rest.trim_start())
                .to_owned()
        })
        .collect()
}

fn udi() -> Udi {
    "PID:WS-C3750X-24,VID:V02,SN:FDO1613R2TA"
        .parse()
        .expect("a UDI")
}

#[test]
fn show_debugging_lists_what_is_on() {
    assert_eq!(debugging_text(&[]), "");
    assert_eq!(
        debugging_text(&["download", "smi-proxy"]),
        "VSTACK:\n  vstack download debugging is on\n  vstack smi-proxy debugging is on\n"
    );
}

#[test]
fn switches_open_their_targets_to_debug_and_close_them_again() -> Result<(), LoggingError> {
    let c = capture(LogFormat::Plain, "info");
    with_default(&c.dispatch, || -> Result<(), LoggingError> {
        tracing::debug!(target: "proxy::smi::director", "m");
        tracing::info!(target: "proxy::smi::director", "m");
        assert_eq!(untimed(&c), ["INFO proxy::smi::director: m"]);

        c.control.set("protocol", true)?;
        tracing::debug!(target: "proxy::smi::director", "m");
        tracing::trace!(target: "proxy::smi::director", "m");
        tracing::debug!(target: "proxy::pnp::agent", "m");
        assert_eq!(untimed(&c), ["DEBUG proxy::smi::director: m"]);

        c.control.set("smi", true)?;
        tracing::debug!(target: "smi_proxy", "m");
        tracing::debug!(target: "proxy::pnp::agent", "m");
        tracing_log::log::debug!(target: "hyper::client", "m");
        assert_eq!(
            untimed(&c),
            ["DEBUG smi_proxy: m", "DEBUG proxy::pnp::agent: m"]
        );

        // `all` opens the libraries' `log` records too.
        c.control.set("all", true)?;
        tracing_log::log::debug!(target: "hyper::client", "m");
        assert_eq!(untimed(&c), ["DEBUG hyper::client: m"]);
        assert_eq!(c.control.active(), ["all", "protocol", "smi-proxy"]);

        for name in ["all", "protocol", "smi-proxy"] {
            c.control.set(name, false)?;
        }
        tracing::debug!(target: "proxy::smi::director", "m");
        tracing_log::log::debug!(target: "hyper::client", "m");
        tracing::info!(target: "proxy", "still");
        assert_eq!(untimed(&c), ["INFO proxy: still"]);
        assert!(c.control.active().is_empty());
        Ok(())
    })
}

#[test]
fn rust_log_still_decides_without_switches() {
    let c = capture(LogFormat::Plain, "warn,proxy::pnp=trace");
    with_default(&c.dispatch, || {
        tracing::info!(target: "proxy::smi", "m");
        tracing::trace!(target: "proxy::pnp::agent", "m");
        tracing_log::log::info!(target: "rustls::client", "m");
        tracing_log::log::warn!(target: "rustls::client", "w");
    });
    assert_eq!(
        untimed(&c),
        ["TRACE proxy::pnp::agent: m", "WARN rustls::client: w"]
    );
}

#[test]
fn a_switch_opens_what_rust_log_keeps_quieter() -> Result<(), LoggingError> {
    let c = capture(LogFormat::Plain, "warn,proxy::smi::tftp=error");
    with_default(&c.dispatch, || -> Result<(), LoggingError> {
        c.control.set("download", true)?;
        tracing::debug!(target: "proxy::smi::tftp::transfer", "m");
        tracing::debug!(target: "smi_proxy::download", "d");
        tracing::debug!(target: "proxy::smi::director", "not this");
        assert_eq!(
            untimed(&c),
            [
                "DEBUG proxy::smi::tftp::transfer: m",
                "DEBUG smi_proxy::download: d"
            ]
        );
        Ok(())
    })
}

#[test]
fn names_resolve_and_confirm_like_ios() {
    let name = |typed: &str| resolve(typed).map(|s| s.name).map_err(|e| e.to_string());
    assert_eq!(name("smi-proxy"), Ok("smi-proxy"));
    assert_eq!(name("SMI"), Ok("smi-proxy"));
    assert_eq!(name("a"), Ok("all"));
    assert_eq!(name("fsm"), Ok("fsm"));
    assert_eq!(name("dir"), Ok("director-db"));
    assert_eq!(
        name("d"),
        Err("% Ambiguous command \"d\": could be director-db, download".to_owned())
    );
    assert_eq!(
        name("nope"),
        Err(
            "% Invalid input \"nope\": expected one of all, cli, director-db, download, fsm, \
             protocol, smi-proxy"
                .to_owned()
        )
    );
    assert_eq!(
        name("join"),
        Err(
            "% debug vstack join-window is not supported: the SMI proxy has no join window \
             (an SMI director's feature)"
                .to_owned()
        )
    );
    for refused in ["backup", "emulation", "group", "join-window"] {
        assert!(
            matches!(resolve(refused), Err(LoggingError::Unsupported { .. })),
            "{refused}"
        );
    }
    assert!(matches!(resolve(""), Err(LoggingError::Unknown { .. })));
    assert_eq!(
        confirmation("smi-proxy", true),
        "SMI PNP PROXY:EXEC cli vstack execution successful\n\
         Vstack smi-proxy debugging is on\n"
    );
    assert_eq!(
        confirmation("smi-proxy", false),
        "Vstack smi-proxy debugging is off\n"
    );
    assert_eq!(
        confirmation("all", true),
        "Vstack debug all debugging is on\n"
    );
}

#[test]
fn the_chapter_lists_every_keyword_in_order() {
    let names: Vec<&str> = SWITCHES.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "all",
            "backup",
            "cli",
            "director-db",
            "download",
            "emulation",
            "fsm",
            "group",
            "join-window",
            "protocol",
            "smi-proxy"
        ]
    );
    assert!(SWITCHES.iter().all(|s| s.supported() != s.help.is_empty()));
}

#[test]
fn facilities_follow_the_most_specific_switch() {
    assert_eq!(facility("smi_proxy"), "VSTACK_SMI_PROXY");
    assert_eq!(facility("proxy::pnp::agent::run"), "VSTACK_SMI_PROXY");
    assert_eq!(facility("proxy::smi::director"), "VSTACK_PROTOCOL");
    assert_eq!(facility("proxy::smi::tftp::transfer"), "VSTACK_DOWNLOAD");
    assert_eq!(facility("smi_proxy::download"), "VSTACK_DOWNLOAD");
    assert_eq!(facility("smi_proxy::db"), "VSTACK_DIR_DB");
    assert_eq!(facility("proxy::store::journal"), "VSTACK_DIR_DB");
    assert_eq!(facility("smi_proxy::fsm"), "VSTACK_FSM");
    assert_eq!(facility("proxy::control"), "VSTACK_CLI");
    assert_eq!(facility("hyper::client"), "VSTACK");
}

#[test]
fn the_global_switches_follow_set_debug() -> Result<(), LoggingError> {
    let text = set_debug("download", true)?;
    assert_eq!(text, "Vstack download debugging is on\n");
    assert!(active().contains(&"download"));
    assert!(show_debugging().contains("  vstack download debugging is on\n"));
    set_debug("download", false)?;
    assert!(!active().contains(&"download"));
    assert!(set_debug("nope", true).is_err());
    assert!(set_debug("backup", true).is_err());
    Ok(())
}

/// The IOS line of an event written in a client's span, without its
/// timestamp (checked for its shape).
fn ios_rest(line: &str) -> &str {
    let (stamp, rest) = line.split_at(line.len().min(19));
    let shape: String = stamp
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    assert!(
        stamp.len() == 19
            && (shape.ends_with(" 99 99:99:99.999") || shape.ends_with("  9 99:99:99.999")),
        "{line:?}"
    );
    rest
}

#[test]
fn the_ios_format_reads_as_the_chapter_with_the_client_fields() {
    let c = capture(LogFormat::Ios, "info");
    let mac: Mac = "0011.2233.4401".parse().expect("a MAC");
    with_default(&c.dispatch, || {
        let span = follow(mac, Some(Ipv4Addr::new(192, 0, 2, 11)), Some(&udi()));
        span.in_scope(|| {
            tracing::info!(target: "smi_proxy", "Sending work request");
            tracing::warn!(target: "proxy::smi::tftp::transfer", bytes = 512, "tftp: RRQ x failed");
        });
        tracing::info!(target: "proxy::control", "no client here");
    });
    let out = c.out.take();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(
        ios_rest(lines[0]),
        ": VSTACK_SMI_PROXY: mac 0011.2233.4401 ip 192.0.2.11 \
         udi PID:WS-C3750X-24,VID:V02,SN:FDO1613R2TA: Sending work request"
    );
    assert_eq!(
        ios_rest(lines[1]),
        ": VSTACK_DOWNLOAD: WARN: mac 0011.2233.4401 ip 192.0.2.11 \
         udi PID:WS-C3750X-24,VID:V02,SN:FDO1613R2TA: tftp: RRQ x failed bytes 512"
    );
    assert_eq!(ios_rest(lines[2]), ": VSTACK_CLI: no client here");
}

#[test]
fn the_plain_format_shows_the_client_span() {
    let c = capture(LogFormat::Plain, "info");
    let mac: Mac = "0011.2233.4402".parse().expect("a MAC");
    with_default(&c.dispatch, || {
        let span = follow(mac, Some(Ipv4Addr::new(192, 0, 2, 12)), None);
        span.in_scope(|| tracing::info!(target: "smi_proxy", "address learned"));
        // The UDI recorded later shows on the lines after.
        let span = follow(mac, None, Some(&udi()));
        span.in_scope(|| tracing::info!(target: "smi_proxy", "identified"));
    });
    assert_eq!(
        untimed(&c),
        [
            "INFO client{mac=0011.2233.4402 ip=192.0.2.12}: smi_proxy: address learned",
            "INFO client{mac=0011.2233.4402 ip=192.0.2.12 \
             udi=PID:WS-C3750X-24,VID:V02,SN:FDO1613R2TA}: smi_proxy: identified"
        ]
    );
}

#[test]
fn the_json_format_carries_the_client_fields() -> Result<(), serde_json::Error> {
    let c = capture(LogFormat::Json, "info");
    let mac: Mac = "0011.2233.4403".parse().expect("a MAC");
    with_default(&c.dispatch, || {
        let span = follow(mac, Some(Ipv4Addr::new(192, 0, 2, 13)), Some(&udi()));
        span.in_scope(|| tracing::info!(target: "smi_proxy", "identified"));
    });
    let out = c.out.take();
    let line: serde_json::Value = serde_json::from_str(out.trim())?;
    assert_eq!(line["fields"]["message"], "identified", "{line}");
    assert_eq!(line["target"], "smi_proxy", "{line}");
    assert_eq!(line["span"]["name"], "client", "{line}");
    assert_eq!(line["span"]["mac"], "0011.2233.4403", "{line}");
    assert_eq!(line["span"]["ip"], "192.0.2.13", "{line}");
    assert_eq!(
        line["spans"][0]["udi"], "PID:WS-C3750X-24,VID:V02,SN:FDO1613R2TA",
        "{line}"
    );
    Ok(())
}

#[test]
fn client_spans_show_even_where_rust_log_hides_their_target() {
    // Only warnings, and none of the span's own target: the warning still
    // names its client.
    let c = capture(LogFormat::Ios, "proxy::dhcp=warn");
    with_default(&c.dispatch, || {
        let mac: Mac = "0011.2233.4404".parse().expect("a MAC");
        client(mac).in_scope(|| tracing::warn!(target: "proxy::dhcp::server", "declined"));
    });
    let out = c.out.take();
    assert!(
        out.ends_with(": VSTACK_SMI_PROXY: WARN: mac 0011.2233.4404: declined\n"),
        "{out}"
    );
}
