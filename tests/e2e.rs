//! End to end, over real sockets, with the real daemon binary and the client library.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/seed.rs"]
mod seed;

use daemon::{event, publish_each};

use herald::client::Client;
use herald::protocol::{Role, Seq, Severity};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::Duration;

const WAIT: Option<Duration> = Some(Duration::from_secs(20));

/// What one subscription is meant to get: (name, patterns, min severity).
const SUBSCRIPTIONS: [(&str, &[&str], Severity); 3] = [
    ("storage", &["fs.>"], Severity::Debug),
    ("errors", &["*.*.error"], Severity::Error),
    ("network", &["net.>", "dns.*"], Severity::Warning),
];
const TOPICS: [&str; 6] = [
    "fs.disk.error",
    "fs.quota",
    "net.link.error",
    "net.link.up",
    "dns.timeout",
    "app.cache.error",
];

fn is_match(patterns: &[&str], min: Severity, topic: &str, severity: Severity) -> bool {
    severity.as_u8() <= min.as_u8()
        && patterns.iter().any(|p| {
            herald::protocol::Pattern::parse(p.as_bytes())
                .unwrap()
                .matches(topic.as_bytes())
        })
}

#[test]
fn three_durable_subscriptions_each_receive_exactly_their_events_in_order_once_and_events_are_released_after_the_last_confirmation(
) {
    // Chooses each producer's topics and severities; how the producers interleave is
    // the scheduler's, and every check holds for any interleaving.
    let seed = seed::Seed::from_env("HERALD_E2E_SEED", 0, "cargo test --test e2e");
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    let socket = d.socket();
    // Subscriptions exist before anything is published, so every event has its
    // intended recipients fixed when it is stored.
    let mut subscribers: Vec<Client> = SUBSCRIPTIONS
        .iter()
        .map(|(name, patterns, min)| {
            let mut c = Client::connect(&socket, Role::Subscriber, name).unwrap();
            c.subscribe(name, patterns, *min, 16, false).unwrap();
            c
        })
        .collect();

    // Four producers, each publishing 300 events, pipelined, some in batches.
    let producers: Vec<_> = (0..4u64)
        .map(|p| {
            let socket = socket.clone();
            let seed = seed.value.wrapping_add(p);
            std::thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(seed);
                let mut client =
                    Client::connect(&socket, Role::Producer, &format!("producer-{p}")).unwrap();
                let mut stored = Vec::new();
                for i in 0..300u32 {
                    let topic = TOPICS[rng.gen_range(0..TOPICS.len())];
                    let severity = Severity::ALL[rng.gen_range(0..Severity::ALL.len())];
                    let payload = format!("p{p} e{i}");
                    let s = client
                        .publish(&event(topic, severity, payload.as_bytes()))
                        .unwrap();
                    stored.push((s.first_seq.0, topic, severity, payload));
                }
                stored
            })
        })
        .collect();
    let mut all: BTreeMap<u64, (&str, Severity, String)> = BTreeMap::new();
    for p in producers {
        for (seq, topic, severity, payload) in p.join().unwrap() {
            assert!(
                all.insert(seq, (topic, severity, payload)).is_none(),
                "sequence number {seq} given twice"
            );
        }
    }
    // End markers: every subscription matches at least one; each reads up to the last
    // one it matches, so an extra or missing event before it cannot go unnoticed.
    let mut closer = Client::connect(&socket, Role::Producer, "closer").unwrap();
    let markers: Vec<(u64, &str)> = ["fs.end.error", "net.end.error"]
        .into_iter()
        .map(|t| {
            (
                closer
                    .publish(&event(t, Severity::Emergency, b"end"))
                    .unwrap()
                    .first_seq
                    .0,
                t,
            )
        })
        .collect();
    assert!(*all.keys().last().unwrap() < markers[0].0);

    for (sub, (name, patterns, min)) in subscribers.iter_mut().zip(SUBSCRIPTIONS) {
        let expected: Vec<u64> = all
            .iter()
            .filter(|(_, (t, s, _))| is_match(patterns, min, t, *s))
            .map(|(seq, _)| *seq)
            .collect();
        let end = markers
            .iter()
            .rev()
            .find(|(_, t)| is_match(patterns, min, t, Severity::Emergency))
            .expect("a marker per subscription")
            .0;
        let mut got = Vec::new();
        loop {
            let d = sub
                .next_delivery(WAIT)
                .unwrap()
                .unwrap_or_else(|| panic!("{name}: delivery timed out after {} events", got.len()));
            let seq = d.seq;
            assert!(!d.redelivered);
            if !markers.iter().any(|(m, _)| *m == seq.0) {
                let (topic, severity, payload) = &all[&seq.0];
                assert_eq!(d.event.topic.as_bytes(), topic.as_bytes());
                assert_eq!(d.event.severity, *severity);
                assert_eq!(d.event.payload, payload.as_bytes());
                assert!(d.event.source.starts_with("producer-"));
                got.push(seq.0);
            }
            sub.confirm(seq, seq).unwrap();
            if seq.0 == end {
                break;
            }
        }
        assert_eq!(
            got, expected,
            "{name}: exactly its matching events, in order, once"
        );
        assert!(!expected.is_empty());
        // The pong comes back after the turn that applied the confirms has released.
        sub.ping().unwrap();
    }
    let s = d.status();
    assert_eq!(
        s["ring"]["used_slots"], 0,
        "every event released after the last confirmation: {s}"
    );
    assert_eq!(s["subscriptions"].as_array().unwrap().len(), 3);
    assert!(
        s["region"]["path"]
            .as_str()
            .unwrap()
            .ends_with("/region.pmem"),
        "{s}"
    );
}

#[test]
fn an_event_stays_until_its_last_intended_subscriber_confirms() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    let mut a = Client::connect(&d.socket(), Role::Subscriber, "a").unwrap();
    a.subscribe("a", &["fs.>"], Severity::Debug, 8, false)
        .unwrap();
    let mut b = Client::connect(&d.socket(), Role::Subscriber, "b").unwrap();
    b.subscribe("b", &["fs.disk.*"], Severity::Debug, 8, false)
        .unwrap();
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    p.publish(&event("fs.quota", Severity::Info, b"only a"))
        .unwrap();
    let both = p
        .publish(&event("fs.disk.error", Severity::Error, b"a and b"))
        .unwrap()
        .first_seq;

    for _ in 0..2 {
        let seq = a.next_delivery(WAIT).unwrap().unwrap().seq;
        a.confirm(seq, seq).unwrap();
    }
    a.ping().unwrap();
    let held = d.status();
    assert_eq!(
        held["ring"]["head"], both.0,
        "b has not confirmed: the shared event is held, the other released: {held}"
    );
    let seq = b.next_delivery(WAIT).unwrap().unwrap().seq;
    assert_eq!(seq, both);
    b.confirm(seq, seq).unwrap();
    b.ping().unwrap();
    assert_eq!(d.status()["ring"]["used_slots"], 0);
}

#[test]
fn after_kill_9_every_unconfirmed_event_is_redelivered_in_order_flagged_before_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    let mut sub = Client::connect(&d.socket(), Role::Subscriber, "ops").unwrap();
    sub.subscribe("ops", &[">"], Severity::Debug, 4, false)
        .unwrap();
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    let seqs: Vec<Seq> = publish_each(
        &mut p,
        "fs.disk.error",
        Severity::Error,
        (0..10).map(|i| format!("before {i}")),
    );
    // Confirm the first three only.
    for expected in &seqs[..3] {
        let got = sub.next_delivery(WAIT).unwrap().unwrap().seq;
        assert_eq!(got, *expected);
        sub.confirm(got, got).unwrap();
    }
    sub.flush().unwrap();
    let cursor = seqs[3].0;
    d.wait_for_status("the third confirmation to be persisted", |s| {
        s["subscriptions"][0]["cursor"] == cursor
    });
    d.kill();

    let d = daemon::Daemon::start(dir.path(), &[]);
    assert!(
        d.ready_line.contains("7 unconfirmed events recovered"),
        "{}",
        d.ready_line
    );
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    let after = p
        .publish(&event("fs.disk.error", Severity::Error, b"after restart"))
        .unwrap()
        .first_seq;
    let mut sub = Client::connect(&d.socket(), Role::Subscriber, "ops").unwrap();
    let subscribed = sub
        .subscribe("ops", &[">"], Severity::Debug, 4, false)
        .unwrap();
    assert_eq!(subscribed.pending_events, 8);
    assert_eq!(
        subscribed.mode,
        herald::protocol::SubscriptionMode::Recovering,
        "after kill -9 with unconfirmed events"
    );
    for (i, expected) in seqs[3..].iter().enumerate() {
        let dl = sub.next_delivery(WAIT).unwrap().unwrap();
        assert_eq!(dl.seq, *expected);
        assert!(dl.redelivered, "replayed events are flagged");
        assert_eq!(dl.event.payload, format!("before {}", i + 3).as_bytes());
        let seq = dl.seq;
        sub.confirm(seq, seq).unwrap();
    }
    // The subscriber finishes its own recovery, then new events flow.
    sub.recovered().unwrap();
    let dl = sub.next_delivery(WAIT).unwrap().unwrap();
    assert_eq!(dl.seq, after, "new events only after the replay");
    assert!(!dl.redelivered);
}

#[test]
fn a_stuck_subscriber_holds_only_its_window_and_never_delays_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    let mut stuck = Client::connect(&d.socket(), Role::Subscriber, "stuck").unwrap();
    stuck
        .subscribe("stuck", &[">"], Severity::Debug, 4, false)
        .unwrap();
    let mut fast = Client::connect(&d.socket(), Role::Subscriber, "fast").unwrap();
    fast.subscribe("fast", &[">"], Severity::Debug, 64, false)
        .unwrap();
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    let payload = [7u8; 512];
    for _ in 0..2000 {
        p.send_publish(&event("load.test", Severity::Info, &payload))
            .unwrap();
        if p.outstanding() >= 128 {
            p.flush().unwrap();
            p.recv_stored().unwrap();
        }
    }
    p.flush().unwrap();
    while p.outstanding() > 0 {
        p.recv_stored().unwrap();
    }
    for _ in 0..2000 {
        let seq = fast
            .next_delivery(WAIT)
            .unwrap()
            .expect("the fast subscriber is not held back")
            .seq;
        fast.confirm(seq, seq).unwrap();
    }
    fast.ping().unwrap();
    let s = d.status();
    let rows = s["subscriptions"].as_array().unwrap();
    let stuck_row = rows.iter().find(|r| r["name"] == "stuck").unwrap();
    assert_eq!(
        stuck_row["in_flight"], 4,
        "the stuck subscriber has exactly its window in flight: {s}"
    );
    assert_eq!(stuck_row["holds_ring"], true);
    let fast_row = rows.iter().find(|r| r["name"] == "fast").unwrap();
    assert_eq!(fast_row["in_flight"], 0);
}

#[test]
fn connections_that_say_goodbye_or_vanish_are_closed_and_their_slots_freed() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &["--connections-max", "4"]);
    for i in 0..20 {
        let mut p = Client::connect(&d.socket(), Role::Producer, "short-lived").unwrap();
        p.publish(&event("a.b", Severity::Info, b"x")).unwrap();
        if i % 2 == 0 {
            p.goodbye().unwrap();
        } // else: dropped without a goodbye
    }
    // Only 4 slots exist: 20 connections in a row work only if each was freed.
    d.wait_for_status("closed connections to be freed", |s| {
        s["connections"]["open"] == 1
    });
    assert_eq!(d.status()["connections"]["refused_at_limit"], 0);
}

#[test]
fn inspect_reads_a_live_daemons_region_without_disturbing_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    let mut sub = Client::connect(&d.socket(), Role::Subscriber, "ops").unwrap();
    sub.subscribe("ops", &[">"], Severity::Debug, 8, false)
        .unwrap();
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    for i in 0..5 {
        p.publish(&event(
            "fs.disk.error",
            Severity::Error,
            format!("e{i}").as_bytes(),
        ))
        .unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["inspect", "--events", "--json"])
        .arg(dir.path().join("region.pmem"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["recovery"]["live_events"], 5);
    assert_eq!(lines.len(), 6);
    // The daemon carries on.
    p.publish(&event("fs.disk.error", Severity::Error, b"after inspect"))
        .unwrap();
    assert_eq!(
        sub.next_delivery(WAIT).unwrap().unwrap().event.payload,
        b"e0"
    );
}
