//! Limits (issue 15), through the real daemon binary: events at the payload limit and
//! batches of the largest frame, a full subscription table, a full ring and a full
//! dead-letter area. In each, the clients that behave keep being served and the
//! daemon's resident memory stays within the bound the README states ("Memory").
//!
//! Every wait is a barrier (a status round trip, a blocking read) bounded by a failure
//! detector; no test passes because time went by.

#[path = "support/load.rs"]
mod load;
#[path = "support/raw.rs"]
mod raw;
#[path = "support/soak.rs"]
mod soak;

// The soak needs them too, and a file is loaded as one module only.
use soak::{daemon, memory};

use daemon::{sub_row, Daemon};
use herald::client::{Client, ClientError};
use herald::protocol::{
    self, ErrorCode, Event, Frame, Role, Severity, EVENT_PAYLOAD_BYTES_MAX, FRAME_BYTES_MAX,
};
use memory::{rss_of, Load};
use raw::{frame, Raw, STUCK_AFTER};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use load::*;

/// One event as the protocol encodes it (section 4.1), by hand: no source, no key.
fn event_bytes(topic: &str, payload_len: usize, fill: u8) -> Vec<u8> {
    let mut e = vec![Severity::Info.as_u8(), topic.len() as u8, 0, 0, 0, 0];
    e.extend((payload_len as u32).to_le_bytes());
    e.extend(topic.as_bytes());
    e.extend(std::iter::repeat_n(fill, payload_len));
    e
}

/// A `PublishBatch` frame of `events` (each from [`event_bytes`]), by hand: the encoder
/// refuses to write one beyond the limits.
fn batch_frame(correlation: u64, events: &[Vec<u8>]) -> Vec<u8> {
    let body: usize = 8 + 2 + events.iter().map(Vec::len).sum::<usize>();
    let mut f = ((protocol::FRAME_TYPE_BYTES + body) as u32)
        .to_le_bytes()
        .to_vec();
    f.extend([0x03, 0]);
    f.extend(correlation.to_le_bytes());
    f.extend((events.len() as u16).to_le_bytes());
    for e in events {
        f.extend(e);
    }
    f
}

/// Batch overhead: the frame header, the correlation and the count.
const BATCH_FRAME_OVERHEAD: usize = protocol::FRAME_HEADER_BYTES + 8 + 2;

/// The events of a batch frame of exactly `frame_bytes` bytes: one event with the
/// largest payload and one filling the rest.
fn largest_and_filler(frame_bytes: usize) -> Vec<Vec<u8>> {
    let big = event_bytes("big.max", EVENT_PAYLOAD_BYTES_MAX, b'M');
    let filler_payload = frame_bytes - BATCH_FRAME_OVERHEAD - big.len() - (10 + "big.fill".len());
    vec![big, event_bytes("big.fill", filler_payload, b'f')]
}

/// The events of a batch frame of exactly `frame_bytes` bytes: 256 events, the last
/// taking what is left.
fn many_small(frame_bytes: usize) -> Vec<Vec<u8>> {
    let events = protocol::BATCH_EVENTS_MAX;
    let each = (frame_bytes - BATCH_FRAME_OVERHEAD) / events;
    let mut all: Vec<Vec<u8>> = (0..events - 1)
        .map(|i| event_bytes("big.many", each - 18, i as u8))
        .collect();
    let rest = frame_bytes - BATCH_FRAME_OVERHEAD - (events - 1) * each;
    all.push(event_bytes("big.many", rest - 18, b'z'));
    all
}

/// Sends `f` (ignoring a write the daemon cut short by closing) and expects a closing
/// `too_large`.
fn expect_too_large(socket: &Path, f: &[u8]) {
    let mut c = Thin::connect(socket);
    c.send_hello(Role::Producer, "over");
    assert!(matches!(
        frame(&c.recv().expect("hello answered")),
        Frame::HelloOk(_)
    ));
    // The daemon answers as soon as the header shows the problem and closes: the
    // rest of the write may fail (PROTOCOL.md section 7).
    let _ = c.stream.write_all(f);
    let message = expect_closing_error(&mut c, ErrorCode::TooLarge);
    assert!(message.contains("limit"), "{message}");
}

#[test]
fn events_at_the_payload_limit_and_batches_of_the_largest_frame_are_stored_and_delivered_and_one_byte_more_is_too_large(
) {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let pid = d.child.id();
    let mut sub = Client::connect(&d.socket(), Role::Subscriber, "big").unwrap();
    sub.subscribe("big", &["big.>"], Severity::Debug, 16, false)
        .unwrap();
    let mut producer = Client::connect(&d.socket(), Role::Producer, "big").unwrap();
    // A region made by `herald serve` takes what the protocol carries.
    assert_eq!(
        producer.hello_ok().event_payload_bytes_max as usize,
        EVENT_PAYLOAD_BYTES_MAX
    );
    assert_eq!(
        producer.hello_ok().frame_bytes_max as usize,
        FRAME_BYTES_MAX
    );
    let before = rss_of(pid);
    let receive = |sub: &mut Client, expected: &[u8], what: &str| {
        let delivery = sub
            .next_delivery(Some(STUCK_AFTER))
            .unwrap()
            .unwrap_or_else(|| panic!("{what} not delivered: stuck"));
        assert!(delivery.event.payload == expected, "{what}: payload intact");
        let seq = delivery.seq;
        sub.confirm(seq, seq).unwrap();
    };
    // 64 KiB events, one at a time, many more than the ring holds at once.
    let slots = d.status()["ring"]["slot_count"].as_u64().unwrap();
    let event_slots = (EVENT_PAYLOAD_BYTES_MAX as u64 + 128) / 128;
    let rounds = 2 * slots / event_slots;
    for i in 0..rounds {
        let payload = vec![i as u8; EVENT_PAYLOAD_BYTES_MAX];
        producer
            .publish(&event("big.max", Severity::Info, &payload))
            .unwrap_or_else(|e| panic!("64 KiB event {i}: {e}"));
        receive(&mut sub, &payload, "a 64 KiB event");
    }
    eprintln!("{rounds} events of 64 KiB through a ring of {slots} slots");
    // Batches of exactly the largest frame: the largest event and a filler, and 256
    // events; the client library sends them (they are within its limits).
    for (name, events) in [
        (
            "the largest event and a filler",
            largest_and_filler(FRAME_BYTES_MAX),
        ),
        ("256 events", many_small(FRAME_BYTES_MAX)),
    ] {
        assert_eq!(batch_frame(1, &events).len(), FRAME_BYTES_MAX, "{name}");
        let decoded: Vec<(String, Vec<u8>)> = events
            .iter()
            .map(|e| {
                let t = e[1] as usize;
                (
                    String::from_utf8(e[10..10 + t].to_vec()).unwrap(),
                    e[10 + t..].to_vec(),
                )
            })
            .collect();
        let batch: Vec<Event<'_>> = decoded
            .iter()
            .map(|(topic, payload)| event(topic, Severity::Info, payload))
            .collect();
        // The library's encoding is the one built by hand.
        let mut wire = Vec::with_capacity(FRAME_BYTES_MAX);
        protocol::encode_to_vec(
            &Frame::PublishBatch {
                correlation: 1,
                events: protocol::EventBatch::from_events(&batch),
            },
            &mut wire,
        )
        .unwrap();
        assert_eq!(wire, batch_frame(1, &events), "{name}");
        for round in 0..8 {
            let s = producer
                .publish_batch(&batch)
                .unwrap_or_else(|e| panic!("{name}, round {round}: {e}"));
            assert_eq!(usize::from(s.count), batch.len());
            for (_, payload) in &decoded {
                receive(&mut sub, payload, name);
            }
        }
    }
    // One byte more is too large: a frame beyond the largest, a payload beyond its
    // limit.
    expect_too_large(
        &d.socket(),
        &batch_frame(2, &largest_and_filler(FRAME_BYTES_MAX + 1)),
    );
    expect_too_large(
        &d.socket(),
        &batch_frame(3, &many_small(FRAME_BYTES_MAX + 1)),
    );
    let mut over = event_bytes("big.over", EVENT_PAYLOAD_BYTES_MAX + 1, b'o');
    let mut publish = ((protocol::FRAME_TYPE_BYTES + 8 + over.len()) as u32)
        .to_le_bytes()
        .to_vec();
    publish.extend([0x02, 0]);
    publish.extend(4u64.to_le_bytes());
    publish.append(&mut over);
    assert!(publish.len() <= FRAME_BYTES_MAX, "only the payload is over");
    expect_too_large(&d.socket(), &publish);
    // The daemon serves on, and nothing of the refused frames was stored.
    let s = producer
        .publish(&event("big.after", Severity::Info, b"after"))
        .unwrap();
    receive(&mut sub, b"after", "the event after");
    sub.flush().unwrap();
    d.wait_for_status("everything released", |st| {
        st["ring"]["used_slots"] == 0 && st["ring"]["tail"].as_u64() > Some(s.first_seq.0)
    });
    assert_rss_within(
        "events at the payload limit",
        before,
        rss_of(pid),
        Load {
            connections: 8,
            subscriptions: 1,
            region_bytes: 64 << 20,
        },
    );
}

/// Subscribes `name` on a raw connection and leaves with `Goodbye`: a durable
/// subscription that exists with nobody attached.
fn create_detached(socket: &Path, name: &str, pattern: &str) -> Frame<'static> {
    let mut s = Raw::connect(socket);
    s.hello(Role::Subscriber, name);
    let answer = s.subscribe(name, &[pattern], 64);
    let answered = match frame(&answer) {
        Frame::Subscribed {
            mode,
            pending_events,
        } => Frame::Subscribed {
            mode,
            pending_events,
        },
        Frame::Error { code, message, .. } => panic!("{name}: {code:?}: {message}"),
        other => panic!("{name}: {other:?}"),
    };
    s.send(&Frame::Goodbye);
    assert_eq!(s.recv(), None, "closed after goodbye");
    answered
}

#[test]
fn a_full_subscription_table_refuses_one_more_with_table_full_while_other_subscriptions_keep_being_served(
) {
    // A default region's table holds 64 durable subscriptions.
    const ENTRIES: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let pid = d.child.id();
    let mut steady = Steady::start(&d.socket(), "steady");
    let before = rss_of(pid);
    for i in 1..ENTRIES {
        create_detached(&d.socket(), &format!("filler{i}"), &format!("filler.n{i}"));
        steady.step();
    }
    let mut one_more = Raw::connect(&d.socket());
    one_more.hello(Role::Subscriber, "one-more");
    let answer = one_more.subscribe("filler64", &["filler.>"], 64);
    match frame(&answer) {
        Frame::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::TableFull, "{message}");
            assert!(message.contains("64"), "names the table's size: {message}");
        }
        other => panic!("expected table_full, got {other:?}"),
    }
    assert_eq!(one_more.recv(), None, "table_full closes");
    steady.steps(20);
    // An existing subscription still attaches, and a live-only one (which takes no
    // entry) gets the events stored while it is attached.
    let mut again = Client::connect(&d.socket(), Role::Subscriber, "again").unwrap();
    again
        .subscribe("filler3", &["filler.n3"], Severity::Debug, 64, false)
        .expect("an existing subscription attaches");
    let mut live = Client::connect(&d.socket(), Role::Subscriber, "live").unwrap();
    live.subscribe("", &["steady.>"], Severity::Debug, 64, false)
        .expect("a live-only subscription needs no entry");
    for _ in 0..20 {
        let seq = steady.step();
        let delivery = live
            .next_delivery(Some(STUCK_AFTER))
            .unwrap()
            .expect("the live subscriber gets it");
        assert_eq!(delivery.seq, seq);
        live.confirm(seq, seq).unwrap();
    }
    let status = d.status();
    assert_eq!(status["subscriptions_total"], ENTRIES + 1, "{status}");
    assert_eq!(
        status["ring"]["used_slots"], 0,
        "the fillers hold nothing: {status}"
    );
    assert_rss_within(
        "a full subscription table",
        before,
        rss_of(pid),
        Load {
            connections: 6,
            subscriptions: ENTRIES as u64 + 1,
            region_bytes: 64 << 20,
        },
    );
}

/// Publishes `hog.flood` events until the ring is full, with a step of `steady` after
/// each publish: batches of 32 events of 1 KB, then single ones once a batch no longer
/// fits, then events of one slot, until the smallest event (the flood's or the step's)
/// does not fit; returns the events stored.
fn fill_ring(producer: &mut Client, steady: &mut Steady) -> u64 {
    let large = [b'h'; 1000];
    let batch: Vec<Event<'_>> = (0..32)
        .map(|_| event("hog.flood", Severity::Info, &large))
        .collect();
    let one_slot = [event("hog.flood", Severity::Info, b"one slot")];
    let mut stages = [&batch[..], &batch[..1], &one_slot[..]]
        .into_iter()
        .peekable();
    let mut stored = 0;
    for _ in 0..100_000 {
        let Some(events) = stages.peek() else {
            return stored;
        };
        match producer.publish_batch(events) {
            Ok(s) => stored += u64::from(s.count),
            Err(ClientError::Refused {
                code: ErrorCode::Full,
                ..
            }) => {
                stages.next();
                continue;
            }
            Err(e) => panic!("expected Stored or full, got {e}"),
        }
        match steady.try_step_with(Severity::Info) {
            Ok(_) => {}
            Err(ClientError::Refused {
                code: ErrorCode::Full,
                ..
            }) => return stored,
            Err(e) => panic!("steady: {e}"),
        }
    }
    panic!("the ring never filled");
}

#[test]
fn a_full_ring_answers_full_stores_crit_from_the_reserve_and_other_subscriptions_keep_getting_their_events(
) {
    let region_bytes = 4 << 20;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &["--region-size", "4M"]);
    let pid = d.child.id();
    // A durable subscription nobody attaches holds every event meant for it.
    create_detached(&d.socket(), "hog", "hog.>");
    let mut steady = Steady::start(&d.socket(), "steady");
    let before = rss_of(pid);
    let mut flood = Client::connect(&d.socket(), Role::Producer, "flood").unwrap();
    let hogged = fill_ring(&mut flood, &mut steady);
    let status = d.status();
    let hog = sub_row(&status, "hog");
    assert_eq!(hog["holds_ring"], true, "{status}");
    assert_eq!(hog["connected"], false, "{status}");
    eprintln!(
        "ring full with {hogged} events: {} of {} slots used, {} in reserve",
        status["ring"]["used_slots"], status["ring"]["slot_count"], status["ring"]["reserve_slots"]
    );
    // The well-behaved producer is answered `full` for `info`, and its `crit` events
    // are stored from the reserve and delivered to its subscriber, again and again.
    for _ in 0..10 {
        steady.refused_full();
        steady.step_with(Severity::Critical);
    }
    assert_rss_within(
        "a full ring",
        before,
        rss_of(pid),
        Load {
            connections: 6,
            subscriptions: 2,
            region_bytes,
        },
    );
    // The hog attaches and confirms everything: the ring drains and `info` is stored
    // again.
    let mut hog = Client::connect(&d.socket(), Role::Subscriber, "hog").unwrap();
    hog.subscribe("hog", &["hog.>"], Severity::Debug, 4096, false)
        .unwrap();
    let mut confirmed = BTreeSet::new();
    while (confirmed.len() as u64) < hogged {
        let seq = hog
            .next_delivery(Some(STUCK_AFTER))
            .unwrap()
            .unwrap_or_else(|| panic!("hog: {} of {hogged} delivered: stuck", confirmed.len()))
            .seq;
        confirmed.insert(seq);
        hog.confirm(seq, seq).unwrap();
    }
    hog.flush().unwrap();
    d.wait_for_status("the ring drained", |s| s["ring"]["used_slots"] == 0);
    steady.steps(10);
}

#[test]
fn a_full_dead_letter_area_holds_the_given_up_events_while_other_subscriptions_keep_being_served() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    // A dead-letter area of 16 one-slot letters, as in tests/hardening.rs.
    let region_bytes = 1 << 20;
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
    drop(
        herald::log::create_file(&dir.path().join("region.pmem"), region_bytes, &options, 7)
            .unwrap(),
    );
    // A backoff of an hour: the events waiting for room are not redelivered meanwhile.
    let d = Daemon::start(
        dir.path(),
        &[
            "--redelivery-backoff",
            "1h",
            "--redelivery-backoff-max",
            "1h",
        ],
    );
    let pid = d.child.id();
    let mut steady = Steady::start(&d.socket(), "steady");
    let mut audit = Client::connect(&d.socket(), Role::Subscriber, "audit").unwrap();
    audit
        .subscribe("audit", &["audit.>"], Severity::Debug, 64, false)
        .unwrap();
    let mut producer = Client::connect(&d.socket(), Role::Producer, "bad").unwrap();
    let before = rss_of(pid);
    // Forty events rejected: sixteen fill the area, the rest wait for room.
    for i in 0..40 {
        let payload = format!("bad {i}");
        let stored = producer
            .publish(&event("audit.x", Severity::Warning, payload.as_bytes()))
            .unwrap();
        let seq = audit
            .next_delivery(Some(STUCK_AFTER))
            .unwrap()
            .expect("a delivery to reject")
            .seq;
        assert_eq!(seq, stored.first_seq);
        audit.reject(seq).unwrap();
        audit.flush().unwrap();
        steady.step();
    }
    d.wait_for_status("the area full, 24 waiting", |s| {
        s["dead_letters"]["full"] == true && s["dead_letters"]["events_waiting_for_room"] == 24
    });
    // The others keep being served while the area is full.
    steady.steps(100);
    let status = d.status();
    assert_eq!(sub_row(&status, "audit")["dead_lettered"], 16, "{status}");
    assert_eq!(
        status["dead_letters"]["events_waiting_for_room"], 24,
        "{status}"
    );
    assert_rss_within(
        "a full dead-letter area",
        before,
        rss_of(pid),
        Load {
            connections: 6,
            subscriptions: 2,
            region_bytes,
        },
    );
    // Room made, the waiting ones become dead letters and the ring drains.
    for _ in 0..2 {
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
        steady.step();
    }
    d.wait_for_status("everything dead-lettered and released", |s| {
        s["dead_letters"]["full"] == false
            && s["dead_letters"]["events_waiting_for_room"] == 0
            && s["ring"]["used_slots"] == 0
    });
    assert_eq!(sub_row(&d.status(), "audit")["dead_lettered"], 40);
    steady.steps(10);
}
