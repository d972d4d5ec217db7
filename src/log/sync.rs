//! Deferred durability on a region synced to disk: group commits and cursor releases
//! are only ordered, and one sync begun later makes them durable ([`Log::begin_sync`],
//! [`Log::end_sync`]); the rules that keep a power cut harmless meanwhile.

use super::*;

/// Deferred durability. On a medium synced to disk, group commits and cursor releases
/// are only ordered when they return; they become durable when a sync begun after
/// them ends ([`Log::begin_sync`], [`Log::end_sync`], run by the caller while it goes
/// on). Every other change (subscriptions, modes, dead letters, the run-state word)
/// syncs at its own fence, which also makes everything before it durable.
///
/// Two rules keep a power cut harmless:
/// - a slot is reused only once the cursor that released it is durable: the head is
///   computed from durable cursors;
/// - a subscription's cursor is written again only once its previous write is
///   durable: its two alternating records must never both be unsynced, or a power
///   cut could leave neither valid.
pub(super) struct Deferred {
    /// Something was written since the last sync began.
    pub(super) dirty: bool,
    /// ...and some of it is a group commit, whose answers wait for the sync (else
    /// only cursor records wait: their sync may be put off).
    pub(super) urgent: bool,
    /// The sync under way, and the tail when it began.
    pub(super) in_flight: Option<(u64, u64)>,
    /// Every record below this position is durable (the tail when the last
    /// completed sync began).
    pub(super) synced_below: u64,
    /// The sync watermark word as last written (it lags `synced_below` by less than
    /// a group's slots).
    pub(super) watermark_written: u64,
    /// The number of the next sync.
    pub(super) next: u64,
    /// Per subscription entry: its cursor as durably written...
    pub(super) durable_cursor: Vec<u64>,
    /// ...and the sync its newest cursor record waits for (None: durable).
    pub(super) covered_by: Vec<Option<u64>>,
}

impl<M: Medium> Log<M> {
    /// Orders what was written so far (a group commit, a release): durable at once on
    /// a medium that is not deferred, else once a sync begun later ends. `urgent` when
    /// an answer waits for it to be durable (a group commit), not for cursor records.
    pub(super) fn order(&mut self, urgent: bool) -> Result<(), LogError> {
        if self.deferred.is_none() {
            return self.fence();
        }
        if let Some(reason) = &self.failed {
            return Err(LogError::Failed(reason.clone()));
        }
        self.medium.order().map_err(|e| {
            let reason = e.to_string();
            self.failed = Some(reason.clone());
            LogError::Failed(reason)
        })?;
        if let Some(d) = &mut self.deferred {
            d.dirty = true;
            d.urgent |= urgent;
        }
        Ok(())
    }

    /// After a fence every write is durable, cursor records included.
    pub(super) fn mark_all_durable(&mut self) {
        let Some(d) = &mut self.deferred else {
            return;
        };
        d.dirty = false;
        d.urgent = false;
        for s in self.subscriptions.iter().chain(&self.links).flatten() {
            let i = s.id.0 as usize;
            d.durable_cursor[i] = s.cursor;
            d.covered_by[i] = None;
        }
        self.recompute_head();
    }

    /// Whether the medium is synced by the caller ([`Log::begin_sync`]).
    pub fn deferred(&self) -> bool {
        self.deferred.is_some()
    }

    /// Whether something written waits for a sync that has not begun.
    pub fn needs_sync(&self) -> bool {
        self.deferred.as_ref().is_some_and(|d| d.dirty)
    }

    /// Whether only cursor records wait for a sync that has not begun: nobody is
    /// owed an answer for them, so their sync may wait for the next group commit's
    /// (their slots are freed, and their progress survives a power cut, only then).
    pub fn only_cursors_unsynced(&self) -> bool {
        self.deferred.as_ref().is_some_and(|d| d.dirty && !d.urgent)
    }

    /// Whether a sync has begun and not ended.
    pub fn sync_in_flight(&self) -> bool {
        self.deferred
            .as_ref()
            .is_some_and(|d| d.in_flight.is_some())
    }

    /// Begins a sync of everything written so far, if something waits and no sync is
    /// under way: its number, and what the caller is to sync. Everything written
    /// before this is durable once [`Log::end_sync`] of that number returns `Ok`.
    pub fn begin_sync(&mut self) -> Option<(u64, crate::pmem::SyncRequest)> {
        if self.failed.is_some() {
            return None;
        }
        let d = self.deferred.as_mut()?;
        if !d.dirty || d.in_flight.is_some() {
            return None;
        }
        let number = d.next;
        d.next += 1;
        d.in_flight = Some((number, self.tail));
        d.dirty = false;
        d.urgent = false;
        // Tell recovery how far back torn records are expected: everything below this
        // was synced. The word itself is synced by this sync or a later one; whatever
        // value a power cut leaves is one that was true. Written only once it would move
        // by a group's worth of slots: its page is one more page for the sync to write
        // (one-at-a-time publishes paid ~50 us a sync for it), and a word that lags by
        // less than a group widens recovery's "possibly torn" range by less than one
        // more group (FORMAT.md, "Sync watermark word").
        let watermark = d.synced_below.max(1);
        if watermark
            >= d.watermark_written
                .saturating_add(self.consts.group_slots_max)
        {
            d.watermark_written = watermark;
            self.medium
                .write(SYNC_WATERMARK_OFFSET, &watermark.to_le_bytes());
            self.medium.flush(SYNC_WATERMARK_OFFSET, 8);
        }
        Some((number, self.medium.begin_sync()))
    }

    /// Sync `number` ended with `result`: what it covered is durable, cursors that
    /// moved become the head's (their slots may be reused), and their subscriptions'
    /// cursors may be written again. A failed sync fails the log.
    pub fn end_sync(&mut self, number: u64, result: std::io::Result<()>) -> Result<(), LogError> {
        let Some(d) = &mut self.deferred else {
            return Ok(());
        };
        let Some((_, began_at_tail)) = d.in_flight.filter(|(n, _)| *n == number) else {
            return Ok(()); // not the sync under way (an answer for a past one)
        };
        d.in_flight = None;
        d.synced_below = d.synced_below.max(began_at_tail);
        if let Err(e) = self.medium.end_sync(result) {
            let reason = format!("a sync to disk failed: {e}");
            self.failed = Some(reason.clone());
            return Err(LogError::Failed(reason));
        }
        for s in self.subscriptions.iter().chain(&self.links).flatten() {
            let i = s.id.0 as usize;
            if d.covered_by[i].is_some_and(|c| c <= number) {
                d.durable_cursor[i] = s.cursor;
                d.covered_by[i] = None;
            }
        }
        self.recompute_head();
        Ok(())
    }

    /// Whether subscription `id`'s cursor may be released now: always, unless its
    /// previous cursor write still waits for a sync (deferred media).
    pub fn cursor_writable(&self, id: SubscriptionId) -> bool {
        self.deferred
            .as_ref()
            .is_none_or(|d| d.covered_by.get(id.0 as usize).is_some_and(|c| c.is_none()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pmem::sim_disk::SimDisk;

    #[test]
    fn the_watermark_moves_a_group_at_a_time_and_never_past_what_was_synced() {
        let config = LogConfig {
            payload_bytes_max: 1024,
            dead_letter_slots: Some(0),
            rule_entries: 0,
            ..LogConfig::default()
        };
        let mut log = Log::format(SimDisk::new(1 << 20), &config, 3).unwrap();
        let group = log.consts.group_slots_max;
        let opened_at = scan::sync_watermark(log.medium().bytes());
        assert_eq!(opened_at, log.tail().0);
        let event = super::event::test_event(b"t");
        let mut writes = 0;
        let mut last = opened_at;
        while log.tail().0 < opened_at + 3 * group {
            let mut batch = log.batch();
            batch.push(&event).unwrap();
            batch.commit().unwrap();
            let (n, _) = log.begin_sync().expect("a commit to sync");
            log.end_sync(n, Ok(())).unwrap();
            let word = scan::sync_watermark(log.medium().bytes());
            let synced_below = log.deferred.as_ref().unwrap().synced_below;
            assert!(
                word <= synced_below,
                "the word says {word}, synced below {synced_below}"
            );
            assert!(
                synced_below - word < 2 * group,
                "lags by {} slots",
                synced_below - word
            );
            if word != last {
                assert!(word >= last + group, "moved by less than a group");
                writes += 1;
                last = word;
            }
        }
        assert!(
            writes >= 2,
            "written {writes} times over three groups of slots"
        );
    }
}
