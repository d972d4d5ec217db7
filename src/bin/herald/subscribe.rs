//! `herald subscribe`: print events as they are delivered, confirming each once it is
//! printed.

use crate::{output, parse};
use anyhow::Context;
use herald::client::{Client, Delivery, SubscribeOptions};
use herald::protocol::{Role, Severity, WINDOW_EVENTS_MAX};
use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `herald subscribe`.
#[derive(clap::Args)]
pub struct SubscribeArgs {
    /// The daemon's data directory; its socket is DIR/herald.sock.
    #[arg(long, value_name = "DIR", default_value = parse::DATA_DIR_DEFAULT)]
    data_dir: PathBuf,
    #[command(flatten)]
    connect: crate::connect::ConnectArgs,
    /// Durable subscription name (A-Z a-z 0-9 _ - ., up to 64 bytes): herald keeps its
    /// place across disconnections and restarts. Without it the subscription is
    /// live-only: it sees events stored while it is attached, and is then forgotten.
    #[arg(long, value_name = "N", value_parser = parse::subscription_name)]
    name: Option<String>,
    /// Topic pattern, up to 16 (an event matching any is delivered): `*` matches one
    /// segment, a final `>` one or more [default: >, everything].
    #[arg(long = "filter", value_name = "PATTERN", value_parser = parse::pattern)]
    filters: Vec<String>,
    /// Least severe level delivered: emerg, alert, crit, err, warning, notice, info,
    /// debug, or 0..7.
    #[arg(long, value_name = "S", default_value = "debug", value_parser = parse::severity)]
    min_severity: Severity,
    /// Most events delivered and not yet confirmed, 1..=4096.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 64,
        value_parser = clap::value_parser!(u32).range(1..=WINDOW_EVENTS_MAX as i64)
    )]
    window: u32,
    /// An event not confirmed this long after delivery is delivered again [default:
    /// the daemon's --ack-deadline, or what the durable subscription was created with].
    #[arg(long, value_name = "DURATION", value_parser = parse::ack_deadline)]
    ack_deadline: Option<std::time::Duration>,
    /// Deliveries of one event before it becomes a dead letter [default: the daemon's
    /// --max-deliveries, or what the durable subscription was created with].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    max_deliveries: Option<u16>,
    /// Join the durable subscription's work-queue group (needs --name): each event goes
    /// to one of the members that joined this way, within each one's --window; what a
    /// member leaves unconfirmed when it goes, or does not confirm in time, goes to
    /// another member.
    #[arg(long, requires = "name")]
    group: bool,
    /// Exit after this many events.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// One JSON object per event on stdout.
    #[arg(long)]
    json: bool,
}

/// The hello's client name.
const CLIENT_NAME: &str = "herald-subscribe";

pub fn run(args: SubscribeArgs) -> anyhow::Result<ExitCode> {
    let endpoint = args.connect.endpoint(&args.data_dir)?;
    let mut client = Client::connect_to(&endpoint, Role::Subscriber, CLIENT_NAME)?;
    let patterns: Vec<&str> = if args.filters.is_empty() {
        vec![">"]
    } else {
        args.filters.iter().map(String::as_str).collect()
    };
    // This command has no recovery work of its own: a recovering subscription returns
    // to normal as soon as the replayed events are confirmed.
    let automatic_recovery = true;
    client.subscribe_with(
        args.name.as_deref().unwrap_or(""),
        &patterns,
        &SubscribeOptions {
            min_severity: args.min_severity,
            window_events: args.window,
            automatic_recovery,
            ack_deadline_ms: args.ack_deadline.map_or(0, |d| d.as_millis() as u32),
            max_deliveries: args.max_deliveries.unwrap_or(0),
            group: args.group,
        },
    )?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut printed = 0;
    while args.count.is_none_or(|count| printed < count) {
        let Some(delivery) = client.next_delivery(None)? else {
            continue;
        };
        let seq = delivery.seq;
        let written = if args.json {
            write_json(&mut out, &delivery)
        } else {
            write_human(&mut out, &delivery)
        };
        match written.and_then(|()| out.flush()) {
            Ok(()) => {}
            // The reader went away (`| head`): the event reached no one, so it is not
            // confirmed and herald delivers it again to a later subscriber.
            Err(error) if error.kind() == ErrorKind::BrokenPipe => break,
            Err(error) => return Err(error).context("cannot write to standard output"),
        }
        // Confirmed only once it has left this process: a crash before this point
        // gets it delivered again rather than lost.
        client.confirm(seq, seq)?;
        printed += 1;
    }
    client.goodbye()?;
    Ok(ExitCode::SUCCESS)
}

/// `SEQ TIME SEVERITY TOPIC SOURCE PAYLOAD`, then `(redelivered)` when it is.
fn write_human(out: &mut impl Write, delivery: &Delivery<'_>) -> std::io::Result<()> {
    let event = &delivery.event;
    let source = if event.source.is_empty() {
        "-"
    } else {
        event.source
    };
    write!(
        out,
        "{} {} {} {} {} {}",
        delivery.seq.0,
        output::timestamp(delivery.timestamp_ns),
        event.severity.name(),
        event.topic,
        output::printable(source.as_bytes(), usize::MAX),
        output::printable(event.payload, usize::MAX)
    )?;
    if delivery.redelivered {
        write!(out, " (redelivered)")?;
    }
    writeln!(out)
}

/// One JSON object: the delivery's fields, payload and key as strings when UTF-8, else
/// hex under `payload_hex` / `key_hex`.
fn write_json(out: &mut impl Write, delivery: &Delivery<'_>) -> std::io::Result<()> {
    let event = &delivery.event;
    let mut object = serde_json::Map::new();
    object.insert("seq".into(), delivery.seq.0.into());
    object.insert("timestamp_ns".into(), delivery.timestamp_ns.into());
    object.insert("severity".into(), event.severity.name().into());
    object.insert("topic".into(), event.topic.as_str().into());
    object.insert("source".into(), event.source.into());
    for (name, data) in [("key", event.key), ("payload", event.payload)] {
        let (name, value) = output::json_bytes(name, data);
        object.insert(name, value);
    }
    object.insert("flags".into(), event.flags.into());
    object.insert("redelivered".into(), delivery.redelivered.into());
    object.insert("delivery_count".into(), delivery.delivery_count.into());
    if let Some(origin) = delivery.origin {
        object.insert(
            "origin".into(),
            serde_json::json!({
                "node_id": format!("{:016x}", origin.node_id),
                "seq": origin.seq,
                "timestamp_ns": origin.timestamp_ns,
            }),
        );
    }
    if let Some(r) = delivery.rule {
        object.insert(
            "rule".into(),
            serde_json::json!({ "id": r.id, "version": r.version }),
        );
    }
    writeln!(out, "{}", serde_json::Value::Object(object))
}
