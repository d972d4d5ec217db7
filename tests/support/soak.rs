//! The soak: mixed load against the real daemon for as long as asked, the daemon
//! killed at moments drawn from a seed and restarted; shared by `tools/soak.rs` and the
//! short run in `tests/load.rs`.
//!
//! Each daemon lifetime runs, as threads of this process:
//! - four producers: two with idempotency keys (a publish whose `Stored` a kill took is
//!   published again, with the same keys, first thing in the next lifetime), two
//!   without; single events and batches, pipelined, sizes up to the 64 KiB limit; a
//!   publish answered `full` is published again after a pause;
//! - five durable subscribers (`model::DURABLE`): one that confirms everything and
//!   leaves recovery with `Recovered`, one with automatic recovery, `picky` (rejects
//!   some, never settles some, naks or ignores some once, confirms replayed dead
//!   letters), `flaky` (drops its connection now and then) and `slow` (in three
//!   lifetimes of five stops reading for a while, in one from the start through the
//!   kill: the ring fills behind it and producers are told `full`);
//! - two live-only subscribers that come back on new connections;
//! - an operator asking for status, sampling the daemon's RSS, paging through
//!   subscriptions and dead letters, recording each dead letter, replaying some and
//!   purging the rest.
//!
//! Lifetimes last from 50 ms to `lifetime_max` (drawn from the seed) and end with a
//! SIGKILL (or, one in seven, a SIGTERM that must stop the daemon cleanly); a third of
//! them hold a publish that finds the ring full (`--when-full wait`) instead of
//! refusing it. A last lifetime publishes only what kills left unanswered and drains
//! everything.
//!
//! Checked as it goes: every delivery is an event as published, meant for its
//! subscription, under the seq its `Stored` gave (a second seq: stored twice), new ones
//! in order; every dead letter has a reason its subscriber gave it; after every
//! restart, before the clients are back, the recovered log still holds every
//! acknowledged event not yet settled (`Ledger::check_recovered`); the daemon's RSS
//! stays within the README's bound ("Memory") over each lifetime. At the end: every
//! event answered `Stored` was confirmed by, or is a dead letter of, each durable
//! subscription it was meant for (and what picky gives up on is a dead letter).
//!
//! A confirm counts from when it is queued, so that the soak's record never lags the
//! daemon's cursor (no false alarm after a kill); an event lost between its confirm
//! being queued and the daemon taking it would pass unseen.

#![allow(dead_code)]

#[path = "soak/clients.rs"]
mod clients;
#[path = "soak/control.rs"]
mod control;
#[path = "daemon.rs"]
pub mod daemon;
#[path = "soak/ledger.rs"]
mod ledger;
#[path = "memory.rs"]
pub mod memory;
#[path = "soak/model.rs"]
mod model;
#[path = "soak/summary.rs"]
mod summary;
#[path = "treatment.rs"]
mod treatment;

pub use ledger::Stats;
// Unused by the load tests, which load this file for its daemon and memory helpers.
#[allow(unused_imports)]
pub use summary::summary;

use clients::Group;
use herald::client::Client;
use herald::protocol::Role;
use ledger::Ledger;
use memory::{try_rss_of, Load, Rss};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The seed a soak runs with unless told another (`--seed`, `HERALD_SOAK_SEED`).
pub const DEFAULT_SEED: u64 = 20_151;

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long to run before the last lifetime drains everything.
    pub duration: Duration,
    /// Chooses every lifetime's length and ending, every client's choices.
    pub seed: u64,
    /// Events per second the producers aim at, together.
    pub rate: f64,
    /// The region's size in MiB: the smaller, the sooner a stall fills the ring.
    pub region_mib: u64,
    /// The longest a daemon lifetime lasts before its kill.
    pub lifetime_max: Duration,
    /// `herald serve --sync disk` (fdatasync before `stored`) instead of `flush`.
    pub sync_disk: bool,
    /// Print a line every this often (None: quiet).
    pub progress: Option<Duration>,
}

/// What a run did and found.
pub struct Outcome {
    pub stats: Stats,
    /// Every violation found (the first 50 word for word).
    pub violations: Vec<String>,
    pub elapsed: Duration,
    /// The data directory (region, daemon.log), kept when something was found.
    pub kept: Option<PathBuf>,
}

const PRODUCERS: [(&str, bool); 4] = [
    ("keyed-0", true),
    ("keyed-1", true),
    ("plain-0", false),
    ("plain-1", false),
];
/// How long a publish waits for room in a lifetime with `--when-full wait`.
const FULL_WAIT: &str = "500ms";
/// Connections whose slots a lifetime may touch: every client of the soak, twice (a
/// reconnecting client may take a new slot while its old one closes), and the
/// supervisor's.
const CONNECTIONS_TOUCHED: u64 =
    2 * (PRODUCERS.len() + model::DURABLE.len() + model::LIVE.len() + 1) as u64 + 2;
/// Subscriptions attached at once: every durable one, and each live one twice.
const SUBSCRIPTIONS_AT_ONCE: u64 = (model::DURABLE.len() + 2 * model::LIVE.len()) as u64;
/// Failure detectors: a start (a recovery included), a clean stop, the final drain.
const START_MAX: Duration = Duration::from_secs(60);
const STOP_MAX: Duration = Duration::from_secs(30);
const DRAIN_MAX: Duration = Duration::from_secs(300);
/// Between two status requests of the drain: a poll interval; DRAIN_MAX bounds it.
const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often the supervisor looks at the clock and prints progress while a lifetime
/// runs (it decides nothing but how late a line comes).
const SUPERVISOR_TICK: Duration = Duration::from_millis(200);
const NOT_YET: u64 = u64::MAX;

/// One run of the daemon, as the clients see it.
pub struct Lifetime {
    pub number: u64,
    pub socket: PathBuf,
    pub pid: u32,
    /// The last lifetime: no new events, everything drains.
    pub is_final: bool,
    /// When, after `started`, `slow` stops reading, and for how long.
    pub stall: Option<(Duration, Duration)>,
    dying: AtomicBool,
    stop: AtomicBool,
    /// When the daemon was started.
    pub started: Instant,
    /// Since `started`, in ns: the first `Stored`; the last `RecoveryDone` a durable
    /// subscriber got on its first connection (every replay delivered).
    first_stored_ns: AtomicU64,
    replay_done_ns: AtomicU64,
    /// The daemon's memory once it was ready, and the load the lifetime adds.
    pub baseline: Option<Rss>,
    pub load: Load,
    /// The daemon's count of publishes answered from its idempotency window.
    pub answered_from_window: AtomicU64,
}

impl Lifetime {
    /// The supervisor is about to stop the daemon: client errors are expected now.
    pub fn dying(&self) -> bool {
        self.dying.load(Ordering::SeqCst)
    }

    /// The final lifetime is over: clients leave.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// A producer got a `Stored`.
    pub fn first_stored(&self) {
        let ns = self.started.elapsed().as_nanos() as u64;
        self.first_stored_ns.fetch_min(ns, Ordering::Relaxed);
    }

    /// A durable subscriber got `RecoveryDone` on its first connection.
    pub fn replay_done(&self) {
        let ns = self.started.elapsed().as_nanos() as u64;
        self.replay_done_ns.fetch_max(ns, Ordering::Relaxed);
    }
}

/// Starts `herald serve` in `dir` as the soak runs it (`treatment::DAEMON_ARGS`, the region's
/// size, the sync mode, and what a publish gets when the ring is full), its log
/// appended to `log`; Err when it does not say `ready`.
fn start_daemon(
    dir: &Path,
    log: &std::fs::File,
    config: &Config,
    wait_when_full: bool,
) -> Result<daemon::Daemon, String> {
    let region_size = format!("{}M", config.region_mib);
    let mut args = treatment::DAEMON_ARGS.to_vec();
    args.extend(["--region-size", &region_size, "--sync", sync_name(config)]);
    if wait_when_full {
        args.extend(["--when-full", "wait", "--full-wait", FULL_WAIT]);
    }
    let log = log
        .try_clone()
        .map_err(|e| format!("the daemon's log: {e}"))?;
    let configure = |c: &mut std::process::Command| {
        c.stderr(Stdio::from(log));
        // SAFETY: prctl(2) is async-signal-safe, as pre_exec requires.
        unsafe {
            c.pre_exec(|| {
                // The daemon dies with the soak: a soak stopped with ^C leaves no daemon
                // behind.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    };
    daemon::Daemon::try_start_with(dir, &args, configure, START_MAX)
}

/// The `--sync` the daemon runs with.
pub fn sync_name(config: &Config) -> &'static str {
    if config.sync_disk {
        "disk"
    } else {
        "flush"
    }
}

/// Creates every durable subscription before anything is published, so that every
/// event is meant for each whose patterns match.
fn create_durable(socket: &Path) -> Result<(), String> {
    for spec in &model::DURABLE {
        let mut c = Client::connect(socket, Role::Subscriber, spec.name)
            .map_err(|e| format!("creating {}: {e}", spec.name))?;
        c.subscribe_with(spec.name, spec.patterns, &spec.options)
            .map_err(|e| format!("creating {}: {e}", spec.name))?;
        c.goodbye().map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// How long a lifetime lasts: a tenth up to a 120th of `max` (a kill during recovery
/// and replay), most up to a sixth, a fifth from a third to all of it. With the
/// default two minutes: under a second, up to 20 s, 40 s to 120 s.
fn lifetime_length(rng: &mut SmallRng, max: Duration) -> Duration {
    let max = max.as_secs_f64().max(1.0);
    let short = (max / 120.0).max(0.1);
    Duration::from_secs_f64(match rng.gen_range(0..100) {
        0..10 => rng.gen_range(0.05..short),
        10..80 => rng.gen_range(short..max / 6.0),
        _ => rng.gen_range(max / 3.0..max),
    })
}

/// Whether and when `slow` stops reading in a lifetime of `length` (never in the final
/// one, which drains): in one lifetime in five from the start through the kill (the
/// next lifetime recovers a full ring), in two from a moment in the first half for half
/// to all of the rest. A stall longer than the ring takes to fill (seconds) fills it.
fn stall(rng: &mut SmallRng, is_final: bool, length: Duration) -> Option<(Duration, Duration)> {
    match rng.gen_range(0..5) {
        _ if is_final => None,
        0 => Some((Duration::ZERO, length)),
        1 | 2 => {
            let at = length.mul_f64(rng.gen_range(0.0..0.5));
            Some((at, (length - at).mul_f64(rng.gen_range(0.5..1.0))))
        }
        _ => None,
    }
}

/// After a restart and before the clients are back: the daemon's status, every dead
/// letter recorded (and purged), then the check that nothing acknowledged was lost.
fn check_recovered(l: &Lifetime, ledger: &Ledger, rng: &mut SmallRng) -> Result<(), String> {
    let mut client = Client::connect(&l.socket, Role::Control, "soak-supervisor")
        .map_err(|e| format!("the supervisor cannot connect: {e}"))?;
    let status = control::status(&mut client, ledger).map_err(|e| e.to_string())?;
    // One sweep pages through every dead letter (those marked for replay stay).
    control::sweep_dead_letters(&mut client, ledger, rng, false).map_err(|e| e.to_string())?;
    ledger.check_recovered(l.number, &status);
    Ok(())
}

/// Runs the soak as `config` says.
pub fn run(config: &Config) -> Outcome {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log_path = dir.path().join("daemon.log");
    let log = std::fs::File::create(&log_path).expect("the daemon's log file");
    let binary_bytes = std::fs::metadata(daemon::herald_binary()).map_or(0, |m| m.len());
    let ledger = Ledger::default();
    let next = AtomicU64::new(0);
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let mut retry: Vec<VecDeque<Group>> = vec![VecDeque::new(); PRODUCERS.len()];
    let mut last_progress = Instant::now();
    // Violations already printed with the progress.
    let mut printed = 0;
    for number in 0.. {
        let remaining = config.duration.saturating_sub(started.elapsed());
        let is_final = remaining.is_zero();
        let spawned = Instant::now();
        let d = match start_daemon(dir.path(), &log, config, rng.gen_range(0..3) == 0) {
            Ok(d) => d,
            Err(e) => {
                ledger.violation(format!("lifetime {number}: {e}; see the daemon's log"));
                break;
            }
        };
        if number > 0 {
            ledger.restarted(spawned.elapsed());
        }
        let seeds: Vec<u64> = (0..16).map(|_| rng.gen()).collect();
        let length = lifetime_length(&mut rng, config.lifetime_max).min(remaining);
        let clean = rng.gen_range(0..7) == 0;
        let l = Lifetime {
            number,
            socket: d.socket(),
            pid: d.child.id(),
            is_final,
            stall: stall(&mut rng, is_final, length),
            dying: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            started: spawned,
            first_stored_ns: AtomicU64::new(NOT_YET),
            replay_done_ns: AtomicU64::new(0),
            baseline: try_rss_of(d.child.id()),
            load: Load {
                connections: CONNECTIONS_TOUCHED,
                subscriptions: SUBSCRIPTIONS_AT_ONCE,
                // The binary's pages are mapped files too.
                region_bytes: (config.region_mib << 20) + binary_bytes,
            },
            answered_from_window: AtomicU64::new(0),
        };
        let ready = if number == 0 {
            create_durable(&l.socket)
        } else {
            check_recovered(&l, &ledger, &mut rng)
        };
        if let Err(e) = ready {
            ledger.violation(format!("lifetime {number}: {e}"));
            break;
        }
        let mut daemon = Some(d);
        std::thread::scope(|s| {
            let (l, ledger, next) = (&l, &ledger, &next);
            let mut seeds = seeds.into_iter().map(SmallRng::seed_from_u64);
            let rate = config.rate / PRODUCERS.len() as f64;
            let producers: Vec<_> = PRODUCERS
                .iter()
                .zip(std::mem::take(&mut retry))
                .map(|(&(name, keyed), queue)| {
                    let mut r = seeds.next().expect("enough seeds");
                    s.spawn(move || {
                        clients::producer(l, ledger, name, keyed, next, queue, &mut r, rate)
                    })
                })
                .collect();
            for sub in 0..model::DURABLE.len() {
                let mut r = seeds.next().expect("enough seeds");
                s.spawn(move || clients::durable(l, ledger, sub, &mut r));
            }
            for (name, patterns) in model::LIVE {
                let mut r = seeds.next().expect("enough seeds");
                s.spawn(move || clients::live(l, ledger, name, patterns, &mut r));
            }
            let mut r = seeds.next().expect("enough seeds");
            s.spawn(move || control::control(l, ledger, &mut r));
            if is_final {
                retry = producers.into_iter().map(|p| p.join().unwrap()).collect();
                drain(l, ledger, &mut rng, config.progress);
                l.stop.store(true, Ordering::SeqCst);
                return;
            }
            let until = Instant::now() + length;
            while Instant::now() < until {
                std::thread::sleep((until - Instant::now()).min(SUPERVISOR_TICK));
                if let Some(every) = config.progress {
                    if last_progress.elapsed() >= every {
                        last_progress = Instant::now();
                        progress(started, ledger, &mut printed);
                    }
                }
            }
            // The clients are in the middle of whatever they were doing.
            l.dying.store(true, Ordering::SeqCst);
            stop_daemon(daemon.take().expect("running"), clean, number, ledger);
            retry = producers.into_iter().map(|p| p.join().unwrap()).collect();
        });
        end_of_lifetime(&l, &ledger);
        if let Some(d) = daemon.take() {
            // The final lifetime: its clients are gone, everything is settled.
            stop_daemon(d, true, number, &ledger);
            break;
        }
    }
    // The last lifetime published every unanswered keyed publish again.
    if retry.iter().any(|q| !q.is_empty()) {
        ledger.violation("keyed publishes still unanswered at the end".into());
    }
    ledger.check_complete();
    let stats = ledger.stats();
    let violations = ledger.violations();
    let kept = (stats.violations > 0).then(|| dir.keep());
    Outcome {
        stats,
        violations,
        elapsed: started.elapsed(),
        kept,
    }
}

/// Counts the lifetime and, after a restart, how long the daemon took to store again
/// and to deliver every replay.
fn end_of_lifetime(l: &Lifetime, ledger: &Ledger) {
    let answered = l.answered_from_window.load(Ordering::Relaxed);
    let stored_ns = l.first_stored_ns.load(Ordering::Relaxed);
    let replay_ns = l.replay_done_ns.load(Ordering::Relaxed);
    let restart = l.number > 0;
    ledger.stat(|s| {
        s.lifetimes += 1;
        s.answered_from_window += answered;
        if restart && stored_ns != NOT_YET {
            s.storing_again_count += 1;
            s.storing_again_ms_sum += stored_ns / 1_000_000;
            s.storing_again_ms_max = s.storing_again_ms_max.max(stored_ns / 1_000_000);
        }
        if restart && replay_ns > 0 {
            s.replay_done_count += 1;
            s.replay_done_ms_sum += replay_ns / 1_000_000;
            s.replay_done_ms_max = s.replay_done_ms_max.max(replay_ns / 1_000_000);
        }
    });
}

/// SIGKILL, or SIGTERM and a clean exit (status 0) within STOP_MAX.
fn stop_daemon(d: daemon::Daemon, clean: bool, number: u64, ledger: &Ledger) {
    if clean {
        match d.stop_within(STOP_MAX) {
            Ok(status) if status.success() => {}
            Ok(status) => ledger.violation(format!(
                "lifetime {number}: after SIGTERM the daemon exited {status}"
            )),
            Err(e) => ledger.violation(format!("lifetime {number}: SIGTERM: {e}")),
        }
        ledger.stat(|s| s.clean_stops += 1);
    } else {
        d.kill();
        ledger.stat(|s| s.kills += 1);
    }
}

/// The final lifetime, once the producers are done: waits (at most DRAIN_MAX, and
/// not past a new violation) until every event is settled everywhere, then records
/// and purges every dead letter.
fn drain(l: &Lifetime, ledger: &Ledger, rng: &mut SmallRng, progress: Option<Duration>) {
    let deadline = Instant::now() + DRAIN_MAX;
    let violations = ledger.stats().violations;
    let mut last_progress = Instant::now();
    // Not clients::connect: its failure waits for the end of the lifetime, which comes
    // after the drain.
    let mut client = match Client::connect(&l.socket, Role::Control, "soak-drain") {
        Ok(c) => c,
        Err(e) => return ledger.violation(format!("drain: {e}")),
    };
    let give_up = |what: String, doc: &serde_json::Value| {
        if Instant::now() > deadline {
            ledger.violation(format!("not drained after {DRAIN_MAX:?}: {what}: {doc}"));
            return true;
        }
        // A violation is already recorded: the run fails whatever follows.
        ledger.stats().violations > violations
    };
    loop {
        let doc = match control::status(&mut client, ledger) {
            Ok(doc) => doc,
            Err(e) => return ledger.violation(format!("drain: {e}")),
        };
        let (used, waiting) = (
            &doc["ring"]["used_slots"],
            &doc["dead_letters"]["events_waiting_for_room"],
        );
        if used == 0 && waiting == 0 {
            break;
        }
        if progress.is_some_and(|every| last_progress.elapsed() >= every) {
            last_progress = Instant::now();
            println!("draining: ring used_slots {used}, dead letters waiting for room {waiting}");
        }
        if give_up("events unsettled".into(), &doc) {
            return;
        }
        std::thread::sleep(DRAIN_POLL_INTERVAL);
    }
    // Nothing is unsettled: no new dead letter can come. Record (and purge) every one.
    loop {
        match control::sweep_dead_letters(&mut client, ledger, rng, false) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return ledger.violation(format!("drain: {e}")),
        }
        if give_up("dead letters still listed".into(), &serde_json::Value::Null) {
            return;
        }
        // Rows marked for replay stay listed until picky settles them.
        std::thread::sleep(DRAIN_POLL_INTERVAL);
    }
    control::sample_rss(l, ledger);
}

/// A line of progress, and the violations found since the last (as they are found:
/// a long run that is stopped early has said what it saw).
fn progress(started: Instant, ledger: &Ledger, printed: &mut usize) {
    let s = ledger.stats();
    println!(
        "[{:>6.0} s] lifetimes {}, kills {}, stored {}, deliveries {}, dead letters {}, \
         full {}, RSS max {} KiB, violations {}",
        started.elapsed().as_secs_f64(),
        s.lifetimes,
        s.kills,
        s.events_acked,
        s.deliveries,
        s.dead_letters,
        s.full_answers,
        s.rss_max_bytes / 1024,
        s.violations
    );
    for v in ledger.violations().iter().skip(*printed) {
        println!("  VIOLATION: {v}");
        *printed += 1;
    }
}
