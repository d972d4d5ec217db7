//! Delivery under failure, through the real daemon binary and sockets: deadlines and
//! redelivery, nak/working/reject, a subscriber that crashes on an event, a full ring.
//! Recovery after a crash is in `tests/recovery.rs`, the operator's dead letters in
//! `tests/dead_letter_admin.rs`, lost answers in `tests/dedupe.rs`.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/failure.rs"]
mod failure;

use daemon::{event, publish_each, sub_row};

use failure::*;
use herald::client::{Client, ClientError, SubscribeOptions};
use herald::protocol::{ErrorCode, Role, Seq, Severity};
use std::time::Duration;

#[test]
fn an_event_not_settled_in_time_comes_back_flagged_with_a_growing_count_then_becomes_a_dead_letter()
{
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &FAST_BACKOFF);
    let mut sub = subscriber(&d, "slow", policy(100, 3));
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    let poison = p
        .publish(&event("fs.disk.error", Severity::Error, b"poison"))
        .unwrap()
        .first_seq;
    for count in 1..=3u16 {
        let (seq, redelivered, delivery_count, payload) = next(&mut sub);
        assert_eq!((seq, payload.as_slice()), (poison, &b"poison"[..]));
        assert_eq!(redelivered, count > 1);
        assert_eq!(delivery_count, count);
    }
    // Never confirmed: after the third deadline it is a dead letter, settled for the
    // subscription, and the events after it flow.
    let s = d.wait_for_status("the dead letter", |s| {
        sub_row(s, "slow")["dead_lettered"] == 1
    });
    let row = sub_row(&s, "slow");
    assert_eq!(row["in_flight"], 0, "{s}");
    assert_eq!(row["redelivered"], 2, "{s}");
    // The subscriber comes back with a deadline no step of this test comes near (a
    // failure detector), so what follows owes nothing to a deadline.
    drop(sub);
    let mut sub = subscriber(&d, "slow", policy(60_000, 3));
    let [after, marker] = [&b"after"[..], b"marker"].map(|payload| {
        p.publish(&event("fs.disk.error", Severity::Error, payload))
            .unwrap()
            .first_seq
    });
    for want in [after, marker] {
        let (seq, redelivered, count, _) = next(&mut sub);
        assert_eq!(
            (seq, redelivered, count),
            (want, false, 1),
            "the events after it, and not the poison event again"
        );
        sub.confirm(seq, seq).unwrap();
    }
    sub.flush().unwrap();
    let s = d.wait_for_status("the ring to be released", |s| s["ring"]["used_slots"] == 0);
    let row = sub_row(&s, "slow");
    assert_eq!(
        (
            &row["redelivered"],
            &row["dead_lettered"],
            &row["in_flight"]
        ),
        (&2.into(), &1.into(), &0.into()),
        "the poison event stayed dead: {s}"
    );
}

#[test]
fn nak_redelivers_after_its_delay_working_extends_the_deadline_and_reject_is_final() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &FAST_BACKOFF);
    // A deadline no step of this test comes near (a failure detector): only the nak
    // brings an event back, and `working` is seen moving the deadline in status.
    let mut sub = subscriber(&d, "worker", policy(60_000, 5));
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    let seqs = publish_each(
        &mut p,
        "jobs.run",
        Severity::Info,
        ["nak me", "slow work", "reject me"],
    );
    for expected in &seqs {
        assert_eq!(next(&mut sub).0, *expected);
    }
    sub.nak(seqs[0], 50).unwrap();
    sub.reject(seqs[2]).unwrap();
    let started = std::time::Instant::now();
    let (seq, redelivered, count, _) = next(&mut sub);
    assert_eq!(
        (seq, redelivered, count),
        (seqs[0], true, 2),
        "the nak'd event comes back"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "not before its delay"
    );
    sub.confirm(seqs[0], seqs[0]).unwrap();
    sub.flush().unwrap();
    // Once the first is confirmed and the third a dead letter, the second is the one
    // event with a deadline: status shows it.
    let deadline_of_second = |s: &serde_json::Value| {
        sub_row(s, "worker")["deadline_monotonic_ns_min"]
            .as_u64()
            .unwrap_or_else(|| panic!("the second event has a deadline: {s}"))
    };
    let s = d.wait_for_status("the first confirmed, the third a dead letter", |s| {
        let row = sub_row(s, "worker");
        row["in_flight"] == 1 && row["dead_lettered"] == 1
    });
    let mut deadline = deadline_of_second(&s);
    // Each `working` restarts the second's deadline from the moment the daemon reads
    // it. The pong says it was read (one connection's frames are handled in order, and
    // a delivery sent before it would make `ping` fail); the status asked after it
    // shows the new deadline.
    for _ in 0..3 {
        sub.working(seqs[1]).unwrap();
        sub.ping().expect("a pong, and no delivery before it");
        let moved = deadline_of_second(&d.status());
        assert!(
            moved > deadline,
            "working moved the deadline: {moved} > {deadline}"
        );
        deadline = moved;
    }
    sub.confirm(seqs[1], seqs[1]).unwrap();
    // Neither the working event nor the rejected one comes back: the next delivery is
    // a marker published after them (deliveries come in seq order, redeliveries first).
    let marker = p
        .publish(&event("jobs.run", Severity::Info, b"marker"))
        .unwrap()
        .first_seq;
    let (seq, redelivered, count, _) = next(&mut sub);
    assert_eq!((seq, redelivered, count), (marker, false, 1));
    sub.confirm(seq, seq).unwrap();
    sub.flush().unwrap();
    let s = d.wait_for_status("the rejected event as a dead letter", |s| {
        sub_row(s, "worker")["dead_lettered"] == 1 && s["ring"]["used_slots"] == 0
    });
    assert_eq!(sub_row(&s, "worker")["redelivered"], 1, "only the nak: {s}");
}

#[test]
fn an_event_that_makes_its_subscriber_crash_is_dead_lettered_after_the_maximum_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    // Long deadline: only the disconnections count here. Window 1: the good event is
    // not sent (and so not counted) until the poison one is settled.
    let options = SubscribeOptions {
        window_events: 1,
        ..policy(60_000, 3)
    };
    drop(subscriber(&d, "fragile", options));
    let poison = p
        .publish(&event("fs.disk.error", Severity::Error, b"poison"))
        .unwrap()
        .first_seq;
    let good = p
        .publish(&event("fs.disk.error", Severity::Error, b"fine"))
        .unwrap()
        .first_seq;
    for attempt in 1..=3u16 {
        let mut sub = subscriber(&d, "fragile", options);
        let (seq, _, count, _) = next(&mut sub);
        assert_eq!((seq, count), (poison, attempt));
        // The subscriber "crashes" on it: the connection goes away unsettled.
        drop(sub);
    }
    let mut sub = subscriber(&d, "fragile", options);
    let (seq, _, count, _) = next(&mut sub);
    assert_eq!(
        (seq, count),
        (good, 1),
        "the poison event was dead-lettered, not sent a fourth time"
    );
    sub.confirm(seq, seq).unwrap();
    sub.flush().unwrap();
    d.wait_for_status("the dead letter", |s| {
        sub_row(s, "fragile")["dead_lettered"] == 1 && s["ring"]["used_slots"] == 0
    });
}

fn publish_until_full(p: &mut Client, payload: &[u8]) -> Vec<Seq> {
    let mut stored = Vec::new();
    loop {
        match p.publish(&event("fill.up", Severity::Info, payload)) {
            Ok(s) => stored.push(s.first_seq),
            Err(ClientError::Refused {
                code: ErrorCode::Full,
                ..
            }) => return stored,
            Err(e) => panic!("unexpected error while filling the ring: {e}"),
        }
        assert!(stored.len() < 1_000_000, "the ring never filled");
    }
}

#[test]
fn a_stuck_subscriber_fills_the_ring_producers_get_full_crit_still_gets_in_and_everything_flows_after(
) {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &["--region-size", "1M"]);
    let mut stuck = subscriber(&d, "stuck", policy(0, 0));
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    let payload = [3u8; 200];
    let stored = publish_until_full(&mut p, &payload);
    assert!(stored.len() > 100, "{} events before full", stored.len());
    // Still full on retry, and the status says who holds the ring.
    assert!(matches!(
        p.publish(&event("fill.up", Severity::Info, &payload)),
        Err(ClientError::Refused {
            code: ErrorCode::Full,
            ..
        })
    ));
    let s = d.status();
    assert_eq!(sub_row(&s, "stuck")["holds_ring"], true, "{s}");
    // The reserve takes a critical event.
    let crit = p
        .publish(&event(
            "herald.ring.full",
            Severity::Critical,
            b"resources exhausted",
        ))
        .expect("crit is stored from the reserve")
        .first_seq;
    // The subscriber catches up: every acknowledged event arrives, in order, once.
    let mut expected: Vec<Seq> = stored.clone();
    expected.push(crit);
    for want in &expected {
        let (seq, _, _, _) = next(&mut stuck);
        assert_eq!(seq, *want);
        stuck.confirm(seq, seq).unwrap();
    }
    stuck.flush().unwrap();
    d.wait_for_status("the ring to drain", |s| s["ring"]["used_slots"] == 0);
    let again = p
        .publish(&event("fill.up", Severity::Info, &payload))
        .expect("room again")
        .first_seq;
    assert_eq!(next(&mut stuck).0, again);
}

#[test]
fn with_when_full_wait_a_producer_is_held_until_room_appears_or_its_wait_ends() {
    let dir = tempfile::tempdir().unwrap();
    let full_wait = |wait| {
        [
            "--region-size",
            "1M",
            "--when-full",
            "wait",
            "--full-wait",
            wait,
        ]
    };
    let d = daemon::Daemon::start(dir.path(), &full_wait("500ms"));
    let stuck = subscriber(&d, "stuck", policy(0, 0));
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    let payload = [3u8; 200];
    let started = std::time::Instant::now();
    let stored = publish_until_full(&mut p, &payload);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the last publish waited its full wait before `full`"
    );
    // Again with a wait no step of this test comes near (a failure detector), on the
    // same full ring: a publish waits; the subscriber confirms meanwhile and it gets in.
    drop((stuck, p));
    assert!(d.stop().success());
    let d = daemon::Daemon::start(dir.path(), &full_wait("60s"));
    let mut stuck = subscriber(&d, "stuck", policy(0, 0));
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    let correlation = p
        .send_publish(&event("fill.up", Severity::Info, b"waited"))
        .unwrap();
    p.flush().unwrap();
    d.wait_for_status("the producer to wait for room", |s| {
        s["connections"]["producers_waiting_for_room"] == 1
    });
    for want in &stored[..10] {
        let (seq, _, _, _) = next(&mut stuck);
        assert_eq!(seq, *want);
        stuck.confirm(seq, seq).unwrap();
    }
    stuck.flush().unwrap();
    let reply = p.recv_stored().expect("stored once room appeared");
    assert_eq!(reply.correlation, correlation);
    assert!(reply.first_seq > *stored.last().unwrap());
}
