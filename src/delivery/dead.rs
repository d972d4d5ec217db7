//! The dead-letter queue between the stages: events that a subscription gives up on
//! (rejected, or delivered `max_deliveries` times) wait here until the release stage,
//! which owns the log for writing, copies them into the region's dead-letter area
//! before any cursor may pass them; and the outcomes of dead letters replayed on an
//! operator's request wait here until the release stage records them.

use crate::log::DeadLetterId;
use crate::subscription::{DeadReplay, SubscriptionState};

/// Most events waiting to become dead letters: a whole window of one subscription.
/// Beyond it an event stays postponed in its tracker and comes back later.
pub const DEAD_PENDING_MAX: usize = crate::event::limits::WINDOW_EVENTS_MAX as usize;
/// While the dead-letter area is full, how often the log says so again.
pub const FULL_LOG_INTERVAL_NS: u64 = 60_000_000_000;
/// How often the log says how many dead letters were made, at most.
pub const MADE_LOG_INTERVAL_NS: u64 = 1_000_000_000;

/// Why an event is to become a dead letter.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DeadCause {
    /// The subscriber rejected it.
    Rejected,
    /// It had its deliveries.
    Exhausted,
}

/// An event to turn into a dead letter in the release stage.
#[derive(Copy, Clone, Debug)]
pub struct DeadPending {
    /// The subscription's index in the set.
    pub sub: usize,
    /// The event.
    pub seq: u64,
    /// Deliveries it had.
    pub deliveries: u16,
    /// Why.
    pub cause: DeadCause,
}

/// What became of a replayed dead letter.
#[derive(Copy, Clone, Debug)]
pub struct DeadOutcome {
    /// The subscription's index in the set.
    pub sub: usize,
    /// The dead letter.
    pub id: DeadLetterId,
    /// Confirmed (purge it) or not (it stays, with one more delivery).
    pub confirmed: bool,
    /// Deliveries counting the replay.
    pub deliveries: u32,
}

/// Both queues, allocated at start-up.
pub struct DeadQueue {
    /// Events to dead-letter: queued this turn, or waiting for room in a full area (then
    /// tried again every turn, so a purge frees them at once).
    pub pending: Vec<DeadPending>,
    /// Replay outcomes to record.
    pub outcomes: Vec<DeadOutcome>,
    /// Since when (daemon clock) the area has had no room for what waits.
    pub full_since: Option<u64>,
    /// When the log last said the area is full.
    pub full_logged_at: u64,
    /// Dead letters made since the log last said how many (one line a second at most:
    /// a subscriber rejecting everything must not flood the log).
    pub made_unlogged: u64,
    /// When the log last said it.
    pub made_logged_at: u64,
}

impl DeadQueue {
    /// Queues with room for `subscriptions` replay outcomes.
    pub fn new(subscriptions: usize) -> DeadQueue {
        DeadQueue {
            pending: Vec::with_capacity(DEAD_PENDING_MAX),
            outcomes: Vec::with_capacity(subscriptions),
            full_since: None,
            full_logged_at: 0,
            made_unlogged: 0,
            made_logged_at: 0,
        }
    }

    /// Bytes of both queues.
    pub fn footprint_bytes(&self) -> usize {
        self.pending.capacity() * std::mem::size_of::<DeadPending>()
            + self.outcomes.capacity() * std::mem::size_of::<DeadOutcome>()
    }

    /// Queues `d` unless the same event of the same subscription waits already (an
    /// event postponed while the area was full comes back exhausted) or the queue is
    /// full (it stays postponed and comes back).
    fn queue(&mut self, d: DeadPending) {
        let waiting = self
            .pending
            .iter()
            .any(|p| p.sub == d.sub && p.seq == d.seq);
        if !waiting && self.pending.len() < DEAD_PENDING_MAX {
            self.pending.push(d);
        }
    }

    /// `seq` will never be processed by subscription `index`: a durable subscription
    /// keeps it as a dead letter (written before its cursor may pass it); a live-only
    /// one drops it.
    pub fn reject(&mut self, index: usize, sub: &mut SubscriptionState, seq: u64, now: u64) {
        if sub.durable.is_none() {
            if sub.tracker.settle(seq) {
                sub.dropped += 1;
            }
            return;
        }
        // The deliveries it really had (postponing counts it as exhausted).
        let Some(deliveries) = sub.tracker.deliveries(seq) else {
            return;
        };
        // Not sent again meanwhile; if the queue is full it comes back as exhausted
        // later.
        if sub.tracker.postpone(seq, now).is_some() {
            self.queue(DeadPending {
                sub: index,
                seq,
                deliveries,
                cause: DeadCause::Rejected,
            });
        }
    }

    /// `seq` of subscription `index` had its deliveries.
    pub fn exhausted(
        &mut self,
        index: usize,
        sub: &mut SubscriptionState,
        seq: u64,
        deliveries: u16,
        now: u64,
    ) {
        sub.tracker.postpone(seq, now);
        if sub.durable.is_none() {
            tracing::warn!(
                seq,
                deliveries,
                "live-only subscription gave up on an event after its maximum deliveries"
            );
            sub.tracker.settle(seq);
            sub.dropped += 1;
        } else {
            self.queue(DeadPending {
                sub: index,
                seq,
                deliveries,
                cause: DeadCause::Exhausted,
            });
        }
    }

    /// Settles a replayed dead letter whose seq is in `seqs`: `confirmed`, it is
    /// purged; otherwise it stays dead with one more delivery.
    pub fn replay_outcome(
        &mut self,
        index: usize,
        sub: &mut SubscriptionState,
        seqs: std::ops::RangeInclusive<u64>,
        confirmed: bool,
    ) {
        let Some(r) = sub.replaying.as_mut() else {
            return;
        };
        if r.settled || !seqs.contains(&r.seq) || self.outcomes.len() == self.outcomes.capacity() {
            return;
        }
        r.settled = true;
        let DeadReplay { id, deliveries, .. } = *r;
        self.outcomes.push(DeadOutcome {
            sub: index,
            id,
            confirmed,
            deliveries,
        });
    }
}
