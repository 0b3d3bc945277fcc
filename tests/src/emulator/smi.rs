//! One SMI connection to a switch: read exactly one message with the
//! emulator's own [`wire`] code, answer or act, close.
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, bail, ensure};
use md5::{Digest as _, Md5};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;

use super::link::Stream as TcpStream;
use super::switch::Reload;
use super::wire::{self, HEADER_LEN, Header, LengthError, Sent};
use super::{Event, Misbehaviour, Switch, SwitchCommand, cli, identity};
use crate::tftp_client;

/// Length word of the [`Misbehaviour::OversizeLength`] reply.
const OVERSIZE: u32 = 0x7fff_ffff;

/// What came in on a connection.
enum Inbound {
    /// A message the wire code accepts.
    Message(Sent),
    /// A known type with the wrong length or a malformed body: rejected.
    Refused,
}

/// Handles one accepted connection.
pub(super) async fn handle(
    sw: Arc<Switch>,
    mut stream: TcpStream,
    peer: SocketAddr,
    reload: mpsc::Sender<Reload>,
) {
    let misbehaviour = sw.state().misbehaviour;
    if misbehaviour == Misbehaviour::Silent {
        drain(&mut stream, sw.timeouts.silent_hold).await;
        return;
    }
    let inbound = match tokio::time::timeout(sw.timeouts.smi_read, read_one(&mut stream)).await {
        Ok(Ok(inbound)) => inbound,
        Ok(Err(e)) => {
            log::debug!("switch {}: SMI from {peer}: {e:#}", sw.position);
            return;
        }
        Err(_) => {
            log::debug!("switch {}: SMI from {peer}: read timed out", sw.position);
            return;
        }
    };
    if let Misbehaviour::Slow(delay) = misbehaviour {
        tokio::time::sleep(delay).await;
    }
    let message = match inbound {
        Inbound::Refused => {
            reply_and_close(&mut stream, &wire::REJECT, &sw).await;
            return;
        }
        Inbound::Message(message) => message,
    };
    sw.state().received.push(message.clone());
    match message {
        Sent::Probe => {
            sw.emit(Event::Probed {
                switch: sw.position,
                from: peer,
            });
            answer_probe(&sw, &mut stream, misbehaviour).await;
        }
        Sent::ConfigUpgrade { url, reload: asked } => {
            drop(stream);
            if config_upgrade(&sw, &url).await && asked.is_some() {
                // MODELLED: the reload time is honoured at once.
                let (image, version) = {
                    let state = sw.state();
                    (state.image.clone(), state.version.clone())
                };
                let _ = reload.send(Reload { image, version }).await;
            }
        }
        Sent::ImageUpgrade { url, .. } => {
            drop(stream);
            match image_upgrade(&sw, &url).await {
                Ok(next) => {
                    let _ = reload.send(next).await;
                }
                Err(e) => sw.fail("image upgrade", &e),
            }
        }
        Sent::ExecuteFile { url } => {
            drop(stream);
            let commands = match fetch(&sw, &url).await {
                Ok(file) => quoted_commands(&String::from_utf8_lossy(&file)),
                Err(e) => {
                    sw.fail("execute file", &e);
                    Vec::new()
                }
            };
            sw.emit(Event::Command {
                switch: sw.position,
                command: SwitchCommand::ExecuteFile { url, commands },
            });
        }
        Sent::RunCli { commands, .. } => {
            drop(stream);
            sw.emit(Event::Command {
                switch: sw.position,
                command: SwitchCommand::RunCli {
                    commands: commands.clone(),
                },
            });
            for command in commands {
                run_exec(&sw, &command).await;
            }
        }
        // Any other header (client-side messages, unknown types): close,
        // as a client does.
        Sent::Other { .. } => {}
    }
}

/// Reads one message: header, checked length, exact payload, decode.
async fn read_one(stream: &mut TcpStream) -> anyhow::Result<Inbound> {
    let mut head = [0u8; HEADER_LEN];
    stream.read_exact(&mut head).await.context("header")?;
    let header = Header::parse(&head);
    let len = match header.payload_len() {
        Ok(len) => len,
        Err(LengthError::WrongForType(_)) => return Ok(Inbound::Refused),
        Err(e @ LengthError::OverCap(_)) => bail!("{header:?}: {e}"),
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.context("payload")?;
    Ok(match wire::decode(&header, &payload) {
        Ok(sent) => Inbound::Message(sent),
        Err(e) => {
            log::debug!("refusing {header:?}: {e}");
            Inbound::Refused
        }
    })
}

async fn answer_probe(sw: &Switch, stream: &mut TcpStream, misbehaviour: Misbehaviour) {
    let reply = wire::CLIENT_REPLY;
    match misbehaviour {
        Misbehaviour::Truncated => {
            let _ = stream.write_all(&reply[..reply.len() / 2]).await;
            // Close at once, mid-message.
        }
        Misbehaviour::OversizeLength => {
            let mut bogus = reply;
            bogus[12..HEADER_LEN].copy_from_slice(&OVERSIZE.to_be_bytes());
            reply_and_close(stream, &bogus, sw).await;
        }
        _ => reply_and_close(stream, &reply, sw).await,
    }
}

/// Writes `bytes`, half-closes, and reads until the peer closes (bounded),
/// so unread input never turns the close into a reset that eats the reply.
async fn reply_and_close(stream: &mut TcpStream, bytes: &[u8], sw: &Switch) {
    if stream.write_all(bytes).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    drain(stream, sw.timeouts.smi_read).await;
}

/// Reads and discards until EOF, error or `limit`.
async fn drain(stream: &mut TcpStream, limit: std::time::Duration) {
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(limit, async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// Fetches a URL over TFTP from a fresh socket of the switch.
async fn fetch(sw: &Switch, url: &str) -> anyhow::Result<Vec<u8>> {
    let (server, file) = tftp_client::parse_url(url)?;
    let socket = sw.link.udp().await?;
    tftp_client::fetch(&socket, server, &file, &sw.timeouts.tftp)
        .await
        .with_context(|| format!("fetching {url}"))
}

/// One exec command of a type-8 message. Only `show version | redirect
/// tftp://...` does something (the output is written to that URL); other
/// commands are recorded in the [`Event::Command`] only.
async fn run_exec(sw: &Switch, command: &str) {
    let Some(url) = command
        .trim()
        .strip_prefix("show version")
        .map(str::trim_start)
        .and_then(|rest| rest.strip_prefix('|'))
        .map(str::trim_start)
        .and_then(|rest| rest.strip_prefix("redirect "))
        .map(str::trim)
    else {
        return;
    };
    let text = sw.show_version().render().replace('\n', "\r\n");
    let upload = async {
        let (server, file) = tftp_client::parse_url(url)?;
        let socket = sw.link.udp().await?;
        tftp_client::upload(&socket, server, &file, text.as_bytes(), &sw.timeouts.tftp)
            .await
            .with_context(|| format!("uploading to {url}"))
    };
    match upload.await {
        Ok(()) => sw.emit(Event::OutputSent {
            switch: sw.position,
            command: command.to_owned(),
            url: url.to_owned(),
            bytes: text.len(),
        }),
        Err(e) => sw.fail("show version | redirect", &e),
    }
}

/// Type 3: fetch, store as startup config, then the reverse telnet if the
/// configuration asks for it. Whether the configuration was stored.
async fn config_upgrade(sw: &Switch, url: &str) -> bool {
    let config = match fetch(sw, url).await {
        Ok(config) => config,
        Err(e) => {
            sw.fail("config upgrade", &e);
            return false;
        }
    };
    let target = telnet_target(&String::from_utf8_lossy(&config));
    let bytes = config.len();
    sw.state().startup_config = Some(config);
    sw.emit(Event::ConfigFetched {
        switch: sw.position,
        url: url.to_owned(),
        bytes,
    });
    let Some(target) = target else {
        return true;
    };
    match cli::run(sw, target).await {
        Ok(commands) => sw.emit(Event::TelnetDone {
            switch: sw.position,
            peer: target,
            commands,
        }),
        Err(e) => sw.fail("telnet", &e),
    }
    true
}

/// Type 2: the image list, then the image it names from the same
/// directory; checks it and says what to reload into.
async fn image_upgrade(sw: &Switch, url: &str) -> anyhow::Result<Reload> {
    let list = fetch(sw, url).await?;
    let list = String::from_utf8_lossy(&list);
    let name = list
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .with_context(|| format!("image list {url} is empty"))?;
    ensure!(
        name.bytes().all(|b| b.is_ascii_graphic()),
        "image list {url} names {name:?}"
    );
    let dir = &url[..url.rfind('/').map_or(url.len(), |i| i + 1)];
    let image = fetch(sw, &format!("{dir}{name}")).await?;
    ensure!(!image.is_empty(), "image {name} is empty");
    if let Some(expected) = &sw.config.image_md5 {
        let actual = hex::encode(Md5::digest(&image));
        ensure!(
            actual.eq_ignore_ascii_case(expected),
            "image {name}: MD5 {actual}, expected {expected}"
        );
    }
    let version = sw
        .config
        .next_version
        .clone()
        .or_else(|| identity::version_of_tar(name))
        .unwrap_or_else(|| sw.state().version.clone());
    sw.emit(Event::ImageInstalled {
        switch: sw.position,
        image: name.to_owned(),
        bytes: image.len(),
        version: version.clone(),
    });
    Ok(Reload {
        image: identity::installed_image(name),
        version,
    })
}

/// The first `do telnet <ip> [<port>]` line of a configuration (port 23 if
/// absent).
fn telnet_target(config: &str) -> Option<SocketAddr> {
    config.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if (words.next(), words.next()) != (Some("do"), Some("telnet")) {
            return None;
        }
        let ip: std::net::IpAddr = words.next()?.parse().ok()?;
        let port = match words.next() {
            Some(p) => p.parse().ok()?,
            None => 23,
        };
        Some(SocketAddr::new(ip, port))
    })
}

/// The double-quoted commands of a type-5 file (SIET's format).
fn quoted_commands(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telnet_lines_and_quoted_commands() {
        let config = "version 12.2\nenable password cisco\ndo telnet 192.0.2.1 19140\nvstack director 192.0.2.1\nend\n";
        assert_eq!(
            telnet_target(config),
            Some("192.0.2.1:19140".parse().unwrap())
        );
        assert_eq!(
            telnet_target("do telnet 192.0.2.9"),
            Some("192.0.2.9:23".parse().unwrap())
        );
        assert_eq!(telnet_target("do telnet host 1"), None);
        assert_eq!(telnet_target("end"), None);
        assert_eq!(
            quoted_commands("\"username cisco privilege 15 secret 0 cisco\" \"exit\"\n"),
            vec!["username cisco privilege 15 secret 0 cisco", "exit"]
        );
    }
}
