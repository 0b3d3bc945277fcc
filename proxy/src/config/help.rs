//! `?` help, as IOS gives it: the keywords that may come next, each with
//! one line of help, aligned in a column (the chapter's `vst ?` and `show
//! vst ?` examples); `<cr>` where the line may end.

/// One row: a keyword (or `<cr>`, `A.B.C.D`, ...) and its help.
type Row = (&'static str, &'static str);

const TOP: &[Row] = &[
    ("no", "Negate a command or set its defaults"),
    ("vstack", "Configure vstack"),
];

/// `vstack ?` (the chapter's list, without the director's commands).
const VSTACK: &[Row] = &[
    ("dhcp-localserver", "Configure vstack dhcp parameters"),
    ("proxy", "Configure smi pnp proxy feature"),
    ("startup-vlan", "Configure vstack startup management vlan"),
    ("vlan", "Configure vstack management vlan"),
    ("<cr>", ""),
];

const PROXY: &[Row] = &[
    ("interface", "Use the address of an interface (e.g. vlan 1)"),
    ("ip-address", "Use this IP address of the proxy"),
];

const PROXY_OPTIONS: &[Row] = &[
    ("pnp-profile", "PnP profile the agents use"),
    ("startup-vlan", "Configure vstack startup management vlan"),
    ("<cr>", ""),
];

const DHCP: &[Row] = &[("pool", "Configure the dhcp pool")];

const SHOW: &[Row] = &[
    ("debugging", "State of each debugging option"),
    ("vstack", "Show vstack commands"),
];

/// `show vstack ?` (the chapter's list).
const SHOW_VSTACK: &[Row] = &[
    ("config", "View configuration parameters under Vstack mode"),
    (
        "download-status",
        "show the status of config or image download",
    ),
    ("proxy-db", "show the proxy database"),
    ("status", "show the status of CDP database"),
];

const DETAIL: &[Row] = &[("detail", "Detailed information"), ("<cr>", "")];

const DEBUG: &[Row] = &[("vstack", "Vstack debug information")];

/// Whether `word` names `keyword` (a prefix, any case, `_` for `-`).
fn names(word: &str, keyword: &str) -> bool {
    !word.is_empty() && keyword.starts_with(&word.to_ascii_lowercase().replace('_', "-"))
}

fn table(rows: &[Row]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 2;
    rows.iter()
        .map(|(k, h)| format!("  {:<width$}{h}", k).trim_end().to_owned() + "\n")
        .collect()
}

/// The help after the configuration words `words` (the `?` removed), or
/// `None` where nothing can follow them.
pub fn config_help(words: &[&str]) -> Option<String> {
    let words = match words {
        [no, rest @ ..] if names(no, "no") => rest,
        _ => words,
    };
    let rows = match words {
        [] => TOP,
        [v] if names(v, "vstack") => VSTACK,
        [v, p] if names(v, "vstack") && names(p, "proxy") => PROXY,
        [v, p, _, ..] if names(v, "vstack") && names(p, "proxy") => PROXY_OPTIONS,
        [v, d] if names(v, "vstack") && names(d, "dhcp-localserver") => DHCP,
        _ => return None,
    };
    Some(table(rows))
}

/// The help after `show` and `words` (the `?` removed), or `None`.
pub fn show_help(words: &[&str]) -> Option<String> {
    let rows = match words {
        [] => SHOW,
        [v] if names(v, "vstack") => SHOW_VSTACK,
        [v, what] if names(v, "vstack") && !names(what, "config") => {
            SHOW_VSTACK.iter().find(|(k, _)| names(what, k))?;
            DETAIL
        }
        _ => return None,
    };
    Some(table(rows))
}

/// The help after `debug` (or `undebug`, `no debug`) and `words` (the `?`
/// removed), or `None`: `debug vstack ?` lists the switches the proxy
/// takes ([`crate::logging::SWITCHES`]).
pub fn debug_help(words: &[&str]) -> Option<String> {
    match words {
        [] => Some(table(DEBUG)),
        [v] if names(v, "vstack") => {
            let rows: Vec<Row> = crate::logging::SWITCHES
                .iter()
                .filter(|s| s.supported())
                .map(|s| (s.name, s.help))
                .collect();
            Some(table(&rows))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vstack_help_reads_as_the_chapter() {
        assert_eq!(
            config_help(&["vst"]).as_deref(),
            Some(
                "  dhcp-localserver  Configure vstack dhcp parameters\n  \
                 proxy             Configure smi pnp proxy feature\n  \
                 startup-vlan      Configure vstack startup management vlan\n  \
                 vlan              Configure vstack management vlan\n  \
                 <cr>\n"
            )
        );
        assert_eq!(
            show_help(&["vst"]).as_deref(),
            Some(
                "  config           View configuration parameters under Vstack mode\n  \
                 download-status  show the status of config or image download\n  \
                 proxy-db         show the proxy database\n  \
                 status           show the status of CDP database\n"
            )
        );
    }

    #[test]
    fn debug_help_lists_the_switches_the_proxy_takes() {
        assert_eq!(
            debug_help(&["vst"]).as_deref(),
            Some(
                "  all          All Smart Install debug messages\n  \
                 cli          Smart Install CLI debug messages\n  \
                 director-db  Smart Install proxy database messages\n  \
                 download     Smart Install download debug messages\n  \
                 fsm          Smart Install session-management debug messages\n  \
                 protocol     Smart Install protocol debug messages\n  \
                 smi-proxy    Smart Install SMI PnP proxy operations\n"
            )
        );
        assert!(debug_help(&[]).is_some_and(|h| h.contains("vstack")));
        assert_eq!(debug_help(&["vstack", "all"]), None);
    }

    #[test]
    fn deeper_help_and_none_where_nothing_follows() {
        assert!(
            config_help(&["vstack", "proxy"])
                .is_some_and(|h| h.contains("ip-address") && h.contains("interface"))
        );
        assert!(
            config_help(&["no", "vstack", "proxy", "ip", "1.1.1.1"])
                .is_some_and(|h| h.contains("pnp-profile"))
        );
        assert!(show_help(&["vstack", "proxy"]).is_some_and(|h| h.contains("detail")));
        assert!(show_help(&[]).is_some_and(|h| h.contains("debugging")));
        assert_eq!(config_help(&["hostname"]), None);
        assert_eq!(show_help(&["vstack", "config"]), None);
    }
}
