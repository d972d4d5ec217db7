//! A deterministic simulation of the whole daemon, in the spirit of TigerBeetle's VOPR
//! and FoundationDB's simulator: one seed drives simulated time, producers (single
//! publishes, batches, idempotency keys, cut connections and retries), subscribers
//! (confirm, nak, working, reject, stalls, disconnects), a small ring that fills, dead
//! letters and a dead-letter area that fills (an operator purges it), recovery mode, process crashes and power cuts of the medium (flush mode:
//! each unfenced word survives or not; disk mode: each unsynced page survives whole or
//! not, in any order). An oracle checks as it goes and at the end:
//!
//! - no event is delivered that was never published, or that its producer was told
//!   was not stored; every `Stored` names the seq its event is delivered with;
//! - a retry with an idempotency key gets the original seq;
//! - per subscription, a delivery not flagged redelivered has a seq above every
//!   earlier delivery, and the replay after a crash is flagged and comes before
//!   `RecoveryDone`;
//! - every power-cut image opens with no problem found, and holds every event that
//!   was acknowledged and is not yet settled by every subscription meant for it;
//! - at the end (faults stopped, everything settled): every acknowledged event is
//!   confirmed by, or a dead letter of, each subscription meant for it; the dead
//!   letters are exactly rejected events and events delivered their maximum number
//!   of times; nothing is left in the ring;
//! - the daemon's memory (its buffers and tables) does not grow.
//!
//! A failure names the seed and the step; the same seed replays it exactly.

mod clients;
mod end;
mod faults;

use super::{hello, SimClient, SimNode};
use crate::delivery::DaemonConfig;
use crate::event::{Seq, Severity};
use crate::log::{Log, LogConfig};
use crate::pmem::sim::SimMedium;
use crate::pmem::sim_disk::SimDisk;
use crate::pmem::Medium;
use crate::protocol::{
    Event, EventBatch, Frame, Pattern, Patterns, Role, Subscribe, SubscriptionMode, Topic,
};
use crate::reactor::sim::SimNet;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// What one simulation does.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// Every choice derives from it.
    pub seed: u64,
    /// Steps of load and faults (each a few daemon turns), before the settling phase.
    pub steps: u64,
    /// The medium: a file synced to disk (page-granular power cuts) or emulated
    /// persistent memory (word-granular).
    pub disk: bool,
    /// Power-cut images checked without a restart, per step on average.
    pub probes_per_step: f64,
}

/// What a simulation saw.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SimulatorReport {
    /// The seed.
    pub seed: u64,
    /// The medium.
    pub disk: bool,
    /// Steps run (load, then settling).
    pub steps: u64,
    /// Events published (first attempts).
    pub published: u64,
    /// Distinct events acknowledged `Stored`.
    pub stored: u64,
    /// Deliveries received.
    pub delivered: u64,
    /// Of them, flagged redelivered.
    pub redelivered: u64,
    /// Idempotent retries answered with the original seq.
    pub deduplicated: u64,
    /// Publishes answered `full`.
    pub full: u64,
    /// Dead letters at the end.
    pub dead_letters: u64,
    /// Times the oracle emptied the dead-letter area, as an operator would.
    pub purges: u64,
    /// Process crashes (everything written survives), each followed by a restart.
    pub process_crashes: u64,
    /// Power cuts (what was not made durable may be lost), each followed by a restart.
    pub power_cuts: u64,
    /// Crash states checked: every restart, and every power-cut image probed.
    pub crash_states: u64,
}

/// A violated invariant: the seed and step reproduce it.
#[derive(Debug)]
pub struct SimulatorFailure {
    /// The seed.
    pub seed: u64,
    /// The medium.
    pub disk: bool,
    /// The step where it was seen.
    pub step: u64,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for SimulatorFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "simulation failed at step {} (seed {}, {} mode): {}\nreplay: cargo run --release --example simulate -- --seed {} {}",
            self.step,
            self.seed,
            if self.disk { "disk" } else { "flush" },
            self.message,
            self.seed,
            if self.disk { "--disk" } else { "" }
        )
    }
}

/// A medium the simulator can crash.
pub trait Crashable: Medium + Sized {
    /// A fresh medium of `bytes`.
    fn fresh(bytes: usize) -> Self;
    /// A medium holding `image`, all durable (what a restart finds).
    fn restored(image: Vec<u8>) -> Self;
    /// What a power cut now could leave.
    fn power_cut_image(&self, rng: &mut SmallRng) -> Vec<u8>;
    /// What a process crash leaves: everything written.
    fn process_crash_image(&self) -> Vec<u8> {
        self.bytes().to_vec()
    }
}

impl Crashable for SimMedium {
    fn fresh(bytes: usize) -> Self {
        SimMedium::new(bytes)
    }
    fn restored(image: Vec<u8>) -> Self {
        SimMedium::from_image(image)
    }
    fn power_cut_image(&self, rng: &mut SmallRng) -> Vec<u8> {
        self.state().crash_image(rng, 0.5)
    }
}

impl Crashable for SimDisk {
    fn fresh(bytes: usize) -> Self {
        SimDisk::new(bytes)
    }
    fn restored(image: Vec<u8>) -> Self {
        SimDisk::from_image(image)
    }
    fn power_cut_image(&self, rng: &mut SmallRng) -> Vec<u8> {
        self.crash_image(rng, 0.5)
    }
}

/// Runs one simulation.
pub fn simulate(config: &SimulatorConfig) -> Result<SimulatorReport, SimulatorFailure> {
    if config.disk {
        World::<SimDisk>::new(config).run()
    } else {
        World::<SimMedium>::new(config).run()
    }
}

const REGION_BYTES: usize = 128 << 10;
const SOCKET: &str = "/sim/herald.sock";
const TOPICS: [&str; 3] = ["fs.disk.error", "fs.quota", "net.link"];
const PRODUCERS: usize = 3;
/// (name, pattern, automatic recovery, max deliveries)
const SUBSCRIPTIONS: [(&str, &str, bool, u16); 3] = [
    ("all", ">", true, 4),
    ("fs", "fs.>", false, 3),
    ("net", "net.>", true, 5),
];
const TURNS_PER_STEP: usize = 3;

fn daemon_config() -> DaemonConfig {
    DaemonConfig {
        connections_max: 8,
        dedupe_records: 4096,
        // Fast redelivery, so deadlines and backoffs happen within a simulation.
        redelivery: crate::delivery::RedeliveryConfig {
            ack_deadline: Duration::from_millis(20),
            max_deliveries: 4,
            backoff: Duration::from_millis(2),
            backoff_max: Duration::from_millis(20),
        },
        ..DaemonConfig::default()
    }
}

fn log_config() -> LogConfig {
    LogConfig {
        slot_bytes: 128,
        reserve_slots: Some(16),
        subscription_entries: 8,
        payload_bytes_max: 1024,
        dead_letter_slots: Some(256),
        rule_entries: 0,
    }
}

/// Where an event's identity lives: its payload is `producer, number`.
fn payload_of(producer: usize, number: u64) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[..8].copy_from_slice(&(producer as u64).to_le_bytes());
    p[8..].copy_from_slice(&number.to_le_bytes());
    p
}

fn identity_of(payload: &[u8]) -> Option<(usize, u64)> {
    let p: &[u8; 16] = payload.get(..16)?.try_into().ok()?;
    let producer = u64::from_le_bytes(p[..8].try_into().ok()?) as usize;
    let number = u64::from_le_bytes(p[8..].try_into().ok()?);
    Some((producer, number))
}

/// An event as the oracle knows it.
#[derive(Clone, Debug)]
struct Known {
    topic: usize,
    key: bool,
    /// Told stored, with this seq (None: not known yet, or never).
    seq: Option<u64>,
    /// Told not stored (`full`, a refused batch), and never retried since.
    refused: bool,
}

/// A publish waiting for its answer.
#[derive(Clone, Debug)]
enum Pending {
    One { correlation: u64, number: u64 },
    Batch { correlation: u64, numbers: Vec<u64> },
}

struct Producer {
    client: Option<SimClient>,
    ready: bool,
    next_correlation: u64,
    pending: VecDeque<Pending>,
    /// Keyed events whose answer was lost with a connection: published again.
    retry: Vec<u64>,
}

struct Subscriber {
    client: Option<SimClient>,
    /// Settles nothing until this step (a stalled consumer: the ring fills).
    stalled_until: u64,
    subscribed: bool,
    recovering: bool,
    /// Held deliveries to settle later: (seq, settle at step).
    held: Vec<(u64, u64)>,
    /// Every seq delivered, with the highest delivery count seen.
    delivered: BTreeMap<u64, u16>,
    /// The highest seq delivered (unflagged deliveries must exceed it).
    max_delivered: u64,
    confirmed: BTreeSet<u64>,
    rejected: BTreeSet<u64>,
}

/// Messages a client received, owned.
#[derive(Clone, Debug)]
enum Msg {
    HelloOk,
    Stored {
        correlation: u64,
        first: u64,
        last: u64,
        count: u16,
    },
    Error {
        correlation: u64,
        code: u16,
        message: String,
    },
    Subscribed {
        recovering: bool,
    },
    Deliver {
        seq: u64,
        redelivered: bool,
        count: u16,
        topic: String,
        payload: Vec<u8>,
    },
    RecoveryDone,
    Status(String),
    // Shown in failure messages (through Debug).
    #[allow(dead_code)]
    Other(String),
}

fn drain(client: &mut SimClient, out: &mut Vec<Msg>) -> bool {
    client.receive(|f| {
        out.push(match f {
            Frame::HelloOk(_) => Msg::HelloOk,
            Frame::Stored {
                correlation,
                first_seq,
                last_seq,
                count,
            } => Msg::Stored {
                correlation,
                first: first_seq.0,
                last: last_seq.0,
                count,
            },
            Frame::Error {
                correlation,
                code,
                message,
            } => Msg::Error {
                correlation,
                code: code as u16,
                message: message.to_string(),
            },
            Frame::Subscribed { mode, .. } => Msg::Subscribed {
                recovering: mode == SubscriptionMode::Recovering,
            },
            Frame::Deliver(d) => Msg::Deliver {
                seq: d.seq.0,
                redelivered: d.redelivered,
                count: d.delivery_count,
                topic: String::from_utf8_lossy(d.event.topic.as_bytes()).into_owned(),
                payload: d.event.payload.to_vec(),
            },
            Frame::RecoveryDone => Msg::RecoveryDone,
            Frame::StatusReply { json } => Msg::Status(json.to_string()),
            other => Msg::Other(format!("{other:?}")),
        })
    });
    client.is_closed()
}

struct World<M: Crashable> {
    config: SimulatorConfig,
    rng: SmallRng,
    net: SimNet,
    node: Option<SimNode<M>>,
    producers: Vec<Producer>,
    subscribers: Vec<Subscriber>,
    /// Every event ever published, by (producer, number).
    events: BTreeMap<(usize, u64), Known>,
    /// Which event each acknowledged seq is.
    seqs: BTreeMap<u64, (usize, u64)>,
    step: u64,
    report: SimulatorReport,
    next_number: Vec<u64>,
    footprint: Option<usize>,
    msgs: Vec<Msg>,
    /// Every dead letter listed so far (some since purged), by subscription.
    dead_seen: BTreeMap<String, BTreeSet<u64>>,
}

impl<M: Crashable> World<M> {
    fn new(config: &SimulatorConfig) -> World<M> {
        let net = SimNet::new(64 * 1024, 16 * 1024);
        net.set_sync_delay(Duration::from_micros(300));
        World {
            config: config.clone(),
            rng: SmallRng::seed_from_u64(config.seed),
            net,
            node: None,
            producers: (0..PRODUCERS)
                .map(|_| Producer {
                    client: None,
                    ready: false,
                    next_correlation: 1,
                    pending: VecDeque::new(),
                    retry: Vec::new(),
                })
                .collect(),
            subscribers: SUBSCRIPTIONS
                .iter()
                .map(|_| Subscriber {
                    client: None,
                    stalled_until: 0,
                    subscribed: false,
                    recovering: false,
                    held: Vec::new(),
                    delivered: BTreeMap::new(),
                    max_delivered: 0,
                    confirmed: BTreeSet::new(),
                    rejected: BTreeSet::new(),
                })
                .collect(),
            events: BTreeMap::new(),
            seqs: BTreeMap::new(),
            step: 0,
            report: SimulatorReport {
                seed: config.seed,
                disk: config.disk,
                ..SimulatorReport::default()
            },
            next_number: vec![0; PRODUCERS],
            footprint: None,
            msgs: Vec::new(),
            dead_seen: BTreeMap::new(),
        }
    }

    fn fail(&self, message: impl Into<String>) -> SimulatorFailure {
        SimulatorFailure {
            seed: self.config.seed,
            disk: self.config.disk,
            step: self.step,
            message: message.into(),
        }
    }

    fn run(mut self) -> Result<SimulatorReport, SimulatorFailure> {
        let log = Log::format(M::fresh(REGION_BYTES), &log_config(), 7)
            .map_err(|e| self.fail(format!("format: {e}")))?;
        self.start(log, true)?;
        // Every subscription exists before anything is published: every event is meant
        // for each whose pattern matches it.
        for s in 0..self.subscribers.len() {
            self.connect_subscriber(s);
        }
        for _ in 0..40 {
            self.turns(1)?;
            if self.subscribers.iter().all(|s| s.subscribed) {
                break;
            }
        }
        if !self.subscribers.iter().all(|s| s.subscribed) {
            return Err(self.fail("the subscriptions were not attached"));
        }
        for step in 0..self.config.steps {
            self.step = step;
            self.load_step()?;
            self.faults()?;
            if step == self.config.steps / 4 {
                self.footprint = self.node.as_ref().map(|n| n.core().footprint_bytes());
            }
        }
        self.settle()?;
        self.final_checks()?;
        Ok(self.report)
    }

    fn start(&mut self, log: Log<M>, clean: bool) -> Result<(), SimulatorFailure> {
        self.net = SimNet::new(64 * 1024, 16 * 1024);
        // From a quick device to a slow disk: the slower the sync, the more turns run
        // while it is outstanding, and the more a power cut can catch unsynced.
        let sync_us = [30, 300, 1_000, 4_000][self.rng.gen_range(0..4)];
        self.net.set_sync_delay(Duration::from_micros(sync_us));
        let node = SimNode::start(&self.net, SOCKET, daemon_config(), log, clean)
            .map_err(|e| self.fail(format!("start: {e}")))?;
        self.node = Some(node);
        Ok(())
    }

    fn node(&mut self) -> &mut SimNode<M> {
        self.node.as_mut().expect("a node is running")
    }

    fn turns(&mut self, n: usize) -> Result<(), SimulatorFailure> {
        for _ in 0..n {
            if let Err(e) = self.node().turn() {
                return Err(self.fail(format!("the daemon stopped: {e}")));
            }
            // Power cuts probed between any two turns, not only between steps.
            let chance = self.config.probes_per_step / TURNS_PER_STEP as f64;
            let mut left = chance;
            while left > 0.0 {
                if self.rng.gen_bool(left.min(1.0)) {
                    self.probe_power_cut()?;
                }
                left -= 1.0;
            }
            if self.rng.gen_bool(0.003) {
                // A connection cut with answers on the wire: its keyed publishes are
                // retried and must be recognised.
                let p = self.rng.gen_range(0..self.producers.len());
                if let Some(mut c) = self.producers[p].client.take() {
                    c.close();
                    self.connect_producer(p);
                }
            }
            self.receive_all()?;
        }
        Ok(())
    }
}
