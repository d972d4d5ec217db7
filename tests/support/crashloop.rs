//! The daemon SIGKILL loop, shared by `tests/daemon_crash.rs` and `tools/crashloop.rs`.
//!
//! Each cycle starts the real daemon, runs a pipelining producer, three durable
//! subscribers and a work-queue group of two, and SIGKILLs the daemon after a random
//! number of acknowledged events.
//! A final cycle without a kill drains everything.
//! - Each lifetime begins with a routing rule change (rule 1: `crash.odd` delivered to
//!   every subscription by name, or left to their filters, in turn), answered before
//!   the producer starts: `even` is meant to get the odd events stored under the
//!   first kind of version too, and only those.
//!
//! - The producer numbers its events and gives each the idempotency key of its number.
//!   Publishes whose `stored` was not read before a kill are published again, with the
//!   same keys, first thing in the next cycle.
//! - `all` (every event, recovers by sending `Recovered` after `RecoveryDone`) and
//!   `even` (half the events, automatic recovery) confirm everything.
//! - `picky` (every event, a short acknowledgement deadline, at most 3 deliveries)
//!   rejects some events, never settles others, lets the deadline pass once for some
//!   and `Nak`s once for others before confirming them.
//! - `crew-1` and `crew-2` are the members of the group `crew` (every event): they
//!   confirm everything they are given; what one held at a kill may come to the other.
//!
//! Checked afterwards:
//! - every event that got `stored` was delivered to each subscriber it matches (for
//!   `even`, also the odd ones the rule version that routed them sent it), and `even`
//!   got no odd event a version left to its filters;
//! - no number was stored twice (the retries got their original sequence numbers);
//! - for `all` and `even`, within each daemon lifetime, deliveries are in strictly
//!   increasing order, and after each restart the events delivered again come first
//!   and are at most twice the window;
//! - `picky`'s dead letters are exactly the events it rejected or never settled, each
//!   once, with the right reason; everything else it confirmed;
//! - every stored event was confirmed by one of the crew, and each member's first
//!   deliveries in a lifetime came in order;
//! - every delivered event is one that was published, with its content intact.

#[path = "daemon.rs"]
mod daemon;
#[path = "treatment.rs"]
mod treatment;

use herald::client::{Client, Incoming, SubscribeOptions};
use herald::protocol::{Event, Role, Seq, Severity, Topic};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use treatment::{Settled, Treatment};

const WINDOW: u32 = 16;
/// How often a subscriber of the final lifetime, with nothing to read, looks at its
/// stop flag: a poll interval; the drain's deadline bounds the whole wait.
const STOP_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Longest a subscriber waits for the daemon's next frame while the daemon runs (a
/// kill ends the wait at once: the connection closes). A failure detector: past it,
/// deliveries stalled.
const STALL_MAX: Duration = Duration::from_secs(30);
/// How long the final lifetime gives every event to be settled: a failure detector.
const DRAIN_MAX: Duration = Duration::from_secs(60);
const PICKY_DEADLINE_MS: u32 = 60;
const PICKY_MAX_DELIVERIES: u16 = 3;

/// How `picky` treats an event, by its number.
fn treatment(counter: u64) -> Treatment {
    match counter % 10 {
        3 => Treatment::Reject,
        5 => Treatment::NeverSettle,
        7 => Treatment::IgnoreOnce,
        9 => Treatment::NakOnce,
        _ => Treatment::Confirm,
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Who {
    All,
    Even,
    Picky,
    Crew1,
    Crew2,
}

impl Who {
    const EVERY: [Who; 5] = [Who::All, Who::Even, Who::Picky, Who::Crew1, Who::Crew2];

    /// The client's name.
    fn name(self) -> &'static str {
        match self {
            Who::All => "all",
            Who::Even => "even",
            Who::Picky => "picky",
            Who::Crew1 => "crew-1",
            Who::Crew2 => "crew-2",
        }
    }

    /// Its durable subscription's name.
    fn durable(self) -> &'static str {
        if self.crew() {
            "crew"
        } else {
            self.name()
        }
    }

    fn crew(self) -> bool {
        matches!(self, Who::Crew1 | Who::Crew2)
    }

    fn pattern(self) -> &'static str {
        match self {
            Who::Even => "crash.even",
            _ => ">",
        }
    }

    /// Whether event `counter` is meant for it, when the rule version that routed the
    /// event delivered odd events to every subscription by name (`odd_to_all`).
    fn wants(self, counter: u64, odd_to_all: bool) -> bool {
        self != Who::Even || counter.is_multiple_of(2) || odd_to_all
    }

    /// The events this subscriber must have confirmed by the end (a crew member's are
    /// the group's: checked on the two together).
    fn must_confirm(self, counter: u64, odd_to_all: bool) -> bool {
        !self.crew()
            && self.wants(counter, odd_to_all)
            && (self != Who::Picky || treatment(counter).dead_reason().is_none())
    }

    fn options(self) -> SubscribeOptions {
        SubscribeOptions {
            // Picky's given-up events sit in its window for their deliveries' worth of
            // deadlines: a wider window keeps it from falling far behind.
            window_events: if self == Who::Picky {
                4 * WINDOW
            } else {
                WINDOW
            },
            automatic_recovery: self != Who::All,
            ack_deadline_ms: if self == Who::Picky {
                PICKY_DEADLINE_MS
            } else {
                0
            },
            max_deliveries: if self == Who::Picky {
                PICKY_MAX_DELIVERIES
            } else {
                0
            },
            group: self.crew(),
            ..SubscribeOptions::default()
        }
    }
}

/// One delivery as a subscriber saw it.
#[derive(Clone, Copy, Debug)]
struct Seen {
    lifetime: u64,
    seq: u64,
    counter: u64,
    confirmed: bool,
    /// Flagged redelivered, or not its first delivery.
    repeat: bool,
}

/// What a run covered.
#[derive(Debug, Default)]
pub struct Summary {
    /// SIGKILLs.
    pub kills: u64,
    /// Events acknowledged with `stored`.
    pub stored: u64,
    /// Deliveries (all subscribers).
    pub delivered: u64,
    /// Deliveries that were repeats after a restart (`all` and `even`).
    pub repeats: u64,
    /// Publishes sent again after a kill, with their idempotency keys.
    pub retried: u64,
    /// Publishes the daemon answered from its idempotency window (retries whose
    /// first attempt was stored), as its status counted them.
    pub deduplicated: u64,
    /// Redeliveries `picky` saw within one lifetime (deadline, nak).
    pub redeliveries: u64,
    /// `picky`'s dead letters at the end.
    pub dead_letters: u64,
    /// Events both crew members were given (one held it at a kill, the other got it).
    pub handed_over: u64,
    /// Routing rule changes made (one per lifetime).
    pub rule_changes: u64,
    /// Odd events `even` got because a rule version sent them.
    pub routed_to_even: u64,
}

fn topic_for(counter: u64) -> &'static str {
    if counter.is_multiple_of(2) {
        "crash.even"
    } else {
        "crash.odd"
    }
}

fn key_for(counter: u64) -> [u8; 8] {
    counter.to_le_bytes()
}

fn publish(client: &mut Client, counter: u64) -> bool {
    let payload = counter.to_le_bytes();
    let key = key_for(counter);
    let event = Event {
        topic: Topic::new(topic_for(counter).as_bytes()).unwrap(),
        severity: Severity::Info,
        source: "",
        flags: 0,
        key: &key,
        payload: &payload,
    };
    client.send_publish(&event).is_ok()
}

/// Publishes `retry` first (numbers whose `stored` was lost), then new numbers; sends
/// each `stored` as (seq, counter, was a retry). Returns what is unanswered at the end:
/// after the daemon died, or after `cut` asked it to drop its connection with
/// publishes sent and their answers unread (the lost-acknowledgement case).
fn producer(
    socket: std::path::PathBuf,
    next: Arc<AtomicU64>,
    retry: VecDeque<u64>,
    stored: mpsc::Sender<(u64, u64, bool)>,
    cut: Arc<AtomicBool>,
) -> VecDeque<u64> {
    let Ok(mut client) = Client::connect(&socket, Role::Producer, "crash-producer") else {
        return retry;
    };
    let retries = retry.len();
    let mut in_flight: VecDeque<u64> = VecDeque::new();
    let mut to_retry = retry;
    let mut answered = 0usize;
    loop {
        while in_flight.len() < 32 {
            let counter = to_retry
                .pop_front()
                .unwrap_or_else(|| next.fetch_add(1, Ordering::Relaxed));
            in_flight.push_back(counter);
            if !publish(&mut client, counter) {
                in_flight.extend(to_retry);
                return in_flight;
            }
        }
        if client.flush().is_err() || cut.load(Ordering::Relaxed) {
            in_flight.extend(to_retry);
            return in_flight;
        }
        match client.recv_stored() {
            Ok(s) => {
                let counter = in_flight.pop_front().unwrap();
                let was_retry = answered < retries;
                answered += 1;
                if stored.send((s.first_seq.0, counter, was_retry)).is_err() {
                    in_flight.extend(to_retry);
                    return in_flight;
                }
            }
            Err(_) => {
                in_flight.extend(to_retry);
                return in_flight;
            }
        }
    }
}

fn counter_of(payload: &[u8], seq: Seq, topic: &[u8]) -> Result<u64, String> {
    let counter = u64::from_le_bytes(
        payload
            .try_into()
            .map_err(|_| format!("payload of {} is not a counter", seq.0))?,
    );
    if topic != topic_for(counter).as_bytes() {
        return Err(format!(
            "event {} has topic {topic:?}, not its counter's",
            seq.0
        ));
    }
    Ok(counter)
}

/// One subscriber for one lifetime. In the final lifetime it runs until `stop`.
fn subscriber(
    socket: std::path::PathBuf,
    who: Who,
    lifetime: u64,
    stop: Option<Arc<AtomicBool>>,
    subscribed: mpsc::Sender<()>,
) -> Result<Vec<Seen>, String> {
    let name = who.name();
    let mut seen = Vec::new();
    let Ok(mut client) = Client::connect(&socket, Role::Subscriber, name) else {
        return Ok(seen);
    };
    if client
        .subscribe_with(who.durable(), &[who.pattern()], &who.options())
        .is_err()
    {
        return Ok(seen);
    }
    let _ = subscribed.send(());
    loop {
        if stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Ok(seen);
        }
        let timeout = Some(if stop.is_some() {
            STOP_POLL_INTERVAL
        } else {
            STALL_MAX
        });
        let (seq, counter, redelivered, count) = match client.next_incoming(timeout) {
            Ok(Some(Incoming::Deliver(d))) => (
                d.seq,
                counter_of(d.event.payload, d.seq, d.event.topic.as_bytes())
                    .map_err(|e| format!("{name}: {e}"))?,
                d.redelivered,
                d.delivery_count,
            ),
            Ok(Some(Incoming::RecoveryDone)) => {
                if who == Who::All && client.recovered().is_err() {
                    return Ok(seen);
                }
                continue;
            }
            Ok(Some(other)) => return Err(format!("{name}: unexpected {other:?}")),
            Ok(None) if stop.is_some() => continue,
            Ok(None) => {
                return Err(format!(
                    "{name}: nothing from the daemon for {STALL_MAX:?} in lifetime {lifetime}"
                ))
            }
            Err(_) => return Ok(seen),
        };
        let action = if who == Who::Picky {
            treatment(counter)
        } else {
            Treatment::Confirm
        };
        let first = !redelivered && count == 1;
        let Ok(settled) = treatment::settle(&mut client, action, seq, first, 20, || {}) else {
            return Ok(seen);
        };
        let confirmed = settled == Settled::Confirmed;
        seen.push(Seen {
            lifetime,
            seq: seq.0,
            counter,
            confirmed,
            repeat: !first,
        });
        if client.flush().is_err() {
            return Ok(seen);
        }
    }
}

/// `picky`'s dead letters: seq -> reason, every page of them.
fn dead_letters(socket: &std::path::Path) -> Result<BTreeMap<u64, String>, String> {
    let mut control =
        Client::connect(socket, Role::Control, "crash-check").map_err(|e| e.to_string())?;
    let mut all = BTreeMap::new();
    let mut after = 0u64;
    loop {
        let request = format!(r#"{{"op":"dead.list","subscription":"picky","after_seq":{after}}}"#);
        let answer = control.admin(&request).map_err(|e| e.to_string())?;
        let doc: serde_json::Value = serde_json::from_str(&answer).map_err(|e| e.to_string())?;
        let rows = doc["dead_letters"]
            .as_array()
            .ok_or_else(|| format!("dead.list answered {answer}"))?;
        if rows.is_empty() {
            return Ok(all);
        }
        for r in rows {
            let seq = r["seq"].as_u64().unwrap_or(0);
            if all
                .insert(seq, r["reason"].as_str().unwrap_or("").to_owned())
                .is_some()
            {
                return Err(format!("dead letter {seq} listed twice"));
            }
            after = seq;
        }
    }
}

/// Every acknowledged number and the one sequence number it was stored under.
#[derive(Default)]
struct Ledger {
    /// seq -> number.
    stored: BTreeMap<u64, u64>,
    /// number -> seq.
    seq_of: BTreeMap<u64, u64>,
}

impl Ledger {
    fn record(
        &mut self,
        seq: u64,
        counter: u64,
        was_retry: bool,
        summary: &mut Summary,
    ) -> Result<(), String> {
        if was_retry {
            summary.retried += 1;
        }
        match self.seq_of.insert(counter, seq) {
            Some(old) if old != seq => Err(format!(
                "number {counter} stored twice: as {old} and as {seq} (idempotent retry failed)"
            )),
            Some(_) => Ok(()),
            None => {
                self.stored.insert(seq, counter);
                Ok(())
            }
        }
    }
}

/// The daemon's count of publishes answered from its idempotency window (a status
/// round trip: also gives the daemon a turn to store what it has received).
fn answered_from_window(socket: &std::path::Path) -> Result<u64, String> {
    let mut control =
        Client::connect(socket, Role::Control, "crash-check").map_err(|e| e.to_string())?;
    let status: serde_json::Value =
        serde_json::from_str(&control.status().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    Ok(status["idempotency"]["publishes_answered_from_window"]
        .as_u64()
        .unwrap_or(0))
}

/// Waits until the ring is empty (every subscription settled every event): asks for
/// status `daemon::STATUS_POLL_INTERVAL` apart, failing at `deadline`.
fn wait_until_settled(socket: &std::path::Path, deadline: Instant) -> Result<(), String> {
    let mut control =
        Client::connect(socket, Role::Control, "crash-check").map_err(|e| e.to_string())?;
    loop {
        let status: serde_json::Value =
            serde_json::from_str(&control.status().map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        if status["ring"]["used_slots"] == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("events still unsettled at the end: {status}"));
        }
        std::thread::sleep(daemon::STATUS_POLL_INTERVAL);
    }
}

/// Runs `cycles` kill cycles and a final drain; `Err` says what broke, with the seed.
/// Gives rule 1 its version for `lifetime` (created in lifetime 0): odd events to
/// every subscription by name in even lifetimes, to their filters in odd ones.
/// Returns (the first seq it routes, whether it sends odd events to all).
fn route_lifetime(socket: &std::path::Path, lifetime: u64) -> Result<(u64, bool), String> {
    let mut c = Client::connect(socket, Role::Control, "crash-rules").map_err(|e| e.to_string())?;
    let to_all = lifetime.is_multiple_of(2);
    let mut request = if lifetime == 0 {
        serde_json::json!({ "op": "rules.add", "topic": "crash.odd" })
    } else {
        serde_json::json!({ "op": "rules.set", "id": 1 })
    };
    if to_all {
        let names: Vec<&str> = Who::EVERY.iter().map(|w| w.durable()).collect();
        request["action"] = "deliver".into();
        request["to"] = serde_json::json!(names.into_iter().collect::<BTreeSet<_>>());
    } else {
        request["action"] = "filters".into();
    }
    let answer: serde_json::Value =
        serde_json::from_str(&c.admin(&request.to_string()).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let from = answer["rule"]["from_seq"]
        .as_u64()
        .ok_or_else(|| format!("rule change in lifetime {lifetime} refused: {answer}"))?;
    Ok((from, to_all))
}

pub fn run(cycles: u64, seed: u64) -> Result<Summary, String> {
    let fail = |m: String| format!("seed {seed}: {m}");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut rng = SmallRng::seed_from_u64(seed);
    let next = Arc::new(AtomicU64::new(0));
    let mut ledger = Ledger::default();
    let mut seen: BTreeMap<&str, Vec<Seen>> = BTreeMap::new();
    let mut retry: VecDeque<u64> = VecDeque::new();
    let mut summary = Summary::default();
    // Rule 1's versions: (first seq routed, odd events to all).
    let mut versions: Vec<(u64, bool)> = Vec::new();
    for lifetime in 0..=cycles {
        let d = daemon::Daemon::start(dir.path(), &treatment::DAEMON_ARGS);
        let socket = d.socket();
        let last = lifetime == cycles;
        let stop = last.then(|| Arc::new(AtomicBool::new(false)));
        let (subscribed_tx, subscribed) = mpsc::channel();
        let subs: Vec<_> = Who::EVERY
            .iter()
            .map(|&who| {
                let (socket, stop, tx) = (socket.clone(), stop.clone(), subscribed_tx.clone());
                std::thread::spawn(move || (who, subscriber(socket, who, lifetime, stop, tx)))
            })
            .collect();
        drop(subscribed_tx);
        // The durable subscriptions exist before anything is published, so every
        // event is intended for them.
        for _ in Who::EVERY {
            subscribed.recv().map_err(|_| {
                fail(format!(
                    "a subscriber failed to subscribe in lifetime {lifetime}"
                ))
            })?;
        }
        versions.push(route_lifetime(&socket, lifetime).map_err(fail)?);
        summary.rule_changes += 1;
        if last {
            // Only the publishes whose answer a kill took are sent again, then
            // everything drains.
            let mut p = Client::connect(&socket, Role::Producer, "crash-producer")
                .map_err(|e| fail(e.to_string()))?;
            for counter in std::mem::take(&mut retry) {
                if !publish(&mut p, counter) {
                    return Err(fail("final retry could not be sent".into()));
                }
                p.flush().map_err(|e| fail(e.to_string()))?;
                let s = p.recv_stored().map_err(|e| fail(e.to_string()))?;
                ledger
                    .record(s.first_seq.0, counter, true, &mut summary)
                    .map_err(fail)?;
            }
            summary.deduplicated += answered_from_window(&socket).map_err(fail)?;
            let deadline = Instant::now() + DRAIN_MAX;
            let settled = wait_until_settled(&socket, deadline);
            let dead = dead_letters(&socket).map_err(fail)?;
            stop.as_ref()
                .expect("last lifetime")
                .store(true, Ordering::Relaxed);
            for s in subs {
                let (who, result) = s.join().unwrap();
                seen.entry(who.name())
                    .or_default()
                    .extend(result.map_err(fail)?);
            }
            settled.map_err(fail)?;
            for (seq, counter) in &ledger.stored {
                let Some(reason) = treatment(*counter).dead_reason() else {
                    continue;
                };
                match dead.get(seq) {
                    Some(r) if r == reason => {}
                    Some(r) => {
                        return Err(fail(format!(
                            "dead letter {seq} has reason {r}, expected {reason}"
                        )))
                    }
                    None => {
                        return Err(fail(format!(
                            "event {seq} should be a dead letter of picky ({reason})"
                        )))
                    }
                }
            }
            if let Some(extra) = dead.keys().find(|s| {
                ledger
                    .stored
                    .get(s)
                    .is_none_or(|c| treatment(*c).dead_reason().is_none())
            }) {
                return Err(fail(format!(
                    "event {extra} is a dead letter but picky never gave it up"
                )));
            }
            summary.dead_letters = dead.len() as u64;
            drop(d);
            break;
        }
        let (tx, rx) = mpsc::channel();
        let cut = Arc::new(AtomicBool::new(false));
        let producer = {
            let (socket, next, retry) = (socket.clone(), next.clone(), std::mem::take(&mut retry));
            let cut = cut.clone();
            std::thread::spawn(move || producer(socket, next, retry, tx, cut))
        };
        let kill_after = rng.gen_range(20..400);
        for _ in 0..kill_after {
            match rx.recv() {
                Ok((seq, counter, was_retry)) => ledger
                    .record(seq, counter, was_retry, &mut summary)
                    .map_err(fail)?,
                Err(_) => {
                    return Err(fail(format!(
                        "producer stopped in lifetime {lifetime} before the kill"
                    )))
                }
            }
        }
        let mut producer = Some(producer);
        if rng.gen_bool(0.5) {
            // The producer's connection goes away with publishes unanswered; a status
            // round trip gives the daemon a turn to store what it received.
            cut.store(true, Ordering::Relaxed);
            retry = producer.take().expect("running").join().unwrap();
            summary.deduplicated += answered_from_window(&socket).map_err(fail)?;
        }
        d.kill();
        summary.kills += 1;
        if let Some(producer) = producer {
            retry = producer.join().unwrap();
        }
        // Replies read before the kill are acknowledgements too.
        for (seq, counter, was_retry) in rx.try_iter() {
            ledger
                .record(seq, counter, was_retry, &mut summary)
                .map_err(fail)?;
        }
        for s in subs {
            let (who, result) = s.join().unwrap();
            seen.entry(who.name())
                .or_default()
                .extend(result.map_err(fail)?);
        }
    }
    let stored = &ledger.stored;
    summary.stored = stored.len() as u64;
    // Whether the version that routed `seq` sent odd events to all.
    let odd_to_all = |seq: u64| {
        versions
            .iter()
            .rev()
            .find(|(from, _)| *from <= seq)
            .is_some_and(|(_, to_all)| *to_all)
    };
    for who in Who::EVERY {
        let name = who.name();
        let list = &seen[name];
        summary.delivered += list.len() as u64;
        for s in list {
            if stored.get(&s.seq) != Some(&s.counter) {
                return Err(fail(format!(
                    "{name}: delivered {} with number {}, which was not stored under that seq",
                    s.seq, s.counter
                )));
            }
            if !who.wants(s.counter, odd_to_all(s.seq)) {
                return Err(fail(format!(
                    "{name}: delivered {} (number {}), which the rule that routed it did not send it",
                    s.seq, s.counter
                )));
            }
        }
        let confirmed: BTreeSet<u64> = list.iter().filter(|s| s.confirmed).map(|s| s.seq).collect();
        for (seq, counter) in stored {
            if who.must_confirm(*counter, odd_to_all(*seq)) && !confirmed.contains(seq) {
                return Err(fail(format!(
                    "{name}: stored event {seq} (number {counter}) never confirmed"
                )));
            }
        }
        if who.crew() {
            for lifetime in 0..=cycles {
                let first: Vec<u64> = list
                    .iter()
                    .filter(|s| s.lifetime == lifetime && !s.repeat)
                    .map(|s| s.seq)
                    .collect();
                if first.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(fail(format!(
                        "{name}: first deliveries out of order in lifetime {lifetime}"
                    )));
                }
            }
            continue;
        }
        if who == Who::Picky {
            summary.redeliveries += list
                .windows(2)
                .filter(|w| w[0].lifetime == w[1].lifetime && w[1].seq <= w[0].seq)
                .count() as u64;
            continue;
        }
        let mut delivered_before: BTreeSet<u64> = BTreeSet::new();
        for lifetime in 0..=cycles {
            let this: Vec<&Seen> = list.iter().filter(|s| s.lifetime == lifetime).collect();
            if this.windows(2).any(|w| w[0].seq >= w[1].seq) {
                return Err(fail(format!("{name}: out of order in lifetime {lifetime}")));
            }
            let repeats = this
                .iter()
                .take_while(|s| delivered_before.contains(&s.seq))
                .count();
            if this[repeats..]
                .iter()
                .any(|s| delivered_before.contains(&s.seq))
            {
                return Err(fail(format!(
                    "{name}: lifetime {lifetime} repeated an event after a new one"
                )));
            }
            if repeats > 2 * WINDOW as usize {
                return Err(fail(format!("{name}: {repeats} events delivered again after restart {lifetime}; at most {} were unconfirmed", 2 * WINDOW)));
            }
            summary.repeats += repeats as u64;
            delivered_before.extend(this.iter().map(|s| s.seq));
        }
    }
    let crew = |who: Who| -> BTreeSet<u64> { seen[who.name()].iter().map(|s| s.seq).collect() };
    let crew_confirmed: BTreeSet<u64> = [Who::Crew1, Who::Crew2]
        .iter()
        .flat_map(|w| seen[w.name()].iter().filter(|s| s.confirmed).map(|s| s.seq))
        .collect();
    if let Some((seq, counter)) = stored.iter().find(|(s, _)| !crew_confirmed.contains(s)) {
        return Err(fail(format!(
            "crew: stored event {seq} (number {counter}) confirmed by neither member"
        )));
    }
    summary.routed_to_even = seen[Who::Even.name()]
        .iter()
        .filter(|s| s.counter % 2 == 1)
        .count() as u64;
    summary.handed_over = crew(Who::Crew1).intersection(&crew(Who::Crew2)).count() as u64;
    Ok(summary)
}
