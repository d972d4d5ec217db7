//! Makes every checksum of a region image valid again after a mutation, so that a
//! fuzzer reaches the checks behind them (geometry, slot fields, cursors, dead-letter
//! headers) instead of stopping at the first checksum. Written from FORMAT.md and the
//! layout types; it never makes anything valid that only a checksum guarded.

use herald::log::format::{read_geometry, Geometry};
use herald::log::layout::{
    crc, crc_append, DeadHeader, SectionEntry, SectionHeader, SlotHeader, Superblock,
    CURSOR_CHECKSUM_OFFSET, DEAD_CHECKSUM_OFFSET, DEAD_HEADER_BYTES, DEAD_MAGIC, DEAD_MAGIC_OFFSET,
    SECTIONS_MAX, SECTION_CHECKSUM_OFFSET, SLOT_HEADER_BYTES, SLOT_KIND_EVENT, SLOT_KIND_PAD,
    SLOT_MAGIC, SUBSCRIPTION_CURSORS_OFFSET, SUBSCRIPTION_ENTRY_BYTES, SUBSCRIPTION_FREE,
    SUBSCRIPTION_STATIC_CHECKSUM_OFFSET, SUPERBLOCK_CHECKSUM_OFFSET,
};

const CURSOR_RECORD_BYTES: usize = 32;

/// Rewrites every checksum the image's own structure points at.
pub fn reseal(image: &mut [u8]) {
    reseal_sections(image);
    let Ok(g) = read_geometry(image) else {
        return;
    };
    reseal_subscriptions(image, &g);
    reseal_ring(image, &g);
    reseal_dead_letters(image, &g);
}

fn put_u32(image: &mut [u8], at: usize, value: u32) {
    if let Some(word) = image.get_mut(at..at + 4) {
        word.copy_from_slice(&value.to_le_bytes());
    }
}

fn reseal_sections(image: &mut [u8]) {
    let sb_len = std::mem::size_of::<Superblock>();
    let Some(raw) = image.get(..sb_len) else {
        return;
    };
    let sb: Superblock = bytemuck::pod_read_unaligned(raw);
    let entries: [SectionEntry; SECTIONS_MAX] = sb.sections;
    for entry in entries
        .iter()
        .take((sb.section_count as usize).min(SECTIONS_MAX))
    {
        let Ok(at) = usize::try_from(entry.offset) else {
            continue;
        };
        let header_len = std::mem::size_of::<SectionHeader>();
        let Some(raw) = image.get(at..at.saturating_add(header_len)) else {
            continue;
        };
        let sum = crc(&raw[..SECTION_CHECKSUM_OFFSET]);
        put_u32(image, at + SECTION_CHECKSUM_OFFSET, sum);
    }
    let sum = crc(&image[..SUPERBLOCK_CHECKSUM_OFFSET]);
    put_u32(image, SUPERBLOCK_CHECKSUM_OFFSET, sum);
}

fn reseal_subscriptions(image: &mut [u8], g: &Geometry) {
    let seed = g.checksum_seed();
    for index in 0..g.subscriptions.entry_count {
        let at = (g.subscriptions_data_offset + index * g.subscriptions.entry_bytes) as usize;
        let Some(raw) = image.get(at..at + SUBSCRIPTION_ENTRY_BYTES) else {
            return;
        };
        if u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) == SUBSCRIPTION_FREE {
            continue;
        }
        let sum = crc_append(seed, &raw[4..SUBSCRIPTION_STATIC_CHECKSUM_OFFSET]);
        put_u32(image, at + SUBSCRIPTION_STATIC_CHECKSUM_OFFSET, sum);
        for record in 0..2 {
            let r = at + SUBSCRIPTION_CURSORS_OFFSET + record * CURSOR_RECORD_BYTES;
            let sum = crc_append(seed, &image[r..r + CURSOR_CHECKSUM_OFFSET]);
            put_u32(image, r + CURSOR_CHECKSUM_OFFSET, sum);
        }
    }
}

fn reseal_ring(image: &mut [u8], g: &Geometry) {
    let seed = g.checksum_seed();
    let ring_end = g.ring_data_offset + g.ring.slot_count * g.ring.slot_bytes;
    for index in 0..g.ring.slot_count {
        let at = (g.ring_data_offset + index * g.ring.slot_bytes) as usize;
        let Some(raw) = image.get(at..at + SLOT_HEADER_BYTES) else {
            return;
        };
        let h: SlotHeader = bytemuck::pod_read_unaligned(raw);
        let body = match h.kind {
            _ if h.magic != SLOT_MAGIC => continue,
            SLOT_KIND_EVENT => h.body_len(),
            SLOT_KIND_PAD => 0,
            _ => continue,
        };
        let end = at + SLOT_HEADER_BYTES + body;
        if end as u64 > ring_end {
            continue;
        }
        let sum = crc_append(seed, &image[at + 4..end]);
        put_u32(image, at, sum);
    }
}

fn reseal_dead_letters(image: &mut [u8], g: &Geometry) {
    let seed = g.checksum_seed();
    let d = g.dead_letters;
    let area_end = g.dead_letters_data_offset + d.slot_count * d.slot_bytes;
    for slot in 0..d.slot_count {
        let at = (g.dead_letters_data_offset + slot * d.slot_bytes) as usize;
        if (at + DEAD_HEADER_BYTES) as u64 > area_end {
            return;
        }
        let Some(raw) = image.get(at..at + DEAD_HEADER_BYTES) else {
            return;
        };
        let h: DeadHeader = bytemuck::pod_read_unaligned(raw);
        if h.magic != DEAD_MAGIC {
            continue;
        }
        let end = at + DEAD_HEADER_BYTES + h.body_len();
        if end as u64 > area_end {
            continue;
        }
        let checksum = crc_append(seed, &image[at + DEAD_MAGIC_OFFSET..end]);
        put_u32(image, at + DEAD_CHECKSUM_OFFSET, checksum);
        if h.status != 0 {
            // The status word: state (byte 0), zero (byte 1), a 16-bit check binding
            // it to the static checksum (bytes 2..4), the delivery count (bytes 4..8).
            let unchecked = h.status & !(0xffff << 16);
            let mut input = [0u8; 12];
            input[..8].copy_from_slice(&unchecked.to_le_bytes());
            input[8..].copy_from_slice(&checksum.to_le_bytes());
            let check = u64::from(crc_append(seed, &input) & 0xffff);
            let status = unchecked | (check << 16);
            image[at..at + 8].copy_from_slice(&status.to_le_bytes());
        }
    }
}
