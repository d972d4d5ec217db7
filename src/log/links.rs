//! Upstream links' entries (layout version 2): a relay's record of how far it has
//! stored what an upstream herald sent it. An entry of the subscription table whose
//! state word is [`SUBSCRIPTION_LINK`]; its name is the relay's `--upstream-name`, its
//! spec the caller's (the upstream's node id), and its cursor the **mark**: every
//! event the upstream sent with a seq below it is stored here (an event the upstream
//! sends again below the mark is a duplicate, and confirmed without storing it twice).
//!
//! The mark is written only for events already durable (the caller's rule), with the
//! same two alternating records as a cursor, so a torn update leaves the previous mark.
//! After a crash the caller also takes the highest `upstream_seq` of the link's
//! relayed records still in the ring: the mark may lag them, never lead them.
//!
//! Links are kept apart from subscriptions: the recovery scan, the dead-letter checks
//! and the head never see them (their cursors are another node's seqs).

use super::*;

impl<M: Medium> Log<M> {
    /// The upstream links' entries.
    pub fn links(&self) -> impl Iterator<Item = &Subscription> {
        self.links.iter().flatten()
    }

    /// One link entry by id.
    pub fn link(&self, id: SubscriptionId) -> Option<&Subscription> {
        self.links.get(id.0 as usize).and_then(|s| s.as_ref())
    }

    /// Finds a link entry by name.
    pub fn link_by_name(&self, name: &[u8]) -> Option<&Subscription> {
        self.links().find(|s| s.name() == name)
    }

    /// Creates a link entry with its mark at `mark` (fenced before it returns).
    pub fn create_link(
        &mut self,
        name: &[u8],
        spec: &[u8],
        mark: u64,
    ) -> Result<SubscriptionId, LogError> {
        if !self.geometry.holds_relayed() {
            return Err(LogError::Failed(
                "this region's layout (version 1) holds no upstream links: relaying needs \
                 a region formatted by this herald (layout version 2)"
                    .into(),
            ));
        }
        check_entry(name, spec)?;
        if self.link_by_name(name).is_some() {
            return Err(SubscriptionError::Exists.into());
        }
        let index = self.free_entry()?;
        if let Some(reason) = &self.failed {
            return Err(LogError::Failed(reason.clone()));
        }
        let new = cursors::NewEntry {
            index: index as u32,
            uid: self.next_uid,
            name,
            spec,
            cursor: mark,
            now_ns: now_unix_ns(),
            link: true,
        };
        let created = cursors::create(&mut self.medium, &self.geometry, &new).map_err(|e| {
            self.failed = Some(e.to_string());
            LogError::Failed(e.to_string())
        })?;
        self.mark_all_durable();
        self.next_uid = self.next_uid.saturating_add(1);
        self.links[index] = Some(created);
        Ok(SubscriptionId(index as u32))
    }

    /// Frees a link entry (fenced): the upstream it named is gone or was replaced.
    pub fn delete_link(&mut self, id: SubscriptionId) -> Result<(), LogError> {
        if self.link(id).is_none() {
            return Err(LogError::UnknownSubscription(id));
        }
        if let Some(reason) = &self.failed {
            return Err(LogError::Failed(reason.clone()));
        }
        cursors::delete(&mut self.medium, &self.geometry, id.0).map_err(|e| {
            self.failed = Some(e.to_string());
            LogError::Failed(e.to_string())
        })?;
        self.mark_all_durable();
        self.links[id.0 as usize] = None;
        Ok(())
    }

    /// Writes link `id`'s mark (it only moves forward): fenced at once, or on a region
    /// synced to disk ordered and durable with the next sync. `Ok(false)`: not written
    /// now, because the previous write still waits for its sync (two alternating
    /// records must never both be unsynced); the caller writes it again later.
    pub fn set_link_mark(&mut self, id: SubscriptionId, mark: u64) -> Result<bool, LogError> {
        if let Some(reason) = &self.failed {
            return Err(LogError::Failed(reason.clone()));
        }
        if !self.cursor_writable(id) {
            return Ok(false);
        }
        let Some(s) = self.links.get_mut(id.0 as usize).and_then(|s| s.as_mut()) else {
            return Err(LogError::UnknownSubscription(id));
        };
        if mark <= s.cursor {
            return Ok(true);
        }
        cursors::stage_cursor(
            &mut self.medium,
            &self.geometry,
            s,
            mark,
            SubscriptionMode::Normal,
        );
        self.order(false)?;
        if let Some(d) = &mut self.deferred {
            d.covered_by[id.0 as usize] = Some(d.next);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pmem::sim::SimMedium;

    fn log() -> Log<SimMedium> {
        let config = LogConfig {
            subscription_entries: 8,
            ..LogConfig::default()
        };
        Log::format(SimMedium::new(1 << 20), &config, 0x5eed).unwrap()
    }

    #[test]
    fn a_link_keeps_its_mark_across_a_reopen_and_stays_out_of_the_subscriptions() {
        let mut log = log();
        let sub = log.create_subscription(b"local", b"").unwrap();
        let link = log.create_link(b"up", b"node", 1).unwrap();
        assert_ne!(sub, link, "a link takes an entry of its own");
        assert!(log.set_link_mark(link, 500).unwrap());
        // Below the mark: a no-op, never a step back.
        assert!(log.set_link_mark(link, 10).unwrap());
        assert_eq!(log.subscriptions().count(), 1);
        assert!(log.subscription_by_name(b"up").is_none());
        let (log, _) = Log::open(log.into_medium(), &mut |_, _| {}).unwrap();
        let l = log.link_by_name(b"up").expect("the link survives");
        assert_eq!(l.cursor, 500);
        assert_eq!(l.spec(), b"node");
        assert_eq!(log.subscriptions().count(), 1);
        // The link's mark (an upstream seq far beyond this ring) holds nothing back.
        assert_eq!(log.head(), log.tail());
    }

    #[test]
    fn a_deleted_link_frees_its_entry() {
        let mut log = log();
        let link = log.create_link(b"up", b"", 7).unwrap();
        log.delete_link(link).unwrap();
        assert!(log.link_by_name(b"up").is_none());
        let (log, _) = Log::open(log.into_medium(), &mut |_, _| {}).unwrap();
        assert_eq!(log.links().count(), 0);
    }
}
