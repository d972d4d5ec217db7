//! The log's subscription table as the rest of the daemon uses it: looking entries up,
//! creating one (its creation fenced, so everything before it is durable too), and
//! deleting one with its dead letters, and changing one's spec (its filters) by moving
//! it to a new entry.

use super::cursors::{self, Subscription, SubscriptionError, SubscriptionId};
use super::dead::DeadLetterId;
use super::layout::{SUBSCRIPTION_NAME_BYTES_MAX, SUBSCRIPTION_SPEC_BYTES_MAX};
use super::{now_unix_ns, Log, LogError};
use crate::pmem::Medium;

impl<M: Medium> Log<M> {
    /// Active durable subscriptions.
    pub fn subscriptions(&self) -> impl Iterator<Item = &Subscription> {
        self.subscriptions.iter().flatten()
    }

    /// One subscription by id.
    pub fn subscription(&self, id: SubscriptionId) -> Option<&Subscription> {
        self.subscriptions
            .get(id.0 as usize)
            .and_then(|s| s.as_ref())
    }

    /// Finds a subscription by name.
    pub fn subscription_by_name(&self, name: &[u8]) -> Option<&Subscription> {
        self.subscriptions().find(|s| s.name() == name)
    }

    /// Creates a durable subscription whose cursor starts at the tail (it receives
    /// events stored from now on).
    pub fn create_subscription(
        &mut self,
        name: &[u8],
        spec: &[u8],
    ) -> Result<SubscriptionId, LogError> {
        self.create_entry_at(name, spec, self.tail)
    }

    /// Creates a subscription's entry with its cursor at `cursor`, a record start no
    /// older than [`Log::held_from`] or the tail (the caller checked).
    pub(super) fn create_entry_at(
        &mut self,
        name: &[u8],
        spec: &[u8],
        cursor: u64,
    ) -> Result<SubscriptionId, LogError> {
        check_entry(name, spec)?;
        if self.subscription_by_name(name).is_some() {
            return Err(SubscriptionError::Exists.into());
        }
        let index = self.free_entry()?;
        if let Some(reason) = &self.failed {
            return Err(LogError::Failed(reason.clone()));
        }
        let uid = self.next_uid;
        let new = cursors::NewEntry {
            index: index as u32,
            uid,
            name,
            spec,
            cursor,
            now_ns: now_unix_ns(),
            link: false,
            record: cursors::FirstRecord::NEW,
        };
        let created = cursors::create(&mut self.medium, &self.geometry, &new).map_err(|e| {
            self.failed = Some(e.to_string());
            LogError::Failed(e.to_string())
        })?;
        // Its creation fenced (synced): everything before it is durable too.
        self.mark_all_durable();
        if let Some(d) = &mut self.deferred {
            d.durable_cursor[index] = created.cursor;
            d.covered_by[index] = None;
        }
        self.next_uid = self.next_uid.saturating_add(1);
        self.subscriptions[index] = Some(created);
        self.recompute_head();
        Ok(SubscriptionId(index as u32))
    }

    /// The first entry neither a subscription nor a link uses (with [`check_entry`],
    /// what creating either kind of entry checks first).
    pub(super) fn free_entry(&self) -> Result<usize, LogError> {
        self.subscriptions
            .iter()
            .zip(&self.links)
            .position(|(s, l)| s.is_none() && l.is_none())
            .ok_or_else(|| {
                SubscriptionError::TableFull(self.geometry.subscriptions.entry_count).into()
            })
    }

    /// Replaces a durable subscription's spec, atomically: the subscription moves to a
    /// free entry with the new spec, its name, uid, cursor, mode and pause, and the old
    /// entry is freed (`cursors.rs` says why a crash finds the one or the other). Its
    /// dead letters follow it. Returns its new id; the old one means nothing after.
    /// Needs one free entry in the table.
    pub fn change_spec(
        &mut self,
        id: SubscriptionId,
        spec: &[u8],
    ) -> Result<SubscriptionId, LogError> {
        let old = *self
            .subscription(id)
            .ok_or(LogError::UnknownSubscription(id))?;
        check_entry(old.name(), spec)?;
        let index = self.free_entry()?;
        if let Some(reason) = &self.failed {
            return Err(LogError::Failed(reason.clone()));
        }
        // The copy's cursor must not become durable ahead of the records it releases:
        // on a disk, those are synced first (as a reset does).
        if self.needs_sync() {
            self.fence()?;
        }
        let new = cursors::NewEntry {
            index: index as u32,
            uid: old.uid,
            name: old.name(),
            spec,
            cursor: old.cursor,
            now_ns: now_unix_ns(),
            link: false,
            record: old.moved_record(),
        };
        let fail = |log: &mut Self, e: std::io::Error| {
            log.failed = Some(e.to_string());
            LogError::Failed(e.to_string())
        };
        let moved = match cursors::create(&mut self.medium, &self.geometry, &new) {
            Ok(moved) => moved,
            Err(e) => return Err(fail(self, e)),
        };
        // From here a crash finds the copy; freeing the old entry makes that final.
        if let Err(e) = cursors::delete(&mut self.medium, &self.geometry, id.0) {
            return Err(fail(self, e));
        }
        self.mark_all_durable();
        if let Some(d) = &mut self.deferred {
            d.durable_cursor[index] = moved.cursor;
            d.covered_by[index] = None;
            d.covered_by[id.0 as usize] = None;
        }
        self.subscriptions[id.0 as usize] = None;
        self.subscriptions[index] = Some(moved);
        let to = SubscriptionId(index as u32);
        self.dead.retarget(old.uid, to);
        Ok(to)
    }

    /// Deletes a durable subscription: it no longer holds any event, and its dead
    /// letters are purged.
    pub fn delete_subscription(&mut self, id: SubscriptionId) -> Result<(), LogError> {
        self.delete_entry(id, true)
    }

    /// Deletes a durable subscription but keeps its dead letters, as orphans: listed,
    /// reported by the checks, purged by an operator (`herald dead purge --unowned`).
    pub fn delete_subscription_keeping_dead_letters(
        &mut self,
        id: SubscriptionId,
    ) -> Result<(), LogError> {
        self.delete_entry(id, false)
    }

    fn delete_entry(&mut self, id: SubscriptionId, purge_dead: bool) -> Result<(), LogError> {
        let uid = self
            .subscription(id)
            .ok_or(LogError::UnknownSubscription(id))?
            .uid;
        if let Some(reason) = &self.failed {
            return Err(LogError::Failed(reason.clone()));
        }
        cursors::delete(&mut self.medium, &self.geometry, id.0).map_err(|e| {
            self.failed = Some(e.to_string());
            LogError::Failed(e.to_string())
        })?;
        self.mark_all_durable();
        self.subscriptions[id.0 as usize] = None;
        self.recompute_head();
        // Its dead letters go with it, in a second fence: nothing could replay them.
        // A crash between the two fences leaves them as orphans, which the next scan
        // reports (and an operator purges); they are never dropped silently.
        // (Deleting a subscription is rare; collecting the ids allocates.)
        let mine: Vec<DeadLetterId> = self
            .dead
            .records()
            .iter()
            .filter(|d| d.subscription == id && d.subscription_uid == uid)
            .map(|d| d.id)
            .collect();
        for &d in &mine {
            self.dead.set_orphan(d);
        }
        if mine.is_empty() || !purge_dead {
            return Ok(());
        }
        self.purge_dead(&mine)
    }
}

/// A new table entry's name and spec fit their fields.
pub(super) fn check_entry(name: &[u8], spec: &[u8]) -> Result<(), LogError> {
    if name.is_empty() || name.len() > SUBSCRIPTION_NAME_BYTES_MAX {
        return Err(SubscriptionError::BadName.into());
    }
    if spec.len() > SUBSCRIPTION_SPEC_BYTES_MAX {
        return Err(SubscriptionError::SpecTooLarge.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SubscriptionMode;
    use crate::log::event::test_event;
    use crate::log::layout::SUBSCRIPTION_ACTIVE;
    use crate::log::{DeadReason, LogConfig, Seq};
    use crate::pmem::sim::SimMedium;

    fn log_with_dead_letters() -> Log<SimMedium> {
        let config = LogConfig {
            slot_bytes: 128,
            subscription_entries: 8,
            payload_bytes_max: 64,
            dead_letter_slots: Some(16),
            rule_entries: 0,
            reserve_slots: Some(2),
        };
        Log::format(SimMedium::new(64 * 1024), &config, 7).unwrap()
    }

    /// A subscription `s` with spec `old`, paused, recovering, its cursor past one
    /// event and one dead letter of its own, moved to spec `new`.
    fn moved() -> (Log<SimMedium>, SubscriptionId, SubscriptionId, u64) {
        let mut log = log_with_dead_letters();
        let _other = log.create_subscription(b"other", b"x").unwrap();
        let id = log.create_subscription(b"s", b"old").unwrap();
        let first = log.append(&test_event(b"t")).unwrap();
        log.append(&test_event(b"t")).unwrap();
        log.dead_letter(id, first, 3, DeadReason::Rejected).unwrap();
        log.release(&[(id, Seq(first.0 + 1))]).unwrap();
        log.set_paused(id, true).unwrap();
        log.set_mode(id, SubscriptionMode::Recovering).unwrap();
        let uid = log.subscription(id).unwrap().uid;
        let to = log.change_spec(id, b"new").unwrap();
        (log, id, to, uid)
    }

    fn check_moved(log: &Log<SimMedium>, to: SubscriptionId, uid: u64, spec: &[u8]) {
        let s = log.subscription_by_name(b"s").unwrap();
        assert_eq!((s.id, s.uid, s.spec()), (to, uid, spec));
        assert_eq!(s.cursor, 2);
        assert!(s.paused);
        assert_eq!(s.mode, SubscriptionMode::Recovering);
        assert_eq!(log.subscriptions().filter(|s| s.name() == b"s").count(), 1);
        let dead: Vec<_> = log.dead_letters_of(to).collect();
        assert_eq!(dead.len(), 1);
        assert!(!dead[0].orphan);
    }

    #[test]
    fn a_spec_change_moves_the_entry_with_everything_it_held() {
        let (log, from, to, uid) = moved();
        assert_ne!(from, to);
        assert!(log.subscription(from).is_none());
        check_moved(&log, to, uid, b"new");
        let (log, report) = Log::open(log.into_medium(), &mut |_, _| {}).unwrap();
        assert_eq!(report.interrupted_moves, 0);
        assert!(report.dead_letter_problems.is_empty());
        check_moved(&log, to, uid, b"new");
        // The cursor still moves, in its new entry, and survives another open.
        let mut log = log;
        log.release(&[(to, Seq(3))]).unwrap();
        let (log, _) = Log::open(log.into_medium(), &mut |_, _| {}).unwrap();
        assert_eq!(log.subscription(to).unwrap().cursor, 3);
    }

    #[test]
    fn a_move_cut_before_the_old_entry_was_freed_keeps_the_copy() {
        let (log, from, to, uid) = moved();
        let mut medium = log.into_medium();
        // The crash came between the copy's activation and the old entry's free.
        let geometry = crate::log::format::read_geometry(medium.bytes()).unwrap();
        let at = geometry.subscription_offset(from.0);
        medium.write(at, &SUBSCRIPTION_ACTIVE.to_le_bytes());
        let (log, report) = Log::open(medium, &mut |_, _| {}).unwrap();
        assert_eq!(report.interrupted_moves, 1);
        assert!(report.subscription_problems.is_empty());
        assert!(report.dead_letter_problems.is_empty());
        check_moved(&log, to, uid, b"new");
        // The open freed the old entry for good.
        let (_, report) = Log::open(log.into_medium(), &mut |_, _| {}).unwrap();
        assert_eq!(report.interrupted_moves, 0);
    }

    #[test]
    fn a_move_needs_a_free_entry_and_changes_nothing_without_one() {
        let mut log = log_with_dead_letters();
        let id = log.create_subscription(b"s", b"old").unwrap();
        for i in 1..8u8 {
            log.create_subscription(&[b'a' + i], b"").unwrap();
        }
        let e = log.change_spec(id, b"new").unwrap_err();
        assert!(e.to_string().contains("table is full"), "{e}");
        assert_eq!(log.subscription(id).unwrap().spec(), b"old");
    }
}
