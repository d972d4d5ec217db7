//! `herald dead list|replay|purge`: an operator's view of the events subscriptions gave
//! up on (rejected, or delivered the maximum number of times), through the running
//! daemon.

use crate::connect::ask;
use crate::parse;
use anyhow::bail;
use herald::client::Client;
use herald::protocol::Role;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `herald dead`.
#[derive(clap::Args)]
pub struct DeadArgs {
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
    /// List dead letters: subscription, original seq, why, deliveries, the event.
    List {
        /// Only this durable subscription's.
        #[arg(long, value_name = "NAME")]
        subscription: Option<String>,
        /// At most this many (default: every one; the daemon answers in pages).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// The daemon's JSON answer, unchanged.
        #[arg(long)]
        json: bool,
    },
    /// Deliver dead letters to their subscription once more (flagged redelivered);
    /// confirmed, they are purged; otherwise they stay dead letters.
    Replay(Select),
    /// Delete dead letters for good: a subscription's (--subscription with --seq or
    /// --all), or those no subscription can name (--unowned).
    Purge {
        /// The durable subscription.
        #[arg(long, value_name = "NAME", required_unless_present = "unowned")]
        subscription: Option<String>,
        /// The dead letters' original sequence numbers.
        #[arg(long = "seq", value_name = "SEQ", conflicts_with = "all")]
        seqs: Vec<u64>,
        /// Every dead letter of the subscription.
        #[arg(long)]
        all: bool,
        /// Instead: the dead letters whose subscription was deleted, and damaged
        /// records (`herald check` lists both).
        #[arg(long, conflicts_with_all = ["subscription", "seqs", "all"])]
        unowned: bool,
    },
}

#[derive(clap::Args)]
struct Select {
    /// The durable subscription.
    #[arg(long, value_name = "NAME")]
    subscription: String,
    /// The dead letters' original sequence numbers.
    #[arg(
        long = "seq",
        value_name = "SEQ",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    seqs: Vec<u64>,
    /// Every dead letter of the subscription.
    #[arg(long)]
    all: bool,
}

pub fn run(args: DeadArgs) -> anyhow::Result<ExitCode> {
    let (request, json_out) = match &args.action {
        Action::List {
            subscription,
            limit,
            json,
        } => (
            json!({ "op": "dead.list", "subscription": subscription, "limit": limit }),
            *json,
        ),
        Action::Replay(s) => (select("dead.replay", s), false),
        Action::Purge { unowned: true, .. } => (json!({ "op": "dead.purge_unowned" }), false),
        Action::Purge {
            subscription: Some(subscription),
            seqs,
            all,
            ..
        } => {
            if seqs.is_empty() && !all {
                bail!("say which: --seq SEQ (repeatable) or --all");
            }
            let s = Select {
                subscription: subscription.clone(),
                seqs: seqs.clone(),
                all: *all,
            };
            (select("dead.purge", &s), false)
        }
        Action::Purge { .. } => bail!("say --subscription NAME, or --unowned"),
    };
    let endpoint = args.connect.endpoint(&args.data_dir)?;
    let mut client = Client::connect_to(&endpoint, Role::Control, "herald-dead")?;
    let value = match &args.action {
        Action::List { limit, .. } => list_all(&mut client, request, *limit)?,
        _ => ask(&mut client, &request)?,
    };
    client.goodbye()?;
    let answer = value.to_string();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if json_out {
        writeln!(out, "{answer}")?;
        return Ok(ExitCode::SUCCESS);
    }
    match &args.action {
        Action::List { .. } => print_list(&mut out, &value)?,
        Action::Replay(_) | Action::Purge { .. } => {
            let (verb, key) = match args.action {
                Action::Replay(_) => ("marked for replay", "replay_requested"),
                _ => ("purged", "purged"),
            };
            writeln!(out, "{} dead letters {verb}", value[key])?;
            if let Some(missing) = value["not_found"].as_array().filter(|m| !m.is_empty()) {
                let list: Vec<String> = missing.iter().map(Value::to_string).collect();
                writeln!(
                    out,
                    "not dead letters of this subscription: {}",
                    list.join(" ")
                )?;
            }
            if value["in_flight"] == true {
                writeln!(out, "one is being replayed right now; its outcome decides")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Every page of a `dead.list` (up to `limit` rows), as one answer.
fn list_all(
    client: &mut Client,
    mut request: Value,
    limit: Option<usize>,
) -> anyhow::Result<Value> {
    let mut all = ask(client, &request)?;
    // Bounded: each page moves past at least one dead letter of a bounded area.
    for _ in 0..herald::event::limits::DEAD_LETTER_SLOTS_MAX {
        let shown = all["dead_letters"].as_array().map_or(0, Vec::len);
        let Some(next) = all.get("next").cloned() else {
            break;
        };
        if limit.is_some_and(|l| shown >= l) {
            break;
        }
        request["after_seq"] = next["after_seq"].clone();
        request["after_subscription"] = next["after_subscription"].clone();
        if let Some(l) = limit {
            request["limit"] = (l - shown).into();
        }
        let page = ask(client, &request)?;
        let rows = page["dead_letters"].as_array().cloned().unwrap_or_default();
        if rows.is_empty() {
            break;
        }
        if let Some(list) = all["dead_letters"].as_array_mut() {
            list.extend(rows);
        }
        match page.get("next") {
            Some(next) => all["next"] = next.clone(),
            None => {
                if let Some(map) = all.as_object_mut() {
                    map.remove("next");
                }
            }
        }
    }
    let shown = all["dead_letters"].as_array().map_or(0, Vec::len);
    all["shown"] = shown.into();
    Ok(all)
}

fn select(op: &str, s: &Select) -> Value {
    if s.all {
        json!({ "op": op, "subscription": s.subscription, "all": true })
    } else {
        json!({ "op": op, "subscription": s.subscription, "seqs": s.seqs })
    }
}

fn print_list(out: &mut impl Write, value: &Value) -> std::io::Result<()> {
    let rows = value["dead_letters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if rows.is_empty() {
        return writeln!(out, "no dead letters");
    }
    writeln!(
        out,
        "{:<16} {:>10} {:<14} {:>5} {:<8} {:<24} PAYLOAD",
        "SUBSCRIPTION", "SEQ", "REASON", "DELIV", "SEVERITY", "TOPIC"
    )?;
    for r in &rows {
        let text = |key: &str| r[key].as_str().unwrap_or("?").to_owned();
        writeln!(
            out,
            "{:<16} {:>10} {:<14} {:>5} {:<8} {:<24} {}{}",
            text("subscription"),
            r["seq"],
            text("reason"),
            r["deliveries"],
            text("severity"),
            text("topic"),
            text("payload_preview").replace('\n', "\\n"),
            if r["replay_requested"] == true {
                "  (replay requested)"
            } else {
                ""
            },
        )?;
    }
    if value["total"] != value["shown"] {
        writeln!(out, "({} of {} shown)", value["shown"], value["total"])?;
    }
    Ok(())
}
