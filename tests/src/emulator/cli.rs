//! The reverse-telnet CLI a switch offers after a configuration with
//! `do telnet <ip> <port>` (the SMI proxy's tailored configuration, doc
//! section 10).
//!
//! MODELLED: the real exchange is not public (doc section 11). The model,
//! which the proxy's side must follow exactly:
//! - the switch connects and sends `\r\n<hostname>#` (no trailing newline);
//! - every line from the proxy ends with `\r\n` or `\n` (white space around
//!   it is ignored) and gets one answer:
//!   - `terminal length 0` -> `\r\n<hostname>#`;
//!   - `show version` -> the `show version` text
//!     ([`super::ShowVersion::render`], lines joined with `\r\n`),
//!     then `\r\n<hostname>#`;
//!   - `exit` -> the switch closes the connection;
//!   - anything else -> `\r\n% Invalid input detected at '^' marker.\r\n<hostname>#`.
//!
//! No echo and no telnet option negotiation; lines longer than
//! [`MAX_LINE`] bytes, or silence longer than the idle timeout, end the
//! session.
use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::Switch;

/// Longest accepted line from the proxy.
pub const MAX_LINE: usize = 1024;

/// The answer to `line` (without its terminator), or `None` for `exit`.
pub fn answer(line: &str, hostname: &str, show_version: impl FnOnce() -> String) -> Option<String> {
    let prompt = format!("\r\n{hostname}#");
    match line.trim() {
        "exit" => None,
        "terminal length 0" => Some(prompt),
        "show version" => Some(format!("{}{prompt}", show_version().replace('\n', "\r\n"))),
        _ => Some(format!(
            "\r\n% Invalid input detected at '^' marker.\r\n{hostname}#"
        )),
    }
}

/// Connects to the proxy from the switch's namespace and runs the session;
/// returns the lines the proxy sent.
pub(super) async fn run(sw: &Switch, target: SocketAddr) -> anyhow::Result<Vec<String>> {
    let mut stream = sw.link.connect(target, sw.timeouts.connect).await?;
    let hostname = sw.hostname();
    stream
        .write_all(format!("\r\n{hostname}#").as_bytes())
        .await
        .context("prompt")?;
    let mut pending: Vec<u8> = Vec::new();
    let mut lines = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let Some(end) = pending.iter().position(|&b| b == b'\n') else {
            if pending.len() > MAX_LINE {
                bail!("line longer than {MAX_LINE} bytes");
            }
            let n = tokio::time::timeout(sw.timeouts.cli_idle, stream.read(&mut buf))
                .await
                .context("proxy silent")?
                .context("read")?;
            if n == 0 {
                return Ok(lines);
            }
            pending.extend_from_slice(&buf[..n]);
            continue;
        };
        let raw: Vec<u8> = pending.drain(..=end).collect();
        let line = String::from_utf8_lossy(&raw)
            .trim_end_matches(['\n', '\r'])
            .to_owned();
        let reply = answer(&line, &hostname, || sw.show_version().render());
        lines.push(line);
        match reply {
            Some(text) => stream.write_all(text.as_bytes()).await.context("write")?,
            None => return Ok(lines),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_follow_the_model() {
        let sv = || "a\nb".to_owned();
        assert_eq!(
            answer("terminal length 0", "SW", sv).as_deref(),
            Some("\r\nSW#")
        );
        assert_eq!(
            answer(" show version ", "SW", sv).as_deref(),
            Some("a\r\nb\r\nSW#")
        );
        assert_eq!(answer("exit", "SW", sv), None);
        assert_eq!(
            answer("sh ver", "SW", sv).as_deref(),
            Some("\r\n% Invalid input detected at '^' marker.\r\nSW#")
        );
    }
}
