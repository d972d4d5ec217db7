//! Behaviour of the log through its public API, on simulated and real file regions.

#[path = "support/failing_fence.rs"]
mod failing_fence;

use failing_fence::FailingFence;

use herald::log::{AppendError, EventRef, Log, LogConfig, LogError, Seq, Severity, StoreOptions};
use herald::pmem::sim::SimMedium;

fn small_config() -> LogConfig {
    LogConfig {
        slot_bytes: 64,
        reserve_slots: Some(16),
        subscription_entries: 4,
        payload_bytes_max: 1024,
        dead_letter_slots: Some(0),
        rule_entries: 0,
    }
}

/// A log with 256 slots of 64 bytes.
fn small_log() -> Log<SimMedium> {
    Log::format(SimMedium::new(4096 * 4 + 256 * 64), &small_config(), 42).unwrap()
}

fn event<'a>(topic: &'a str, severity: Severity, payload: &'a [u8]) -> EventRef<'a> {
    EventRef {
        topic: topic.as_bytes(),
        severity,
        source: b"test",
        flags: 3,
        key: b"",
        payload,
        timestamp_ns: 99,
        route: 0,
    }
}

#[test]
fn appended_events_read_back_field_for_field() {
    let mut log = small_log();
    let _sub = log.create_subscription(b"s", b"spec").unwrap();
    let e = EventRef {
        topic: b"fs.disk.error",
        severity: Severity::Error,
        source: b"raid0",
        flags: 7,
        key: b"k-1",
        payload: b"sda failing",
        timestamp_ns: 12345,
        route: 0,
    };
    let seq = log.append(&e).unwrap();
    assert_eq!(seq, Seq::FIRST);
    let got = log.read(seq).unwrap();
    assert_eq!(got.topic, e.topic);
    assert_eq!(got.source, e.source);
    assert_eq!(got.key, e.key);
    assert_eq!(got.payload, e.payload);
    assert_eq!(got.severity, Severity::Error);
    assert_eq!(got.flags, 7);
    assert_eq!(got.timestamp_ns, 12345);
    assert!(log.read(Seq(seq.0 + 1)).is_none());
}

#[test]
fn large_events_span_contiguous_slots_and_sequence_numbers_skip_accordingly() {
    let mut log = small_log();
    log.create_subscription(b"s", b"").unwrap();
    let big = vec![0xabu8; 1000];
    let a = log.append(&event("big", Severity::Info, &big)).unwrap();
    let b = log.append(&event("small", Severity::Info, b"x")).unwrap();
    let span = log.read(a).unwrap().span as u64;
    assert_eq!(span, (40 + 3 + 4 + 1000u64).div_ceil(64));
    assert_eq!(b.0, a.0 + span);
    assert_eq!(log.read(a).unwrap().payload, &big[..]);
}

#[test]
fn a_group_commit_fences_once_for_many_events() {
    let mut log = small_log();
    log.create_subscription(b"s", b"").unwrap();
    let fences_before = log.medium().fence_count();
    let mut batch = log.batch();
    for i in 0..10u8 {
        batch.push(&event("t", Severity::Info, &[i])).unwrap();
    }
    let committed = batch.commit().unwrap().unwrap();
    assert_eq!(committed.count, 10);
    assert_eq!(log.medium().fence_count() - fences_before, 1);
    let payloads: Vec<u8> = log
        .events_from(committed.first)
        .map(|e| e.payload[0])
        .collect();
    assert_eq!(payloads, (0..10).collect::<Vec<_>>());
}

#[test]
fn a_full_ring_refuses_ordinary_events_but_keeps_the_reserve_for_critical_ones() {
    let mut log = small_log();
    let sub = log.create_subscription(b"stuck", b"").unwrap();
    let mut stored = 0;
    let err = loop {
        match log.append(&event("t", Severity::Error, b"payload")) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            err,
            AppendError::Full {
                reserve_slots: 16,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        log.used_slots(),
        256 - 16,
        "ordinary events fill all but the reserve"
    );
    assert_eq!(stored, 240);
    // Critical events still get in, until the reserve is gone too.
    let crit = log
        .append(&event(
            "resources.exhausted",
            Severity::Critical,
            b"ring full",
        ))
        .unwrap();
    assert_eq!(log.read(crit).unwrap().severity, Severity::Critical);
    let last_err = loop {
        if let Err(e) = log.append(&event("x", Severity::Alert, b"")) {
            break e;
        }
    };
    assert!(matches!(last_err, AppendError::Full { .. }), "{last_err}");
    assert_eq!(log.used_slots(), 256, "{last_err}");
    // Nothing acknowledged was overwritten: every event is still readable.
    // 240 ordinary + 1 critical of 2 slots + 14 alerts.
    assert_eq!(log.events_from(Seq::FIRST).count(), 255);
    // Releasing makes room again.
    let tail = log.tail();
    log.release(&[(sub, tail)]).unwrap();
    assert_eq!(log.used_slots(), 0);
    log.append(&event("t", Severity::Info, b"again")).unwrap();
}

#[test]
fn the_ring_wraps_with_padding_and_released_slots_are_reused() {
    let mut log = small_log();
    let sub = log.create_subscription(b"s", b"").unwrap();
    let payload = vec![1u8; 300]; // 6 slots each: 256 is not a multiple, so padding appears
    let mut last = Seq(0);
    for _ in 0..200 {
        let seq = log
            .append(&event("wrap", Severity::Info, &payload))
            .unwrap();
        assert!(seq > last);
        last = seq;
        log.release(&[(sub, log.tail())]).unwrap();
    }
    assert!(last.0 > 256 * 4, "the ring wrapped several times");
    assert_eq!(log.read(last).unwrap().payload, &payload[..]);
    let (log2, report) = Log::open(log.into_medium(), &mut |_, _| {}).unwrap();
    assert_eq!(report.head, report.tail);
    assert_eq!(report.live_events, 0);
    assert_eq!(log2.tail().0, last.0 + 6);
}

#[test]
fn release_keeps_events_until_every_subscription_has_passed_them() {
    let mut log = small_log();
    let a = log.create_subscription(b"a", b"").unwrap();
    let b = log.create_subscription(b"b", b"").unwrap();
    let s1 = log.append(&event("t", Severity::Info, b"1")).unwrap();
    let s2 = log.append(&event("t", Severity::Info, b"2")).unwrap();
    log.release(&[(a, log.tail())]).unwrap();
    assert_eq!(log.head(), s1, "b has not confirmed");
    log.release(&[(b, s2)]).unwrap();
    assert_eq!(log.head(), s2);
    let (reopened, report) = Log::open(log.into_medium(), &mut |_, _| {}).unwrap();
    assert_eq!(report.live_events, 1);
    assert_eq!(reopened.head(), s2);
    assert_eq!(
        reopened.subscription_by_name(b"a").unwrap().cursor,
        reopened.tail().0
    );
}

#[test]
fn invalid_cursors_and_events_are_errors_not_panics() {
    let mut log = small_log();
    let sub = log.create_subscription(b"s", b"").unwrap();
    let big = vec![0u8; 300];
    let s1 = log.append(&event("t", Severity::Info, &big)).unwrap();
    log.append(&event("t", Severity::Info, b"")).unwrap();
    let inside = Seq(s1.0 + 1);
    assert!(matches!(
        log.release(&[(sub, inside)]),
        Err(LogError::BadCursor { .. })
    ));
    assert!(matches!(
        log.release(&[(sub, Seq(10_000))]),
        Err(LogError::BadCursor { .. })
    ));
    log.release(&[(sub, log.tail())]).unwrap();
    assert!(matches!(
        log.release(&[(sub, s1)]),
        Err(LogError::BadCursor { .. })
    ));
    let too_big = vec![0u8; 1025];
    assert!(matches!(
        log.append(&event("t", Severity::Info, &too_big)),
        Err(AppendError::TooLarge { .. })
    ));
    assert!(matches!(
        log.append(&event("", Severity::Info, b"")),
        Err(AppendError::Invalid(_))
    ));
    let long_key = [b'k'; 65];
    let e = EventRef {
        key: &long_key,
        ..event("t", Severity::Info, b"")
    };
    assert!(matches!(log.append(&e), Err(AppendError::Invalid(_))));
    assert!(
        log.create_subscription(b"s", b"").is_err(),
        "duplicate name"
    );
    assert!(log.create_subscription(b"", b"").is_err());
}

#[test]
fn an_abandoned_batch_leaves_no_trace() {
    let mut log = small_log();
    log.create_subscription(b"s", b"").unwrap();
    let kept = log.append(&event("t", Severity::Info, b"kept")).unwrap();
    {
        let mut batch = log.batch();
        batch.push(&event("t", Severity::Info, b"dropped")).unwrap();
    }
    let next = log.append(&event("t", Severity::Info, b"next")).unwrap();
    let payloads: Vec<&[u8]> = log.events_from(kept).map(|e| e.payload).collect();
    assert_eq!(payloads, vec![&b"kept"[..], &b"next"[..]]);
    assert_eq!(next.0, kept.0 + 1);
}

#[test]
fn recovery_reports_what_it_found_on_a_region_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("region.pmem");
    let mut log = herald::log::create_file(&path, 1 << 20, &StoreOptions::default(), 7).unwrap();
    log.create_subscription(b"s", b"").unwrap();
    for i in 0..100u32 {
        log.append(&event("fs.disk.error", Severity::Error, &i.to_le_bytes()))
            .unwrap();
    }
    drop(log);
    let (log, report) = herald::log::open_path(&path, &Default::default(), &mut |_, _| {}).unwrap();
    assert_eq!(report.live_events, 100);
    assert_eq!(report.hole_slots + report.corrupt_slots, 0);
    assert_eq!(report.bytes_scanned, log.geometry().ring.slot_count * 128);
    let last = log.events_from(Seq::FIRST).last().unwrap();
    assert_eq!(last.payload, 99u32.to_le_bytes());
    // A region is never reformatted silently.
    drop(log);
    let err = herald::log::create_file(&path, 1 << 20, &StoreOptions::default(), 7)
        .err()
        .unwrap();
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[test]
fn garbage_files_are_refused_with_the_path_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, vec![b'x'; 128 * 1024]).unwrap();
    let err = herald::log::open_path(&path, &Default::default(), &mut |_, _| {})
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(
        text.contains("notes.txt") && text.contains("not a herald region"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        vec![b'x'; 128 * 1024],
        "never modified"
    );
}

#[test]
fn rolling_back_to_a_mark_undoes_only_the_pushes_after_it() {
    let mut log = small_log();
    log.create_subscription(b"s", b"").unwrap();
    let mut batch = log.batch();
    let kept = batch.push(&event("t", Severity::Info, b"kept")).unwrap();
    let mark = batch.mark();
    batch
        .push(&event("t", Severity::Info, b"undone 1"))
        .unwrap();
    batch
        .push(&event("t", Severity::Info, &[1u8; 300]))
        .unwrap();
    batch.rollback_to(mark);
    let after = batch.push(&event("t", Severity::Info, b"after")).unwrap();
    let committed = batch.commit().unwrap().unwrap();
    assert_eq!(
        (committed.first, committed.last, committed.count),
        (kept, after, 2)
    );
    let payloads: Vec<&[u8]> = log.events_from(Seq::FIRST).map(|e| e.payload).collect();
    assert_eq!(payloads, vec![&b"kept"[..], &b"after"[..]]);
    let (reopened, report) = Log::open(log.into_medium(), &mut |_, _| {}).unwrap();
    assert_eq!(report.live_events, 2);
    assert_eq!(reopened.tail().0, after.0 + 1);
}

#[test]
fn without_subscriptions_events_are_released_once_stored_and_the_ring_never_fills() {
    let mut log = small_log();
    for i in 0..2000u32 {
        log.append(&event("t", Severity::Info, &i.to_le_bytes()))
            .unwrap();
    }
    assert_eq!(log.used_slots(), 0);
    assert!(log.tail().0 > 256 * 5, "wrapped several times");
}

#[test]
fn after_a_failed_fence_the_log_stays_failed_and_acknowledges_nothing() {
    let fail = std::rc::Rc::new(std::cell::Cell::new(false));
    let medium = FailingFence {
        inner: SimMedium::new(4096 * 4 + 256 * 64),
        fail: fail.clone(),
    };
    let mut log = Log::format(medium, &small_config(), 42).unwrap();
    let sub = log.create_subscription(b"s", b"").unwrap();
    let kept = log.append(&event("t", Severity::Info, b"before")).unwrap();
    fail.set(true);
    assert!(matches!(
        log.append(&event("t", Severity::Info, b"lost")),
        Err(AppendError::Failed(_))
    ));
    // Even once the medium would work again, the log refuses: its state is unknown.
    fail.set(false);
    assert!(matches!(
        log.append(&event("t", Severity::Info, b"later")),
        Err(AppendError::Failed(_))
    ));
    assert!(matches!(
        log.release(&[(sub, log.tail())]),
        Err(LogError::Failed(_))
    ));
    assert!(matches!(
        log.create_subscription(b"t", b""),
        Err(LogError::Failed(_))
    ));
    // What was acknowledged before the failure is still there after a restart.
    let image = log.into_medium().inner.state().durable_image();
    let (reopened, _) = Log::open(SimMedium::from_image(image), &mut |_, _| {}).unwrap();
    assert_eq!(reopened.read(kept).unwrap().payload, b"before");
}

#[test]
fn the_run_state_word_tells_a_clean_stop_from_a_crash() {
    use herald::log::PreviousStop;
    let log = small_log();
    // `format` left it clean; the open inside `Log::format` marked it running.
    let image = log.medium().state().durable_image();
    let (_, report) = Log::open(SimMedium::from_image(image.clone()), &mut |_, _| {}).unwrap();
    assert_eq!(report.previous_stop, PreviousStop::Unclean, "never closed");
    let analysis = herald::log::analyze(&image, &mut |_, _| {}).unwrap();
    assert_eq!(analysis.report.previous_stop, PreviousStop::Unclean);

    let mut log = log;
    let sub = log.create_subscription(b"s", b"").unwrap();
    log.append(&event("t", Severity::Info, b"x")).unwrap();
    log.close_clean().unwrap();
    log.close_clean().unwrap();
    // A closed log takes no more writes.
    assert!(matches!(
        log.append(&event("t", Severity::Info, b"late")),
        Err(AppendError::Failed(_))
    ));
    assert!(matches!(
        log.release(&[(sub, log.tail())]),
        Err(LogError::Failed(_))
    ));
    let image = log.medium().state().durable_image();
    let (log, report) = Log::open(SimMedium::from_image(image), &mut |_, _| {}).unwrap();
    assert_eq!(report.previous_stop, PreviousStop::Clean);
    // That open marked it running again: a crash now reads as unclean.
    let image = log.medium().state().durable_image();
    let (_, report) = Log::open(SimMedium::from_image(image), &mut |_, _| {}).unwrap();
    assert_eq!(report.previous_stop, PreviousStop::Unclean);
}

#[test]
fn a_region_that_never_had_a_run_state_word_reports_unknown() {
    use herald::log::{layout::RUN_STATE_OFFSET, PreviousStop};
    let mut image = small_log().medium().state().durable_image();
    image[RUN_STATE_OFFSET..RUN_STATE_OFFSET + 8].fill(0);
    let (_, report) = Log::open(SimMedium::from_image(image), &mut |_, _| {}).unwrap();
    assert_eq!(report.previous_stop, PreviousStop::Unknown);
}

#[test]
fn a_release_naming_a_subscription_twice_is_refused_and_writes_nothing() {
    // Two updates of one subscription in one fence would write both of its cursor
    // records, the durable one included: a power cut before the fence could leave
    // neither valid (a scratch run of 200 crash images found that in 136).
    let mut log = small_log();
    let sub = log.create_subscription(b"s", b"").unwrap();
    let other = log.create_subscription(b"o", b"").unwrap();
    let b = {
        log.append(&event("t", Severity::Info, b"a")).unwrap();
        log.append(&event("t", Severity::Info, b"b")).unwrap()
    };
    let c = log.append(&event("t", Severity::Info, b"c")).unwrap();
    let fences = log.medium().fence_count();
    let err = log.release(&[(sub, b), (other, b), (sub, c)]).unwrap_err();
    assert!(
        matches!(err, LogError::BadCursor { reason, .. } if reason.contains("twice")),
        "{err}"
    );
    assert_eq!(log.medium().fence_count(), fences);
    assert_eq!(log.subscription(sub).unwrap().cursor, Seq::FIRST.0);
    // The refusal leaves nothing behind: the same subscriptions release fine after.
    log.release(&[(sub, c), (other, b)]).unwrap();
    log.release(&[(other, c)]).unwrap();
    assert_eq!(log.head(), c);
}
