//! Per-subscription delivery bookkeeping: what was sent, when it is due again, what is
//! settled, and the cursor that may be made durable.
//!
//! The cursor is the oldest event still owed to the subscriber: the first unsettled
//! event in flight, or, with nothing in flight, the next position to examine. Every
//! position below it is settled (confirmed, rejected or dead-lettered) or was not
//! meant for this subscription.
//!
//! Time is the caller's monotonic clock in nanoseconds; the tracker never reads a
//! clock itself, so tests drive it deterministically.
//!
//! A work-queue group's members share one tracker: each entry remembers the member it
//! was last sent to, which alone settles, naks or extends it, and the tracker counts
//! what each member holds, so that fan-out keeps each within its own window. A plain
//! subscription is a group of one, member 0.

use crate::event::limits::WINDOW_EVENTS_MAX;
use std::collections::VecDeque;

/// Most members of one work-queue group (a plain subscription has one).
pub const MEMBERS_MAX: usize = 16;

/// How unsettled events come back: the deadline after each delivery, the backoff
/// before a redelivery, and how many deliveries an event gets.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// An event not settled this long after a delivery is due again.
    pub ack_deadline_ns: u64,
    /// Delay before the first redelivery after a missed deadline; doubles each time.
    pub backoff_ns: u64,
    /// Longest backoff.
    pub backoff_max_ns: u64,
    /// Deliveries before the event is given up on (dead-lettered). At least 1.
    pub max_deliveries: u16,
}

impl Policy {
    /// The wait before redelivering an event that has had `deliveries` deliveries.
    pub fn backoff(&self, deliveries: u16) -> u64 {
        let doublings = u32::from(deliveries.saturating_sub(1)).min(32);
        self.backoff_ns
            .saturating_mul(1u64 << doublings)
            .min(self.backoff_max_ns)
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum State {
    /// Delivered; due again at `deadline` unless settled or extended.
    Sent {
        deadline: u64,
    },
    /// Owed a redelivery at `due` (deadline missed, nak, or the subscriber went away).
    Waiting {
        due: u64,
    },
    Settled,
}

#[derive(Copy, Clone, Debug)]
struct InFlight {
    seq: u64,
    deliveries: u16,
    state: State,
    /// The member it was last sent to.
    member: u8,
}

/// What sending an event means for the subscriber.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// It was delivered before (before a deadline, a nak, a disconnect or a restart).
    pub redelivered: bool,
    /// Deliveries including this one, as far as this process knows (a restart counts
    /// as one earlier delivery).
    pub delivery_count: u16,
}

/// An event whose redelivery is due now.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Due {
    /// Send it again (then call [`Tracker::resent`]).
    Redeliver {
        /// The event.
        seq: u64,
    },
    /// It has had its deliveries: dead-letter it, then [`Tracker::settle`] it (or
    /// [`Tracker::postpone`] if that failed).
    Exhausted {
        /// The event.
        seq: u64,
        /// Deliveries it had.
        deliveries: u16,
    },
}

/// Window, in-flight events and cursor of one subscription. Allocates its window once.
#[derive(Debug)]
pub struct Tracker {
    window: u32,
    policy: Policy,
    in_flight: VecDeque<InFlight>,
    /// Entries of `in_flight` not settled.
    unsettled: u32,
    /// Next ring position to examine.
    next: u64,
    /// Positions below this were (or may have been) delivered before a restart.
    delivered_below: u64,
    /// No entry is due before this time (a lower bound: scanning earlier finds nothing).
    next_due: u64,
    /// Where the last `due` scan stopped, so that handing out many due events at one
    /// `now` (a reconnect owes the whole window) scans the list once, not once each.
    resume: Resume,
    /// Per member: entries sent to it and neither settled nor due again.
    held: [u16; MEMBERS_MAX],
}

/// A sent entry whose deadline passed by `now` waits for its backoff instead.
fn expire(held: &mut [u16; MEMBERS_MAX], f: &mut InFlight, now: u64, policy: &Policy) {
    if let State::Sent { deadline } = f.state {
        if deadline <= now {
            unhold(held, f);
            f.state = State::Waiting {
                due: now.saturating_add(policy.backoff(f.deliveries)),
            };
        }
    }
}

/// What a due entry is owed: another delivery, or a dead letter once it had its
/// deliveries.
fn verdict(f: &InFlight, policy: &Policy) -> Due {
    if f.deliveries >= policy.max_deliveries {
        Due::Exhausted {
            seq: f.seq,
            deliveries: f.deliveries,
        }
    } else {
        Due::Redeliver { seq: f.seq }
    }
}

/// An entry leaves the `Sent` state: its member holds one fewer.
fn unhold(held: &mut [u16; MEMBERS_MAX], f: &InFlight) {
    if matches!(f.state, State::Sent { .. }) {
        held[f.member as usize] -= 1;
    }
}

/// A `due` scan at `now` found entries `..from` not due, the earliest of them due
/// again at `min_before`. Invalid once `now` changes or an entry before `from` does.
#[derive(Copy, Clone, Debug)]
struct Resume {
    now: u64,
    from: usize,
    min_before: u64,
}

impl Resume {
    const NONE: Resume = Resume {
        now: u64::MAX,
        from: 0,
        min_before: u64::MAX,
    };
}

impl Tracker {
    /// Starts at `cursor`. Events below `delivered_below` count as redeliveries (after a
    /// restart: everything that was in the ring).
    pub fn new(cursor: u64, window: u32, delivered_below: u64, policy: Policy) -> Tracker {
        Tracker {
            window: window.clamp(1, WINDOW_EVENTS_MAX),
            policy: Policy {
                max_deliveries: policy.max_deliveries.max(1),
                ..policy
            },
            in_flight: VecDeque::with_capacity(WINDOW_EVENTS_MAX as usize),
            unsettled: 0,
            next: cursor,
            delivered_below,
            next_due: u64::MAX,
            resume: Resume::NONE,
            held: [0; MEMBERS_MAX],
        }
    }

    /// Changes the window and policy (a subscriber reconnecting may ask for others).
    pub fn configure(&mut self, window: u32, policy: Policy) {
        self.window = window.clamp(1, WINDOW_EVENTS_MAX);
        self.policy = Policy {
            max_deliveries: policy.max_deliveries.max(1),
            ..policy
        };
    }

    /// The policy in force.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Whether another new event may be sent. Entries kept for settled events count
    /// too, so the in-flight list never outgrows what was allocated.
    pub fn has_room(&self) -> bool {
        self.unsettled < self.window && self.in_flight.len() < WINDOW_EVENTS_MAX as usize
    }

    /// Events sent and not yet settled.
    pub fn in_flight(&self) -> usize {
        self.unsettled as usize
    }

    /// Events owed a redelivery (waiting for their backoff or for the subscriber).
    pub fn waiting(&self) -> usize {
        self.in_flight
            .iter()
            .filter(|f| matches!(f.state, State::Waiting { .. }))
            .count()
    }

    /// The earliest acknowledgement deadline of an event delivered and not settled
    /// (monotonic ns), if any: what `status` shows, so a test can see `working` move it.
    pub fn deadline_min(&self) -> Option<u64> {
        self.in_flight
            .iter()
            .filter_map(|f| match f.state {
                State::Sent { deadline } => Some(deadline),
                _ => None,
            })
            .min()
    }

    /// Next ring position to examine.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// An examined record was not for this subscription; `next` is the position after it.
    pub fn skip_to(&mut self, next: u64) {
        debug_assert!(next >= self.next);
        self.next = next;
    }

    /// Events member `member` holds: sent to it, not settled, not due again.
    pub fn held_by(&self, member: u8) -> u32 {
        self.held[member as usize].into()
    }

    /// Whether `member` was the last to be sent `seq`, which is unsettled: what it
    /// may settle, nak or extend.
    pub fn holds(&self, seq: u64, member: u8) -> bool {
        self.position(seq)
            .and_then(|i| self.in_flight.get(i))
            .is_some_and(|f| f.member == member && f.state != State::Settled)
    }

    /// The new event at `seq` (ending before `end`) was sent at `now` (to member 0).
    pub fn sent(&mut self, seq: u64, end: u64, now: u64) -> Sent {
        self.sent_to(seq, end, now, 0)
    }

    /// The new event at `seq` (ending before `end`) was sent at `now` to `member`.
    pub fn sent_to(&mut self, seq: u64, end: u64, now: u64, member: u8) -> Sent {
        assert!(self.has_room(), "caller checks the window");
        debug_assert!(seq >= self.next && end > seq);
        let redelivered = seq < self.delivered_below;
        let deliveries = if redelivered { 2 } else { 1 };
        let deadline = now.saturating_add(self.policy.ack_deadline_ns);
        self.in_flight.push_back(InFlight {
            seq,
            deliveries,
            state: State::Sent { deadline },
            member,
        });
        self.held[member as usize] += 1;
        self.unsettled += 1;
        self.next = end;
        self.next_due = self.next_due.min(deadline);
        Sent {
            redelivered,
            delivery_count: deliveries,
        }
    }

    /// The oldest event whose redelivery is due at `now`, if any. Missed deadlines
    /// turn into waits of the backoff first. Cheap when nothing can be due yet.
    pub fn due(&mut self, now: u64) -> Option<Due> {
        if now < self.next_due {
            return None;
        }
        let policy = self.policy;
        let (from, mut next_due) = if self.resume.now == now {
            (self.resume.from, self.resume.min_before)
        } else {
            (0, u64::MAX)
        };
        let mut found = None;
        for (i, f) in self.in_flight.iter_mut().enumerate().skip(from) {
            expire(&mut self.held, f, now, &policy);
            match f.state {
                State::Waiting { due } if due <= now && found.is_none() => {
                    found = Some(verdict(f, &policy));
                    // The caller acts on this one and asks again: resume here, and
                    // keep `next_due` at now until a scan finds nothing.
                    self.resume = Resume {
                        now,
                        from: i,
                        min_before: next_due,
                    };
                    self.next_due = now;
                    return found;
                }
                State::Waiting { due } => next_due = next_due.min(due),
                State::Sent { deadline } => next_due = next_due.min(deadline),
                State::Settled => {}
            }
        }
        self.resume = Resume::NONE;
        self.next_due = next_due;
        found
    }

    /// Like [`Tracker::due`], for a member of a group of several: the oldest due
    /// event that `member` was not the last to be sent, so that what one member
    /// failed to settle in time (or nak'd) goes to another. Scans the whole list each
    /// call (groups only: a plain subscription uses `due`).
    pub fn due_for_other(&mut self, now: u64, member: u8) -> Option<Due> {
        if now < self.next_due {
            return None;
        }
        let policy = self.policy;
        let mut next_due = u64::MAX;
        let mut found = None;
        for f in self.in_flight.iter_mut() {
            expire(&mut self.held, f, now, &policy);
            match f.state {
                State::Waiting { due } if due <= now && f.member != member => {
                    found = Some(verdict(f, &policy));
                    next_due = now;
                    break;
                }
                State::Waiting { due } => next_due = next_due.min(due),
                State::Sent { deadline } => next_due = next_due.min(deadline),
                State::Settled => {}
            }
        }
        self.resume = Resume::NONE;
        self.next_due = next_due;
        found
    }

    /// No event is due before this time (`u64::MAX`: nothing in flight has a
    /// deadline). The daemon sleeps no longer than this.
    pub fn next_due(&self) -> u64 {
        self.next_due
    }

    /// The due event `seq` was sent again at `now` (to member 0).
    pub fn resent(&mut self, seq: u64, now: u64) -> Sent {
        self.resent_to(seq, now, 0)
    }

    /// The due event `seq` was sent again at `now`, to `member`.
    pub fn resent_to(&mut self, seq: u64, now: u64, member: u8) -> Sent {
        let deadline = now.saturating_add(self.policy.ack_deadline_ns);
        let Some(i) = self.position(seq) else {
            panic!("resent({seq}) of an event not in flight");
        };
        let f = &mut self.in_flight[i];
        unhold(&mut self.held, f);
        f.deliveries = f.deliveries.saturating_add(1);
        f.state = State::Sent { deadline };
        f.member = member;
        self.held[member as usize] += 1;
        let count = f.deliveries;
        self.next_due = self.next_due.min(deadline);
        Sent {
            redelivered: true,
            delivery_count: count,
        }
    }

    /// `seq` is to become a dead letter (rejected or exhausted): it is not delivered
    /// again, and if the dead letter cannot be written it comes back as
    /// [`Due::Exhausted`] after the longest backoff, to be tried again. Returns its
    /// deliveries if it was unsettled.
    pub fn postpone(&mut self, seq: u64, now: u64) -> Option<u16> {
        let due = now.saturating_add(self.policy.backoff_max_ns);
        let max = self.policy.max_deliveries;
        let i = self.position(seq)?;
        let f = &mut self.in_flight[i];
        if f.state == State::Settled {
            return None;
        }
        unhold(&mut self.held, f);
        f.state = State::Waiting { due };
        f.deliveries = f.deliveries.max(max);
        let deliveries = f.deliveries;
        self.next_due = self.next_due.min(due);
        self.resume = Resume::NONE;
        Some(deliveries)
    }

    /// Settles every in-flight event in `first..=last` (confirm, reject, dead letter);
    /// returns how many were newly settled. Sequence numbers not in flight are ignored
    /// (PROTOCOL.md: settling is idempotent).
    pub fn confirm(&mut self, first: u64, last: u64) -> usize {
        self.confirm_where(first, last, None)
    }

    /// Settles the in-flight events in `first..=last` that `member` was the last to
    /// be sent (a group member confirms only its own); returns how many.
    pub fn confirm_by(&mut self, first: u64, last: u64, member: u8) -> usize {
        self.confirm_where(first, last, Some(member))
    }

    fn confirm_where(&mut self, first: u64, last: u64, member: Option<u8>) -> usize {
        let mut newly = 0;
        for f in self.in_flight.iter_mut() {
            if f.seq > last {
                break;
            }
            let mine = member.is_none_or(|m| m == f.member);
            if f.seq >= first && f.state != State::Settled && mine {
                unhold(&mut self.held, f);
                f.state = State::Settled;
                newly += 1;
            }
        }
        self.unsettled -= newly as u32;
        // Settled entries are not due; only popping shifts the positions `resume` uses.
        if self
            .in_flight
            .front()
            .is_some_and(|f| f.state == State::Settled)
        {
            self.resume = Resume::NONE;
        }
        while self
            .in_flight
            .front()
            .is_some_and(|f| f.state == State::Settled)
        {
            self.in_flight.pop_front();
        }
        newly
    }

    /// Settles one event.
    pub fn settle(&mut self, seq: u64) -> bool {
        self.confirm(seq, seq) == 1
    }

    /// The subscriber asked for `seq` again after `delay_ns`. Returns whether it was
    /// in flight.
    pub fn nak(&mut self, seq: u64, delay_ns: u64, now: u64) -> bool {
        let due = now.saturating_add(delay_ns);
        let i = self.position(seq);
        match i.and_then(|i| self.in_flight.get_mut(i)) {
            Some(f) if matches!(f.state, State::Sent { .. }) => {
                unhold(&mut self.held, f);
                f.state = State::Waiting { due };
                self.next_due = self.next_due.min(due);
                self.resume = Resume::NONE;
                true
            }
            _ => false,
        }
    }

    /// The subscriber is still working on `seq`: its deadline starts again.
    pub fn working(&mut self, seq: u64, now: u64) -> bool {
        let deadline = now.saturating_add(self.policy.ack_deadline_ns);
        match self.find(seq) {
            Some(f) if matches!(f.state, State::Sent { .. }) => {
                f.state = State::Sent { deadline };
                true
            }
            _ => false,
        }
    }

    /// Deliveries `seq` has had, if it is unsettled and in flight.
    pub fn deliveries(&self, seq: u64) -> Option<u16> {
        self.in_flight
            .iter()
            .find(|f| f.seq == seq && f.state != State::Settled)
            .map(|f| f.deliveries)
    }

    /// Bytes of its window of in-flight events.
    pub fn footprint_bytes(&self) -> usize {
        self.in_flight.capacity() * std::mem::size_of::<InFlight>()
    }

    /// The cursor that may be made durable.
    pub fn cursor(&self) -> u64 {
        self.in_flight.front().map_or(self.next, |f| f.seq)
    }

    /// The subscriber went away: everything unsettled is owed again at once when it
    /// comes back, and keeps its delivery count (an event that makes its subscriber
    /// crash reaches the maximum and is dead-lettered instead of looping forever).
    pub fn disconnect(&mut self) {
        self.disconnect_where(None);
    }

    /// Group member `member` went away: what it held is owed again at once, to the
    /// other members (or to whoever attaches next), with its delivery count.
    pub fn disconnect_member(&mut self, member: u8) {
        self.disconnect_where(Some(member));
    }

    fn disconnect_where(&mut self, member: Option<u8>) {
        let mut owed = false;
        for f in self.in_flight.iter_mut() {
            if f.state != State::Settled && member.is_none_or(|m| m == f.member) {
                unhold(&mut self.held, f);
                f.state = State::Waiting { due: 0 };
                owed = true;
            }
        }
        if owed {
            self.next_due = 0;
        }
        self.resume = Resume::NONE;
    }

    fn find(&mut self, seq: u64) -> Option<&mut InFlight> {
        let i = self.position(seq)?;
        self.in_flight.get_mut(i)
    }

    fn position(&self, seq: u64) -> Option<usize> {
        // In flight entries are in seq order.
        self.in_flight.binary_search_by_key(&seq, |f| f.seq).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn policy() -> Policy {
        Policy {
            ack_deadline_ns: 100 * MS,
            backoff_ns: 10 * MS,
            backoff_max_ns: 40 * MS,
            max_deliveries: 3,
        }
    }

    #[test]
    fn the_cursor_is_the_oldest_unsettled_event() {
        let mut t = Tracker::new(10, 3, 0, policy());
        t.skip_to(12);
        assert_eq!(t.cursor(), 12);
        t.sent(12, 13, 0);
        t.sent(13, 15, 0);
        t.sent(15, 16, 0);
        assert!(!t.has_room());
        assert_eq!(t.cursor(), 12);
        assert_eq!(t.confirm(13, 13), 1);
        assert_eq!(t.cursor(), 12, "12 still owed");
        assert_eq!(t.confirm(12, 12), 1);
        assert_eq!(t.cursor(), 15);
        assert_eq!(t.confirm(1, 100), 1);
        assert_eq!(t.cursor(), 16);
        assert_eq!(t.confirm(12, 15), 0, "settling again changes nothing");
    }

    #[test]
    fn a_missed_deadline_brings_the_event_back_after_a_doubling_backoff() {
        let mut t = Tracker::new(1, 8, 0, policy());
        t.sent(1, 2, 0);
        t.sent(2, 3, 0);
        assert_eq!(t.due(99 * MS), None, "deadline not reached");
        assert_eq!(t.due(100 * MS), None, "missed: now waiting for the backoff");
        assert_eq!(t.waiting(), 2);
        assert_eq!(t.due(109 * MS), None);
        assert_eq!(t.due(110 * MS), Some(Due::Redeliver { seq: 1 }));
        let again = t.resent(1, 110 * MS);
        assert_eq!(
            again,
            Sent {
                redelivered: true,
                delivery_count: 2
            }
        );
        assert_eq!(t.due(110 * MS), Some(Due::Redeliver { seq: 2 }));
        t.resent(2, 110 * MS);
        assert_eq!(t.due(110 * MS), None);
        // Second miss: backoff 20 ms.
        assert_eq!(t.due(210 * MS), None);
        assert_eq!(t.due(229 * MS), None);
        assert_eq!(t.due(230 * MS), Some(Due::Redeliver { seq: 1 }));
        t.resent(1, 230 * MS);
        t.confirm(2, 2);
        // Third delivery missed too: exhausted.
        assert_eq!(t.due(330 * MS), None);
        assert_eq!(
            t.due(330 * MS + 40 * MS),
            Some(Due::Exhausted {
                seq: 1,
                deliveries: 3
            })
        );
        assert!(t.settle(1));
        assert_eq!(t.cursor(), 3);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn working_extends_and_nak_delays() {
        let mut t = Tracker::new(1, 8, 0, policy());
        t.sent(1, 2, 0);
        t.sent(2, 3, 0);
        assert_eq!(t.deadline_min(), Some(100 * MS));
        assert!(t.working(1, 90 * MS));
        assert!(t.nak(2, 5 * MS, 50 * MS));
        assert_eq!(t.deadline_min(), Some(190 * MS), "1 extended, 2 waiting");
        assert_eq!(t.due(54 * MS), None);
        assert_eq!(t.due(55 * MS), Some(Due::Redeliver { seq: 2 }));
        t.resent(2, 55 * MS);
        assert_eq!(t.due(150 * MS), None, "1's deadline was extended to 190 ms");
        assert_eq!(t.due(190 * MS), None, "missed at 190: backoff");
        assert_eq!(t.due(200 * MS), Some(Due::Redeliver { seq: 1 }));
        assert!(!t.working(7, 0), "not in flight");
        assert!(!t.nak(7, 0, 0));
    }

    #[test]
    fn a_disconnect_keeps_delivery_counts_so_poison_events_end_as_dead_letters() {
        let mut t = Tracker::new(1, 8, 0, policy());
        assert!(!t.sent(1, 2, 0).redelivered);
        t.sent(2, 3, 0);
        t.confirm(2, 2);
        for attempt in 2..=3u16 {
            t.disconnect();
            assert_eq!(t.due(0), Some(Due::Redeliver { seq: 1 }));
            assert_eq!(t.resent(1, 0).delivery_count, attempt);
        }
        t.disconnect();
        assert_eq!(
            t.due(0),
            Some(Due::Exhausted {
                seq: 1,
                deliveries: 3
            })
        );
        assert_eq!(t.postpone(1, 0), Some(3));
        assert_eq!(t.due(39 * MS), None, "retried after the longest backoff");
        assert_eq!(
            t.due(40 * MS),
            Some(Due::Exhausted {
                seq: 1,
                deliveries: 3
            })
        );
        t.settle(1);
        assert_eq!(t.cursor(), 3);
        assert!(!t.sent(3, 4, 0).redelivered, "never sent before");
    }

    #[test]
    fn a_rejected_event_is_never_sent_again_and_retries_as_exhausted() {
        let mut t = Tracker::new(1, 8, 0, policy());
        t.sent(1, 2, 0);
        assert_eq!(t.postpone(1, 0), Some(3), "counts as exhausted");
        assert_eq!(t.due(39 * MS), None);
        assert_eq!(
            t.due(40 * MS),
            Some(Due::Exhausted {
                seq: 1,
                deliveries: 3
            })
        );
        assert!(t.settle(1));
        assert_eq!(t.postpone(1, 0), None, "settled");
    }

    #[test]
    fn a_reconnect_owing_the_whole_window_hands_each_event_out_once_in_order() {
        let mut t = Tracker::new(1, WINDOW_EVENTS_MAX, 0, policy());
        for s in 1..=WINDOW_EVENTS_MAX as u64 {
            t.sent(s, s + 1, 0);
        }
        // Some settled, one nak'd to later: they are not handed out.
        t.confirm(10, 19);
        t.nak(30, 500 * MS, 0);
        t.disconnect();
        let mut handed = Vec::new();
        while let Some(Due::Redeliver { seq }) = t.due(MS) {
            t.resent(seq, MS);
            handed.push(seq);
            if seq == 100 {
                // A confirm in the middle shifts nothing the scan relies on.
                t.confirm(1, 5);
            }
        }
        let expected: Vec<u64> = (1..=WINDOW_EVENTS_MAX as u64)
            .filter(|s| !(10..=19).contains(s))
            .collect();
        assert_eq!(
            handed, expected,
            "the nak'd one too: a disconnect owes it at once"
        );
        assert_eq!(t.due(MS), None);
        assert_eq!(t.next_due(), MS + 100 * MS, "the next deadline");
    }

    #[test]
    fn events_from_before_a_restart_count_one_earlier_delivery() {
        let mut t = Tracker::new(1, 8, 5, policy());
        assert_eq!(
            t.sent(4, 5, 0),
            Sent {
                redelivered: true,
                delivery_count: 2
            }
        );
        assert_eq!(
            t.sent(5, 6, 0),
            Sent {
                redelivered: false,
                delivery_count: 1
            }
        );
    }

    #[test]
    fn windows_are_clamped_to_the_protocol_limit() {
        let t = Tracker::new(1, 0, 0, policy());
        assert!(t.has_room());
        let mut t = Tracker::new(1, 1_000_000, 0, policy());
        for s in 1..=WINDOW_EVENTS_MAX as u64 {
            t.sent(s, s + 1, 0);
        }
        assert!(!t.has_room());
    }

    #[test]
    fn backoff_doubles_up_to_its_maximum() {
        let p = policy();
        assert_eq!(p.backoff(1), 10 * MS);
        assert_eq!(p.backoff(2), 20 * MS);
        assert_eq!(p.backoff(3), 40 * MS);
        assert_eq!(p.backoff(60), 40 * MS);
    }
}
