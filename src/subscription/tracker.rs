//! Per-subscription delivery bookkeeping: what was sent, what is confirmed, and the
//! cursor that may be made durable.
//!
//! The cursor is the oldest event still owed to the subscriber: the first unconfirmed
//! event in flight, or, with nothing in flight, the next position to examine. Every
//! position below it is either confirmed or was not meant for this subscription.

use std::collections::VecDeque;

/// Largest window a subscription may ask for (the protocol's limit).
pub const WINDOW_EVENTS_LIMIT: u32 = 4096;

#[derive(Copy, Clone, Debug)]
struct InFlight {
    seq: u64,
    confirmed: bool,
}

/// What sending an event means for the subscriber.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// It was delivered before (before a disconnect or a restart).
    pub redelivered: bool,
    /// Deliveries including this one, as far as this process knows.
    pub delivery_count: u16,
}

/// Window, in-flight events and cursor of one subscription. Allocates its window once.
#[derive(Debug)]
pub struct Tracker {
    window: u32,
    in_flight: VecDeque<InFlight>,
    /// Next ring position to examine.
    next: u64,
    /// Positions below this were (or may have been) delivered before.
    delivered_below: u64,
}

impl Tracker {
    /// Starts at `cursor`. Events below `delivered_below` count as redeliveries (after a
    /// restart: everything that was in the ring).
    pub fn new(cursor: u64, window: u32, delivered_below: u64) -> Tracker {
        let window = window.clamp(1, WINDOW_EVENTS_LIMIT);
        Tracker {
            window,
            in_flight: VecDeque::with_capacity(WINDOW_EVENTS_LIMIT as usize),
            next: cursor,
            delivered_below,
        }
    }

    /// Changes the window (a subscriber reconnecting may ask for another).
    pub fn set_window(&mut self, window: u32) {
        self.window = window.clamp(1, WINDOW_EVENTS_LIMIT);
    }

    /// Whether another event may be sent.
    pub fn has_room(&self) -> bool {
        (self.in_flight.len() as u32) < self.window
    }

    /// Events sent and not yet confirmed.
    pub fn in_flight(&self) -> usize {
        self.in_flight.iter().filter(|f| !f.confirmed).count()
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

    /// The event at `seq` (ending before `next`) was sent.
    pub fn sent(&mut self, seq: u64, next: u64) -> Sent {
        assert!(self.has_room(), "caller checks the window");
        debug_assert!(seq >= self.next && next > seq);
        self.in_flight.push_back(InFlight {
            seq,
            confirmed: false,
        });
        self.next = next;
        let redelivered = seq < self.delivered_below;
        Sent {
            redelivered,
            delivery_count: if redelivered { 2 } else { 1 },
        }
    }

    /// Marks every in-flight event in `first..=last` confirmed; returns how many were
    /// newly confirmed. Sequence numbers not in flight are ignored (PROTOCOL.md).
    pub fn confirm(&mut self, first: u64, last: u64) -> usize {
        let mut newly = 0;
        for f in self.in_flight.iter_mut() {
            if f.seq > last {
                break;
            }
            if f.seq >= first && !f.confirmed {
                f.confirmed = true;
                newly += 1;
            }
        }
        while self.in_flight.front().is_some_and(|f| f.confirmed) {
            self.in_flight.pop_front();
        }
        newly
    }

    /// The cursor that may be made durable.
    pub fn cursor(&self) -> u64 {
        self.in_flight.front().map_or(self.next, |f| f.seq)
    }

    /// The subscriber went away: everything unconfirmed is owed again, from the cursor.
    pub fn disconnect(&mut self) {
        let cursor = self.cursor();
        if let Some(max) = self.in_flight.back().map(|f| f.seq + 1) {
            self.delivered_below = self.delivered_below.max(max);
        }
        self.in_flight.clear();
        self.next = cursor;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_is_the_oldest_unconfirmed_event() {
        let mut t = Tracker::new(10, 3, 0);
        t.skip_to(12);
        assert_eq!(t.cursor(), 12);
        t.sent(12, 13);
        t.sent(13, 15);
        t.sent(15, 16);
        assert!(!t.has_room());
        assert_eq!(t.cursor(), 12);
        assert_eq!(t.confirm(13, 13), 1);
        assert_eq!(t.cursor(), 12, "12 still owed");
        assert_eq!(t.confirm(12, 12), 1);
        assert_eq!(t.cursor(), 15);
        assert_eq!(t.confirm(1, 100), 1);
        assert_eq!(t.cursor(), 16);
        assert_eq!(t.confirm(12, 15), 0, "confirming again changes nothing");
    }

    #[test]
    fn a_disconnect_makes_unconfirmed_events_owed_again_as_redeliveries() {
        let mut t = Tracker::new(1, 8, 0);
        assert!(!t.sent(1, 2).redelivered);
        t.sent(2, 3);
        t.sent(3, 4);
        t.confirm(1, 1);
        t.disconnect();
        assert_eq!(t.next(), 2);
        assert_eq!(t.in_flight(), 0);
        let again = t.sent(2, 3);
        assert!(again.redelivered);
        assert_eq!(again.delivery_count, 2);
        t.sent(3, 4);
        assert!(!t.sent(4, 5).redelivered, "never sent before");
    }

    #[test]
    fn windows_are_clamped_to_the_protocol_limit() {
        let t = Tracker::new(1, 0, 0);
        assert!(t.has_room());
        let mut t = Tracker::new(1, 1_000_000, 0);
        for s in 1..=WINDOW_EVENTS_LIMIT as u64 {
            t.sent(s, s + 1);
        }
        assert!(!t.has_room());
    }
}
