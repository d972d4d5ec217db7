//! The dead-letter area through the log's public API: copies, allocation, status
//! changes, purge, orphans, damage, and regions without an area.

#[path = "support/failing_fence.rs"]
mod failing_fence;
#[path = "support/seed.rs"]
mod seed;

use failing_fence::FailingFence;

use herald::log::{
    layout::DEAD_HEADER_BYTES, DeadLetterError, DeadLetterId, DeadProblemKind, DeadReason,
    EventRef, Log, LogConfig, LogError, PreviousStop, Seq, Severity, SubscriptionId,
};
use herald::pmem::sim::SimMedium;
use rand::{Rng, SeedableRng};

const DEAD_SLOTS: u64 = 64;

fn config(dead_letter_slots: u64) -> LogConfig {
    LogConfig {
        slot_bytes: 64,
        reserve_slots: Some(16),
        subscription_entries: 4,
        payload_bytes_max: 1024,
        dead_letter_slots: Some(dead_letter_slots),
        rule_entries: 0,
    }
}

/// 256 ring slots of 64 bytes and a dead-letter area of 64 slots.
fn log_with_area() -> Log<SimMedium> {
    Log::format(SimMedium::new(4096 * 6 + 256 * 64), &config(DEAD_SLOTS), 42).unwrap()
}

fn event<'a>(topic: &'a str, payload: &'a [u8]) -> EventRef<'a> {
    EventRef {
        topic: topic.as_bytes(),
        severity: Severity::Warning,
        source: b"raid0",
        flags: 0x0102,
        key: b"key-1",
        payload,
        timestamp_ns: 1_700_000_000_123,
        route: 0,
    }
}

/// The slots a dead letter of `topic` + `payload` (source `raid0`, key `key-1`) takes.
fn slots_for(topic: &str, payload: usize) -> u64 {
    ((DEAD_HEADER_BYTES + topic.len() + 5 + 5 + payload) as u64).div_ceil(64)
}

/// A payload that makes a dead letter of exactly `slots` slots (topic "t").
fn payload_for_slots(slots: u64) -> Vec<u8> {
    let len = slots as usize * 64 - DEAD_HEADER_BYTES - 1 - 5 - 5;
    assert_eq!(slots_for("t", len), slots);
    (0..len).map(|i| i as u8).collect()
}

fn reopen(log: Log<SimMedium>) -> (Log<SimMedium>, herald::log::RecoveryReport) {
    let image = log.medium().state().durable_image();
    Log::open(SimMedium::from_image(image), &mut |_, _| {}).unwrap()
}

fn dead_letter_of(
    log: &mut Log<SimMedium>,
    sub: SubscriptionId,
    payload: &[u8],
) -> Result<DeadLetterId, DeadLetterError> {
    let seq = log.append(&event("t", payload)).unwrap();
    log.dead_letter(sub, seq, 3, DeadReason::Rejected)
}

#[test]
fn a_dead_letter_keeps_its_own_copy_after_release_and_ring_reuse() {
    let mut log = log_with_area();
    let sub = log.create_subscription(b"s", b"").unwrap();
    let uid = log.subscription(sub).unwrap().uid;
    let e = event("fs.disk.error", b"sda failing");
    let seq = log.append(&e).unwrap();
    let id = log
        .dead_letter(sub, seq, 5, DeadReason::MaxDeliveries)
        .unwrap();
    // The subscription moves past the event, and the ring wraps over its slots.
    log.release(&[(sub, log.tail())]).unwrap();
    for i in 0..600u32 {
        log.append(&event("filler", &i.to_le_bytes())).unwrap();
        log.release(&[(sub, log.tail())]).unwrap();
    }
    assert!(log.read(seq).is_none(), "the ring slot was reused");
    let (log, report) = reopen(log);
    assert_eq!(report.dead_letters, 1);
    assert!(report.dead_letter_problems.is_empty());
    let d = *log.dead_letter_info(id).unwrap();
    assert_eq!(
        (d.subscription, d.subscription_uid, d.seq, d.delivery_count),
        (sub, uid, seq, 5)
    );
    assert_eq!(d.reason, DeadReason::MaxDeliveries);
    assert!(!d.replay_requested && !d.orphan);
    let copy = log.dead_event(id).unwrap();
    assert_eq!(copy.seq, seq);
    assert_eq!(
        (copy.topic, copy.source, copy.key, copy.payload),
        (e.topic, e.source, e.key, e.payload)
    );
    assert_eq!(
        (copy.severity, copy.flags, copy.timestamp_ns),
        (e.severity, e.flags, e.timestamp_ns)
    );
}

#[test]
fn events_up_to_the_payload_limit_are_copied_across_many_slots() {
    let mut log = log_with_area();
    let sub = log.create_subscription(b"s", b"").unwrap();
    let big: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
    let topic = "t".repeat(255);
    let source = [b's'; 255];
    let key = [b'k'; 64];
    let e = EventRef {
        topic: topic.as_bytes(),
        source: &source,
        key: &key,
        ..event("", &big)
    };
    let seq = log.append(&e).unwrap();
    let id = log.dead_letter(sub, seq, 1, DeadReason::Rejected).unwrap();
    let slots = log.dead_letter_info(id).unwrap().slots;
    assert_eq!(
        slots,
        ((DEAD_HEADER_BYTES + 255 + 255 + 64 + 1024) as u64).div_ceil(64)
    );
    let (log, _) = reopen(log);
    let copy = log.dead_event(id).unwrap();
    assert_eq!(copy.payload, &big[..]);
    assert_eq!(
        (copy.topic, copy.source, copy.key),
        (e.topic, e.source, e.key)
    );
    assert_eq!(log.dead_letter_slots(), (DEAD_SLOTS - slots, DEAD_SLOTS));
}

#[test]
fn allocation_is_first_fit_purge_frees_slots_and_reopen_rebuilds_the_same_state() {
    let mut log = log_with_area();
    let sub = log.create_subscription(b"s", b"").unwrap();
    let a = dead_letter_of(&mut log, sub, &payload_for_slots(2)).unwrap();
    let b = dead_letter_of(&mut log, sub, &payload_for_slots(5)).unwrap();
    let c = dead_letter_of(&mut log, sub, &payload_for_slots(2)).unwrap();
    assert_eq!((a.slot(), b.slot(), c.slot()), (0, 2, 7));
    log.purge_dead(&[b]).unwrap();
    assert_eq!(log.dead_letter_slots().0, DEAD_SLOTS - 4);
    // First fit: a 3-slot letter takes the start of the 5-slot gap, a 6-slot one does
    // not fit there and goes after `c`, a 2-slot one fills the rest of the gap.
    let d = dead_letter_of(&mut log, sub, &payload_for_slots(3)).unwrap();
    let e = dead_letter_of(&mut log, sub, &payload_for_slots(6)).unwrap();
    let f = dead_letter_of(&mut log, sub, &payload_for_slots(2)).unwrap();
    assert_eq!((d.slot(), e.slot(), f.slot()), (2, 9, 5));
    // A purged id is gone for good, even though its slot holds another record now.
    assert!(log.dead_letter_info(b).is_none());
    assert!(matches!(
        log.purge_dead(&[b]),
        Err(LogError::UnknownDeadLetter(x)) if x == b
    ));

    let listed: Vec<DeadLetterId> = log.dead_letters().map(|d| d.id).collect();
    let free = log.dead_letter_slots();
    let (mut reopened, report) = reopen(log);
    assert_eq!(
        reopened.dead_letters().map(|d| d.id).collect::<Vec<_>>(),
        listed
    );
    assert_eq!(reopened.dead_letter_slots(), free);
    assert_eq!(report.dead_letter_slots_used, DEAD_SLOTS - free.0);
    // The rebuilt bitmap makes the same choice the live one would have.
    let g = dead_letter_of(&mut reopened, sub, &payload_for_slots(4)).unwrap();
    assert_eq!(g.slot(), 15);
}

#[test]
fn a_full_or_fragmented_area_refuses_with_the_free_count() {
    let mut log = log_with_area();
    let sub = log.create_subscription(b"s", b"").unwrap();
    let payload = payload_for_slots(8);
    let ids: Vec<DeadLetterId> = (0..8)
        .map(|_| dead_letter_of(&mut log, sub, &payload).unwrap())
        .collect();
    assert_eq!(log.dead_letter_slots().0, 0);
    let err = dead_letter_of(&mut log, sub, &payload_for_slots(2)).unwrap_err();
    assert_eq!(
        err,
        DeadLetterError::Full {
            free_slots: 0,
            needed: 2
        }
    );
    // Every other letter purged: 32 slots free, but no run longer than 8.
    let every_other: Vec<DeadLetterId> = ids.iter().copied().step_by(2).collect();
    log.purge_dead(&every_other).unwrap();
    let err = dead_letter_of(&mut log, sub, &payload_for_slots(9)).unwrap_err();
    assert_eq!(
        err,
        DeadLetterError::Full {
            free_slots: 32,
            needed: 9
        }
    );
    assert_eq!(
        dead_letter_of(&mut log, sub, &payload_for_slots(8))
            .unwrap()
            .slot(),
        0
    );
}

#[test]
fn replay_status_changes_are_durable_and_bound_to_their_record() {
    let mut log = log_with_area();
    let sub = log.create_subscription(b"s", b"").unwrap();
    let id = dead_letter_of(&mut log, sub, b"x").unwrap();
    let fences = log.medium().fence_count();
    log.set_dead_replay(id, true, 3).unwrap();
    assert_eq!(log.medium().fence_count() - fences, 1, "one fence");
    let (mut log, _) = reopen(log);
    let d = log.dead_letter_info(id).unwrap();
    assert!(d.replay_requested);
    assert_eq!(d.delivery_count, 3);
    // Rejected again: the flag is cleared and the count raised.
    log.set_dead_replay(id, false, 4).unwrap();
    let (mut log, _) = reopen(log);
    let d = log.dead_letter_info(id).unwrap();
    assert_eq!((d.replay_requested, d.delivery_count), (false, 4));
    // Confirmed: purged.
    log.purge_dead(&[id]).unwrap();
    let (log, report) = reopen(log);
    assert_eq!(log.dead_letters().count(), 0);
    assert_eq!(report.dead_letters, 0);
    assert!(matches!(
        { log }.set_dead_replay(id, true, 1),
        Err(LogError::UnknownDeadLetter(_))
    ));
}

#[test]
fn bad_requests_are_errors_and_change_nothing() {
    let mut log = log_with_area();
    let sub = log.create_subscription(b"s", b"").unwrap();
    let seq = log.append(&event("t", b"x")).unwrap();
    assert_eq!(
        log.dead_letter(sub, Seq(seq.0 + 1), 1, DeadReason::Rejected),
        Err(DeadLetterError::NotFound(Seq(seq.0 + 1)))
    );
    assert_eq!(
        log.dead_letter(SubscriptionId(3), seq, 1, DeadReason::Rejected),
        Err(DeadLetterError::UnknownSubscription(SubscriptionId(3)))
    );
    let id = log.dead_letter(sub, seq, 1, DeadReason::Rejected).unwrap();
    // One unknown id among known ones: nothing is purged.
    let bogus = DeadLetterId(id.0 ^ 1);
    assert!(matches!(
        log.purge_dead(&[id, bogus]),
        Err(LogError::UnknownDeadLetter(x)) if x == bogus
    ));
    assert!(log.dead_letter_info(id).is_some());
    assert!(log.dead_event(bogus).is_none());
    let fences = log.medium().fence_count();
    log.purge_dead(&[]).unwrap();
    assert_eq!(
        log.medium().fence_count(),
        fences,
        "nothing to purge, no fence"
    );
}

#[test]
fn a_region_formatted_without_an_area_refuses_dead_letters_but_works() {
    let mut log = Log::format(SimMedium::new(4096 * 4 + 256 * 64), &config(0), 42).unwrap();
    assert_eq!(
        log.geometry().ring.slot_count,
        256,
        "geometry as before the area existed"
    );
    let sub = log.create_subscription(b"s", b"").unwrap();
    let seq = log.append(&event("t", b"x")).unwrap();
    assert_eq!(
        log.dead_letter(sub, seq, 1, DeadReason::Rejected),
        Err(DeadLetterError::NoArea)
    );
    assert_eq!(log.dead_letter_slots(), (0, 0));
    let (log, report) = reopen(log);
    assert_eq!((report.dead_letters, report.dead_letter_slots), (0, 0));
    assert_eq!(log.dead_letters().count(), 0);
}

#[test]
fn an_area_too_small_for_the_largest_event_is_refused_at_format() {
    let err = Log::format(SimMedium::new(4096 * 6 + 256 * 64), &config(20), 42)
        .err()
        .unwrap();
    assert!(err.to_string().contains("dead-letter area"), "{err}");
}

#[test]
fn deleting_a_subscription_purges_its_dead_letters_only() {
    let mut log = log_with_area();
    let a = log.create_subscription(b"a", b"").unwrap();
    let b = log.create_subscription(b"b", b"").unwrap();
    let of_a = dead_letter_of(&mut log, a, b"for a").unwrap();
    let of_b = dead_letter_of(&mut log, b, b"for b").unwrap();
    let ids = |log: &Log<SimMedium>, id| log.dead_letters_of(id).map(|d| d.id).collect::<Vec<_>>();
    assert_eq!(ids(&log, a), vec![of_a]);
    assert_eq!(ids(&log, b), vec![of_b]);
    log.delete_subscription(a).unwrap();
    assert!(log.dead_letter_info(of_a).is_none());
    assert!(log.dead_letter_info(of_b).is_some());
    // The table entry is reused by a new subscription: it does not inherit anything.
    let c = log.create_subscription(b"c", b"").unwrap();
    assert_eq!(c, a);
    assert!(ids(&log, c).is_empty());
    let (log, report) = reopen(log);
    assert_eq!(
        log.dead_letters().map(|d| d.id).collect::<Vec<_>>(),
        vec![of_b]
    );
    assert!(report.dead_letter_problems.is_empty());
}

#[test]
fn dead_letters_of_a_vanished_subscription_are_reported_as_orphans() {
    let mut log = log_with_area();
    let sub = log.create_subscription(b"s", b"").unwrap();
    let id = dead_letter_of(&mut log, sub, b"x").unwrap();
    // As if a crash came between deleting the subscription and purging its letters:
    // free the entry by hand.
    let at = log.geometry().subscription_offset(sub.0);
    let mut image = log.medium().state().durable_image();
    image[at..at + 4].fill(0);
    let analysis = herald::log::analyze(&image, &mut |_, _| {}).unwrap();
    assert_eq!(analysis.dead_letters.len(), 1);
    assert!(analysis.dead_letters[0].orphan);
    let problems = &analysis.report.dead_letter_problems;
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].kind, DeadProblemKind::Orphan);
    assert_eq!(problems[0].id, id);
    assert!(
        problems[0].problem.contains("no longer exists"),
        "{problems:?}"
    );
    // A writable open keeps it (never dropped silently); an operator purges it.
    let (mut log, report) = Log::open(SimMedium::from_image(image), &mut |_, _| {}).unwrap();
    assert_eq!(report.dead_letter_problems.len(), 1);
    assert!(log.dead_letter_info(id).unwrap().orphan);
    log.purge_dead(&[id]).unwrap();
    let (_, report) = reopen(log);
    assert!(report.dead_letter_problems.is_empty());
}

/// The image of a log holding one dead letter, and that letter's id.
fn image_with_one_letter() -> (Vec<u8>, DeadLetterId, usize) {
    let mut log = log_with_area();
    let sub = log.create_subscription(b"s", b"").unwrap();
    let id = dead_letter_of(&mut log, sub, &payload_for_slots(3)).unwrap();
    let at = log.geometry().dead_slot_offset(id.slot());
    (log.medium().state().durable_image(), id, at)
}

#[test]
fn a_damaged_record_is_reported_not_listed_and_can_be_purged() {
    // Offsets in the record: status word, stored checksum, magic, seq, payload byte.
    for (offset, what) in [
        (0, "status"),
        (9, "checksum"),
        (13, "magic"),
        (17, "seq"),
        (DEAD_HEADER_BYTES + 40, "payload"),
    ] {
        let (mut image, id, at) = image_with_one_letter();
        image[at + offset] ^= 0x10;
        let analysis = herald::log::analyze(&image, &mut |_, _| {}).unwrap();
        assert!(analysis.dead_letters.is_empty(), "{what}: still listed");
        let problems = &analysis.report.dead_letter_problems;
        assert_eq!(problems.len(), 1, "{what}: {problems:?}");
        assert_eq!(problems[0].kind, DeadProblemKind::Damaged, "{what}");
        assert_eq!(problems[0].slot, id.slot());
        let (mut log, report) = Log::open(SimMedium::from_image(image), &mut |_, _| {}).unwrap();
        assert_eq!(report.dead_letter_problems, *problems);
        // It holds its slots until purged by the id the report gives: the three of its
        // copy while the header passes its checks, else its first.
        let held = if what == "magic" { 1 } else { 3 };
        assert_eq!(problems[0].slots, held, "{what}");
        assert_eq!(log.dead_letter_slots().0, DEAD_SLOTS - held, "{what}");
        assert_eq!(log.damaged_dead_letters(), &[problems[0].id]);
        log.purge_dead(&[problems[0].id]).unwrap();
        assert_eq!(log.dead_letter_slots().0, DEAD_SLOTS, "{what}");
        let (_, report) = reopen(log);
        assert!(report.dead_letter_problems.is_empty(), "{what}");
    }
}

#[test]
fn a_damaged_record_keeps_the_slots_of_its_copy_and_new_dead_letters_go_around_it() {
    // A flipped stored checksum: the header is sane and the copy intact (the status
    // word binds the checksum its bytes give). A record written over the copy would
    // make the next scan call the slot free instead: the damage would vanish unpurged.
    let (mut image, id, at) = image_with_one_letter();
    image[at + 9] ^= 0x10;
    let (mut log, report) = Log::open(SimMedium::from_image(image), &mut |_, _| {}).unwrap();
    let damaged = report.dead_letter_problems[0].clone();
    assert!(damaged.problem.contains("stored checksum"), "{damaged:?}");
    assert_eq!((damaged.slot, damaged.slots), (id.slot(), 3));
    assert_eq!(log.damaged_dead_letter_slots(), 3);
    let sub = log.subscription_by_name(b"s").unwrap().id;
    for _ in 0..4 {
        let new = dead_letter_of(&mut log, sub, &payload_for_slots(3)).unwrap();
        assert!(
            new.slot() + 3 <= id.slot() || new.slot() >= id.slot() + 3,
            "a new record at slot {} over the damaged one's slots",
            new.slot()
        );
    }
    let (mut log, report) = reopen(log);
    assert_eq!(log.damaged_dead_letters(), &[damaged.id]);
    assert!(report.dead_letter_problems.contains(&damaged), "{report:?}");
    log.purge_dead(&[damaged.id]).unwrap();
    assert_eq!(log.damaged_dead_letter_slots(), 0);
}

#[test]
fn random_damage_to_the_area_never_panics_open_or_analyze() {
    let (clean, _, _) = image_with_one_letter();
    let g = herald::log::format::read_geometry(&clean).unwrap();
    let start = g.dead_letters_data_offset as usize;
    let len = (g.dead_letters.slot_count * g.dead_letters.slot_bytes) as usize;
    let seed = seed::Seed::from_env(
        "HERALD_DEAD_LETTERS_SEED",
        7,
        "cargo test --test dead_letters random_damage",
    );
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed.value);
    let (mut damaged, mut intact) = (0, 0);
    for round in 0..400 {
        let mut image = clean.clone();
        match round % 3 {
            // A few flipped bytes.
            0 => {
                for _ in 0..rng.gen_range(1..8) {
                    image[start + rng.gen_range(0..len)] ^= 1 << rng.gen_range(0..8);
                }
            }
            // Random words (plausible status values included).
            1 => {
                for _ in 0..rng.gen_range(1..32) {
                    let w = rng.gen_range(0..len / 8) * 8;
                    let v: u64 = if rng.gen_bool(0.5) {
                        rng.gen_range(0..4) | (rng.gen::<u64>() << 16)
                    } else {
                        rng.gen()
                    };
                    image[start + w..start + w + 8].copy_from_slice(&v.to_le_bytes());
                }
            }
            // The whole area random.
            _ => rng.fill(&mut image[start..start + len]),
        }
        let analysis = herald::log::analyze(&image, &mut |_, _| {}).unwrap();
        let (mut log, report) = Log::open(SimMedium::from_image(image), &mut |_, _| {}).unwrap();
        assert_eq!(report.dead_letters, analysis.dead_letters.len() as u64);
        damaged += (!log.damaged_dead_letters().is_empty()) as u32;
        intact += (report.dead_letters == 1) as u32;
        for d in analysis.dead_letters.iter() {
            assert!(log.dead_event(d.id).is_some());
        }
        // Whatever was found can be purged, and then the area is empty again.
        let mut all: Vec<DeadLetterId> = log.dead_letters().map(|d| d.id).collect();
        all.extend_from_slice(log.damaged_dead_letters());
        log.purge_dead(&all).unwrap();
        assert_eq!(log.dead_letter_slots().0, DEAD_SLOTS, "round {round}");
    }
    assert!(
        damaged > 20 && intact > 20,
        "damaged {damaged}, intact {intact}"
    );
}

#[test]
fn a_failed_log_makes_no_dead_letters() {
    let mut log = log_with_area();
    let sub = log.create_subscription(b"s", b"").unwrap();
    let seq = log.append(&event("t", b"x")).unwrap();
    let id = log.dead_letter(sub, seq, 1, DeadReason::Rejected).unwrap();
    log.close_clean().unwrap();
    assert!(matches!(
        log.dead_letter(sub, seq, 1, DeadReason::Rejected),
        Err(DeadLetterError::Failed(_))
    ));
    assert!(matches!(log.purge_dead(&[id]), Err(LogError::Failed(_))));
    assert!(matches!(
        log.set_dead_replay(id, true, 2),
        Err(LogError::Failed(_))
    ));
    let (log, report) = reopen(log);
    assert_eq!(report.previous_stop, PreviousStop::Clean);
    assert!(log.dead_letter_info(id).is_some());
}

#[test]
fn a_failed_fence_while_dead_lettering_leaves_the_log_failed_and_no_record() {
    let fail = std::rc::Rc::new(std::cell::Cell::new(false));
    let medium = FailingFence {
        inner: SimMedium::new(4096 * 6 + 256 * 64),
        fail: fail.clone(),
    };
    let mut log = Log::format(medium, &config(DEAD_SLOTS), 42).unwrap();
    let sub = log.create_subscription(b"s", b"").unwrap();
    let seq = log.append(&event("t", b"x")).unwrap();
    let kept = log.dead_letter(sub, seq, 1, DeadReason::Rejected).unwrap();
    fail.set(true);
    let err = log
        .dead_letter(sub, seq, 2, DeadReason::Rejected)
        .unwrap_err();
    assert!(
        matches!(&err, DeadLetterError::Failed(why) if why.contains("injected EIO")),
        "{err}"
    );
    fail.set(false);
    // The log stays failed: nothing more is written, whatever the medium does now.
    assert!(matches!(
        log.dead_letter(sub, seq, 3, DeadReason::Rejected),
        Err(DeadLetterError::Failed(_))
    ));
    assert!(matches!(log.purge_dead(&[kept]), Err(LogError::Failed(_))));
    assert!(matches!(log.close_clean(), Err(LogError::Failed(_))));
    assert_eq!(log.dead_letters().count(), 1);
    let image = log.into_medium().inner.state().durable_image();
    let (log, report) = Log::open(SimMedium::from_image(image), &mut |_, _| {}).unwrap();
    assert_eq!(
        log.dead_letters().map(|d| d.id).collect::<Vec<_>>(),
        vec![kept]
    );
    assert_eq!(
        report.previous_stop,
        PreviousStop::Unclean,
        "never closed cleanly"
    );
}
