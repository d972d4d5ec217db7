//! The subscription table: durable cursors, one entry per durable subscription.
//!
//! Order of durability:
//! - creation writes the static part and cursor record A, flushes, fences, and only
//!   then stores `state = ACTIVE` (one aligned 8-byte word) and fences again, so a
//!   crash mid-creation leaves a free entry, never a half-made one;
//! - a cursor update writes the record *not* holding the newest generation, so a
//!   torn update leaves the previous cursor readable; recovery takes the valid record
//!   with the highest generation;
//! - changing an entry's spec (its filters) moves it: a copy with the new spec, the
//!   same name and uid, and the cursor one generation on, is created in a free entry
//!   (the two-phase creation above), then the old entry is freed. A crash between
//!   leaves two active entries of one uid; [`resolve_moves`] keeps the one with the
//!   newer cursor generation, which is the copy, so either the old spec or the new
//!   one is found, never a mix.

use super::format::Geometry;
use super::layout::*;
use crate::event::SubscriptionMode;
use crate::pmem::Medium;
use bytemuck::Zeroable;

/// Index of a subscription entry in the table.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct SubscriptionId(pub u32);

/// The persistent encoding of a mode in a cursor record (FORMAT.md). Written out here
/// rather than taken from the wire's `as_u8`: the on-media format must not change if
/// the protocol's ever does.
fn mode_to_u32(mode: SubscriptionMode) -> u32 {
    match mode {
        SubscriptionMode::Normal => 0,
        SubscriptionMode::Recovering => 1,
    }
}

/// Reads [`mode_to_u32`] back; `None` for a value no herald writes.
fn mode_from_u32(value: u32) -> Option<SubscriptionMode> {
    match value {
        0 => Some(SubscriptionMode::Normal),
        1 => Some(SubscriptionMode::Recovering),
        _ => None,
    }
}

/// The in-memory copy of one active entry. Fixed-size: loading the table allocates
/// once, at open.
#[derive(Copy, Clone, Debug)]
pub struct Subscription {
    /// Where it lives.
    pub id: SubscriptionId,
    /// Creation counter (distinguishes reuse of an entry).
    pub uid: u64,
    name: [u8; SUBSCRIPTION_NAME_BYTES_MAX],
    name_len: u8,
    spec: [u8; SUBSCRIPTION_SPEC_BYTES_MAX],
    spec_len: u16,
    /// Every event below this is handled for the subscription.
    pub cursor: u64,
    /// Persistent mode.
    pub mode: SubscriptionMode,
    generation: u64,
    /// Set when the entry failed a consistency check at load; the cursor is then a
    /// conservative stand-in chosen by the log.
    pub damage: Option<&'static str>,
    /// An upstream link's entry (state [`SUBSCRIPTION_LINK`]): its cursor is a seq of
    /// the upstream's, not a position of this ring (`src/log/links.rs`).
    pub link: bool,
    /// Paused by an operator: its events are held and nothing is delivered. Kept in
    /// the cursor record's flags ([`CURSOR_FLAG_PAUSED`]), so it changes atomically
    /// with the cursor.
    pub paused: bool,
}

/// Cursor record flag: the subscription is paused (FORMAT.md).
pub const CURSOR_FLAG_PAUSED: u32 = 1;

impl Subscription {
    /// The subscription's name.
    pub fn name(&self) -> &[u8] {
        &self.name[..self.name_len as usize]
    }
    /// The opaque spec stored with it.
    pub fn spec(&self) -> &[u8] {
        &self.spec[..self.spec_len as usize]
    }
}

/// Why a subscription could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// Name empty or too long.
    #[error("subscription name must be 1..={SUBSCRIPTION_NAME_BYTES_MAX} bytes")]
    BadName,
    /// Spec too long.
    #[error("subscription spec exceeds {SUBSCRIPTION_SPEC_BYTES_MAX} bytes")]
    SpecTooLarge,
    /// Name already taken.
    #[error("a subscription with this name exists")]
    Exists,
    /// No free entry.
    #[error("the subscription table is full ({0} entries)")]
    TableFull(u64),
}

/// Reads every entry. Returns active entries (damaged ones flagged, cursor 0) in a
/// vector of `entry_count` options.
pub fn load(bytes: &[u8], g: &Geometry) -> Vec<Option<Subscription>> {
    let seed = g.checksum_seed();
    (0..g.subscriptions.entry_count as u32)
        .map(|i| {
            let at = g.subscription_offset(i);
            let e: SubscriptionEntry =
                bytemuck::pod_read_unaligned(&bytes[at..at + SUBSCRIPTION_ENTRY_BYTES]);
            if e.state == SUBSCRIPTION_FREE {
                return None;
            }
            Some(decode_entry(
                &bytes[at..at + SUBSCRIPTION_ENTRY_BYTES],
                &e,
                i,
                seed,
                g.holds_relayed(),
            ))
        })
        .collect()
}

fn decode_entry(
    raw: &[u8],
    e: &SubscriptionEntry,
    index: u32,
    seed: u32,
    links_allowed: bool,
) -> Subscription {
    let mut s = Subscription {
        id: SubscriptionId(index),
        uid: e.id,
        name: e.name,
        name_len: (e.name_len as usize).min(SUBSCRIPTION_NAME_BYTES_MAX) as u8,
        spec: e.spec,
        spec_len: (e.spec_len as usize).min(SUBSCRIPTION_SPEC_BYTES_MAX) as u16,
        cursor: 0,
        mode: SubscriptionMode::Recovering,
        generation: 0,
        damage: None,
        link: e.state == SUBSCRIPTION_LINK && links_allowed,
        paused: false,
    };
    if e.state != SUBSCRIPTION_ACTIVE && !s.link {
        s.damage = Some("entry state word is neither free nor active");
        return s;
    }
    let static_sum =
        crate::log::layout::crc_append(seed, &raw[4..SUBSCRIPTION_STATIC_CHECKSUM_OFFSET]);
    if static_sum != e.static_checksum
        || e.name_len as usize > SUBSCRIPTION_NAME_BYTES_MAX
        || e.spec_len as usize > SUBSCRIPTION_SPEC_BYTES_MAX
    {
        s.damage = Some("entry checksum mismatch (name or spec damaged)");
        return s;
    }
    let best = e
        .cursors
        .iter()
        .filter(|r| cursor_record_valid(r, seed))
        .filter_map(|r| mode_from_u32(r.mode).map(|mode| (r, mode)))
        .max_by_key(|(r, _)| r.generation);
    match best {
        Some((r, mode)) => {
            s.cursor = r.cursor;
            s.generation = r.generation;
            s.mode = mode;
            s.paused = r.flags & CURSOR_FLAG_PAUSED != 0;
        }
        None => s.damage = Some("both cursor records fail their checksum"),
    }
    s
}

fn cursor_record_valid(r: &CursorRecord, seed: u32) -> bool {
    r.generation != 0
        && mode_from_u32(r.mode).is_some()
        && crate::log::layout::crc_append(seed, &bytemuck::bytes_of(r)[..CURSOR_CHECKSUM_OFFSET])
            == r.checksum
}

fn cursor_record(
    generation: u64,
    cursor: u64,
    mode: SubscriptionMode,
    paused: bool,
    seed: u32,
) -> CursorRecord {
    let mut r = CursorRecord::zeroed();
    r.generation = generation;
    r.cursor = cursor;
    r.mode = mode_to_u32(mode);
    r.flags = if paused { CURSOR_FLAG_PAUSED } else { 0 };
    r.checksum =
        crate::log::layout::crc_append(seed, &bytemuck::bytes_of(&r)[..CURSOR_CHECKSUM_OFFSET]);
    r
}

/// What a new entry's first cursor record holds besides the cursor.
#[derive(Copy, Clone, Debug)]
pub struct FirstRecord {
    /// Its generation: 1 for a new entry, one past the old entry's for a moved one.
    pub generation: u64,
    /// Persistent mode.
    pub mode: SubscriptionMode,
    /// Paused by an operator.
    pub paused: bool,
}

impl FirstRecord {
    /// A new subscription's or link's.
    pub const NEW: FirstRecord = FirstRecord {
        generation: 1,
        mode: SubscriptionMode::Normal,
        paused: false,
    };
}

impl Subscription {
    /// The first record of this entry's copy when it moves: everything its newest
    /// record holds, one generation on (so that the copy wins over it at load).
    pub fn moved_record(&self) -> FirstRecord {
        FirstRecord {
            generation: self.generation + 1,
            mode: self.mode,
            paused: self.paused,
        }
    }
}

/// What a new entry holds.
#[derive(Copy, Clone, Debug)]
pub struct NewEntry<'a> {
    /// Entry index (must be free).
    pub index: u32,
    /// Creation counter.
    pub uid: u64,
    /// Name, 1..=64 bytes.
    pub name: &'a [u8],
    /// Spec, up to `SUBSCRIPTION_SPEC_BYTES_MAX` bytes.
    pub spec: &'a [u8],
    /// Initial cursor.
    pub cursor: u64,
    /// Creation time.
    pub now_ns: u64,
    /// An upstream link's entry rather than a subscription's.
    pub link: bool,
    /// Its first cursor record's generation, mode and pause.
    pub record: FirstRecord,
}

/// Creates an entry durably, with its cursor at `new.cursor`.
pub fn create<M: Medium>(
    medium: &mut M,
    g: &Geometry,
    new: &NewEntry<'_>,
) -> std::io::Result<Subscription> {
    let NewEntry {
        index,
        uid,
        name,
        spec,
        cursor,
        now_ns,
        link,
        record,
    } = *new;
    assert!(!name.is_empty() && name.len() <= SUBSCRIPTION_NAME_BYTES_MAX);
    assert!(spec.len() <= SUBSCRIPTION_SPEC_BYTES_MAX);
    let seed = g.checksum_seed();
    let mut e = SubscriptionEntry::zeroed();
    e.name_len = name.len() as u32;
    e.id = uid;
    e.created_unix_ns = now_ns;
    e.spec_len = spec.len() as u32;
    e.name[..name.len()].copy_from_slice(name);
    e.spec[..spec.len()].copy_from_slice(spec);
    e.static_checksum = crate::log::layout::crc_append(
        seed,
        &bytemuck::bytes_of(&e)[4..SUBSCRIPTION_STATIC_CHECKSUM_OFFSET],
    );
    // Generation g lives in record g % 2, so the next update writes the other one.
    e.cursors[(record.generation % 2) as usize] =
        cursor_record(record.generation, cursor, record.mode, record.paused, seed);
    let at = g.subscription_offset(index);
    // Phase 1: everything but the state word (still FREE from format or deletion).
    medium.write(at + 4, &bytemuck::bytes_of(&e)[4..]);
    medium.flush(at, SUBSCRIPTION_ENTRY_BYTES);
    medium.fence()?;
    // Phase 2: the state word alone makes the entry exist.
    let state = if link {
        SUBSCRIPTION_LINK
    } else {
        SUBSCRIPTION_ACTIVE
    };
    medium.write(at, &state.to_le_bytes());
    medium.flush(at, 4);
    medium.fence()?;
    Ok(decode_entry(
        &medium.bytes()[at..at + SUBSCRIPTION_ENTRY_BYTES],
        &bytemuck::pod_read_unaligned(&medium.bytes()[at..at + SUBSCRIPTION_ENTRY_BYTES]),
        index,
        seed,
        g.holds_relayed(),
    ))
}

/// Settles entries a crash left mid-move (two active entries of one uid and name):
/// the one with the newer cursor generation stays, an undamaged one before a damaged
/// one. Returns the indices of the entries it dropped, for the caller to free.
pub fn resolve_moves(entries: &mut [Option<Subscription>]) -> Vec<u32> {
    let mut dropped = Vec::new();
    for i in 0..entries.len() {
        for j in i + 1..entries.len() {
            let (Some(a), Some(b)) = (&entries[i], &entries[j]) else {
                continue;
            };
            if a.link || b.link || a.uid != b.uid || a.name() != b.name() {
                continue;
            }
            let rank = |s: &Subscription| (s.damage.is_none(), s.generation);
            let loser = if rank(a) >= rank(b) { j } else { i };
            entries[loser] = None;
            dropped.push(loser as u32);
        }
    }
    dropped
}

/// Frees an entry durably.
pub fn delete<M: Medium>(medium: &mut M, g: &Geometry, index: u32) -> std::io::Result<()> {
    stage_free(medium, g, index);
    medium.fence()
}

/// Frees an entry, durable after the caller's next fence.
pub fn stage_free<M: Medium>(medium: &mut M, g: &Geometry, index: u32) {
    let at = g.subscription_offset(index);
    medium.write(at, &SUBSCRIPTION_FREE.to_le_bytes());
    medium.flush(at, 4);
}

/// Zeroes the record slot that does not hold the newest generation (no fence).
///
/// Why: after a crash that tore the write of generation G+1, the next update writes
/// generation G+1 again into the same slot. Words of the lost first attempt (its
/// cursor, its checksum) are still there, and a torn second attempt could combine
/// with them into a valid record of the *first* attempt, resurrecting a cursor whose
/// release never returned. Scrubbing the slot at open removes that old attempt.
pub fn scrub_stale_record<M: Medium>(medium: &mut M, g: &Geometry, s: &Subscription) {
    if s.damage.is_some() {
        return;
    }
    let stale = ((s.generation + 1) % 2) as usize;
    let at = g.subscription_offset(s.id.0)
        + SUBSCRIPTION_CURSORS_OFFSET
        + stale * std::mem::size_of::<CursorRecord>();
    let zero = [0u8; std::mem::size_of::<CursorRecord>()];
    if medium.bytes()[at..at + zero.len()] != zero {
        medium.write(at, &zero);
        medium.flush(at, zero.len());
    }
}

/// Stages a cursor update: writes and flushes the alternate record. Durable after the
/// caller's next fence; until then recovery may find either cursor. The paused flag is
/// kept as it is ([`Subscription::paused`]).
pub fn stage_cursor<M: Medium>(
    medium: &mut M,
    g: &Geometry,
    s: &mut Subscription,
    cursor: u64,
    mode: SubscriptionMode,
) {
    let generation = s.generation + 1;
    let record = cursor_record(generation, cursor, mode, s.paused, g.checksum_seed());
    let slot = (generation % 2) as usize;
    let at = g.subscription_offset(s.id.0)
        + SUBSCRIPTION_CURSORS_OFFSET
        + slot * std::mem::size_of::<CursorRecord>();
    medium.write(at, bytemuck::bytes_of(&record));
    medium.flush(at, std::mem::size_of::<CursorRecord>());
    s.generation = generation;
    s.cursor = cursor;
    s.mode = mode;
}
