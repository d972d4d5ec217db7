//! Dead letters as the operator sees them, through the real daemon binary: listed,
//! replayed and purged; a damaged one reported and purged; a full area holding the
//! events given up on until room is made.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/failure.rs"]
mod failure;

use daemon::{event, herald, publish_each, sub_row};

use failure::*;
use herald::client::{Client, SubscribeOptions};
use herald::protocol::{Role, Seq, Severity};

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
            rule_entries: 0,
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
