//! The daemon SIGKILL loop, shared by `tests/daemon_crash.rs` and `tools/crashloop.rs`.
//!
//! Each cycle starts the real daemon, runs a pipelining producer (numbered events,
//! recording every `stored` reply) and two durable subscribers with different filters
//! (confirming each event after recording it), and SIGKILLs the daemon after a random
//! number of acknowledged events. A final cycle without a kill drains everything.
//!
//! Checked afterwards, per subscriber:
//! - every event that got `stored` and matches its filter was delivered at least once;
//! - within each daemon lifetime, deliveries are in strictly increasing order;
//! - after each restart, the events delivered again come first (replay before anything
//!   new) and are at most twice the window: only events whose confirmation the daemon
//!   had not yet made durable when the kill came (in flight, or confirmed during the
//!   daemon's last turn);
//! - every delivered event is one that was published, with its content intact.

#[path = "daemon.rs"]
mod daemon;

use herald::client::Client;
use herald::protocol::{Event, Role, Severity, Topic};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

const WINDOW: u32 = 16;
const SUBSCRIBERS: [(&str, &str); 2] = [("all", ">"), ("even", "crash.even")];

/// One delivery as a subscriber saw it.
#[derive(Clone, Copy, Debug)]
struct Seen {
    lifetime: u64,
    seq: u64,
    counter: u64,
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
    /// Deliveries that were repeats after a restart.
    pub repeats: u64,
}

fn topic_for(counter: u64) -> &'static str {
    if counter.is_multiple_of(2) {
        "crash.even"
    } else {
        "crash.odd"
    }
}

fn producer(socket: std::path::PathBuf, next: Arc<AtomicU64>, stored: mpsc::Sender<(u64, u64)>) {
    let Ok(mut client) = Client::connect(&socket, Role::Producer, "crash-producer") else {
        return;
    };
    let mut in_flight: std::collections::VecDeque<u64> = Default::default();
    loop {
        while in_flight.len() < 32 {
            let counter = next.fetch_add(1, Ordering::Relaxed);
            let payload = counter.to_le_bytes();
            let event = Event {
                topic: Topic::new(topic_for(counter).as_bytes()).unwrap(),
                severity: Severity::Info,
                source: "",
                flags: 0,
                key: b"",
                payload: &payload,
            };
            if client.send_publish(&event).is_err() {
                return;
            }
            in_flight.push_back(counter);
        }
        if client.flush().is_err() {
            return;
        }
        match client.recv_stored() {
            Ok(s) => {
                let counter = in_flight.pop_front().unwrap();
                if stored.send((s.first_seq.0, counter)).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

fn subscriber(
    socket: std::path::PathBuf,
    name: &'static str,
    pattern: &'static str,
    lifetime: u64,
    until: Option<BTreeSet<u64>>,
    subscribed: mpsc::Sender<()>,
) -> Result<Vec<Seen>, String> {
    let mut seen = Vec::new();
    let Ok(mut client) = Client::connect(&socket, Role::Subscriber, name) else {
        return Ok(seen);
    };
    if client
        .subscribe(name, &[pattern], Severity::Debug, WINDOW, false)
        .is_err()
    {
        return Ok(seen);
    }
    let _ = subscribed.send(());
    let mut missing = until;
    loop {
        if missing.as_ref().is_some_and(|m| m.is_empty()) {
            return Ok(seen);
        }
        let timeout = Some(Duration::from_secs(if missing.is_some() { 20 } else { 5 }));
        let d = match client.next_delivery(timeout) {
            Ok(Some(d)) => d,
            Ok(None) if missing.is_some() => {
                return Err(format!(
                    "{name}: final drain timed out; still missing {:?}",
                    missing.unwrap().iter().take(10).collect::<Vec<_>>()
                ))
            }
            Ok(None) | Err(_) => return Ok(seen),
        };
        let counter = u64::from_le_bytes(
            d.event
                .payload
                .try_into()
                .map_err(|_| format!("{name}: payload of {} is not a counter", d.seq.0))?,
        );
        if d.event.topic.as_bytes() != topic_for(counter).as_bytes() {
            return Err(format!(
                "{name}: event {} has topic {:?}, not its counter's",
                d.seq.0, d.event.topic
            ));
        }
        let seq = d.seq;
        seen.push(Seen {
            lifetime,
            seq: seq.0,
            counter,
        });
        if let Some(m) = missing.as_mut() {
            m.remove(&seq.0);
        }
        if client.confirm(seq, seq).is_err() {
            return Ok(seen);
        }
    }
}

/// Runs `cycles` kill cycles and a final drain; `Err` says what broke, with the seed.
pub fn run(cycles: u64, seed: u64) -> Result<Summary, String> {
    let fail = |m: String| format!("seed {seed}: {m}");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut rng = SmallRng::seed_from_u64(seed);
    let next = Arc::new(AtomicU64::new(0));
    let mut stored: BTreeMap<u64, u64> = BTreeMap::new();
    let mut seen: BTreeMap<&str, Vec<Seen>> = BTreeMap::new();
    let mut summary = Summary::default();
    for lifetime in 0..=cycles {
        let d = daemon::Daemon::start(dir.path(), &["--busy-poll-us", "0"]);
        let socket = d.socket();
        let last = lifetime == cycles;
        let until: Option<BTreeMap<&str, BTreeSet<u64>>> = last.then(|| {
            SUBSCRIBERS
                .iter()
                .map(|(name, _)| {
                    (
                        *name,
                        stored
                            .iter()
                            .filter(|(_, c)| *name == "all" || **c % 2 == 0)
                            .map(|(s, _)| *s)
                            .filter(|s| !seen[name].iter().any(|x| x.seq == *s))
                            .collect(),
                    )
                })
                .collect()
        });
        let (subscribed_tx, subscribed) = mpsc::channel();
        let subs: Vec<_> = SUBSCRIBERS
            .iter()
            .map(|(name, pattern)| {
                let socket = socket.clone();
                let until = until.as_ref().map(|u| u[name].clone());
                let subscribed_tx = subscribed_tx.clone();
                std::thread::spawn(move || {
                    (
                        *name,
                        subscriber(socket, name, pattern, lifetime, until, subscribed_tx),
                    )
                })
            })
            .collect();
        drop(subscribed_tx);
        // The durable subscriptions exist before anything is published, so every
        // event is intended for them.
        for _ in 0..SUBSCRIBERS.len() {
            subscribed.recv().map_err(|_| {
                fail(format!(
                    "a subscriber failed to subscribe in lifetime {lifetime}"
                ))
            })?;
        }
        if last {
            for s in subs {
                let (name, result) = s.join().unwrap();
                seen.entry(name).or_default().extend(result.map_err(fail)?);
            }
            drop(d);
            break;
        }
        let (tx, rx) = mpsc::channel();
        let producer = {
            let (socket, next) = (socket.clone(), next.clone());
            std::thread::spawn(move || producer(socket, next, tx))
        };
        let kill_after = rng.gen_range(20..400);
        for _ in 0..kill_after {
            match rx.recv() {
                Ok((seq, counter)) => {
                    stored.insert(seq, counter);
                }
                Err(_) => {
                    return Err(fail(format!(
                        "producer stopped in lifetime {lifetime} before the kill"
                    )))
                }
            }
        }
        d.kill();
        summary.kills += 1;
        producer.join().unwrap();
        // Replies read before the kill are acknowledgements too.
        stored.extend(rx.try_iter());
        for s in subs {
            let (name, result) = s.join().unwrap();
            seen.entry(name).or_default().extend(result.map_err(fail)?);
        }
    }
    summary.stored = stored.len() as u64;
    for (name, _) in SUBSCRIBERS {
        let list = &seen[name];
        summary.delivered += list.len() as u64;
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
            for s in &this {
                if s.counter >= next.load(Ordering::Relaxed) {
                    return Err(fail(format!(
                        "{name}: delivered counter {} was never published",
                        s.counter
                    )));
                }
                delivered_before.insert(s.seq);
            }
        }
        for (seq, counter) in &stored {
            if (name == "all" || counter.is_multiple_of(2)) && !delivered_before.contains(seq) {
                return Err(fail(format!(
                    "{name}: stored event {seq} (counter {counter}) never delivered"
                )));
            }
        }
    }
    Ok(summary)
}
