//! Recovery mode through the real daemon binary: after a crash a subscription with
//! unsettled events replays them before anything new, a clean stop leaves it normal,
//! producers are served during the replay, and a damaged subscription recovers
//! instead of stopping the daemon.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/failure.rs"]
mod failure;

use daemon::{event, herald, publish_each, sub_row};

use failure::*;
use herald::client::{Client, Incoming, SubscribeOptions};
use herald::protocol::{Role, Seq, Severity, SubscriptionMode};

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
