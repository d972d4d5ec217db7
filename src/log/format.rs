//! Formatting a region and reading its geometry back, with every check that tells a
//! herald region from anything else.

use super::layout::*;
use crate::event::limits::{
    DEAD_LETTER_SLOTS_MAX, EVENT_PAYLOAD_BYTES_MAX, KEY_BYTES_MAX, PAYLOAD_BYTES_MAX_LIMIT,
    SLOT_BYTES_MAX, SLOT_BYTES_MIN, SOURCE_BYTES_MAX, SUBSCRIPTION_ENTRIES_MAX, TOPIC_BYTES_MAX,
};
use crate::pmem::Medium;
use bytemuck::Zeroable;

/// Everything chosen when a region is formatted.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Bytes per slot: a multiple of 64, at least 64.
    pub slot_bytes: u32,
    /// Slots reserved for `crit` and more severe events; `None` = 1% of the ring,
    /// and at least enough for two events of the largest size.
    pub reserve_slots: Option<u64>,
    /// Durable subscriptions the region can hold.
    pub subscription_entries: u32,
    /// Largest event payload.
    pub payload_bytes_max: u32,
    /// Slots of the dead-letter area (same slot size as the ring). `None` = one ninth
    /// of the space left for data (so the area holds 1/8 of the ring's bytes), and at
    /// least one record of the largest event; `Some(0)` = no dead-letter area.
    pub dead_letter_slots: Option<u64>,
    /// Entries of the routing rule table (each rule version takes one while events it
    /// routed are held); 0 = no rule table. At most [`RULE_ENTRIES_MAX`].
    pub rule_entries: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            slot_bytes: 128,
            reserve_slots: None,
            subscription_entries: 64,
            payload_bytes_max: PAYLOAD_BYTES_MAX_DEFAULT,
            dead_letter_slots: None,
            rule_entries: 64,
        }
    }
}

/// The payload limit used when none is configured: what the protocol carries.
pub const PAYLOAD_BYTES_MAX_DEFAULT: u32 = EVENT_PAYLOAD_BYTES_MAX as u32;
/// Bytes `format_existing` inspects for data before it agrees to overwrite.
pub const SUPERBLOCK_PROBE_BYTES: usize = 4096;

/// Lower bound of the slots one group commit may write (see `Geometry::group_slots_max`).
pub const GROUP_SLOTS_MIN: u64 = 4096;
const _: () = assert!(SLOT_BYTES_MIN as usize >= SLOT_HEADER_BYTES);
const _: () = assert!(PAYLOAD_BYTES_MAX_DEFAULT <= PAYLOAD_BYTES_MAX_LIMIT);

/// A region's geometry as read from (or written to) its superblock and sections.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Geometry {
    /// Bytes of the formatted region.
    pub region_bytes: u64,
    /// Layout version found.
    pub layout_version: u32,
    /// Random node identity fixed at format time.
    pub node_id: u64,
    /// Format time.
    pub created_unix_ns: u64,
    /// Ring geometry.
    pub ring: RingParams,
    /// Offset of slot 0.
    pub ring_data_offset: u64,
    /// Subscription table geometry.
    pub subscriptions: SubscriptionParams,
    /// Offset of subscription entry 0.
    pub subscriptions_data_offset: u64,
    /// Dead-letter area geometry (`slot_count == 0`: the region has none).
    pub dead_letters: DeadLetterParams,
    /// Offset of dead-letter slot 0 (0 when there is no area).
    pub dead_letters_data_offset: u64,
    /// Rule table geometry (`entry_count == 0`: the region has none).
    pub rules: RuleParams,
    /// Offset of rule entry 0 (0 when there is no table).
    pub rules_data_offset: u64,
}

impl Geometry {
    /// Seed of every slot and cursor checksum: derived from the node id, so records
    /// left by an earlier format of the same device never validate.
    pub fn checksum_seed(&self) -> u32 {
        (self.node_id as u32) ^ ((self.node_id >> 32) as u32)
    }

    /// Byte offset of slot `index`.
    pub fn slot_offset(&self, index: u64) -> usize {
        // Kept in release builds: an index past the ring would write into the next
        // section, which the medium's own bounds check would not catch.
        assert!(index < self.ring.slot_count, "slot {index} beyond the ring");
        (self.ring_data_offset + index * self.ring.slot_bytes) as usize
    }

    /// Byte offset of subscription entry `index`.
    pub fn subscription_offset(&self, index: u32) -> usize {
        assert!(
            (index as u64) < self.subscriptions.entry_count,
            "subscription entry {index} beyond the table"
        );
        (self.subscriptions_data_offset + index as u64 * self.subscriptions.entry_bytes) as usize
    }

    /// Slots an event with this many body bytes occupies.
    pub fn span_for_body(&self, body_bytes: usize) -> u64 {
        (SLOT_HEADER_BYTES + body_bytes).div_ceil(self.ring.slot_bytes as usize) as u64
    }

    /// The most slots one group commit may write: bounded so that recovery knows how
    /// far past the tail a lost group can reach (it scrubs that far at open).
    pub fn group_slots_max(&self) -> u64 {
        GROUP_SLOTS_MIN.max(2 * self.span_max())
    }

    /// The most body bytes (topic, source, key, payload) a valid event can have.
    pub fn body_bytes_max(&self) -> usize {
        TOPIC_BYTES_MAX + SOURCE_BYTES_MAX + KEY_BYTES_MAX + self.ring.payload_bytes_max as usize
    }

    /// The most slots any valid record can occupy: the largest event, relayed (its
    /// relay block included) where the layout allows relayed records.
    pub fn span_max(&self) -> u64 {
        let relay = if self.holds_relayed() {
            RELAY_BLOCK_BYTES
        } else {
            0
        };
        self.span_for_body(self.body_bytes_max() + relay)
    }

    /// Whether the region's layout may hold relayed records and link entries.
    pub fn holds_relayed(&self) -> bool {
        self.layout_version >= LAYOUT_VERSION_RELAY
    }

    /// Whether the region has a routing rule table.
    pub fn has_rules(&self) -> bool {
        self.rules.entry_count > 0
    }

    /// Byte offset of rule entry `index`.
    pub fn rule_offset(&self, index: u32) -> usize {
        assert!(
            (index as u64) < self.rules.entry_count,
            "rule entry {index} beyond the table"
        );
        (self.rules_data_offset + index as u64 * self.rules.entry_bytes) as usize
    }

    /// Whether the region has a dead-letter area.
    pub fn has_dead_letters(&self) -> bool {
        self.dead_letters.slot_count > 0
    }

    /// Byte offset of dead-letter slot `index`.
    pub fn dead_slot_offset(&self, index: u64) -> usize {
        assert!(
            index < self.dead_letters.slot_count,
            "dead-letter slot {index} beyond the area"
        );
        (self.dead_letters_data_offset + index * self.dead_letters.slot_bytes) as usize
    }

    /// Slots a dead-letter record with this many body bytes occupies.
    pub fn dead_span_for_body(&self, body_bytes: usize) -> u64 {
        dead_span(self.dead_letters.slot_bytes, body_bytes)
    }

    /// The most slots a dead-letter record can occupy (a copy of the largest event).
    pub fn dead_span_max(&self) -> u64 {
        self.dead_span_for_body(self.body_bytes_max())
    }
}

fn dead_span(slot_bytes: u64, body_bytes: usize) -> u64 {
    (DEAD_HEADER_BYTES as u64 + body_bytes as u64).div_ceil(slot_bytes)
}

/// Why bytes are not a usable herald region. The caller adds the path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Shorter than a superblock, or than the superblock says.
    #[error("truncated: {actual_bytes} bytes, but the region needs {expected_bytes}; the file was cut short (restore it from a copy)")]
    Truncated {
        /// Bytes the superblock (or the minimum) requires.
        expected_bytes: u64,
        /// Bytes present.
        actual_bytes: u64,
    },
    /// No herald magic.
    #[error("not a herald region (bad magic {found:02x?}); herald never reformats an existing file: move it away or choose another --data-dir, or format it on purpose with `herald format PATH`")]
    NotHerald {
        /// The first 8 bytes found.
        found: [u8; 8],
    },
    /// Written by another layout version.
    #[error("layout version {found}, but this herald reads versions {LAYOUT_VERSION_MIN} to {LAYOUT_VERSION}; use a herald release that matches the region")]
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
    /// Superblock checksum mismatch.
    #[error("superblock checksum mismatch; the file is damaged or was not written by herald; run `herald inspect` for details")]
    SuperblockChecksum,
    /// A section header or the section table is damaged.
    #[error("section {kind}: {reason}")]
    Section {
        /// The section kind number.
        kind: u32,
        /// What is wrong.
        reason: String,
    },
    /// The requested configuration cannot be formatted.
    #[error("cannot format: {0}")]
    Config(String),
}

/// Computes the geometry `config` gives in a region of `region_bytes`.
pub fn plan(
    region_bytes: u64,
    config: &LogConfig,
    node_id: u64,
    now_ns: u64,
) -> Result<Geometry, FormatError> {
    let bad = |m: String| Err(FormatError::Config(m));
    if config.slot_bytes < SLOT_BYTES_MIN
        || config.slot_bytes > SLOT_BYTES_MAX
        || !config.slot_bytes.is_multiple_of(64)
    {
        return bad(format!(
            "slot size {} must be a multiple of 64 between {SLOT_BYTES_MIN} and {SLOT_BYTES_MAX}",
            config.slot_bytes
        ));
    }
    if config.subscription_entries == 0 || config.subscription_entries > SUBSCRIPTION_ENTRIES_MAX {
        return bad(format!(
            "subscription entries {} must be 1..={SUBSCRIPTION_ENTRIES_MAX}",
            config.subscription_entries
        ));
    }
    if config.payload_bytes_max > PAYLOAD_BYTES_MAX_LIMIT {
        return bad(format!(
            "payload limit {} exceeds {PAYLOAD_BYTES_MAX_LIMIT}",
            config.payload_bytes_max
        ));
    }
    let subs_bytes = (config.subscription_entries as u64 * SUBSCRIPTION_ENTRY_BYTES as u64)
        .next_multiple_of(4096);
    let subs_offset = SUPERBLOCK_PAGE_BYTES;
    if config.rule_entries as u64 > RULE_ENTRIES_MAX {
        return bad(format!(
            "rule entries {} exceed {RULE_ENTRIES_MAX} (an event names its rule in one byte)",
            config.rule_entries
        ));
    }
    let mut after_subs = subs_offset + SECTION_HEADER_PAGE_BYTES + subs_bytes;
    let rules_data_offset = if config.rule_entries == 0 {
        0
    } else {
        let at = after_subs + SECTION_HEADER_PAGE_BYTES;
        after_subs =
            at + (config.rule_entries as u64 * RULE_ENTRY_BYTES as u64).next_multiple_of(4096);
        at
    };
    let slot_bytes = config.slot_bytes as u64;
    let body_max = TOPIC_BYTES_MAX + SOURCE_BYTES_MAX + KEY_BYTES_MAX;
    let dead_span_max = dead_span(slot_bytes, body_max + config.payload_bytes_max as usize);
    let dead_slots = match config.dead_letter_slots {
        Some(n) => n,
        None => {
            // Split what is left after both section header pages 1:8 between the
            // dead-letter area and the ring.
            let data = region_bytes.saturating_sub(after_subs + 2 * SECTION_HEADER_PAGE_BYTES);
            (data / slot_bytes / 9).max(dead_span_max)
        }
    };
    if dead_slots > 0 && dead_slots < dead_span_max {
        return bad(format!(
            "a dead-letter area of {dead_slots} slots cannot hold a copy of the largest \
             event ({dead_span_max} slots); use at least that many, or 0 for none"
        ));
    }
    if dead_slots > DEAD_LETTER_SLOTS_MAX {
        return bad(format!(
            "a dead-letter area of {dead_slots} slots exceeds {DEAD_LETTER_SLOTS_MAX}"
        ));
    }
    let (dead_data_offset, ring_offset) = if dead_slots == 0 {
        (0, after_subs)
    } else {
        let len = (SECTION_HEADER_PAGE_BYTES + dead_slots * slot_bytes).next_multiple_of(4096);
        (after_subs + SECTION_HEADER_PAGE_BYTES, after_subs + len)
    };
    let ring_data_offset = ring_offset + SECTION_HEADER_PAGE_BYTES;
    let slot_count = region_bytes.saturating_sub(ring_data_offset) / slot_bytes;
    let mut geometry = Geometry {
        region_bytes,
        layout_version: LAYOUT_VERSION,
        node_id,
        created_unix_ns: now_ns,
        ring: RingParams {
            slot_bytes,
            slot_count,
            reserve_slots: 0,
            payload_bytes_max: config.payload_bytes_max as u64,
        },
        ring_data_offset,
        subscriptions: SubscriptionParams {
            entry_bytes: SUBSCRIPTION_ENTRY_BYTES as u64,
            entry_count: config.subscription_entries as u64,
        },
        subscriptions_data_offset: subs_offset + SECTION_HEADER_PAGE_BYTES,
        dead_letters: DeadLetterParams {
            slot_bytes: if dead_slots == 0 { 0 } else { slot_bytes },
            slot_count: dead_slots,
        },
        dead_letters_data_offset: dead_data_offset,
        rules: RuleParams {
            entry_bytes: if config.rule_entries == 0 {
                0
            } else {
                RULE_ENTRY_BYTES as u64
            },
            entry_count: config.rule_entries as u64,
        },
        rules_data_offset,
    };
    let span_max = geometry.span_max();
    if span_max > u16::MAX as u64 {
        return bad(format!(
            "the largest event would span {span_max} slots (at most {}); use larger slots",
            u16::MAX
        ));
    }
    let reserve = config
        .reserve_slots
        .unwrap_or_else(|| (slot_count / 100).max(2 * span_max));
    // The ring must hold the reserve and, beside it, at least four of the largest
    // events, or a single large event could make the ring look permanently full.
    // Saturating: the reserve is the caller's, unchecked so far.
    let slots_needed = reserve.saturating_add(4 * span_max);
    if slot_count < slots_needed {
        return bad(format!(
            "region of {region_bytes} bytes holds {slot_count} ring slots of {slot_bytes} \
             bytes (after a dead-letter area of {dead_slots} slots); it needs at least {} \
             (reserve {reserve} + 4 events of {span_max} slots); use a larger region, a \
             smaller payload limit or a smaller dead-letter area",
            slots_needed
        ));
    }
    geometry.ring.reserve_slots = reserve;
    Ok(geometry)
}

/// Writes a fresh superblock, section headers and an empty subscription table. The
/// superblock is written last and fenced separately: a crash mid-format leaves no magic.
pub fn format<M: Medium>(medium: &mut M, geometry: &Geometry) -> std::io::Result<()> {
    let subs_offset = geometry.subscriptions_data_offset - SECTION_HEADER_PAGE_BYTES;
    let subs_len = geometry.ring_data_offset - SECTION_HEADER_PAGE_BYTES - subs_offset;
    let ring_offset = geometry.ring_data_offset - SECTION_HEADER_PAGE_BYTES;
    let ring_len = SECTION_HEADER_PAGE_BYTES + geometry.ring.slot_count * geometry.ring.slot_bytes;
    let dead_offset = geometry
        .dead_letters_data_offset
        .saturating_sub(SECTION_HEADER_PAGE_BYTES);
    let rules_offset = geometry
        .rules_data_offset
        .saturating_sub(SECTION_HEADER_PAGE_BYTES);
    let rules_len = SECTION_HEADER_PAGE_BYTES
        + (geometry.rules.entry_count * geometry.rules.entry_bytes).next_multiple_of(4096);
    let all_sections = [
        (
            SECTION_SUBSCRIPTIONS,
            subs_offset,
            subs_len,
            geometry.subscriptions.to_params(),
        ),
        (
            SECTION_EVENT_RING,
            ring_offset,
            ring_len,
            geometry.ring.to_params(),
        ),
        (
            SECTION_DEAD_LETTERS,
            dead_offset,
            ring_offset - dead_offset,
            geometry.dead_letters.to_params(),
        ),
        (
            SECTION_RULES,
            rules_offset,
            rules_len,
            geometry.rules.to_params(),
        ),
    ];
    // The dead-letter area is not zeroed: bytes left by an earlier format never pass
    // its checks (every checksum and status check is seeded with the node id).
    let sections: Vec<_> = all_sections
        .iter()
        .filter(|s| match s.0 {
            SECTION_DEAD_LETTERS => geometry.has_dead_letters(),
            SECTION_RULES => geometry.has_rules(),
            _ => true,
        })
        .collect();
    // A reused device may hold old tables; free entries must read as free (the rule
    // table's header page too: it holds the next-id word).
    let zero = |medium: &mut M, from: u64, bytes: u64| {
        let zeros = [0u8; 4096];
        let (mut at, end) = (from as usize, (from + bytes) as usize);
        while at < end {
            let n = (end - at).min(zeros.len());
            medium.write(at, &zeros[..n]);
            at += n;
        }
        medium.flush(from as usize, bytes as usize);
    };
    zero(
        medium,
        geometry.subscriptions_data_offset,
        geometry.subscriptions.entry_count * geometry.subscriptions.entry_bytes,
    );
    if geometry.has_rules() {
        zero(medium, rules_offset, rules_len);
    }
    let mut superblock = Superblock::zeroed();
    for (i, &&(kind, offset, len_bytes, params)) in sections.iter().enumerate() {
        let mut header = SectionHeader::zeroed();
        header.magic = SECTION_MAGIC;
        header.kind = kind;
        header.version = 1;
        header.offset = offset;
        header.len_bytes = len_bytes;
        header.params = params;
        header.checksum = crc(&bytemuck::bytes_of(&header)[..SECTION_CHECKSUM_OFFSET]);
        medium.write(offset as usize, bytemuck::bytes_of(&header));
        medium.flush(offset as usize, std::mem::size_of::<SectionHeader>());
        superblock.sections[i] = SectionEntry {
            kind,
            version: 1,
            offset,
            len_bytes,
            reserved: 0,
        };
    }
    medium.fence()?;
    superblock.magic = REGION_MAGIC;
    superblock.layout_version = LAYOUT_VERSION;
    superblock.section_count = sections.len() as u32;
    superblock.region_bytes = geometry.region_bytes;
    superblock.node_id = geometry.node_id;
    superblock.created_unix_ns = geometry.created_unix_ns;
    superblock.checksum = crc(&bytemuck::bytes_of(&superblock)[..SUPERBLOCK_CHECKSUM_OFFSET]);
    medium.write(0, bytemuck::bytes_of(&superblock));
    medium.flush(0, std::mem::size_of::<Superblock>());
    // A fresh region counts as cleanly stopped (nothing ran on it yet).
    medium.write(RUN_STATE_OFFSET, &RUN_STATE_CLEAN.to_le_bytes());
    medium.flush(RUN_STATE_OFFSET, 8);
    medium.fence()
}

/// Reads and checks the superblock and section headers.
pub fn read_geometry(bytes: &[u8]) -> Result<Geometry, FormatError> {
    let sb_len = std::mem::size_of::<Superblock>();
    if bytes.len() < SUPERBLOCK_PAGE_BYTES as usize {
        return Err(FormatError::Truncated {
            expected_bytes: SUPERBLOCK_PAGE_BYTES,
            actual_bytes: bytes.len() as u64,
        });
    }
    let sb: Superblock = bytemuck::pod_read_unaligned(&bytes[..sb_len]);
    if sb.magic != REGION_MAGIC {
        return Err(FormatError::NotHerald { found: sb.magic });
    }
    if !(LAYOUT_VERSION_MIN..=LAYOUT_VERSION).contains(&sb.layout_version) {
        return Err(FormatError::UnsupportedVersion {
            found: sb.layout_version,
        });
    }
    if crc(&bytes[..SUPERBLOCK_CHECKSUM_OFFSET]) != sb.checksum {
        return Err(FormatError::SuperblockChecksum);
    }
    if sb.region_bytes > bytes.len() as u64 {
        return Err(FormatError::Truncated {
            expected_bytes: sb.region_bytes,
            actual_bytes: bytes.len() as u64,
        });
    }
    if sb.section_count as usize > SECTIONS_MAX {
        return Err(FormatError::Section {
            kind: 0,
            reason: format!("section count {} exceeds {SECTIONS_MAX}", sb.section_count),
        });
    }
    let mut ring = None;
    let mut subs = None;
    let mut dead = None;
    let mut rules = None;
    for entry in &sb.sections[..sb.section_count as usize] {
        let header = read_section(bytes, &sb, entry)?;
        match entry.kind {
            SECTION_EVENT_RING => ring = Some((header, RingParams::from_params(header.params))),
            SECTION_SUBSCRIPTIONS => {
                subs = Some((header, SubscriptionParams::from_params(header.params)))
            }
            SECTION_DEAD_LETTERS => {
                dead = Some((header, DeadLetterParams::from_params(header.params)))
            }
            SECTION_RULES => rules = Some((header, RuleParams::from_params(header.params))),
            // Unknown kinds are sections a later minor version added: skip them.
            _ => {}
        }
    }
    let missing = |kind: u32| FormatError::Section {
        kind,
        reason: "missing from the section table".into(),
    };
    let (ring_header, ring) = ring.ok_or_else(|| missing(SECTION_EVENT_RING))?;
    let (subs_header, subscriptions) = subs.ok_or_else(|| missing(SECTION_SUBSCRIPTIONS))?;
    let geometry = Geometry {
        region_bytes: sb.region_bytes,
        layout_version: sb.layout_version,
        node_id: sb.node_id,
        created_unix_ns: sb.created_unix_ns,
        ring,
        ring_data_offset: ring_header.offset + SECTION_HEADER_PAGE_BYTES,
        subscriptions,
        subscriptions_data_offset: subs_header.offset + SECTION_HEADER_PAGE_BYTES,
        dead_letters: dead.map(|(_, p)| p).unwrap_or_default(),
        dead_letters_data_offset: dead.map_or(0, |(h, _)| h.offset + SECTION_HEADER_PAGE_BYTES),
        rules: rules.map(|(_, p)| p).unwrap_or_default(),
        rules_data_offset: rules.map_or(0, |(h, _)| h.offset + SECTION_HEADER_PAGE_BYTES),
    };
    check_ring(&geometry, &ring_header)?;
    check_subscriptions(&geometry, &subs_header)?;
    if let Some((header, _)) = dead {
        check_dead_letters(&geometry, &header)?;
    }
    if let Some((header, _)) = rules {
        check_rules(&geometry, &header)?;
    }
    check_disjoint(&geometry)?;
    Ok(geometry)
}

/// Sections whose used bytes overlap would write over each other (a cursor into a slot,
/// a dead letter into the ring): only a damaged or crafted table says so. The used
/// bytes, not `len_bytes`: the subscription section of a region with a dead-letter area
/// is formatted to reach the ring, around the dead-letter section.
fn check_disjoint(g: &Geometry) -> Result<(), FormatError> {
    // Each product was checked to fit its section, and each section the region.
    let extent = |kind: u32, data_offset: u64, bytes: u64| {
        (
            kind,
            data_offset - SECTION_HEADER_PAGE_BYTES,
            data_offset + bytes,
        )
    };
    let ring = extent(
        SECTION_EVENT_RING,
        g.ring_data_offset,
        g.ring.slot_count * g.ring.slot_bytes,
    );
    let subs = extent(
        SECTION_SUBSCRIPTIONS,
        g.subscriptions_data_offset,
        g.subscriptions.entry_count * g.subscriptions.entry_bytes,
    );
    let dead = g.has_dead_letters().then(|| {
        extent(
            SECTION_DEAD_LETTERS,
            g.dead_letters_data_offset,
            g.dead_letters.slot_count * g.dead_letters.slot_bytes,
        )
    });
    // With its header page (the extent includes it): that holds the next-id word.
    let rules = g.has_rules().then(|| {
        extent(
            SECTION_RULES,
            g.rules_data_offset,
            g.rules.entry_count * g.rules.entry_bytes,
        )
    });
    let pairs = [
        Some((ring, subs)),
        dead.map(|d| (d, ring)),
        dead.map(|d| (d, subs)),
        rules.map(|r| (r, ring)),
        rules.map(|r| (r, subs)),
        rules.zip(dead),
    ];
    for ((a, a_start, a_end), (b, b_start, b_end)) in pairs.into_iter().flatten() {
        if a_start < b_end && b_start < a_end {
            return Err(FormatError::Section {
                kind: a,
                reason: format!(
                    "bytes {a_start}..{a_end} overlap section {b} at {b_start}..{b_end}"
                ),
            });
        }
    }
    Ok(())
}

fn read_section(
    bytes: &[u8],
    sb: &Superblock,
    entry: &SectionEntry,
) -> Result<SectionHeader, FormatError> {
    let fail = |reason: String| FormatError::Section {
        kind: entry.kind,
        reason,
    };
    let end = entry.offset.checked_add(entry.len_bytes);
    if entry.offset < SUPERBLOCK_PAGE_BYTES
        || end.is_none_or(|e| e > sb.region_bytes)
        || entry.len_bytes < SECTION_HEADER_PAGE_BYTES
    {
        return Err(fail(format!(
            "offset {} + length {} lies outside the region of {} bytes",
            entry.offset, entry.len_bytes, sb.region_bytes
        )));
    }
    let at = entry.offset as usize;
    let header: SectionHeader =
        bytemuck::pod_read_unaligned(&bytes[at..at + std::mem::size_of::<SectionHeader>()]);
    if header.magic != SECTION_MAGIC {
        return Err(fail("bad section magic".into()));
    }
    if crc(&bytes[at..at + SECTION_CHECKSUM_OFFSET]) != header.checksum {
        return Err(fail("section header checksum mismatch".into()));
    }
    if header.kind != entry.kind
        || header.offset != entry.offset
        || header.len_bytes != entry.len_bytes
    {
        return Err(fail(
            "section header disagrees with the superblock's section table".into(),
        ));
    }
    Ok(header)
}

/// Slots of the ring and of the dead-letter area: whole cache lines, within limits.
fn check_slot_bytes(slot_bytes: u64) -> Result<(), String> {
    if slot_bytes < SLOT_BYTES_MIN as u64
        || slot_bytes > SLOT_BYTES_MAX as u64
        || !slot_bytes.is_multiple_of(64)
    {
        return Err(format!("slot size {slot_bytes} is invalid"));
    }
    Ok(())
}

fn check_ring(g: &Geometry, header: &SectionHeader) -> Result<(), FormatError> {
    let fail = |reason: String| FormatError::Section {
        kind: SECTION_EVENT_RING,
        reason,
    };
    let r = g.ring;
    check_slot_bytes(r.slot_bytes).map_err(fail)?;
    if r.payload_bytes_max > PAYLOAD_BYTES_MAX_LIMIT as u64 || g.span_max() > u16::MAX as u64 {
        return Err(fail(format!(
            "payload limit {} is invalid",
            r.payload_bytes_max
        )));
    }
    let needed = r
        .slot_count
        .checked_mul(r.slot_bytes)
        .and_then(|b| b.checked_add(SECTION_HEADER_PAGE_BYTES));
    if needed.is_none_or(|n| n > header.len_bytes) {
        return Err(fail(format!(
            "{} slots of {} bytes do not fit the section",
            r.slot_count, r.slot_bytes
        )));
    }
    // span_max is at most u16::MAX (checked above); the reserve is as read.
    if r.slot_count < r.reserve_slots.saturating_add(4 * g.span_max()) {
        return Err(fail(format!(
            "{} slots cannot hold the reserve of {}",
            r.slot_count, r.reserve_slots
        )));
    }
    Ok(())
}

fn check_subscriptions(g: &Geometry, header: &SectionHeader) -> Result<(), FormatError> {
    let s = g.subscriptions;
    if s.entry_bytes != SUBSCRIPTION_ENTRY_BYTES as u64
        || s.entry_count == 0
        || s.entry_count > SUBSCRIPTION_ENTRIES_MAX as u64
        || SECTION_HEADER_PAGE_BYTES + s.entry_bytes * s.entry_count > header.len_bytes
    {
        return Err(FormatError::Section {
            kind: SECTION_SUBSCRIPTIONS,
            reason: format!(
                "{} entries of {} bytes are invalid here",
                s.entry_count, s.entry_bytes
            ),
        });
    }
    Ok(())
}

fn check_dead_letters(g: &Geometry, header: &SectionHeader) -> Result<(), FormatError> {
    let fail = |reason: String| FormatError::Section {
        kind: SECTION_DEAD_LETTERS,
        reason,
    };
    let d = g.dead_letters;
    check_slot_bytes(d.slot_bytes).map_err(fail)?;
    if d.slot_count < g.dead_span_max() || d.slot_count > DEAD_LETTER_SLOTS_MAX {
        return Err(fail(format!(
            "{} slots cannot hold a copy of the largest event ({} slots) or exceed {DEAD_LETTER_SLOTS_MAX}",
            d.slot_count,
            g.dead_span_max()
        )));
    }
    if SECTION_HEADER_PAGE_BYTES + d.slot_count * d.slot_bytes > header.len_bytes {
        return Err(fail(format!(
            "{} slots of {} bytes do not fit the section",
            d.slot_count, d.slot_bytes
        )));
    }
    Ok(())
}

fn check_rules(g: &Geometry, header: &SectionHeader) -> Result<(), FormatError> {
    let r = g.rules;
    if r.entry_bytes != RULE_ENTRY_BYTES as u64
        || r.entry_count == 0
        || r.entry_count > RULE_ENTRIES_MAX
        || SECTION_HEADER_PAGE_BYTES + r.entry_count * r.entry_bytes > header.len_bytes
    {
        return Err(FormatError::Section {
            kind: SECTION_RULES,
            reason: format!(
                "{} entries of {} bytes: entries are {RULE_ENTRY_BYTES} bytes, 1..={RULE_ENTRIES_MAX} of them, within the section",
                r.entry_count, r.entry_bytes
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pmem::sim::SimMedium;

    fn formatted() -> (SimMedium, Geometry) {
        let mut m = SimMedium::new(1 << 20);
        let g = plan(1 << 20, &LogConfig::default(), 0xfeed_beef_1234_5678, 7).unwrap();
        format(&mut m, &g).unwrap();
        (m, g)
    }

    #[test]
    fn a_formatted_region_reads_back_the_same_geometry() {
        let (m, g) = formatted();
        assert_eq!(read_geometry(m.bytes()).unwrap(), g);
    }

    #[test]
    fn a_crash_before_the_superblock_fence_leaves_no_region() {
        let mut m = SimMedium::new(1 << 20);
        let g = plan(1 << 20, &LogConfig::default(), 1, 7).unwrap();
        m.start_recording();
        format(&mut m, &g).unwrap();
        let ops = m.take_recording();
        assert!(
            read_geometry(&m.state().durable_image()).is_ok(),
            "complete after the last fence"
        );
        let last_fence = ops
            .iter()
            .rposition(|o| matches!(o, crate::pmem::sim::SimOp::Fence))
            .unwrap();
        let mut before = SimMedium::new(1 << 20).state().clone();
        for op in &ops[..last_fence] {
            before.apply(op);
        }
        let err = read_geometry(&before.durable_image()).unwrap_err();
        assert!(matches!(err, FormatError::NotHerald { .. }), "{err}");
    }

    #[test]
    fn damaged_superblocks_are_refused_with_the_reason() {
        let (m, _) = formatted();
        let good = m.bytes().to_vec();
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        assert!(matches!(
            read_geometry(&bad_magic),
            Err(FormatError::NotHerald { .. })
        ));
        let mut bad_version = good.clone();
        bad_version[8] = 9;
        assert_eq!(
            read_geometry(&bad_version),
            Err(FormatError::UnsupportedVersion { found: 9 })
        );
        let mut bad_sum = good.clone();
        bad_sum[30] ^= 1;
        assert_eq!(
            read_geometry(&bad_sum),
            Err(FormatError::SuperblockChecksum)
        );
        let truncated = &good[..good.len() / 2];
        assert!(matches!(
            read_geometry(truncated),
            Err(FormatError::Truncated { .. })
        ));
        let mut bad_section = good.clone();
        bad_section[SUPERBLOCK_PAGE_BYTES as usize + 20] ^= 1;
        assert!(matches!(
            read_geometry(&bad_section),
            Err(FormatError::Section { .. })
        ));
        assert!(matches!(
            read_geometry(&[0u8; 100]),
            Err(FormatError::Truncated { .. })
        ));
    }

    #[test]
    fn impossible_configurations_are_refused_before_anything_is_written() {
        let c = |slot_bytes, payload| LogConfig {
            slot_bytes,
            payload_bytes_max: payload,
            ..LogConfig::default()
        };
        assert!(plan(1 << 20, &c(100, 1024), 1, 0).is_err());
        assert!(plan(1 << 20, &c(32, 1024), 1, 0).is_err());
        assert!(plan(64 * 1024, &c(128, 64 * 1024), 1, 0).is_err());
        assert!(plan(1 << 20, &c(64, PAYLOAD_BYTES_MAX_LIMIT), 1, 0).is_err());
        assert!(plan(1 << 20, &c(128, 1024), 1, 0).is_ok());
    }
}
