//! `herald check`: verifies a region's invariants and reports every inconsistency, the
//! same checks the daemon runs at start. Read-only: safe on a running daemon's region.

use herald::log;
use herald::pmem::{MappedRegion, Medium, RegionOptions};
use herald::subscription::check::{self, Severity};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `herald check`.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// The daemon's data directory; the region is DIR/region.pmem.
    #[arg(long, value_name = "DIR", default_value = crate::parse::DATA_DIR_DEFAULT)]
    data_dir: PathBuf,
    /// Check this region (file or device-DAX node) instead of DIR/region.pmem.
    #[arg(long, value_name = "PATH")]
    region: Option<PathBuf>,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let path = args
        .region
        .unwrap_or_else(|| args.data_dir.join("region.pmem"));
    let options = RegionOptions {
        read_only: true,
        populate: true,
        ..Default::default()
    };
    let region = MappedRegion::open(&path, &options)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let analysis = match log::analyze(region.bytes(), &mut |_, _| {}) {
        Ok(a) => a,
        Err(e) => {
            // The superblock or section table itself is unreadable: nothing else can
            // be checked, and no daemon will open it.
            if args.json {
                let doc = serde_json::json!({
                    "region": path,
                    "ok": false,
                    "findings": [{ "severity": "problem", "area": "superblock", "subject": path, "detail": e.to_string() }],
                });
                writeln!(out, "{doc}")?;
            } else {
                writeln!(out, "{}: PROBLEM superblock: {e}", path.display())?;
            }
            return Ok(ExitCode::from(3));
        }
    };
    let findings = check::check(&analysis.report, analysis.subscriptions.iter().flatten());
    let problems = check::has_problems(&findings);
    if args.json {
        let doc = serde_json::json!({
            "region": path,
            "ok": !problems,
            "live_events": analysis.report.live_events,
            "subscriptions": analysis.report.subscriptions,
            "findings": findings,
        });
        writeln!(out, "{doc}")?;
    } else {
        for f in &findings {
            let label = match f.severity {
                Severity::Problem => "PROBLEM",
                Severity::Note => "note",
            };
            writeln!(out, "{label} {} {}: {}", f.area, f.subject, f.detail)?;
        }
        writeln!(
            out,
            "{}: {} ({} live events, {} durable subscriptions, {} problems, {} notes)",
            path.display(),
            if problems { "INCONSISTENT" } else { "ok" },
            analysis.report.live_events,
            analysis.report.subscriptions,
            findings
                .iter()
                .filter(|f| f.severity == Severity::Problem)
                .count(),
            findings
                .iter()
                .filter(|f| f.severity == Severity::Note)
                .count(),
        )?;
    }
    Ok(if problems {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}
