//! Target `dead_letters`: a region whose dead-letter area holds arbitrary bytes,
//! opened, listed and changed.
//!
//! The base region is the `dead-letters.pmem` fixture with more made in setup: a second
//! subscription (`audit`), a multi-slot copy, dead letters of both subscriptions, one
//! with a replay requested. The input is: one flags byte (bit 0: make the checksums
//! valid again after the overlay, see `reseal`), then bytes laid over the dead-letter
//! area from its first slot (fewer leave the rest as it was), then a script of
//! operations on what the open found.
//!
//! Checked: the open and the start-up checks never panic; every listed dead letter's
//! copy reads back with fields a valid event has; `purge_dead`, `set_dead_replay`,
//! `dead_letter` (a live event into the area) and `delete_subscription` succeed on what
//! the log lists and fail cleanly on what it does not; and after every change the
//! region reopens to the same dead letters the log holds in memory.

use super::bytes::Choices;
use herald::log::{DeadLetter, DeadLetterId, DeadReason, Log, LogError, Seq, SubscriptionId};
use herald::pmem::sim::SimMedium;
use herald::subscription::check::check;
use std::sync::OnceLock;

/// The committed fixture the base region starts from.
const FIXTURE: &[u8] = include_bytes!("../../fixtures/dead-letters.pmem");
/// Most operations one input runs.
const OPS_MAX: usize = 32;

/// The base image, and where its dead-letter area lies in it.
struct Base {
    image: Vec<u8>,
    area: std::ops::Range<usize>,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let (mut log, _) =
            Log::open(SimMedium::from_image(FIXTURE.to_vec()), &mut |_, _| {}).expect("fixture");
        let ops = log
            .subscription_by_name(b"ops")
            .expect("fixture has ops")
            .id;
        let audit = log.create_subscription(b"audit", b"").expect("room");
        let big = [b'x'; 150];
        let events: [(&[u8], &[u8]); 3] = [(b"", b"small"), (b"", &big), (b"key-1", b"keyed")];
        let mut seqs = Vec::new();
        for (key, payload) in events {
            let event = herald::log::EventRef {
                topic: b"fs.fuzz",
                severity: herald::log::Severity::Error,
                source: b"fuzz",
                flags: 7,
                key,
                payload,
                timestamp_ns: 11,
                route: 0,
            };
            seqs.push(log.append(&event).expect("room in the fixture's ring"));
        }
        log.dead_letter(audit, seqs[0], 2, DeadReason::Rejected)
            .expect("room");
        let replayed = log
            .dead_letter(audit, seqs[1], 5, DeadReason::MaxDeliveries)
            .expect("room");
        log.set_dead_replay(replayed, true, 5).expect("known");
        log.dead_letter(ops, seqs[2], 1, DeadReason::Rejected)
            .expect("room");
        log.close_clean().expect("clean stop");
        let g = *log.geometry();
        let start = g.dead_letters_data_offset as usize;
        let len = (g.dead_letters.slot_count * g.dead_letters.slot_bytes) as usize;
        Base {
            image: log.into_medium().state().durable_image(),
            area: start..start + len,
        }
    })
}

/// The base region's dead-letter area as an input (flags 0, no operations): a seed.
pub fn seed() -> Vec<u8> {
    let base = base();
    let mut input = vec![0];
    input.extend_from_slice(&base.image[base.area.clone()]);
    input
}

/// Checks one input.
pub fn run(data: &[u8]) {
    let base = base();
    let mut choices = Choices::new(data);
    let flags = choices.u8();
    let overlay = choices.bytes(base.area.len());
    let mut image = base.image.clone();
    image[base.area.start..base.area.start + overlay.len()].copy_from_slice(overlay);
    if flags & 1 == 1 {
        super::reseal::reseal(&mut image);
    }
    let opened = Log::open(SimMedium::from_image(image), &mut |_, _| {});
    // Only the dead-letter area differs from a region that opens.
    let (mut log, report) = opened.expect("a damaged dead-letter area never refuses the open");
    check(&report, log.subscriptions());
    check_listed(&log);
    for _ in 0..OPS_MAX {
        if choices.is_empty() {
            break;
        }
        operate(&mut log, &mut choices);
        check_listed(&log);
    }
    reopen_agrees(log);
}

/// Every listed dead letter reads back, and the counts add up.
fn check_listed(log: &Log<SimMedium>) {
    let (free, total) = log.dead_letter_slots();
    let mut used = 0;
    for d in log.dead_letters() {
        assert_eq!(log.dead_letter_info(d.id), Some(d));
        let event = log
            .dead_event(d.id)
            .expect("a listed dead letter has its copy");
        assert_eq!(event.seq, d.seq);
        assert!(!event.topic.is_empty(), "a copy with an empty topic");
        assert!(event.key.len() <= herald::protocol::KEY_BYTES_MAX);
        assert!(d.slots >= 1);
        used += d.slots;
    }
    used += log.damaged_dead_letter_slots();
    assert!(
        log.damaged_dead_letter_slots() >= log.damaged_dead_letters().len() as u64,
        "a damaged record holds at least its first slot"
    );
    assert_eq!(free + used, total, "free {free} + used {used} slots");
}

/// One operation, chosen by the script.
fn operate(log: &mut Log<SimMedium>, choices: &mut Choices<'_>) {
    let letters: Vec<DeadLetter> = log.dead_letters().copied().collect();
    let damaged: Vec<DeadLetterId> = log.damaged_dead_letters().to_vec();
    let known = |id: DeadLetterId| letters.iter().any(|d| d.id == id) || damaged.contains(&id);
    match choices.below(5) {
        0 => {
            let id = pick_id(choices, &letters, &damaged);
            let result = log.purge_dead(&[id]);
            if known(id) {
                result.expect("purging a listed dead letter");
                assert!(!log.dead_letters().any(|d| d.id == id), "still listed");
                assert!(!log.damaged_dead_letters().contains(&id), "still damaged");
            } else {
                assert!(matches!(result, Err(LogError::UnknownDeadLetter(_))));
            }
        }
        1 => {
            let id = pick_id(choices, &letters, &damaged);
            let requested = choices.bool();
            let count = choices.u32();
            let result = log.set_dead_replay(id, requested, count);
            if letters.iter().any(|d| d.id == id) {
                result.expect("a listed dead letter takes a replay request");
                let d = log.dead_letter_info(id).expect("still there");
                assert_eq!((d.replay_requested, d.delivery_count), (requested, count));
            } else {
                assert!(matches!(result, Err(LogError::UnknownDeadLetter(_))));
            }
        }
        2 => {
            let subs: Vec<SubscriptionId> = log.subscriptions().map(|s| s.id).collect();
            let Some(&sub) = subs.get(choices.below(subs.len())) else {
                return;
            };
            let live: Vec<Seq> = log.events_from(log.head()).map(|e| e.seq).collect();
            let seq = live
                .get(choices.below(live.len().max(1)))
                .copied()
                .unwrap_or(Seq(choices.u64()));
            let reason = if choices.bool() {
                DeadReason::Rejected
            } else {
                DeadReason::MaxDeliveries
            };
            let count = choices.u32();
            match log.dead_letter(sub, seq, count, reason) {
                Ok(id) => {
                    let d = log.dead_letter_info(id).expect("just made");
                    assert_eq!((d.seq, d.delivery_count), (seq, count));
                    let copy = log.dead_event(id).expect("copy");
                    let original = log.read(seq).expect("the original is still live");
                    assert_eq!(
                        (copy.topic, copy.source, copy.key, copy.payload),
                        (
                            original.topic,
                            original.source,
                            original.key,
                            original.payload
                        )
                    );
                }
                Err(herald::log::DeadLetterError::Full { .. }) => {}
                Err(herald::log::DeadLetterError::NotFound(_)) => {
                    assert!(!live.contains(&seq), "a live event was not found")
                }
                Err(e) => panic!("dead-lettering a live event: {e}"),
            }
        }
        3 => {
            let subs: Vec<SubscriptionId> = log.subscriptions().map(|s| s.id).collect();
            if let Some(&sub) = subs.get(choices.below(subs.len())) {
                log.delete_subscription(sub)
                    .expect("deleting a listed subscription");
                assert_eq!(log.dead_letters_of(sub).count(), 0);
            }
        }
        _ => {
            let image = log.medium().state().durable_image();
            let (again, report) =
                Log::open(SimMedium::from_image(image), &mut |_, _| {}).expect("reopen");
            check(&report, again.subscriptions());
            same_dead_letters(log, &again);
            *log = again;
        }
    }
}

/// A listed id, a damaged one, or one made up.
fn pick_id(
    choices: &mut Choices<'_>,
    letters: &[DeadLetter],
    damaged: &[DeadLetterId],
) -> DeadLetterId {
    let which = choices.u8();
    match which % 3 {
        0 if !letters.is_empty() => letters[usize::from(which / 3) % letters.len()].id,
        1 if !damaged.is_empty() => damaged[usize::from(which / 3) % damaged.len()],
        _ => DeadLetterId(choices.u64()),
    }
}

/// The dead letters a reopen finds are those the log held.
fn same_dead_letters(before: &Log<SimMedium>, after: &Log<SimMedium>) {
    let key = |d: &DeadLetter| {
        (
            d.id,
            d.subscription,
            d.subscription_uid,
            d.seq,
            d.delivery_count,
            d.reason,
            d.replay_requested,
            d.slots,
            d.orphan,
        )
    };
    let was: Vec<_> = before.dead_letters().map(key).collect();
    let is: Vec<_> = after.dead_letters().map(key).collect();
    assert_eq!(was, is, "the dead letters after a reopen");
    let mut was = before.damaged_dead_letters().to_vec();
    let mut is = after.damaged_dead_letters().to_vec();
    was.sort_unstable();
    is.sort_unstable();
    assert_eq!(was, is, "the damaged records after a reopen");
}

fn reopen_agrees(log: Log<SimMedium>) {
    let image = log.medium().state().durable_image();
    let (again, _) = Log::open(SimMedium::from_image(image), &mut |_, _| {}).expect("reopen");
    same_dead_letters(&log, &again);
}
