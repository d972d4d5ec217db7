//! Retention after confirm: released events the ring keeps from being overwritten for
//! a while (`--retain 1h`) or up to an amount (`--retain 256M`), so that a
//! subscription created or reset later (`Start::First`, `Seq`, `Time`) can still reach
//! them.
//!
//! The ring reuses its oldest slots first, so released events stay readable until the
//! ring has gone round once more; retention only decides what happens when a publish
//! needs the slots of a retained event. By default the publish wins: the retained
//! event is overwritten, and counted (`overwritten_early_slots`) so an operator sees
//! that the ring is too small for the retention asked. **Strict** retention refuses
//! the publish (`full`) instead, as a subscriber that is behind would, except for
//! `crit` and more severe events, which may always overwrite retained ones: an event
//! about failing storage matters more than history.
//!
//! The **floor** is the oldest retained position: every released record from it up to
//! the head is retained. By amount, it is simply the head minus the retained slots. By
//! age, it moves past records as they age, one header read per record, in
//! [`Log::advance_retention`], which the daemon calls on its housekeeping tick, never
//! per event; an append compares positions only. Nothing here is persistent: an open
//! starts the floor at [`Log::held_from`], where the ring's whole records begin.

use super::layout::SLOT_KIND_PAD;
use super::{scan, Log};
use crate::pmem::Medium;

/// How much of the released events a ring retains.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Retain {
    /// Those stored less than this many nanoseconds ago.
    Age(u64),
    /// The newest ones, this many bytes of slots.
    Bytes(u64),
}

/// Retention as configured.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    /// What is retained.
    pub retain: Retain,
    /// Refuse publishes (`full`) rather than overwrite a retained event, except those
    /// that may use the reserve.
    pub strict: bool,
}

/// Records [`Log::advance_retention`] looks at in one call at most: a tick stays short
/// after a long idle; the floor then lags (retaining more, never less) until the next.
const ADVANCE_RECORDS_MAX: u32 = 65_536;

/// The log's retention state.
#[derive(Clone, Debug, Default)]
pub(super) struct RetentionState {
    config: Option<Retention>,
    /// Every released record from here up to the head is retained.
    floor: u64,
    /// Slots of retained records overwritten before their retention ended.
    overwritten_early: u64,
}

/// What `status` shows of retention.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RetentionStatus {
    /// As configured.
    pub retention: Retention,
    /// The oldest retained position.
    pub floor: u64,
    /// Released slots retained now (from the floor to the head).
    pub retained_slots: u64,
    /// Retained slots overwritten before their retention ended, since the open.
    pub overwritten_early_slots: u64,
}

impl<M: Medium> Log<M> {
    /// Sets (or clears) retention; the floor starts where the ring's whole records
    /// begin.
    pub fn set_retention(&mut self, retention: Option<Retention>) {
        self.retention = RetentionState {
            config: retention,
            floor: self.held_from().0,
            overwritten_early: 0,
        };
    }

    /// Moves an age retention's floor past the records stored before `now_unix_ns`
    /// minus the age (at most [`ADVANCE_RECORDS_MAX`] of them per call).
    pub fn advance_retention(&mut self, now_unix_ns: u64) {
        let Some(Retention {
            retain: Retain::Age(age),
            ..
        }) = self.retention.config
        else {
            return;
        };
        let oldest_kept = now_unix_ns.saturating_sub(age);
        let n = self.geometry.ring.slot_count;
        let mut p = self.retention.floor.max(self.tail.saturating_sub(n));
        for _ in 0..ADVANCE_RECORDS_MAX {
            if p >= self.head {
                break;
            }
            match scan::valid_record(self.medium.bytes(), &self.geometry, p % n) {
                Some(h) if h.seq == p && h.kind == SLOT_KIND_PAD => p += u64::from(h.span),
                Some(h) if h.seq == p && h.timestamp_ns < oldest_kept => p += u64::from(h.span),
                Some(h) if h.seq == p => break,
                // Not a whole record (scrubbed at an open, or never written): nothing
                // to retain there.
                _ => p += 1,
            }
        }
        self.retention.floor = p;
    }

    /// The oldest position an append of an event of this reserve class must not
    /// overwrite: the head, or below it the retention floor when retention is strict.
    pub(super) fn overwrite_limit(&self, may_use_reserve: bool) -> u64 {
        match self.retention.config {
            Some(r) if r.strict && !may_use_reserve => self.head.min(self.retained_floor()),
            _ => self.head,
        }
    }

    /// An append is about to write the slots up to `end` (exclusive): the positions
    /// one lap below them are overwritten. Counts the retained ones among them.
    pub(super) fn note_overwrite(&mut self, end: u64) {
        if self.retention.config.is_none() {
            return;
        }
        let lap_below = end.saturating_sub(self.geometry.ring.slot_count);
        let floor = self.retained_floor();
        if lap_below > floor {
            let retained_end = lap_below.min(self.head);
            self.retention.overwritten_early += retained_end.saturating_sub(floor);
            self.retention.floor = self.retention.floor.max(lap_below);
        }
    }

    /// Retention as `status` shows it (None: none configured).
    pub fn retention_status(&self) -> Option<RetentionStatus> {
        let retention = self.retention.config?;
        let floor = self.retained_floor().min(self.head);
        Some(RetentionStatus {
            retention,
            floor,
            retained_slots: self.head - floor,
            overwritten_early_slots: self.retention.overwritten_early,
        })
    }

    /// The floor as it stands now: an amount is counted back from the head.
    fn retained_floor(&self) -> u64 {
        let n = self.geometry.ring.slot_count;
        let one_lap = self.tail.saturating_sub(n);
        let floor = match self.retention.config {
            Some(Retention {
                retain: Retain::Bytes(bytes),
                ..
            }) => {
                let slots = bytes.div_ceil(self.geometry.ring.slot_bytes);
                self.head.saturating_sub(slots).max(self.retention.floor)
            }
            _ => self.retention.floor,
        };
        floor.max(one_lap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Severity;
    use crate::log::event::test_event;
    use crate::log::manage::tests::small_log;
    use crate::log::{AppendError, Seq, Start};
    use crate::pmem::sim::SimMedium;

    const SLOT_BYTES: u64 = 128;

    /// Appends one event stored at `at_ns` and releases everything for `sub`.
    fn append_released(
        log: &mut Log<SimMedium>,
        sub: crate::log::SubscriptionId,
        at_ns: u64,
    ) -> Result<Seq, AppendError> {
        let mut e = test_event(b"t");
        e.timestamp_ns = at_ns;
        let seq = log.append(&e)?;
        let tail = log.tail();
        log.release(&[(sub, tail)]).unwrap();
        Ok(seq)
    }

    /// Unreleased appends that fit after a lap of released history.
    fn unreleased_room(retention: Option<Retention>) -> (Log<SimMedium>, u64) {
        let mut log = small_log(64);
        log.set_retention(retention);
        let sub = log.create_subscription(b"a", b"").unwrap();
        for _ in 0..2 * log.ring_slots() {
            append_released(&mut log, sub, 1).unwrap();
        }
        let mut room = 0;
        loop {
            match log.append(&test_event(b"t")) {
                Ok(_) => room += 1,
                Err(AppendError::Full { .. }) => return (log, room),
                Err(e) => panic!("{e:?}"),
            }
        }
    }

    #[test]
    fn strict_retention_by_amount_refuses_rather_than_overwrite_but_crit_goes_through() {
        let retained = 16;
        let (_, room_without) = unreleased_room(None);
        let (mut log, room) = unreleased_room(Some(Retention {
            retain: Retain::Bytes(retained * SLOT_BYTES),
            strict: true,
        }));
        assert_eq!(room, room_without - retained, "the retained slots are kept");
        let s = log.retention_status().unwrap();
        assert_eq!((s.retained_slots, s.overwritten_early_slots), (retained, 0));
        // Every retained event is whole: a subscription can start at the oldest.
        let first = log.resolve_start(Start::First).unwrap();
        assert!(first.0 <= log.head().0 - retained, "{first:?}");
        // crit events take the free reserve first, then the retained slots.
        let mut crit = test_event(b"t");
        crit.severity = Severity::Critical;
        let reserve = log.geometry().ring.reserve_slots;
        for _ in 0..reserve + 1 {
            log.append(&crit)
                .expect("crit may overwrite retained events");
        }
        let s = log.retention_status().unwrap();
        assert_eq!(
            (s.overwritten_early_slots, s.retained_slots),
            (1, retained - 1),
            "{s:?}"
        );
    }

    #[test]
    fn yielding_retention_never_refuses_and_counts_what_it_lost() {
        // Nothing released: the unreleased events crowd out the retained ones.
        let (_, room_without) = unreleased_room(None);
        let (log, room) = unreleased_room(Some(Retention {
            retain: Retain::Bytes(16 * SLOT_BYTES),
            strict: false,
        }));
        assert_eq!(room, room_without, "yielding retention refuses nothing");
        let s = log.retention_status().unwrap();
        assert!(s.overwritten_early_slots > 0, "{s:?}");
        assert_eq!(s.overwritten_early_slots + s.retained_slots, 16, "{s:?}");
        // What is left is whole.
        assert!(log.resolve_start(Start::First).unwrap().0 <= log.head().0 - s.retained_slots);
    }

    #[test]
    fn an_age_floor_moves_only_past_events_older_than_the_age() {
        let mut log = small_log(64);
        let n = log.ring_slots();
        log.set_retention(Some(Retention {
            retain: Retain::Age(1_000),
            strict: true,
        }));
        let sub = log.create_subscription(b"a", b"").unwrap();
        let mut at = 10_000;
        let refused = loop {
            at += 10;
            match append_released(&mut log, sub, at) {
                Ok(_) => {}
                Err(e) => break e,
            }
            assert!(at < 10_000 + 20 * n, "never refused");
        };
        assert!(matches!(refused, AppendError::Full { .. }), "{refused:?}");
        // Half of them have aged out: room for about as many.
        let half = 10_000 + (at - 10_000) / 2;
        log.advance_retention(half + 1_000);
        let s = log.retention_status().unwrap();
        assert!(s.floor > 0 && s.retained_slots < n, "{s:?}");
        let oldest_retained = log.read(Seq(s.floor)).expect("a whole record at the floor");
        assert!(
            oldest_retained.timestamp_ns >= half,
            "{}",
            oldest_retained.timestamp_ns
        );
        let mut room = 0;
        while append_released(&mut log, sub, at).is_ok() {
            room += 1;
        }
        assert!(room > 0 && room < n, "{room}");
        assert_eq!(log.retention_status().unwrap().overwritten_early_slots, 0);
    }
}
