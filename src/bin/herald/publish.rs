//! `herald publish`: store events in the daemon's log, one given on the command line or
//! one per line of standard input.

use crate::parse;
use anyhow::{bail, Context};
use herald::client::{Client, ClientError};
use herald::protocol::{ErrorCode, Event, Role, Severity, Topic, EVENT_PAYLOAD_BYTES_MAX};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `herald publish`.
#[derive(clap::Args)]
pub struct PublishArgs {
    /// The daemon's data directory; its socket is DIR/herald.sock.
    #[arg(long, value_name = "DIR", default_value = parse::DATA_DIR_DEFAULT)]
    data_dir: PathBuf,
    #[command(flatten)]
    connect: crate::connect::ConnectArgs,
    /// The events' topic: dot-separated segments of A-Z a-z 0-9 _ -, such as fs.vol1.error.
    #[arg(long, value_name = "T", value_parser = parse::topic)]
    topic: String,
    /// Severity: emerg, alert, crit, err, warning, notice, info, debug, or 0..7.
    #[arg(long, value_name = "S", default_value = "info", value_parser = parse::severity)]
    severity: Severity,
    /// Idempotency key (up to 64 bytes): publishing again with the same key and source
    /// stores nothing new and prints the original sequence number. Only with MESSAGE.
    #[arg(long, value_name = "K", value_parser = parse::key, requires = "message")]
    key: Option<String>,
    /// Who produced the events [default: herald-publish].
    #[arg(long, value_name = "NAME", value_parser = parse::source)]
    source: Option<String>,
    /// The event's payload. Without it, each line of standard input is one event.
    message: Option<String>,
}

/// The hello's client name, and so the events' source, unless `--source` is given.
const CLIENT_NAME: &str = "herald-publish";

/// Most publishes sent and not yet answered: enough to keep the daemon busy, few enough
/// that their replies always fit in the socket's buffer, so the daemon never stops
/// reading because this command is still writing.
const OUTSTANDING_MAX: u64 = 256;

/// A line holds at most a maximal payload and its line ending.
const LINE_BYTES_MAX: u64 = EVENT_PAYLOAD_BYTES_MAX as u64 + 2;

pub fn run(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let endpoint = args.connect.endpoint(&args.data_dir)?;
    let name = args.source.as_deref().unwrap_or(CLIENT_NAME);
    let mut client = Client::connect_to(&endpoint, Role::Producer, name)?;
    let template = Event {
        topic: Topic::new(args.topic.as_bytes()).context("--topic")?,
        severity: args.severity,
        source: args.source.as_deref().unwrap_or(""),
        flags: 0,
        key: args.key.as_deref().unwrap_or("").as_bytes(),
        payload: b"",
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match &args.message {
        Some(message) => {
            let event = Event {
                payload: message.as_bytes(),
                ..template
            };
            let stored = client.publish(&event).context("the event was not stored")?;
            writeln!(out, "stored {}", stored.first_seq.0)?;
            out.flush()?;
        }
        None => publish_lines(&mut client, &template, std::io::stdin().lock(), &mut out)?,
    }
    client.goodbye()?;
    Ok(ExitCode::SUCCESS)
}

/// Where the lines stand: numbered from 1, `answered <= sent`.
#[derive(Default)]
struct Lines {
    sent: u64,
    answered: u64,
    not_stored: u64,
}

/// Publishes each line of `input` as one event, pipelined: up to [`OUTSTANDING_MAX`]
/// are sent before the oldest reply is read, and all replies are collected whenever
/// input would block, so an interactive user sees `stored` at once.
fn publish_lines(
    client: &mut Client,
    template: &Event<'_>,
    input: impl Read,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let mut line = Vec::with_capacity(LINE_BYTES_MAX as usize);
    let mut lines = Lines::default();
    // A full log refuses later lines too: stop reading, but still collect the replies
    // of the lines already sent.
    while lines.not_stored == 0 {
        line.clear();
        let read = (&mut input)
            .take(LINE_BYTES_MAX)
            .read_until(b'\n', &mut line)
            .context("cannot read standard input")?;
        if read == 0 {
            break;
        }
        let number = lines.sent + 1;
        let payload = payload_of(&line)
            .with_context(|| format!("line {number} is longer than the payload limit"))?;
        let event = Event {
            payload,
            ..*template
        };
        client
            .send_publish(&event)
            .with_context(|| format!("line {number} was not sent"))?;
        lines.sent += 1;
        if client.outstanding() >= OUTSTANDING_MAX {
            collect_reply(client, out, &mut lines)?;
        }
        if input.buffer().is_empty() {
            // The next read may wait for the user: have everything sent answered first.
            collect_all(client, out, &mut lines)?;
        }
    }
    collect_all(client, out, &mut lines)?;
    if lines.not_stored > 0 {
        bail!(
            "{} of the {} events sent were not stored (the log is full; publish them again \
             later); stopped reading input after line {}",
            lines.not_stored,
            lines.sent,
            lines.sent
        );
    }
    Ok(())
}

/// The line without its line ending; `None` when the line was cut at the limit.
fn payload_of(line: &[u8]) -> Option<&[u8]> {
    let Some(payload) = line.strip_suffix(b"\n") else {
        return (line.len() < LINE_BYTES_MAX as usize).then_some(line);
    };
    Some(payload.strip_suffix(b"\r").unwrap_or(payload))
}

fn collect_all(client: &mut Client, out: &mut impl Write, lines: &mut Lines) -> anyhow::Result<()> {
    while client.outstanding() > 0 {
        collect_reply(client, out, lines)?;
    }
    out.flush().context("cannot write to standard output")
}

/// Reads the reply for the oldest line sent: prints `stored SEQ`, or reports a line the
/// full log refused (the connection stays usable) and carries on.
fn collect_reply(
    client: &mut Client,
    out: &mut impl Write,
    lines: &mut Lines,
) -> anyhow::Result<()> {
    let number = lines.answered + 1;
    let reply = client.recv_stored();
    lines.answered += 1;
    match reply {
        Ok(stored) => writeln!(out, "stored {}", stored.first_seq.0)
            .context("cannot write to standard output")?,
        Err(
            error @ ClientError::Refused {
                code: ErrorCode::Full,
                ..
            },
        ) => {
            eprintln!("herald: line {number} was not stored: {error}");
            lines.not_stored += 1;
        }
        Err(error) => {
            return Err(anyhow::Error::new(error).context(format!("line {number} was not stored")))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_are_not_part_of_the_payload() {
        assert_eq!(payload_of(b"disk full\n"), Some(&b"disk full"[..]));
        assert_eq!(payload_of(b"disk full\r\n"), Some(&b"disk full"[..]));
        assert_eq!(payload_of(b"last line"), Some(&b"last line"[..]));
        assert_eq!(payload_of(b"\n"), Some(&b""[..]));
    }

    #[test]
    fn a_line_cut_at_the_limit_is_refused_not_split() {
        let long = vec![b'x'; LINE_BYTES_MAX as usize];
        assert_eq!(payload_of(&long), None);
        let mut fits = vec![b'x'; EVENT_PAYLOAD_BYTES_MAX];
        fits.extend_from_slice(b"\r\n");
        assert_eq!(
            payload_of(&fits).map(<[u8]>::len),
            Some(EVENT_PAYLOAD_BYTES_MAX)
        );
    }
}
