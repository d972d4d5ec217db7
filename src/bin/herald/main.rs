//! The `herald` command line: parses, calls the library, reports.
//!
//! Exit codes (stable, for scripts):
//! - 0: success (also when standard output's reader went away, as in `| head -1`:
//!   the command stops quietly)
//! - 1: the operation failed (a region could not be opened, the daemon is not running,
//!   it refused an event, …)
//! - 2: usage error (bad flags or arguments, or a configuration file or environment
//!   variable holding an unknown key or a bad value)
//! - 3: `inspect` or `check` found damage (corrupt slots or subscriptions that failed
//!   checks)

mod access;
mod bench;
mod check;
mod config;
mod config_command;
mod connect;
mod dead;
mod format;
mod inspect;
mod logging;
mod manuals;
mod output;
mod parse;
mod peers;
mod publish;
mod rules;
mod sdnotify;
mod serve;
mod status;
mod subscribe;
mod subscriptions;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
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

// Parsed once per process: the size of `serve`'s settings costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the daemon: open (or create) the region, replay unconfirmed events, and
    /// serve producers and subscribers on the Unix socket until SIGTERM/SIGINT.
    #[command(
        after_help = "Examples:\n  herald serve                              # ./herald-data, emulated pmem\n  herald serve --data-dir /var/lib/herald --sync disk\n  herald serve --region /dev/dax0.0 --socket /run/herald.sock\n  HERALD_CONNECTIONS_MAX=512 herald serve --config /etc/herald/herald.toml\n\nEvery setting is also a key of the configuration file (--config, default\n/etc/herald/herald.toml when it exists) and an environment variable HERALD_<KEY>;\nflags win over the environment, which wins over the file (`herald config check`).\nPrints one line `ready: serving on SOCKET ...` on stdout when it accepts connections;\nlogs go to stderr (--log-level or RUST_LOG=debug for more). Under systemd\n(Type=notify) it reports READY, STATUS, STOPPING and feeds the watchdog."
    )]
    Serve(serve::ServeArgs),
    /// Measure durable publish latency (over the socket and over TLS), throughput and
    /// end-to-end latency (on one daemon, and through a relay) against same-run
    /// baselines (bare echo round trips over a Unix socket, loopback TCP and TLS 1.3),
    /// on throwaway daemons.
    #[command(
        after_help = "Examples:\n  herald bench              # a few minutes; table on stdout\n  herald bench --json > bench.json\n  herald bench --quick      # seconds: checks the harness, measures nothing useful\n\nThe TLS rows use a CA, server and client certificate made for the run, a TLS\nlistener on 127.0.0.1 (a port the system picks) and a client certificate, as\n`herald serve --listen-tls` requires. Ratios are medians over a floor of the same\nrun: TLS publish over the TLS echo and over the same publish on the socket, the\nTLS echo over the TCP echo (what TLS itself costs). The relay row publishes at one\ndaemon and receives at a second one relaying it (`herald serve --upstream`); its\nratio to the single-daemon row is what one relay hop costs."
    )]
    Bench(bench::BenchArgs),
    /// Show a region's superblock, backend, geometry, head/tail and slot counts,
    /// without modifying it (safe on a running daemon's region).
    #[command(
        after_help = "Examples:\n  herald inspect                         # ./herald-data/region.pmem\n  herald inspect /dev/dax0.0 --events\n  herald inspect region.pmem --events --json | jq .\n\nExit status: 0 clean, 1 cannot open, 3 damage found."
    )]
    Inspect(inspect::InspectArgs),
    /// Format a region on purpose: a device-DAX node before its first use, or a file
    /// with a chosen size and geometry. Refuses to overwrite anything without --force.
    #[command(
        after_help = "Examples:\n  herald format /dev/dax0.0 && herald serve --region /dev/dax0.0\n  herald format /srv/herald/region.pmem --size 1G --slot-bytes 256\n\nExit status: 0 formatted, 1 refused or failed, 2 usage."
    )]
    Format(format::FormatArgs),
    /// Publish an event (MESSAGE) or one event per line of standard input, and print
    /// `stored SEQ` for each once the daemon has stored it durably.
    #[command(
        after_help = "Examples:\n  herald publish --topic fs.vol1.error --severity err 'disk full'\n  herald publish --data-dir /var/lib/herald --topic shop.order --key order-17 'order 17 shipped'\n  tail -F app.log | herald publish --topic app.log --severity notice    # one event per line\n\nThe socket is DIR/herald.sock (--data-dir, default ./herald-data).\nExit status: 0 every event stored, 1 failure (daemon not running, event refused, log full), 2 usage."
    )]
    Publish(publish::PublishArgs),
    /// Print events as they are delivered, one per line, confirming each once printed.
    #[command(
        after_help = "Examples:\n  herald subscribe                                      # every event, live-only\n  herald subscribe --name audit --filter 'fs.>' --min-severity warning\n  herald subscribe --filter 'fs.*.error' --count 10 --json | jq .\n\nHuman output: SEQ TIME SEVERITY TOPIC SOURCE PAYLOAD, then (redelivered) for an event\ndelivered before. --json: one object per line with seq, timestamp_ns, severity, topic,\nsource, key, payload (payload_hex when not UTF-8), flags, redelivered, delivery_count, rule
({id, version} of the routing rule that routed it, when one did), and origin (node_id as 16 hex digits,
seq, timestamp_ns: where the event was first stored; a relay's events name the first
node).\n\nThe socket is DIR/herald.sock (--data-dir, default ./herald-data).\nExit status: 0 done (--count reached, or output closed), 1 failure, 2 usage."
    )]
    Subscribe(subscribe::SubscribeArgs),
    /// Show the running daemon's state: region, ring, connections, subscriptions.
    #[command(
        after_help = "Examples:\n  herald status\n  herald status --data-dir /var/lib/herald --json | jq .subscriptions\n\nThe socket is DIR/herald.sock (--data-dir, default ./herald-data).\nExit status: 0 ok, 1 failure (daemon not running), 2 usage."
    )]
    Status(status::StatusArgs),
    /// Verify a region's invariants and report every inconsistency (the checks the
    /// daemon runs at start). Read-only: safe on a running daemon's region.
    #[command(
        after_help = "Examples:\n  herald check\n  herald check --region /dev/dax0.0 --json | jq .findings\n\nExit status: 0 consistent (notes, such as a torn last group after a crash, are\nnot problems), 1 cannot open, 3 inconsistencies found."
    )]
    Check(check::CheckArgs),
    /// See and act on dead letters: events a subscription rejected or that reached its
    /// maximum number of deliveries (through the running daemon).
    #[command(
        after_help = "Examples:\n  herald dead list\n  herald dead list --subscription audit --json | jq .\n  herald dead replay --subscription audit --seq 1042\n  herald dead purge --subscription audit --all\n  herald dead purge --unowned               # what `herald check` reports as damaged or orphaned\n\nA replayed dead letter is delivered once more (flagged redelivered); confirmed, it is\npurged; rejected or not settled in time, it stays a dead letter.\nExit status: 0 done, 1 failure (daemon not running, unknown subscription), 2 usage."
    )]
    Dead(dead::DeadArgs),
    /// Manage durable subscriptions: create one before its consumer exists, starting
    /// where you say; delete, pause, resume; move a cursor back to replay or forward
    /// to skip (through the running daemon).
    #[command(
        after_help = "Examples:\n  herald subscriptions list\n  herald subscriptions create audit --filter 'fs.>' --min-severity warning --start first\n  herald subscriptions pause audit && herald subscriptions resume audit\n  herald subscriptions reset audit --to ago:1h    # deliver the last hour again\n  herald subscriptions reset audit --to new       # skip what waits\n  herald subscriptions delete audit\n\nA start is new (events stored from now), first (the oldest event the ring still\nholds: released events stay readable until their slots are reused), seq:N,\ntime:RFC3339 (2026-12-03T07:00:00Z) or ago:DURATION. One older than what the ring\nholds is refused, never silently moved. Delete and reset need the subscription\nwithout a consumer; pause does not. Every change is durable before it is answered.\nExit status: 0 done, 1 failure (daemon not running, unknown subscription, start no\nlonger held), 2 usage."
    )]
    Subscriptions(subscriptions::SubscriptionsArgs),
    /// Routing rules: decide, when an event is stored, which durable subscriptions it
    /// goes to (through the running daemon).
    #[command(
        after_help = "Examples:\n  herald rules add --topic 'fs.*.error' --severity emerg..err --deliver pager --deliver audit\n  herald rules add --topic 'fs.>' --severity debug --drop\n  herald rules add --topic 'fs.vol1.>' --source fsd --priority 5 --filters\n  herald rules list\n  herald rules set 3 --deliver audit         # a new version, for events stored from now\n  herald rules delete 3\n  herald rules explain --topic fs.vol1.error --severity err --source fsd\n\nWithout rules (or when none matches) an event goes to every durable subscription whose\nown filters match it. When several rules match, one prevails: the highest --priority,\nthen the most specific (more literal topic segments, a bounded topic, fewer '*', then\nthe same for the source, then the narrower severity range), then the lowest id. It\ndecides: --deliver NAME... (exactly those durable subscriptions), --drop (nobody), or\n--filters (each subscription's own filters). Live-only subscriptions always see what\ntheir filters match, unless it is dropped. Every stored event records the rule id and\nversion that routed it (herald subscribe --json: rule; herald inspect --events).\nChanges are durable before they are answered and apply to events stored afterwards.\nExit status: 0 done, 1 failure (daemon not running, unknown rule, table full), 2 usage."
    )]
    Rules(rules::RulesArgs),
    /// Check the daemon's configuration, or print an example configuration file.
    Config(config_command::ConfigArgs),
    /// Write the man pages into a directory (for packaging).
    #[command(hide = true)]
    Manpages(manuals::ManpagesArgs),
    /// Write a shell completion script on stdout (for packaging).
    #[command(hide = true)]
    Completions(manuals::CompletionsArgs),
}

/// The whole command line, with every serve setting's environment variable attached.
fn command() -> clap::Command {
    config::with_env(Cli::command())
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let (matches, effective) = match config::parse(command(), &argv) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("herald: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match &cli.command {
        Command::Serve(args) => logging::init(args.log_format, &args.log_level),
        _ => logging::init(logging::LogFormat::Text, &logging::default_filter()),
    }
    if let (Command::Serve(_), Some(effective)) = (&cli.command, &effective) {
        log_configuration(effective);
    }
    let result = match cli.command {
        Command::Serve(args) => serve::run(args, effective.as_ref()),
        Command::Bench(args) => bench::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Format(args) => format::run(args),
        Command::Publish(args) => publish::run(args),
        Command::Subscribe(args) => subscribe::run(args),
        Command::Status(args) => status::run(args),
        Command::Check(args) => check::run(args),
        Command::Dead(args) => dead::run(args),
        Command::Subscriptions(args) => subscriptions::run(args),
        Command::Rules(args) => rules::run(args),
        Command::Config(args) => match &args.command {
            config_command::ConfigCommand::Check(check) => config_command::check(
                check,
                effective
                    .as_ref()
                    .expect("config check's settings are resolved"),
            ),
            config_command::ConfigCommand::Example => config_command::example(&command()),
        },
        Command::Manpages(args) => manuals::manpages(&args, command()),
        Command::Completions(args) => manuals::completions(&args, command()),
    };
    match result {
        Ok(code) => code,
        Err(e) if output_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Whether `error` is standard output's reader having gone away (`herald status |
/// head -1`). That is no failure of the command, only the end of what anyone wants of
/// its output: it exits 0 and says nothing, as ripgrep does (the 141 a shell shows for
/// a process killed by SIGPIPE is not needed; Rust ignores SIGPIPE, so the write
/// fails with EPIPE instead). Both must hold: a broken pipe somewhere in the error's
/// chain, and standard output a pipe or socket whose reader is gone, so that a broken
/// pipe on the daemon's socket stays the error it is.
fn output_closed(error: &anyhow::Error) -> bool {
    let broken_pipe = error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    broken_pipe && stdout_reader_gone()
}

/// Standard output's reader is gone: Linux reports POLLERR for the write end of a pipe
/// without readers, and POLLERR or POLLHUP for a socket whose peer closed.
fn stdout_reader_gone() -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::POLLOUT)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1..))
        && fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP))
}

/// The daemon's log says which file it read and every setting not at its default.
fn log_configuration(effective: &config::Effective) {
    let file = effective
        .file
        .as_ref()
        .map_or_else(|| "none".to_owned(), |f| f.display().to_string());
    tracing::info!(file = %file, "configuration");
    for s in &effective.settings {
        if !matches!(s.source, config::Source::Default | config::Source::Unset) {
            tracing::debug!(key = %s.key, value = s.value.as_deref().unwrap_or(""), source = %s.source, "setting");
        }
    }
}
