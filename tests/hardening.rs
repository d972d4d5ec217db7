//! Faults found by trying herald from outside (a client written from PROTOCOL.md alone,
//! mutation fuzzing, floods): each is a regression test through the real daemon.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/raw.rs"]
mod raw;

use herald::protocol::{ErrorCode, Event, EventBatch, Frame, Role, Severity, Topic};
use raw::{frame, Raw};

fn keyed<'a>(topic: &'a str, key: &'a [u8], payload: &'a [u8]) -> Event<'a> {
    Event {
        topic: Topic::new(topic.as_bytes()).expect("test topics are valid"),
        severity: Severity::Error,
        source: "",
        flags: 0,
        key,
        payload,
    }
}

/// Sends one batch and returns its answer as (first, last, count), panicking on an
/// error or on a closed connection.
fn publish_batch(p: &mut Raw, correlation: u64, events: &[Event<'_>]) -> (u64, u64, u16) {
    p.send(&Frame::PublishBatch {
        correlation,
        events: EventBatch::from_events(events),
    });
    let answer = p
        .recv()
        .expect("the batch is answered, not met with a closed connection");
    match frame(&answer) {
        Frame::Stored {
            correlation: c,
            first_seq,
            last_seq,
            count,
        } => {
            assert_eq!(c, correlation);
            (first_seq.0, last_seq.0, count)
        }
        other => panic!("expected Stored, got {other:?}"),
    }
}

#[test]
fn a_batch_repeating_an_idempotency_key_is_stored_once_and_answered_with_its_distinct_events() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    let mut sub = Raw::connect(&d.socket());
    sub.hello(Role::Subscriber, "watch");
    sub.subscribe("watch", &[">"], 64);

    let mut p = Raw::connect(&d.socket());
    p.hello(Role::Producer, "fsd");
    // Two events with one key: the second is the first again (PROTOCOL.md 10.1).
    let (first, last, count) = publish_batch(
        &mut p,
        1,
        &[
            keyed("fs.a", b"k1", b"one"),
            keyed("fs.a", b"k1", b"one again"),
        ],
    );
    assert_eq!((first, last, count), (first, first, 1));
    // Remembered keys, a repeat and a new event in one batch: each distinct event
    // counted once, numbers spanning the lowest to the highest.
    let (first2, last2, count2) = publish_batch(
        &mut p,
        2,
        &[
            keyed("fs.a", b"k2", b"two"),
            keyed("fs.a", b"k1", b"remembered"),
            keyed("fs.a", b"k2", b"two again"),
            keyed("fs.a", b"", b"no key"),
        ],
    );
    assert_eq!(first2, first, "k1 keeps its original number");
    assert!(last2 > first, "{last2} > {first}");
    assert_eq!(count2, 3, "k2, k1 and the unkeyed event");
    // A whole retry of the second batch stores nothing new and gets the same numbers
    // for its keyed events.
    let (first3, _, count3) = publish_batch(
        &mut p,
        3,
        &[keyed("fs.a", b"k2", b"two"), keyed("fs.a", b"k1", b"x")],
    );
    assert_eq!((first3, count3), (first, 2));

    // Exactly the three distinct events were stored, once each.
    let mut payloads = Vec::new();
    for _ in 0..3 {
        let f = sub.recv().expect("a delivery");
        let Frame::Deliver(dl) = frame(&f) else {
            panic!("expected a delivery, got {:?}", frame(&f));
        };
        payloads.push(dl.event.payload.to_vec());
        sub.send(&Frame::Confirm {
            first_seq: dl.seq,
            last_seq: dl.seq,
        });
    }
    assert_eq!(payloads, [&b"one"[..], b"two", b"no key"]);
    let status = d.status();
    let row = daemon::sub_row(&status, "watch");
    assert_eq!(row["in_flight"], 0, "nothing else was delivered: {row}");
    assert_eq!(status["ring"]["used_slots"], 0, "{status}");
    assert_eq!(
        d.stop().code(),
        Some(0),
        "the daemon survived and stops cleanly"
    );
}

/// The subscriber of the second fault: read one delivery, confirm it, with blocking
/// writes, as the simplest client in any language would.
fn read_one_confirm_one(sub: &mut Raw, events: usize) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(events);
    while seqs.len() < events {
        let f = sub
            .recv_exact()
            .unwrap_or_else(|| panic!("closed after {} deliveries", seqs.len()));
        match frame(&f) {
            Frame::Deliver(dl) => {
                assert!(
                    !dl.redelivered,
                    "seq {} redelivered after {} deliveries: its confirmation was not read in time",
                    dl.seq.0,
                    seqs.len()
                );
                seqs.push(dl.seq.0);
                sub.send(&Frame::Confirm {
                    first_seq: dl.seq,
                    last_seq: dl.seq,
                });
            }
            other => panic!("expected a delivery, got {other:?}"),
        }
    }
    seqs
}

#[test]
fn a_subscriber_that_confirms_each_delivery_with_blocking_writes_is_never_stalled_by_a_burst() {
    const EVENTS: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &["--region-size", "256M"]);
    // The burst is stored while the subscriber reads nothing: the window fills both
    // the daemon's send buffer and the socket. Deliveries of about 190 bytes: reading one
    // frees less room than the one small write of its confirmation costs the socket
    // (the kernel charges each write's buffer overhead), so a daemon that stops
    // reading while its output is full never sees enough room return.
    let mut p = Raw::connect(&d.socket());
    p.hello(Role::Producer, "burst");
    let mut sub = Raw::connect(&d.socket());
    sub.hello(Role::Subscriber, "plain");
    sub.subscribe("plain", &[">"], 4096);
    let payload = [7u8; 140];
    let events: Vec<Event<'_>> = (0..256).map(|_| keyed("fs.burst", b"", &payload)).collect();
    for correlation in 0..(EVENTS / 256) as u64 {
        publish_batch(&mut p, correlation, &events);
    }
    let rest = EVENTS % 256;
    publish_batch(&mut p, u64::MAX, &events[..rest]);
    let seqs = read_one_confirm_one(&mut sub, EVENTS);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order");
    d.wait_for_status("everything released", |s| s["ring"]["used_slots"] == 0);
    let row = daemon::sub_row(&d.status(), "plain");
    assert_eq!(row["redelivered"], 0, "{row}");
}

#[test]
fn while_output_is_blocked_settling_frames_are_still_read_and_a_ping_waits_for_room() {
    const EVENTS: usize = 6_000;
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &["--region-size", "256M"]);
    let mut sub = Raw::connect(&d.socket());
    sub.hello(Role::Both, "slow");
    sub.subscribe("slow", &["fs.>"], 4096);
    let mut p = Raw::connect(&d.socket());
    p.hello(Role::Producer, "burst");
    let payload = [1u8; 400];
    let events: Vec<Event<'_>> = (0..100).map(|_| keyed("fs.burst", b"", &payload)).collect();
    for correlation in 0..(EVENTS / 100) as u64 {
        publish_batch(&mut p, correlation, &events);
    }
    // Now the subscriber's output is full (4096 deliveries of ~450 bytes do not fit):
    // confirm everything it will get, blind, and ping, before reading anything.
    let status = d.status();
    let row = daemon::sub_row(&status, "slow");
    let first = row["cursor"].as_u64().unwrap();
    sub.send(&Frame::Ping { token: 9 });
    sub.send(&Frame::Confirm {
        first_seq: herald::protocol::Seq(first),
        last_seq: herald::protocol::Seq(u64::MAX),
    });
    let mut delivered = 0;
    let mut pong = false;
    while delivered < EVENTS || !pong {
        let f = sub.recv().expect("open");
        match frame(&f) {
            Frame::Deliver(dl) => {
                delivered += 1;
                sub.send(&Frame::Confirm {
                    first_seq: dl.seq,
                    last_seq: dl.seq,
                });
            }
            Frame::Pong { token } => {
                assert_eq!(token, 9);
                pong = true;
            }
            Frame::Error { code, message, .. } => {
                assert_ne!(code, ErrorCode::Internal, "{message}");
                panic!("error {code:?}: {message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    d.wait_for_status("everything released", |s| s["ring"]["used_slots"] == 0);
}
