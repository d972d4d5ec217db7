//! Power-cut exploration, shared by `tests/power_cut.rs` (bounded) and
//! `tools/powercut.rs` (as long as asked).
//!
//! A seeded workload of appends (group commits, multi-slot events, ring wrap),
//! releases, abandoned batches, subscription changes, dead letters (create, purge,
//! replay status), clean stops and crash-restarts runs on the simulated medium. Every
//! operation's store/flush/fence trace is recorded; the explorer then rebuilds the
//! state at every fence (just before and just after it) and at random points in
//! between, produces several crash images at each (each unfenced 8-byte word kept or
//! lost at random), recovers each image, and checks:
//! - every event whose append returned is recovered intact and in order;
//! - nothing else is returned except events of the interrupted operation, intact;
//! - released events stay released unless their release had not returned;
//! - a power cut never makes recovery report damage (`corrupt`, a damaged
//!   subscription or dead letter);
//! - every dead letter whose creation returned is there with the exact event bytes and
//!   its latest acknowledged status, even once the cursor passed (and the ring reused)
//!   the original; purged ones never come back; none appears that was not created;
//!   orphans appear only while their subscription's deletion is in flight;
//! - a cursor an operator moves back (into released events the ring still holds, as
//!   far as `held_from`) or forward lands whole: every event it goes back over is
//!   recovered intact once it returned; a pause survives likewise;
//! - a change of the checker's spec (which moves its table entry) finds the old spec
//!   or the new one, exactly one entry of that name, and the cursor, mode, pause and
//!   dead letters unchanged;
//! - a routing rule change (add, a new version, delete; each a two-phase write, a
//!   change also retiring the old version) finds the old active rules or the new
//!   ones, and every recovered event still names the rule version it was stored with
//!   (its one-byte reference resolves to the same id and version);
//! - the previous stop reads `Clean` only once `close_clean` stored its word (and
//!   always once it returned), `Unclean` otherwise, never `Unknown`.
//!
//! Every failure message starts with the seed that reproduces it.

use herald::log::{
    DeadLetterError, DeadLetterId, DeadReason, EventRef, Log, LogConfig, PreviousStop, Seq,
    Severity, Start, SubscriptionMode,
};
use herald::pmem::sim::{SimMedium, SimOp, SimState};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

#[path = "powercut_check.rs"]
mod check;
use check::check_image;

/// Bytes of the simulated region: small, so the ring wraps often (256 ring slots), the
/// dead-letter area (64 slots) fills up, and so does the rule table (4 entries).
pub const REGION_BYTES: usize = 4096 * 8 + 256 * 64;

/// What one exploration covered.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Crash images recovered and checked.
    pub crash_states: u64,
    /// Cut points taken at fences.
    pub fence_points: u64,
    /// Cut points taken at random between fences.
    pub random_points: u64,
    /// Workload operations run.
    pub operations: u64,
    /// Events appended and acknowledged.
    pub events_acked: u64,
    /// Restarts from a crash image in the middle of the workload.
    pub restarts: u64,
    /// Dead letters made (their creation returned).
    pub dead_letters: u64,
    /// Clean stops (`close_clean` returned, then a reopen).
    pub clean_stops: u64,
    /// Cursor resets that went back over released events (and returned).
    pub resets_back: u64,
    /// Changes of the checker's spec (each moves its entry) that returned.
    pub spec_changes: u64,
    /// Routing rule changes (add, new version, delete) that returned.
    pub rule_changes: u64,
    /// Events stored naming a rule version.
    pub routed_events: u64,
}

impl Stats {
    /// Adds another run's counts.
    pub fn add(&mut self, o: &Stats) {
        self.crash_states += o.crash_states;
        self.fence_points += o.fence_points;
        self.random_points += o.random_points;
        self.operations += o.operations;
        self.events_acked += o.events_acked;
        self.restarts += o.restarts;
        self.dead_letters += o.dead_letters;
        self.clean_stops += o.clean_stops;
        self.resets_back += o.resets_back;
        self.spec_changes += o.spec_changes;
        self.rule_changes += o.rule_changes;
        self.routed_events += o.routed_events;
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ModelEvent {
    topic: Vec<u8>,
    severity: Severity,
    key: Vec<u8>,
    payload: Vec<u8>,
    flags: u16,
    timestamp_ns: u64,
    /// The rule table entry + 1 it is stored with (0: none).
    route: u8,
    /// The (id, version) that reference resolves to.
    rule: Option<(u32, u32)>,
}

impl ModelEvent {
    /// The event as a dead letter copies it: no routing reference.
    fn unrouted(&self) -> ModelEvent {
        ModelEvent {
            route: 0,
            rule: None,
            ..self.clone()
        }
    }
}

/// Active routing rules: id -> (version, spec).
type Rules = BTreeMap<u32, (u32, Vec<u8>)>;

/// A dead letter as the model knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ModelDead {
    subscription_uid: u64,
    seq: u64,
    event: ModelEvent,
    replay_requested: bool,
    delivery_count: u32,
}

#[derive(Clone, Debug)]
struct Model {
    /// Acknowledged (or recovered, hence durable) events by seq.
    acked: BTreeMap<u64, ModelEvent>,
    /// The subscription cursor whose release returned.
    cursor: u64,
    /// The checker's persistent mode, as last set.
    mode: SubscriptionMode,
    /// Whether the second subscription, `extra`, exists.
    extra: bool,
    /// Whether the checker is paused.
    paused: bool,
    /// The checker's spec (opaque to the log).
    spec: Vec<u8>,
    /// Acknowledged events below the cursor whose slots may not be reused yet: what a
    /// cursor moved back reaches (bounded to the ring's last lap).
    released: BTreeMap<u64, ModelEvent>,
    /// Dead letters whose creation returned and that no returned purge removed.
    dead: BTreeMap<DeadLetterId, ModelDead>,
    /// The active routing rules.
    rules: Rules,
}

/// What the interrupted operation may or may not have done.
#[derive(Default)]
struct InFlight {
    events: BTreeMap<u64, ModelEvent>,
    /// Whether the batch was committed (false: abandoned, rolled back).
    committed: bool,
    /// Events pushed and then undone by `rollback_to` within the batch.
    rolled_back: BTreeMap<u64, ModelEvent>,
    cursor: Option<u64>,
    /// A `set_mode` of the checker to this mode.
    mode: Option<SubscriptionMode>,
    /// A pause (true) or resume of the checker.
    paused: Option<bool>,
    /// A change of the checker's spec to this.
    spec: Option<Vec<u8>>,
    /// The released events a cursor moved back holds again: from the new cursor to
    /// the old one.
    unreleased: BTreeMap<u64, ModelEvent>,
    /// Creation (true) or deletion (false) of `extra`.
    extra: Option<bool>,
    /// `extra`'s uid, when it is being deleted (its dead letters go with it).
    extra_deleted_uid: Option<u64>,
    /// A dead letter made, and the op index at which its creation returned (a release
    /// may follow in the same step).
    dead_created: Option<(DeadLetterId, ModelDead, usize)>,
    /// Dead letters being purged.
    dead_purged: Vec<DeadLetterId>,
    /// A status change: id, replay requested, delivery count.
    dead_status: Option<(DeadLetterId, bool, u32)>,
    /// Op index of `close_clean`'s store of the run-state word.
    close_clean_store: Option<usize>,
    /// A rule change: the active rules once it returned.
    rules: Option<Rules>,
}

const EXTRA: &[u8] = b"extra";
const CHECKER: &[u8] = b"checker";

fn config() -> LogConfig {
    LogConfig {
        slot_bytes: 64,
        reserve_slots: Some(8),
        subscription_entries: 8,
        payload_bytes_max: 600,
        dead_letter_slots: Some(64),
        rule_entries: 4,
    }
}

const TOPICS: [&[u8]; 4] = [b"fs.disk.error", b"fs.quota", b"net.link.down", b"a"];

/// The active rules of `log` as the model keeps them.
fn active_rules(log: &Log<SimMedium>) -> Rules {
    log.rule_entries()
        .filter(|e| e.is_active())
        .map(|e| (e.id, (e.version, e.spec.clone())))
        .collect()
}

/// A route for a new event: none, or one of the active rule versions.
fn random_route(rng: &mut SmallRng, log: &Log<SimMedium>) -> (u8, Option<(u32, u32)>) {
    let active: Vec<_> = log.rule_entries().filter(|e| e.is_active()).collect();
    if active.is_empty() || rng.gen_bool(0.3) {
        return (0, None);
    }
    let e = active[rng.gen_range(0..active.len())];
    ((e.index + 1) as u8, Some((e.id, e.version)))
}

fn random_event(rng: &mut SmallRng, route: (u8, Option<(u32, u32)>)) -> ModelEvent {
    // Mostly small events, some that span many slots.
    let len = if rng.gen_bool(0.8) {
        rng.gen_range(0..100)
    } else {
        rng.gen_range(100..=600)
    };
    ModelEvent {
        topic: TOPICS[rng.gen_range(0..TOPICS.len())].to_vec(),
        severity: Severity::ALL[rng.gen_range(0..Severity::ALL.len())],
        key: if rng.gen_bool(0.2) {
            vec![b'k'; rng.gen_range(1..=64)]
        } else {
            Vec::new()
        },
        payload: (0..len).map(|_| rng.gen()).collect(),
        flags: rng.gen(),
        timestamp_ns: rng.gen(),
        route: route.0,
        rule: route.1,
    }
}

/// An event as recovered: its reference resolved against the recovered rule table.
fn model_of(log: &Log<SimMedium>, e: &herald::log::EventView<'_>) -> ModelEvent {
    let rule = e.route.checked_sub(1).and_then(|index| {
        log.rule_entries()
            .find(|r| r.index == index as u32 && r.routed(e.seq.0))
            .map(|r| (r.id, r.version))
    });
    ModelEvent {
        topic: e.topic.to_vec(),
        severity: e.severity,
        key: e.key.to_vec(),
        payload: e.payload.to_vec(),
        flags: e.flags,
        timestamp_ns: e.timestamp_ns,
        route: e.route,
        rule,
    }
}

fn event_ref(e: &ModelEvent) -> EventRef<'_> {
    EventRef {
        topic: &e.topic,
        severity: e.severity,
        source: b"powercut",
        flags: e.flags,
        key: &e.key,
        payload: &e.payload,
        timestamp_ns: e.timestamp_ns,
        route: e.route,
    }
}

/// Runs one seeded workload of `operations` steps, exploring crash states at each.
/// `images_per_point` crash images are checked at each cut point; `random_points`
/// extra cut points are chosen per operation.
pub fn explore(
    seed: u64,
    operations: u64,
    images_per_point: u32,
    random_points: u32,
) -> Result<Stats, String> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let fail = |step: u64, msg: String| format!("seed {seed} operation {step}: {msg}");
    let mut stats = Stats::default();
    let mut log = Log::format(SimMedium::new(REGION_BYTES), &config(), seed | 1)
        .map_err(|e| fail(0, e.to_string()))?;
    log.create_subscription(CHECKER, b"")
        .map_err(|e| fail(0, e.to_string()))?;
    let mut model = Model {
        acked: BTreeMap::new(),
        cursor: log.tail().0,
        mode: SubscriptionMode::Normal,
        extra: false,
        paused: false,
        spec: Vec::new(),
        released: BTreeMap::new(),
        dead: BTreeMap::new(),
        rules: Rules::new(),
    };

    for step in 0..operations {
        // The checker's entry moves when its spec changes.
        let sub = log
            .subscription_by_name(CHECKER)
            .ok_or_else(|| fail(step, "the checker is gone".into()))?
            .id;
        stats.operations += 1;
        let before_state: SimState = log.medium().state().clone();
        log.medium_mut().start_recording();
        let mut inflight = InFlight::default();
        let mut acked_now: BTreeMap<u64, ModelEvent> = BTreeMap::new();
        // Ops of an earlier call in the same step (a dead letter, then a release).
        let mut earlier_ops: Vec<SimOp> = Vec::new();
        let mut closing = false;
        let roll = rng.gen_range(0..100);
        if roll < 52 {
            // A group commit of 1..8 events; on `full`, the prefix is committed.
            let events: Vec<ModelEvent> = (0..rng.gen_range(1..=8))
                .map(|_| {
                    let route = random_route(&mut rng, &log);
                    random_event(&mut rng, route)
                })
                .collect();
            let abandon = rng.gen_bool(0.05);
            let mark_at = if rng.gen_bool(0.1) {
                Some(rng.gen_range(0..events.len()))
            } else {
                None
            };
            // The route of an event pushed after a rollback (rules do not change
            // while the batch is open).
            let late_route = random_route(&mut rng, &log);
            let mut batch = log.batch();
            let mut mark = None;
            for (i, e) in events.iter().enumerate() {
                if mark_at == Some(i) {
                    mark = Some((batch.mark(), inflight.events.clone()));
                }
                match batch.push(&event_ref(e)) {
                    Ok(seq) => {
                        inflight.events.insert(seq.0, e.clone());
                    }
                    Err(herald::log::AppendError::Full { .. }) => break,
                    Err(other) => return Err(fail(step, format!("append failed: {other}"))),
                }
            }
            if let Some((mark, kept)) = mark {
                batch.rollback_to(mark);
                for (seq, e) in std::mem::replace(&mut inflight.events, kept) {
                    if !inflight.events.contains_key(&seq) {
                        inflight.rolled_back.insert(seq, e);
                    }
                }
                // Push one more after the rollback, reusing the undone positions.
                let e = random_event(&mut rng, late_route);
                // The undone version at the same position stays possible until the
                // fence, so it stays in `rolled_back`.
                if let Ok(seq) = batch.push(&event_ref(&e)) {
                    inflight.events.insert(seq.0, e);
                }
            }
            if abandon {
                drop(batch);
            } else {
                batch.commit().map_err(|e| fail(step, e.to_string()))?;
                inflight.committed = true;
                acked_now = inflight.events.clone();
            }
        } else if roll < 60 {
            // Subscription table changes: create or delete `extra`, or flip the
            // checker's persistent mode.
            let extra = log.subscription_by_name(EXTRA).map(|e| e.id);
            match extra {
                None => {
                    inflight.extra = Some(true);
                    log.create_subscription(EXTRA, b"spec")
                        .map_err(|e| fail(step, format!("create: {e}")))?;
                }
                Some(id) if rng.gen_bool(0.5) => {
                    inflight.extra = Some(false);
                    inflight.extra_deleted_uid = log.subscription(id).map(|s| s.uid);
                    log.delete_subscription(id)
                        .map_err(|e| fail(step, format!("delete: {e}")))?;
                }
                Some(_) => {
                    let mode = match model.mode {
                        SubscriptionMode::Normal => SubscriptionMode::Recovering,
                        SubscriptionMode::Recovering => SubscriptionMode::Normal,
                    };
                    inflight.mode = Some(mode);
                    log.set_mode(sub, mode)
                        .map_err(|e| fail(step, format!("set_mode: {e}")))?;
                }
            }
        } else if roll < 68 {
            // Dead-letter an acknowledged event for the checker (or `extra`); for the
            // checker, sometimes release its cursor past the event right away.
            let candidates: Vec<u64> = model.acked.range(model.cursor..).map(|(s, _)| *s).collect();
            if !candidates.is_empty() {
                let seq = candidates[rng.gen_range(0..candidates.len())];
                let target = match log.subscription_by_name(EXTRA) {
                    Some(e) if rng.gen_bool(0.3) => e.id,
                    _ => sub,
                };
                let subscription_uid = log.subscription(target).unwrap().uid;
                let delivery_count = rng.gen_range(1..10);
                let reason = if rng.gen_bool(0.5) {
                    DeadReason::Rejected
                } else {
                    DeadReason::MaxDeliveries
                };
                match log.dead_letter(target, Seq(seq), delivery_count, reason) {
                    Ok(id) => {
                        earlier_ops = log.medium_mut().take_recording();
                        log.medium_mut().start_recording();
                        let m = ModelDead {
                            subscription_uid,
                            seq,
                            event: model.acked[&seq].unrouted(),
                            replay_requested: false,
                            delivery_count,
                        };
                        inflight.dead_created = Some((id, m, earlier_ops.len()));
                        if target == sub && rng.gen_bool(0.5) {
                            let next = model
                                .acked
                                .range(seq + 1..)
                                .next()
                                .map_or(log.tail().0, |(s, _)| *s);
                            inflight.cursor = Some(next);
                            let mut updates = vec![(sub, Seq(next))];
                            if let Some(e) = log.subscription_by_name(EXTRA) {
                                updates.push((e.id, Seq(next.max(e.cursor))));
                            }
                            log.release(&updates)
                                .map_err(|e| fail(step, format!("release to {next}: {e}")))?;
                        }
                    }
                    Err(DeadLetterError::Full { .. }) => {}
                    Err(e) => return Err(fail(step, format!("dead_letter: {e}"))),
                }
            }
        } else if roll < 72 {
            // Purge one to three dead letters.
            let ids: Vec<DeadLetterId> = model.dead.keys().copied().collect();
            if !ids.is_empty() {
                let k = rng.gen_range(1..=ids.len().min(3));
                let chosen: Vec<DeadLetterId> =
                    (0..k).map(|_| ids[rng.gen_range(0..ids.len())]).collect();
                inflight.dead_purged = chosen.clone();
                log.purge_dead(&chosen)
                    .map_err(|e| fail(step, format!("purge_dead: {e}")))?;
            }
        } else if roll < 76 {
            // A replay requested, or a replay rejected again (flag cleared, count up).
            let ids: Vec<DeadLetterId> = model.dead.keys().copied().collect();
            if !ids.is_empty() {
                let id = ids[rng.gen_range(0..ids.len())];
                let m = &model.dead[&id];
                let (requested, count) = if m.replay_requested {
                    (false, m.delivery_count + 1)
                } else {
                    (true, m.delivery_count)
                };
                inflight.dead_status = Some((id, requested, count));
                log.set_dead_replay(id, requested, count)
                    .map_err(|e| fail(step, format!("set_dead_replay: {e}")))?;
            }
        } else if roll < 82 {
            // An operator's change to the checker: pause or resume it, or move its
            // cursor, back into released events the ring still holds or forward, or
            // change its spec (which moves its entry; needs a free one).
            let free_entry = log.subscriptions().count() < config().subscription_entries as usize;
            if free_entry && rng.gen_bool(0.15) {
                let spec = format!("spec of step {step}").into_bytes();
                inflight.spec = Some(spec.clone());
                log.change_spec(sub, &spec)
                    .map_err(|e| fail(step, format!("change_spec: {e}")))?;
            } else if rng.gen_bool(0.3) {
                let paused = !model.paused;
                inflight.paused = Some(paused);
                log.set_paused(sub, paused)
                    .map_err(|e| fail(step, format!("set_paused: {e}")))?;
            } else {
                let (held_from, tail) = (log.held_from().0, log.tail().0);
                let start = match rng.gen_range(0..4) {
                    0 => Start::First,
                    1 => Start::New,
                    _ => Start::Seq(rng.gen_range(held_from..=tail)),
                };
                let to = log
                    .resolve_start(start)
                    .map_err(|e| fail(step, format!("resolve_start({start:?}): {e}")))?
                    .0;
                inflight.cursor = Some(to);
                if to < model.cursor {
                    inflight.unreleased = model
                        .released
                        .range(to..model.cursor)
                        .map(|(s, e)| (*s, e.clone()))
                        .collect();
                }
                let moved = log
                    .reset_cursor(sub, start)
                    .map_err(|e| fail(step, format!("reset_cursor({start:?}): {e}")))?;
                if moved.0 != to {
                    return Err(fail(
                        step,
                        format!("reset to {start:?} went to {moved:?}, resolved {to}"),
                    ));
                }
            }
        } else if roll < 87 {
            // A routing rule change: add one, give one a new version, or delete one.
            // The table (4 entries) fills up; then only retired versions no event in
            // the ring names are reused, and a change may find no entry.
            let active: Vec<u32> = model.rules.keys().copied().collect();
            let spec = format!("rule of step {step}").into_bytes();
            let pick = |rng: &mut SmallRng| active[rng.gen_range(0..active.len())];
            let mut after = model.rules.clone();
            let choice = if active.is_empty() {
                0
            } else {
                rng.gen_range(0..3)
            };
            let result = match choice {
                0 => log.add_rule(&spec).map(|e| {
                    after.insert(e.id, (e.version, spec.clone()));
                }),
                1 => {
                    let id = pick(&mut rng);
                    log.change_rule(id, &spec).map(|e| {
                        after.insert(id, (e.version, spec.clone()));
                    })
                }
                _ => {
                    let id = pick(&mut rng);
                    log.delete_rule(id).map(|_| {
                        after.remove(&id);
                    })
                }
            };
            match result {
                Ok(()) => inflight.rules = Some(after),
                Err(herald::log::LogError::Rules(herald::log::RuleTableError::Full { .. })) => {}
                Err(e) => return Err(fail(step, format!("rule change: {e}"))),
            }
        } else if roll < 89 {
            // A clean stop (the log is reopened below).
            closing = true;
            log.close_clean()
                .map_err(|e| fail(step, format!("close_clean: {e}")))?;
        } else {
            // Release up to some acknowledged event, or everything.
            let candidates: Vec<u64> = model.acked.range(model.cursor..).map(|(s, _)| *s).collect();
            let target = if candidates.is_empty() || rng.gen_bool(0.3) {
                log.tail().0
            } else {
                candidates[rng.gen_range(0..candidates.len())]
            };
            inflight.cursor = Some(target);
            // `extra` moves along (never backwards), in the same fence.
            let mut updates = vec![(sub, Seq(target))];
            if let Some(e) = log.subscription_by_name(EXTRA) {
                updates.push((e.id, Seq(target.max(e.cursor))));
            }
            log.release(&updates)
                .map_err(|e| fail(step, format!("release to {target}: {e}")))?;
        }
        let mut ops = earlier_ops;
        ops.extend(log.medium_mut().take_recording());
        if closing {
            inflight.close_clean_store = ops.iter().position(|o| matches!(o, SimOp::Store { .. }));
            if inflight.close_clean_store.is_none() {
                return Err(fail(step, "close_clean stored nothing".into()));
            }
        }

        // Cut points: just before and just after every fence, plus random ones; the
        // point `ops.len()` is "after the operation returned".
        let mut points: Vec<(usize, bool)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            if matches!(op, SimOp::Fence) {
                points.push((i, true));
                points.push((i + 1, true));
            }
        }
        for _ in 0..random_points {
            points.push((rng.gen_range(0..=ops.len()), false));
        }
        points.push((ops.len(), true));
        points.sort_unstable();
        points.dedup_by_key(|p| p.0);

        let mut state = before_state;
        let mut applied = 0;
        let mut restart_image: Option<(Vec<u8>, usize, bool)> = None;
        let restart_here = rng.gen_bool(0.1);
        for &(point, at_fence) in &points {
            while applied < point {
                state.apply(&ops[applied]);
                applied += 1;
            }
            if at_fence {
                stats.fence_points += 1;
            } else {
                stats.random_points += 1;
            }
            let finished = point == ops.len();
            for _ in 0..images_per_point {
                let keep = match rng.gen_range(0..4) {
                    0 => 0.0,
                    1 => 1.0,
                    _ => rng.gen(),
                };
                let image = state.crash_image(&mut rng, keep);
                if restart_here && restart_image.is_none() && rng.gen_bool(0.3) {
                    restart_image = Some((image.clone(), point, finished));
                }
                check_image(image, &model, &inflight, point, finished)
                    .map_err(|m| fail(step, format!("cut at op {point}/{}: {m}", ops.len())))?;
                stats.crash_states += 1;
            }
        }

        if let Some((image, point, finished)) = restart_image {
            // Continue the workload from a crashed state: whatever recovery found is
            // now durable and becomes the model.
            stats.restarts += 1;
            log = check_image(image, &model, &inflight, point, finished)
                .map_err(|m| fail(step, m))?;
            // Orphans (a deletion cut between its two fences) are purged, as an
            // operator would.
            let orphans: Vec<DeadLetterId> = log
                .dead_letters()
                .filter(|d| d.orphan)
                .map(|d| d.id)
                .collect();
            log.purge_dead(&orphans)
                .map_err(|e| fail(step, format!("purging orphans: {e}")))?;
            model.dead = log
                .dead_letters()
                .map(|d| {
                    let copy = log.dead_event(d.id).unwrap();
                    let m = ModelDead {
                        subscription_uid: d.subscription_uid,
                        seq: d.seq.0,
                        event: model_of(&log, &copy),
                        replay_requested: d.replay_requested,
                        delivery_count: d.delivery_count,
                    };
                    (d.id, m)
                })
                .collect();
            let checker = log.subscription_by_name(CHECKER).unwrap();
            model.cursor = checker.cursor;
            model.mode = checker.mode;
            model.paused = checker.paused;
            model.spec = checker.spec().to_vec();
            model.extra = log.subscription_by_name(EXTRA).is_some();
            model.rules = active_rules(&log);
            let (acked, released): (BTreeMap<u64, ModelEvent>, BTreeMap<u64, ModelEvent>) = log
                .events_since(log.held_from(), log.tail().0)
                .map(|e| (e.seq.0, model_of(&log, &e)))
                .partition(|(seq, _)| *seq >= model.cursor);
            model.acked = acked;
            model.released = released;
            continue;
        }
        stats.events_acked += acked_now.len() as u64;
        stats.routed_events += acked_now.values().filter(|e| e.rule.is_some()).count() as u64;
        if let Some(rules) = inflight.rules.take() {
            stats.rule_changes += 1;
            model.rules = rules;
        }
        model.acked.extend(acked_now);
        if let Some(c) = inflight.cursor {
            model.cursor = c;
        }
        if let Some(m) = inflight.mode {
            model.mode = m;
        }
        if let Some(p) = inflight.paused {
            model.paused = p;
        }
        if let Some(spec) = inflight.spec.take() {
            stats.spec_changes += 1;
            model.spec = spec;
        }
        if !inflight.unreleased.is_empty() {
            stats.resets_back += 1;
        }
        model.acked.append(&mut inflight.unreleased);
        if let Some(x) = inflight.extra {
            model.extra = x;
        }
        if let Some((id, m, _)) = inflight.dead_created.take() {
            stats.dead_letters += 1;
            model.dead.insert(id, m);
        }
        for id in &inflight.dead_purged {
            model.dead.remove(id);
        }
        if let Some(uid) = inflight.extra_deleted_uid {
            model.dead.retain(|_, m| m.subscription_uid != uid);
        }
        if let Some((id, requested, count)) = inflight.dead_status {
            let m = model.dead.get_mut(&id).unwrap();
            m.replay_requested = requested;
            m.delivery_count = count;
        }
        if closing {
            // The daemon's next start: the previous stop was clean.
            stats.clean_stops += 1;
            let (reopened, report) = Log::open(log.into_medium(), &mut |_, _| {})
                .map_err(|e| fail(step, format!("reopen after close_clean: {e}")))?;
            if report.previous_stop != PreviousStop::Clean {
                return Err(fail(
                    step,
                    format!("reopened after close_clean: {:?}", report.previous_stop),
                ));
            }
            log = reopened;
        }
        let cursor = model.cursor;
        let kept = model.acked.split_off(&cursor);
        model.released.append(&mut model.acked);
        model.acked = kept;
        // Released: below the cursor (those above went back into `acked` with a
        // reset back) and not yet overwritten.
        model.released.split_off(&cursor);
        model.released = model.released.split_off(&log.held_from().0);
        // The live log must agree with the model without any crash too.
        let live: Vec<u64> = log.events_from(Seq(cursor)).map(|e| e.seq.0).collect();
        let expected: Vec<u64> = model.acked.keys().copied().collect();
        if live != expected {
            return Err(fail(
                step,
                format!("live log {live:?} differs from model {expected:?}"),
            ));
        }
        let live_dead: Vec<(DeadLetterId, bool, u32)> = log
            .dead_letters()
            .map(|d| (d.id, d.replay_requested, d.delivery_count))
            .collect();
        let expected_dead: Vec<(DeadLetterId, bool, u32)> = model
            .dead
            .iter()
            .map(|(id, m)| (*id, m.replay_requested, m.delivery_count))
            .collect();
        if live_dead != expected_dead {
            return Err(fail(
                step,
                format!("live dead letters {live_dead:?} differ from model {expected_dead:?}"),
            ));
        }
    }
    Ok(stats)
}
