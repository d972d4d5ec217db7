//! The dead-letter area as the log keeps it in memory: which slots are used, the
//! valid records and the damaged ones.

use super::*;

/// The area as the log keeps it in memory: a bitmap of used slots, the valid records
/// (sorted by first slot) and the damaged ones (which hold their slots until
/// purged). Capacity for every record the area could hold is taken at open.
pub struct DeadArea {
    slot_count: u64,
    used: Vec<u64>,
    free_slots: u64,
    records: Vec<DeadLetter>,
    damaged: Vec<DeadLetterId>,
    /// Slots each of `damaged` holds, in the same order.
    damaged_slots: Vec<u64>,
}

impl DeadArea {
    /// Builds the in-memory state from what a scan found.
    /// `damaged`: each damaged record's id and the slots it holds (from the scan's
    /// [`DeadLetterProblem`]s, which never overlap the records or each other).
    pub fn new(
        g: &Geometry,
        mut records: Vec<DeadLetter>,
        damaged: Vec<(DeadLetterId, u64)>,
    ) -> Self {
        let slot_count = g.dead_letters.slot_count;
        let records_max = if slot_count == 0 {
            0
        } else {
            // The smallest record: a one-byte topic and nothing else.
            (slot_count / g.dead_span_for_body(1)) as usize
        };
        records.reserve_exact(records_max.saturating_sub(records.len()));
        let mut area = DeadArea {
            slot_count,
            used: vec![0; slot_count.div_ceil(64) as usize],
            free_slots: slot_count,
            records: Vec::new(),
            damaged: damaged.iter().map(|d| d.0).collect(),
            damaged_slots: damaged.iter().map(|d| d.1).collect(),
        };
        for d in &records {
            area.mark(d.id.slot(), d.slots, true);
        }
        for (id, slots) in damaged {
            area.mark(id.slot(), slots, true);
        }
        records.sort_unstable_by_key(|d| d.id.slot());
        area.records = records;
        area
    }

    fn is_used(&self, slot: u64) -> bool {
        self.used[(slot / 64) as usize] & (1 << (slot % 64)) != 0
    }

    fn mark(&mut self, first: u64, slots: u64, used: bool) {
        for s in first..first + slots {
            assert_ne!(self.is_used(s), used, "dead-letter slot {s} marked twice");
            self.used[(s / 64) as usize] ^= 1 << (s % 64);
        }
        if used {
            self.free_slots -= slots;
        } else {
            self.free_slots += slots;
        }
    }

    /// The first run of `needed` free slots.
    pub fn first_fit(&self, needed: u64) -> Option<u64> {
        let mut run_start = 0;
        let mut slot = 0;
        while slot < self.slot_count {
            if slot - run_start == needed {
                return Some(run_start);
            }
            let word = self.used[(slot / 64) as usize];
            if slot.is_multiple_of(64) && word == u64::MAX {
                slot += 64;
                run_start = slot;
            } else if self.is_used(slot) {
                slot += 1;
                run_start = slot;
            } else {
                slot += 1;
            }
        }
        (self.slot_count.saturating_sub(run_start) >= needed && needed > 0).then_some(run_start)
    }

    /// Free slots in total.
    pub fn free_slots(&self) -> u64 {
        self.free_slots
    }

    /// Slots in the area.
    pub fn slot_count(&self) -> u64 {
        self.slot_count
    }

    /// The valid records, by first slot.
    pub fn records(&self) -> &[DeadLetter] {
        &self.records
    }

    /// Ids of damaged records still holding their slots.
    pub fn damaged(&self) -> &[DeadLetterId] {
        &self.damaged
    }

    /// Slots the damaged records hold.
    pub fn damaged_slots(&self) -> u64 {
        self.damaged_slots.iter().sum()
    }

    /// The record with this id.
    pub fn get(&self, id: DeadLetterId) -> Option<&DeadLetter> {
        self.position(id).map(|i| &self.records[i])
    }

    fn position(&self, id: DeadLetterId) -> Option<usize> {
        self.records
            .binary_search_by_key(&id.slot(), |d| d.id.slot())
            .ok()
            .filter(|&i| self.records[i].id == id)
    }

    /// Whether `id` names a record (valid or damaged) that `remove` would free.
    pub fn contains(&self, id: DeadLetterId) -> bool {
        self.position(id).is_some() || self.damaged.contains(&id)
    }

    /// Adds a record just made durable.
    pub fn insert(&mut self, d: DeadLetter) {
        assert!(
            self.records.len() < self.records.capacity(),
            "dead-letter records exceed the capacity reserved at open"
        );
        self.mark(d.id.slot(), d.slots, true);
        let at = self.records.partition_point(|r| r.id.slot() < d.id.slot());
        self.records.insert(at, d);
    }

    /// Replaces a record's status.
    pub fn set_status(&mut self, id: DeadLetterId, replay_requested: bool, delivery_count: u32) {
        // `Log::set_dead_replay` looked the id up first.
        let i = self.position(id).expect("caller checked the id");
        self.records[i].replay_requested = replay_requested;
        self.records[i].delivery_count = delivery_count;
    }

    /// Flags a record whose subscription is gone.
    pub fn set_orphan(&mut self, id: DeadLetterId) {
        if let Some(i) = self.position(id) {
            self.records[i].orphan = true;
        }
    }

    /// Points the records of subscription `uid` at its entry `to`, where it moved.
    pub fn retarget(&mut self, uid: u64, to: SubscriptionId) {
        for d in self
            .records
            .iter_mut()
            .filter(|d| d.subscription_uid == uid)
        {
            d.subscription = to;
        }
    }

    /// Forgets a record just purged (valid or damaged) and frees its slots.
    pub fn remove(&mut self, id: DeadLetterId) {
        if let Some(i) = self.position(id) {
            let d = self.records.remove(i);
            self.mark(d.id.slot(), d.slots, false);
        } else if let Some(i) = self.damaged.iter().position(|&x| x == id) {
            self.damaged.swap_remove(i);
            let slots = self.damaged_slots.swap_remove(i);
            self.mark(id.slot(), slots, false);
        }
    }
}
