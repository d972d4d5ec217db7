//! The `herald` command line: parses, calls the library, reports.
//!
//! Exit codes (stable, for scripts):
//! - 0: success
//! - 1: the operation failed (a region could not be opened, a socket refused, …)
//! - 2: usage error (bad flags or arguments)
//! - 3: `inspect` found damage (corrupt slots or subscriptions that failed checks)

mod bench;
mod inspect;
mod output;
mod serve;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// herald: persistent, reliable delivery of event messages.
///
/// Events are recorded in a persistent-memory region (a /dev/dax device, a DAX file,
/// or an ordinary file as emulated pmem) before producers are told they are stored,
/// and kept until every intended subscriber has confirmed them.
#[derive(Parser)]
#[command(name = "herald", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: open (or create) the region, replay unconfirmed events, and
    /// serve producers and subscribers on the Unix socket until SIGTERM/SIGINT.
    #[command(
        after_help = "Examples:\n  herald serve                              # ./herald-data, emulated pmem\n  herald serve --data-dir /var/lib/herald --sync msync\n  herald serve --region /dev/dax0.0 --socket /run/herald.sock\n\nPrints one line `ready: serving on SOCKET ...` on stdout when it accepts connections;\nlogs go to stderr (RUST_LOG=debug for more)."
    )]
    Serve(serve::ServeArgs),
    /// Measure durable publish latency, throughput and end-to-end latency against a
    /// same-run baseline (a bare Unix-socket echo), on a throwaway daemon.
    #[command(
        after_help = "Examples:\n  herald bench              # a few minutes; table on stdout\n  herald bench --json > bench.json\n  herald bench --quick      # seconds: checks the harness, measures nothing useful"
    )]
    Bench(bench::BenchArgs),
    /// Show a region's superblock, backend, geometry, head/tail and slot counts,
    /// without modifying it (safe on a running daemon's region).
    #[command(
        after_help = "Examples:\n  herald inspect                         # ./herald-data/region.pmem\n  herald inspect /dev/dax0.0 --events\n  herald inspect region.pmem --events --json | jq .\n\nExit status: 0 clean, 1 cannot open, 3 damage found."
    )]
    Inspect(inspect::InspectArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Inspect(args) => inspect::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("herald: {e:#}");
            ExitCode::from(1)
        }
    }
}
