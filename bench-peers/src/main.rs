//! `herald-bench-peers` (also run as `herald bench peers`): the same workloads against
//! herald and the systems its users would otherwise run, each started here on a
//! throwaway directory and stopped after, with every system's durability in this
//! configuration beside its numbers.
//!
//! It is a crate of its own so that its dependencies (the clients of Redis and NATS,
//! an async runtime, a plotting library, a dynamic loader) stay out of the `herald`
//! binary and out of every program that uses herald's client library. The `herald`
//! binary's `bench peers` subcommand runs this program with the same arguments.
//!
//! A system is a [`workload::Peer`]; the workloads are written once in
//! [`workload`]. Each peer reads its stored and delivered counts back from the system
//! itself, and the report marks a row that lost or failed to deliver anything.
//!
//! Exit codes: 0 every system ran and stored and delivered every event, 1 otherwise,
//! 2 usage.

mod floors;
mod herald;
mod nats;
mod plot;
mod pmemlog;
mod redis;
mod report;
mod server;
mod workload;

use anyhow::Context;
use clap::Parser;
use report::{Durability, Report, SystemReport};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use workload::{Kind, Plan, Workload, PAYLOAD_BYTES};

/// The examples and notes under `--help`.
const AFTER_HELP: &str = "Examples:\n  tools/install-peers.sh && herald-bench-peers       # a few minutes\n  herald-bench-peers --quick --json-out peers.json   # seconds: checks the harness\n  herald-bench-peers --systems herald,redis-always --plot cmp.svg\n  herald bench peers --quick                         # the same program, through herald\n\nBuild it with `cargo build --release -p herald-bench-peers`; it lands beside\ntarget/release/herald. `herald bench peers ARGS` runs it with the same ARGS.\n\nThe herald measured is the binary named by HERALD_BIN (`herald bench peers` sets it\nto itself), else the `herald` beside this program, else `herald` on PATH.\n\nPeers come from Debian's packages (redis-server, nats-server, libpmemlog-dev);\ntools/install-peers.sh installs what is missing. A system that is missing is\nreported as not installed and the exit status is 1.\n\nOutput: the table on stdout, every figure in --json-out, latency distributions\nin --plot (SVG). Exit status: 0 every system ran and stored and delivered every\nevent, 1 otherwise, 2 usage.";

/// Run the same workloads against herald and the systems users would pick instead
/// (Redis Streams, NATS JetStream, PMDK libpmemlog) and two floors, each on its own
/// throwaway server, and print one table with each system's durability.
#[derive(Parser)]
#[command(name = "herald-bench-peers", version, after_help = AFTER_HELP)]
struct PeersArgs {
    /// Small counts and short runs: checks the harness on every system, measures
    /// nothing worth comparing.
    #[arg(long)]
    quick: bool,
    /// Write every figure here as JSON.
    #[arg(long, value_name = "FILE", default_value = "herald-bench-peers.json")]
    json_out: PathBuf,
    /// Write the latency distributions here as an SVG plot.
    #[arg(long, value_name = "FILE", default_value = "herald-bench-peers.svg")]
    plot: PathBuf,
    /// Where the throwaway data directories go (default: the system's temporary
    /// directory). Durability on disk depends on it: use the disk you would deploy on.
    #[arg(long, value_name = "DIR")]
    scratch_dir: Option<PathBuf>,
    /// Run only these systems (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "SYSTEMS")]
    systems: Option<Vec<System>>,
    /// Timed publishes in the latency workload.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    latency_events: u64,
    /// Longest duration of a throughput run, seconds.
    #[arg(long, default_value_t = 2.0, value_name = "S")]
    seconds: f64,
    /// Events in the end-to-end run (at 5000 events/s, or a quarter of what a system
    /// reached one publish at a time if that is lower).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    e2e_events: u64,
}

/// Every system the comparison knows, in the order of the table.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum System {
    /// herald, through its client library and daemon.
    Herald,
    /// herald with `--sync disk`: `stored` after an fdatasync, like `appendfsync always`
    /// (`herald-msync` is its old name).
    #[value(alias = "herald-msync")]
    HeraldDisk,
    /// Redis Streams, `appendfsync always`.
    RedisAlways,
    /// Redis Streams, `appendfsync no`.
    RedisNo,
    /// NATS JetStream, file storage.
    Jetstream,
    /// PMDK libpmemlog, in process.
    Pmemlog,
    /// Floor: store + flush + fence.
    RawFlush,
    /// Floor: a store into a mapped file and one fdatasync, per record.
    Fdatasync,
    /// Floor: a Unix-socket echo.
    Echo,
}

impl System {
    const ALL: [System; 9] = [
        System::Herald,
        System::HeraldDisk,
        System::RedisAlways,
        System::RedisNo,
        System::Jetstream,
        System::Pmemlog,
        System::RawFlush,
        System::Fdatasync,
        System::Echo,
    ];

    /// The name in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            System::Herald => "herald",
            System::HeraldDisk => "herald-disk",
            System::RedisAlways => "redis-always",
            System::RedisNo => "redis-no",
            System::Jetstream => "jetstream",
            System::Pmemlog => "pmemlog",
            System::RawFlush => "raw-flush",
            System::Fdatasync => "fdatasync",
            System::Echo => "echo",
        }
    }

    /// A peer is a system users would pick instead; a floor is what the machine costs.
    pub fn is_peer(self) -> bool {
        matches!(
            self,
            System::RedisAlways | System::RedisNo | System::Jetstream
        )
    }

    fn describe(self) -> String {
        match self {
            System::Herald => format!("herald {}, Unix socket", env!("CARGO_PKG_VERSION")),
            System::HeraldDisk => format!(
                "herald {} --sync disk, Unix socket",
                env!("CARGO_PKG_VERSION")
            ),
            System::RedisAlways | System::RedisNo => {
                format!("{}, Unix socket", redis::RedisPeer::version())
            }
            System::Jetstream => format!("{}, TCP loopback", nats::NatsPeer::version()),
            System::Pmemlog => format!("PMDK {}, in process", pmemlog::LIBRARY),
            System::RawFlush => "herald::pmem store + flush + fence, in process".into(),
            System::Fdatasync => {
                "herald::pmem store + flush + fdatasync of a zero-filled region file, in process"
                    .into()
            }
            System::Echo => "echo server, Unix socket".into(),
        }
    }

    /// What a stored event survives in this configuration; `medium` is what the
    /// scratch directory's file system gives an fsync.
    fn durability(self, herald_guarantee: &str, medium: &report::Medium) -> Durability {
        let disk = medium.fsync_reaches_disk;
        let on_disk = |yes: &'static str| if disk { yes } else { "no (tmpfs)" };
        match self {
            System::Herald => Durability {
                process_crash: "yes",
                power_cut: "no; yes on DAX",
                text: format!(
                    "daemon: {herald_guarantee}. On device-DAX or a MAP_SYNC DAX file the same commit survives a power cut."
                ),
            },
            System::HeraldDisk => Durability {
                process_crash: "yes",
                power_cut: on_disk("yes"),
                text: "`stored` only once an fdatasync of the region file, begun after the group was written, has completed (--sync disk); groups gather while a sync is in flight. Power cuts at page granularity are explored by tests/simulator.rs and tests/sim_disk.rs".into(),
            },
            System::RedisAlways => Durability {
                process_crash: "yes",
                power_cut: on_disk("yes"),
                text: "append-only file written and fsynced before each reply".into(),
            },
            System::RedisNo => Durability {
                process_crash: "yes",
                power_cut: "no",
                text: "append-only file written to the kernel before each reply, never fsynced by Redis: survives a process crash, not a power cut or kernel crash (the kernel writes back when it chooses, typically within 30 s)".into(),
            },
            System::Jetstream => Durability {
                process_crash: "mostly",
                power_cut: "no",
                text: "acknowledged once in the server's file store; fsync only every 2 minutes (sync_interval default): a power cut or kernel crash can lose up to 2 minutes of acknowledged messages; a process crash can lose what the store had buffered but not yet written to its file (not measured here)".into(),
            },
            System::Pmemlog => Durability {
                process_crash: "yes",
                power_cut: "no; yes on DAX",
                text: format!("the medium herald uses: cache lines flushed and fenced in a page-cache file ({}=1); survives a process crash, a power cut only on real persistent memory", pmemlog::FORCE_PMEM_VARIABLE),
            },
            System::RawFlush => Durability {
                process_crash: "yes",
                power_cut: "no; yes on DAX",
                text: "floor: bare records flushed and fenced on the same medium, no log structure, no checksum".into(),
            },
            System::Fdatasync => Durability {
                process_crash: "yes",
                power_cut: on_disk("yes"),
                text: "floor: each record (each batch, pipelined) stored and fdatasynced before the next; no log structure, no checksum, no socket".into(),
            },
            System::Echo => Durability {
                process_crash: "n/a",
                power_cut: "n/a",
                text: "floor: stores nothing".into(),
            },
        }
    }
}

/// A started system, as the workloads see it.
type Started = Box<dyn workload::Peer>;

/// Starts `system`; for herald, also returns the guarantee its daemon announces.
fn start(system: System, scratch: &Path, plan: Plan) -> anyhow::Result<(Started, Option<String>)> {
    Ok(match system {
        System::Herald => {
            let peer = herald::HeraldPeer::start(scratch, false, &plan)?;
            let guarantee = peer.guarantee()?;
            (Box::new(peer), Some(guarantee))
        }
        System::HeraldDisk => (
            Box::new(herald::HeraldPeer::start(scratch, true, &plan)?),
            None,
        ),
        System::RedisAlways => (
            Box::new(redis::RedisPeer::start(
                scratch,
                redis::AppendFsync::Always,
            )?),
            None,
        ),
        System::RedisNo => (
            Box::new(redis::RedisPeer::start(scratch, redis::AppendFsync::No)?),
            None,
        ),
        System::Jetstream => (Box::new(nats::NatsPeer::start(scratch)?), None),
        System::Pmemlog => (Box::new(pmemlog::PmemlogPeer::load(scratch, plan)?), None),
        System::RawFlush => (Box::new(floors::RawFlushPeer::new(scratch, plan)?), None),
        System::Fdatasync => (
            Box::new(floors::RawFlushPeer::fdatasync(scratch, plan)?),
            None,
        ),
        System::Echo => (Box::new(floors::EchoPeer::new(scratch)?), None),
    })
}

fn plan(args: &PeersArgs) -> Plan {
    if args.quick {
        Plan {
            latency_events: 300,
            throughput_seconds: 0.2,
            throughput_bytes_per_producer: 256 << 10,
            end_to_end_events: 300,
            end_to_end_rate_per_second: 5_000,
        }
    } else {
        Plan {
            latency_events: args.latency_events,
            throughput_seconds: args.seconds,
            throughput_bytes_per_producer: 64 << 20,
            end_to_end_events: args.e2e_events,
            end_to_end_rate_per_second: 5_000,
        }
    }
}

/// The order systems run in within each workload: the echo floor just before herald,
/// so the round trip under herald's latency is measured seconds from it.
const RUN_ORDER: [System; 9] = [
    System::Echo,
    System::Herald,
    System::HeraldDisk,
    System::RedisAlways,
    System::RedisNo,
    System::Jetstream,
    System::Pmemlog,
    System::RawFlush,
    System::Fdatasync,
];

/// A system under comparison: its peer while it runs, and what it measured.
struct Running {
    peer: Option<Started>,
    report: SystemReport,
}

/// Runs one workload on one system; a failure is recorded and stops the system.
fn run_workload(r: &mut Running, w: &Workload, plan: &Plan) {
    let Some(peer) = r.peer.as_mut() else { return };
    eprintln!(
        "  {} {} B: {}",
        w.kind.short(),
        w.payload_bytes,
        r.report.system.name()
    );
    let p50_us = r.report.p50_us(Kind::PublishLatency, w.payload_bytes);
    match workload::run(peer.as_mut(), w, plan, plan.end_to_end_rate(p50_us)) {
        Ok(Some(outcome)) => r.report.add(w, outcome),
        Ok(None) => {}
        Err(e) => {
            r.report.error = Some(format!("{} {} B: {e:#}", w.kind.short(), w.payload_bytes));
            r.peer = None; // stopped now (Drop)
        }
    }
}

fn main() -> ExitCode {
    let args = PeersArgs::parse();
    // The NATS client logs through tracing; its routine reconnect chatter is noise
    // beside the table, its warnings are not.
    // Colour codes only for a person at a terminal: a file, a pipe or journald gets
    // plain text.
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,async_nats=warn".into()),
        )
        .init();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("herald-bench-peers: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The comparison: start every system, run every workload on each, report.
fn run(args: PeersArgs) -> anyhow::Result<ExitCode> {
    // libpmem reads this once, when libpmemlog is loaded; set it while this process
    // has one thread, before any library could read the environment concurrently.
    std::env::set_var(pmemlog::FORCE_PMEM_VARIABLE, "1");
    let plan = plan(&args);
    let scratch_parent = args.scratch_dir.clone().unwrap_or_else(std::env::temp_dir);
    let scratch = tempfile::Builder::new()
        .prefix("herald-bench-peers-")
        .tempdir_in(&scratch_parent)
        .with_context(|| format!("creating a directory in {}", scratch_parent.display()))?;
    let medium = report::Medium::of(scratch.path());
    let systems = args.systems.clone().unwrap_or_else(|| System::ALL.to_vec());
    // Every system is started first and each workload then runs on all of them in
    // turn, so the figures compared in a row were measured within seconds of each
    // other (this machine's wake-up latency drifts over minutes).
    let mut herald_guarantee = String::from("unknown");
    let mut running = Vec::new();
    for system in RUN_ORDER.into_iter().filter(|s| systems.contains(s)) {
        eprintln!("starting {}", system.name());
        let mut report = SystemReport::new(system);
        let peer = match start(system, scratch.path(), plan) {
            Ok((peer, guarantee)) => {
                herald_guarantee = guarantee.unwrap_or(herald_guarantee);
                Some(peer)
            }
            Err(e) => {
                report.error = Some(format!("{e:#}"));
                None
            }
        };
        running.push(Running { peer, report });
    }
    for kind in Kind::ALL {
        for payload_bytes in PAYLOAD_BYTES {
            let w = Workload {
                kind,
                payload_bytes,
            };
            for r in &mut running {
                run_workload(r, &w, &plan);
            }
        }
    }
    let mut reports: Vec<SystemReport> = running
        .into_iter()
        .map(|r| {
            drop(r.peer); // stop it
            let mut report = r.report;
            let system = report.system;
            report.describe(
                system.describe(),
                system.durability(&herald_guarantee, &medium),
            );
            report
        })
        .collect();
    reports.sort_by_key(|r| System::ALL.iter().position(|s| *s == r.system));
    let report = Report::new(args.quick, plan, medium, reports);
    report.print_table(&mut std::io::stdout().lock())?;
    std::fs::write(
        &args.json_out,
        serde_json::to_string_pretty(&report.json())?,
    )
    .with_context(|| format!("writing {}", args.json_out.display()))?;
    plot::write(&args.plot, &report).with_context(|| format!("writing {}", args.plot.display()))?;
    println!(
        "\nfigures: {}   plot: {}",
        args.json_out.display(),
        args.plot.display()
    );
    Ok(if report.all_verified() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
