//! The explorer's checks of one recovered crash image against the model: events,
//! cursor, mode, pause, spec, subscriptions, dead letters and the run-state word, each the
//! state before the interrupted operation or, where it may have taken effect, after.

use super::{active_rules, model_of, InFlight, Model, ModelEvent, CHECKER, EXTRA};
use herald::log::{DeadProblemKind, Log, PreviousStop, Seq};
use herald::pmem::sim::SimMedium;
use herald::pmem::Medium;
use std::collections::BTreeMap;

/// What recovery may find for a state the interrupted operation was changing: the
/// new value once it returned; before that, the old or the new one.
fn allowed<T: PartialEq>(found: T, before: T, changing_to: Option<T>, finished: bool) -> bool {
    match changing_to {
        Some(new) if finished => found == new,
        Some(new) => found == new || found == before,
        None => found == before,
    }
}

/// Checks the recovered run-state word and dead letters against the model, for a cut
/// after `point` ops of the interrupted step.
fn check_dead_and_stop(
    log: &Log<SimMedium>,
    report: &herald::log::RecoveryReport,
    before: &Model,
    inflight: &InFlight,
    point: usize,
    finished: bool,
) -> Result<(), String> {
    let stop = report.previous_stop;
    let store_applied = inflight.close_clean_store.is_some_and(|at| point > at);
    let stop_ok = match stop {
        PreviousStop::Unknown => false,
        PreviousStop::Clean => store_applied,
        PreviousStop::Unclean => !(finished && inflight.close_clean_store.is_some()),
    };
    if !stop_ok {
        return Err(format!(
            "previous stop {stop:?} (close_clean's store at op {:?}, cut at op {point}, finished {finished})",
            inflight.close_clean_store
        ));
    }
    // While `extra` is being deleted, its letters may be orphans (deleted entry, purge
    // not yet durable); nothing else may be reported, ever.
    let deleting = |uid: u64| !finished && inflight.extra_deleted_uid == Some(uid);
    for p in &report.dead_letter_problems {
        let orphan_ok = p.kind == DeadProblemKind::Orphan
            && log
                .dead_letter_info(p.id)
                .is_some_and(|d| deleting(d.subscription_uid));
        if !orphan_ok {
            return Err(format!("a power cut produced a dead-letter problem: {p:?}"));
        }
    }
    for d in log.dead_letters() {
        let expected = before.dead.get(&d.id).or_else(|| {
            inflight
                .dead_created
                .as_ref()
                .filter(|c| c.0 == d.id)
                .map(|c| &c.1)
        });
        let Some(m) = expected else {
            return Err(format!(
                "dead letter {} appeared that was never created: {d:?}",
                d.id
            ));
        };
        let purging = inflight.dead_purged.contains(&d.id)
            || inflight.extra_deleted_uid == Some(m.subscription_uid);
        if purging && finished {
            return Err(format!("purged dead letter {} came back", d.id));
        }
        if d.orphan && !deleting(m.subscription_uid) {
            return Err(format!("dead letter {} is an orphan: {d:?}", d.id));
        }
        let copy = log
            .dead_event(d.id)
            .ok_or("a listed dead letter has no copy")?;
        if d.seq.0 != m.seq
            || copy.seq.0 != m.seq
            || d.subscription_uid != m.subscription_uid
            || model_of(log, &copy) != m.event
            || copy.source != b"powercut"
        {
            return Err(format!(
                "dead letter {} recovered with different content: {d:?}",
                d.id
            ));
        }
        let status = (d.replay_requested, d.delivery_count);
        let old = (m.replay_requested, m.delivery_count);
        let changing = inflight
            .dead_status
            .filter(|s| s.0 == d.id)
            .map(|s| (s.1, s.2));
        if !allowed(status, old, changing, finished) {
            return Err(format!(
                "dead letter {} has status {status:?}, model {old:?} (changing to {changing:?}, finished {finished})",
                d.id
            ));
        }
    }
    for (id, m) in &before.dead {
        let purging = inflight.dead_purged.contains(id)
            || inflight.extra_deleted_uid == Some(m.subscription_uid);
        if !purging && log.dead_letter_info(*id).is_none() {
            return Err(format!("dead letter {id} (seq {}) lost", m.seq));
        }
    }
    if let Some((id, m, returned_at)) = &inflight.dead_created {
        if point >= *returned_at && log.dead_letter_info(*id).is_none() {
            return Err(format!(
                "dead letter {id} (seq {}) lost after its creation returned (cut at op {point})",
                m.seq
            ));
        }
    }
    Ok(())
}

/// Recovers `image` and checks it against the model. Returns the recovered log.
pub(super) fn check_image(
    image: Vec<u8>,
    before: &Model,
    inflight: &InFlight,
    point: usize,
    finished: bool,
) -> Result<Log<SimMedium>, String> {
    let (log, report) = Log::open(SimMedium::from_image(image), &mut |_, _| {})
        .map_err(|e| format!("recovery failed: {e}"))?;
    check_dead_and_stop(&log, &report, before, inflight, point, finished)?;
    if report.corrupt_slots != 0 {
        return Err(format!("a power cut produced corrupt slots: {report:?}"));
    }
    if !report.damaged_rules.is_empty() {
        return Err(format!(
            "a power cut damaged rule entries {:?}",
            report.damaged_rules
        ));
    }
    let rules = active_rules(&log);
    if !allowed(
        rules.clone(),
        before.rules.clone(),
        inflight.rules.clone(),
        finished,
    ) {
        return Err(format!(
            "recovered active rules {rules:?}, model {:?} (changing to {:?}, finished {finished})",
            before.rules, inflight.rules
        ));
    }
    if !report.subscription_problems.is_empty() {
        return Err(format!(
            "a power cut damaged a subscription: {:?}",
            report.subscription_problems
        ));
    }
    let checkers: Vec<_> = log
        .subscriptions()
        .filter(|s| s.name() == CHECKER)
        .copied()
        .collect();
    let [checker] = checkers[..] else {
        return Err(format!(
            "{} entries of the checker after recovery",
            checkers.len()
        ));
    };
    let sub = checker.id;
    let spec = checker.spec().to_vec();
    if !allowed(
        spec.clone(),
        before.spec.clone(),
        inflight.spec.clone(),
        finished,
    ) {
        return Err(format!(
            "recovered spec {:?}, model {:?} (changing to {:?}, finished {finished})",
            String::from_utf8_lossy(&spec),
            String::from_utf8_lossy(&before.spec),
            inflight.spec.as_deref().map(String::from_utf8_lossy)
        ));
    }
    let mode = checker.mode;
    if !allowed(mode, before.mode, inflight.mode, finished) {
        return Err(format!(
            "recovered mode {mode:?}, model {:?} (changing to {:?}, finished {finished})",
            before.mode, inflight.mode
        ));
    }
    let extra = log.subscription_by_name(EXTRA).is_some();
    if !allowed(extra, before.extra, inflight.extra, finished) {
        return Err(format!("subscription `extra` exists: {extra}, model {} (changing to {:?}, finished {finished})", before.extra, inflight.extra));
    }
    let paused = checker.paused;
    if !allowed(paused, before.paused, inflight.paused, finished) {
        return Err(format!(
            "recovered paused {paused}, model {} (changing to {:?}, finished {finished})",
            before.paused, inflight.paused
        ));
    }
    let cursor = checker.cursor;
    let allowed_cursor = match (inflight.cursor, finished) {
        (Some(c), true) => cursor == c,
        (Some(c), false) => cursor == c || cursor == before.cursor,
        (None, _) => cursor == before.cursor,
    };
    if !allowed_cursor {
        let at = log.geometry().subscription_offset(sub.0)
            + herald::log::layout::SUBSCRIPTION_CURSORS_OFFSET;
        let records: [herald::log::layout::CursorRecord; 2] =
            bytemuck::pod_read_unaligned(&log.medium().bytes()[at..at + 64]);
        eprintln!("cursor records: {records:?}");
        return Err(format!("recovered cursor {cursor}, model {} (in flight {:?}, finished {finished}); report {report:?}", before.cursor, inflight.cursor));
    }
    let recovered: Vec<(u64, ModelEvent)> = log
        .events_from(Seq(cursor))
        .map(|e| (e.seq.0, model_of(&log, &e)))
        .collect();
    if recovered.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err("events recovered out of order".into());
    }
    let by_seq: BTreeMap<u64, &ModelEvent> = recovered.iter().map(|(s, e)| (*s, e)).collect();
    // A cursor that went back owes the released events it went back over.
    let owed = before
        .acked
        .range(cursor..)
        .chain(inflight.unreleased.range(cursor..));
    for (seq, expected) in owed {
        match by_seq.get(seq) {
            Some(got) if *got == expected => {}
            Some(_) => {
                return Err(format!(
                    "acknowledged event {seq} recovered with different content"
                ))
            }
            None => {
                return Err(format!(
                    "acknowledged event {seq} lost (cursor {cursor}, report {report:?})"
                ))
            }
        }
    }
    // Once an abandoned batch's rollback returned, its events must be gone.
    let inflight_may_appear = !finished || inflight.committed;
    for (seq, got) in &recovered {
        // Every version that may legitimately sit at this position now.
        let candidates = [
            before.acked.get(seq),
            inflight.unreleased.get(seq),
            inflight.events.get(seq).filter(|_| inflight_may_appear),
            // A rolled-back record is invalidated before the batch's fence.
            inflight.rolled_back.get(seq).filter(|_| !finished),
        ];
        if candidates.iter().flatten().any(|e| *e == got) {
            continue;
        }
        if candidates.iter().any(|c| c.is_some()) {
            return Err(format!("event {seq} recovered with different content"));
        }
        if inflight.events.contains_key(seq) || inflight.rolled_back.contains_key(seq) {
            return Err(format!("event {seq} survived its rollback"));
        }
        return Err(format!("event {seq} recovered that was never written"));
    }
    if finished && inflight.committed {
        for seq in inflight.events.keys() {
            if *seq >= cursor && !by_seq.contains_key(seq) {
                return Err(format!(
                    "event {seq} acknowledged by a finished append is missing"
                ));
            }
        }
    }
    Ok(log)
}
