//! The on-media format: superblock, section headers, slot headers, subscription
//! entries. `FORMAT.md` at the repository root has the byte diagrams; this file is the
//! source of truth and the compile-time checks below keep the two honest.
//!
//! Every integer is little-endian (herald refuses to build on big-endian targets), and
//! every struct is `bytemuck::Pod` so it is read and written by copying bytes, never by
//! casting a pointer into the mapping.

use bytemuck::{Pod, Zeroable};

#[cfg(not(target_endian = "little"))]
compile_error!("herald's persistent format is little-endian and is read by plain copies");

/// First 8 bytes of every herald region.
pub const REGION_MAGIC: [u8; 8] = *b"HERALDPM";
/// The layout version this code writes. Version 2 added relayed records and upstream
/// link entries (FORMAT.md); a version 1 region opens and serves as before, but holds
/// neither.
pub const LAYOUT_VERSION: u32 = 2;
/// The oldest layout version this code reads.
pub const LAYOUT_VERSION_MIN: u32 = 1;
/// The first layout version that may hold relayed records and link entries.
pub const LAYOUT_VERSION_RELAY: u32 = 2;
/// Bytes reserved for the superblock page at offset 0; sections start after it.
pub const SUPERBLOCK_PAGE_BYTES: u64 = 4096;
/// Bytes reserved at the start of each section for its header; data follows.
pub const SECTION_HEADER_PAGE_BYTES: u64 = 4096;
/// Entries in the superblock's section table (room for sections added later).
pub const SECTIONS_MAX: usize = 8;
/// Magic at the start of each section header.
pub const SECTION_MAGIC: [u8; 4] = *b"HSEC";

/// Section kind: the event ring.
pub const SECTION_EVENT_RING: u32 = 1;
/// Section kind: the subscription table (durable cursors).
pub const SECTION_SUBSCRIPTIONS: u32 = 2;
/// Section kind: the dead-letter area (optional; regions formatted without one, or by
/// an earlier herald, lack it).
pub const SECTION_DEAD_LETTERS: u32 = 3;
/// Section kind: the routing rule table (optional; regions formatted before it, or
/// with `LogConfig::rule_entries = 0`, lack it).
pub const SECTION_RULES: u32 = 4;

/// One entry of the superblock's section table.
#[repr(C)]
#[derive(Copy, Clone, Debug, Pod, Zeroable, PartialEq, Eq)]
pub struct SectionEntry {
    /// `SECTION_*` kind; 0 marks an unused entry.
    pub kind: u32,
    /// The section's own format version.
    pub version: u32,
    /// Byte offset of the section header from the start of the region.
    pub offset: u64,
    /// Bytes of the whole section, header page included.
    pub len_bytes: u64,
    /// Zero.
    pub reserved: u64,
}

/// The superblock, at offset 0.
#[repr(C)]
#[derive(Copy, Clone, Debug, Pod, Zeroable)]
pub struct Superblock {
    /// [`REGION_MAGIC`].
    pub magic: [u8; 8],
    /// [`LAYOUT_VERSION`] of the code that formatted the region.
    pub layout_version: u32,
    /// Used entries in `sections`.
    pub section_count: u32,
    /// Bytes of the region as formatted; the file or device must be at least this long.
    pub region_bytes: u64,
    /// Random identity of this node's region, fixed at format time.
    pub node_id: u64,
    /// Wall-clock time of formatting, nanoseconds since the Unix epoch.
    pub created_unix_ns: u64,
    /// Zero.
    pub reserved: [u64; 3],
    /// The section table.
    pub sections: [SectionEntry; SECTIONS_MAX],
    /// Zero.
    pub reserved_tail: u32,
    /// CRC32C of every byte before this field.
    pub checksum: u32,
}

/// Offset of `Superblock::checksum`: everything before it is checksummed.
pub const SUPERBLOCK_CHECKSUM_OFFSET: usize = std::mem::size_of::<Superblock>() - 4;

/// Offset of the run-state word: the first cache line after the superblock, inside the
/// superblock page but outside every checksummed structure, so that it can change with
/// one aligned 8-byte store.
pub const RUN_STATE_OFFSET: usize = std::mem::size_of::<Superblock>().next_multiple_of(64);
/// Run-state word: the last run ended with `Log::close_clean` (or the region was just
/// formatted).
pub const RUN_STATE_CLEAN: u64 = u64::from_le_bytes(*b"HRLDSTOP");
/// Run-state word: a writable `Log::open` marked the region in use.
pub const RUN_STATE_RUNNING: u64 = u64::from_le_bytes(*b"HRLDRUNS");

/// Offset of the sync watermark: the cache line after the run-state word. On a region
/// synced to disk it holds a ring position below which every record was synced when
/// it was written (0: none, and on every other region): records at or above it may be
/// torn by a power cut without having been acknowledged. One aligned 8-byte store.
pub const SYNC_WATERMARK_OFFSET: usize = RUN_STATE_OFFSET + 64;

/// The header at the start of each section.
#[repr(C)]
#[derive(Copy, Clone, Debug, Pod, Zeroable)]
pub struct SectionHeader {
    /// [`SECTION_MAGIC`].
    pub magic: [u8; 4],
    /// `SECTION_*` kind; must equal the superblock's entry.
    pub kind: u32,
    /// The section's own format version.
    pub version: u32,
    /// Zero.
    pub reserved: u32,
    /// Byte offset of this header in the region (self-describing).
    pub offset: u64,
    /// Bytes of the whole section, header page included.
    pub len_bytes: u64,
    /// Kind-specific geometry: see [`RingParams`] and [`SubscriptionParams`].
    pub params: [u64; 4],
    /// Zero.
    pub reserved_tail: u32,
    /// CRC32C of every byte before this field.
    pub checksum: u32,
}

/// Offset of `SectionHeader::checksum`.
pub const SECTION_CHECKSUM_OFFSET: usize = std::mem::size_of::<SectionHeader>() - 4;

/// `SlotHeader::magic` of a written slot.
pub const SLOT_MAGIC: u16 = 0x4845; // "EH" little-endian
/// Slot kind: an event record.
pub const SLOT_KIND_EVENT: u8 = 1;
/// Slot kind: padding that fills the ring up to its end (or seals a torn hole).
pub const SLOT_KIND_PAD: u8 = 2;
/// Slot kind: an event a relay took from an upstream herald: an event record whose
/// body starts with a [`RelayBlock`] (layout version 2).
pub const SLOT_KIND_RELAYED: u8 = 3;

/// Whether a record of this kind is an event (local or relayed).
pub const fn is_event_kind(kind: u8) -> bool {
    kind == SLOT_KIND_EVENT || kind == SLOT_KIND_RELAYED
}

/// What a relayed record keeps of where its event came from, before its topic.
#[repr(C)]
#[derive(Copy, Clone, Debug, Pod, Zeroable, PartialEq, Eq)]
pub struct RelayBlock {
    /// Node id of the herald that first stored the event.
    pub origin_node_id: u64,
    /// Its seq there.
    pub origin_seq: u64,
    /// Its store time there.
    pub origin_timestamp_ns: u64,
    /// Its seq at the upstream this relay took it from (the origin's, one hop away).
    pub upstream_seq: u64,
    /// The link entry (subscription-table index) of that upstream.
    pub link: u32,
    /// Zero.
    pub reserved: u32,
}

/// Bytes of [`RelayBlock`].
pub const RELAY_BLOCK_BYTES: usize = std::mem::size_of::<RelayBlock>();
const _: () = assert!(RELAY_BLOCK_BYTES == 40);

/// The header at the start of the first slot of every record.
///
/// A record is this header followed by its body (topic, source, key, payload, in that
/// order, unpadded) and occupies `span` contiguous slots. The checksum covers the
/// header from `magic` on and the whole body, so a record is valid only if every line
/// of it reached the medium.
#[repr(C)]
#[derive(Copy, Clone, Debug, Pod, Zeroable, PartialEq, Eq)]
pub struct SlotHeader {
    /// CRC32C over header bytes `4..40` and the body.
    pub checksum: u32,
    /// [`SLOT_MAGIC`].
    pub magic: u16,
    /// `SLOT_KIND_*`.
    pub kind: u8,
    /// Syslog severity 0..=7.
    pub severity: u8,
    /// Sequence number = ring position of this record's first slot.
    pub seq: u64,
    /// Store time, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Payload bytes.
    pub payload_len: u32,
    /// Producer-defined flags.
    pub flags: u16,
    /// Topic bytes.
    pub topic_len: u8,
    /// Source bytes.
    pub source_len: u8,
    /// Idempotency key bytes (0 = none).
    pub key_len: u8,
    /// The routing rule table entry + 1 of the rule that routed it; 0 = none (and in
    /// every record written before routing rules).
    pub route: u8,
    /// Slots the record occupies (at least 1).
    pub span: u16,
    /// `seq` minus the seq of the first record of its group commit: the recovery
    /// scanner uses it to tell a torn last group (holes) from damaged older data.
    pub group_offset: u32,
}

/// Bytes of [`SlotHeader`].
pub const SLOT_HEADER_BYTES: usize = std::mem::size_of::<SlotHeader>();

/// Every record's `seq` is below this. A region reaches it only after 2^63 slots (three
/// centuries at a billion events a second); a record claiming more is damage. The bound
/// leaves room for every position sum the log forms (a seq plus a span, a ring of slots
/// or a group commit's slots) to stay far below `u64::MAX`.
pub const SEQ_LIMIT: u64 = 1 << 63;

impl SlotHeader {
    /// Body bytes that follow the header (a relayed record's relay block included).
    pub fn body_len(&self) -> usize {
        let relay = if self.kind == SLOT_KIND_RELAYED {
            RELAY_BLOCK_BYTES
        } else {
            0
        };
        relay
            + self.topic_len as usize
            + self.source_len as usize
            + self.key_len as usize
            + self.payload_len as usize
    }
}

/// Geometry of the event ring, stored in its section header's `params`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RingParams {
    /// Bytes per slot (a multiple of 64).
    pub slot_bytes: u64,
    /// Slots in the ring.
    pub slot_count: u64,
    /// Slots only events of severity `crit` or higher may use.
    pub reserve_slots: u64,
    /// Largest payload an event may carry.
    pub payload_bytes_max: u64,
}

impl RingParams {
    /// Packs into section-header params.
    pub fn to_params(self) -> [u64; 4] {
        [
            self.slot_bytes,
            self.slot_count,
            self.reserve_slots,
            self.payload_bytes_max,
        ]
    }
    /// Unpacks from section-header params.
    pub fn from_params(p: [u64; 4]) -> RingParams {
        RingParams {
            slot_bytes: p[0],
            slot_count: p[1],
            reserve_slots: p[2],
            payload_bytes_max: p[3],
        }
    }
}

/// Geometry of the subscription table, stored in its section header's `params`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SubscriptionParams {
    /// Bytes per entry ([`SUBSCRIPTION_ENTRY_BYTES`]).
    pub entry_bytes: u64,
    /// Entries in the table.
    pub entry_count: u64,
}

impl SubscriptionParams {
    /// Packs into section-header params.
    pub fn to_params(self) -> [u64; 4] {
        [self.entry_bytes, self.entry_count, 0, 0]
    }
    /// Unpacks from section-header params.
    pub fn from_params(p: [u64; 4]) -> SubscriptionParams {
        SubscriptionParams {
            entry_bytes: p[0],
            entry_count: p[1],
        }
    }
}

/// Geometry of the dead-letter area, stored in its section header's `params`.
/// `slot_count == 0` means the region has no dead-letter area.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct DeadLetterParams {
    /// Bytes per slot (a multiple of 64; the ring's slot size at format time).
    pub slot_bytes: u64,
    /// Slots in the area.
    pub slot_count: u64,
}

impl DeadLetterParams {
    /// Packs into section-header params.
    pub fn to_params(self) -> [u64; 4] {
        [self.slot_bytes, self.slot_count, 0, 0]
    }
    /// Unpacks from section-header params.
    pub fn from_params(p: [u64; 4]) -> DeadLetterParams {
        DeadLetterParams {
            slot_bytes: p[0],
            slot_count: p[1],
        }
    }
}

/// Geometry of the rule table, stored in its section header's `params`.
/// `entry_count == 0` means the region has no rule table.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct RuleParams {
    /// Bytes per entry ([`RULE_ENTRY_BYTES`]).
    pub entry_bytes: u64,
    /// Entries in the table.
    pub entry_count: u64,
}

impl RuleParams {
    /// Packs into section-header params.
    pub fn to_params(self) -> [u64; 4] {
        [self.entry_bytes, self.entry_count, 0, 0]
    }
    /// Unpacks from section-header params.
    pub fn from_params(p: [u64; 4]) -> RuleParams {
        RuleParams {
            entry_bytes: p[0],
            entry_count: p[1],
        }
    }
}

/// Bytes of one rule table entry.
pub const RULE_ENTRY_BYTES: usize = 1024;
/// Rule table entries at most: an event names its rule's entry in one byte (0 = none).
pub const RULE_ENTRIES_MAX: u64 = 255;
/// `RuleHeader::magic`.
pub const RULE_MAGIC: [u8; 4] = *b"HRUL";
/// Offset, within the rule section's header page, of the next-id word (outside every
/// checksum): rule ids are never handed out twice, even after an entry is freed.
pub const RULE_NEXT_ID_OFFSET: usize = 128;

/// The header of a rule table entry; the rule itself (opaque to the log, owned by
/// `routing`) follows at [`RULE_SPEC_OFFSET`].
///
/// `state` and `retired_at` change after creation, each in one aligned 8-byte store,
/// and are outside the checksum; everything from `magic` on is the static part, written
/// once before the entry's state says it is there.
#[repr(C)]
#[derive(Copy, Clone, Debug, Pod, Zeroable, PartialEq, Eq)]
pub struct RuleHeader {
    /// 0 free, 1 active, 2 retired (kept for the events it routed).
    pub state: u32,
    /// Zero (the rest of the state word).
    pub state_high: u32,
    /// In state 2: events at or above this position were stored after it was retired.
    pub retired_at: u64,
    /// Seeded CRC32C over entry bytes `20..RULE_ENTRY_BYTES`.
    pub checksum: u32,
    /// [`RULE_MAGIC`].
    pub magic: [u8; 4],
    /// The rule's id: kept by every version.
    pub id: u32,
    /// 1 at creation, one more at each change.
    pub version: u32,
    /// The tail when this version took effect: it routed no event below it.
    pub first_seq: u64,
    /// When this version was written.
    pub created_unix_ns: u64,
    /// Bytes of the rule at [`RULE_SPEC_OFFSET`].
    pub spec_len: u16,
    /// Zero.
    pub reserved: [u8; 14],
}

/// Where a rule entry's spec starts.
pub const RULE_SPEC_OFFSET: usize = 64;
/// The most bytes a rule's spec may take.
pub const RULE_SPEC_BYTES: usize = RULE_ENTRY_BYTES - RULE_SPEC_OFFSET;
/// Where the checksummed part of a rule entry starts.
pub const RULE_CHECKED_OFFSET: usize = 20;
/// Rule entry states.
pub const RULE_FREE: u32 = 0;
/// An active rule: events are routed by it.
pub const RULE_ACTIVE: u32 = 1;
/// A retired version: it routes nothing new, and explains what it routed.
pub const RULE_RETIRED: u32 = 2;
const _: () = assert!(std::mem::size_of::<RuleHeader>() == RULE_SPEC_OFFSET);

/// `DeadHeader::magic`.
pub const DEAD_MAGIC: [u8; 4] = *b"HDLT";

/// The header at the start of the first slot of every dead-letter record.
///
/// Two parts with different lives:
/// - `status` (offset 0, one aligned 8-byte word) is the only field that changes after
///   creation: free / dead / dead with replay requested, the delivery count, and a
///   check binding it to this record's `checksum`. See `log::dead` for its encoding.
/// - everything from `checksum` on, plus the body (topic, source, key, payload,
///   unpadded, like a ring record), is the **static part**: written once, before the
///   status word, and covered by `checksum`.
#[repr(C)]
#[derive(Copy, Clone, Debug, Pod, Zeroable, PartialEq, Eq)]
pub struct DeadHeader {
    /// The status word (0 = free).
    pub status: u64,
    /// CRC32C (seeded) over header bytes `12..72` and the body.
    pub checksum: u32,
    /// [`DEAD_MAGIC`].
    pub magic: [u8; 4],
    /// The event's original sequence number.
    pub seq: u64,
    /// `Subscription::uid` of the subscription it died for.
    pub subscription_uid: u64,
    /// When it was dead-lettered, nanoseconds since the Unix epoch.
    pub dead_unix_ns: u64,
    /// The event's original store time.
    pub timestamp_ns: u64,
    /// Payload bytes.
    pub payload_len: u32,
    /// Subscription table index of that subscription.
    pub subscription_index: u32,
    /// Slots the record occupies.
    pub span: u32,
    /// The event's flags.
    pub flags: u16,
    /// Topic bytes.
    pub topic_len: u8,
    /// Source bytes.
    pub source_len: u8,
    /// Idempotency key bytes.
    pub key_len: u8,
    /// The event's severity.
    pub severity: u8,
    /// 1 = rejected, 2 = maximum deliveries reached.
    pub reason: u8,
    /// Zero.
    pub reserved: u8,
    /// Zero.
    pub reserved_tail: u32,
}

/// Bytes of [`DeadHeader`].
pub const DEAD_HEADER_BYTES: usize = std::mem::size_of::<DeadHeader>();
/// Offset of `DeadHeader::checksum`.
pub const DEAD_CHECKSUM_OFFSET: usize = 8;
/// Offset of `DeadHeader::magic`: the checksum covers everything from here on.
pub const DEAD_MAGIC_OFFSET: usize = DEAD_CHECKSUM_OFFSET + 4;

impl DeadHeader {
    /// Body bytes that follow the header.
    pub fn body_len(&self) -> usize {
        self.topic_len as usize
            + self.source_len as usize
            + self.key_len as usize
            + self.payload_len as usize
    }
}

// The entry's name and spec fields are sized by these limits; the size checks below
// keep the entry at 512 bytes.
pub use crate::event::limits::{SUBSCRIPTION_NAME_BYTES_MAX, SUBSCRIPTION_SPEC_BYTES_MAX};
/// `SubscriptionEntry::state` of a free entry.
pub const SUBSCRIPTION_FREE: u32 = 0;
/// `SubscriptionEntry::state` of an entry in use.
pub const SUBSCRIPTION_ACTIVE: u32 = 1;
/// `SubscriptionEntry::state` of an upstream link's entry (layout version 2): its
/// cursor is the upstream's seq below which every event it sent is stored here.
pub const SUBSCRIPTION_LINK: u32 = 2;

/// One of the two alternating cursor records of a subscription entry. A cursor update
/// writes the record not holding the newest generation, so a torn update leaves the
/// previous record intact.
#[repr(C)]
#[derive(Copy, Clone, Debug, Pod, Zeroable, PartialEq, Eq)]
pub struct CursorRecord {
    /// Increases by one with every update; 0 = never written.
    pub generation: u64,
    /// Every event with seq below this is handled for this subscription.
    pub cursor: u64,
    /// 0 = normal, 1 = recovering.
    pub mode: u32,
    /// Zero.
    pub flags: u32,
    /// Zero.
    pub reserved: u32,
    /// CRC32C of the bytes before this field.
    pub checksum: u32,
}

/// Offset of `CursorRecord::checksum`.
pub const CURSOR_CHECKSUM_OFFSET: usize = std::mem::size_of::<CursorRecord>() - 4;

/// A durable subscription: static part (written at creation) plus two cursor records.
#[repr(C)]
#[derive(Copy, Clone, Debug, Pod, Zeroable)]
pub struct SubscriptionEntry {
    /// `SUBSCRIPTION_FREE` or `SUBSCRIPTION_ACTIVE`; written last at creation, alone.
    pub state: u32,
    /// Name bytes.
    pub name_len: u32,
    /// Creation counter, distinguishing reuse of the same entry.
    pub id: u64,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_unix_ns: u64,
    /// Spec bytes.
    pub spec_len: u32,
    /// Zero.
    pub reserved: u32,
    /// The name.
    pub name: [u8; SUBSCRIPTION_NAME_BYTES_MAX],
    /// Opaque spec owned by the subscription layer.
    pub spec: [u8; SUBSCRIPTION_SPEC_BYTES_MAX],
    /// CRC32C of bytes `4..` up to this field (everything static except `state`).
    pub static_checksum: u32,
    /// The two alternating cursor records.
    pub cursors: [CursorRecord; 2],
}

/// Bytes of one subscription entry.
pub const SUBSCRIPTION_ENTRY_BYTES: usize = std::mem::size_of::<SubscriptionEntry>();
/// Offset of `SubscriptionEntry::static_checksum`.
pub const SUBSCRIPTION_STATIC_CHECKSUM_OFFSET: usize =
    4 + 4 + 8 + 8 + 4 + 4 + SUBSCRIPTION_NAME_BYTES_MAX + SUBSCRIPTION_SPEC_BYTES_MAX;
/// Offset of `SubscriptionEntry::cursors`.
pub const SUBSCRIPTION_CURSORS_OFFSET: usize = SUBSCRIPTION_STATIC_CHECKSUM_OFFSET + 4;

const _: () = assert!(std::mem::size_of::<SectionEntry>() == 32);
const _: () = assert!(std::mem::size_of::<Superblock>() == 64 + 32 * SECTIONS_MAX + 8);
const _: () = assert!(std::mem::size_of::<Superblock>() as u64 <= SUPERBLOCK_PAGE_BYTES);
const _: () = assert!(std::mem::size_of::<SectionHeader>() == 72);
const _: () = assert!(SLOT_HEADER_BYTES == 40);
const _: () = assert!(DEAD_HEADER_BYTES == 72);
// The status word is the record's first aligned word; checksum and magic follow it.
const _: () = assert!(std::mem::offset_of!(DeadHeader, checksum) == DEAD_CHECKSUM_OFFSET);
const _: () = assert!(std::mem::offset_of!(DeadHeader, magic) == DEAD_MAGIC_OFFSET);
// The run-state word is aligned, has a cache line of its own, and stays in the page.
const _: () = assert!(RUN_STATE_OFFSET.is_multiple_of(64));
const _: () = assert!(RUN_STATE_OFFSET >= std::mem::size_of::<Superblock>());
const _: () = assert!(RUN_STATE_OFFSET as u64 + 8 <= SUPERBLOCK_PAGE_BYTES);
const _: () = assert!(SYNC_WATERMARK_OFFSET.is_multiple_of(64));
const _: () = assert!(SYNC_WATERMARK_OFFSET as u64 + 8 <= SUPERBLOCK_PAGE_BYTES);
const _: () = assert!(std::mem::size_of::<CursorRecord>() == 32);
const _: () = assert!(SUBSCRIPTION_ENTRY_BYTES == 512);
const _: () = assert!(SUBSCRIPTION_CURSORS_OFFSET == 448);
// Both cursor records share the entry's last cache line: one flush covers an update.
const _: () = assert!(SUBSCRIPTION_CURSORS_OFFSET.is_multiple_of(64));

/// CRC32C (hardware accelerated where the CPU has SSE4.2).
#[inline]
pub fn crc(bytes: &[u8]) -> u32 {
    crc_append(0, bytes)
}

/// Inputs up to this size use the plain one-instruction-per-word loop below.
const CRC_SMALL_BYTES_MAX: usize = 512;

/// Continues a CRC32C over more bytes (same convention as `crc32c::crc32c_append`).
///
/// Why not always the `crc32c` crate: its per-call setup (alignment prologue, three-way
/// interleaving) costs several hundred instructions, which dominated a 64-byte append.
/// For small records a straight `crc32` loop is several times cheaper; large buffers
/// still go to the crate's interleaved implementation.
#[inline]
pub fn crc_append(crc: u32, bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if bytes.len() <= CRC_SMALL_BYTES_MAX && std::is_x86_feature_detected!("sse4.2") {
        // SAFETY: SSE4.2 presence was just checked.
        return unsafe { crc_small_sse42(crc, bytes) };
    }
    crc32c::crc32c_append(crc, bytes)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn crc_small_sse42(crc: u32, bytes: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut state = !crc as u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        // `chunks_exact(8)` yields 8-byte slices only.
        state = _mm_crc32_u64(
            state,
            u64::from_le_bytes(w.try_into().expect("8-byte chunk")),
        );
    }
    let mut state = state as u32;
    for &b in words.remainder() {
        state = _mm_crc32_u8(state, b);
    }
    !state
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn small_input_crc_matches_the_crc32c_crate_for_every_length_and_seed() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        for len in 0..=CRC_SMALL_BYTES_MAX + 64 {
            let data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let seed: u32 = rng.gen();
            assert_eq!(
                crc_append(seed, &data),
                crc32c::crc32c_append(seed, &data),
                "length {len}"
            );
        }
        assert_eq!(crc(b"123456789"), 0xe306_9283, "the CRC32C check value");
    }
}
