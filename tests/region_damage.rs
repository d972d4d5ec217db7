//! Region images with fields no herald writes, their checksums made valid again (so the
//! checks behind the checksums are what is tested): each opens as damage or is refused
//! with a clear error, never a panic, and an opened one still takes a publish and a
//! release and reopens (the region fuzz target's own check, `region::check_image`).
//! The region fuzz target found the first of these; the rest are its neighbours.

// Only `check_image` is used here.
#[allow(dead_code)]
#[path = "../fuzz/src/region.rs"]
mod region;
#[path = "../fuzz/src/reseal.rs"]
mod reseal;

use herald::log::format::read_geometry;
use herald::log::layout::{
    SectionHeader, SlotHeader, SECTION_HEADER_PAGE_BYTES, SEQ_LIMIT, SLOT_HEADER_BYTES,
};
use herald::log::{FormatError, Log, LogError, Seq, Severity};
use herald::pmem::sim::SimMedium;
use reseal::reseal;

const CLEAN: &[u8] = include_bytes!("../fixtures/clean.pmem");

fn open(image: Vec<u8>) -> Result<Log<SimMedium>, LogError> {
    Log::open(SimMedium::from_image(image), &mut |_, _| {}).map(|(log, _)| log)
}

/// The slot header at ring position `seq`, with where it lies.
fn slot_header(image: &[u8], seq: u64) -> (usize, SlotHeader) {
    let g = read_geometry(image).expect("a fixture");
    let at = (g.ring_data_offset + (seq % g.ring.slot_count) * g.ring.slot_bytes) as usize;
    (
        at,
        bytemuck::pod_read_unaligned(&image[at..at + SLOT_HEADER_BYTES]),
    )
}

/// The newest record of a fixture: the last event before its tail.
fn newest_seq(image: &[u8]) -> u64 {
    let log = open(image.to_vec()).expect("a fixture");
    let newest = log.events_from(log.head()).last().expect("live events");
    newest.seq.0
}

#[test]
fn a_subscription_uid_at_u64_max_opens_and_another_subscription_can_be_made() {
    let g = read_geometry(CLEAN).expect("a fixture");
    // The entry's `id` (its uid) is the 8 bytes after `state` and `name_len`.
    let at = g.subscriptions_data_offset as usize + 8;
    for resealed in [true, false] {
        let mut image = CLEAN.to_vec();
        image[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        if resealed {
            reseal(&mut image);
        }
        let mut log = open(image.clone()).expect("a uid is no reason to refuse a region");
        let ops = log.subscription_by_name(b"ops").expect("listed");
        // Resealed, the entry is valid; else its checksum fails and it is damaged.
        assert_eq!(ops.uid, u64::MAX);
        assert_eq!(ops.damage.is_some(), !resealed);
        log.create_subscription(b"audit", b"")
            .expect("a free entry takes a subscription");
        region::check_image(image);
    }
}

#[test]
fn a_record_whose_group_offset_reaches_past_its_seq_is_not_a_valid_record() {
    let seq = newest_seq(CLEAN);
    let (at, mut h) = slot_header(CLEAN, seq);
    h.group_offset = (seq + 1) as u32;
    let mut image = CLEAN.to_vec();
    image[at..at + SLOT_HEADER_BYTES].copy_from_slice(bytemuck::bytes_of(&h));
    reseal(&mut image);
    let (log, report) =
        Log::open(SimMedium::from_image(image.clone()), &mut |_, _| {}).expect("opens");
    assert!(
        log.read(Seq(seq)).is_none(),
        "the record is not read as an event"
    );
    assert!(
        report.hole_slots + report.corrupt_slots > 0 || log.tail().0 <= seq,
        "the record is reported or lies beyond the tail: {report:?}"
    );
    region::check_image(image);
}

#[test]
fn a_record_at_or_past_the_seq_limit_is_damage_and_one_just_below_it_stops_appends() {
    let seq = newest_seq(CLEAN);
    let g = read_geometry(CLEAN).expect("a fixture");
    let n = g.ring.slot_count;
    let index = seq % n;
    // Positions with the record's own slot index: the first at or past the limit, and
    // the last whose record ends before it.
    let past = SEQ_LIMIT.div_ceil(n) * n + index;
    let below = (SEQ_LIMIT / n - 1) * n + index;
    for (claimed, valid) in [
        (past, false),
        (below, true),
        (u64::MAX - n + 1 + index, false),
    ] {
        let (at, mut h) = slot_header(CLEAN, seq);
        h.seq = claimed;
        h.group_offset = 0;
        let mut image = CLEAN.to_vec();
        image[at..at + SLOT_HEADER_BYTES].copy_from_slice(bytemuck::bytes_of(&h));
        reseal(&mut image);
        let mut log = open(image.clone()).expect("opens");
        assert_eq!(
            log.tail().0 > SEQ_LIMIT / 2,
            valid,
            "seq {claimed}: tail {}",
            log.tail().0
        );
        if valid {
            let e = herald::log::EventRef {
                topic: b"fs.full",
                severity: Severity::Error,
                source: b"test",
                flags: 0,
                key: b"",
                payload: &[b'x'; 200],
                timestamp_ns: 1,
                route: 0,
            };
            // Appends, each released at once so the ring never fills, until one would
            // cross the limit: within two laps of the ring.
            let refused = (0..2 * n).find_map(|_| {
                log.append(&e).err().or_else(|| {
                    let tail = log.tail();
                    let all: Vec<_> = log.subscriptions().map(|s| (s.id, tail)).collect();
                    log.release(&all).expect("released to the tail");
                    None
                })
            });
            assert!(
                matches!(refused, Some(herald::log::AppendError::Exhausted { .. })),
                "{refused:?}"
            );
        }
        region::check_image(image);
    }
}

/// Sets one field of the section header of `kind`, and its superblock entry when the
/// field is the offset or length both hold.
fn edit_section(image: &mut [u8], kind: u32, edit: impl Fn(&mut SectionHeader)) {
    let entries = 64;
    for i in 0..8 {
        let e = entries + 32 * i;
        if u32::from_le_bytes(image[e..e + 4].try_into().expect("4 bytes")) != kind {
            continue;
        }
        let at = u64::from_le_bytes(image[e + 8..e + 16].try_into().expect("8 bytes")) as usize;
        let size = std::mem::size_of::<SectionHeader>();
        let mut h: SectionHeader = bytemuck::pod_read_unaligned(&image[at..at + size]);
        edit(&mut h);
        image[at..at + size].copy_from_slice(bytemuck::bytes_of(&h));
        image[e + 16..e + 24].copy_from_slice(&h.len_bytes.to_le_bytes());
    }
}

#[test]
fn a_subscription_table_reaching_into_the_ring_is_refused() {
    let g = read_geometry(CLEAN).expect("a fixture");
    let subs_header = g.subscriptions_data_offset - SECTION_HEADER_PAGE_BYTES;
    let mut image = CLEAN.to_vec();
    edit_section(&mut image, 2, |h| {
        h.len_bytes = g.region_bytes - subs_header;
        // As many entries as the longer section holds: they reach into the ring.
        h.params[1] = (h.len_bytes - SECTION_HEADER_PAGE_BYTES) / h.params[0];
    });
    reseal(&mut image);
    match open(image.clone()) {
        Err(LogError::Format(FormatError::Section { kind: _, reason })) => {
            assert!(reason.contains("overlap"), "{reason}")
        }
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("a subscription table over the ring opened"),
    }
    region::check_image(image);
}

#[test]
fn a_ring_reserve_that_overflows_is_refused() {
    let mut image = CLEAN.to_vec();
    edit_section(&mut image, 1, |h| h.params[2] = u64::MAX);
    reseal(&mut image);
    assert!(matches!(
        open(image.clone()),
        Err(LogError::Format(FormatError::Section { kind: 1, .. }))
    ));
    region::check_image(image);
}
