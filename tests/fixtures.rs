//! What recovery must make of each frozen region image in `fixtures/`.

use herald::log::{FormatError, Log, LogError, Seq};
use herald::pmem::sim::SimMedium;

fn image(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn open(name: &str) -> Result<(Log<SimMedium>, herald::log::RecoveryReport), LogError> {
    Log::open(SimMedium::from_image(image(name)), &mut |_, _| {})
}

fn payloads(log: &Log<SimMedium>) -> Vec<String> {
    log.events_from(Seq::FIRST)
        .map(|e| String::from_utf8(e.payload.to_vec()).unwrap())
        .collect()
}

fn numbered(range: impl Iterator<Item = u32>) -> Vec<String> {
    range
        .map(|i| format!("event {i}: disk sda reports {} reallocated sectors", i * 3))
        .collect()
}

#[test]
fn clean_fixture_recovers_fifteen_live_events() {
    let (log, r) = open("clean.pmem").unwrap();
    assert_eq!((r.live_events, r.hole_slots, r.corrupt_slots), (15, 0, 0));
    assert_eq!(payloads(&log), numbered(5..20));
    assert_eq!(log.subscription_by_name(b"ops").unwrap().cursor, r.head);
    // Made before the run-state word existed: unknown, which callers treat as unclean.
    assert_eq!(r.previous_stop, herald::log::PreviousStop::Unknown);
}

#[test]
fn fixtures_made_before_the_dead_letter_area_open_and_refuse_dead_letters() {
    let (mut log, r) = open("clean.pmem").unwrap();
    assert_eq!((r.dead_letters, r.dead_letter_slots), (0, 0));
    assert!(r.dead_letter_problems.is_empty());
    let sub = log.subscription_by_name(b"ops").unwrap().id;
    let seq = log.events_from(Seq::FIRST).next().unwrap().seq;
    assert_eq!(
        log.dead_letter(sub, seq, 1, herald::log::DeadReason::Rejected),
        Err(herald::log::DeadLetterError::NoArea)
    );
}

#[test]
fn torn_last_slot_fixture_drops_only_the_unacknowledged_event() {
    let (clean, _) = open("clean.pmem").unwrap();
    let (mut log, r) = open("torn-last-slot.pmem").unwrap();
    assert_eq!((r.live_events, r.hole_slots, r.corrupt_slots), (15, 0, 0));
    assert_eq!(log.tail(), clean.tail());
    assert_eq!(payloads(&log), numbered(5..20));
    // The next append reuses the torn event's position.
    let e = herald::log::EventRef {
        topic: b"t",
        severity: herald::log::Severity::Info,
        source: b"",
        flags: 0,
        key: b"",
        payload: b"after",
        timestamp_ns: 0,
        route: 0,
    };
    assert_eq!(log.append(&e).unwrap(), clean.tail());
}

#[test]
fn torn_group_fixture_has_one_hole_that_a_writable_open_seals() {
    let (log, r) = open("torn-group-hole.pmem").unwrap();
    assert_eq!(
        (r.live_events, r.hole_slots, r.corrupt_slots),
        (17, 2, 0),
        "the torn 2-slot event"
    );
    let mut expected = numbered(5..20);
    expected.extend(numbered([21, 23].into_iter()));
    assert_eq!(payloads(&log), expected);
    let (_, again) = Log::open(log.into_medium(), &mut |_, _| {}).unwrap();
    assert_eq!(
        (
            again.live_events,
            again.hole_slots,
            again.padding_slots,
            again.corrupt_slots
        ),
        (17, 0, 2, 0)
    );
}

#[test]
fn wrapped_ring_fixture_keeps_order_across_the_ring_end() {
    let (log, r) = open("wrapped-ring.pmem").unwrap();
    let slots = log.geometry().ring.slot_count;
    assert_eq!(r.live_events, 40);
    assert!(r.tail > 2 * slots);
    let seqs: Vec<u64> = log.events_from(Seq::FIRST).map(|e| e.seq.0).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert!(
        seqs.first().unwrap() % slots > seqs.last().unwrap() % slots,
        "live events straddle the ring's end"
    );
    let numbers: Vec<u32> = payloads(&log)
        .iter()
        .map(|p| p.split([' ', ':']).nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1));
}

#[test]
fn corrupt_slot_fixture_reports_damage_and_keeps_every_other_event() {
    let (log, r) = open("corrupt-slot-checksum.pmem").unwrap();
    assert_eq!(r.live_events, 14);
    assert_eq!(r.hole_slots, 0);
    assert_eq!(r.corrupt_slots, 2, "the damaged 2-slot event");
    let mut expected = numbered(5..20);
    expected.remove(4);
    assert_eq!(payloads(&log), expected);
}

#[test]
fn corrupt_superblock_fixture_is_refused() {
    let err = open("corrupt-superblock.pmem").err().unwrap();
    assert!(
        matches!(err, LogError::Format(FormatError::SuperblockChecksum)),
        "{err}"
    );
}

#[test]
fn older_layout_version_fixture_is_refused_with_the_version() {
    let err = open("older-layout-version.pmem").err().unwrap();
    assert!(
        matches!(
            err,
            LogError::Format(FormatError::UnsupportedVersion { found: 0 })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("layout version 0"));
}

#[test]
fn dead_letters_fixture_lists_its_letters_with_their_copies_and_a_clean_stop() {
    use herald::log::{DeadReason, PreviousStop};
    let (log, r) = open("dead-letters.pmem").unwrap();
    assert_eq!(r.previous_stop, PreviousStop::Clean);
    assert_eq!((r.dead_letters, r.dead_letter_slots), (2, 32));
    assert!(r.dead_letter_problems.is_empty());
    assert_eq!((r.live_events, r.corrupt_slots), (9, 0), "events 11..19");
    let ops = log.subscription_by_name(b"ops").unwrap();
    let letters: Vec<_> = log.dead_letters().copied().collect();
    assert_eq!(letters.len(), 2);
    for (d, (i, reason, count, replay)) in letters.iter().zip([
        (5, DeadReason::Rejected, 3, false),
        (9, DeadReason::Rejected, 4, true),
    ]) {
        assert_eq!((d.subscription, d.subscription_uid), (ops.id, ops.uid));
        assert_eq!(
            (d.reason, d.delivery_count, d.replay_requested),
            (reason, count, replay)
        );
        assert!(
            d.seq.0 < ops.cursor,
            "released for ops: only the copy counts now"
        );
        assert!(!d.orphan);
        let copy = log.dead_event(d.id).unwrap();
        assert_eq!(copy.seq, d.seq);
        assert_eq!(copy.topic, b"fs.disk.error");
        assert_eq!(copy.source, b"fixture");
        assert_eq!(copy.payload, numbered(i..i + 1)[0].as_bytes());
        assert_eq!(
            copy.timestamp_ns,
            1_764_000_000_000_000_000 + i as u64 * 1_000_000
        );
    }
    // The purged 3-slot letter's slots are free again.
    assert_eq!(
        log.dead_letter_slots().0,
        32 - letters.iter().map(|d| d.slots).sum::<u64>()
    );
}
