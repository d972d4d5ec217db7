//! The daemon at the protocol level, with hand-made frames: what a client in another
//! language would see.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/raw.rs"]
mod raw;

use raw::Raw;

use herald::protocol::{
    self, decode, encode, Event, Frame, Pattern, Patterns, Role, Severity, Subscribe, Topic,
};
use std::io::Write;

fn event<'a>(topic: &'a str, payload: &'a [u8]) -> Event<'a> {
    Event {
        topic: Topic::new(topic.as_bytes()).unwrap(),
        severity: Severity::Error,
        source: "",
        flags: 0,
        key: b"",
        payload,
    }
}

#[test]
fn publish_is_answered_with_stored_and_subscribers_receive_and_confirm() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    let mut sub = Raw::connect(&d.socket());
    sub.hello(Role::Subscriber, "ops-console");
    let patterns = [Pattern::parse(b"fs.>").unwrap()];
    sub.send(&Frame::Subscribe(Subscribe {
        name: "ops",
        min_severity: Severity::Debug,
        window_events: 8,
        automatic_recovery: false,
        group: false,
        ack_deadline_ms: 0,
        max_deliveries: 0,
        patterns: Patterns::from_patterns(&patterns),
    }));
    let f = sub.recv().unwrap();
    assert!(
        matches!(
            decode(&f).unwrap().unwrap().0,
            Frame::Subscribed {
                pending_events: 0,
                ..
            }
        ),
        "{:?}",
        decode(&f)
    );

    let mut producer = Raw::connect(&d.socket());
    producer.hello(Role::Producer, "raid0");
    producer.send(&Frame::Publish {
        correlation: 7,
        event: event("fs.disk.error", b"sda failing"),
    });
    producer.send(&Frame::Publish {
        correlation: 8,
        event: event("net.link.down", b"not for ops"),
    });
    producer.send(&Frame::Publish {
        correlation: 9,
        event: event("fs.quota", b"quota 90%"),
    });
    let mut stored = Vec::new();
    for _ in 0..3 {
        let f = producer.recv().unwrap();
        match decode(&f).unwrap().unwrap().0 {
            Frame::Stored {
                correlation,
                first_seq,
                last_seq,
                count,
            } => {
                assert_eq!((first_seq, count), (last_seq, 1));
                stored.push((correlation, first_seq.0));
            }
            other => panic!("expected stored, got {other:?}"),
        }
    }
    assert_eq!(
        stored.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![7, 8, 9],
        "replies in publish order"
    );

    for (expected_payload, expected_seq) in [
        (&b"sda failing"[..], stored[0].1),
        (&b"quota 90%"[..], stored[2].1),
    ] {
        let f = sub.recv().unwrap();
        match decode(&f).unwrap().unwrap().0 {
            Frame::Deliver(dl) => {
                assert_eq!(dl.event.payload, expected_payload);
                assert_eq!(dl.seq.0, expected_seq);
                assert_eq!(
                    dl.event.source, "raid0",
                    "source defaults to the producer's hello name"
                );
                assert!(!dl.redelivered);
                sub.send(&Frame::Confirm {
                    first_seq: dl.seq,
                    last_seq: dl.seq,
                });
            }
            other => panic!("expected deliver, got {other:?}"),
        }
    }
    assert_eq!(d.stop().code(), Some(0), "SIGTERM shuts down cleanly");
}

#[test]
fn a_frame_out_of_state_gets_an_error_and_a_close_while_other_connections_carry_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    let mut good = Raw::connect(&d.socket());
    good.hello(Role::Producer, "good");

    // Publish before hello.
    let mut rude = Raw::connect(&d.socket());
    rude.send(&Frame::Publish {
        correlation: 1,
        event: event("a.b", b"x"),
    });
    let f = rude.recv().unwrap();
    assert!(matches!(
        decode(&f).unwrap().unwrap().0,
        Frame::Error {
            code: protocol::ErrorCode::Unexpected,
            ..
        }
    ));
    assert!(
        rude.recv().is_none(),
        "the connection is closed after the error"
    );

    // Garbage bytes.
    let mut garbage = Raw::connect(&d.socket());
    garbage.send_bytes(&[0xff; 64]);
    let f = garbage.recv().unwrap();
    assert!(matches!(
        decode(&f).unwrap().unwrap().0,
        Frame::Error { .. }
    ));
    assert!(garbage.recv().is_none());

    good.send(&Frame::Publish {
        correlation: 5,
        event: event("a.b", b"still fine"),
    });
    let f = good.recv().unwrap();
    assert!(matches!(
        decode(&f).unwrap().unwrap().0,
        Frame::Stored { correlation: 5, .. }
    ));
}

#[test]
fn thousands_of_pipelined_publishes_into_a_full_ring_are_each_answered_and_the_daemon_survives() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &["--region-size", "1M"]);
    // A durable subscriber that never confirms holds everything: the ring fills.
    let mut stuck = Raw::connect(&d.socket());
    stuck.hello(Role::Subscriber, "stuck");
    let patterns = [Pattern::parse(b">").unwrap()];
    stuck.send(&Frame::Subscribe(Subscribe {
        name: "stuck",
        min_severity: Severity::Debug,
        window_events: 1,
        automatic_recovery: false,
        group: false,
        ack_deadline_ms: 0,
        max_deliveries: 0,
        patterns: Patterns::from_patterns(&patterns),
    }));
    stuck.recv().unwrap();

    let mut p = Raw::connect(&d.socket());
    p.hello(Role::Producer, "flood");
    // Minimal frames (25 bytes), so one receive holds thousands of them.
    let payload = [0u8; 0];
    let mut wire = Vec::new();
    let mut frame = vec![0u8; 256];
    let total = 40_000u64;
    for correlation in 1..=total {
        let n = encode(
            &Frame::Publish {
                correlation,
                event: event("a", &payload),
            },
            &mut frame,
        )
        .unwrap();
        wire.extend_from_slice(&frame[..n]);
    }
    // One write: many frames arrive in the same turn of the daemon's loop.
    let writer = {
        let mut stream = p.stream.try_clone().unwrap();
        std::thread::spawn(move || stream.write_all(&wire).unwrap())
    };
    let (mut stored, mut full) = (0u64, 0u64);
    for expected in 1..=total {
        let f = p.recv().expect("every publish is answered");
        match decode(&f).unwrap().unwrap().0 {
            Frame::Stored { correlation, .. } => {
                assert_eq!(correlation, expected);
                stored += 1;
            }
            Frame::Error {
                correlation,
                code: protocol::ErrorCode::Full,
                ..
            } => {
                assert_eq!(correlation, expected);
                full += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    writer.join().unwrap();
    assert!(stored > 0 && full > 1000, "stored {stored}, full {full}");
    // Still alive and serving.
    let mut again = Raw::connect(&d.socket());
    again.hello(Role::Producer, "after");
}
