use super::*;
use crate::show::ShowCommand;
use std::time::Duration;

const DOCS: &str = include_str!("../../../docs/configuration.md");

/// The full example of `docs/configuration.md` (the ```toml block after
/// the `<!-- full-example -->` marker).
fn docs_example() -> &'static str {
    let after = DOCS
        .split_once("<!-- full-example -->")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let body = after
        .split_once("```toml\n")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    body.split_once("```").map(|(b, _)| b).unwrap_or_default()
}

fn minimal() -> ProxyConfig {
    ProxyConfig {
        interfaces: vec!["eth1".to_owned()],
        ..ProxyConfig::default()
    }
}

fn with_profile(mut cfg: ProxyConfig, name: &str) -> ProxyConfig {
    cfg.pnp_profiles.insert(
        name.to_owned(),
        PnpProfileConfig::new("http://192.0.2.10:9000"),
    );
    cfg
}

fn local() -> LocalAddrs {
    LocalAddrs::new()
        .with("lo", &[Ipv4Addr::LOCALHOST])
        .with("vlan1", &[Ipv4Addr::new(4, 1, 1, 1)])
        .with(
            "eth0",
            &[Ipv4Addr::new(5, 1, 1, 1), Ipv4Addr::new(5, 1, 1, 9)],
        )
        .with("eth1", &[])
}

fn invalid_field(result: Result<(), ConfigError>) -> String {
    match result {
        Err(ConfigError::Invalid { field, .. }) => field,
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

/// A fresh directory under the system temporary directory.
fn temp_dir(tag: &str) -> std::io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "smi-proxy-config-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

// ------------------------------------------------------------ the file

#[test]
fn a_minimal_file_gets_the_documented_defaults() -> Result<(), ConfigError> {
    let cfg = ProxyConfig::from_toml("interfaces = [\"eth1\"]\n")?;
    assert_eq!(cfg, minimal());
    assert_eq!(cfg.netns, None);
    assert!(cfg.enabled);
    assert!(!cfg.proxy_configured());
    assert_eq!(cfg.startup_vlan, 1);
    assert_eq!(cfg.management_vlans, [1]);
    assert_eq!(cfg.untagged_vlan, 1);
    assert_eq!(cfg.pnp_profile, "pnp-zero-touch");
    assert_eq!(cfg.credentials.enable_password, "cisco");
    assert_eq!(cfg.credentials.username, "cisco");
    assert_eq!(cfg.state_dir, Path::new("/var/lib/smi-pnp-proxy"));
    assert_eq!(cfg.pin_dir, Path::new("/sys/fs/bpf/smi-pnp-proxy"));
    assert_eq!(
        cfg.control_socket,
        Path::new("/run/smi-pnp-proxy/control.sock")
    );
    assert_eq!(cfg.metrics_addr.to_string(), "127.0.0.1:9786");
    assert_eq!(cfg.limits.max_smi_connections, 256);
    assert_eq!(cfg.limits.probe_timeout(), Duration::from_secs(3));
    assert_eq!(cfg.limits.telnet_timeout(), Duration::from_secs(30));
    assert_eq!(cfg.limits.clients_max, 16_384);
    assert_eq!(cfg.limits.smi_len_cap, 4096);
    assert!(cfg.enforce);
    assert!(!cfg.dhcp_localserver.enabled);
    assert_eq!(cfg.dhcp_localserver.lease_time_secs, 86_400);
    assert!(!cfg.debug);
    Ok(())
}

#[test]
fn the_documented_example_loads() -> Result<(), ConfigError> {
    let example = docs_example();
    assert!(
        example.contains("interfaces"),
        "no example found in docs/configuration.md"
    );
    let cfg = ProxyConfig::from_toml(example)?;
    assert_eq!(cfg.interfaces, ["eth1", "eth2"]);
    assert_eq!(cfg.interface.as_deref(), Some("vlan1"));
    assert!(cfg.proxy_enabled());
    let profile = cfg.active_profile().expect("active profile defined");
    assert!(profile.server_url.starts_with("https://"));
    assert!(matches!(profile.trust(), ServerTrust::CaBundle(_)));
    let pool = cfg.dhcp_localserver.pool().expect("example enables DHCP");
    assert_eq!(pool.start, Ipv4Addr::new(4, 1, 1, 100));
    Ok(())
}

#[test]
fn every_key_is_documented() -> Result<(), ConfigError> {
    let mut full = with_profile(minimal(), DEFAULT_PNP_PROFILE);
    full.netns = Some("smi".to_owned());
    full.ip_address = Some(Ipv4Addr::new(4, 1, 1, 1));
    full.dhcp_localserver.set_pool(DhcpPool {
        start: Ipv4Addr::new(4, 1, 1, 10),
        end: Ipv4Addr::new(4, 1, 1, 20),
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        default_router: Some(Ipv4Addr::new(4, 1, 1, 1)),
        lease_secs: 600,
    });
    let value: toml::Table =
        toml::from_str(&full.to_toml()?).map_err(|e| ConfigError::Toml(e.to_string()))?;
    let mut keys = Vec::new();
    for (k, v) in &value {
        keys.push(k.clone());
        if let (Some(table), false) = (v.as_table(), k == "pnp_profiles") {
            keys.extend(table.keys().cloned());
        }
    }
    keys.extend(["ca_bundle", "pinned_cert", "server_url", "via_proxy"].map(String::from));
    for key in keys {
        assert!(
            DOCS.contains(&format!("`{key}`")) || DOCS.contains(&format!("### `[{key}")),
            "docs/configuration.md does not document `{key}`"
        );
    }
    Ok(())
}

#[test]
fn unknown_keys_are_refused() {
    for (text, key) in [
        (
            "interfaces = [\"eth1\"]\nstartup_vlans = [1]\n",
            "startup_vlans",
        ),
        (
            "interfaces = [\"eth1\"]\n[limits]\nclient_max = 5\n",
            "client_max",
        ),
        (
            "interfaces = [\"eth1\"]\n[pnp_profiles.a]\nserver_url = \"http://x\"\nurl = \"y\"\n",
            "url",
        ),
        (
            "interfaces = [\"eth1\"]\n[credentials]\npassword = \"x\"\n",
            "password",
        ),
    ] {
        match ProxyConfig::from_toml(text) {
            Err(ConfigError::Toml(message)) => {
                assert!(message.contains(key), "{message:?} does not name {key}")
            }
            other => panic!("{text:?}: expected a parse error, got {other:?}"),
        }
    }
}

#[test]
fn wrong_types_and_bad_toml_are_refused() {
    for text in [
        "interfaces = \"eth1\"\n",
        "interfaces = [\"eth1\"]\nstartup_vlan = \"1\"\n",
        "interfaces = [\"eth1\"]\nip_address = \"4.1.1\"\n",
        "interfaces = [\"eth1\"]\nstartup_vlan = 70000\n",
        "interfaces = [\"eth1\"\n",
    ] {
        assert!(
            matches!(ProxyConfig::from_toml(text), Err(ConfigError::Toml(_))),
            "{text:?} was accepted"
        );
    }
}

#[test]
fn validation_names_the_offending_key() {
    let check = |tweak: &dyn Fn(&mut ProxyConfig)| {
        let mut cfg = with_profile(minimal(), DEFAULT_PNP_PROFILE);
        tweak(&mut cfg);
        invalid_field(cfg.validate())
    };
    assert_eq!(check(&|c| c.interfaces.clear()), "interfaces");
    assert_eq!(check(&|c| c.interfaces.push("eth1".into())), "interfaces");
    assert_eq!(
        check(&|c| c.interfaces = vec!["a-very-long-interface".into()]),
        "interfaces"
    );
    assert_eq!(check(&|c| c.netns = Some("../x".into())), "netns");
    assert_eq!(
        check(&|c| {
            c.ip_address = Some(Ipv4Addr::new(4, 1, 1, 1));
            c.interface = Some("vlan1".into());
        }),
        "ip_address"
    );
    assert_eq!(
        check(&|c| c.ip_address = Some(Ipv4Addr::UNSPECIFIED)),
        "ip_address"
    );
    assert_eq!(check(&|c| c.interface = Some("a b".into())), "interface");
    assert_eq!(check(&|c| c.startup_vlan = 0), "startup_vlan");
    assert_eq!(check(&|c| c.untagged_vlan = 4095), "untagged_vlan");
    assert_eq!(
        check(&|c| c.management_vlans = vec![1, 5000]),
        "management_vlans"
    );
    assert_eq!(check(&|c| c.pnp_profile = "a b".into()), "pnp_profile");
    assert_eq!(
        check(&|c| {
            c.pnp_profile = "other".into();
            c.ip_address = Some(Ipv4Addr::new(4, 1, 1, 1));
        }),
        "pnp_profile"
    );
    assert_eq!(
        check(&|c| c.credentials.enable_password = "a\nend".into()),
        "credentials.enable_password"
    );
    assert_eq!(
        check(&|c| c.credentials.username = "a b".into()),
        "credentials.username"
    );
    assert_eq!(check(&|c| c.state_dir = "var/lib".into()), "state_dir");
    assert_eq!(
        check(&|c| c.control_socket = "control.sock".into()),
        "control_socket"
    );
    assert_eq!(
        check(&|c| c.limits.max_smi_connections = 0),
        "limits.max_smi_connections"
    );
    assert_eq!(
        check(&|c| c.limits.probe_timeout_secs = 0),
        "limits.probe_timeout_secs"
    );
    assert_eq!(check(&|c| c.limits.clients_max = 0), "limits.clients_max");
    assert_eq!(
        check(&|c| c.dhcp_localserver.enabled = true),
        "dhcp_localserver.pool_start"
    );
    // A profile that is not the active one is still checked.
    assert_eq!(
        check(&|c| {
            c.pnp_profiles
                .insert("spare".into(), PnpProfileConfig::new("ftp://x"));
        }),
        "pnp_profiles.spare.server_url"
    );
    // An undefined active profile is fine while the proxy is off.
    let mut off = minimal();
    off.pnp_profile = "elsewhere".into();
    assert!(off.validate().is_ok());
    assert_eq!(
        minimal().limits.smi_len_cap,
        proxy_common::SMI_LEN_CAP_DEFAULT
    );
    let mut uncapped = minimal();
    uncapped.limits.smi_len_cap = 0;
    assert!(uncapped.validate().is_ok(), "0 means no cap");
}

#[test]
fn profiles_check_url_and_trust() {
    let check = |profile: PnpProfileConfig| profile.validate("p");
    let pem = || Some(PathBuf::from("/etc/smi-pnp-proxy/server.pem"));
    assert!(check(PnpProfileConfig::new("http://192.0.2.1")).is_ok());
    assert!(check(PnpProfileConfig::new("http://pnp.example:8080/prefix")).is_ok());
    assert!(check(PnpProfileConfig::new("http://[2001:db8::1]:80")).is_ok());
    for bad in [
        "ftp://x",
        "192.0.2.1",
        "http://",
        "http://:80",
        "http://x:0",
        "http://x:99999",
        "http://x/?q=1",
        "http://u@x",
        "http://[::1",
        "http://[::1]x",
        "http://x y",
    ] {
        assert!(check(PnpProfileConfig::new(bad)).is_err(), "{bad} accepted");
    }
    assert_eq!(
        invalid_field(check(PnpProfileConfig::new("https://x"))),
        "pnp_profiles.p.server_url"
    );
    let mut ca = PnpProfileConfig::new("https://x:443");
    ca.ca_bundle = pem();
    assert!(check(ca.clone()).is_ok());
    assert_eq!(
        ca.trust(),
        ServerTrust::CaBundle(PathBuf::from("/etc/smi-pnp-proxy/server.pem"))
    );
    let mut pinned = PnpProfileConfig::new("https://x:443");
    pinned.pinned_cert = pem();
    assert!(check(pinned.clone()).is_ok());
    assert!(matches!(pinned.trust(), ServerTrust::PinnedCert(_)));
    let mut both = ca.clone();
    both.pinned_cert = pem();
    assert_eq!(invalid_field(check(both)), "pnp_profiles.p.pinned_cert");
    let mut plain_with_ca = PnpProfileConfig::new("http://x");
    plain_with_ca.ca_bundle = pem();
    assert_eq!(
        invalid_field(check(plain_with_ca)),
        "pnp_profiles.p.ca_bundle"
    );
    let mut relative = PnpProfileConfig::new("https://x");
    relative.ca_bundle = Some(PathBuf::from("ca.pem"));
    assert_eq!(invalid_field(check(relative)), "pnp_profiles.p.ca_bundle");
    assert_eq!(PnpProfileConfig::new("http://x").trust(), ServerTrust::None);
}

#[test]
fn dhcp_pools_are_checked() {
    let pool = |start: [u8; 4], end: [u8; 4], mask: [u8; 4], router: Option<[u8; 4]>| DhcpPool {
        start: start.into(),
        end: end.into(),
        netmask: mask.into(),
        default_router: router.map(Ipv4Addr::from),
        lease_secs: 3600,
    };
    let m24 = [255, 255, 255, 0];
    assert!(
        pool([4, 1, 1, 10], [4, 1, 1, 20], m24, Some([4, 1, 1, 1]))
            .check()
            .is_ok()
    );
    assert!(
        pool([4, 1, 1, 10], [4, 1, 1, 10], m24, None)
            .check()
            .is_ok()
    );
    for (bad, why) in [
        (pool([4, 1, 1, 20], [4, 1, 1, 10], m24, None), "after"),
        (pool([4, 1, 1, 10], [4, 1, 2, 10], m24, None), "subnet"),
        (
            pool([4, 1, 1, 10], [4, 1, 1, 20], [255, 0, 255, 0], None),
            "contiguous",
        ),
        (pool([4, 1, 1, 0], [4, 1, 1, 20], m24, None), "broadcast"),
        (pool([4, 1, 1, 10], [4, 1, 1, 255], m24, None), "broadcast"),
        (
            pool([4, 1, 1, 10], [4, 1, 1, 20], m24, Some([4, 1, 2, 1])),
            "outside",
        ),
        (
            pool([4, 1, 1, 10], [4, 1, 1, 20], m24, Some([4, 1, 1, 15])),
            "inside",
        ),
    ] {
        match bad.check() {
            Err(reason) => assert!(reason.contains(why), "{reason:?} lacks {why:?}"),
            Ok(()) => panic!("{bad:?} accepted"),
        }
    }
    let mut short = pool([4, 1, 1, 10], [4, 1, 1, 20], m24, None);
    short.lease_secs = 59;
    assert!(short.check().is_err());
}

#[test]
fn files_load_save_and_report_their_path() -> Result<(), Box<dyn std::error::Error>> {
    let dir = temp_dir("files")?;
    let path = dir.join("config.toml");
    match ProxyConfig::load(&path) {
        Err(e @ ConfigError::Read { .. }) => assert!(e.to_string().contains("config.toml")),
        other => panic!("expected a read error, got {other:?}"),
    }
    std::fs::write(&path, "interfaces = [\"eth1\"]\nbogus = 1\n")?;
    match ProxyConfig::load(&path) {
        Err(e @ ConfigError::Parse { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains("bogus"), "{text}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    let mut cfg = ProxyConfig::from_toml(docs_example())?;
    cfg.debug = true;
    cfg.save(&path)?;
    assert_eq!(ProxyConfig::load(&path)?, cfg);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&path)?.permissions().mode() & 0o777,
        0o600
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn proxy_ip_resolves_against_this_machine() -> Result<(), ConfigError> {
    let l = local();
    let mut cfg = minimal();
    assert_eq!(cfg.proxy_ip(&l)?, None);
    cfg.ip_address = Some(Ipv4Addr::new(5, 1, 1, 9));
    assert_eq!(cfg.proxy_ip(&l)?, Some(Ipv4Addr::new(5, 1, 1, 9)));
    cfg.ip_address = Some(Ipv4Addr::new(5, 1, 1, 2));
    assert!(matches!(
        cfg.proxy_ip(&l),
        Err(ConfigError::NotLocalAddress(_))
    ));
    cfg.ip_address = None;
    cfg.interface = Some("eth0".into());
    assert_eq!(cfg.proxy_ip(&l)?, Some(Ipv4Addr::new(5, 1, 1, 1)));
    cfg.interface = Some("eth1".into());
    assert!(matches!(cfg.proxy_ip(&l), Err(ConfigError::NoIpv4(_))));
    cfg.interface = Some("eth7".into());
    assert!(matches!(
        cfg.proxy_ip(&l),
        Err(ConfigError::NoSuchInterface(_))
    ));
    Ok(())
}

#[test]
fn policy_and_show_config_follow_the_file() {
    let mut cfg = minimal();
    cfg.startup_vlan = 20;
    cfg.untagged_vlan = 7;
    cfg.enforce = false;
    cfg.limits.smi_len_cap = 1000;
    let p = cfg.policy();
    assert_eq!(p.enforce, 0);
    assert_eq!(p.smi_len_cap, 1000);
    assert_eq!(p.untagged_vlan, 7);
    assert!(p.is_startup_vlan(20));
    assert!(!p.is_startup_vlan(1));

    let shown = cfg.show_config(None);
    assert!(!shown.enabled, "no proxy address: off");
    assert_eq!(shown.proxy_ip, Ipv4Addr::UNSPECIFIED);
    let mut on = with_profile(minimal(), DEFAULT_PNP_PROFILE);
    on.ip_address = Some(Ipv4Addr::new(4, 1, 1, 1));
    let text = crate::show::render(
        ShowCommand::Config,
        &crate::show::ShowView {
            config: on.show_config(Some(Ipv4Addr::new(4, 1, 1, 1))),
            clients: vec![],
        },
    );
    assert_eq!(
        text,
        "Role: SMI PnP Proxy\n\
         Vstack SMI PnP Proxy IP address: 4.1.1.1\n\
         Vstack default management vlan: 1\n\
         Vstack start-up management vlan: 1\n\
         Vstack management Vlans: 1\n"
    );
    on.enabled = false;
    assert!(!on.show_config(None).enabled, "no vstack: off");
}

#[test]
fn debug_output_hides_the_password() {
    let mut cfg = minimal();
    cfg.credentials.enable_password = "s3cret".into();
    let text = format!("{cfg:?}");
    assert!(!text.contains("s3cret"));
    assert!(text.contains("<redacted>"));
}

// ------------------------------------------------------------ IOS

fn proxy_cfg() -> ProxyConfig {
    with_profile(with_profile(minimal(), DEFAULT_PNP_PROFILE), "lab")
}

fn run(cfg: &mut ProxyConfig, line: &str) -> Result<Vec<FieldChange>, IosError> {
    execute(cfg, line, &local())
}

fn refusal(cfg: &mut ProxyConfig, line: &str) -> String {
    let before = cfg.clone();
    match run(cfg, line) {
        Err(e) => {
            assert_eq!(*cfg, before, "{line:?} changed the configuration");
            e.to_string()
        }
        Ok(changes) => panic!("{line:?} accepted: {changes:?}"),
    }
}

#[test]
fn the_chapters_examples_apply() -> Result<(), IosError> {
    let mut cfg = proxy_cfg();
    let changes = run(&mut cfg, "vstack proxy interface vlan 1 startup-vlan 1")?;
    assert_eq!(cfg.interface.as_deref(), Some("vlan1"));
    assert_eq!(cfg.ip_address, None);
    assert_eq!(
        changes,
        [FieldChange {
            field: ConfigField::ProxyAddress,
            before: "none".into(),
            after: "interface vlan1".into(),
        }]
    );
    assert_eq!(cfg.proxy_ip(&local())?, Some(Ipv4Addr::new(4, 1, 1, 1)));

    let mut cfg = proxy_cfg();
    run(&mut cfg, "vstack proxy ip-address 4.1.1.1 startup-vlan 1")?;
    assert_eq!(cfg.ip_address, Some(Ipv4Addr::new(4, 1, 1, 1)));
    assert!(cfg.proxy_enabled());
    assert_eq!(cfg.pnp_profile, DEFAULT_PNP_PROFILE);

    let mut cfg = proxy_cfg();
    run(
        &mut cfg,
        "vstack proxy ip-address 4.1.1.1 startup-vlan 1 pnp-profile pnp-zero-touch",
    )?;
    assert_eq!(cfg.ip_address, Some(Ipv4Addr::new(4, 1, 1, 1)));
    Ok(())
}

#[test]
fn proxy_options_default_and_combine() -> Result<(), IosError> {
    let mut cfg = proxy_cfg();
    run(&mut cfg, "vstack startup-vlan 10")?;
    let changes = run(
        &mut cfg,
        "vstack proxy ip-address 5.1.1.9 pnp-profile lab startup-vlan 30",
    )?;
    assert_eq!(cfg.startup_vlan, 30);
    assert_eq!(cfg.pnp_profile, "lab");
    assert_eq!(
        summary(&changes),
        "proxy: none -> ip-address 5.1.1.9\n\
         startup-vlan: 10 -> 30\n\
         pnp-profile: pnp-zero-touch -> lab\n"
    );
    // Without options: startup VLAN 1 and profile pnp-zero-touch again.
    run(&mut cfg, "vstack proxy ip-address 5.1.1.9")?;
    assert_eq!(cfg.startup_vlan, 1);
    assert_eq!(cfg.pnp_profile, DEFAULT_PNP_PROFILE);
    assert_eq!(
        summary(&run(&mut cfg, "vstack proxy ip-address 5.1.1.9")?),
        "No change.\n"
    );
    // Shortened, mixed-case and underscore keywords.
    let mut cfg = proxy_cfg();
    run(&mut cfg, "VST PROX IP_ADDRESS 4.1.1.1 START 5 PNP lab")?;
    assert_eq!(
        (cfg.ip_address, cfg.startup_vlan, cfg.pnp_profile.as_str()),
        (Some(Ipv4Addr::new(4, 1, 1, 1)), 5, "lab")
    );
    Ok(())
}

#[test]
fn interfaces_map_to_linux_names() -> Result<(), IosError> {
    let parse = |line: &str| match parse_ios(line) {
        Ok(IosCommand::Proxy(p)) => p.address,
        other => panic!("{line:?}: {other:?}"),
    };
    let iface = |ios: &str, linux: &str| ProxyAddress::Interface {
        ios: ios.into(),
        linux: linux.into(),
    };
    assert_eq!(
        parse("vstack proxy interface vlan 1"),
        iface("vlan 1", "vlan1")
    );
    assert_eq!(
        parse("vstack proxy interface Vlan 1"),
        iface("Vlan 1", "vlan1")
    );
    assert_eq!(
        parse("vstack proxy interface VLAN20"),
        iface("VLAN20", "vlan20")
    );
    assert_eq!(
        parse("vstack proxy interface eth 0"),
        iface("eth 0", "eth0")
    );
    assert_eq!(
        parse("vstack proxy interface br-lan"),
        iface("br-lan", "br-lan")
    );
    assert_eq!(
        parse("vstack proxy interface vlan 1 startup-vlan 1"),
        iface("vlan 1", "vlan1")
    );

    let mut cfg = proxy_cfg();
    assert_eq!(
        refusal(&mut cfg, "vstack proxy interface vlan 2"),
        "% Interface vlan 2 maps to the Linux interface vlan2, which does not exist"
    );
    assert_eq!(
        refusal(&mut cfg, "vstack proxy interface eth9"),
        "% Interface eth9 does not exist"
    );
    assert_eq!(
        refusal(&mut cfg, "vstack proxy interface eth1"),
        "% interface eth1 has no IPv4 address"
    );
    run(&mut cfg, "vstack proxy interface eth0")?;
    assert_eq!(cfg.proxy_ip(&local())?, Some(Ipv4Addr::new(5, 1, 1, 1)));
    // Switching to an address clears the interface.
    run(&mut cfg, "vstack proxy ip-address 4.1.1.1")?;
    assert_eq!(
        (cfg.ip_address.is_some(), cfg.interface.is_none()),
        (true, true)
    );
    Ok(())
}

#[test]
fn proxy_addresses_and_profiles_are_checked() {
    let mut cfg = proxy_cfg();
    assert_eq!(
        refusal(&mut cfg, "vstack proxy ip-address 4.1.1.2"),
        "% proxy address 4.1.1.2 is not an address of this machine"
    );
    assert_eq!(
        refusal(&mut cfg, "vstack proxy ip-address 127.0.0.1"),
        "% invalid ip_address: 127.0.0.1 cannot be a director address"
    );
    assert_eq!(
        refusal(&mut cfg, "vstack proxy ip-address 4.1.1.1 pnp-profile nope"),
        "% PnP profile \"nope\" is not configured (add [pnp_profiles.nope] to the config file)"
    );
    let mut bare = minimal();
    assert!(refusal(&mut bare, "vstack proxy ip-address 4.1.1.1").contains("pnp-zero-touch"));
    assert_eq!(
        refusal(&mut cfg, "vstack proxy ip-address 4.1.1"),
        "% Invalid input \"4.1.1\": expected the proxy IP address (a.b.c.d)"
    );
    assert_eq!(
        refusal(
            &mut cfg,
            "vstack proxy ip-address 4.1.1.1 startup-vlan 4095"
        ),
        "% VLAN 4095 is out of range 1-4094"
    );
    assert_eq!(
        refusal(
            &mut cfg,
            "vstack proxy ip-address 4.1.1.1 startup-vlan 2 startup-vlan 3"
        ),
        "% startup-vlan given twice"
    );
    assert_eq!(
        refusal(&mut cfg, "vstack proxy"),
        "% Incomplete command: expected one of interface, ip-address"
    );
    assert_eq!(
        refusal(&mut cfg, "vstack proxy ip-address 4.1.1.1 startup-vlan"),
        "% Incomplete command: expected a VLAN id (1-4094)"
    );
    assert_eq!(
        refusal(&mut cfg, "vstack proxy ip-address 4.1.1.1 foo"),
        "% Invalid input \"foo\": expected one of pnp-profile, startup-vlan"
    );
}

#[test]
fn director_commands_are_refused() -> Result<(), IosError> {
    let mut cfg = proxy_cfg();
    run(&mut cfg, "vstack proxy ip-address 4.1.1.1")?;
    for (line, name) in [
        ("vstack director 1.1.1.1", "vstack director"),
        ("vstack basic", "vstack basic"),
        ("vstack join-window mode auto", "vstack join-window"),
        ("vstack backup file-server tftp://1.1.1.1/", "vstack backup"),
        ("no vstack director", "vstack director"),
        ("vst dir 1.1.1.1", "vstack director"),
    ] {
        assert_eq!(
            refusal(&mut cfg, line),
            format!(
                "% {name} is not available while SMI Proxy is enabled \
                 (SMI Director and SMI Proxy are mutually exclusive)"
            )
        );
    }
    run(&mut cfg, "no vstack proxy")?;
    assert_eq!(
        refusal(&mut cfg, "vstack basic"),
        "% vstack basic is not supported: smi-pnp-proxy runs as SMI Proxy only, never as SMI Director"
    );
    Ok(())
}

#[test]
fn no_forms_reset() -> Result<(), IosError> {
    let mut cfg = proxy_cfg();
    run(
        &mut cfg,
        "vstack proxy ip-address 4.1.1.1 startup-vlan 9 pnp-profile lab",
    )?;
    run(&mut cfg, "vstack vlan 1,10-12")?;
    let changes = run(
        &mut cfg,
        "no vstack proxy ip-address 4.1.1.1 startup-vlan 9",
    )?;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].field, ConfigField::ProxyAddress);
    assert!(!cfg.proxy_configured());
    assert_eq!((cfg.startup_vlan, cfg.pnp_profile.as_str()), (9, "lab"));
    run(&mut cfg, "no vstack startup-vlan")?;
    assert_eq!(cfg.startup_vlan, 1);
    run(&mut cfg, "no vstack vlan")?;
    assert_eq!(cfg.management_vlans, [1]);
    let changes = run(&mut cfg, "no vstack")?;
    assert_eq!(summary(&changes), "vstack: enabled -> disabled\n");
    run(&mut cfg, "vstack")?;
    assert!(cfg.enabled);
    // Arguments of a no form must still parse.
    assert!(refusal(&mut cfg, "no vstack startup-vlan 0").contains("out of range"));
    Ok(())
}

#[test]
fn vlans_and_lists() -> Result<(), IosError> {
    let mut cfg = proxy_cfg();
    run(&mut cfg, "vstack startup-vlan 4094")?;
    assert_eq!(cfg.startup_vlan, 4094);
    let changes = run(&mut cfg, "vstack vlan 12,10-11, 1 ,11")?;
    assert_eq!(cfg.management_vlans, [1, 10, 11, 12]);
    assert_eq!(summary(&changes), "vlan: 1 -> 1,10-12\n");
    run(&mut cfg, "vstack vlan 1-4094")?;
    assert_eq!(cfg.management_vlans.len(), 4094);
    for (line, message) in [
        ("vstack startup-vlan 0", "% VLAN 0 is out of range 1-4094"),
        (
            "vstack startup-vlan x",
            "% Invalid input \"x\": expected a VLAN id (1-4094)",
        ),
        (
            "vstack startup-vlan 2 3",
            "% Invalid input \"3\": expected end of command",
        ),
        ("vstack vlan 5-3", "% VLAN range 5-3 runs backwards"),
        (
            "vstack vlan 1,,2",
            "% Invalid input \"\": expected a VLAN id (1-4094)",
        ),
        (
            "vstack vlan",
            "% Incomplete command: expected a VLAN list, e.g. 1,10-12",
        ),
    ] {
        assert_eq!(refusal(&mut cfg, line), message, "{line}");
    }
    Ok(())
}

#[test]
fn dhcp_localserver_commands() -> Result<(), IosError> {
    let mut cfg = proxy_cfg();
    let changes = run(
        &mut cfg,
        "vstack dhcp-localserver pool 4.1.1.100 4.1.1.199 netmask 255.255.255.0 default-router 4.1.1.1 lease 3600",
    )?;
    assert_eq!(
        summary(&changes),
        "dhcp-localserver: off -> pool 4.1.1.100-4.1.1.199 netmask 255.255.255.0 \
         default-router 4.1.1.1 lease 3600 s\n"
    );
    let pool = cfg.dhcp_localserver.pool().expect("enabled");
    assert_eq!(pool.lease_secs, 3600);
    run(
        &mut cfg,
        "vstack dhcp pool 4.1.1.100 4.1.1.109 netmask 255.255.255.0",
    )?;
    let pool = cfg.dhcp_localserver.pool().expect("enabled");
    assert_eq!(
        (pool.default_router, pool.lease_secs),
        (None, DEFAULT_LEASE_SECS)
    );
    for (line, part) in [
        (
            "vstack dhcp-localserver pool 4.1.1.100 4.1.1.199",
            "netmask",
        ),
        (
            "vstack dhcp-localserver pool 4.1.1.199 4.1.1.100 netmask 255.255.255.0",
            "after",
        ),
        (
            "vstack dhcp-localserver pool 4.1.1.1 4.1.1.9 netmask 255.255.255.0 netmask 255.255.255.0",
            "given twice",
        ),
        (
            "vstack dhcp-localserver pool 4.1.1.1 4.1.1.9 netmask 255.255.255.0 lease 10",
            "shorter",
        ),
        (
            "vstack dhcp-localserver pool 4.1.1.1 4.1.1.9 netmask 255.255.255.0 lease x",
            "lease time",
        ),
        ("vstack dhcp-localserver 4.1.1.1", "pool"),
    ] {
        let text = refusal(&mut cfg, line);
        assert!(text.contains(part), "{line}: {text}");
    }
    run(&mut cfg, "no vstack dhcp-localserver")?;
    assert_eq!(cfg.dhcp_localserver, DhcpLocalServer::default());
    Ok(())
}

#[test]
fn malformed_lines_are_refused() {
    let mut cfg = proxy_cfg();
    assert_eq!(refusal(&mut cfg, "   "), "% Empty command");
    assert_eq!(
        refusal(&mut cfg, "show vstack config"),
        "% Invalid input \"show\": expected one of no, vstack"
    );
    assert_eq!(
        refusal(&mut cfg, "vstack b"),
        "% Ambiguous command \"b\": could be backup, basic"
    );
    assert_eq!(
        refusal(&mut cfg, "vstack d 1.1.1.1"),
        "% Ambiguous command \"d\": could be dhcp-localserver, director"
    );
    assert!(
        refusal(&mut cfg, "vstack hostname-prefix x")
            .starts_with("% Invalid input \"hostname-prefix\"")
    );
    assert!(refusal(&mut cfg, "no").starts_with("% Incomplete command"));
    let long = format!("vstack vlan {}", "1,".repeat(300));
    assert!(refusal(&mut cfg, &long).starts_with("% Command too long"));
}

#[test]
fn running_config_rebuilds_the_settings() -> Result<(), IosError> {
    let mut cfg = proxy_cfg();
    assert!(cfg.running_config().is_empty());
    for line in [
        "vstack proxy interface vlan 1 startup-vlan 7 pnp-profile lab",
        "vstack vlan 1,20-22",
        "vstack dhcp-localserver pool 4.1.1.100 4.1.1.199 netmask 255.255.255.0 default-router 4.1.1.1",
        "no vstack",
    ] {
        run(&mut cfg, line)?;
    }
    let lines = cfg.running_config();
    assert_eq!(
        lines,
        [
            "vstack proxy interface vlan1 startup-vlan 7 pnp-profile lab",
            "vstack vlan 1,20-22",
            "vstack dhcp-localserver pool 4.1.1.100 4.1.1.199 netmask 255.255.255.0 default-router 4.1.1.1 lease 86400",
            "no vstack",
        ]
    );
    let mut rebuilt = proxy_cfg();
    for line in &lines {
        run(&mut rebuilt, line)?;
    }
    assert_eq!(rebuilt, cfg);
    Ok(())
}

#[test]
fn show_words_parse() -> Result<(), IosError> {
    for command in [
        ShowCommand::Config,
        ShowCommand::ProxyDb,
        ShowCommand::ProxyDbDetail,
        ShowCommand::Status,
        ShowCommand::StatusDetail,
        ShowCommand::DownloadStatus,
        ShowCommand::DownloadStatusDetail,
    ] {
        let words: Vec<&str> = show_words(command).split(' ').collect();
        assert_eq!(parse_show(&words)?, command);
    }
    assert_eq!(parse_show(&["proxy", "det"])?, ShowCommand::ProxyDbDetail);
    assert_eq!(parse_show(&["down"])?, ShowCommand::DownloadStatus);
    assert_eq!(parse_show(&["st", "detail"])?, ShowCommand::StatusDetail);
    assert!(parse_show(&["config", "detail"]).is_err());
    assert!(parse_show(&["proxy-db", "all"]).is_err());
    assert!(parse_show(&[]).is_err());
    assert!(matches!(
        parse_show(&["d"]),
        Ok(ShowCommand::DownloadStatus)
    ));
    Ok(())
}

#[test]
fn refusals_read_as_ios_prints_them() {
    let ios = |line: &str| {
        let e = parse_ios(line).expect_err(line);
        super::refusal(line, &e)
    };
    assert_eq!(
        ios("vstack startup-vlan x"),
        "vstack startup-vlan x\n                    ^\n% Invalid input detected at '^' marker."
    );
    assert_eq!(
        ios("vstack  proxi ip-address 4.1.1.1"),
        "vstack  proxi ip-address 4.1.1.1\n        ^\n% Invalid input detected at '^' marker."
    );
    assert_eq!(
        ios("vstack startup-vlan 3 3"),
        "vstack startup-vlan 3 3\n                      ^\n% Invalid input detected at '^' marker."
    );
    assert_eq!(ios("vstack proxy"), "% Incomplete command.");
    assert_eq!(ios("vst d"), "% Ambiguous command:  \"vst d\"");
    // Other refusals keep their reason.
    assert_eq!(
        ios("vstack startup-vlan 0"),
        "% VLAN 0 is out of range 1-4094"
    );
}
