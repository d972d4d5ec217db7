//! Log lines on stderr, for a person at a terminal, for journald, or for a machine.
//!
//! - On a terminal: tracing-subscriber's own format, with the time and colours.
//! - Elsewhere (`--log-format text`, the default): one `key=value` line per event
//!   (logfmt: `level=info target=herald::delivery msg="region created" region=...`),
//!   without a timestamp, since journald and most collectors stamp lines themselves.
//!   tracing-subscriber's plain format leaves the level and the message bare and does
//!   not quote values holding spaces, so no parser can split its lines: that format is
//!   herald's own, below (a visitor that quotes).
//! - `--log-format json`: tracing-subscriber's JSON, one object per line, with the
//!   time (a collector of JSON may have no clock of its own), the level, the target,
//!   the message and every field at the top level.
//!
//! When stderr is the journal (`JOURNAL_STREAM` names stderr's device and inode), each
//! line starts with its syslog priority (`<3>` error … `<7>` debug), which journald
//! takes off and records, so `journalctl -p warning` works.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// How log lines are written (`--log-format`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// key=value text (with the time and colours on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

/// Checks a filter (`--log-level`, `RUST_LOG`) as the logger will read it.
pub fn parse_filter(text: &str) -> Result<String, String> {
    EnvFilter::try_new(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!("{text:?} is not a log level or filter: {e}"))
}

/// Installs the logger for the whole process.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let journal = stderr_is_journal();
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .event_format(Prefixed {
                journal,
                inner: tracing_subscriber::fmt::format().json().flatten_event(true),
            })
            .init(),
        LogFormat::Text if std::io::stderr().is_terminal() => builder.with_ansi(true).init(),
        LogFormat::Text => builder
            .event_format(Prefixed {
                journal,
                inner: Logfmt,
            })
            .init(),
    }
}

/// The filter for commands other than `serve`: `RUST_LOG`, else `info`.
pub fn default_filter() -> String {
    std::env::var("RUST_LOG")
        .ok()
        .filter(|f| parse_filter(f).is_ok())
        .unwrap_or_else(|| "info".into())
}

/// Whether stderr is a stream to journald: systemd sets `JOURNAL_STREAM` to
/// `DEVICE:INODE` of the stream it connected; a descriptor inherited elsewhere (a
/// shell started from a service) does not match.
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(meta) = std::fs::File::from(fd).metadata() else {
        return false;
    };
    stream.to_str() == Some(&format!("{}:{}", meta.dev(), meta.ino()))
}

/// The syslog priority journald reads from a `<N>` prefix.
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// An event format, with the journal's priority prefix when stderr is the journal.
struct Prefixed<F> {
    journal: bool,
    inner: F,
}

impl<S, N, F> FormatEvent<S, N> for Prefixed<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if self.journal {
            write!(writer, "<{}>", priority(event.metadata().level()))?;
        }
        self.inner.format_event(ctx, writer, event)
    }
}

/// One logfmt line: `level=… target=… msg=… key=value…`.
struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let level = meta.level().as_str().to_ascii_lowercase();
        write!(writer, "level={level} target={}", meta.target())?;
        let mut fields = LogfmtFields {
            line: String::new(),
        };
        event.record(&mut fields);
        writeln!(writer, "{}", fields.line)
    }
}

/// Appends ` key=value` for each field, `message` as `msg`.
struct LogfmtFields {
    line: String,
}

impl Visit for LogfmtFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let key = match field.name() {
            "message" => "msg",
            name => name,
        };
        let _ = write!(self.line, " {key}=");
        push_value(&mut self.line, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%x` fields arrive here too, their Debug being their Display.
        self.record_str(field, &format!("{value:?}"));
    }
}

/// A value as logfmt writes it: bare when it is one word, else quoted with `"` and `\`
/// escaped and control characters spelled out.
fn push_value(line: &mut String, value: &str) {
    let bare = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=' && c != '\\');
    if bare {
        line.push_str(value);
        return;
    }
    line.push('"');
    for c in value.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\t' => line.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(line, "\\u{{{:x}}}", c as u32);
            }
            c => line.push(c),
        }
    }
    line.push('"');
}

#[cfg(test)]
mod tests {
    use super::push_value;

    fn value(text: &str) -> String {
        let mut line = String::new();
        push_value(&mut line, text);
        line
    }

    #[test]
    fn logfmt_values_are_bare_words_or_quoted_and_escaped() {
        assert_eq!(
            value("/var/lib/herald/region.pmem"),
            "/var/lib/herald/region.pmem"
        );
        assert_eq!(value("region created"), "\"region created\"");
        assert_eq!(value(""), "\"\"");
        assert_eq!(value("a=b"), "\"a=b\"");
        assert_eq!(value("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
        assert_eq!(value("back\\slash"), "\"back\\\\slash\"");
    }
}
