//! Fan-out: each attached subscription gets what it is owed, in this order: due
//! redeliveries, a dead letter an operator asked to replay, then the durable events
//! after its position that match its filters (held at the replay's end while it is
//! recovering), within its window and its sink's room. A durable subscription without
//! a sink holds the first event meant for it and lets the ones before go.
//!
//! A work-queue group's members are pumped one after another, the least loaded first
//! (equally loaded ones in turn),
//! each within its own window; a redelivery goes to a member other than the one that
//! failed to settle it in time, while there is another.

use super::dead::DeadQueue;
use super::sink::{Offer, Sink};
use crate::log::{EventView, Log, Seq};
use crate::pmem::Medium;
use crate::protocol::DeliverRule;
use crate::routing::Routes;
use crate::subscription::{Due, Sent, SubscriptionState};

/// What fan-out reads: the stored events, and the rules that routed them.
pub struct Stored<'a, M: Medium> {
    /// The log.
    pub log: &'a Log<M>,
    /// The routing rules.
    pub routes: &'a Routes,
}

impl<M: Medium> Stored<'_, M> {
    /// The rule version that routed `e`, as a delivery names it.
    fn rule_of(&self, e: &EventView<'_>) -> Option<DeliverRule> {
        self.routes.rule_of(e.route, e.seq.0).map(|r| DeliverRule {
            id: r.id,
            version: r.version,
        })
    }
}

/// Sends attached subscription `index`'s member `member` (whose sink is `sink`) what
/// it is owed, reading the log up to `end` (what the durability gate has released).
#[allow(clippy::too_many_arguments)]
pub fn pump<M: Medium>(
    stored: &Stored<'_, M>,
    end: u64,
    index: usize,
    sub: &mut SubscriptionState,
    member: u8,
    sink: &mut dyn Sink,
    now: u64,
    dead: &mut DeadQueue,
) {
    let log = stored.log;
    if !sink.accepts() {
        return;
    }
    let others = sub.members.count() > 1;
    loop {
        // Asked even with the member's window full: asking is what turns missed
        // deadlines into redeliveries (and frees the window).
        let due = if others {
            sub.tracker.due_for_other(now, member)
        } else {
            sub.tracker.due(now)
        };
        let Some(due) = due else {
            break;
        };
        let due = match due {
            Due::Exhausted { seq, .. } if !sink.gives_up() => Due::Redeliver { seq },
            other => other,
        };
        match due {
            // It stays due: another member, or this one once it has room, sends it.
            Due::Redeliver { .. } if !sub.members.has_room(member, &sub.tracker) => break,
            Due::Redeliver { seq } => {
                let Some(e) = log.read(Seq(seq)) else {
                    // Cannot happen while the cursor holds it; never loop on it.
                    tracing::error!(seq, "an unsettled event is not readable; settling it");
                    sub.tracker.settle(seq);
                    continue;
                };
                let tracker = &mut sub.tracker;
                let rule = stored.rule_of(&e);
                match sink.offer(&e, rule, &mut || tracker.resent_to(seq, now, member)) {
                    Offer::Sent => sub.redelivered += 1,
                    Offer::NoRoom => return,
                    Offer::Undeliverable => {
                        sub.tracker.settle(seq);
                    }
                }
            }
            Due::Exhausted { seq, deliveries } => {
                dead.exhausted(index, sub, seq, deliveries, now);
            }
        }
    }
    replay_dead_letter(log, index, sub, sink, now, dead);
    let end = sub.replay_end.map_or(end, |r| r.min(end));
    let mut events = log.events_since(Seq(sub.tracker.next()), end);
    while sub.tracker.has_room() && sub.members.has_room(member, &sub.tracker) {
        let Some(e) = events.next() else {
            sub.tracker
                .skip_to(events.next_position().max(sub.tracker.next()));
            break;
        };
        let next = e.seq.0 + e.span as u64;
        if !sub.wants(&e, stored.routes, log) {
            sub.tracker.skip_to(next);
            continue;
        }
        let tracker = &mut sub.tracker;
        let rule = stored.rule_of(&e);
        match sink.offer(&e, rule, &mut || {
            tracker.sent_to(e.seq.0, next, now, member)
        }) {
            Offer::Sent => {}
            Offer::NoRoom => return,
            Offer::Undeliverable => {
                tracing::warn!(
                    seq = e.seq.0,
                    "stored event is not deliverable over the protocol; skipping it"
                );
                sub.tracker.skip_to(next);
            }
        }
    }
    if let Some(replay_end) = sub.replay_end {
        let reached = sub.tracker.next() >= replay_end;
        if let Some(m) = sub.members.get_mut(member) {
            if !m.recovery_done_sent && reached && sink.recovery_done() {
                m.recovery_done_sent = true;
            }
        }
    }
}

/// Sends the next dead letter an operator asked to replay, one at a time; a replay not
/// settled within the deadline stays a dead letter.
fn replay_dead_letter<M: Medium>(
    log: &Log<M>,
    index: usize,
    sub: &mut SubscriptionState,
    sink: &mut dyn Sink,
    now: u64,
    dead: &mut DeadQueue,
) {
    if let Some(r) = sub.replaying {
        if !r.settled && now >= r.deadline {
            dead.replay_outcome(index, sub, r.seq..=r.seq, false);
        }
        return;
    }
    let (Some(id), true) = (sub.durable, sub.dead_replays > 0) else {
        return;
    };
    let next = log.dead_letters_of(id).find(|d| d.replay_requested);
    let Some(d) = next.copied() else {
        sub.dead_replays = 0;
        return;
    };
    let Some(e) = log.dead_event(d.id) else {
        return;
    };
    let deliveries = d.delivery_count.saturating_add(1);
    let mut sent = || Sent {
        redelivered: true,
        delivery_count: deliveries.min(u32::from(u16::MAX)) as u16,
    };
    // A dead letter goes to its own subscription only: no rule routes a replay.
    if let Offer::Sent = sink.offer(&e, None, &mut sent) {
        sub.replaying = Some(crate::subscription::DeadReplay {
            id: d.id,
            seq: d.seq.0,
            deliveries,
            deadline: now.saturating_add(sub.tracker.policy().ack_deadline_ns),
            settled: false,
        });
    }
}

/// A durable subscription without a sink holds the first event meant for it; events
/// before that, not meant for it, are passed so they can be released.
pub fn hold<M: Medium>(stored: &Stored<'_, M>, end: u64, sub: &mut SubscriptionState) {
    let log = stored.log;
    if sub.tracker.in_flight() > 0 {
        return;
    }
    let mut events = log.events_since(Seq(sub.tracker.next()), end);
    loop {
        match events.next() {
            Some(e) if sub.wants(&e, stored.routes, log) => return,
            Some(e) => sub.tracker.skip_to(e.seq.0 + e.span as u64),
            None => {
                sub.tracker
                    .skip_to(events.next_position().max(sub.tracker.next()));
                return;
            }
        }
    }
}
