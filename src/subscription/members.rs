//! The connections a subscription delivers to: one consumer, or the members of a
//! work-queue group that share the subscription (its tracker and durable cursor),
//! each taking events within its own window.
//!
//! A fixed table (no allocation when a member joins or leaves); a member's number is
//! its place in the table, which the tracker records with each event it was sent.

use super::set::SinkId;
use super::tracker::{Tracker, MEMBERS_MAX};

/// One connection a subscription delivers to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Where its deliveries go.
    pub sink: SinkId,
    /// Most events it holds at once.
    pub window: u32,
    /// `RecoveryDone` was sent to it.
    pub recovery_done_sent: bool,
}

/// Why a connection cannot join.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum JoinRefused {
    /// A consumer that is not a group member is attached, or a member joins
    /// something a single consumer holds.
    Taken,
    /// The group has [`MEMBERS_MAX`] members.
    Full,
}

/// The members of one subscription: none (detached), one consumer, or a group.
#[derive(Copy, Clone, Debug)]
pub struct Members {
    slots: [Option<Member>; MEMBERS_MAX],
    count: u8,
    group: bool,
    /// Which member goes first among equally loaded ones; moves on every ordering, so
    /// that fast members (all at 0 held) take turns instead of the first taking all.
    rotation: u8,
}

impl Members {
    /// Nobody attached.
    pub const NONE: Members = Members {
        slots: [None; MEMBERS_MAX],
        count: 0,
        group: false,
        rotation: 0,
    };

    /// Whether nobody is attached.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// How many are attached.
    pub fn count(&self) -> usize {
        self.count as usize
    }

    /// Whether the attached ones are a work-queue group.
    pub fn group(&self) -> bool {
        self.group && self.count > 0
    }

    /// Adds `sink` with `window` as a group member (`group`) or the one consumer;
    /// returns its member number.
    pub fn join(&mut self, sink: SinkId, window: u32, group: bool) -> Result<u8, JoinRefused> {
        if self.count > 0 && !(group && self.group) {
            return Err(JoinRefused::Taken);
        }
        let free = self.slots.iter().position(Option::is_none);
        let m = free.ok_or(JoinRefused::Full)?;
        self.slots[m] = Some(Member {
            sink,
            window,
            recovery_done_sent: false,
        });
        self.count += 1;
        self.group = group;
        Ok(m as u8)
    }

    /// Removes member `m`.
    pub fn leave(&mut self, m: u8) {
        if let Some(slot) = self.slots.get_mut(m as usize) {
            if slot.take().is_some() {
                self.count -= 1;
            }
        }
    }

    /// The member number of `sink`.
    pub fn find(&self, sink: SinkId) -> Option<u8> {
        self.slots
            .iter()
            .position(|s| s.is_some_and(|s| s.sink == sink))
            .map(|m| m as u8)
    }

    /// Member `m`.
    pub fn get(&self, m: u8) -> Option<&Member> {
        self.slots.get(m as usize).and_then(Option::as_ref)
    }

    /// Member `m`, to change it.
    pub fn get_mut(&mut self, m: u8) -> Option<&mut Member> {
        self.slots.get_mut(m as usize).and_then(Option::as_mut)
    }

    /// Every member with its number.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &Member)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(m, s)| s.as_ref().map(|s| (m as u8, s)))
    }

    /// The windows together: the most the subscription has in flight.
    pub fn window_sum(&self) -> u32 {
        self.iter().map(|(_, m)| m.window).sum()
    }

    /// Member numbers, the least loaded (held over window) first, ties in turn (from
    /// the member after the one that led last time): the order fan-out offers events
    /// in.
    /// Returns the numbers and how many.
    pub fn by_load(&mut self, tracker: &Tracker) -> ([u8; MEMBERS_MAX], usize) {
        let start = self.rotation;
        let mut order = [0u8; MEMBERS_MAX];
        let mut n = 0;
        for (m, _) in self.iter() {
            order[n] = m;
            n += 1;
        }
        // Compared as fractions without division: held_a / window_a < held_b / window_b.
        let load = |m: u8| {
            let window = self.get(m).map_or(1, |s| s.window.max(1));
            (u64::from(tracker.held_by(m)), u64::from(window))
        };
        let turn = |m: u8| (m as usize + MEMBERS_MAX - start as usize) % MEMBERS_MAX;
        order[..n].sort_unstable_by(|&a, &b| {
            let ((ha, wa), (hb, wb)) = (load(a), load(b));
            (ha * wb).cmp(&(hb * wa)).then(turn(a).cmp(&turn(b)))
        });
        if n > 0 {
            self.rotation = ((order[0] as usize + 1) % MEMBERS_MAX) as u8;
        }
        (order, n)
    }

    /// Whether member `m` may be sent another event.
    pub fn has_room(&self, m: u8, tracker: &Tracker) -> bool {
        self.get(m).is_some_and(|s| tracker.held_by(m) < s.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscription::{Due, Policy};

    fn tracker() -> Tracker {
        let policy = Policy {
            ack_deadline_ns: 100,
            backoff_ns: 10,
            backoff_max_ns: 40,
            max_deliveries: 3,
        };
        Tracker::new(1, 64, 0, policy)
    }

    #[test]
    fn one_consumer_or_a_group_never_both() {
        let mut m = Members::NONE;
        assert_eq!(m.join(SinkId(1), 8, false), Ok(0));
        assert_eq!(m.join(SinkId(2), 8, true), Err(JoinRefused::Taken));
        assert_eq!(m.join(SinkId(2), 8, false), Err(JoinRefused::Taken));
        m.leave(0);
        assert!(m.is_empty());
        assert_eq!(m.join(SinkId(3), 8, true), Ok(0));
        assert_eq!(m.join(SinkId(4), 8, true), Ok(1));
        assert_eq!(m.join(SinkId(5), 8, false), Err(JoinRefused::Taken));
        assert_eq!(m.find(SinkId(4)), Some(1));
        assert_eq!(m.window_sum(), 16);
        for i in 2..MEMBERS_MAX as u32 {
            m.join(SinkId(10 + i), 1, true).unwrap();
        }
        assert_eq!(m.join(SinkId(99), 1, true), Err(JoinRefused::Full));
    }

    #[test]
    fn the_least_loaded_member_comes_first() {
        let mut m = Members::NONE;
        m.join(SinkId(1), 4, true).unwrap();
        m.join(SinkId(2), 8, true).unwrap();
        m.join(SinkId(3), 4, true).unwrap();
        let mut t = tracker();
        t.sent_to(1, 2, 0, 0);
        t.sent_to(2, 3, 0, 0);
        t.sent_to(3, 4, 0, 1);
        t.sent_to(4, 5, 0, 1);
        // Loads: 2/4, 2/8, 0/4.
        let (order, n) = m.by_load(&t);
        assert_eq!(&order[..n], &[2, 1, 0]);
        // Equally loaded members take turns at going first.
        let idle = tracker();
        let firsts: Vec<u8> = (0..4).map(|_| m.by_load(&idle).0[0]).collect();
        assert_eq!(firsts, [0, 1, 2, 0], "after member 2 led, 0 is next");
        t.sent_to(5, 6, 0, 0);
        t.sent_to(6, 7, 0, 0);
        assert!(!m.has_room(0, &t));
        assert!(m.has_room(1, &t));
    }

    const MS: u64 = 1_000_000;

    fn policy_ms() -> Policy {
        Policy {
            ack_deadline_ns: 100 * MS,
            backoff_ns: 10 * MS,
            backoff_max_ns: 40 * MS,
            max_deliveries: 5,
        }
    }

    #[test]
    fn a_member_settles_only_what_it_holds_and_what_it_leaves_goes_to_another() {
        let mut t = Tracker::new(1, 8, 0, policy_ms());
        t.sent_to(1, 2, 0, 0);
        t.sent_to(2, 3, 0, 1);
        t.sent_to(3, 4, 0, 1);
        assert_eq!((t.held_by(0), t.held_by(1)), (1, 2));
        assert_eq!(t.confirm_by(1, 3, 0), 1, "member 0 holds seq 1 only");
        assert!(t.holds(2, 1) && !t.holds(2, 0));
        assert_eq!(t.cursor(), 2);
        // Member 1 goes: its two are owed at once, to member 0.
        t.disconnect_member(1);
        assert_eq!((t.held_by(0), t.held_by(1)), (0, 0));
        assert_eq!(t.due_for_other(0, 0), Some(Due::Redeliver { seq: 2 }));
        let again = t.resent_to(2, 0, 0);
        assert!(again.redelivered);
        assert_eq!(t.due_for_other(0, 0), Some(Due::Redeliver { seq: 3 }));
        t.resent_to(3, 0, 0);
        assert_eq!(t.held_by(0), 2);
        assert!(t.holds(3, 0) && !t.holds(3, 1));
        // Member 0 misses their deadline: they go to another member, never back to it.
        assert_eq!(t.due_for_other(100 * MS, 0), None);
        assert_eq!(t.held_by(0), 0, "missed: no longer held");
        let due = 100 * MS + policy_ms().backoff(2);
        assert_eq!(t.due_for_other(due, 0), None);
        assert!(t.next_due() <= due, "the loop wakes for the other members");
        assert_eq!(t.due_for_other(due, 2), Some(Due::Redeliver { seq: 2 }));
        t.resent_to(2, due, 2);
        // A late confirm by member 0 of what went to member 2 settles nothing.
        assert_eq!(t.confirm_by(2, 2, 0), 0);
        assert_eq!(t.confirm_by(2, 2, 2), 1);
        assert_eq!(t.in_flight(), 1);
        assert_eq!(t.cursor(), 3);
    }
}
