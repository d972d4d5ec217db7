//! The log's dead-letter operations: copying an event into the dead-letter area,
//! listing, purging and marking records for replay (the area itself is `dead`).

use super::*;

impl<M: Medium> Log<M> {
    /// Copies the event at `seq` into a new dead-letter record for subscription `sub`
    /// and makes it durable before returning. From then on the event may be released
    /// for `sub` (its cursor may pass `seq`, its ring slots may be reused): the record
    /// holds its own copy.
    ///
    /// Order of durability: phase 0 (stale words of the run zeroed; fenced only if any
    /// were written), phase 1 (the static part: header and copy; fenced), phase 2 (the
    /// status word; fenced). A power cut leaves no record or the complete one.
    pub fn dead_letter(
        &mut self,
        sub: SubscriptionId,
        seq: Seq,
        delivery_count: u32,
        reason: DeadReason,
    ) -> Result<DeadLetterId, DeadLetterError> {
        if !self.geometry.has_dead_letters() {
            return Err(DeadLetterError::NoArea);
        }
        let subscription_uid = self
            .subscription(sub)
            .ok_or(DeadLetterError::UnknownSubscription(sub))?
            .uid;
        let event = self.read(seq).ok_or(DeadLetterError::NotFound(seq))?;
        let new = dead::NewDeadLetter {
            subscription: sub,
            subscription_uid,
            reason,
            dead_unix_ns: now_unix_ns(),
        };
        let header = dead::header_for(&event, &new, &self.geometry);
        let slots = header.span as u64;
        let ring_body_offset = self
            .geometry
            .slot_offset(seq.0 % self.geometry.ring.slot_count)
            + SLOT_HEADER_BYTES;
        if let Some(reason) = &self.failed {
            return Err(DeadLetterError::Failed(reason.clone()));
        }
        let slot = self.dead.first_fit(slots).ok_or(DeadLetterError::Full {
            free_slots: self.dead.free_slots(),
            needed: slots,
        })?;
        let failed = |e: LogError| match e {
            LogError::Failed(reason) => DeadLetterError::Failed(reason),
            other => DeadLetterError::Failed(other.to_string()),
        };
        if dead::stage_clear_run(&mut self.medium, &self.geometry, slot, slots) {
            self.fence().map_err(failed)?;
        }
        let checksum = dead::stage_static(
            &mut self.medium,
            &self.geometry,
            slot,
            &header,
            ring_body_offset,
        );
        self.fence().map_err(failed)?;
        let status = Some((false, delivery_count));
        dead::stage_status(&mut self.medium, &self.geometry, slot, checksum, status);
        self.fence().map_err(failed)?;
        let letter = DeadLetter {
            id: DeadLetterId::new(slot, checksum),
            subscription: sub,
            subscription_uid,
            seq,
            delivery_count,
            reason,
            dead_unix_ns: new.dead_unix_ns,
            replay_requested: false,
            slots,
            orphan: false,
        };
        self.dead.insert(letter);
        Ok(letter.id)
    }

    /// The dead letters, by position in the area (orphans included, flagged).
    pub fn dead_letters(&self) -> impl Iterator<Item = &DeadLetter> {
        self.dead.records().iter()
    }

    /// The dead letters of subscription `id`: not those of an earlier subscription
    /// that used the same table entry (their uid differs), nor orphans.
    pub fn dead_letters_of(&self, id: SubscriptionId) -> impl Iterator<Item = &DeadLetter> {
        let uid = self.subscription(id).map(|s| s.uid);
        self.dead_letters()
            .filter(move |d| d.subscription == id && Some(d.subscription_uid) == uid)
    }

    /// One dead letter's metadata.
    pub fn dead_letter_info(&self, id: DeadLetterId) -> Option<&DeadLetter> {
        self.dead.get(id)
    }

    /// Ids of damaged dead-letter records found at open (see the report's
    /// `dead_letter_problems`); `purge_dead` accepts them.
    pub fn damaged_dead_letters(&self) -> &[DeadLetterId] {
        self.dead.damaged()
    }

    /// Slots the damaged dead-letter records hold (each holds the span its header
    /// claims when that header is sane, else its first slot; see
    /// [`DeadLetterProblem::slots`]).
    pub fn damaged_dead_letter_slots(&self) -> u64 {
        self.dead.damaged_slots()
    }

    /// Free and total slots of the dead-letter area (0 and 0 when it has none).
    pub fn dead_letter_slots(&self) -> (u64, u64) {
        (self.dead.free_slots(), self.dead.slot_count())
    }

    /// The copy of a dead letter's event, with its original seq.
    pub fn dead_event(&self, id: DeadLetterId) -> Option<EventView<'_>> {
        let d = self.dead.get(id)?;
        dead::read_event(self.medium.bytes(), &self.geometry, d)
    }

    /// Purges dead letters (valid or damaged) with one fence: each status word goes
    /// back to zero. Every id is checked before anything is written; an unknown id
    /// (never made, or purged already) is an error and nothing is purged. A power cut
    /// leaves each record present or gone.
    pub fn purge_dead(&mut self, ids: &[DeadLetterId]) -> Result<(), LogError> {
        if let Some(&unknown) = ids.iter().find(|&&id| !self.dead.contains(id)) {
            return Err(LogError::UnknownDeadLetter(unknown));
        }
        if ids.is_empty() {
            return Ok(());
        }
        if let Some(reason) = &self.failed {
            return Err(LogError::Failed(reason.clone()));
        }
        for &id in ids {
            let checksum = id.checksum();
            dead::stage_status(&mut self.medium, &self.geometry, id.slot(), checksum, None);
        }
        self.fence()?;
        for &id in ids {
            self.dead.remove(id);
        }
        Ok(())
    }

    /// Sets a dead letter's replay flag and delivery count with one aligned store and
    /// a fence: a power cut leaves the old or the new status, never a mix. The daemon
    /// sets `requested` when an operator asks for a replay, and clears it (raising the
    /// count) when the replayed copy is rejected or exhausted again.
    pub fn set_dead_replay(
        &mut self,
        id: DeadLetterId,
        requested: bool,
        delivery_count: u32,
    ) -> Result<(), LogError> {
        if self.dead.get(id).is_none() {
            return Err(LogError::UnknownDeadLetter(id));
        }
        if let Some(reason) = &self.failed {
            return Err(LogError::Failed(reason.clone()));
        }
        let status = Some((requested, delivery_count));
        let checksum = id.checksum();
        dead::stage_status(
            &mut self.medium,
            &self.geometry,
            id.slot(),
            checksum,
            status,
        );
        self.fence()?;
        self.dead.set_status(id, requested, delivery_count);
        Ok(())
    }
}
