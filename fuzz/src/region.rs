//! Target `region`: opening and scanning a region image, as `herald serve`, `herald
//! check` and `herald inspect` do with whatever file they are given.
//!
//! The input is the image, in whole 8-byte words; any bytes beyond the last whole word
//! are flags (bit 0 of the first: make every checksum valid again after the mutation,
//! see `reseal`). Seeds are the committed fixtures and crash images.
//!
//! Checked: `analyze` and `Log::open` never panic and agree on whether the image is a
//! region; the start-up checks (`subscription::check::check`) never panic on what
//! either found; an opened log's head, tail and cursors are in order and its live
//! events read back; it accepts a publish (stored, or refused for want of room) and a
//! release of every subscription to the tail; and the image it leaves reopens with
//! the same tail and the new event in it.

use super::reseal::reseal;
use herald::log::{analyze, EventRef, Log, Seq, Severity};
use herald::pmem::sim::SimMedium;
use herald::subscription::check::check;

/// Checks one input.
pub fn run(data: &[u8]) {
    let whole = data.len() / 8 * 8;
    let (image, flags) = data.split_at(whole);
    let mut image = image.to_vec();
    if flags.first().is_some_and(|f| f & 1 == 1) {
        reseal(&mut image);
    }
    check_image(image);
}

/// Checks one region image (length a multiple of 8).
pub fn check_image(image: Vec<u8>) {
    let analysis = analyze(&image, &mut |_, _| {});
    if let Ok(a) = &analysis {
        check(&a.report, a.subscriptions.iter().flatten());
    }
    let opened = Log::open(SimMedium::from_image(image), &mut |_, _| {});
    assert_eq!(
        analysis.is_ok(),
        opened.is_ok(),
        "analyze and open disagree: {:?} / {:?}",
        analysis.as_ref().err(),
        opened.as_ref().err()
    );
    let Ok((log, report)) = opened else {
        return;
    };
    check(&report, log.subscriptions());
    check_opened(log);
}

/// What must hold of any log that opened, whatever image it came from.
pub fn check_opened(mut log: Log<SimMedium>) {
    let (head, tail) = (log.head().0, log.tail().0);
    assert!(head <= tail, "head {head} beyond tail {tail}");
    assert!(
        tail - head <= log.geometry().ring.slot_count,
        "more than a ring between head {head} and tail {tail}"
    );
    for s in log.subscriptions() {
        assert!(
            (head..=tail).contains(&s.cursor),
            "cursor {} of subscription {:?} outside head {head}..=tail {tail}",
            s.cursor,
            s.id
        );
    }
    let mut previous = None;
    for event in log.events_from(Seq(head)) {
        assert!((head..tail).contains(&event.seq.0), "event {:?}", event.seq);
        assert!(previous < Some(event.seq.0), "events out of order");
        previous = Some(event.seq.0);
        assert_eq!(
            log.read(event.seq),
            Some(event),
            "read agrees with the scan"
        );
    }
    let event = EventRef {
        topic: b"fuzz.region",
        severity: Severity::Critical,
        source: b"fuzz",
        flags: 0,
        key: b"",
        payload: b"after open",
        timestamp_ns: 1,
        route: 0,
    };
    let stored = match log.append(&event) {
        Ok(seq) => Some(seq),
        // Exhausted: a crafted record put the tail near 2^63.
        Err(
            herald::log::AppendError::Full { .. }
            | herald::log::AppendError::TooLarge { .. }
            | herald::log::AppendError::Exhausted { .. },
        ) => None,
        Err(e) => panic!("an opened log refused a publish: {e}"),
    };
    if let Some(seq) = stored {
        let read = log.read(seq).expect("a stored event reads back");
        assert_eq!(read.payload, event.payload);
    }
    let tail = log.tail();
    let everyone: Vec<_> = log.subscriptions().map(|s| (s.id, tail)).collect();
    log.release(&everyone)
        .expect("every subscription may be released to the tail");
    assert_eq!(log.head(), tail, "released to the tail");
    let image = log.into_medium().state().durable_image();
    let (again, _) = Log::open(SimMedium::from_image(image), &mut |_, _| {})
        .expect("what an opened log wrote opens again");
    assert_eq!(again.tail(), tail, "the tail survives a reopen");
    if let Some(seq) = stored {
        let read = again.read(seq).expect("the stored event survives a reopen");
        assert_eq!(read.payload, event.payload);
    }
}
