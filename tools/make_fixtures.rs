//! Regenerates the region images in `fixtures/` (see `fixtures/README.md`).
//!
//! `cargo run --example make_fixtures -- fixtures` — only when the format changes on
//! purpose; the images are frozen so that tests catch accidental format drift.

use herald::log::layout::{SLOT_HEADER_BYTES, SUPERBLOCK_CHECKSUM_OFFSET};
use herald::log::{DeadReason, EventRef, Log, LogConfig, Seq, Severity};
use herald::pmem::sim::SimMedium;
use herald::pmem::Medium;
use std::path::Path;

const REGION_BYTES: usize = 64 * 1024;
const NODE_ID: u64 = 0x4845_5241_4c44_0001;

fn config() -> LogConfig {
    LogConfig {
        slot_bytes: 64,
        reserve_slots: Some(16),
        subscription_entries: 4,
        payload_bytes_max: 256,
        dead_letter_slots: Some(0),
        rule_entries: 0,
    }
}

fn event(i: u32, payload: &[u8]) -> EventRef<'_> {
    EventRef {
        topic: b"fs.disk.error",
        severity: if i.is_multiple_of(5) {
            Severity::Critical
        } else {
            Severity::Error
        },
        source: b"fixture",
        flags: 0,
        key: b"",
        payload,
        timestamp_ns: 1_764_000_000_000_000_000 + i as u64 * 1_000_000,
        route: 0,
    }
}

fn payload(i: u32) -> Vec<u8> {
    format!("event {i}: disk sda reports {} reallocated sectors", i * 3).into_bytes()
}

/// 20 events appended one per group; the first 5 released.
fn clean() -> Log<SimMedium> {
    let mut log = Log::format(SimMedium::new(REGION_BYTES), &config(), NODE_ID).unwrap();
    let sub = log.create_subscription(b"ops", b"").unwrap();
    let mut sixth = Seq(0);
    for i in 0..20 {
        let seq = log.append(&event(i, &payload(i))).unwrap();
        if i == 5 {
            sixth = seq;
        }
    }
    log.release(&[(sub, sixth)]).unwrap();
    log
}

/// Like `clean`, on a region with a dead-letter area of 32 slots: events 5, 7 (a
/// 3-slot copy) and 9 dead-lettered for `ops`, 7 then purged, 9 with a replay
/// requested (delivery count 4); `ops` released past event 10; stopped cleanly.
fn dead_letters() -> Log<SimMedium> {
    let config = LogConfig {
        dead_letter_slots: Some(32),
        rule_entries: 0,
        ..config()
    };
    let mut log = Log::format(SimMedium::new(REGION_BYTES), &config, NODE_ID).unwrap();
    let sub = log.create_subscription(b"ops", b"").unwrap();
    let mut seqs = Vec::new();
    for i in 0..20 {
        let big = vec![b'z'; 150];
        let p = if i == 7 { big } else { payload(i) };
        seqs.push(log.append(&event(i, &p)).unwrap());
    }
    let d5 = log
        .dead_letter(sub, seqs[5], 3, DeadReason::Rejected)
        .unwrap();
    let d7 = log
        .dead_letter(sub, seqs[7], 5, DeadReason::MaxDeliveries)
        .unwrap();
    let d9 = log
        .dead_letter(sub, seqs[9], 3, DeadReason::Rejected)
        .unwrap();
    log.purge_dead(&[d7]).unwrap();
    log.set_dead_replay(d9, true, 4).unwrap();
    log.release(&[(sub, seqs[11])]).unwrap();
    assert_eq!(
        log.dead_letters().map(|d| d.id).collect::<Vec<_>>(),
        vec![d5, d9]
    );
    log.close_clean().unwrap();
    log
}

fn write(dir: &Path, name: &str, image: &[u8]) {
    std::fs::write(dir.join(name), image).unwrap();
    println!("wrote {}", dir.join(name).display());
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "fixtures".into());
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();

    let log = clean();
    write(dir, "clean.pmem", log.medium().bytes());

    write(dir, "dead-letters.pmem", dead_letters().medium().bytes());

    // torn-last-slot: a final group of one 4-slot event whose last two slots never
    // reached the medium (the power cut came before the fence).
    let mut log = clean();
    let before = log.medium().state().clone();
    log.medium_mut().start_recording();
    let big = vec![b'z'; 150];
    let seq = log.append(&event(20, &big)).unwrap();
    let ops = log.medium_mut().take_recording();
    let mut state = before;
    for op in &ops {
        if matches!(op, herald::pmem::sim::SimOp::Fence) {
            break;
        }
        state.apply(op);
    }
    let mut image = state.durable_image();
    let live = state.live();
    let slot0 = log
        .geometry()
        .slot_offset(seq.0 % log.geometry().ring.slot_count);
    // The record's first two slots reached the medium, its last two did not.
    image[slot0..slot0 + 128].copy_from_slice(&live[slot0..slot0 + 128]);
    write(dir, "torn-last-slot.pmem", &image);

    // torn-group-hole: a final group of three events where the middle one was torn
    // and the last one persisted: the middle becomes a hole, the last stays live.
    let mut log = clean();
    let before = log.medium().state().clone();
    log.medium_mut().start_recording();
    let mut batch = log.batch();
    let seqs: Vec<Seq> = (21..24)
        .map(|i| batch.push(&event(i, &payload(i))).unwrap())
        .collect();
    batch.commit().unwrap();
    let ops = log.medium_mut().take_recording();
    let mut state = before;
    for op in ops
        .iter()
        .take_while(|o| !matches!(o, herald::pmem::sim::SimOp::Fence))
    {
        state.apply(op);
    }
    let mut image = state.durable_image();
    let live = state.live();
    for (k, s) in seqs.iter().enumerate() {
        let at = log
            .geometry()
            .slot_offset(s.0 % log.geometry().ring.slot_count);
        let len = if k == 1 { SLOT_HEADER_BYTES } else { 128 };
        image[at..at + len].copy_from_slice(&live[at..at + len]);
    }
    write(dir, "torn-group-hole.pmem", &image);

    // wrapped-ring: enough appends and releases that the ring wrapped several times;
    // 40 events stay live across the wrap point.
    let mut log = Log::format(SimMedium::new(REGION_BYTES), &config(), NODE_ID).unwrap();
    let sub = log.create_subscription(b"ops", b"").unwrap();
    let mut i = 0;
    while log.tail().0 < 3 * log.geometry().ring.slot_count - 40 {
        log.append(&event(i, &payload(i))).unwrap();
        i += 1;
        let tail = log.tail();
        log.release(&[(sub, tail)]).unwrap();
    }
    for _ in 0..40 {
        log.append(&event(i, &payload(i))).unwrap();
        i += 1;
    }
    write(dir, "wrapped-ring.pmem", log.medium().bytes());

    // corrupt-slot-checksum: the clean image with one payload byte of the 10th event
    // flipped (acknowledged data that no longer checks).
    let log = clean();
    let mut image = log.medium().bytes().to_vec();
    let tenth = log.events_from(Seq::FIRST).nth(4).unwrap().seq;
    let at = log
        .geometry()
        .slot_offset(tenth.0 % log.geometry().ring.slot_count)
        + SLOT_HEADER_BYTES
        + 30;
    image[at] ^= 0x01;
    write(dir, "corrupt-slot-checksum.pmem", &image);

    // corrupt-superblock: the clean image with one byte of the node id flipped.
    let mut image = clean().medium().bytes().to_vec();
    image[24] ^= 0x80;
    write(dir, "corrupt-superblock.pmem", &image);

    // older-layout-version: the clean image claiming layout version 0, with a
    // superblock checksum that is valid for that claim.
    let mut image = clean().medium().bytes().to_vec();
    image[8..12].copy_from_slice(&0u32.to_le_bytes());
    let sum = crc32c::crc32c(&image[..SUPERBLOCK_CHECKSUM_OFFSET]);
    image[SUPERBLOCK_CHECKSUM_OFFSET..SUPERBLOCK_CHECKSUM_OFFSET + 4]
        .copy_from_slice(&sum.to_le_bytes());
    write(dir, "older-layout-version.pmem", &image);
}
