//! The filter: `RUST_LOG`'s directives with the debug switches that are on
//! laid over them, rebuilt whenever a switch changes.
//!
//! A switch opens its targets to `debug`: a directive of `RUST_LOG` for a
//! target the switch covers is raised to `debug` (if it was quieter), and
//! a `target=debug` directive is added for each of the switch's targets
//! that `RUST_LOG` does not name. `all` raises the default level as well.
//! Directives with a span or field filter (`[client{mac=...}]=trace`) are
//! kept as they are. Targets match as `RUST_LOG`'s do: by prefix.
use std::collections::BTreeSet;

use tracing_subscriber::filter::{Directive, EnvFilter, LevelFilter};

/// The level `RUST_LOG` stands for when it is unset or empty.
pub const DEFAULT_DIRECTIVES: &str = "info";

/// The level a switch opens its targets to.
const SWITCHED: LevelFilter = LevelFilter::DEBUG;

/// `RUST_LOG`'s directives, each checked and written in its canonical
/// form (`proxy::smi=debug`, `warn`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BaseDirectives {
    list: Vec<String>,
}

/// One directive as the switches see it.
enum Parts<'a> {
    /// A level for every target (`warn`).
    Default(LevelFilter),
    /// A level for the targets starting with `target`.
    Target(&'a str, LevelFilter),
    /// A span or field filter, left alone.
    Dynamic,
}

fn parts(directive: &str) -> Parts<'_> {
    if directive.contains('[') {
        return Parts::Dynamic;
    }
    match directive.rsplit_once('=') {
        Some((target, level)) => level
            .parse()
            .map_or(Parts::Dynamic, |level| Parts::Target(target, level)),
        None => directive.parse().map_or(Parts::Dynamic, Parts::Default),
    }
}

impl BaseDirectives {
    /// The directives of `text` (comma-separated, `RUST_LOG` syntax); an
    /// empty text stands for [`DEFAULT_DIRECTIVES`]. Also returns the
    /// directives refused, each with the reason.
    pub fn parse(text: &str) -> (Self, Vec<String>) {
        let text = if text.trim().is_empty() {
            DEFAULT_DIRECTIVES
        } else {
            text
        };
        let mut list = Vec::new();
        let mut refused = Vec::new();
        for piece in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match piece.parse::<Directive>() {
                Ok(d) => list.push(d.to_string()),
                Err(e) => refused.push(format!("`{piece}`: {e}")),
            }
        }
        (Self { list }, refused)
    }

    /// The directives of `RUST_LOG` (see [`BaseDirectives::parse`]).
    pub fn from_env() -> (Self, Vec<String>) {
        Self::parse(&std::env::var("RUST_LOG").unwrap_or_default())
    }

    /// The directives with every target of `opened` opened to `debug`
    /// (`""` stands for every target).
    pub fn with_opened(&self, opened: &[&str]) -> Vec<String> {
        let all = opened.contains(&"");
        let covers = |target: &str| {
            all || opened
                .iter()
                .any(|p| !p.is_empty() && target.starts_with(p))
        };
        let mut named = BTreeSet::new();
        let mut has_default = false;
        let mut out = Vec::with_capacity(self.list.len() + opened.len());
        for directive in &self.list {
            match parts(directive) {
                Parts::Default(level) => {
                    has_default = true;
                    out.push(if all { level.max(SWITCHED) } else { level }.to_string());
                }
                Parts::Target(target, level) => {
                    named.insert(target);
                    let level = if covers(target) {
                        level.max(SWITCHED)
                    } else {
                        level
                    };
                    out.push(format!("{target}={level}"));
                }
                Parts::Dynamic => out.push(directive.clone()),
            }
        }
        if all && !has_default {
            out.push(SWITCHED.to_string());
        }
        for target in opened {
            if !target.is_empty() && !named.contains(target) {
                out.push(format!("{target}={SWITCHED}"));
            }
        }
        out
    }

    /// The filter of [`BaseDirectives::with_opened`].
    pub fn filter(&self, opened: &[&str]) -> EnvFilter {
        EnvFilter::builder().parse_lossy(self.with_opened(opened).join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(text: &str) -> BaseDirectives {
        let (base, refused) = BaseDirectives::parse(text);
        assert!(refused.is_empty(), "{refused:?}");
        base
    }

    #[test]
    fn without_switches_rust_log_stands_as_it_is() {
        assert_eq!(base("").with_opened(&[]), ["info"]);
        assert_eq!(
            base("warn,smi_proxy=info,proxy::dhcp=info").with_opened(&[]),
            ["warn", "smi_proxy=info", "proxy::dhcp=info"]
        );
    }

    #[test]
    fn a_switch_adds_its_targets_and_raises_what_it_covers() {
        let b = base("warn,smi_proxy=info,proxy::smi::tftp=error");
        assert_eq!(
            b.with_opened(&["proxy::smi"]),
            [
                "warn",
                "smi_proxy=info",
                "proxy::smi::tftp=debug",
                "proxy::smi=debug"
            ]
        );
        assert_eq!(
            b.with_opened(&["smi_proxy", "proxy"]),
            [
                "warn",
                "smi_proxy=debug",
                "proxy::smi::tftp=debug",
                "proxy=debug"
            ]
        );
        // Louder than debug stays louder.
        assert_eq!(
            base("proxy::pnp=trace").with_opened(&["proxy"]),
            ["proxy::pnp=trace", "proxy=debug"]
        );
    }

    #[test]
    fn all_raises_the_default_level_too() {
        assert_eq!(
            base("warn,smi_proxy=info").with_opened(&[""]),
            ["debug", "smi_proxy=debug"]
        );
        assert_eq!(
            base("smi_proxy=info").with_opened(&[""]),
            ["smi_proxy=debug", "debug"]
        );
        assert_eq!(base("trace").with_opened(&[""]), ["trace"]);
    }

    #[test]
    fn span_filters_are_kept_and_bad_directives_reported() {
        let (b, refused) = BaseDirectives::parse("info,[client]=trace,proxy=loud");
        assert_eq!(b.with_opened(&[""]), ["debug", "[client]=trace"]);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].contains("proxy=loud"), "{refused:?}");
    }
}
