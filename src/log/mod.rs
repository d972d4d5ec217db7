//! The persistent event log: superblock, sections, slots, group commit, release by
//! durable cursors, and the recovery scanner. See `FORMAT.md` for the byte layout.
//!
//! Order of durability for an append (one group commit):
//! 1. each record (header + body) is stored into its slots and its lines flushed;
//! 2. one fence makes the whole group durable;
//! 3. only then does [`Batch::commit`] return, and the caller may say `stored(seq)`.
//!
//! Head and tail are kept in memory only; after a restart [`scan`] rebuilds them.
//!
//! Beside the ring: the dead-letter area ([`dead`]), where rejected or exhausted events
//! keep a copy of their own, and the run-state word ([`run_state`]), which tells the
//! next open whether this run stopped cleanly.

mod batch;
pub mod cursors;
pub mod dead;
pub mod event;
pub mod format;
pub mod layout;
pub mod run_state;
pub mod scan;
mod store;

pub use crate::event::{Seq, Severity, SubscriptionMode};
pub use batch::{Batch, BatchMark};
pub use cursors::{Subscription, SubscriptionError, SubscriptionId};
pub use dead::{
    DeadLetter, DeadLetterError, DeadLetterId, DeadLetterProblem, DeadProblemKind, DeadReason,
};
pub use event::{now_unix_ns, EventRef, EventView};
pub use format::{FormatError, Geometry, LogConfig};
pub use run_state::PreviousStop;
pub use scan::{LiveEvents, RecoveryReport, SlotOutcome};
// The store's API takes and returns these: `delivery` opens regions through `log` alone.
pub use crate::pmem::{FileSync, MappedRegion, RegionOptions};
pub use store::{create_file, format_existing, open_path, OpenError, StoreOptions};

use crate::pmem::Medium;
use layout::*;

/// Failures of log operations other than appends.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The region's format is unusable.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A fence or sync failed; the log accepts no more writes.
    #[error("persistent region failed: {0}; herald stops writing to it (restart to recover)")]
    Failed(String),
    /// Subscription table problem.
    #[error(transparent)]
    Subscription(#[from] SubscriptionError),
    /// No such subscription.
    #[error("no durable subscription with id {0:?}")]
    UnknownSubscription(SubscriptionId),
    /// No such dead letter (never made, or purged already).
    #[error("no dead letter with id {0}")]
    UnknownDeadLetter(DeadLetterId),
    /// A cursor that would move backwards, beyond the tail, or into an event.
    #[error("invalid cursor {cursor} for subscription {id:?}: {reason}")]
    BadCursor {
        /// The subscription.
        id: SubscriptionId,
        /// The cursor asked for.
        cursor: u64,
        /// Why it is refused.
        reason: &'static str,
    },
}

/// Why an event was not appended. Nothing was stored for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The group commit reached its slot limit: commit it and start another.
    #[error("group commit is full ({slots_max} slots); commit and start a new batch")]
    GroupFull {
        /// The limit.
        slots_max: u64,
    },
    /// Not enough free slots: unconfirmed events hold the ring.
    #[error("ring full: {needed_slots} slots needed, {free_slots} free ({reserve_slots} kept for crit and above)")]
    Full {
        /// Slots the event needs (with padding).
        needed_slots: u64,
        /// Slots free in total.
        free_slots: u64,
        /// Slots of the critical reserve.
        reserve_slots: u64,
    },
    /// Payload over the configured limit.
    #[error("payload of {bytes} bytes exceeds the limit of {max_bytes}")]
    TooLarge {
        /// Payload size.
        bytes: usize,
        /// Limit.
        max_bytes: u64,
    },
    /// A field is out of range.
    #[error("invalid event: {0}")]
    Invalid(&'static str),
    /// The ring's positions reached [`layout::SEQ_LIMIT`]: never in three centuries
    /// of use, only in a crafted or damaged region.
    #[error("sequence numbers exhausted at {tail} (the limit is 2^63); format a new region")]
    Exhausted {
        /// The tail.
        tail: u64,
    },
    /// The region failed earlier.
    #[error("persistent region failed: {0}")]
    Failed(String),
}

/// What a read-only recovery scan of a region found.
pub struct Analysis {
    /// Geometry from the superblock and sections.
    pub geometry: Geometry,
    /// The subscription table (cursors fixed up where they failed checks).
    pub subscriptions: Vec<Option<Subscription>>,
    /// What the scanner found.
    pub report: RecoveryReport,
    /// Every run of holes (torn last group).
    pub hole_runs: Vec<scan::PositionRun>,
    /// The valid dead letters, by first slot (orphans flagged; damaged records are in
    /// `report.dead_letter_problems` only).
    pub dead_letters: Vec<DeadLetter>,
}

/// Runs the recovery scan without writing anything (`herald inspect` uses this on a
/// live daemon's region; [`Log::open`] uses it and then repairs).
pub fn analyze(bytes: &[u8], progress: scan::Progress<'_>) -> Result<Analysis, FormatError> {
    let geometry = format::read_geometry(bytes)?;
    let mut subscriptions = cursors::load(bytes, &geometry);
    let (mut report, hole_runs) = scan::scan(bytes, &geometry, &mut subscriptions, progress);
    let (dead_letters, problems) = dead::scan(bytes, &geometry, &subscriptions);
    report.previous_stop = run_state::read(bytes);
    report.dead_letters = dead_letters.len() as u64;
    report.dead_letter_slots = geometry.dead_letters.slot_count;
    report.dead_letter_slots_used = dead_letters.iter().map(|d| d.slots).sum::<u64>()
        + problems
            .iter()
            .filter(|p| p.kind == DeadProblemKind::Damaged)
            .map(|p| p.slots)
            .sum::<u64>();
    report.dead_letter_problems = problems;
    Ok(Analysis {
        geometry,
        subscriptions,
        report,
        hole_runs,
        dead_letters,
    })
}

/// Figures the append path would otherwise recompute on every push (one involves a
/// division per call), computed once at open.
#[derive(Copy, Clone, Debug)]
struct RingConsts {
    group_slots_max: u64,
    checksum_seed: u32,
}

impl RingConsts {
    fn new(g: &Geometry) -> RingConsts {
        RingConsts {
            group_slots_max: g.group_slots_max(),
            checksum_seed: g.checksum_seed(),
        }
    }
}

/// The persistent event log over a [`Medium`].
pub struct Log<M: Medium> {
    medium: M,
    geometry: Geometry,
    consts: RingConsts,
    /// Lowest unreleased position (equals the lowest durable cursor).
    head: u64,
    /// Next position to write.
    tail: u64,
    subscriptions: Vec<Option<Subscription>>,
    /// Active entries in `subscriptions`.
    subscription_count: usize,
    next_uid: u64,
    /// Why writes are refused: a fence failed, or the log was closed cleanly.
    failed: Option<String>,
    /// `close_clean` completed: the region is marked clean and takes no more writes.
    closed_clean: bool,
    /// The dead-letter area (empty when the region has none).
    dead: dead::DeadArea,
    /// One bit per subscription entry, all zero between calls: `release` marks the
    /// subscriptions it was given to refuse duplicates without allocating.
    listed: Vec<u64>,
    /// On a deferred medium (a file synced to disk): what waits for a sync.
    deferred: Option<Deferred>,
}

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
struct Deferred {
    /// Something was written since the last sync began.
    dirty: bool,
    /// ...and some of it is a group commit, whose answers wait for the sync (else
    /// only cursor records wait: their sync may be put off).
    urgent: bool,
    /// The sync under way, and the tail when it began.
    in_flight: Option<(u64, u64)>,
    /// Every record below this position is durable (the tail when the last
    /// completed sync began).
    synced_below: u64,
    /// The number of the next sync.
    next: u64,
    /// Per subscription entry: its cursor as durably written...
    durable_cursor: Vec<u64>,
    /// ...and the sync its newest cursor record waits for (None: durable).
    covered_by: Vec<Option<u64>>,
}

/// The reason writes are refused after [`Log::close_clean`].
const CLOSED_CLEAN: &str =
    "the log was closed cleanly (close_clean) and takes no more writes; open the region again";

/// What a group commit made durable.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// First event's sequence number.
    pub first: Seq,
    /// Last event's sequence number.
    pub last: Seq,
    /// Events in the group.
    pub count: u32,
}

impl<M: Medium> Log<M> {
    /// Formats `medium` with `config` and opens it. The medium's previous contents are
    /// overwritten: callers decide when that is allowed (herald never does it to an
    /// existing file).
    pub fn format(mut medium: M, config: &LogConfig, node_id: u64) -> Result<Log<M>, LogError> {
        let len = medium.bytes().len() as u64;
        let geometry = format::plan(len, config, node_id, now_unix_ns())?;
        format::format(&mut medium, &geometry).map_err(|e| LogError::Failed(e.to_string()))?;
        let (log, _) = Log::open(medium, &mut |_, _| {})?;
        Ok(log)
    }

    /// Opens a formatted medium: checks the superblock and sections, runs the recovery
    /// scanner, and seals the holes of a torn last group with padding so that later
    /// scans do not mistake them for damage. Reports how the previous run stopped
    /// (`RecoveryReport::previous_stop`) and durably marks the region running, in the
    /// same fence as the repairs.
    pub fn open(
        medium: M,
        progress: scan::Progress<'_>,
    ) -> Result<(Log<M>, RecoveryReport), LogError> {
        let Analysis {
            geometry,
            subscriptions,
            report,
            hole_runs,
            dead_letters,
        } = analyze(medium.bytes(), progress)?;
        let damaged = report
            .dead_letter_problems
            .iter()
            .filter(|p| p.kind == DeadProblemKind::Damaged)
            .map(|p| (p.id, p.slots))
            .collect();
        let dead = dead::DeadArea::new(&geometry, dead_letters, damaged);
        // Saturating: only a damaged or crafted entry holds a uid near u64::MAX. A uid
        // tells the reuses of one table entry apart, so a repeat after that is harmless
        // but for that entry's orphaned dead letters.
        let next_uid = subscriptions
            .iter()
            .flatten()
            .map(|s| s.uid)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        let mut log = Log {
            head: report.head,
            tail: report.tail,
            consts: RingConsts::new(&geometry),
            subscription_count: subscriptions.iter().flatten().count(),
            geometry,
            medium,
            subscriptions,
            next_uid,
            failed: None,
            closed_clean: false,
            listed: vec![0; geometry.subscriptions.entry_count.div_ceil(64) as usize],
            dead,
            deferred: None,
        };
        if log.medium.deferred() {
            let entries = geometry.subscriptions.entry_count as usize;
            log.deferred = Some(Deferred {
                dirty: false,
                urgent: false,
                in_flight: None,
                synced_below: log.tail,
                next: 1,
                durable_cursor: (0..entries)
                    .map(|i| log.subscriptions[i].map_or(0, |s| s.cursor))
                    .collect(),
                covered_by: vec![None; entries],
            });
        }
        for run in hole_runs {
            log.seal(run.first, run.slots);
        }
        log.scrub_beyond_tail(report.newest_record);
        for s in log.subscriptions.iter().flatten() {
            cursors::scrub_stale_record(&mut log.medium, &log.geometry, s);
        }
        run_state::stage(&mut log.medium, false);
        // A watermark is meaningful only while the region is synced to disk: opened
        // otherwise, recovery goes back to trusting fences alone; opened so, it starts
        // at the tail, made durable by this fence (everything before it is).
        let watermark = if log.medium.deferred() {
            log.tail.max(1)
        } else {
            0
        };
        if scan::sync_watermark(log.medium.bytes()) != watermark {
            log.medium
                .write(SYNC_WATERMARK_OFFSET, &watermark.to_le_bytes());
            log.medium.flush(SYNC_WATERMARK_OFFSET, 8);
        }
        log.fence()?;
        Ok((log, report))
    }

    /// Durably marks the region cleanly stopped; the next open reports
    /// [`PreviousStop::Clean`]. Call it after the final release; the log then refuses
    /// every write (appends, releases, subscription and dead-letter changes) until the
    /// region is opened again. Calling it again is a no-op.
    ///
    /// Order: a fence first (nothing earlier is left pending), then the run-state word
    /// alone, flushed and fenced. Under the 8-byte word model the word may reach the
    /// medium before that last fence; everything else is durable by then, so a region
    /// read as clean never has anything of this run missing.
    pub fn close_clean(&mut self) -> Result<(), LogError> {
        if self.closed_clean {
            return Ok(());
        }
        self.fence()?;
        run_state::stage(&mut self.medium, true);
        self.fence()?;
        self.closed_clean = true;
        self.failed = Some(CLOSED_CLEAN.to_string());
        Ok(())
    }

    fn seal(&mut self, mut first: u64, mut slots: u64) {
        let n = self.geometry.ring.slot_count;
        while slots > 0 {
            let to_ring_end = n - first % n;
            let span = slots.min(to_ring_end).min(u16::MAX as u64);
            self.write_pad(first, span, 0);
            first += span;
            slots -= span;
        }
    }

    /// Invalidates every free slot a lost (torn, never acknowledged) group could have
    /// written. Why: a later torn write of the same position could otherwise complete
    /// the lost attempt's leftover words into a valid record of an event whose producer
    /// never got `stored`. Zeroing each slot's first word removes the lost checksums.
    /// The newest record is spared even when released: the tail is rebuilt from it.
    fn scrub_beyond_tail(&mut self, newest_record: Option<u64>) {
        let n = self.geometry.ring.slot_count;
        let end = (self.tail + self.geometry.group_slots_max())
            .min(self.head + n)
            .min(newest_record.map_or(u64::MAX, |p| p + n));
        for p in self.tail..end {
            let at = self.geometry.slot_offset(p % n);
            if self.medium.bytes()[at..at + 8] != [0u8; 8] {
                self.medium.write(at, &[0u8; 8]);
                self.medium.flush(at, 8);
            }
        }
    }

    /// Makes everything written so far durable (on a deferred medium: a sync now).
    fn fence(&mut self) -> Result<(), LogError> {
        if let Some(reason) = &self.failed {
            return Err(LogError::Failed(reason.clone()));
        }
        self.medium.fence().map_err(|e| {
            let reason = e.to_string();
            self.failed = Some(reason.clone());
            LogError::Failed(reason)
        })?;
        self.mark_all_durable();
        Ok(())
    }

    /// Orders what was written so far (a group commit, a release): durable at once on
    /// a medium that is not deferred, else once a sync begun later ends.
    /// Orders what was just written before everything written later; `urgent` when
    /// an answer waits for it to be durable (a group commit), not for cursor records.
    fn order(&mut self, urgent: bool) -> Result<(), LogError> {
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
    fn mark_all_durable(&mut self) {
        let Some(d) = &mut self.deferred else {
            return;
        };
        d.dirty = false;
        d.urgent = false;
        for s in self.subscriptions.iter().flatten() {
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
        // value a power cut leaves is one that was true.
        let watermark = d.synced_below.max(1);
        self.medium
            .write(SYNC_WATERMARK_OFFSET, &watermark.to_le_bytes());
        self.medium.flush(SYNC_WATERMARK_OFFSET, 8);
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
        for s in self.subscriptions.iter().flatten() {
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

    /// The geometry read at open.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The underlying medium (read access, e.g. for tests and `inspect`).
    pub fn medium(&self) -> &M {
        &self.medium
    }

    /// Mutable access to the medium, for tests that record its operations.
    pub fn medium_mut(&mut self) -> &mut M {
        &mut self.medium
    }

    /// Gives the medium back.
    pub fn into_medium(self) -> M {
        self.medium
    }

    /// Lowest unreleased sequence number.
    pub fn head(&self) -> Seq {
        Seq(self.head)
    }

    /// The sequence number the next event will get (if it needs no padding).
    pub fn tail(&self) -> Seq {
        Seq(self.tail)
    }

    /// Slots between head and tail.
    pub fn used_slots(&self) -> u64 {
        self.tail - self.head
    }

    /// Reads the event at `seq`, if a valid event is stored there.
    pub fn read(&self, seq: Seq) -> Option<EventView<'_>> {
        if seq.0 < self.tail.saturating_sub(self.geometry.ring.slot_count) || seq.0 >= self.tail {
            return None;
        }
        scan::read_event(self.medium.bytes(), &self.geometry, seq)
    }

    /// The valid events from `from` (clamped to head) up to the tail, in order.
    pub fn events_from(&self, from: Seq) -> LiveEvents<'_> {
        LiveEvents::new(
            self.medium.bytes(),
            &self.geometry,
            from.0.max(self.head),
            self.tail,
        )
    }

    /// The valid events from `from` up to the tail, including released ones whose
    /// slots have not been reused yet (a live-only reader holds nothing, so it may lag
    /// behind the head). Every record is validated as it is read; one whose slot was
    /// reused no longer matches its position and is skipped. `end` bounds the read
    /// (clamped to the tail): a reader reads what it was told was committed.
    pub fn events_since(&self, from: Seq, end: u64) -> LiveEvents<'_> {
        let oldest = self.tail.saturating_sub(self.geometry.ring.slot_count);
        LiveEvents::new(
            self.medium.bytes(),
            &self.geometry,
            from.0.max(oldest),
            end.min(self.tail),
        )
    }

    /// Starts a group commit.
    pub fn batch(&mut self) -> Batch<'_, M> {
        Batch::new(self)
    }

    /// Appends one event with its own fence.
    pub fn append(&mut self, event: &EventRef<'_>) -> Result<Seq, AppendError> {
        let mut batch = self.batch();
        let seq = batch.push(event)?;
        batch
            .commit()
            .map_err(|e| AppendError::Failed(e.to_string()))?;
        Ok(seq)
    }

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
        if name.is_empty() || name.len() > SUBSCRIPTION_NAME_BYTES_MAX {
            return Err(SubscriptionError::BadName.into());
        }
        if spec.len() > SUBSCRIPTION_SPEC_BYTES_MAX {
            return Err(SubscriptionError::SpecTooLarge.into());
        }
        if self.subscription_by_name(name).is_some() {
            return Err(SubscriptionError::Exists.into());
        }
        let index = self.subscriptions.iter().position(|s| s.is_none()).ok_or(
            SubscriptionError::TableFull(self.geometry.subscriptions.entry_count),
        )?;
        if let Some(reason) = &self.failed {
            return Err(LogError::Failed(reason.clone()));
        }
        let uid = self.next_uid;
        let new = cursors::NewEntry {
            index: index as u32,
            uid,
            name,
            spec,
            cursor: self.tail,
            now_ns: now_unix_ns(),
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

    /// Deletes a durable subscription: it no longer holds any event.
    pub fn delete_subscription(&mut self, id: SubscriptionId) -> Result<(), LogError> {
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
        if mine.is_empty() {
            return Ok(());
        }
        for &d in &mine {
            self.dead.set_orphan(d);
        }
        self.purge_dead(&mine)
    }

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

    /// Slots of the event ring.
    pub fn ring_slots(&self) -> u64 {
        self.geometry.ring.slot_count
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

    /// Advances the durable cursors of several subscriptions with one fence, then
    /// releases every slot below the lowest cursor. A cursor must not move backwards,
    /// must not pass the tail, and must point at an event boundary (or the tail).
    ///
    /// A subscription may appear only once: a second update in the same fence would
    /// overwrite the cursor record that is still the durable one, and a power cut
    /// before the fence could then leave neither record valid.
    pub fn release(&mut self, updates: &[(SubscriptionId, Seq)]) -> Result<(), LogError> {
        let checked = self.check_release(updates);
        for &(id, _) in updates {
            if let Some(word) = self.listed.get_mut(id.0 as usize / 64) {
                *word = 0;
            }
        }
        checked?;
        if self.deferred.is_none() {
            return self.update_cursors(updates.iter().map(|&(id, c)| (id, c.0, None)));
        }
        if let Some(reason) = &self.failed {
            return Err(LogError::Failed(reason.clone()));
        }
        // Written and ordered; durable (and the head moved) when the next sync ends.
        for &(id, cursor) in updates {
            let Some(s) = self.subscriptions[id.0 as usize].as_mut() else {
                continue;
            };
            let mode = s.mode;
            cursors::stage_cursor(&mut self.medium, &self.geometry, s, cursor.0, mode);
        }
        self.order(false)?;
        if let Some(d) = &mut self.deferred {
            for &(id, _) in updates {
                d.covered_by[id.0 as usize] = Some(d.next);
            }
        }
        Ok(())
    }

    /// Validates a release, marking each subscription in `listed` (cleared by the
    /// caller).
    fn check_release(&mut self, updates: &[(SubscriptionId, Seq)]) -> Result<(), LogError> {
        for &(id, cursor) in updates {
            let s = self
                .subscription(id)
                .ok_or(LogError::UnknownSubscription(id))?;
            let bad = |reason| LogError::BadCursor {
                id,
                cursor: cursor.0,
                reason,
            };
            if cursor.0 < s.cursor {
                return Err(bad("cursors only move forward"));
            }
            if cursor.0 > self.tail {
                return Err(bad("beyond the tail"));
            }
            if cursor.0 < self.tail && !self.is_record_start(cursor.0) {
                return Err(bad("not the start of a record"));
            }
            if !self.cursor_writable(id) {
                return Err(bad("its previous cursor write still waits for a sync"));
            }
            let bit = 1u64 << (id.0 % 64);
            let word = &mut self.listed[id.0 as usize / 64];
            if *word & bit != 0 {
                return Err(bad("subscription listed twice in one release"));
            }
            *word |= bit;
        }
        Ok(())
    }

    /// Persists a subscription's mode (normal or recovering), cursor unchanged.
    pub fn set_mode(&mut self, id: SubscriptionId, mode: SubscriptionMode) -> Result<(), LogError> {
        let cursor = self
            .subscription(id)
            .ok_or(LogError::UnknownSubscription(id))?
            .cursor;
        self.update_cursors(std::iter::once((id, cursor, Some(mode))))
    }

    fn update_cursors(
        &mut self,
        updates: impl Iterator<Item = (SubscriptionId, u64, Option<SubscriptionMode>)>,
    ) -> Result<(), LogError> {
        if let Some(reason) = &self.failed {
            return Err(LogError::Failed(reason.clone()));
        }
        // On a deferred medium, a cursor record still waiting for its sync must be
        // durable before its pair is overwritten: one sync now makes everything so.
        if self
            .deferred
            .as_ref()
            .is_some_and(|d| d.covered_by.iter().any(Option::is_some))
        {
            self.fence()?;
        }
        for (id, cursor, mode) in updates {
            // `release` (check_release) and `set_mode` looked every id up first.
            let s = self.subscriptions[id.0 as usize]
                .as_mut()
                .expect("validated by caller");
            let mode = mode.unwrap_or(s.mode);
            cursors::stage_cursor(&mut self.medium, &self.geometry, s, cursor, mode);
        }
        self.fence()?;
        self.recompute_head();
        Ok(())
    }

    fn is_record_start(&self, position: u64) -> bool {
        let n = self.geometry.ring.slot_count;
        scan::valid_record(self.medium.bytes(), &self.geometry, position % n)
            .is_some_and(|h| h.seq == position)
    }

    fn recompute_head(&mut self) {
        self.subscription_count = self.subscriptions.iter().flatten().count();
        // Slots are reused only below cursors that are durable: on a deferred medium,
        // a cursor written but not yet synced does not release anything yet.
        let deferred = &self.deferred;
        self.head = self
            .subscriptions
            .iter()
            .flatten()
            .map(|s| match deferred {
                Some(d) => d.durable_cursor[s.id.0 as usize],
                None => s.cursor,
            })
            .min()
            .unwrap_or(self.tail);
    }

    fn write_pad(&mut self, seq: u64, span: u64, group_offset: u32) {
        let mut h: SlotHeader = bytemuck::Zeroable::zeroed();
        h.magic = SLOT_MAGIC;
        h.kind = SLOT_KIND_PAD;
        h.seq = seq;
        h.span = span as u16;
        h.group_offset = group_offset;
        h.checksum = crc_append(self.geometry.checksum_seed(), &bytemuck::bytes_of(&h)[4..]);
        let at = self
            .geometry
            .slot_offset(seq % self.geometry.ring.slot_count);
        self.medium.write(at, bytemuck::bytes_of(&h));
        self.medium.flush(at, SLOT_HEADER_BYTES);
    }
}
