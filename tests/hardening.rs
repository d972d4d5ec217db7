//! Faults found by trying herald from outside (a client written from PROTOCOL.md alone,
//! mutation fuzzing, floods): each is a regression test through the real daemon.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/raw.rs"]
mod raw;

use herald::protocol::{
    ErrorCode, Event, EventBatch, Frame, Role, Severity, SubscriptionMode, Topic, FRAME_TYPE_BYTES,
    PATTERN_BYTES_MAX, SUBSCRIPTION_PATTERN_LIST_BYTES_MAX,
};
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

/// The patterns of a subscription taking `list_bytes` in all (length bytes included):
/// `fs.>`, the longest pattern, and a literal filling the rest.
fn patterns_taking(list_bytes: usize) -> [String; 3] {
    let fill = list_bytes - (1 + "fs.>".len()) - (1 + PATTERN_BYTES_MAX) - 1;
    [
        "fs.>".into(),
        "a".repeat(PATTERN_BYTES_MAX),
        "b".repeat(fill),
    ]
}

/// A `Subscribe` frame for `name` and `patterns`, encoded by hand: the encoder refuses
/// to write one beyond the protocol's limits, as a client from elsewhere might not.
fn subscribe_frame(name: &str, patterns: &[String]) -> Vec<u8> {
    let mut body = vec![];
    body.extend(0u32.to_le_bytes()); // flags
    body.extend(8u32.to_le_bytes()); // window_events
    body.extend(0u32.to_le_bytes()); // ack_deadline_ms
    body.extend(0u16.to_le_bytes()); // max_deliveries
    body.extend([7, name.len() as u8, patterns.len() as u8]);
    body.extend(name.as_bytes());
    for pattern in patterns {
        body.push(pattern.len() as u8);
        body.extend(pattern.as_bytes());
    }
    let mut frame = ((FRAME_TYPE_BYTES + body.len()) as u32)
        .to_le_bytes()
        .to_vec();
    frame.extend([0x04, 0]);
    frame.extend(body);
    frame
}

#[test]
fn the_largest_subscription_the_decoder_accepts_is_stored_and_reattached_and_one_byte_more_is_too_large(
) {
    // Issue 15, fault 4: filters beyond the log's spec space were decoded, then refused
    // as `invalid`. Now the protocol's limit is the stored space.
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    let widest = patterns_taking(SUBSCRIPTION_PATTERN_LIST_BYTES_MAX);
    let widest: Vec<&str> = widest.iter().map(String::as_str).collect();
    let mut sub = Raw::connect(&d.socket());
    sub.hello(Role::Subscriber, "wide");
    let answer = sub.subscribe("wide", &widest, 8);
    assert!(
        matches!(frame(&answer), Frame::Subscribed { .. }),
        "{:?}",
        frame(&answer)
    );
    drop(sub);
    assert_eq!(d.stop().code(), Some(0));

    // After a restart the filters come from the log's entry alone: reattaching with
    // the same ones is accepted only if they were stored whole.
    let d = daemon::Daemon::start(dir.path(), &[]);
    let mut p = herald::client::Client::connect(&d.socket(), Role::Producer, "fsd").unwrap();
    let seqs = daemon::publish_each(&mut p, "fs.a", Severity::Error, [b"for wide"]);
    daemon::publish_each(&mut p, "net.a", Severity::Error, [b"not for wide"]);
    let mut sub = Raw::connect(&d.socket());
    sub.hello(Role::Subscriber, "wide");
    let answer = sub.subscribe("wide", &widest, 8);
    assert_eq!(
        frame(&answer),
        Frame::Subscribed {
            mode: SubscriptionMode::Normal,
            pending_events: 1
        }
    );
    let f = sub.recv().expect("a delivery");
    let Frame::Deliver(dl) = frame(&f) else {
        panic!("expected a delivery, got {:?}", frame(&f));
    };
    assert_eq!((dl.seq, dl.event.payload), (seqs[0], &b"for wide"[..]));

    // One byte more is refused when the frame is decoded, saying it is over a limit.
    let mut over = Raw::connect(&d.socket());
    over.hello(Role::Subscriber, "over");
    over.send_bytes(&subscribe_frame(
        "over",
        &patterns_taking(SUBSCRIPTION_PATTERN_LIST_BYTES_MAX + 1),
    ));
    let answer = over.recv().expect("an error before the connection closes");
    let Frame::Error { code, message, .. } = frame(&answer) else {
        panic!("expected an error, got {:?}", frame(&answer));
    };
    assert_eq!(code, ErrorCode::TooLarge, "{message}");
    assert!(message.contains("limit"), "{message}");
    assert_eq!(over.recv(), None, "the connection is closed");
    // The client library refuses it before sending, naming the field and the limit.
    let mut client =
        herald::client::Client::connect(&d.socket(), Role::Subscriber, "over").unwrap();
    let too_wide = patterns_taking(SUBSCRIPTION_PATTERN_LIST_BYTES_MAX + 1);
    let too_wide: Vec<&str> = too_wide.iter().map(String::as_str).collect();
    let refused = client
        .subscribe("over", &too_wide, Severity::Debug, 8, false)
        .unwrap_err()
        .to_string();
    let expected = format!(
        "subscribe.patterns is {} bytes; the limit is {SUBSCRIPTION_PATTERN_LIST_BYTES_MAX}",
        SUBSCRIPTION_PATTERN_LIST_BYTES_MAX + 1
    );
    assert!(refused.contains(&expected), "{refused}");
    let status = d.status();
    let names: Vec<&serde_json::Value> = status["subscriptions"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .map(|row| &row["name"])
        .collect();
    assert_eq!(names, ["wide"], "nothing else was created");
}

/// A topic of exactly 255 bytes, different for each `i`.
fn long_topic(i: usize) -> String {
    let head = format!("fs.t{i:05}.");
    format!("{head}{}", "x".repeat(255 - head.len()))
}

#[test]
fn answers_larger_than_a_frame_are_paged_and_the_cli_shows_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &["--connections-max", "300"]);
    // 300 dead letters whose rows (long topics, payload previews) take ~160 KB.
    let mut sub = herald::client::Client::connect(&d.socket(), Role::Subscriber, "picky").unwrap();
    sub.subscribe("picky", &[">"], Severity::Debug, 300, false)
        .unwrap();
    let mut p = Raw::connect(&d.socket());
    p.hello(Role::Producer, "fsd");
    let topics: Vec<String> = (0..300).map(long_topic).collect();
    let payload = [b'p'; 200];
    for (i, t) in topics.iter().enumerate() {
        p.send(&Frame::Publish {
            correlation: i as u64,
            event: keyed(t, b"", &payload),
        });
        assert!(matches!(frame(&p.recv().unwrap()), Frame::Stored { .. }));
    }
    for _ in 0..300 {
        let seq = sub
            .next_delivery(Some(std::time::Duration::from_secs(20)))
            .unwrap()
            .expect("a delivery")
            .seq;
        sub.reject(seq).unwrap();
    }
    sub.flush().unwrap();
    d.wait_for_status("300 dead letters", |s| s["dead_letters"]["count"] == 300);
    // One answer holds what fits one frame and says where to go on.
    let mut control = herald::client::Client::connect(&d.socket(), Role::Control, "op").unwrap();
    let page: serde_json::Value =
        serde_json::from_str(&control.admin(r#"{"op":"dead.list"}"#).unwrap()).unwrap();
    let shown = page["shown"].as_u64().unwrap();
    assert_eq!(page["total"], 300);
    assert!(shown > 0 && shown < 200, "cut to fit the frame: {shown}");
    assert!(page["next"]["after_seq"].is_u64(), "{}", page["next"]);
    // The CLI pages through all of them.
    let out = daemon::herald(&[
        "dead",
        "list",
        "--json",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = all["dead_letters"].as_array().unwrap();
    assert_eq!(rows.len(), 300);
    let mut seen: Vec<u64> = rows.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    seen.dedup();
    assert_eq!(seen.len(), 300, "each once, in order");

    // A status with 290 subscriptions (~95 KB of rows) is paged the same way.
    let mut live: Vec<Raw> = Vec::new();
    for i in 0..290 {
        let mut s = Raw::connect(&d.socket());
        s.hello(Role::Subscriber, &format!("live{i}"));
        s.subscribe("", &[&format!("fs.t{i:05}.>")], 8);
        live.push(s);
    }
    let status: serde_json::Value = serde_json::from_str(&control.status().unwrap()).unwrap();
    assert_eq!(status["subscriptions_total"], 291);
    let shown = status["subscriptions_shown"].as_u64().unwrap();
    assert!(shown < 291, "cut to fit: {shown}");
    assert!(status["subscriptions_next"]["after_index"].is_u64());
    let out = daemon::herald(&[
        "status",
        "--json",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = all["subscriptions"].as_array().unwrap();
    assert_eq!(rows.len(), 291, "every subscription listed");
    let mut indices: Vec<u64> = rows.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    indices.dedup();
    assert_eq!(indices.len(), 291);
}

#[test]
fn a_server_frame_sent_to_the_daemon_is_answered_unexpected_and_the_connection_closed() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    let mut c = Raw::connect(&d.socket());
    c.hello(Role::Producer, "confused");
    c.send(&Frame::Pong { token: 1 });
    match frame(&c.recv().expect("an error")) {
        Frame::Error { code, .. } => assert_eq!(code, ErrorCode::Unexpected),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.recv(), None);
    // The daemon serves on.
    let mut again = Raw::connect(&d.socket());
    again.hello(Role::Producer, "next");
}

#[test]
fn after_a_closing_error_frames_pipelined_behind_it_are_not_answered() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    let mut first = Raw::connect(&d.socket());
    first.hello(Role::Both, "a");
    first.subscribe("fixed", &["fs.>"], 8);
    first.send(&Frame::Goodbye);
    assert_eq!(first.recv(), None);
    // The same name with other filters is `invalid`; the publish and ping pipelined
    // behind it must get nothing (PROTOCOL.md section 7: a closing error closes).
    let mut second = Raw::connect(&d.socket());
    second.hello(Role::Both, "b");
    let patterns = [herald::protocol::Pattern::parse(b"net.>").unwrap()];
    // One write: the three frames are in the daemon's buffer together.
    let mut wire = Vec::with_capacity(4096);
    for f in [
        Frame::Subscribe(herald::protocol::Subscribe {
            name: "fixed",
            min_severity: Severity::Debug,
            window_events: 8,
            automatic_recovery: false,
            group: false,
            ack_deadline_ms: 0,
            max_deliveries: 0,
            patterns: herald::protocol::Patterns::from_patterns(&patterns),
        }),
        Frame::Publish {
            correlation: 5,
            event: keyed("fs.a", b"", b"after the error"),
        },
        Frame::Ping { token: 6 },
    ] {
        herald::protocol::encode_to_vec(&f, &mut wire).unwrap();
    }
    second.send_bytes(&wire);
    match frame(&second.recv().expect("the error")) {
        Frame::Error { code, .. } => assert_eq!(code, ErrorCode::Invalid),
        other => panic!("{other:?}"),
    }
    assert_eq!(second.recv(), None, "nothing after the closing error");
    assert_eq!(
        d.status()["ring"]["tail"],
        d.status()["ring"]["head"],
        "nothing was stored"
    );
}

/// Expects the next frame to be an error with `code`, then the end of the stream;
/// returns the message.
fn closing_error(c: &mut Raw, code: ErrorCode) -> String {
    let f = c.recv().expect("an error frame");
    let message = match frame(&f) {
        Frame::Error {
            code: got, message, ..
        } => {
            assert_eq!(got, code, "{message}");
            message.to_string()
        }
        other => panic!("expected {code:?}, got {other:?}"),
    };
    assert_eq!(c.recv(), None, "the connection closes after {code:?}");
    message
}

#[test]
fn the_durable_subscription_beyond_the_table_gets_table_full_naming_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    // A default region's table holds 64 durable subscriptions.
    for i in 0..64 {
        let mut s = Raw::connect(&d.socket());
        s.hello(Role::Subscriber, "filler");
        assert!(matches!(
            frame(&s.subscribe(&format!("s{i}"), &[">"], 1)),
            Frame::Subscribed { .. }
        ));
        s.send(&Frame::Goodbye);
        assert_eq!(s.recv(), None);
    }
    let mut s = Raw::connect(&d.socket());
    s.hello(Role::Subscriber, "one-too-many");
    s.send(&Frame::Subscribe(herald::protocol::Subscribe {
        name: "s64",
        min_severity: Severity::Debug,
        window_events: 1,
        automatic_recovery: false,
        group: false,
        ack_deadline_ms: 0,
        max_deliveries: 0,
        patterns: herald::protocol::Patterns::from_patterns(&[herald::protocol::Pattern::parse(
            b">",
        )
        .unwrap()]),
    }));
    let message = closing_error(&mut s, ErrorCode::TableFull);
    assert!(message.contains("64"), "{message}");
    // An existing one still attaches.
    let mut again = Raw::connect(&d.socket());
    again.hello(Role::Subscriber, "back");
    assert!(matches!(
        frame(&again.subscribe("s3", &[">"], 1)),
        Frame::Subscribed { .. }
    ));
}

#[test]
fn at_the_connection_limit_clients_are_told_busy_and_control_still_gets_in_and_silent_ones_time_out(
) {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(
        dir.path(),
        &["--connections-max", "3", "--hello-timeout", "1s"],
    );
    let mut producers: Vec<Raw> = (0..3)
        .map(|i| {
            let mut p = Raw::connect(&d.socket());
            p.hello(Role::Producer, &format!("p{i}"));
            p
        })
        .collect();
    // The fourth producer is told busy, with the limit.
    let mut fourth = Raw::connect(&d.socket());
    fourth.send(&Frame::Hello(herald::protocol::Hello {
        version_min: 1,
        version_max: 1,
        role: Role::Producer,
        client_name: "p3",
    }));
    let message = closing_error(&mut fourth, ErrorCode::Busy);
    assert!(
        message.contains('3') && message.contains("--connections-max"),
        "{message}"
    );
    // An operator still gets in: control connections have slots of their own.
    let mut control = herald::client::Client::connect(&d.socket(), Role::Control, "op").unwrap();
    let status: serde_json::Value = serde_json::from_str(&control.status().unwrap()).unwrap();
    assert_eq!(status["connections"]["serving"], 3, "{status}");
    // The last slot is taken by a connection that never says hello...
    let mut silent = Raw::connect(&d.socket());
    // ...so one more finds every slot in use: it is told busy before the close. (Each
    // status is a round trip through the daemon's loop; bounded, a failure detector.)
    let mut open = 0;
    for _ in 0..1000 {
        let s: serde_json::Value = serde_json::from_str(&control.status().unwrap()).unwrap();
        open = s["connections"]["open"].as_u64().unwrap();
        if open == 5 {
            break;
        }
    }
    assert_eq!(open, 5, "the silent connection was accepted");
    let mut beyond = Raw::connect(&d.socket());
    let message = closing_error(&mut beyond, ErrorCode::Busy);
    assert!(message.contains("slots"), "{message}");
    // The silent one is closed once its hello is overdue.
    let message = closing_error(&mut silent, ErrorCode::TimedOut);
    assert!(message.contains("hello"), "{message}");
    let status: serde_json::Value = serde_json::from_str(&control.status().unwrap()).unwrap();
    assert_eq!(status["connections"]["timed_out"], 1, "{status}");
    assert_eq!(status["connections"]["refused_at_limit"], 1, "{status}");
    // The producers were served throughout.
    for (i, p) in producers.iter_mut().enumerate() {
        p.send(&Frame::Publish {
            correlation: i as u64,
            event: keyed("fs.a", b"", b"still served"),
        });
        assert!(matches!(frame(&p.recv().unwrap()), Frame::Stored { .. }));
    }
}

#[test]
fn with_an_idle_timeout_a_quiet_connection_is_told_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &["--idle-timeout", "1s"]);
    let mut quiet = Raw::connect(&d.socket());
    quiet.hello(Role::Producer, "quiet");
    let message = closing_error(&mut quiet, ErrorCode::TimedOut);
    assert!(message.contains("Ping"), "{message}");
}

#[test]
fn a_full_dead_letter_area_is_said_once_shown_in_status_and_a_purge_frees_the_waiting_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    // A dead-letter area of 16 one-slot letters.
    let options = herald::log::StoreOptions {
        config: herald::log::LogConfig {
            slot_bytes: 128,
            reserve_slots: None,
            subscription_entries: 8,
            payload_bytes_max: 1024,
            dead_letter_slots: Some(16),
            rule_entries: 0,
        },
        ..Default::default()
    };
    drop(herald::log::create_file(&dir.path().join("region.pmem"), 1 << 20, &options, 7).unwrap());
    let log_path = dir.path().join("daemon.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    // A backoff of an hour: what waits for room may not wait for a redelivery.
    let d = daemon::Daemon::start_with(
        dir.path(),
        &[
            "--redelivery-backoff",
            "1h",
            "--redelivery-backoff-max",
            "1h",
        ],
        |c| {
            c.stderr(log_file);
        },
    );
    let mut sub = herald::client::Client::connect(&d.socket(), Role::Subscriber, "audit").unwrap();
    sub.subscribe("audit", &[">"], Severity::Debug, 64, false)
        .unwrap();
    let mut p = herald::client::Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    let seqs = daemon::publish_each(
        &mut p,
        "audit.x",
        Severity::Warning,
        (0..40).map(|i| format!("bad {i}")),
    );
    for _ in &seqs {
        let seq = sub
            .next_delivery(Some(std::time::Duration::from_secs(20)))
            .unwrap()
            .expect("a delivery")
            .seq;
        sub.reject(seq).unwrap();
    }
    sub.flush().unwrap();
    d.wait_for_status("the area full, 24 waiting", |s| {
        s["dead_letters"]["full"] == true && s["dead_letters"]["events_waiting_for_room"] == 24
    });
    assert_eq!(daemon::sub_row(&d.status(), "audit")["dead_lettered"], 16);
    // Room made: every waiting event becomes a dead letter at once (not after the
    // hour-long backoff), and the ring drains.
    let out = daemon::herald(&[
        "dead",
        "purge",
        "--data-dir",
        data,
        "--subscription",
        "audit",
        "--all",
    ]);
    assert!(out.status.success(), "{out:?}");
    d.wait_for_status("16 of the waiting dead-lettered", |s| {
        s["dead_letters"]["events_waiting_for_room"] == 8 && s["dead_letters"]["count"] == 16
    });
    let out = daemon::herald(&[
        "dead",
        "purge",
        "--data-dir",
        data,
        "--subscription",
        "audit",
        "--all",
    ]);
    assert!(out.status.success(), "{out:?}");
    d.wait_for_status("everything dead-lettered and released", |s| {
        s["dead_letters"]["full"] == false
            && s["dead_letters"]["events_waiting_for_room"] == 0
            && s["ring"]["used_slots"] == 0
    });
    assert_eq!(daemon::sub_row(&d.status(), "audit")["dead_lettered"], 40);
    assert_eq!(d.stop().code(), Some(0));
    // The log said the area was full once, not once per event.
    let log = std::fs::read_to_string(&log_path).unwrap();
    let full_lines = log.lines().filter(|l| l.contains("no room")).count();
    assert_eq!(full_lines, 1, "{log}");
    assert!(log.lines().count() < 20, "a quiet log: {log}");
}
