//! An operator's management of durable subscriptions, carried out on the set and the
//! log together: create one before any consumer attaches (starting where asked),
//! delete, pause and resume, reset the cursor, change the filters. Each change is durable in the log
//! before the set changes, so a crash leaves either the old state or the new one.

use super::set::{SubscriptionSet, SubscriptionState};
use super::{RedeliveryConfig, SubscriptionSpec, Tracker};
use crate::log::{self, Log, Seq, Start, SubscriptionId};
use crate::pmem::Medium;

/// Why a management request was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// No durable subscription has the name.
    #[error("no durable subscription named {0:?}")]
    Unknown(String),
    /// The name is taken.
    #[error("a durable subscription named {0:?} exists already")]
    Exists(String),
    /// The change needs the subscription without a consumer.
    #[error("durable subscription {0:?} has a consumer attached: stop the consumer first (its in-flight events would otherwise be settled against a cursor that moved)")]
    Attached(String),
    /// The log's subscription table has no free entry.
    #[error("the subscription table is full ({0} durable subscriptions): delete one, or format a region with more entries")]
    TableFull(u64),
    /// Changing the filters needs a free table entry, and there is none.
    #[error("changing filters needs one free entry in the subscription table, and all {0} are in use: delete a subscription first")]
    NoEntryToMove(u64),
    /// No room in the daemon's table.
    #[error("no free subscription slot in the daemon")]
    NoSlot,
    /// The start position cannot be had, or the log refused.
    #[error(transparent)]
    Log(log::LogError),
}

impl From<log::LogError> for ManageError {
    fn from(e: log::LogError) -> ManageError {
        match e {
            log::LogError::Subscription(log::SubscriptionError::TableFull(n)) => {
                ManageError::TableFull(n)
            }
            other => ManageError::Log(other),
        }
    }
}

/// What a created or reset subscription starts from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// Its cursor: the first position owed to it.
    pub cursor: Seq,
    /// The oldest position the ring held when it was placed.
    pub held_from: Seq,
    /// The tail then.
    pub tail: Seq,
}

impl SubscriptionSet {
    /// Creates durable subscription `name` with `spec`, unattached, its cursor at
    /// `start`. Events from the cursor on are held for it from now.
    pub fn create<M: Medium>(
        &mut self,
        log: &mut Log<M>,
        name: &[u8],
        spec: SubscriptionSpec,
        start: Start,
        redelivery: &RedeliveryConfig,
    ) -> Result<Placed, ManageError> {
        if log.subscription_by_name(name).is_some() {
            return Err(ManageError::Exists(lossy(name)));
        }
        let slot = self.free_slot().map_err(|_| ManageError::NoSlot)?;
        let held_from = log.held_from();
        let mut stored = [0u8; log::layout::SUBSCRIPTION_SPEC_BYTES_MAX];
        let len = spec.encode(&mut stored);
        let id = log.create_subscription_at(name, &stored[..len], start)?;
        let cursor = log.subscription(id).map_or(log.tail().0, |s| s.cursor);
        let policy = redelivery.policy(spec.ack_deadline_ms, spec.max_deliveries);
        let tracker = Tracker::new(cursor, spec.window_events, 0, policy);
        self.slots[slot] = Some(SubscriptionState::new(Some(id), spec, tracker));
        Ok(Placed {
            cursor: Seq(cursor),
            held_from,
            tail: log.tail(),
        })
    }

    /// Deletes durable subscription `name`, which has no consumer: the events it held
    /// are released, and its dead letters purged (or kept, as orphans).
    pub fn delete<M: Medium>(
        &mut self,
        log: &mut Log<M>,
        name: &[u8],
        keep_dead_letters: bool,
    ) -> Result<(), ManageError> {
        let (index, id) = self.detached(log, name)?;
        if keep_dead_letters {
            log.delete_subscription_keeping_dead_letters(id)?;
        } else {
            log.delete_subscription(id)?;
        }
        self.slots[index] = None;
        Ok(())
    }

    /// Pauses (`true`) or resumes durable subscription `name`. A paused one is
    /// delivered nothing, redeliveries included; what it has in flight may still be
    /// settled, and its events are held.
    pub fn set_paused<M: Medium>(
        &mut self,
        log: &mut Log<M>,
        name: &[u8],
        paused: bool,
    ) -> Result<(), ManageError> {
        let id = durable_id(log, name)?;
        let index = self.index_of(id).ok_or(ManageError::NoSlot)?;
        log.set_paused(id, paused)?;
        if let Some(sub) = self.get_mut(index) {
            sub.paused = paused;
        }
        Ok(())
    }

    /// Moves durable subscription `name`'s cursor to `start`, which it has no consumer
    /// for. Events from the new cursor on are owed to it, flagged redelivered where it
    /// had been given them before.
    pub fn reset<M: Medium>(
        &mut self,
        log: &mut Log<M>,
        name: &[u8],
        start: Start,
    ) -> Result<Placed, ManageError> {
        let (index, id) = self.detached(log, name)?;
        let held_from = log.held_from();
        let cursor = log.reset_cursor(id, start)?;
        if let Some(sub) = self.get_mut(index) {
            let policy = sub.tracker.policy();
            // Everything it examined before may have reached a consumer.
            let delivered_below = sub.tracker.next();
            sub.tracker = Tracker::new(cursor.0, sub.spec.window_events, delivered_below, policy);
        }
        Ok(Placed {
            cursor,
            held_from,
            tail: log.tail(),
        })
    }

    /// Replaces durable subscription `name`'s spec (filters, severity floor, policy)
    /// with `spec`, atomically in the log; it has no consumer. The new filters decide
    /// from its cursor on: events not yet settled for it are matched against them, and
    /// those it was given before come again flagged redelivered.
    pub fn change_spec<M: Medium>(
        &mut self,
        log: &mut Log<M>,
        name: &[u8],
        spec: SubscriptionSpec,
        redelivery: &RedeliveryConfig,
    ) -> Result<(), ManageError> {
        let (index, id) = self.detached(log, name)?;
        let mut stored = [0u8; log::layout::SUBSCRIPTION_SPEC_BYTES_MAX];
        let len = spec.encode(&mut stored);
        let moved = log.change_spec(id, &stored[..len]).map_err(|e| match e {
            log::LogError::Subscription(log::SubscriptionError::TableFull(n)) => {
                ManageError::NoEntryToMove(n)
            }
            other => other.into(),
        })?;
        let cursor = log.subscription(moved).map_or(log.tail().0, |s| s.cursor);
        if let Some(sub) = self.get_mut(index) {
            let delivered_below = sub.tracker.next();
            let policy = redelivery.policy(spec.ack_deadline_ms, spec.max_deliveries);
            sub.tracker = Tracker::new(cursor, spec.window_events, delivered_below, policy);
            sub.durable = Some(moved);
            sub.spec = spec;
        }
        Ok(())
    }

    /// The set's index and log id of durable subscription `name`, checked to have no
    /// consumer.
    fn detached<M: Medium>(
        &self,
        log: &Log<M>,
        name: &[u8],
    ) -> Result<(usize, SubscriptionId), ManageError> {
        let id = durable_id(log, name)?;
        let index = self.index_of(id).ok_or(ManageError::NoSlot)?;
        match self.get(index) {
            Some(sub) if !sub.members.is_empty() => Err(ManageError::Attached(lossy(name))),
            _ => Ok((index, id)),
        }
    }
}

fn durable_id<M: Medium>(log: &Log<M>, name: &[u8]) -> Result<SubscriptionId, ManageError> {
    log.subscription_by_name(name)
        .map(|s| s.id)
        .ok_or_else(|| ManageError::Unknown(lossy(name)))
}

fn lossy(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}
