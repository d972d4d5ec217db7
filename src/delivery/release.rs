//! Release: what subscriptions have settled becomes durable. Queued dead letters are
//! written (each durable before its subscription may settle the event), replayed dead
//! letters' outcomes recorded, recovering subscriptions returned to normal when they
//! are done, and every cursor that moved is persisted, all changed cursors in one
//! fence; slots below the lowest cursor may then be reused.

use super::dead::{DeadCause, DeadQueue, FULL_LOG_INTERVAL_NS, MADE_LOG_INTERVAL_NS};
use crate::log::{self, Log, Seq, SubscriptionId, SubscriptionMode};
use crate::pmem::Medium;
use crate::subscription::SubscriptionSet;

/// Runs the release stage at time `now`. `cursor_updates` is scratch space sized at
/// start-up.
pub fn release<M: Medium>(
    log: &mut Log<M>,
    subs: &mut SubscriptionSet,
    dead: &mut DeadQueue,
    cursor_updates: &mut Vec<(SubscriptionId, Seq)>,
    now: u64,
) -> Result<(), log::LogError> {
    write_dead_letters(log, subs, dead, now)?;
    record_replay_outcomes(log, subs, dead)?;
    leave_recovery(log, subs)?;
    cursor_updates.clear();
    for (_, sub) in subs.iter() {
        let Some(id) = sub.durable else { continue };
        let cursor = sub.tracker.cursor();
        let Some(persisted) = log.subscription(id).map(|s| s.cursor) else {
            continue;
        };
        // On a region synced to disk, a cursor whose last write still waits for its
        // sync moves with the next one (its progress is kept meanwhile).
        if cursor > persisted && log.cursor_writable(id) {
            cursor_updates.push((id, Seq(cursor)));
        }
    }
    if cursor_updates.is_empty() {
        return Ok(());
    }
    log.release(cursor_updates)
}

/// Turns the queued rejected and exhausted events into dead letters, each durable
/// before its subscription may settle it (and so before any cursor passes it). Those
/// the area has no room for stay queued, tried again every turn (a purge frees them at
/// once), and the log says so once, then once a minute.
fn write_dead_letters<M: Medium>(
    log: &mut Log<M>,
    subs: &mut SubscriptionSet,
    dead: &mut DeadQueue,
    now: u64,
) -> Result<(), log::LogError> {
    let mut kept = 0;
    let mut no_room = None;
    for i in 0..dead.pending.len() {
        let d = dead.pending[i];
        let Some(sub) = subs.get_mut(d.sub) else {
            continue;
        };
        let Some(id) = sub.durable else { continue };
        if sub.tracker.deliveries(d.seq).is_none() {
            continue; // settled meanwhile (a late confirm)
        }
        // Already a dead letter (written before a crash lost the cursor that passed
        // it): settle it again without a second copy.
        if log.dead_letters_of(id).any(|x| x.seq.0 == d.seq) {
            sub.tracker.settle(d.seq);
            continue;
        }
        let reason = match d.cause {
            DeadCause::Rejected => log::DeadReason::Rejected,
            DeadCause::Exhausted => log::DeadReason::MaxDeliveries,
        };
        match log.dead_letter(id, Seq(d.seq), u32::from(d.deliveries), reason) {
            Ok(_) => {
                sub.tracker.settle(d.seq);
                sub.dead_lettered += 1;
                dead.made_unlogged += 1;
                if now.saturating_sub(dead.made_logged_at) >= MADE_LOG_INTERVAL_NS {
                    let name = log.subscription(id).map_or(&b""[..], |e| e.name());
                    tracing::warn!(events = dead.made_unlogged, last_subscription = %String::from_utf8_lossy(name), last_seq = d.seq, last_cause = ?d.cause, "events moved to their subscriptions' dead letters (`herald dead list`)");
                    dead.made_unlogged = 0;
                    dead.made_logged_at = now;
                }
            }
            Err(log::DeadLetterError::Failed(e)) => {
                dead.pending.clear();
                return Err(log::LogError::Failed(e));
            }
            Err(e @ (log::DeadLetterError::Full { .. } | log::DeadLetterError::NoArea)) => {
                // It holds the ring until there is room; kept, in order.
                no_room = Some(e);
                dead.pending[kept] = d;
                kept += 1;
            }
            Err(e) => {
                tracing::error!(seq = d.seq, error = %e, "cannot write a dead letter; the event stays with its subscription");
            }
        }
    }
    dead.pending.truncate(kept);
    match (no_room, dead.full_since) {
        (Some(e), None) => {
            dead.full_since = Some(now);
            dead.full_logged_at = now;
            tracing::warn!(waiting = kept, error = %e, "the dead-letter area has no room: events given up on wait, holding the ring, until dead letters are purged (`herald dead list`, `herald dead purge`)");
        }
        (Some(_), Some(_)) if now.saturating_sub(dead.full_logged_at) >= FULL_LOG_INTERVAL_NS => {
            dead.full_logged_at = now;
            tracing::warn!(
                waiting = kept,
                "the dead-letter area is still full; events wait for room"
            );
        }
        (None, Some(_)) => {
            dead.full_since = None;
            tracing::info!(
                "the dead-letter area has room again; the events that waited are dead letters now"
            );
        }
        _ => {}
    }
    Ok(())
}

/// Records what became of dead letters replayed on an operator's request.
fn record_replay_outcomes<M: Medium>(
    log: &mut Log<M>,
    subs: &mut SubscriptionSet,
    dead: &mut DeadQueue,
) -> Result<(), log::LogError> {
    for i in 0..dead.outcomes.len() {
        let o = dead.outcomes[i];
        let result = if o.confirmed {
            log.purge_dead(&[o.id])
        } else {
            log.set_dead_replay(o.id, false, o.deliveries)
        };
        if let Some(sub) = subs.get_mut(o.sub) {
            sub.replaying = None;
            sub.dead_replays = sub.dead_replays.saturating_sub(1);
        }
        result?;
    }
    dead.outcomes.clear();
    Ok(())
}

/// Returns recovering subscriptions to normal once they said `Recovered` or, in
/// automatic mode, once their replay is settled; persistently.
fn leave_recovery<M: Medium>(
    log: &mut Log<M>,
    subs: &mut SubscriptionSet,
) -> Result<(), log::LogError> {
    for (_, sub) in subs.iter_mut() {
        let Some(replay_end) = sub.replay_end else {
            continue;
        };
        let done = sub.leave_recovery
            || (sub.spec.automatic_recovery
                && !sub.members.is_empty()
                && sub.tracker.in_flight() == 0
                && sub.tracker.cursor() >= replay_end);
        if !done {
            continue;
        }
        if let Some(id) = sub.durable {
            log.set_mode(id, SubscriptionMode::Normal)?;
        }
        sub.replay_end = None;
        sub.leave_recovery = false;
    }
    Ok(())
}
