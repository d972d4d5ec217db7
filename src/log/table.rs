//! The log's subscription table as the rest of the daemon uses it: looking entries up,
//! creating one (its creation fenced, so everything before it is durable too), and
//! deleting one with its dead letters.

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
