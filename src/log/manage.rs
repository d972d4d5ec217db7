//! An operator's changes to durable subscriptions: where a new subscription (or a
//! reset one) starts, reaching back into released events whose slots are not reused
//! yet; moving a cursor either way; pausing.
//!
//! **What the ring still holds.** A released event stays readable until its slots
//! are written again: the positions `tail - slot_count ..` of the ring are whole,
//! except where an open scrubbed the slots a torn group could have reached (one
//! group's worth behind the oldest live event, `Log::scrub_beyond_tail`). So the held
//! range is the run of valid records that ends at the head and begins no earlier than
//! `tail - slot_count`; [`Log::held_from`] finds where it begins by walking the
//! records, an admin-time cost (one header check per slot of the released part) that
//! the event path never pays.
//!
//! Moving a cursor back below the head moves the head back with it: the slots between
//! hold whole records and are no longer free, which the ring's free-slot count (tail
//! minus head) then says.

use super::cursors::SubscriptionId;
use super::scan;
use super::{Log, LogError};
use crate::event::Seq;
use crate::pmem::Medium;

/// Where a subscription starts, or is reset to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// Events stored from now on (the tail).
    New,
    /// The oldest event the ring still holds, released ones included.
    First,
    /// The event with this seq, or the first record after it when none starts there.
    Seq(u64),
    /// The first event stored at or after this time (nanoseconds since the Unix epoch).
    Time(u64),
}

impl Start {
    /// Parses how an operator names a start: `new`, `first`, `seq:N`,
    /// `time:RFC3339` (`2026-12-03T07:00:00Z`), or `ago:DURATION` (`ago:15m`, counted
    /// back from `now_unix_ns`).
    pub fn parse(text: &str, now_unix_ns: u64) -> Result<Start, String> {
        const FORMS: &str =
            "new, first, seq:N, time:RFC3339 (2026-12-03T07:00:00Z) or ago:DURATION (ago:15m)";
        let (kind, value) = text.split_once(':').unwrap_or((text, ""));
        match (kind, value) {
            ("new", "") => Ok(Start::New),
            ("first", "") => Ok(Start::First),
            ("seq", n) => match n.parse::<u64>() {
                Ok(0) => Err("seq:0: sequence numbers start at 1 (or say `first`)".into()),
                Ok(seq) => Ok(Start::Seq(seq)),
                Err(_) => Err(format!("seq:{n}: not a sequence number")),
            },
            ("time", at) => {
                let at = humantime::parse_rfc3339_weak(at).map_err(|e| {
                    format!("time:{at}: {e} (want RFC 3339, such as 2026-12-03T07:00:00Z)")
                })?;
                let ns = at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|_| "a time before 1970".to_owned())?
                    .as_nanos();
                let ns = u64::try_from(ns).unwrap_or(u64::MAX);
                // A start in the future would silently mean `new` until then and skip
                // whatever is stored in between: say so instead.
                if ns > now_unix_ns {
                    return Err(format!(
                        "time:{at}: in the future (by the daemon's clock); use `new`",
                        at = humantime::format_rfc3339(at)
                    ));
                }
                Ok(Start::Time(ns))
            }
            ("ago", d) => {
                let d = humantime::parse_duration(d).map_err(|e| format!("ago:{d}: {e}"))?;
                let back = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                Ok(Start::Time(now_unix_ns.saturating_sub(back)))
            }
            _ => Err(format!("{text:?} is not a start: use {FORMS}")),
        }
    }
}

/// Why a start position cannot be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The asked seq's slots were reused.
    #[error("seq {asked} is no longer held: the ring holds events from seq {held_from} (start there, or `first`)")]
    Overwritten {
        /// The seq asked for.
        asked: u64,
        /// The oldest position still held.
        held_from: u64,
    },
    /// Nothing is stored at the asked seq yet.
    #[error("seq {asked} is beyond the tail: the next event stored gets seq {tail}")]
    BeyondTail {
        /// The seq asked for.
        asked: u64,
        /// The tail.
        tail: u64,
    },
    /// Events since the asked time may have been overwritten.
    #[error("the events stored since that time are no longer all held: the oldest held, seq {held_from}, was stored at {held_from_unix_ns} ns since the epoch, and older ones were overwritten (start at `first` to take what is held)")]
    TimeOverwritten {
        /// The oldest position still held.
        held_from: u64,
        /// When the oldest held event was stored.
        held_from_unix_ns: u64,
    },
}

impl<M: Medium> Log<M> {
    /// The oldest position from which the ring holds every record up to the tail:
    /// the head, or below it where released events are still whole.
    pub fn held_from(&self) -> Seq {
        let n = self.geometry.ring.slot_count;
        let mut p = self.tail.saturating_sub(n).max(Seq::FIRST.0);
        let mut start = None;
        while p < self.head {
            match self.record_span_at(p) {
                Some(span) => {
                    start.get_or_insert(p);
                    p += span;
                }
                None => {
                    start = None;
                    p += 1;
                }
            }
        }
        // A run that overshot the head did not end at a record boundary there.
        Seq(start.filter(|_| p == self.head).unwrap_or(self.head))
    }

    /// The cursor position `start` names, checked against what the ring holds.
    pub fn resolve_start(&self, start: Start) -> Result<Seq, LogError> {
        let held_from = self.held_from().0;
        let position = match start {
            Start::New => self.tail,
            Start::First => held_from,
            Start::Seq(asked) if asked > self.tail => {
                return Err(StartError::BeyondTail {
                    asked,
                    tail: self.tail,
                }
                .into())
            }
            Start::Seq(asked) if asked < held_from => {
                return Err(StartError::Overwritten { asked, held_from }.into())
            }
            Start::Seq(asked) => self.record_start_from(held_from, asked),
            Start::Time(at) => {
                let mut held = self.events_since(Seq(held_from), self.tail);
                let oldest = held.next();
                match oldest {
                    Some(e) if e.timestamp_ns >= at && held_from > Seq::FIRST.0 => {
                        return Err(StartError::TimeOverwritten {
                            held_from,
                            held_from_unix_ns: e.timestamp_ns,
                        }
                        .into())
                    }
                    Some(e) if e.timestamp_ns >= at => e.seq.0,
                    Some(_) => held
                        .find(|e| e.timestamp_ns >= at)
                        .map_or(self.tail, |e| e.seq.0),
                    None => self.tail,
                }
            }
        };
        Ok(Seq(position))
    }

    /// Creates a durable subscription whose cursor starts at `start` (checked with
    /// [`Log::resolve_start`]); [`Log::create_subscription`] is `Start::New`.
    pub fn create_subscription_at(
        &mut self,
        name: &[u8],
        spec: &[u8],
        start: Start,
    ) -> Result<SubscriptionId, LogError> {
        let cursor = self.resolve_start(start)?;
        self.create_entry_at(name, spec, cursor.0)
    }

    /// Moves a durable subscription's cursor to `start`, back or forward, durably
    /// (synced on a disk) before it returns. Events below the new cursor are settled
    /// for it; those from it on are owed to it again. The caller holds nothing in
    /// flight for the subscription (its tracker starts over at the cursor).
    pub fn reset_cursor(&mut self, id: SubscriptionId, start: Start) -> Result<Seq, LogError> {
        if self.subscription(id).is_none() {
            return Err(LogError::UnknownSubscription(id));
        }
        let cursor = self.resolve_start(start)?;
        // Records first, then the cursor that may cover them: in one sync, a power cut
        // could keep the cursor and lose records below it.
        if self.needs_sync() {
            self.fence()?;
        }
        self.update_cursors(std::iter::once((id, cursor.0, None)))?;
        Ok(cursor)
    }

    /// Pauses or resumes a durable subscription, durably; its cursor does not move.
    pub fn set_paused(&mut self, id: SubscriptionId, paused: bool) -> Result<(), LogError> {
        let s = self.subscriptions[id.0 as usize]
            .as_mut()
            .ok_or(LogError::UnknownSubscription(id))?;
        if s.paused == paused {
            return Ok(());
        }
        let (was, cursor) = (s.paused, s.cursor);
        s.paused = paused;
        let written = self.update_cursors(std::iter::once((id, cursor, None)));
        if written.is_err() {
            // Not written: the failed log refuses everything from now on anyway.
            if let Some(s) = self.subscriptions[id.0 as usize].as_mut() {
                s.paused = was;
            }
        }
        written
    }

    /// The span of the valid record (event or padding) at position `p`.
    fn record_span_at(&self, p: u64) -> Option<u64> {
        let n = self.geometry.ring.slot_count;
        scan::valid_record(self.medium.bytes(), &self.geometry, p % n)
            .filter(|h| h.seq == p)
            .map(|h| h.span as u64)
    }

    /// The first record start (or the tail) at or after `at`, walking records from
    /// `from`, a record start.
    fn record_start_from(&self, from: u64, at: u64) -> u64 {
        let mut p = from;
        while p < self.tail {
            match self.record_span_at(p) {
                Some(_) if p >= at => return p,
                Some(span) => p += span,
                None => p += 1,
            }
        }
        self.tail
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::log::event::test_event;
    use crate::log::LogConfig;
    use crate::pmem::sim::SimMedium;

    /// A log whose ring has about `slots` slots (the sections before it take six
    /// pages with this configuration: a rule table of 4 entries is two).
    pub(in crate::log) fn small_log(slots: usize) -> Log<SimMedium> {
        let config = LogConfig {
            slot_bytes: 128,
            subscription_entries: 8,
            payload_bytes_max: 64,
            dead_letter_slots: Some(0),
            rule_entries: 4,
            reserve_slots: Some(2),
        };
        let log = Log::format(SimMedium::new(6 * 4096 + slots * 128), &config, 7).unwrap();
        assert!(log.ring_slots() <= slots as u64);
        log
    }

    #[test]
    fn starts_parse_in_every_form_and_refuse_others() {
        let now = 10_000_000_000_000;
        assert_eq!(Start::parse("new", now), Ok(Start::New));
        assert_eq!(Start::parse("first", now), Ok(Start::First));
        assert_eq!(Start::parse("seq:42", now), Ok(Start::Seq(42)));
        assert_eq!(
            Start::parse("time:1970-01-01T00:00:01Z", now),
            Ok(Start::Time(1_000_000_000))
        );
        assert_eq!(
            Start::parse("ago:2s", now),
            Ok(Start::Time(now - 2_000_000_000))
        );
        for bad in [
            "",
            "seq:",
            "seq:x",
            "time:yesterday",
            "ago:soon",
            "last",
            "new:1",
        ] {
            assert!(Start::parse(bad, now).is_err(), "{bad:?} was taken");
        }
        let future = Start::parse("time:2030-01-01T00:00:00Z", now).unwrap_err();
        assert!(future.contains("in the future"), "{future}");
    }

    #[test]
    fn released_events_stay_held_until_their_slots_are_reused() {
        let mut log = small_log(64);
        let a = log.create_subscription(b"a", b"").unwrap();
        let first = log.append(&test_event(b"t")).unwrap();
        for _ in 0..9 {
            log.append(&test_event(b"t")).unwrap();
        }
        let tail = log.tail();
        log.release(&[(a, tail)]).unwrap();
        assert_eq!(log.head(), tail);
        assert_eq!(log.held_from(), first, "nothing was overwritten yet");
        let b = log.create_subscription_at(b"b", b"", Start::First).unwrap();
        assert_eq!(log.subscription(b).unwrap().cursor, first.0);
        assert_eq!(
            log.head(),
            first,
            "the new cursor holds the released events again"
        );
        assert_eq!(log.events_from(first).count(), 10);
    }

    #[test]
    fn a_start_below_what_is_held_is_refused_with_where_the_ring_begins() {
        let mut log = small_log(32);
        let a = log.create_subscription(b"a", b"").unwrap();
        let mut seqs = Vec::new();
        // Around the ring more than once, releasing as it goes.
        for _ in 0..40 {
            let seq = log.append(&test_event(b"t")).unwrap();
            seqs.push(seq);
            let tail = log.tail();
            log.release(&[(a, tail)]).unwrap();
        }
        let held = log.held_from();
        assert!(held > seqs[0], "the first events were overwritten");
        assert!(log.tail().0 - held.0 <= log.ring_slots());
        let err = log.resolve_start(Start::Seq(seqs[0].0)).unwrap_err();
        assert!(
            matches!(err, LogError::Start(StartError::Overwritten { held_from, .. }) if held_from == held.0),
            "{err}"
        );
        // Every held seq is a start, and reads back as that event.
        for &seq in seqs.iter().filter(|s| **s >= held) {
            assert_eq!(log.resolve_start(Start::Seq(seq.0)).unwrap(), seq);
            assert!(log.read(seq).is_some());
        }
        let beyond = log.tail().0 + 1;
        assert!(matches!(
            log.resolve_start(Start::Seq(beyond)),
            Err(LogError::Start(StartError::BeyondTail { .. }))
        ));
        assert_eq!(log.resolve_start(Start::New).unwrap(), log.tail());
    }

    #[test]
    fn a_time_start_finds_the_first_event_stored_at_or_after_it() {
        let mut log = small_log(64);
        let mut seqs = Vec::new();
        for i in 1..=5u64 {
            let e = crate::log::EventRef {
                timestamp_ns: 1000 * i,
                ..test_event(b"t")
            };
            seqs.push(log.append(&e).unwrap());
        }
        assert_eq!(log.resolve_start(Start::Time(3000)).unwrap(), seqs[2]);
        assert_eq!(log.resolve_start(Start::Time(2500)).unwrap(), seqs[2]);
        assert_eq!(
            log.resolve_start(Start::Time(u64::MAX)).unwrap(),
            log.tail(),
            "nothing stored after that time yet: the tail"
        );
        assert_eq!(log.resolve_start(Start::Time(0)).unwrap(), seqs[0]);
    }

    #[test]
    fn a_reset_moves_the_cursor_back_and_forward_and_the_head_with_it() {
        let mut log = small_log(64);
        let a = log.create_subscription(b"a", b"").unwrap();
        let first = log.append(&test_event(b"t")).unwrap();
        let second = log.append(&test_event(b"t")).unwrap();
        let tail = log.tail();
        log.release(&[(a, tail)]).unwrap();
        assert_eq!(log.reset_cursor(a, Start::Seq(second.0)).unwrap(), second);
        assert_eq!(log.head(), second);
        assert_eq!(log.reset_cursor(a, Start::First).unwrap(), first);
        assert_eq!(log.head(), first);
        assert_eq!(log.reset_cursor(a, Start::New).unwrap(), tail);
        assert_eq!(log.head(), tail);
        // It survives a reopen.
        log.reset_cursor(a, Start::Seq(second.0)).unwrap();
        let (log, _) = Log::open(log.into_medium(), &mut |_, _| {}).unwrap();
        assert_eq!(log.subscription(a).unwrap().cursor, second.0);
        assert_eq!(log.head(), second);
    }

    #[test]
    fn pausing_is_kept_in_the_cursor_record_and_survives_cursor_updates_and_reopens() {
        let mut log = small_log(64);
        let a = log.create_subscription(b"a", b"").unwrap();
        log.set_paused(a, true).unwrap();
        log.append(&test_event(b"t")).unwrap();
        let tail = log.tail();
        log.release(&[(a, tail)]).unwrap();
        assert!(log.subscription(a).unwrap().paused);
        let (mut log, _) = Log::open(log.into_medium(), &mut |_, _| {}).unwrap();
        assert!(log.subscription(a).unwrap().paused);
        assert_eq!(log.subscription(a).unwrap().cursor, tail.0);
        log.set_paused(a, false).unwrap();
        let (log, _) = Log::open(log.into_medium(), &mut |_, _| {}).unwrap();
        assert!(!log.subscription(a).unwrap().paused);
    }
}
