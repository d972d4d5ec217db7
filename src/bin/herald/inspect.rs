//! `herald inspect`: a read-only look at a region.

use crate::output;
use herald::log::{self, LiveEvents, SubscriptionMode};
use herald::pmem::{MappedRegion, Medium, RegionOptions};
use herald::routing::Routes;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Arguments of `herald inspect`.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// Region file or device-DAX node [default: herald-data/region.pmem].
    path: Option<PathBuf>,
    /// Also list the live (unreleased) events, oldest first.
    #[arg(long)]
    events: bool,
    /// List at most this many events.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// JSON lines on stdout: one `region` object, then one `event` object per event.
    #[arg(long)]
    json: bool,
}

/// Scans longer than this get a progress bar (on a terminal only).
const PROGRESS_AFTER: Duration = Duration::from_millis(300);

pub fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let path = args
        .path
        .unwrap_or_else(|| PathBuf::from("herald-data/region.pmem"));
    let options = RegionOptions {
        read_only: true,
        populate: true,
        ..Default::default()
    };
    let region = MappedRegion::open(&path, &options)?;
    let started = Instant::now();
    let mut bar: Option<indicatif::ProgressBar> = None;
    let terminal = std::io::stderr().is_terminal();
    let mut progress = |done: u64, total: u64| {
        if !terminal || started.elapsed() < PROGRESS_AFTER {
            return;
        }
        let b = bar.get_or_insert_with(|| {
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template("scanning {bar:40} {percent}% {eta}")
                    .expect("static template"),
            );
            b
        });
        b.set_position(done);
    };
    let analysis =
        log::analyze(region.bytes(), &mut progress).map_err(|source| log::OpenError::Format {
            path: path.clone(),
            source,
        })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let damaged = analysis.report.corrupt_slots > 0
        || !analysis.report.subscription_problems.is_empty()
        || !analysis.report.dead_letter_problems.is_empty()
        || !analysis.report.damaged_rules.is_empty();
    let entries = analysis.rules.slots.iter().filter_map(|s| match s {
        log::RuleSlot::Entry(e) => Some(e),
        _ => None,
    });
    let (routes, _) = Routes::load(entries, analysis.geometry.rules.entry_count);
    // What an event's rule reference says: the version that routed it, none, or one
    // whose entry has been reused since (the event was released long ago).
    let rule_of = |e: &log::EventView<'_>| match routes.rule_of(e.route, e.seq.0) {
        Some(r) => serde_json::json!({ "id": r.id, "version": r.version }),
        None if routes.forgotten(e.route, e.seq.0) => "forgotten".into(),
        None => serde_json::Value::Null,
    };
    let head = analysis.report.head;
    let tail = analysis.report.tail;
    let events = LiveEvents::new(region.bytes(), &analysis.geometry, head, tail)
        .take(args.limit.unwrap_or(usize::MAX));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        print_json(&mut out, &region, &analysis)?;
        if args.events {
            for e in events {
                let mut obj = serde_json::Map::new();
                obj.insert("type".into(), "event".into());
                obj.insert("seq".into(), e.seq.0.into());
                obj.insert("timestamp_ns".into(), e.timestamp_ns.into());
                obj.insert("severity".into(), e.severity.name().into());
                obj.insert("flags".into(), e.flags.into());
                obj.insert("slots".into(), e.span.into());
                obj.insert("rule".into(), rule_of(&e));
                for (key, data) in [
                    ("topic", e.topic),
                    ("source", e.source),
                    ("key", e.key),
                    ("payload", e.payload),
                ] {
                    let (k, v) = output::json_bytes(key, data);
                    obj.insert(k, v);
                }
                writeln!(out, "{}", serde_json::Value::Object(obj))?;
            }
        }
    } else {
        print_human(&mut out, &region, &analysis)?;
        if args.events {
            writeln!(
                out,
                "\n{:>12}  {:<24}  {:<7}  {:<24}  {:<12}  {:<7}  payload",
                "seq", "stored", "sev", "topic", "source", "rule"
            )?;
            for e in events {
                let rule = match rule_of(&e) {
                    serde_json::Value::Object(r) => format!("{}v{}", r["id"], r["version"]),
                    serde_json::Value::String(s) => s,
                    _ => "-".into(),
                };
                writeln!(
                    out,
                    "{:>12}  {:<24}  {:<7}  {:<24}  {:<12}  {:<7}  {}",
                    e.seq.0,
                    output::timestamp(e.timestamp_ns),
                    e.severity.name(),
                    output::printable(e.topic, 24),
                    output::printable(e.source, 12),
                    rule,
                    output::printable(e.payload, 60)
                )?;
            }
        }
    }
    Ok(if damaged {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_json(
    out: &mut impl Write,
    region: &MappedRegion,
    a: &log::Analysis,
) -> anyhow::Result<()> {
    let subscriptions: Vec<serde_json::Value> = a
        .subscriptions
        .iter()
        .flatten()
        .map(|s| {
            serde_json::json!({
                "id": s.id,
                "name": String::from_utf8_lossy(s.name()),
                "cursor": s.cursor,
                "mode": s.mode,
                "damage": s.damage,
            })
        })
        .collect();
    let rules: Vec<&log::RuleEntry> = a
        .rules
        .slots
        .iter()
        .filter_map(|s| match s {
            log::RuleSlot::Entry(e) => Some(e),
            _ => None,
        })
        .collect();
    let value = serde_json::json!({
        "type": "region",
        "region": region.info(),
        "geometry": a.geometry,
        "recovery": a.report,
        "subscriptions": subscriptions,
        "rules": rules,
    });
    writeln!(out, "{value}")?;
    Ok(())
}

fn print_human(
    out: &mut impl Write,
    region: &MappedRegion,
    a: &log::Analysis,
) -> anyhow::Result<()> {
    let info = region.info();
    let g = &a.geometry;
    let r = &a.report;
    writeln!(out, "region         {}", info.path.display())?;
    writeln!(
        out,
        "backend        {}, flush {} + sfence",
        info.kind.name(),
        info.flush.name()
    )?;
    for note in &info.notes {
        writeln!(out, "note           {note}")?;
    }
    writeln!(
        out,
        "layout         version {}, node {:016x}, formatted {}",
        g.layout_version,
        g.node_id,
        output::timestamp(g.created_unix_ns)
    )?;
    writeln!(
        out,
        "geometry       {} region; {} slots x {} B ({}); reserve {} slots for crit+; payload max {}; {} subscription entries",
        output::bytes(g.region_bytes),
        g.ring.slot_count,
        g.ring.slot_bytes,
        output::bytes(g.ring.slot_count * g.ring.slot_bytes),
        g.ring.reserve_slots,
        output::bytes(g.ring.payload_bytes_max),
        g.subscriptions.entry_count
    )?;
    let used = r.tail - r.head;
    writeln!(
        out,
        "head / tail    {} / {} ({} slots in use, {:.1}%)",
        r.head,
        r.tail,
        used,
        100.0 * used as f64 / g.ring.slot_count as f64
    )?;
    writeln!(
        out,
        "slots          live {} ({} events), padding {}, holes {}, corrupt {}, released {}, never used {}",
        r.live_slots, r.live_events, r.padding_slots, r.hole_slots, r.corrupt_slots, r.released_slots, r.unused_slots
    )?;
    for run in &r.holes {
        writeln!(
            out,
            "  hole         seq {}..{} (torn last group: never acknowledged)",
            run.first,
            run.first + run.slots
        )?;
    }
    for run in &r.corrupt {
        writeln!(
            out,
            "  CORRUPT      seq {}..{} (acknowledged data that no longer checks)",
            run.first,
            run.first + run.slots
        )?;
    }
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    writeln!(
        out,
        "scan           {} in {:.1} ms ({:.2} GB/s)",
        output::bytes(r.bytes_scanned),
        secs * 1e3,
        r.bytes_scanned as f64 / secs / 1e9
    )?;
    writeln!(out, "subscriptions  {} durable", r.subscriptions)?;
    for s in a.subscriptions.iter().flatten() {
        let pending = r.tail.saturating_sub(s.cursor);
        let mode = match s.mode {
            SubscriptionMode::Normal => "normal",
            SubscriptionMode::Recovering => "recovering",
        };
        writeln!(
            out,
            "  {:<24} cursor {:>12}  {:>10} slots pending  {mode}",
            output::printable(s.name(), 24),
            s.cursor,
            pending
        )?;
    }
    for p in &r.subscription_problems {
        writeln!(
            out,
            "  DAMAGED      entry {} ({}): {}; recovery holds from {}",
            p.index, p.name, p.problem, p.cursor_used
        )?;
    }
    Ok(())
}
