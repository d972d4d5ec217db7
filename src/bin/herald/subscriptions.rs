//! `herald subscriptions list|create|delete|pause|resume|reset|set`: an operator's
//! management of durable subscriptions through the running daemon.

use crate::connect::ask;
use crate::parse;
use herald::client::Client;
use herald::log::Start;
use herald::protocol::{Role, Severity};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `herald subscriptions`.
#[derive(clap::Args)]
pub struct SubscriptionsArgs {
    #[command(subcommand)]
    action: Action,
    /// The daemon's data directory; its socket is DIR/herald.sock.
    #[arg(long, value_name = "DIR", default_value = parse::DATA_DIR_DEFAULT, global = true)]
    data_dir: PathBuf,
    #[command(flatten)]
    connect: crate::connect::ConnectArgs,
}

#[derive(clap::Subcommand)]
enum Action {
    /// List every subscription: durable and live-only, attached or not, paused, where
    /// its cursor is and what it waits for.
    List {
        /// The rows as JSON (status's `subscriptions` rows, every page).
        #[arg(long)]
        json: bool,
    },
    /// Create a durable subscription before its consumer exists: events are held for
    /// it from its start on. A consumer attaches later with `herald subscribe --name
    /// NAME` and the same --filter and --min-severity.
    Create {
        /// Its name (A-Z a-z 0-9 _ - ., up to 64 bytes).
        #[arg(value_parser = parse::subscription_name)]
        name: String,
        /// Topic pattern, up to 16 [default: >, everything].
        #[arg(long = "filter", value_name = "PATTERN", value_parser = parse::pattern)]
        filters: Vec<String>,
        /// Least severe level delivered [default: debug, every level].
        #[arg(long, value_name = "S", value_parser = parse::severity)]
        min_severity: Option<Severity>,
        /// Its acknowledgement deadline [default: the daemon's --ack-deadline].
        #[arg(long, value_name = "DURATION", value_parser = parse::ack_deadline)]
        ack_deadline: Option<std::time::Duration>,
        /// Deliveries before an event becomes a dead letter [default: the daemon's].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        max_deliveries: Option<u16>,
        /// Where it starts: new (events stored from now), first (the oldest event
        /// the ring still holds, released ones included), seq:N, time:RFC3339, or
        /// ago:DURATION.
        #[arg(long, value_name = "START", default_value = "new", value_parser = start)]
        start: String,
    },
    /// Delete a durable subscription that has no consumer: the events held only for
    /// it are released.
    Delete {
        /// The durable subscription.
        name: String,
        /// Keep its dead letters (as orphans, `herald dead purge --unowned` removes
        /// them) instead of purging them with it.
        #[arg(long)]
        keep_dead_letters: bool,
    },
    /// Stop delivering to a durable subscription, attached or not; its events are
    /// held, what it has in flight may still be confirmed.
    Pause {
        /// The durable subscription.
        name: String,
    },
    /// Deliver to a paused durable subscription again.
    Resume {
        /// The durable subscription.
        name: String,
    },
    /// Move a durable subscription's cursor (it has no consumer): back, to have
    /// events delivered again (flagged redelivered where they were delivered before),
    /// or forward, to skip them.
    Reset {
        /// The durable subscription.
        name: String,
        /// Where the cursor goes: new (skip everything stored), first, seq:N,
        /// time:RFC3339, or ago:DURATION.
        #[arg(long, value_name = "START", value_parser = start)]
        to: String,
    },
    /// Change a durable subscription's filters (it has no consumer), atomically in
    /// the region: a crash leaves the old filters or the new ones. What is not given
    /// stays. The new filters decide from its cursor on; its consumer attaches with
    /// them afterwards.
    #[command(group = clap::ArgGroup::new("change").required(true).multiple(true)
        .args(["filters", "min_severity", "ack_deadline", "max_deliveries"]))]
    Set {
        /// The durable subscription.
        name: String,
        /// Topic pattern, up to 16: all of them, replacing the old ones.
        #[arg(long = "filter", value_name = "PATTERN", value_parser = parse::pattern)]
        filters: Vec<String>,
        /// Least severe level delivered.
        #[arg(long, value_name = "S", value_parser = parse::severity)]
        min_severity: Option<Severity>,
        /// Its acknowledgement deadline (0: the daemon's --ack-deadline).
        #[arg(long, value_name = "DURATION", value_parser = parse::ack_deadline)]
        ack_deadline: Option<std::time::Duration>,
        /// Deliveries before an event becomes a dead letter.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        max_deliveries: Option<u16>,
    },
}

/// A start checked here for a clear usage error, sent as written: the daemon resolves
/// `ago:` against its own clock.
fn start(text: &str) -> Result<String, String> {
    // Only the form is checked here: the daemon's clock decides what is in the future.
    Start::parse(text, u64::MAX)?;
    Ok(text.to_owned())
}

pub fn run(args: SubscriptionsArgs) -> anyhow::Result<ExitCode> {
    let endpoint = args.connect.endpoint(&args.data_dir)?;
    let mut client = Client::connect_to(&endpoint, Role::Control, "herald-subscriptions")?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match &args.action {
        Action::List { json } => {
            let status: Value = serde_json::from_str(&client.status()?)?;
            let mut status = status;
            crate::status::page_in_subscriptions(&mut client, &mut status)?;
            client.goodbye()?;
            let rows = status["subscriptions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if *json {
                writeln!(out, "{}", Value::Array(rows))?;
            } else {
                print_list(&mut out, &rows)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        Action::Create {
            name,
            filters,
            min_severity,
            ack_deadline,
            max_deliveries,
            start,
        } => {
            let request = json!({
                "op": "subscriptions.create",
                "subscription": name,
                "filter": filters,
                "min_severity": min_severity.map(Severity::name),
                "ack_deadline_ms": ack_deadline.map_or(0, |d| d.as_millis() as u64),
                "max_deliveries": max_deliveries.unwrap_or(0),
                "start": start,
            });
            let a = ask(&mut client, &request)?;
            writeln!(
                out,
                "created {name}: starts at seq {}, {} positions behind the tail (seq {}); the ring holds from seq {}",
                a["cursor"],
                a["tail"].as_u64().unwrap_or(0).saturating_sub(a["cursor"].as_u64().unwrap_or(0)),
                a["tail"],
                a["held_from"],
            )?;
        }
        Action::Delete {
            name,
            keep_dead_letters,
        } => {
            let request = json!({
                "op": "subscriptions.delete",
                "subscription": name,
                "keep_dead_letters": keep_dead_letters,
            });
            let a = ask(&mut client, &request)?;
            writeln!(
                out,
                "deleted {name} (its dead letters {})",
                a["dead_letters"].as_str().unwrap_or("?")
            )?;
        }
        Action::Pause { name } | Action::Resume { name } => {
            let pause = matches!(args.action, Action::Pause { .. });
            let op = if pause {
                "subscriptions.pause"
            } else {
                "subscriptions.resume"
            };
            ask(&mut client, &json!({ "op": op, "subscription": name }))?;
            if pause {
                writeln!(out, "paused {name}: nothing is delivered to it until `herald subscriptions resume {name}`; its events are held")?;
            } else {
                writeln!(out, "resumed {name}")?;
            }
        }
        Action::Reset { name, to } => {
            let request = json!({ "op": "subscriptions.reset", "subscription": name, "to": to });
            let a = ask(&mut client, &request)?;
            writeln!(
                out,
                "{name}: cursor moved from {} to {} (the ring holds from {}; the tail is {})",
                a["was"], a["cursor"], a["held_from"], a["tail"]
            )?;
        }
        Action::Set {
            name,
            filters,
            min_severity,
            ack_deadline,
            max_deliveries,
        } => {
            let mut request = json!({ "op": "subscriptions.set", "subscription": name });
            if !filters.is_empty() {
                request["filter"] = json!(filters);
            }
            if let Some(s) = *min_severity {
                request["min_severity"] = s.name().into();
            }
            if let Some(d) = *ack_deadline {
                request["ack_deadline_ms"] = (d.as_millis() as u64).into();
            }
            if let Some(n) = max_deliveries {
                request["max_deliveries"] = (*n).into();
            }
            let a = ask(&mut client, &request)?;
            let filters: Vec<&str> = a["filters"]
                .as_array()
                .map(|f| f.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            writeln!(
                out,
                "{name}: filters {}, min severity {}; applied from its cursor, seq {}",
                filters.join(" "),
                a["min_severity"].as_str().unwrap_or("?"),
                a["cursor"]
            )?;
        }
    }
    client.goodbye()?;
    Ok(ExitCode::SUCCESS)
}

fn print_list(out: &mut impl Write, rows: &[Value]) -> std::io::Result<()> {
    if rows.is_empty() {
        return writeln!(out, "no subscriptions");
    }
    writeln!(
        out,
        "{:<24} {:<9} {:<6} {:<10} {:>10} {:>9} {:>9} {:<8} FILTERS",
        "NAME", "ATTACHED", "PAUSED", "MODE", "CURSOR", "PENDING", "IN_FLIGHT", "MIN_SEV"
    )?;
    for r in rows {
        let name = match r["name"].as_str() {
            Some("") | None => "(live-only)",
            Some(name) => name,
        };
        let yes = |key: &str| if r[key] == true { "yes" } else { "no" };
        // A work-queue group shows how many members it has.
        let attached = match r["members"].as_array() {
            Some(m) if r["group"] == true => format!("{} group", m.len()),
            _ => yes("connected").to_owned(),
        };
        let filters: Vec<&str> = r["filters"]
            .as_array()
            .map(|f| f.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        writeln!(
            out,
            "{:<24} {:<9} {:<6} {:<10} {:>10} {:>9} {:>9} {:<8} {}",
            name,
            attached,
            yes("paused"),
            r["mode"].as_str().unwrap_or("?"),
            r["cursor"].to_string(),
            r["pending_slots"].to_string(),
            r["in_flight"].to_string(),
            r["min_severity"].as_str().unwrap_or("?"),
            filters.join(" "),
        )?;
    }
    Ok(())
}
