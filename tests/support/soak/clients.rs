//! The soak's producers and subscribers, one thread each per daemon lifetime.

use super::ledger::Ledger;
use super::model::{self, Behaviour, DURABLE};
use super::treatment::{self, Settled, Treatment};
use super::Lifetime;
use herald::client::{Client, ClientError, Incoming};
use herald::protocol::{ErrorCode, Event, Role, Seq, Severity, BATCH_EVENTS_MAX, FRAME_BYTES_MAX};
use rand::rngs::SmallRng;
use rand::Rng;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One publish: the numbers of its events (one, or a batch).
pub type Group = Vec<u64>;

/// Batch frame bytes besides the events: header, correlation, count.
const BATCH_OVERHEAD_BYTES: usize = 6 + 8 + 2;

/// How often a client with nothing to read looks at its lifetime's flags, and how
/// often one that gave up looks whether its lifetime is over: poll intervals; the
/// supervisor's lifetimes and the drain's deadline bound every wait.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Waits until the supervisor ends the lifetime (a kill coming, or the drain done).
fn wait_out(l: &Lifetime) {
    while !l.dying() && !l.stopped() {
        std::thread::sleep(POLL_INTERVAL / 5);
    }
}

/// Connects with `role` as `name`. None once the daemon is dying, or after a failure
/// to connect to a live daemon (a violation; the client then sits the lifetime out).
pub fn connect(l: &Lifetime, ledger: &Ledger, role: Role, name: &str) -> Option<Client> {
    if l.dying() || l.stopped() {
        return None;
    }
    match Client::connect(&l.socket, role, name) {
        Ok(c) => Some(c),
        Err(e) => failed(l, ledger, name, e, None),
    }
}

/// A client error: expected while the daemon is being stopped; otherwise a violation,
/// and the client sits the rest of the lifetime out (so that one fault is reported
/// once, not on every retry).
pub fn failed<T>(l: &Lifetime, ledger: &Ledger, who: &str, e: ClientError, value: T) -> T {
    if !l.dying() {
        ledger.stat(|s| s.errors += 1);
        ledger.violation(format!("lifetime {}: {who}: {e}", l.number));
        wait_out(l);
    }
    value
}

/// Draws the next publish: one event, or (30%) a batch of up to 32 that fits a frame.
/// An event drawn that would not fit the batch is left in `pending`, to go next.
fn next_group(next: &AtomicU64, rng: &mut SmallRng, pending: &mut VecDeque<Group>) -> Group {
    let events = if rng.gen_bool(0.3) {
        rng.gen_range(2..=32)
    } else {
        1
    };
    let mut group = Vec::with_capacity(events);
    let mut bytes = BATCH_OVERHEAD_BYTES;
    while group.len() < events.min(BATCH_EVENTS_MAX) {
        let c = next.fetch_add(1, Ordering::Relaxed);
        // Its encoding (section 4.1) with its key, and some to spare.
        let size = 10 + model::topic_of(c).len() + 8 + model::payload_len_of(c) + 32;
        if bytes + size > FRAME_BYTES_MAX {
            pending.push_back(vec![c]);
            break;
        }
        bytes += size;
        group.push(c);
    }
    group
}

/// Sends one publish of `group`.
fn send(client: &mut Client, group: &[u64], keyed: bool) -> Result<(), ClientError> {
    let mut payloads: Vec<Vec<u8>> = Vec::with_capacity(group.len());
    let keys: Vec<[u8; 8]> = group.iter().map(|&c| model::key_of(c)).collect();
    for &c in group {
        let mut p = Vec::new();
        model::payload_of(c, &mut p);
        payloads.push(p);
    }
    let events: Vec<Event<'_>> = group
        .iter()
        .zip(&payloads)
        .zip(&keys)
        .map(|((&c, p), k)| model::event(c, p, if keyed { k } else { b"" }))
        .collect();
    if events.len() == 1 {
        client.send_publish(&events[0]).map(|_| ())
    } else {
        client.send_publish_batch(&events).map(|_| ())
    }
}

/// A producer for one lifetime: publishes `retry` first (publishes whose answer a
/// kill took; only a keyed producer has any), then new events (not in the final
/// lifetime), pipelining up to 8. Returns what a keyed producer must publish again.
#[allow(clippy::too_many_arguments)]
pub fn producer(
    l: &Lifetime,
    ledger: &Ledger,
    name: &str,
    keyed: bool,
    next: &AtomicU64,
    mut retry: VecDeque<Group>,
    rng: &mut SmallRng,
    rate_per_producer: f64,
) -> VecDeque<Group> {
    let give_back = |mut outstanding: VecDeque<Group>, mut retry: VecDeque<Group>| {
        if !keyed {
            // Unanswered events without a key are not published again: they may be
            // stored, and nothing could tell a second copy from the first.
            return VecDeque::new();
        }
        while let Some(g) = outstanding.pop_back() {
            retry.push_front(g);
        }
        retry
    };
    let Some(mut client) = connect(l, ledger, Role::Producer, name) else {
        return give_back(VecDeque::new(), retry);
    };
    let mut outstanding: VecDeque<Group> = VecDeque::new();
    loop {
        if l.dying() {
            return give_back(outstanding, retry);
        }
        let depth = rng.gen_range(1..=8);
        while outstanding.len() < depth {
            let group = match retry.pop_front() {
                Some(g) => g,
                None if l.is_final => break,
                None => next_group(next, rng, &mut retry),
            };
            ledger.sent(&group, keyed);
            if let Err(e) = send(&mut client, &group, keyed) {
                retry.push_front(group);
                return failed(l, ledger, name, e, give_back(outstanding, retry));
            }
            outstanding.push_back(group);
        }
        let Some(group) = outstanding.pop_front() else {
            // The final lifetime's retries are all answered.
            return retry;
        };
        match client.recv_stored() {
            Ok(s) => {
                let count = usize::from(s.count);
                // A keyed batch counts its distinct keys (all distinct here).
                if count != group.len() {
                    ledger.violation(format!(
                        "{name}: a publish of {} events answered with count {count}",
                        group.len()
                    ));
                }
                ledger.acked(name, &group, s.first_seq.0);
                l.first_stored();
                let pause = group.len() as f64 / rate_per_producer;
                std::thread::sleep(Duration::from_secs_f64(pause.min(0.5)));
            }
            Err(ClientError::Refused {
                code: ErrorCode::Full,
                ..
            }) => {
                // Not stored: publish it again once there is room.
                ledger.stat(|s| s.full_answers += 1);
                retry.push_front(group);
                std::thread::sleep(Duration::from_millis(rng.gen_range(5..50)));
            }
            Err(e) => {
                outstanding.push_front(group);
                return failed(l, ledger, name, e, give_back(outstanding, retry));
            }
        }
    }
}

/// `slow` stops reading for `length` (or until the lifetime ends): its window stays
/// full and its cursor holds the ring's head, so the ring fills behind it.
fn stall(l: &Lifetime, ledger: &Ledger, length: Duration) {
    let from = Instant::now();
    let until = from + length;
    while !l.dying() && !l.stopped() && Instant::now() < until {
        std::thread::sleep(POLL_INTERVAL.min(until.saturating_duration_since(Instant::now())));
    }
    let ms = from.elapsed().as_millis() as u64;
    ledger.stat(|s| {
        s.stalls += 1;
        s.stalled_ms += ms;
    });
}

/// A durable subscriber for one lifetime (until the daemon dies, or until `stop` in
/// the final one).
pub fn durable(l: &Lifetime, ledger: &Ledger, sub: usize, rng: &mut SmallRng) {
    let spec = &DURABLE[sub];
    let mut scratch = Vec::new();
    let mut first = true;
    // The supervisor's stall, if it chose one for this lifetime.
    let mut stall_due = l.stall.filter(|_| spec.behaviour == Behaviour::Slow);
    while !l.dying() && !l.stopped() {
        let Some(mut client) = connect(l, ledger, Role::Subscriber, spec.name) else {
            return;
        };
        match client.subscribe_with(spec.name, spec.patterns, &spec.options) {
            Ok(_) => {}
            // The previous connection of a flaky subscriber is not closed yet.
            Err(ClientError::Refused {
                code: ErrorCode::NameInUse,
                ..
            }) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(e) => return failed(l, ledger, spec.name, e, ()),
        }
        let reconnected = !first;
        if reconnected {
            ledger.stat(|s| s.reconnects += 1);
        }
        first = false;
        let mut last_new: Option<Seq> = None;
        let leave_after = rng.gen_range(50..2000u32);
        let mut handled = 0u32;
        loop {
            if l.dying() {
                return;
            }
            if l.stopped() {
                let _ = client.goodbye();
                return;
            }
            if let Some((_, length)) = stall_due.filter(|&(at, _)| l.started.elapsed() >= at) {
                stall(l, ledger, length);
                stall_due = None;
            }
            let delivery = match client.next_incoming(Some(POLL_INTERVAL)) {
                Ok(None) => continue,
                Ok(Some(Incoming::RecoveryDone)) => {
                    ledger.stat(|s| s.recovery_dones += 1);
                    if !reconnected {
                        l.replay_done();
                    }
                    // Without automatic recovery, new events wait for `Recovered`.
                    if !spec.options.automatic_recovery {
                        if let Err(e) = client.recovered() {
                            failed(l, ledger, spec.name, e, ());
                            break;
                        }
                    }
                    continue;
                }
                Ok(Some(Incoming::Deliver(d))) => d,
                Ok(Some(other)) => {
                    ledger.violation(format!("{}: unexpected {other:?}", spec.name));
                    break;
                }
                Err(e) => {
                    failed(l, ledger, spec.name, e, ());
                    break;
                }
            };
            let (seq, redelivered, count) =
                (delivery.seq, delivery.redelivered, delivery.delivery_count);
            let Some(counter) = model::counter_in(delivery.event.payload) else {
                ledger.violation(format!("{}: seq {} has no counter", spec.name, seq.0));
                continue;
            };
            if !model::intact(counter, &delivery.event, &mut scratch) {
                ledger.violation(format!(
                    "{}: event {counter} (seq {}) damaged",
                    spec.name, seq.0
                ));
            }
            if !model::meant_for(spec.patterns, counter) {
                ledger.violation(format!(
                    "{}: got event {counter} (topic {}), not meant for it",
                    spec.name,
                    model::topic_of(counter)
                ));
            }
            ledger.delivered(spec.name, counter, seq.0, redelivered, false);
            in_order(ledger, spec.name, &mut last_new, seq, redelivered);
            if let Err(e) = settle(&mut client, ledger, sub, counter, seq, count, rng) {
                failed(l, ledger, spec.name, e, ());
                break;
            }
            handled += 1;
            if spec.behaviour == Behaviour::Flaky && handled >= leave_after {
                // Away with whatever is in flight: it comes again, flagged.
                if rng.gen_bool(0.5) {
                    let _ = client.goodbye();
                }
                break;
            }
        }
    }
}

/// What the subscriber `sub` does with a delivery, by its behaviour.
fn settle(
    client: &mut Client,
    ledger: &Ledger,
    sub: usize,
    counter: u64,
    seq: Seq,
    count: u16,
    rng: &mut SmallRng,
) -> Result<(), ClientError> {
    // A confirm is recorded before it is queued: a cursor the daemon moves past the
    // event implies the record.
    let record = || ledger.confirmed(sub, counter);
    let treatment = match DURABLE[sub].behaviour {
        Behaviour::ConfirmAll | Behaviour::ConfirmAuto | Behaviour::Flaky => Treatment::Confirm,
        Behaviour::Slow => {
            if rng.gen_bool(0.1) {
                ledger.stat(|s| s.workings += 1);
                client.working(seq)?;
                client.flush()?;
            }
            std::thread::sleep(Duration::from_micros(rng.gen_range(0..3000)));
            Treatment::Confirm
        }
        // A dead letter replayed at the operator's request is confirmed (and purged).
        Behaviour::Picky if ledger.replay_asked(seq.0) => Treatment::Confirm,
        Behaviour::Picky => model::treatment(counter),
    };
    let nak_delay_ms = rng.gen_range(5..50);
    match treatment::settle(client, treatment, seq, count == 1, nak_delay_ms, record)? {
        Settled::Rejected => ledger.stat(|s| s.rejects += 1),
        Settled::Nakked => ledger.stat(|s| s.naks += 1),
        Settled::Confirmed | Settled::Left => {}
    }
    Ok(())
}

/// New events (not redelivered) come in order of their seq on one connection.
fn in_order(ledger: &Ledger, who: &str, last_new: &mut Option<Seq>, seq: Seq, redelivered: bool) {
    if redelivered {
        return;
    }
    if let Some(last) = last_new.filter(|&last| seq <= last) {
        ledger.violation(format!(
            "{who}: new event {} after {} on one connection: out of order",
            seq.0, last.0
        ));
    }
    *last_new = Some(seq);
}

/// A live-only subscriber for one lifetime: confirms what it gets and comes back on a
/// new connection now and then (a new subscription each time).
pub fn live(l: &Lifetime, ledger: &Ledger, name: &str, patterns: &[&str], rng: &mut SmallRng) {
    let mut scratch = Vec::new();
    while !l.dying() && !l.stopped() {
        let Some(mut client) = connect(l, ledger, Role::Subscriber, name) else {
            return;
        };
        if let Err(e) = client.subscribe("", patterns, Severity::Debug, 64, true) {
            return failed(l, ledger, name, e, ());
        }
        let mut last_new: Option<Seq> = None;
        let leave_after = rng.gen_range(100..5000u32);
        let mut handled = 0;
        while handled < leave_after {
            if l.dying() {
                return;
            }
            if l.stopped() {
                let _ = client.goodbye();
                return;
            }
            let d = match client.next_delivery(Some(POLL_INTERVAL)) {
                Ok(Some(d)) => d,
                Ok(None) => continue,
                Err(e) => {
                    failed(l, ledger, name, e, ());
                    break;
                }
            };
            let (seq, redelivered) = (d.seq, d.redelivered);
            match model::counter_in(d.event.payload) {
                Some(c)
                    if model::intact(c, &d.event, &mut scratch)
                        && model::meant_for(patterns, c) =>
                {
                    ledger.delivered(name, c, seq.0, redelivered, true)
                }
                _ => ledger.violation(format!(
                    "{name}: seq {} is not an event it was meant to get, intact",
                    seq.0
                )),
            }
            in_order(ledger, name, &mut last_new, seq, redelivered);
            if let Err(e) = client.confirm(seq, seq) {
                failed(l, ledger, name, e, ());
                break;
            }
            handled += 1;
        }
        ledger.stat(|s| s.reconnects += 1);
        let _ = client.goodbye();
    }
}
