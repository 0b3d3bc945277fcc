//! The output formats ([`LogFormat`]) and the IOS-like one written here
//! ([`Ios`], [`IosFields`]):
//!
//! ```text
//! Mar 30 02:27:51.149: VSTACK_SMI_PROXY: mac 0011.2233.4455 ip 10.1.1.5 udi PID:WS-C3750X-24,VID:V02,SN:FDO1613R2TA: identified
//! Mar 30 02:27:52.020: VSTACK_DOWNLOAD: WARN: mac 0011.2233.4455 ip 10.1.1.5: tftp: RRQ "x" failed after 5s: ...
//! ```
//!
//! The time is UTC, to the millisecond; the facility is that of the debug
//! switch covering the line's target ([`super::facility`]); `WARN` or
//! `ERROR` follows for those levels; then the fields of the spans the line
//! was written in (the client's `mac`, `ip` and `udi`), then the message
//! and the event's other fields, `name value`.
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written (`--log-format`, or `log_format` in the
/// configuration file).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// tracing's own lines: time, level, the spans with their fields, the
    /// target, the message.
    #[default]
    Plain,
    /// IOS debug lines: `Mar 30 02:27:51.149: VSTACK_SMI_PROXY: ...`.
    Ios,
    /// One JSON object a line, with the spans' fields (for journald and
    /// log collectors).
    Json,
}

impl LogFormat {
    /// The name `--log-format` and the configuration file use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Ios => "ios",
            Self::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `Mar 30 02:27:51.149` (UTC) for `time`.
pub fn ios_timestamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let date = crate::clock::utc_date(secs);
    let of_day = secs % 86_400;
    format!(
        "{} {:>2} {:02}:{:02}:{:02}.{:03}",
        date.month_name,
        date.day,
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        since.subsec_millis()
    )
}

/// The IOS-like line format (see the module documentation); spans' fields
/// are those [`IosFields`] wrote.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ios;

impl<S, N> FormatEvent<S, N> for Ios
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // A `log` record's own target, not the bridge's.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        write!(
            writer,
            "{}: {}: ",
            ios_timestamp(SystemTime::now()),
            super::facility(meta.target())
        )?;
        if *meta.level() <= Level::WARN {
            write!(writer, "{}: ", meta.level())?;
        }
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{fields}: ")?;
                }
            }
        }
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Fields as IOS debug lines read: the message as it is, every other field
/// `name value`, separated by spaces (the `log` bridge's own fields left
/// out).
#[derive(Clone, Copy, Debug, Default)]
pub struct IosFields;

impl<'writer> FormatFields<'writer> for IosFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = IosVisitor {
            writer,
            result: Ok(()),
            first: true,
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct IosVisitor<'writer> {
    writer: Writer<'writer>,
    result: fmt::Result,
    first: bool,
}

impl IosVisitor<'_> {
    fn write(&mut self, field: &Field, value: &dyn fmt::Display) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let sep = if std::mem::take(&mut self.first) {
            ""
        } else {
            " "
        };
        self.result = if field.name() == "message" {
            write!(self.writer, "{sep}{value}")
        } else {
            write!(self.writer, "{sep}{} {value}", field.name())
        };
    }
}

impl Visit for IosVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, &format_args!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_as_ios_prints_them() {
        // 2011-03-30 02:27:51.149 UTC, the chapter's example.
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_301_452_071_149);
        assert_eq!(ios_timestamp(t), "Mar 30 02:27:51.149");
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_301_616_000_000);
        assert_eq!(ios_timestamp(t), "Apr  1 00:00:00.000");
    }

    #[test]
    fn formats_are_named_as_the_option_takes_them() {
        for f in [LogFormat::Plain, LogFormat::Ios, LogFormat::Json] {
            let value = <LogFormat as clap::ValueEnum>::from_str(f.name(), false);
            assert_eq!(value.ok(), Some(f));
        }
        assert_eq!(LogFormat::default(), LogFormat::Plain);
    }
}
