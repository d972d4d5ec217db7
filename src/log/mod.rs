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
mod dead_letters;
pub mod event;
pub mod format;
pub mod layout;
mod links;
mod manage;
mod retention;
pub mod rules;
pub mod run_state;
pub mod scan;
mod store;
mod sync;
mod table;

pub use crate::event::{Seq, Severity, SubscriptionMode};
pub use batch::{Batch, BatchMark};
pub use cursors::{Subscription, SubscriptionError, SubscriptionId};
pub use dead::{
    DeadLetter, DeadLetterError, DeadLetterId, DeadLetterProblem, DeadProblemKind, DeadReason,
};
pub use event::{now_unix_ns, EventRef, EventView, Hop, Relayed};
pub use format::{FormatError, Geometry, LogConfig};
pub use manage::{Start, StartError};
pub use retention::{Retain, Retention, RetentionStatus};
pub use rules::{RuleEntry, RuleSlot, RuleTableError};
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
    /// A start position (of a new subscription, or a reset) the ring cannot give.
    #[error(transparent)]
    Start(#[from] StartError),
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
    /// A routing rule change refused.
    #[error(transparent)]
    Rules(#[from] RuleTableError),
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
    /// The upstream links' entries, by entry index (`links.rs`).
    pub links: Vec<Option<Subscription>>,
    /// What the scanner found.
    pub report: RecoveryReport,
    /// Every run of holes (torn last group).
    pub hole_runs: Vec<scan::PositionRun>,
    /// Entries superseded by their copy in an interrupted move, to be freed.
    pub superseded: Vec<u32>,
    /// The valid dead letters, by first slot (orphans flagged; damaged records are in
    /// `report.dead_letter_problems` only).
    pub dead_letters: Vec<DeadLetter>,
    /// The routing rule table.
    pub rules: rules::RuleScan,
}

/// Runs the recovery scan without writing anything (`herald inspect` uses this on a
/// live daemon's region; [`Log::open`] uses it and then repairs).
pub fn analyze(bytes: &[u8], progress: scan::Progress<'_>) -> Result<Analysis, FormatError> {
    let geometry = format::read_geometry(bytes)?;
    let mut subscriptions = cursors::load(bytes, &geometry);
    // Link entries hold an upstream's seqs, not positions of this ring: the scan, the
    // dead-letter checks and the head never see them.
    let links = subscriptions
        .iter_mut()
        .map(|s| s.take_if(|s| s.link))
        .collect();
    let superseded = cursors::resolve_moves(&mut subscriptions);
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
    report.interrupted_moves = superseded.len() as u64;
    let rules = rules::scan(bytes, &geometry);
    report.interrupted_rule_changes = rules.superseded.len() as u64;
    report.damaged_rules = rules
        .slots
        .iter()
        .enumerate()
        .filter(|(_, s)| **s == rules::RuleSlot::Damaged)
        .map(|(i, _)| i as u32)
        .collect();
    Ok(Analysis {
        geometry,
        subscriptions,
        links,
        report,
        hole_runs,
        superseded,
        dead_letters,
        rules,
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
    /// Upstream links' entries, by entry index (an index is in one vector at most).
    links: Vec<Option<Subscription>>,
    /// Per link: the relayed records its durable mark does not cover yet, which hold
    /// the head (`links.rs`).
    pins: Vec<links::LinkPins>,
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
    deferred: Option<sync::Deferred>,
    /// Released events kept from being overwritten (`retention.rs`).
    retention: retention::RetentionState,
    /// The routing rule table (`rules.rs`).
    rules: rules::RuleScan,
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
            links,
            report,
            hole_runs,
            superseded,
            dead_letters,
            rules,
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
            .chain(&links)
            .flatten()
            .map(|s| s.uid)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        let pins = links
            .iter()
            .flatten()
            .map(|l| links::LinkPins::new(l.id.0))
            .collect();
        let mut log = Log {
            head: report.head,
            tail: report.tail,
            consts: RingConsts::new(&geometry),
            subscription_count: subscriptions.iter().flatten().count(),
            geometry,
            medium,
            subscriptions,
            links,
            pins,
            next_uid,
            failed: None,
            closed_clean: false,
            listed: vec![0; geometry.subscriptions.entry_count.div_ceil(64) as usize],
            dead,
            deferred: None,
            retention: Default::default(),
            rules,
        };
        if log.medium.deferred() {
            let entries = geometry.subscriptions.entry_count as usize;
            log.deferred = Some(sync::Deferred {
                dirty: false,
                urgent: false,
                in_flight: None,
                synced_below: log.tail,
                // What this open writes below, before its fence.
                watermark_written: log.tail.max(1),
                next: 1,
                durable_cursor: (0..entries)
                    .map(|i| log.subscriptions[i].map_or(0, |s| s.cursor))
                    .collect(),
                covered_by: vec![None; entries],
            });
        }
        // First, while released relayed records are still whole: the scrub below may
        // clear slots behind the head, where records the marks did not cover can lie.
        if log.settle_link_marks() {
            // Durable before the scrub: the two writes could reach the medium in
            // either order.
            log.fence()?;
        }
        for run in hole_runs {
            log.seal(run.first, run.slots);
        }
        // After a clean stop no group was lost: nothing to scrub, and released events
        // past the tail (what a retention or a `Start::First` reaches) stay whole.
        if report.previous_stop != PreviousStop::Clean {
            log.scrub_beyond_tail(report.newest_record);
        }
        for s in log.subscriptions.iter().chain(&log.links).flatten() {
            cursors::scrub_stale_record(&mut log.medium, &log.geometry, s);
        }
        // An interrupted rule change: the older version retired where the newer took
        // effect (fenced on its own: two words in order).
        if !log.rules.superseded.is_empty() {
            let superseded = std::mem::take(&mut log.rules.superseded);
            rules::finish_changes(&mut log.medium, &log.geometry, &superseded)
                .map_err(|e| LogError::Failed(e.to_string()))?;
        }
        // Durable with this open's fence, before any creation may reuse the entry.
        for index in superseded {
            cursors::stage_free(&mut log.medium, &log.geometry, index);
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

    /// Slots of the event ring.
    pub fn ring_slots(&self) -> u64 {
        self.geometry.ring.slot_count
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
        self.release_link_pins();
        // Slots are reused only below cursors that are durable: on a deferred medium,
        // a cursor written but not yet synced does not release anything yet.
        let deferred = &self.deferred;
        let cursors = self.subscriptions.iter().flatten().map(|s| match deferred {
            Some(d) => d.durable_cursor[s.id.0 as usize],
            None => s.cursor,
        });
        // A pin may lie past the tail once its group was rolled back.
        self.head = cursors
            .min()
            .into_iter()
            .chain(self.link_pin_floor())
            .min()
            .unwrap_or(self.tail)
            .min(self.tail);
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
