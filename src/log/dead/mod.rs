//! The dead-letter area: persistent copies of events that a subscriber rejected or
//! that reached their subscription's maximum delivery count.
//!
//! A dead letter holds its own copy of the event, so the subscription's cursor may pass
//! the original and its ring slots may be reused. The area is a fixed array of slots
//! (the ring's slot size); a record occupies a contiguous run of them, chosen first-fit
//! from an in-memory bitmap that the scanner rebuilds at open.
//!
//! A record has a **static part** (header from `checksum` on, and the body), written
//! once and covered by a seeded checksum, and a **status word** (its first aligned 8
//! bytes), the only thing that changes afterwards:
//!
//! ```text
//! bits  0..8   state: 0 free, 1 dead, 2 dead with replay requested
//! bits  8..16  zero
//! bits 16..32  check: low 16 bits of CRC32C(seed; status with these bits zero, then
//!              the static checksum), binding the word to this static part
//! bits 32..64  delivery count
//! ```
//!
//! Order of durability (each step flushed, then fenced):
//! 1. creation, phase 0: in every slot of the run whose first two words are not zero,
//!    zero them (skipped, with its fence, when all are zero already). This removes
//!    stale status words and stale static parts (their checksum and magic) left by
//!    purged records, lost creations and the bodies of older records;
//! 2. creation, phase 1: the static part (status word still zero);
//! 3. creation, phase 2: the status word, alone. The record exists from here on;
//! 4. purge: the status word back to zero (one fence for any number of records);
//! 5. replay flag or delivery count: a new status word (one aligned store).
//!
//! Why phase 0: a scan must be able to tell a damaged status word (reported) from the
//! leftovers of an interrupted write (free space). Without it, a torn creation could
//! leave a stale but valid static part of an earlier record next to a status word made
//! of the new record's body bytes, which looks exactly like damage.
//!
//! The scan classifies each slot with the decision table [`DEAD_RULES`].

use super::cursors::{Subscription, SubscriptionId};
use super::event::EventView;
use super::format::Geometry;
use super::layout::*;
use crate::event::limits::KEY_BYTES_MAX;
use crate::event::{Seq, Severity};
use crate::pmem::Medium;
use bytemuck::Zeroable;
use std::fmt;

mod area;
pub use area::DeadArea;

/// Identifies one dead-letter record: its first slot (high 32 bits) and its static
/// checksum (low 32 bits). A later record in the same slots has another checksum, so a
/// stale id (from a listing made before a purge) never names a different record.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct DeadLetterId(pub u64);

impl DeadLetterId {
    /// The id a record written at `slot` with this static checksum gets.
    pub(crate) fn new(slot: u64, checksum: u32) -> DeadLetterId {
        DeadLetterId((slot << 32) | checksum as u64)
    }
    /// The record's first slot in the area.
    pub fn slot(self) -> u64 {
        self.0 >> 32
    }
    /// The static checksum the id carries.
    pub(crate) fn checksum(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Display for DeadLetterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for DeadLetterId {
    type Err = std::num::ParseIntError;
    /// Parses the 16 hex digits `Display` prints.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(DeadLetterId)
    }
}

/// Why an event was dead-lettered.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadReason {
    /// The subscriber rejected it.
    Rejected,
    /// It reached the subscription's maximum delivery count.
    MaxDeliveries,
}

impl DeadReason {
    fn to_u8(self) -> u8 {
        match self {
            DeadReason::Rejected => 1,
            DeadReason::MaxDeliveries => 2,
        }
    }
    fn from_u8(v: u8) -> Option<DeadReason> {
        match v {
            1 => Some(DeadReason::Rejected),
            2 => Some(DeadReason::MaxDeliveries),
            _ => None,
        }
    }
}

/// What a dead letter is (the copy of the event is read with `Log::dead_event`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// Its id.
    pub id: DeadLetterId,
    /// The subscription (table index) it died for.
    pub subscription: SubscriptionId,
    /// That subscription's `uid` when it died (tells a reused table entry apart).
    pub subscription_uid: u64,
    /// The event's original sequence number.
    pub seq: Seq,
    /// Deliveries so far (raised when a replay is rejected or exhausted again).
    pub delivery_count: u32,
    /// Why it died.
    pub reason: DeadReason,
    /// When it died, nanoseconds since the Unix epoch.
    pub dead_unix_ns: u64,
    /// An operator asked for it to be delivered again.
    pub replay_requested: bool,
    /// Slots it occupies in the area.
    pub slots: u64,
    /// No active subscription has its subscription index and uid (its subscription
    /// was deleted and the purge that follows did not complete).
    pub orphan: bool,
}

/// Why a dead letter could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeadLetterError {
    /// The region was formatted without a dead-letter area.
    #[error("the region has no dead-letter area (it was formatted without one); reformat with a dead-letter area to keep rejected events")]
    NoArea,
    /// Not enough contiguous free slots.
    #[error("dead-letter area full: {needed} contiguous slots needed, {free_slots} free in total; purge dead letters (`herald dead purge`)")]
    Full {
        /// Free slots in total (possibly fragmented).
        free_slots: u64,
        /// Contiguous slots the copy needs.
        needed: u64,
    },
    /// No readable event at that sequence number.
    #[error("no readable event with seq {0} in the ring")]
    NotFound(Seq),
    /// No such subscription.
    #[error("no durable subscription with id {0:?}")]
    UnknownSubscription(SubscriptionId),
    /// The region failed earlier (or the log was closed).
    #[error("persistent region failed: {0}")]
    Failed(String),
}

/// Kind of a [`DeadLetterProblem`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadProblemKind {
    /// The record's bytes fail a check; it is not listed as a dead letter, holds its
    /// slots ([`DeadLetterProblem::slots`]), and can be purged by its id.
    Damaged,
    /// A valid record whose subscription no longer exists; it is listed too.
    Orphan,
}

/// A dead-letter record that a scan found damaged or inconsistent.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetterProblem {
    /// The id `purge_dead` accepts for it.
    pub id: DeadLetterId,
    /// First slot.
    pub slot: u64,
    /// Damaged or orphan.
    pub kind: DeadProblemKind,
    /// The original seq, when the header could be read.
    pub seq: Option<u64>,
    /// Slots it holds in the area. An orphan: its span. A damaged record: the span its
    /// header claims when the header is sane (the copy may be intact, and a record
    /// written over it would change what a later scan finds), cut short before the next
    /// record found; else 1.
    pub slots: u64,
    /// What is wrong, for a person.
    pub problem: String,
}

// --- the status word ---------------------------------------------------------------

const STATE_FREE: u8 = 0;
const STATE_DEAD: u8 = 1;
const STATE_REPLAY: u8 = 2;
const STATUS_CHECK_SHIFT: u32 = 16;
const STATUS_CHECK_MASK: u64 = 0xffff << STATUS_CHECK_SHIFT;

/// What a status word says, once checked against its static part.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Status {
    replay_requested: bool,
    delivery_count: u32,
}

fn status_check(seed: u32, unchecked: u64, static_checksum: u32) -> u64 {
    let mut input = [0u8; 12];
    input[..8].copy_from_slice(&unchecked.to_le_bytes());
    input[8..].copy_from_slice(&static_checksum.to_le_bytes());
    (crc_append(seed, &input) & 0xffff) as u64
}

fn encode_status(seed: u32, static_checksum: u32, s: Status) -> u64 {
    let state = if s.replay_requested {
        STATE_REPLAY
    } else {
        STATE_DEAD
    };
    let unchecked = state as u64 | ((s.delivery_count as u64) << 32);
    unchecked | (status_check(seed, unchecked, static_checksum) << STATUS_CHECK_SHIFT)
}

/// Decodes a status word if it is a dead status bound to `static_checksum`.
fn decode_status(seed: u32, word: u64, static_checksum: u32) -> Option<Status> {
    let state = word as u8;
    if (state != STATE_DEAD && state != STATE_REPLAY) || (word >> 8) as u8 != 0 {
        return None;
    }
    let unchecked = word & !STATUS_CHECK_MASK;
    if status_check(seed, unchecked, static_checksum)
        != (word & STATUS_CHECK_MASK) >> STATUS_CHECK_SHIFT
    {
        return None;
    }
    Some(Status {
        replay_requested: state == STATE_REPLAY,
        delivery_count: (word >> 32) as u32,
    })
}

// --- the recovery decision table ------------------------------------------------------

/// What a slot of the area turned out to be (for a slot not inside a valid record).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DeadSlotOutcome {
    /// Free: never used, purged, a creation that did not complete, or leftover bytes.
    Free,
    /// The first slot of a valid dead letter.
    Record,
    /// A record that fails a check (the text says which).
    Damaged(&'static str),
}

/// The inputs of the decision for one slot.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct DeadSlotFacts {
    /// The status word is zero.
    pub status_zero: bool,
    /// The status word is a dead status whose check matches the *stored* checksum.
    pub binds_stored: bool,
    /// The header is sane and its stored checksum matches the bytes.
    pub static_valid: bool,
    /// The header is sane and the status word's check matches the *computed*
    /// checksum (differs from `binds_stored` only when the stored checksum is wrong).
    pub binds_computed: bool,
}

/// One row of the decision table; `None` matches either value.
#[derive(Copy, Clone, Debug)]
pub struct DeadRule {
    /// Required `status_zero`.
    pub status_zero: Option<bool>,
    /// Required `binds_stored`.
    pub binds_stored: Option<bool>,
    /// Required `static_valid`.
    pub static_valid: Option<bool>,
    /// Required `binds_computed`.
    pub binds_computed: Option<bool>,
    /// The decision.
    pub outcome: DeadSlotOutcome,
}

/// The dead-letter scan's decision table. Every combination of [`DeadSlotFacts`]
/// matches exactly one row (tested). Why no power cut can produce a `Damaged` row:
/// phase 0 zeroes the status word and the stale static parts of a run before phase 1
/// writes, the status word is written only once the static part is durable, and it
/// changes only with single aligned stores.
pub const DEAD_RULES: [DeadRule; 6] = [
    DeadRule {
        status_zero: Some(true),
        binds_stored: None,
        static_valid: None,
        binds_computed: None,
        outcome: DeadSlotOutcome::Free,
    },
    DeadRule {
        status_zero: Some(false),
        binds_stored: Some(true),
        static_valid: Some(true),
        binds_computed: None,
        outcome: DeadSlotOutcome::Record,
    },
    DeadRule {
        status_zero: Some(false),
        binds_stored: Some(true),
        static_valid: Some(false),
        binds_computed: None,
        outcome: DeadSlotOutcome::Damaged(
            "the status word says dead, but the copy fails its checksum or header checks",
        ),
    },
    DeadRule {
        status_zero: Some(false),
        binds_stored: Some(false),
        static_valid: Some(true),
        binds_computed: None,
        outcome: DeadSlotOutcome::Damaged(
            "the copy is intact, but its status word is damaged (state, delivery count and replay flag unknown)",
        ),
    },
    DeadRule {
        status_zero: Some(false),
        binds_stored: Some(false),
        static_valid: Some(false),
        binds_computed: Some(true),
        outcome: DeadSlotOutcome::Damaged("the record's stored checksum is damaged"),
    },
    DeadRule {
        status_zero: Some(false),
        binds_stored: Some(false),
        static_valid: Some(false),
        binds_computed: Some(false),
        outcome: DeadSlotOutcome::Free,
    },
];

impl DeadRule {
    /// Whether the row applies to `f`.
    pub fn matches(&self, f: DeadSlotFacts) -> bool {
        let ok = |want: Option<bool>, have: bool| want.is_none_or(|w| w == have);
        ok(self.status_zero, f.status_zero)
            && ok(self.binds_stored, f.binds_stored)
            && ok(self.static_valid, f.static_valid)
            && ok(self.binds_computed, f.binds_computed)
    }
}

/// Applies the decision table.
pub fn classify(f: DeadSlotFacts) -> DeadSlotOutcome {
    DEAD_RULES
        .iter()
        .find(|r| r.matches(f))
        .map(|r| r.outcome)
        // `every_combination_of_dead_slot_facts_matches_exactly_one_rule` tries them all.
        .expect("the dead-letter table covers every combination (tested)")
}

// --- reading ------------------------------------------------------------------------------

// Callers pass offsets inside a slot of the area (slots are at least 64 bytes).
fn read_word(bytes: &[u8], at: usize) -> u64 {
    u64::from_le(bytemuck::pod_read_unaligned(&bytes[at..at + 8]))
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le(bytemuck::pod_read_unaligned(&bytes[at..at + 4]))
}

/// The header at `slot`, if it lies wholly inside the area.
fn read_header(bytes: &[u8], g: &Geometry, slot: u64) -> Option<DeadHeader> {
    let header_slots = (DEAD_HEADER_BYTES as u64).div_ceil(g.dead_letters.slot_bytes);
    if slot + header_slots > g.dead_letters.slot_count {
        return None;
    }
    let at = g.dead_slot_offset(slot);
    Some(bytemuck::pod_read_unaligned(
        &bytes[at..at + DEAD_HEADER_BYTES],
    ))
}

/// Every header field in range and the record inside the area (all but the checksum).
fn header_sane(h: &DeadHeader, g: &Geometry, slot: u64) -> bool {
    h.magic == DEAD_MAGIC
        && h.topic_len >= 1
        && h.key_len as usize <= KEY_BYTES_MAX
        && Severity::from_u8(h.severity).is_some()
        && DeadReason::from_u8(h.reason).is_some()
        && h.reserved == 0
        && h.reserved_tail == 0
        && h.payload_len as u64 <= g.ring.payload_bytes_max
        && h.span as u64 == g.dead_span_for_body(h.body_len())
        && slot + h.span as u64 <= g.dead_letters.slot_count
}

/// The checksum of the static part at `slot` (header must be sane: bounds hold).
fn computed_checksum(bytes: &[u8], g: &Geometry, slot: u64, h: &DeadHeader) -> u32 {
    let at = g.dead_slot_offset(slot);
    crc_append(
        g.checksum_seed(),
        &bytes[at + DEAD_MAGIC_OFFSET..at + DEAD_HEADER_BYTES + h.body_len()],
    )
}

/// What one slot holds: the facts, and the header when it is sane.
fn facts_at(bytes: &[u8], g: &Geometry, slot: u64) -> (DeadSlotFacts, Option<DeadHeader>, u64) {
    let seed = g.checksum_seed();
    let at = g.dead_slot_offset(slot);
    let status = read_word(bytes, at);
    let mut f = DeadSlotFacts {
        status_zero: status == 0,
        binds_stored: false,
        static_valid: false,
        binds_computed: false,
    };
    if f.status_zero {
        return (f, None, status);
    }
    let stored = read_u32(bytes, at + DEAD_CHECKSUM_OFFSET);
    f.binds_stored = decode_status(seed, status, stored).is_some();
    let header = read_header(bytes, g, slot).filter(|h| header_sane(h, g, slot));
    if let Some(h) = &header {
        let computed = computed_checksum(bytes, g, slot, h);
        f.static_valid = computed == stored;
        f.binds_computed = decode_status(seed, status, computed).is_some();
    }
    (f, header, status)
}

/// Scans the area: the valid dead letters (orphans flagged) and the problems found
/// (damaged records, orphans). Reads only; never panics on any byte content.
pub fn scan(
    bytes: &[u8],
    g: &Geometry,
    subscriptions: &[Option<Subscription>],
) -> (Vec<DeadLetter>, Vec<DeadLetterProblem>) {
    let mut letters = Vec::new();
    let mut problems = Vec::new();
    let n = g.dead_letters.slot_count;
    let seed = g.checksum_seed();
    let mut slot = 0;
    while slot < n {
        let (facts, header, status) = facts_at(bytes, g, slot);
        let stored = read_u32(bytes, g.dead_slot_offset(slot) + DEAD_CHECKSUM_OFFSET);
        match classify(facts) {
            DeadSlotOutcome::Free => slot += 1,
            DeadSlotOutcome::Record => {
                // The table's `Record` row implies all three (a sane header, a status
                // bound to the stored checksum); should one not hold, the slot is
                // damaged, not a reason to stop.
                let (Some(h), Some(s), Some(reason)) = (
                    header,
                    decode_status(seed, status, stored),
                    header.and_then(|h| DeadReason::from_u8(h.reason)),
                ) else {
                    problems.push(DeadLetterProblem {
                        id: DeadLetterId::new(slot, stored),
                        slot,
                        kind: DeadProblemKind::Damaged,
                        seq: header.map(|h| h.seq),
                        slots: header.map_or(1, |h| h.span as u64),
                        problem: format!("dead-letter slot {slot}: inconsistent record"),
                    });
                    slot += 1;
                    continue;
                };
                // The owner is the entry with the letter's uid: the index is where it
                // was when the letter was made, and an entry moves when its filters
                // change (`cursors.rs`).
                let owner = subscriptions
                    .get(h.subscription_index as usize)
                    .and_then(|s| s.as_ref())
                    .filter(|s| s.uid == h.subscription_uid)
                    .or_else(|| {
                        subscriptions
                            .iter()
                            .flatten()
                            .find(|s| s.uid == h.subscription_uid)
                    });
                let subscription = owner.map_or(SubscriptionId(h.subscription_index), |s| s.id);
                let orphan = owner.is_none();
                let letter = DeadLetter {
                    id: DeadLetterId::new(slot, stored),
                    subscription,
                    subscription_uid: h.subscription_uid,
                    seq: Seq(h.seq),
                    delivery_count: s.delivery_count,
                    reason,
                    dead_unix_ns: h.dead_unix_ns,
                    replay_requested: s.replay_requested,
                    slots: h.span as u64,
                    orphan,
                };
                if orphan {
                    problems.push(DeadLetterProblem {
                        id: letter.id,
                        slot,
                        kind: DeadProblemKind::Orphan,
                        seq: Some(h.seq),
                        slots: h.span as u64,
                        problem: format!(
                            "dead letter of seq {} belongs to subscription {} (uid {}), which no longer exists; nothing will replay it: purge it",
                            h.seq, h.subscription_index, h.subscription_uid
                        ),
                    });
                }
                letters.push(letter);
                slot += h.span as u64;
            }
            DeadSlotOutcome::Damaged(why) => {
                // `header` is only a sane one: its span lies inside the area.
                problems.push(DeadLetterProblem {
                    id: DeadLetterId::new(slot, stored),
                    slot,
                    kind: DeadProblemKind::Damaged,
                    seq: header.map(|h| h.seq),
                    slots: header.map_or(1, |h| h.span as u64),
                    problem: format!("dead-letter slot {slot}: {why}"),
                });
                // The slots after it are examined too: a damaged length must not hide
                // a valid record behind it.
                slot += 1;
            }
        }
    }
    clip_damaged_spans(&letters, &mut problems);
    (letters, problems)
}

/// Cuts each damaged record's slots short before the next record or damaged record
/// found, so that no slot is held twice. Both lists are in slot order.
fn clip_damaged_spans(letters: &[DeadLetter], problems: &mut [DeadLetterProblem]) {
    let damaged_starts: Vec<u64> = problems
        .iter()
        .filter(|p| p.kind == DeadProblemKind::Damaged)
        .map(|p| p.slot)
        .collect();
    for p in problems
        .iter_mut()
        .filter(|p| p.kind == DeadProblemKind::Damaged)
    {
        let next_letter = letters
            .get(letters.partition_point(|d| d.id.slot() <= p.slot))
            .map(|d| d.id.slot());
        let next_damaged = damaged_starts
            .get(damaged_starts.partition_point(|&s| s <= p.slot))
            .copied();
        if let Some(next) = next_letter.into_iter().chain(next_damaged).min() {
            p.slots = p.slots.min(next - p.slot);
        }
    }
}

/// The copy of the event held by the record `d` (validated when the area was scanned
/// or the record written; the bytes are re-read from the region). `None` if the header
/// no longer says a valid event.
pub fn read_event<'a>(bytes: &'a [u8], g: &Geometry, d: &DeadLetter) -> Option<EventView<'a>> {
    let at = g.dead_slot_offset(d.id.slot());
    let h: DeadHeader = bytemuck::pod_read_unaligned(&bytes[at..at + DEAD_HEADER_BYTES]);
    let mut next = at + DEAD_HEADER_BYTES;
    let mut take = |n: usize| {
        let s = &bytes[next..next + n];
        next += n;
        s
    };
    let body = h.body_len();
    let severity = Severity::from_u8(h.severity)?;
    Some(EventView {
        seq: Seq(h.seq),
        // The span the event had in the ring (the plan keeps it within u16).
        span: g.span_for_body(body).min(u16::MAX as u64) as u16,
        timestamp_ns: h.timestamp_ns,
        severity,
        flags: h.flags,
        topic: take(h.topic_len as usize),
        source: take(h.source_len as usize),
        key: take(h.key_len as usize),
        payload: take(h.payload_len as usize),
        // A dead letter keeps no relay block (FORMAT.md): a replayed one is this
        // node's event.
        origin: crate::event::Origin {
            node_id: g.node_id,
            seq: h.seq,
            timestamp_ns: h.timestamp_ns,
        },
        hop: None,
        route: 0,
    })
}

// --- writing ------------------------------------------------------------------------------

/// The dead-letter facts of a new record's static part (the event's fields come from
/// its ring record; see [`header_for`] and [`stage_static`]).
#[derive(Copy, Clone, Debug)]
pub struct NewDeadLetter {
    /// The subscription.
    pub subscription: SubscriptionId,
    /// Its uid.
    pub subscription_uid: u64,
    /// Why.
    pub reason: DeadReason,
    /// Now.
    pub dead_unix_ns: u64,
}

/// The static header of a record copying `e` (status and checksum still zero).
pub fn header_for(e: &EventView<'_>, new: &NewDeadLetter, g: &Geometry) -> DeadHeader {
    let mut h = DeadHeader::zeroed();
    h.magic = DEAD_MAGIC;
    h.seq = e.seq.0;
    h.subscription_uid = new.subscription_uid;
    h.dead_unix_ns = new.dead_unix_ns;
    h.timestamp_ns = e.timestamp_ns;
    h.payload_len = e.payload.len() as u32;
    h.subscription_index = new.subscription.0;
    h.flags = e.flags;
    h.topic_len = e.topic.len() as u8;
    h.source_len = e.source.len() as u8;
    h.key_len = e.key.len() as u8;
    h.severity = e.severity as u8;
    h.reason = new.reason.to_u8();
    h.span = g.dead_span_for_body(h.body_len()) as u32;
    h
}

/// Phase 0: zeroes the first two words (status word; stored checksum and magic) of
/// every slot of the run where they are not zero, and flushes them. Returns whether
/// anything was written (the caller then fences before phase 1).
pub fn stage_clear_run<M: Medium>(medium: &mut M, g: &Geometry, first: u64, slots: u64) -> bool {
    let mut wrote = false;
    for slot in first..first + slots {
        let at = g.dead_slot_offset(slot);
        if medium.bytes()[at..at + 16] != [0u8; 16] {
            medium.write(at, &[0u8; 16]);
            medium.flush(at, 16);
            wrote = true;
        }
    }
    wrote
}

/// Bytes copied per step from the ring into the area (a stack buffer: no allocation).
const COPY_CHUNK_BYTES: usize = 4096;

/// Phase 1: writes the static part (header from the checksum on, and the event's body
/// copied from the ring) into the run starting at `slot`, and flushes it. The status
/// word is not touched (zero after phase 0). Returns the static checksum.
pub fn stage_static<M: Medium>(
    medium: &mut M,
    g: &Geometry,
    slot: u64,
    header: &DeadHeader,
    ring_body_offset: usize,
) -> u32 {
    let at = g.dead_slot_offset(slot);
    let body = header.body_len();
    // Kept in release builds: writing the static part over a live status word could
    // leave a record that checks out with the wrong contents after a power cut.
    assert_eq!(
        read_word(medium.bytes(), at),
        0,
        "phase 0 cleared the status"
    );
    medium.write(
        at + DEAD_MAGIC_OFFSET,
        &bytemuck::bytes_of(header)[DEAD_MAGIC_OFFSET..],
    );
    let mut chunk = [0u8; COPY_CHUNK_BYTES];
    let mut done = 0;
    while done < body {
        let n = (body - done).min(COPY_CHUNK_BYTES);
        let from = ring_body_offset + done;
        chunk[..n].copy_from_slice(&medium.bytes()[from..from + n]);
        medium.write(at + DEAD_HEADER_BYTES + done, &chunk[..n]);
        done += n;
    }
    let checksum = computed_checksum(medium.bytes(), g, slot, header);
    medium.write(at + DEAD_CHECKSUM_OFFSET, &checksum.to_le_bytes());
    // Paired assertion: what we flush is what the scan will accept once the status
    // word is written.
    // `first_fit` chose a run inside the area, and the run holds the whole record.
    let check = read_header(medium.bytes(), g, slot).expect("the run is inside the area");
    assert!(
        header_sane(&check, g, slot),
        "dead-letter header about to be flushed fails the scan's checks"
    );
    medium.flush(at, DEAD_HEADER_BYTES + body);
    checksum
}

/// Phase 2 and every later status change: stores and flushes the status word of the
/// record at `slot` (durable after the caller's fence). `None` frees the record.
pub fn stage_status<M: Medium>(
    medium: &mut M,
    g: &Geometry,
    slot: u64,
    static_checksum: u32,
    status: Option<(bool, u32)>,
) {
    let word = status.map_or(STATE_FREE as u64, |(replay_requested, delivery_count)| {
        encode_status(
            g.checksum_seed(),
            static_checksum,
            Status {
                replay_requested,
                delivery_count,
            },
        )
    });
    let at = g.dead_slot_offset(slot);
    medium.write(at, &word.to_le_bytes());
    medium.flush(at, 8);
}

#[cfg(test)]
mod tests;
