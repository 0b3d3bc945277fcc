//! `smi-pnp-server`: the scripted PnP test server for the lab. Prints its
//! URL, then one line per message received, until interrupted.
//!
//! ```text
//! smi-pnp-server --addr 0.0.0.0:8080 --advertise http://192.0.2.10:8080 \
//!     --script 'device-info,config:startup:sw1.cfg:reload,backoff:60' \
//!     --config sw1.cfg=./sw1.cfg --image c2960x.tar=fake:20971520
//! smi-pnp-server --https --cert-out /tmp/pnp.pem --script 'capability,repeat'
//! ```
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Parser as _;
use proxy_tests::pnp_server::{
    PnpServer, PnpServerConfig, Script, WireOptions, fake_image, parse_udi_script,
};

#[derive(clap::Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Serve HTTPS with a fresh self-signed certificate.
    #[arg(long)]
    https: bool,
    /// Write the certificate (PEM) here, for the proxy to pin.
    #[arg(long)]
    cert_out: Option<PathBuf>,
    /// Extra names or addresses in the certificate.
    #[arg(long = "cert-name")]
    cert_names: Vec<String>,
    /// Default script: comma-separated steps (device-info[:type],
    /// config:<startup|running>:<file>[:reload], image:<file>[:<md5>],
    /// capability, topology, backoff:<secs>, default-minutes:<m>, terminate,
    /// unsupported:<service>, bye), optionally ending in `repeat`.
    #[arg(long, default_value = "")]
    script: String,
    /// Script of one UDI: `<UDI>=<steps>` (repeatable).
    #[arg(long = "udi-script")]
    udi_scripts: Vec<String>,
    /// Serve a configuration: `<name>=<path>` (repeatable).
    #[arg(long = "config")]
    configs: Vec<String>,
    /// Serve an image: `<name>=<path>` or `<name>=fake:<bytes>` (repeatable).
    #[arg(long = "image")]
    images: Vec<String>,
    /// Base URL put in file locations (default: the listening address).
    #[arg(long)]
    advertise: Option<String>,
    /// `sid` put on every server message.
    #[arg(long)]
    sid: Option<String>,
    /// openpnpy's prefixed namespace form.
    #[arg(long)]
    prefixed: bool,
    /// Alternative spellings (callBackAfter, saveConfig 1/0).
    #[arg(long)]
    alt_spellings: bool,
}

fn name_and_value(text: &str) -> anyhow::Result<(&str, &str)> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() && !value.is_empty() => Ok((name, value)),
        _ => bail!("{text:?} is not <name>=<value>"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    env_logger::init();
    let args = Args::parse();
    let mut config = PnpServerConfig::new(args.addr);
    config.https = args.https;
    config.cert_names = args.cert_names;
    config.advertise = args.advertise;
    config.sid = args.sid;
    config.wire = WireOptions {
        prefixed: args.prefixed,
        alt_spellings: args.alt_spellings,
    };
    config.default_script = args.script.parse::<Script>().context("--script")?;
    let server = PnpServer::start(config).await?;
    for text in &args.udi_scripts {
        let (udi, script) = parse_udi_script(text).context("--udi-script")?;
        server.set_script(&udi, script);
    }
    for text in &args.configs {
        let (name, path) = name_and_value(text).context("--config")?;
        let data = std::fs::read(path).with_context(|| format!("--config {path}"))?;
        let md5 = server.add_config(name, data);
        println!("config {} md5 {md5}", server.config_url(name));
    }
    for text in &args.images {
        let (name, source) = name_and_value(text).context("--image")?;
        let data = match source.strip_prefix("fake:") {
            Some(len) => fake_image(len.parse().context("--image fake:<bytes>")?).0,
            None => std::fs::read(source).with_context(|| format!("--image {source}"))?,
        };
        let md5 = server.add_image(name, data);
        println!("image {} md5 {md5}", server.image_url(name));
    }
    if let Some(path) = &args.cert_out {
        let pem = server.cert_pem().context("--cert-out needs --https")?;
        std::fs::write(path, pem).with_context(|| format!("--cert-out {}", path.display()))?;
        println!("certificate written to {}", path.display());
    }
    println!("PnP test server at {}", server.url());

    let mut changed = server.subscribe();
    let mut shown = 0;
    let mut hellos = 0;
    loop {
        tokio::select! {
            signal = tokio::signal::ctrl_c() => {
                signal.context("waiting for ^C")?;
                return Ok(());
            }
            result = changed.changed() => result.context("server gone")?,
        }
        let now = server.hellos();
        if now > hellos {
            println!("HELLO ({now} so far)");
            hellos = now;
        }
        let entries = server.entries();
        for entry in entries.iter().skip(shown) {
            let udi = entry
                .udi
                .as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string);
            let sid = entry
                .sid
                .as_deref()
                .map(|s| format!(" sid={s}"))
                .unwrap_or_default();
            println!("{udi}{sid}: {}", entry.received);
        }
        shown = entries.len();
    }
}
