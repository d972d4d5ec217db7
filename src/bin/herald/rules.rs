//! `herald rules list|add|set|delete|explain`: an operator's routing rules, through
//! the running daemon.

use crate::connect::ask;
use crate::parse;
use herald::client::Client;
use herald::protocol::{Role, Severity};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `herald rules`.
#[derive(clap::Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    action: Action,
    /// The daemon's data directory; its socket is DIR/herald.sock.
    #[arg(long, value_name = "DIR", default_value = parse::DATA_DIR_DEFAULT, global = true)]
    data_dir: PathBuf,
    #[command(flatten)]
    connect: crate::connect::ConnectArgs,
}

/// What a rule matches and decides, as `add` and `set` take it.
#[derive(clap::Args)]
struct RuleSpec {
    /// Topic pattern the rule matches (the subscription filter grammar: `*` one
    /// segment, `>` the rest).
    #[arg(long, value_name = "PATTERN", value_parser = parse::pattern)]
    topic: Option<String>,
    /// Source pattern (the same grammar over the producer's source, split at dots);
    /// `set --source ''` removes it [default: every source].
    #[arg(long, value_name = "PATTERN")]
    source: Option<String>,
    /// Severities matched: one level (err), or a range of two (crit..warning, in either
    /// order) [default: every level].
    #[arg(long, value_name = "S[..S]", value_parser = severity_range)]
    severity: Option<(Severity, Severity)>,
    /// Higher prevails over lower, before specificity [default: 0].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    priority: Option<i32>,
    /// Deliver matching events to exactly these durable subscriptions (up to 6),
    /// whatever their own filters say: repeat it, or separate the names with commas.
    #[arg(long = "deliver", value_name = "SUBSCRIPTION", value_parser = parse::subscription_name,
          value_delimiter = ',', conflicts_with_all = ["drop", "filters"])]
    deliver: Vec<String>,
    /// Store matching events but deliver them to nobody.
    #[arg(long, conflicts_with = "filters")]
    drop: bool,
    /// Leave matching events to each subscription's own filters (to override a
    /// broader rule).
    #[arg(long)]
    filters: bool,
}

#[derive(clap::Subcommand)]
enum Action {
    /// List the rules: id, version, priority, what each matches and decides.
    List {
        /// Earlier versions too, kept for the events they routed.
        #[arg(long)]
        all_versions: bool,
        /// The rows as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a rule; it routes events stored from now on. Needs --topic and one of
    /// --deliver, --drop, --filters.
    Add {
        #[command(flatten)]
        spec: RuleSpec,
    },
    /// Change a rule: a new version, for events stored from now on (events stored
    /// before keep the version that routed them). What is not given stays.
    Set {
        /// The rule's id.
        id: u32,
        #[command(flatten)]
        spec: RuleSpec,
    },
    /// Delete a rule: events stored from now on are routed without it.
    Delete {
        /// The rule's id.
        id: u32,
    },
    /// Show every rule an event would match, which prevails and why, and who would
    /// receive it.
    Explain {
        /// The event's topic.
        #[arg(long, value_parser = parse::topic)]
        topic: String,
        /// Its severity.
        #[arg(long, value_parser = parse::severity)]
        severity: Severity,
        /// Its source.
        #[arg(long, default_value = "")]
        source: String,
        /// The explanation as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn severity_range(text: &str) -> Result<(Severity, Severity), String> {
    let one = |s: &str| parse::severity(s);
    let (a, b) = match text.split_once("..") {
        Some((a, b)) => (one(a)?, one(b)?),
        None => {
            let s = one(text)?;
            (s, s)
        }
    };
    Ok((a.min(b), a.max(b)))
}

impl RuleSpec {
    fn into_request(self, mut request: Value) -> Value {
        if let Some(t) = self.topic {
            request["topic"] = t.into();
        }
        if let Some(s) = self.source {
            request["source"] = s.into();
        }
        if let Some((most, least)) = self.severity {
            request["most_severe"] = most.name().into();
            request["least_severe"] = least.name().into();
        }
        if let Some(p) = self.priority {
            request["priority"] = p.into();
        }
        if !self.deliver.is_empty() {
            request["action"] = "deliver".into();
            request["to"] = json!(self.deliver);
        } else if self.drop {
            request["action"] = "drop".into();
        } else if self.filters {
            request["action"] = "filters".into();
        }
        request
    }
}

pub fn run(args: RulesArgs) -> anyhow::Result<ExitCode> {
    let endpoint = args.connect.endpoint(&args.data_dir)?;
    let mut client = Client::connect_to(&endpoint, Role::Control, "herald-rules")?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.action {
        Action::List { all_versions, json } => {
            let a = ask(
                &mut client,
                &json!({ "op": "rules.list", "all_versions": all_versions }),
            )?;
            let rows = a["rules"].as_array().cloned().unwrap_or_default();
            if json {
                writeln!(out, "{}", Value::Array(rows))?;
            } else {
                print_rules(&mut out, &rows)?;
                writeln!(
                    out,
                    "{} of {} table entries used (a rule's earlier versions stay while events they routed are in the ring)",
                    a["entries_used"], a["entries"]
                )?;
            }
        }
        Action::Add { spec } => {
            let a = ask(
                &mut client,
                &spec.into_request(json!({ "op": "rules.add" })),
            )?;
            writeln!(out, "added rule {}: {}", a["added"], describe(&a["rule"]))?;
            warn_unknown(&a);
        }
        Action::Set { id, spec } => {
            let request = spec.into_request(json!({ "op": "rules.set", "id": id }));
            let a = ask(&mut client, &request)?;
            writeln!(
                out,
                "rule {id} is version {} from seq {}: {}",
                a["rule"]["version"],
                a["rule"]["from_seq"],
                describe(&a["rule"])
            )?;
            warn_unknown(&a);
        }
        Action::Delete { id } => {
            let a = ask(&mut client, &json!({ "op": "rules.delete", "id": id }))?;
            writeln!(
                out,
                "deleted rule {id}; events from seq {} on are routed without it",
                a["from_seq"]
            )?;
        }
        Action::Explain {
            topic,
            severity,
            source,
            json,
        } => {
            let request = json!({
                "op": "rules.explain",
                "topic": topic,
                "severity": severity.name(),
                "source": source,
            });
            let a = ask(&mut client, &request)?;
            if json {
                writeln!(out, "{a}")?;
            } else {
                print_explanation(&mut out, &a)?;
            }
        }
    }
    client.goodbye()?;
    Ok(ExitCode::SUCCESS)
}

fn warn_unknown(answer: &Value) {
    if let Some(names) = answer["unknown_subscriptions"].as_array() {
        let names: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
        eprintln!(
            "herald: warning: no durable subscription is named {}: events this rule delivers there are held for nobody until one is created (herald subscriptions create)",
            names.join(", ")
        );
    }
}

/// One line: what the rule matches and what it decides.
fn describe(r: &Value) -> String {
    let action = match r["action"].as_str() {
        Some("deliver") => {
            let to: Vec<&str> = r["to"]
                .as_array()
                .map(|t| t.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            format!("deliver to {}", to.join(", "))
        }
        Some("drop") => "drop".into(),
        _ => "each subscription's own filters".into(),
    };
    let severity = match (r["most_severe"].as_str(), r["least_severe"].as_str()) {
        (Some("emerg"), Some("debug")) => "any severity".to_string(),
        (Some(a), Some(b)) if a == b => format!("severity {a}"),
        (Some(a), Some(b)) => format!("severity {a}..{b}"),
        _ => "?".into(),
    };
    let source = match r["source"].as_str() {
        Some(s) => format!("source {s}"),
        None => "any source".into(),
    };
    format!(
        "topic {}, {severity}, {source}, priority {} -> {action}",
        r["topic"].as_str().unwrap_or("?"),
        r["priority"]
    )
}

fn print_rules(out: &mut impl Write, rows: &[Value]) -> std::io::Result<()> {
    if rows.is_empty() {
        return writeln!(
            out,
            "no rules: every event goes to the subscriptions whose own filters match it"
        );
    }
    writeln!(
        out,
        "{:>4} {:>4} {:>5} {:<10} {:<24} {:<16} {:<15} ACTION",
        "ID", "VER", "PRIO", "FROM_SEQ", "TOPIC", "SOURCE", "SEVERITY"
    )?;
    for r in rows {
        let severity = format!(
            "{}..{}",
            r["most_severe"].as_str().unwrap_or("?"),
            r["least_severe"].as_str().unwrap_or("?")
        );
        let action = match r["action"].as_str() {
            Some("deliver") => format!(
                "deliver {}",
                r["to"]
                    .as_array()
                    .map(|t| t
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","))
                    .unwrap_or_default()
            ),
            Some(a) => a.to_string(),
            None => "?".into(),
        };
        let retired = match r["retired_at"].as_u64() {
            Some(at) => format!(" (retired at seq {at})"),
            None => String::new(),
        };
        writeln!(
            out,
            "{:>4} {:>4} {:>5} {:<10} {:<24} {:<16} {:<15} {action}{retired}",
            r["id"].as_u64().unwrap_or(0),
            r["version"].as_u64().unwrap_or(0),
            r["priority"].as_i64().unwrap_or(0),
            r["from_seq"].as_u64().unwrap_or(0),
            r["topic"].as_str().unwrap_or("?"),
            r["source"].as_str().unwrap_or("*"),
            severity
        )?;
    }
    Ok(())
}

fn print_explanation(out: &mut impl Write, a: &Value) -> std::io::Result<()> {
    let matching = a["matching"].as_array().cloned().unwrap_or_default();
    if matching.is_empty() {
        writeln!(
            out,
            "no rule matches: each subscription's own filters decide"
        )?;
    }
    for (i, m) in matching.iter().enumerate() {
        let r = &m["spec"];
        let mut row = json!({
            "topic": r["topic"], "source": r["source"], "priority": r["priority"],
            "most_severe": r["most_severe"], "least_severe": r["least_severe"],
        });
        let action = &r["action"];
        row["action"] = action["kind"].clone();
        row["to"] = action["to"].clone();
        writeln!(
            out,
            "{} rule {} (version {}): {}",
            if i == 0 { "prevails:" } else { "loses:   " },
            m["rule"]["id"],
            m["rule"]["version"],
            describe(&row)
        )?;
    }
    if let Some(reason) = a["reason"].as_str() {
        writeln!(out, "why: {reason}")?;
    }
    let recipients: Vec<&str> = a["recipients"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if recipients.is_empty() {
        writeln!(out, "durable recipients: none")
    } else {
        writeln!(out, "durable recipients: {}", recipients.join(", "))
    }
}
