//! Delivery under failure, through the real daemon binary and sockets: deadlines and
//! redelivery, nak/working/reject, dead letters, a full ring, recovery mode.

#[path = "support/daemon.rs"]
mod daemon;

use daemon::{event, herald, publish_each, sub_row};

use herald::client::{Client, ClientError, Incoming, SubscribeOptions};
use herald::protocol::{ErrorCode, Event, Role, Seq, Severity, SubscriptionMode};
use std::time::Duration;

/// How long a delivery that must come may take: a failure detector only. "Nothing
/// else arrives" is never a wait: a marker published after is the next delivery, or
/// status shows nothing in flight.
const WAIT: Option<Duration> = Some(Duration::from_secs(20));

fn subscriber(d: &daemon::Daemon, name: &str, options: SubscribeOptions) -> Client {
    let mut c = Client::connect(&d.socket(), Role::Subscriber, name).unwrap();
    c.subscribe_with(name, &[">"], &options).unwrap();
    c
}

fn policy(ack_deadline_ms: u32, max_deliveries: u16) -> SubscribeOptions {
    SubscribeOptions {
        ack_deadline_ms,
        max_deliveries,
        window_events: 8,
        ..SubscribeOptions::default()
    }
}

/// (seq, redelivered, delivery_count, payload) of the next delivery.
fn next(c: &mut Client) -> (Seq, bool, u16, Vec<u8>) {
    let d = c
        .next_delivery(WAIT)
        .unwrap()
        .expect("a delivery within the wait");
    (
        d.seq,
        d.redelivered,
        d.delivery_count,
        d.event.payload.to_vec(),
    )
}

const FAST_BACKOFF: [&str; 4] = [
    "--redelivery-backoff",
    "20ms",
    "--redelivery-backoff-max",
    "80ms",
];

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

#[test]
fn after_a_crash_a_subscription_with_unsettled_events_recovers_and_new_events_wait_for_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    let manual = SubscribeOptions {
        automatic_recovery: false,
        ..policy(0, 0)
    };
    let automatic = SubscribeOptions {
        automatic_recovery: true,
        ..policy(0, 0)
    };
    drop(subscriber(&d, "manual", manual));
    drop(subscriber(&d, "auto", automatic));
    drop(subscriber(&d, "idle", policy(0, 0)));
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    let before: Vec<Seq> = publish_each(
        &mut p,
        "fs.disk.error",
        Severity::Error,
        (0..5).map(|i| format!("before {i}")),
    );
    // "idle" settles everything: it has nothing to recover.
    let mut idle = subscriber(&d, "idle", policy(0, 0));
    for want in &before {
        let (seq, _, _, _) = next(&mut idle);
        assert_eq!(seq, *want);
        idle.confirm(seq, seq).unwrap();
    }
    idle.flush().unwrap();
    d.wait_for_status("idle's cursor", |s| {
        sub_row(s, "idle")["cursor"].as_u64() > Some(before[4].0)
    });
    drop(idle);
    d.kill();

    let d = daemon::Daemon::start(dir.path(), &[]);
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    let new = p
        .publish(&event("fs.disk.error", Severity::Error, b"new"))
        .unwrap()
        .first_seq;
    let s = d.status();
    assert_eq!(sub_row(&s, "manual")["mode"], "recovering", "{s}");
    assert_eq!(sub_row(&s, "auto")["mode"], "recovering", "{s}");
    assert_eq!(sub_row(&s, "idle")["mode"], "normal", "{s}");

    for (name, options) in [("manual", manual), ("auto", automatic)] {
        let mut c = Client::connect(&d.socket(), Role::Subscriber, name).unwrap();
        let subscribed = c.subscribe_with(name, &[">"], &options).unwrap();
        assert_eq!(subscribed.mode, SubscriptionMode::Recovering, "{name}");
        for want in &before {
            let (seq, redelivered, _, _) = next(&mut c);
            assert_eq!((seq, redelivered), (*want, true), "{name}: replay in order");
            c.confirm(seq, seq).unwrap();
        }
        match c.next_incoming(WAIT).unwrap() {
            Some(Incoming::RecoveryDone) => {}
            other => panic!("{name}: expected RecoveryDone, got {other:?}"),
        }
        if name == "manual" {
            // New events wait for `Recovered`. Once the replay's confirmations are in,
            // the daemon has had its turn to send the new event: status shows nothing
            // in flight, and a ping asked after it finds no delivery ahead of its pong.
            c.flush().unwrap();
            let s = d.wait_for_status("the replay confirmed", |s| {
                let row = sub_row(s, "manual");
                row["cursor"].as_u64() >= row["replay_end"].as_u64()
            });
            let row = sub_row(&s, "manual");
            assert_eq!(row["mode"], "recovering", "{s}");
            assert_eq!(row["replay_end"].as_u64(), Some(new.0), "{s}");
            assert_eq!(row["in_flight"], 0, "new events wait for `Recovered`: {s}");
            c.ping().expect("a pong, and no delivery before it");
            c.recovered().unwrap();
        }
        let (seq, redelivered, _, _) = next(&mut c);
        assert_eq!(
            (seq, redelivered),
            (new, false),
            "{name}: then the new event"
        );
        c.confirm(seq, seq).unwrap();
        c.flush().unwrap();
        d.wait_for_status("normal mode", |s| sub_row(s, name)["mode"] == "normal");
    }
    // Normal mode is persistent: a clean restart keeps it.
    assert!(d.stop().success());
    let d = daemon::Daemon::start(dir.path(), &[]);
    let s = d.status();
    for name in ["manual", "auto", "idle"] {
        assert_eq!(sub_row(&s, name)["mode"], "normal", "{name}: {s}");
    }
}

#[test]
fn a_clean_stop_leaves_subscriptions_normal_even_with_unsettled_events() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    drop(subscriber(&d, "later", policy(0, 0)));
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    let seq = p
        .publish(&event("fs.quota", Severity::Notice, b"pending"))
        .unwrap()
        .first_seq;
    assert!(d.stop().success());
    let d = daemon::Daemon::start(dir.path(), &[]);
    let mut c = Client::connect(&d.socket(), Role::Subscriber, "later").unwrap();
    let subscribed = c.subscribe_with("later", &[">"], &policy(0, 0)).unwrap();
    assert_eq!(subscribed.mode, SubscriptionMode::Normal);
    assert_eq!(next(&mut c).0, seq);
}

#[test]
fn producers_are_served_during_the_start_up_replay_and_their_events_follow_it_in_order() {
    const BEFORE: usize = 3000;
    const DURING: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    let options = SubscribeOptions {
        automatic_recovery: true,
        window_events: 16,
        ..policy(0, 0)
    };
    for name in ["a", "b"] {
        drop(subscriber(&d, name, options));
    }
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    let mut before = Vec::new();
    for i in 0..BEFORE {
        p.send_publish(&event(
            "fs.replay",
            Severity::Info,
            format!("before {i}").as_bytes(),
        ))
        .unwrap();
        if p.outstanding() >= 256 || i + 1 == BEFORE {
            p.flush().unwrap();
            while p.outstanding() > 0 {
                before.push(p.recv_stored().unwrap().first_seq);
            }
        }
    }
    d.kill();

    let d = daemon::Daemon::start(dir.path(), &[]);
    let mut subs: Vec<Client> = ["a", "b"]
        .iter()
        .map(|name| {
            let mut c = Client::connect(&d.socket(), Role::Subscriber, name).unwrap();
            let s = c.subscribe_with(name, &[">"], &options).unwrap();
            assert_eq!(s.mode, SubscriptionMode::Recovering);
            c
        })
        .collect();
    // Each subscriber has started its replay; none has finished it.
    let mut seen: Vec<Vec<(Seq, bool)>> = vec![Vec::new(), Vec::new()];
    for (c, seen) in subs.iter_mut().zip(seen.iter_mut()) {
        for _ in 0..10 {
            let (seq, redelivered, _, _) = next(c);
            seen.push((seq, redelivered));
            c.confirm(seq, seq).unwrap();
        }
    }
    // A producer publishes now, mid-replay, and is answered without waiting for it.
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    let during: Vec<Seq> = publish_each(
        &mut p,
        "fs.replay",
        Severity::Info,
        (0..DURING).map(|i| format!("during {i}")),
    );
    let s = d.status();
    for name in ["a", "b"] {
        assert_eq!(
            sub_row(&s, name)["mode"],
            "recovering",
            "still replaying: {s}"
        );
    }
    for (i, c) in subs.iter_mut().enumerate() {
        let mut done = false;
        while seen[i].len() < BEFORE + DURING {
            match c.next_incoming(WAIT).unwrap() {
                Some(Incoming::Deliver(dl)) => {
                    let (seq, redelivered) = (dl.seq, dl.redelivered);
                    seen[i].push((seq, redelivered));
                    c.confirm(seq, seq).unwrap();
                }
                Some(Incoming::RecoveryDone) => {
                    assert_eq!(seen[i].len(), BEFORE, "RecoveryDone right after the replay");
                    done = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(done, "subscriber {i} got RecoveryDone");
        let (replayed, new) = seen[i].split_at(BEFORE);
        assert_eq!(
            replayed.iter().map(|s| s.0).collect::<Vec<_>>(),
            before,
            "replay in order"
        );
        assert!(replayed.iter().all(|s| s.1), "replayed events are flagged");
        assert_eq!(
            new.iter().map(|s| s.0).collect::<Vec<_>>(),
            during,
            "then the new ones, in order"
        );
        assert!(new.iter().all(|s| !s.1));
    }
}

#[test]
fn a_damaged_subscription_is_reported_by_check_and_recovers_instead_of_stopping_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    drop(subscriber(&d, "ops", policy(0, 0)));
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    let seqs: Vec<Seq> = publish_each(
        &mut p,
        "fs.disk.error",
        Severity::Error,
        (0..3).map(|i| format!("e{i}")),
    );
    assert!(d.stop().success());
    let clean = herald(&["check", "--data-dir", data]);
    assert!(clean.status.success(), "{clean:?}");

    // Both cursor records of the entry (its last 64 bytes) are overwritten.
    let region = dir.path().join("region.pmem");
    let inspect = herald(&["inspect", region.to_str().unwrap(), "--json"]);
    let doc: serde_json::Value =
        serde_json::from_slice(inspect.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    let table = doc["geometry"]["subscriptions_data_offset"]
        .as_u64()
        .unwrap() as usize;
    let mut bytes = std::fs::read(&region).unwrap();
    bytes[table + 448..table + 512].fill(0xA5);
    std::fs::write(&region, &bytes).unwrap();

    let check = herald(&["check", "--data-dir", data]);
    let out = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(3), "{out}");
    assert!(out.contains("PROBLEM subscription \"ops\""), "{out}");
    assert!(out.contains("cursor records fail their checksum"), "{out}");
    let json = herald(&["check", "--data-dir", data, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["ok"], false);

    let d = daemon::Daemon::start(dir.path(), &[]);
    let s = d.status();
    let row = sub_row(&s, "ops");
    assert_eq!(row["mode"], "recovering", "{s}");
    assert!(row["damage"].is_string(), "{s}");
    assert!(
        s["start_checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["area"] == "subscription" && f["severity"] == "problem"),
        "{s}"
    );
    // It replays everything still in the ring rather than guess.
    let mut c = Client::connect(&d.socket(), Role::Subscriber, "ops").unwrap();
    let subscribed = c.subscribe_with("ops", &[">"], &policy(0, 0)).unwrap();
    assert_eq!(subscribed.mode, SubscriptionMode::Recovering);
    for want in &seqs {
        let (seq, redelivered, _, _) = next(&mut c);
        assert_eq!((seq, redelivered), (*want, true));
    }
}

#[test]
fn dead_letters_are_listed_replayed_and_purged_by_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    let mut sub = subscriber(&d, "audit", policy(0, 0));
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    let seqs: Vec<Seq> = publish_each(
        &mut p,
        "audit.login",
        Severity::Warning,
        (0..3).map(|i| format!("bad {i}")),
    );
    for want in &seqs {
        let (seq, _, _, _) = next(&mut sub);
        assert_eq!(seq, *want);
        sub.reject(seq).unwrap();
    }
    sub.flush().unwrap();
    d.wait_for_status("three dead letters", |s| {
        sub_row(s, "audit")["dead_lettered"] == 3
    });
    let list = herald(&["dead", "list", "--data-dir", data]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{list:?}");
    for (i, seq) in seqs.iter().enumerate() {
        assert!(
            text.lines().any(|l| l.contains("audit")
                && l.contains(&seq.0.to_string())
                && l.contains("rejected")
                && l.contains(&format!("bad {i}"))),
            "{text}"
        );
    }
    // Replay the second: it comes again, flagged; confirmed, it is purged.
    let replay = herald(&[
        "dead",
        "replay",
        "--data-dir",
        data,
        "--subscription",
        "audit",
        "--seq",
        &seqs[1].0.to_string(),
    ]);
    assert!(replay.status.success(), "{replay:?}");
    let (seq, redelivered, count, payload) = next(&mut sub);
    assert_eq!((seq, redelivered, count), (seqs[1], true, 2));
    assert_eq!(payload, b"bad 1");
    sub.confirm(seq, seq).unwrap();
    sub.flush().unwrap();
    let remaining = |d: &daemon::Daemon| {
        let mut control = Client::connect(&d.socket(), Role::Control, "test").unwrap();
        let answer: serde_json::Value = serde_json::from_str(
            &control
                .admin(r#"{"op":"dead.list","subscription":"audit"}"#)
                .unwrap(),
        )
        .unwrap();
        answer["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seq"].as_u64().unwrap())
            .collect::<Vec<u64>>()
    };
    d.wait_for_status("the replayed dead letter purged", |s| {
        s["dead_letters"]["count"] == 2
    });
    assert_eq!(remaining(&d), vec![seqs[0].0, seqs[2].0]);
    // Dead letters survive a crash; purge removes them for good.
    d.kill();
    let d = daemon::Daemon::start(dir.path(), &[]);
    assert_eq!(remaining(&d), vec![seqs[0].0, seqs[2].0]);
    let purge = herald(&[
        "dead",
        "purge",
        "--data-dir",
        data,
        "--subscription",
        "audit",
        "--all",
    ]);
    assert!(purge.status.success(), "{purge:?}");
    assert!(String::from_utf8_lossy(&purge.stdout).contains("2 dead letters purged"));
    assert!(remaining(&d).is_empty());
    // Bad requests are clear errors, not dropped connections.
    let unknown = herald(&[
        "dead",
        "purge",
        "--data-dir",
        data,
        "--subscription",
        "nobody",
        "--all",
    ]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr)
        .contains("no durable subscription named \"nobody\""));
    let mut control = Client::connect(&d.socket(), Role::Control, "test").unwrap();
    let answer = control.admin(r#"{"op":"dead.explode"}"#).unwrap();
    assert!(answer.contains("unknown op"), "{answer}");
    assert!(control.status().is_ok(), "the connection stays open");
}

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

#[test]
fn a_damaged_dead_letter_is_reported_and_can_be_purged_by_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    let mut sub = subscriber(&d, "audit", policy(0, 0));
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    p.publish(&event("audit.login", Severity::Warning, b"bad"))
        .unwrap();
    let (seq, _, _, _) = next(&mut sub);
    sub.reject(seq).unwrap();
    sub.flush().unwrap();
    d.wait_for_status("the dead letter", |s| {
        sub_row(s, "audit")["dead_lettered"] == 1
    });
    drop(sub);
    assert!(d.stop().success());
    // The first dead letter sits at the start of the area: damage its copy.
    let region = dir.path().join("region.pmem");
    let inspect = herald(&["inspect", region.to_str().unwrap(), "--json"]);
    let doc: serde_json::Value =
        serde_json::from_slice(inspect.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    let area = doc["geometry"]["dead_letters_data_offset"]
        .as_u64()
        .unwrap() as usize;
    let mut bytes = std::fs::read(&region).unwrap();
    bytes[area + 80] ^= 0xFF;
    std::fs::write(&region, &bytes).unwrap();

    let check = herald(&["check", "--data-dir", data]);
    let out = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(3), "{out}");
    assert!(out.contains("PROBLEM dead_letters"), "{out}");

    let d = daemon::Daemon::start(dir.path(), &[]);
    let list = herald(&["dead", "list", "--data-dir", data]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("no dead letters"));
    let purge = herald(&["dead", "purge", "--data-dir", data, "--unowned"]);
    assert!(purge.status.success(), "{purge:?}");
    assert!(String::from_utf8_lossy(&purge.stdout).contains("1 dead letters purged"));
    assert!(d.stop().success());
    let check = herald(&["check", "--data-dir", data]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn with_the_dead_letter_area_full_a_rejected_event_stays_held_until_room_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    // A region whose dead-letter area holds 16 one-slot letters.
    let options = herald::log::StoreOptions {
        config: herald::log::LogConfig {
            slot_bytes: 128,
            reserve_slots: None,
            subscription_entries: 8,
            payload_bytes_max: 1024,
            dead_letter_slots: Some(16),
        },
        ..Default::default()
    };
    drop(herald::log::create_file(&dir.path().join("region.pmem"), 1 << 20, &options, 7).unwrap());
    let d = daemon::Daemon::start(dir.path(), &FAST_BACKOFF);
    let mut sub = subscriber(
        &d,
        "audit",
        SubscribeOptions {
            window_events: 32,
            ..policy(0, 0)
        },
    );
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    let seqs = publish_each(
        &mut p,
        "audit.login",
        Severity::Warning,
        (0..17).map(|i| format!("bad {i}")),
    );
    for want in &seqs {
        let (seq, _, _, _) = next(&mut sub);
        assert_eq!(seq, *want);
        sub.reject(seq).unwrap();
    }
    sub.flush().unwrap();
    d.wait_for_status("the area to fill", |s| {
        sub_row(s, "audit")["dead_lettered"] == 16
    });
    // The seventeenth is neither lost nor sent again: it holds the ring. A marker
    // published now is the next delivery (a redelivery would come first), and the
    // redelivery count stays 0 to the end.
    let marker = p
        .publish(&event("audit.login", Severity::Warning, b"marker"))
        .unwrap()
        .first_seq;
    let (seq, redelivered, _, _) = next(&mut sub);
    assert_eq!((seq, redelivered), (marker, false), "not redelivered");
    sub.confirm(marker, marker).unwrap();
    sub.flush().unwrap();
    let s = d.wait_for_status("the marker confirmed", |s| {
        sub_row(s, "audit")["in_flight"].as_u64() <= Some(1)
    });
    let row = sub_row(&s, "audit");
    assert_eq!(
        (
            row["dead_lettered"].as_u64(),
            row["in_flight"].as_u64(),
            row["redelivered"].as_u64()
        ),
        (Some(16), Some(1), Some(0)),
        "{s}"
    );
    assert_eq!(row["holds_ring"], true, "{s}");
    // Room made: it becomes a dead letter on its next try, and the ring drains.
    let purge = herald(&[
        "dead",
        "purge",
        "--data-dir",
        data,
        "--subscription",
        "audit",
        "--all",
    ]);
    assert!(purge.status.success(), "{purge:?}");
    let s = d.wait_for_status("the held event to be dead-lettered", |s| {
        sub_row(s, "audit")["dead_lettered"] == 17 && s["ring"]["used_slots"] == 0
    });
    assert_eq!(
        sub_row(&s, "audit")["redelivered"],
        0,
        "never sent again: {s}"
    );
    let list = herald(&["dead", "list", "--data-dir", data, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(doc["dead_letters"][0]["seq"].as_u64(), Some(seqs[16].0));
    assert_eq!(doc["total"], 1);
}
