//! Idempotent publish through the real daemon binary: a retry after a lost `stored`
//! gets the original seq and the event is delivered once; the window forgets its
//! oldest keys beyond its count.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/failure.rs"]
mod failure;

use daemon::{event, sub_row};

use failure::*;
use herald::client::{Client, SubscribeOptions};
use herald::protocol::{Event, Role, Seq, Severity};

fn keyed<'a>(payload: &'a [u8], key: &'a [u8]) -> Event<'a> {
    Event {
        key,
        ..event("orders.shipped", Severity::Notice, payload)
    }
}

#[test]
fn a_retry_after_a_lost_stored_gets_the_original_seq_and_the_event_is_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    let mut sub = subscriber(&d, "once", policy(0, 0));
    // The connection is cut after the event was stored, before `stored` was read.
    let mut lost = Client::connect(&d.socket(), Role::Producer, "shop").unwrap();
    lost.send_publish(&keyed(b"order 17", b"order-17")).unwrap();
    lost.flush().unwrap();
    let (original, _, _, payload) = next(&mut sub);
    assert_eq!(payload, b"order 17");
    drop(lost);
    sub.confirm(original, original).unwrap();
    // The producer comes back and publishes again with the same key.
    let mut p = Client::connect(&d.socket(), Role::Producer, "shop").unwrap();
    let again = p.publish(&keyed(b"order 17", b"order-17")).unwrap();
    assert_eq!(again.first_seq, original, "the original sequence number");
    // A batch repeating it stores only the new event.
    let batch = [
        keyed(b"order 17", b"order-17"),
        keyed(b"order 18", b"order-18"),
    ];
    let stored = p.publish_batch(&batch).unwrap();
    assert_eq!(stored.first_seq, original);
    let (seq, _, _, payload) = next(&mut sub);
    assert_eq!(
        (seq, payload.as_slice()),
        (stored.last_seq, &b"order 18"[..])
    );
    sub.confirm(seq, seq).unwrap();
    // Each event delivered once: the next delivery is a marker published after them
    // (deliveries come in seq order, redeliveries first), and none was redelivered.
    let marker = p
        .publish(&event("orders.shipped", Severity::Notice, b"marker"))
        .unwrap()
        .first_seq;
    assert_eq!(next(&mut sub).0, marker, "each event delivered once");
    sub.confirm(marker, marker).unwrap();
    sub.flush().unwrap();
    let s = d.wait_for_status("everything settled", |s| s["ring"]["used_slots"] == 0);
    assert_eq!(sub_row(&s, "once")["redelivered"], 0, "{s}");
    assert_eq!(s["idempotency"]["publishes_answered_from_window"], 2, "{s}");

    // The window is rebuilt from the log after a crash.
    drop(sub);
    d.kill();
    let d = daemon::Daemon::start(dir.path(), &[]);
    let mut p = Client::connect(&d.socket(), Role::Producer, "shop").unwrap();
    assert_eq!(
        p.publish(&keyed(b"order 17", b"order-17"))
            .unwrap()
            .first_seq,
        original
    );
    // The key is scoped by source: another producer's same key is another event.
    let mut other = Client::connect(&d.socket(), Role::Producer, "warehouse").unwrap();
    let theirs = other
        .publish(&keyed(b"order 17", b"order-17"))
        .unwrap()
        .first_seq;
    assert!(theirs > original);
    let mut sub = subscriber(
        &d,
        "once",
        SubscribeOptions {
            automatic_recovery: true,
            ..policy(0, 0)
        },
    );
    let (seq, redelivered, _, _) = next(&mut sub);
    assert_eq!((seq, redelivered), (theirs, false), "only the new event");
    // And nothing after it but a marker published after it.
    let marker = other
        .publish(&event("orders.shipped", Severity::Notice, b"marker"))
        .unwrap()
        .first_seq;
    let (seq, redelivered, _, _) = next(&mut sub);
    assert_eq!((seq, redelivered), (marker, false), "only the new events");
    assert_eq!(sub_row(&d.status(), "once")["redelivered"], 0);
}

#[test]
fn the_dedupe_window_forgets_the_oldest_keys_beyond_its_count() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &["--dedupe-window-events", "2"]);
    let mut p = Client::connect(&d.socket(), Role::Producer, "shop").unwrap();
    let first: Vec<Seq> = [&b"k1"[..], b"k2", b"k3"]
        .iter()
        .map(|k| p.publish(&keyed(b"x", k)).unwrap().first_seq)
        .collect();
    // k2 and k3 are remembered; k1 was pushed out by k3.
    assert_eq!(p.publish(&keyed(b"x", b"k3")).unwrap().first_seq, first[2]);
    assert_eq!(p.publish(&keyed(b"x", b"k2")).unwrap().first_seq, first[1]);
    let again = p.publish(&keyed(b"x", b"k1")).unwrap().first_seq;
    assert!(again > first[2], "k1 was forgotten: stored anew");
    // Events without a key are never deduplicated.
    let a = p.publish(&keyed(b"x", b"")).unwrap().first_seq;
    let b = p.publish(&keyed(b"x", b"")).unwrap().first_seq;
    assert_ne!(a, b);
}
