//! The idempotent-publish dedupe window: which `(source, key)` pairs were stored
//! recently, and under which sequence number.
//!
//! A producer that lost a `Stored` publishes again with the same idempotency key; the
//! daemon looks the pair up here and answers with the original sequence number instead
//! of storing a second copy (PROTOCOL.md §10.1, "Idempotency").
//!
//! # Shape
//!
//! - A FIFO ring of `capacity` records in insertion order, which is sequence order
//!   (asserted). Each record holds the exact source and key bytes inline, so deciding
//!   "duplicate" never rests on a hash.
//! - An open-addressing index (linear probing, backward-shift deletion, no tombstones)
//!   of a power-of-two length of at least twice the capacity, so its load stays at or
//!   below one half and every probe ends at an empty slot. A slot packs a 32-bit hash
//!   tag with the record's ring position: probing compares tags without touching
//!   records, and deletion finds a slot's home bucket from its tag alone.
//!
//! Both are allocated, and written once, at construction; `lookup`, `insert`, `expire`
//! and `truncate_from` then allocate nothing, take no lock and make no system call.
//! The caller passes the time in (unix nanoseconds); nothing here reads a clock.
//!
//! # Why the exact bytes, and what that costs
//!
//! A false "duplicate" would silently drop a producer's event and hand it somebody
//! else's sequence number, so it must be impossible, not merely improbable. Records
//! therefore keep the full source (up to 255 bytes) and key (up to 64 bytes) and a hit
//! requires both to compare equal byte for byte (lengths included). The hash only
//! chooses where to look; a hash collision costs one extra comparison, never a wrong
//! answer. The alternatives were weighed and rejected:
//!
//! - A 128-bit fingerprint instead of the bytes (~32 bytes a record) leaves a false
//!   positive possible, however unlikely.
//! - Comparing against the event in the log needs no memory, but the log releases events
//!   that are still inside the window and a batch being built is not in the log yet.
//! - Interning sources, or packing identities into a variable-length byte ring, saves
//!   memory only while sources are short; the worst case (every record a distinct
//!   255-byte source) needs the same 319 bytes a record, and bounding the arena below
//!   that would add a third, hidden eviction rule that shrinks the window producers rely
//!   on.
//!
//! So a record is [`RECORD_BYTES`] (344) bytes and the index adds two u64 slots a record
//! when the capacity is a power of two (up to four otherwise): 360 bytes a record,
//! 23.6 MB at the default 65 536 records, 1.5 GB at the maximum [`DEDUPE_WINDOW_RECORDS_MAX`].
//! [`memory_bytes_for`] reports it for `--help` and status.
//!
//! # Contract with the daemon
//!
//! - Look a keyed event up before storing it; if found, reply with the original
//!   sequence number and store nothing.
//! - Insert each keyed event as it is pushed into the batch being built, before the batch
//!   is committed, so a duplicate inside the same batch (or a later batch of the same
//!   group) is caught too. If the batch is rolled back, call
//!   [`DedupeWindow::truncate_from`] with its first sequence number: records are in
//!   sequence order, so undoing them is popping the newest few.
//! - At start-up, insert every keyed event still readable in the log, oldest first, with
//!   its stored timestamp. A later copy of a key whose earlier copy was still inside the
//!   window at the later copy's time is ignored (the original is kept), which is what
//!   the live daemon answered.
//! - Call [`DedupeWindow::expire`] now and then (each publish, or each loop turn) to
//!   forget records older than the window. Correctness does not depend on it — a lookup
//!   checks the age itself — it only reclaims records early.
//! - An empty key means "no key": lookups answer `None` and inserts record nothing.

use crate::event::limits::{
    DEDUPE_WINDOW_AGE_MAX, DEDUPE_WINDOW_RECORDS_MAX, KEY_BYTES_MAX, SOURCE_BYTES_MAX,
};
use crate::log::Seq;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Records remembered when none is configured.
pub const WINDOW_RECORDS_DEFAULT: usize = 65_536;
/// How long a key is remembered when no age is configured.
pub const WINDOW_AGE_DEFAULT: Duration = Duration::from_secs(10 * 60);

/// Bytes of identity a record stores inline: the longest source plus the longest key.
const IDENTITY_BYTES_MAX: usize = SOURCE_BYTES_MAX + KEY_BYTES_MAX;
/// Bytes of one record in the ring.
pub const RECORD_BYTES: usize = std::mem::size_of::<Record>();
/// Bytes of one index slot.
const SLOT_BYTES: usize = std::mem::size_of::<u64>();
/// An index slot holding nothing. Its position half (`u32::MAX`) is never a ring
/// position, because the ring is far shorter than that.
const SLOT_EMPTY: u64 = u64::MAX;

// The lengths are stored in a u8 each.
const _: () = assert!(SOURCE_BYTES_MAX <= u8::MAX as usize);
const _: () = assert!(KEY_BYTES_MAX <= u8::MAX as usize);
// A slot packs a u32 ring position, and u32::MAX must stay free to mark empty slots.
const _: () = assert!(DEDUPE_WINDOW_RECORDS_MAX < u32::MAX as usize);
// Home buckets are taken from the 32-bit tag, so the index may have at most 2^32 slots.
const _: () = assert!(index_len_for(DEDUPE_WINDOW_RECORDS_MAX) <= 1 << 32);
// The record layout is what the memory figures in the module comment promise.
const _: () = assert!(RECORD_BYTES == 344);
// Durations are kept as u64 nanoseconds.
const _: () = assert!(DEDUPE_WINDOW_AGE_MAX.as_nanos() <= u64::MAX as u128);
const _: () = assert!(WINDOW_RECORDS_DEFAULT <= DEDUPE_WINDOW_RECORDS_MAX);
const _: () = assert!(WINDOW_AGE_DEFAULT.as_nanos() <= DEDUPE_WINDOW_AGE_MAX.as_nanos());

/// Index slots for a window of `capacity` records: a power of two (probing wraps with a
/// mask) and at least twice the capacity (load at most one half, so probes stay short
/// and always meet an empty slot).
const fn index_len_for(capacity: usize) -> usize {
    (2 * capacity).next_power_of_two()
}

/// Heap bytes a window of `capacity` records takes (ring plus index), for `--help` and
/// status. The struct itself adds about a hundred bytes more.
pub const fn memory_bytes_for(capacity: usize) -> usize {
    capacity * RECORD_BYTES + index_len_for(capacity) * SLOT_BYTES
}

/// One remembered publish: the exact identity and what the original got.
#[derive(Clone, Copy)]
struct Record {
    /// The sequence number the original was stored under.
    seq: Seq,
    /// When the original was stored (unix ns).
    stored_ns: u64,
    /// The identity's hash tag, to find this record's index slot again on eviction.
    tag: u32,
    source_len: u8,
    key_len: u8,
    /// False once a newer record of the same identity replaced this one in the index
    /// (the original had aged out); the record then only waits to leave the ring.
    indexed: bool,
    /// `source` then `key`, exactly as published.
    identity: [u8; IDENTITY_BYTES_MAX],
}

impl Record {
    /// The fill of an unused ring place. Not all zeros, so that filling the ring writes
    /// every page (see `with_hasher`).
    const EMPTY: Record = Record {
        seq: Seq(u64::MAX),
        stored_ns: 0,
        tag: 0,
        source_len: 0,
        key_len: 0,
        indexed: false,
        identity: [0; IDENTITY_BYTES_MAX],
    };

    /// Whether this record is exactly `source` + `key`: lengths and every byte.
    fn is(&self, source: &[u8], key: &[u8]) -> bool {
        let source_len = usize::from(self.source_len);
        let key_len = usize::from(self.key_len);
        source_len == source.len()
            && key_len == key.len()
            && self.identity[..source_len] == *source
            && self.identity[source_len..source_len + key_len] == *key
    }
}

const fn pack(tag: u32, position: usize) -> u64 {
    ((tag as u64) << 32) | position as u64
}

const fn slot_tag(slot: u64) -> u32 {
    (slot >> 32) as u32
}

const fn slot_position(slot: u64) -> usize {
    slot as u32 as usize
}

/// The dedupe window: remembers the most recent `capacity` keyed publishes, each for at
/// most `max_age`, whichever forgets first. See the module documentation for the
/// memory/correctness trade-off and the daemon's contract.
///
/// `S` chooses the hash. The default, [`RandomState`], is SipHash-1-3 with keys drawn at
/// construction, so producers cannot choose keys that pile up in one probe run; tests
/// plug in deliberately colliding hashers.
pub struct DedupeWindow<S = RandomState> {
    /// The ring, `capacity` long; records `oldest .. oldest + len` (wrapping) are held.
    records: Box<[Record]>,
    /// Ring position of the oldest record held.
    oldest: usize,
    /// Records held, including ones replaced in the index but not yet evicted.
    len: usize,
    /// Open-addressing index: `pack(tag, position)` or `SLOT_EMPTY`.
    index: Box<[u64]>,
    /// `index.len() - 1`.
    index_mask: usize,
    max_age: Duration,
    max_age_ns: u64,
    /// The smallest sequence number the next insert may carry: sequence order is what
    /// makes `truncate_from` a pop from the back.
    seq_next_min: u64,
    hasher: S,
}

impl DedupeWindow {
    /// A window of `capacity` records and `max_age`, with a randomly keyed SipHash.
    /// Allocates (and writes) all its memory now: [`memory_bytes_for`]`(capacity)`.
    ///
    /// # Panics
    /// If `capacity` is 0 or above [`DEDUPE_WINDOW_RECORDS_MAX`], or `max_age` is above
    /// [`DEDUPE_WINDOW_AGE_MAX`]; the configuration is checked against these before.
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        Self::with_hasher(capacity, max_age, RandomState::new())
    }
}

impl<S: BuildHasher> DedupeWindow<S> {
    /// A window hashing with `hasher`; otherwise as [`DedupeWindow::new`].
    ///
    /// # Panics
    /// As [`DedupeWindow::new`].
    pub fn with_hasher(capacity: usize, max_age: Duration, hasher: S) -> Self {
        assert!(
            (1..=DEDUPE_WINDOW_RECORDS_MAX).contains(&capacity),
            "dedupe window capacity {capacity} is outside 1..={DEDUPE_WINDOW_RECORDS_MAX}"
        );
        assert!(
            max_age <= DEDUPE_WINDOW_AGE_MAX,
            "dedupe window age {max_age:?} is above {DEDUPE_WINDOW_AGE_MAX:?}"
        );
        let index_len = index_len_for(capacity);
        DedupeWindow {
            // Neither fill value is all zeros, so `vec!` cannot hand out lazily zeroed
            // pages: every page is written, and faulted in, now rather than on the event
            // path.
            records: vec![Record::EMPTY; capacity].into_boxed_slice(),
            oldest: 0,
            len: 0,
            index: vec![SLOT_EMPTY; index_len].into_boxed_slice(),
            index_mask: index_len - 1,
            max_age,
            max_age_ns: max_age.as_nanos() as u64,
            seq_next_min: 0,
            hasher,
        }
    }

    /// The original sequence number of `key` from `source`, if it was inserted and is
    /// still inside the window at `now_ns` (count and age). `None` for an empty key.
    ///
    /// # Panics
    /// If `source` or `key` is longer than the protocol allows (the decoder refuses
    /// those, so it would be a bug here).
    pub fn lookup(&self, source: &[u8], key: &[u8], now_ns: u64) -> Option<Seq> {
        check_identity(source, key);
        if key.is_empty() {
            return None;
        }
        let (_, position) = self.find(self.tag(source, key), source, key)?;
        let record = &self.records[position];
        self.is_fresh(record.stored_ns, now_ns)
            .then_some(record.seq)
    }

    /// Remembers that `key` from `source` was stored as `seq` at `stored_ns`, unless it
    /// is remembered already and still fresh at `stored_ns`: then the original is kept.
    /// When the window is full, the oldest record is forgotten to make room. An empty
    /// key records nothing.
    ///
    /// # Panics
    /// If `seq` is not above every sequence number inserted before (since the last
    /// `truncate_from` below it), or the identity is too long: both are bugs.
    pub fn insert(&mut self, source: &[u8], key: &[u8], seq: Seq, stored_ns: u64) {
        check_identity(source, key);
        assert!(
            seq.0 >= self.seq_next_min,
            "dedupe window: seq {seq} inserted after {}",
            self.seq_next_min - 1
        );
        self.seq_next_min = seq.0.saturating_add(1);
        if key.is_empty() {
            return;
        }
        let tag = self.tag(source, key);
        if let Some((slot, position)) = self.find(tag, source, key) {
            if self.is_fresh(self.records[position].stored_ns, stored_ns) {
                return;
            }
            // The original aged out; the new publish becomes the original from now on.
            // Unindex the old record first, so that no eviction below moves `slot`.
            self.records[position].indexed = false;
            self.index_remove_slot(slot);
        }
        if self.len == self.records.len() {
            self.evict_oldest();
        }
        let position = self.ring_position(self.len);
        let record = &mut self.records[position];
        record.seq = seq;
        record.stored_ns = stored_ns;
        record.tag = tag;
        record.source_len = source.len() as u8;
        record.key_len = key.len() as u8;
        record.indexed = true;
        record.identity[..source.len()].copy_from_slice(source);
        record.identity[source.len()..source.len() + key.len()].copy_from_slice(key);
        self.len += 1;
        self.index_insert(tag, position);
    }

    /// Forgets records older than the window at `now_ns`, oldest first, at most
    /// `records_max` of them (so one call after a long idle spell cannot stall the event
    /// loop), and returns how many it forgot. Stops at the first record still fresh:
    /// with a clock that stepped back, an older-stamped record behind it waits, but a
    /// lookup still refuses it by age.
    pub fn expire(&mut self, now_ns: u64, records_max: usize) -> usize {
        let mut forgotten = 0;
        while forgotten < records_max
            && self.len > 0
            && !self.is_fresh(self.records[self.oldest].stored_ns, now_ns)
        {
            self.evict_oldest();
            forgotten += 1;
        }
        forgotten
    }

    /// Forgets every record with a sequence number of `seq` or above, and nothing else:
    /// the undo for a batch that was rolled back. Those sequence numbers may be inserted
    /// again afterwards. A record that such a record had replaced stays forgotten (it
    /// had aged out when it was replaced).
    pub fn truncate_from(&mut self, seq: Seq) {
        while self.len > 0 {
            let position = self.ring_position(self.len - 1);
            if self.records[position].seq < seq {
                break;
            }
            self.unindex(position);
            self.len -= 1;
        }
        self.seq_next_min = self.seq_next_min.min(seq.0);
    }

    /// Records held, including any replaced by a newer publish of the same key whose
    /// original had aged out (they still take a place until evicted).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most records held: the count half of the window.
    pub fn capacity(&self) -> usize {
        self.records.len()
    }

    /// Longest a key is remembered: the age half of the window.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Heap bytes this window holds: [`memory_bytes_for`] its capacity.
    pub fn memory_bytes(&self) -> usize {
        memory_bytes_for(self.capacity())
    }

    /// Whether a record stored at `stored_ns` is inside the window at `now_ns`. A clock
    /// that stepped back makes the age zero rather than wrap.
    fn is_fresh(&self, stored_ns: u64, now_ns: u64) -> bool {
        now_ns.saturating_sub(stored_ns) <= self.max_age_ns
    }

    /// The 32-bit hash tag of an identity. Both lengths are hashed, so `("ab", "c")` and
    /// `("a", "bc")` hash apart (the byte comparison tells them apart regardless).
    fn tag(&self, source: &[u8], key: &[u8]) -> u32 {
        let mut hasher = self.hasher.build_hasher();
        hasher.write_u8(source.len() as u8);
        hasher.write(source);
        hasher.write_u8(key.len() as u8);
        hasher.write(key);
        hasher.finish() as u32
    }

    /// The ring position of the `nth` record held (0 = oldest).
    fn ring_position(&self, nth: usize) -> usize {
        let position = self.oldest + nth;
        if position >= self.records.len() {
            position - self.records.len()
        } else {
            position
        }
    }

    /// The index slot and ring position of the indexed record that is exactly
    /// `source` + `key`.
    fn find(&self, tag: u32, source: &[u8], key: &[u8]) -> Option<(usize, usize)> {
        let mut slot = tag as usize & self.index_mask;
        // The index always has an empty slot (load at most one half); the bound turns a
        // broken invariant into a panic instead of an endless loop.
        for _ in 0..self.index.len() {
            let value = self.index[slot];
            if value == SLOT_EMPTY {
                return None;
            }
            if slot_tag(value) == tag && self.records[slot_position(value)].is(source, key) {
                return Some((slot, slot_position(value)));
            }
            slot = (slot + 1) & self.index_mask;
        }
        panic!("dedupe window: the index has no empty slot");
    }

    fn index_insert(&mut self, tag: u32, position: usize) {
        let mut slot = tag as usize & self.index_mask;
        // At most `capacity` slots are used out of at least twice that, so this ends
        // within one lap.
        for _ in 0..self.index.len() {
            if self.index[slot] == SLOT_EMPTY {
                self.index[slot] = pack(tag, position);
                return;
            }
            slot = (slot + 1) & self.index_mask;
        }
        panic!("dedupe window: the index has no empty slot");
    }

    /// Removes the slot pointing at ring `position`, which must be indexed.
    fn index_remove_position(&mut self, tag: u32, position: usize) {
        let wanted = pack(tag, position);
        let mut slot = tag as usize & self.index_mask;
        while self.index[slot] != wanted {
            assert!(
                self.index[slot] != SLOT_EMPTY,
                "dedupe window: an indexed record is missing from the index"
            );
            slot = (slot + 1) & self.index_mask;
        }
        self.index_remove_slot(slot);
    }

    /// Empties `slot` by backward shift: each later slot of the same run moves into the
    /// hole if the hole lies between its home and where it is, so every remaining entry
    /// stays reachable from its home without tombstones.
    fn index_remove_slot(&mut self, slot: usize) {
        let mask = self.index_mask;
        let mut hole = slot;
        let mut next = (slot + 1) & mask;
        loop {
            let value = self.index[next];
            if value == SLOT_EMPTY {
                break;
            }
            let home = slot_tag(value) as usize & mask;
            if next.wrapping_sub(home) & mask >= next.wrapping_sub(hole) & mask {
                self.index[hole] = value;
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.index[hole] = SLOT_EMPTY;
    }

    /// Forgets the oldest record held.
    fn evict_oldest(&mut self) {
        self.unindex(self.oldest);
        self.oldest = self.ring_position(1);
        self.len -= 1;
    }

    /// Takes the record at ring `position` out of the index, if it is there, before it
    /// leaves the ring.
    fn unindex(&mut self, position: usize) {
        let record = &mut self.records[position];
        if record.indexed {
            record.indexed = false;
            let tag = record.tag;
            self.index_remove_position(tag, position);
        }
    }
}

impl<S> fmt::Debug for DedupeWindow<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DedupeWindow")
            .field("len", &self.len)
            .field("capacity", &self.records.len())
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

/// Lengths the protocol decoder and the log already enforce; longer is a bug here.
fn check_identity(source: &[u8], key: &[u8]) {
    assert!(
        source.len() <= SOURCE_BYTES_MAX && key.len() <= KEY_BYTES_MAX,
        "dedupe window: source of {} bytes or key of {} bytes is over the limit",
        source.len(),
        key.len()
    );
}

#[cfg(test)]
mod tests;
