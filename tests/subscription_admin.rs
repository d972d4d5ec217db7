//! Managing durable subscriptions as an operator does, through the real binary
//! (`herald subscriptions ...`): created before the consumer exists at a chosen
//! start, paused and resumed, reset back and forward, their filters changed, deleted.
//! Each change must survive a SIGKILL of the daemon right after it was answered.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/failure.rs"]
mod failure;

use daemon::{herald, publish_each, sub_row, Daemon};
use failure::*;
use herald::client::{Client, SubscribeOptions};
use herald::protocol::{Role, Seq, Severity};
use std::path::Path;

/// Runs `herald subscriptions ARGS --data-dir DIR`; Ok(stdout) on success, else
/// Err(stderr).
fn manage(dir: &Path, args: &[&str]) -> Result<String, String> {
    let mut all = vec!["subscriptions"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-dir", dir.to_str().unwrap()]);
    let out = herald(&all);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match out.status.code() {
        Some(0) => Ok(text(&out.stdout)),
        Some(1) => Err(text(&out.stderr)),
        other => panic!("herald {all:?} exited {other:?}: {out:?}"),
    }
}

/// A durable subscriber of every topic that leaves recovery on its own once the
/// replay after a restart is confirmed.
fn attach(d: &Daemon, name: &str) -> Client {
    let options = SubscribeOptions {
        automatic_recovery: true,
        ..policy(0, 0)
    };
    subscriber(d, name, options)
}

fn producer(d: &Daemon) -> Client {
    Client::connect(&d.socket(), Role::Producer, "p").unwrap()
}

/// Reads `count` deliveries and confirms each (sent before it returns); returns
/// (seq, redelivered) of each.
fn take(c: &mut Client, count: usize) -> Vec<(Seq, bool)> {
    let got = (0..count)
        .map(|_| {
            let (seq, redelivered, _, _) = next(c);
            c.confirm(seq, seq).unwrap();
            (seq, redelivered)
        })
        .collect();
    c.flush().unwrap();
    got
}

/// Publishes `n` events that subscriber `name` receives and confirms, then detaches
/// it once status shows them released.
fn publish_and_release(d: &Daemon, name: &str, n: usize) -> Vec<Seq> {
    let mut sub = attach(d, name);
    let seqs = publish_each(
        &mut producer(d),
        "fs.vol1.error",
        Severity::Error,
        (0..n).map(|i| format!("event {i}")),
    );
    let got: Vec<Seq> = take(&mut sub, n).into_iter().map(|(s, _)| s).collect();
    assert_eq!(got, seqs);
    sub.goodbye().unwrap();
    let tail = seqs.last().unwrap().0 + 1;
    d.wait_for_status("the events released and the subscriber gone", |s| {
        let row = sub_row(s, name);
        row["cursor"] == tail && row["connected"] == false && s["ring"]["head"] == tail
    });
    seqs
}

fn created_subscriptions_start_where_asked_and_survive_a_kill(serve: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), serve);
    let seqs = publish_and_release(&d, "first-reader", 5);
    let out = manage(dir.path(), &["create", "from-first", "--start", "first"]).unwrap();
    assert!(
        out.contains(&format!("starts at seq {}", seqs[0].0)),
        "{out}"
    );
    manage(
        dir.path(),
        &[
            "create",
            "from-third",
            "--start",
            &format!("seq:{}", seqs[2].0),
        ],
    )
    .unwrap();
    manage(dir.path(), &["create", "from-now"]).unwrap();
    // What cannot be had is refused, with the reason.
    let taken = manage(dir.path(), &["create", "from-now"]).unwrap_err();
    assert!(taken.contains("exists already"), "{taken}");
    let beyond = manage(dir.path(), &["create", "x", "--start", "seq:99"]).unwrap_err();
    assert!(beyond.contains("beyond the tail"), "{beyond}");
    let s = d.status();
    assert_eq!(
        s["ring"]["head"], seqs[0].0,
        "the new cursor holds the released events again: {s}"
    );
    d.kill();

    let d = Daemon::start(dir.path(), serve);
    let marker = publish_each(
        &mut producer(&d),
        "fs.vol1.error",
        Severity::Error,
        ["marker"],
    )[0];
    let wanted = |name: &str, from: usize| {
        let mut sub = attach(&d, name);
        let want: Vec<Seq> = seqs[from..].iter().copied().chain([marker]).collect();
        let got: Vec<Seq> = take(&mut sub, want.len())
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(got, want, "{name}");
    };
    wanted("from-first", 0);
    wanted("from-third", 2);
    wanted("from-now", seqs.len());
}

#[test]
fn created_subscriptions_start_where_asked_and_survive_a_kill_on_emulated_pmem() {
    created_subscriptions_start_where_asked_and_survive_a_kill(&[]);
}

#[test]
fn created_subscriptions_start_where_asked_and_survive_a_kill_on_disk() {
    created_subscriptions_start_where_asked_and_survive_a_kill(&["--sync", "disk"]);
}

#[test]
fn a_paused_subscription_is_delivered_nothing_until_resumed_across_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let mut paused = attach(&d, "paused");
    let mut witness = attach(&d, "witness");
    manage(dir.path(), &["pause", "paused"]).unwrap();
    let first = publish_each(&mut producer(&d), "fs.a", Severity::Error, ["held"])[0];
    // The witness's delivery is made in the same pass over the subscriptions as the
    // paused one's would be: once it has it, the paused one was passed over.
    assert_eq!(take(&mut witness, 1), vec![(first, false)]);
    let s = d.status();
    let row = sub_row(&s, "paused");
    assert_eq!(
        (row["paused"].clone(), row["in_flight"].clone()),
        (true.into(), 0.into()),
        "{s}"
    );
    assert_eq!(row["cursor"], first.0, "its event is held: {s}");
    assert_eq!(s["ring"]["head"], first.0, "{s}");
    drop(paused);
    d.wait_for_status("the witness's confirmation applied", |s| {
        sub_row(s, "witness")["cursor"] == first.0 + 1
    });
    d.kill();

    let d = Daemon::start(dir.path(), &[]);
    let s = d.status();
    assert_eq!(
        sub_row(&s, "paused")["paused"],
        true,
        "the pause is durable: {s}"
    );
    paused = attach(&d, "paused");
    witness = attach(&d, "witness");
    let second = publish_each(&mut producer(&d), "fs.a", Severity::Error, ["also held"])[0];
    assert_eq!(take(&mut witness, 1), vec![(second, false)]);
    assert_eq!(sub_row(&d.status(), "paused")["in_flight"], 0);
    let list = manage(dir.path(), &["list"]).unwrap();
    assert!(
        list.lines()
            .any(|l| l.starts_with("paused ") && l.contains(" yes ")),
        "{list}"
    );
    manage(dir.path(), &["resume", "paused"]).unwrap();
    let got: Vec<Seq> = take(&mut paused, 2).into_iter().map(|(s, _)| s).collect();
    assert_eq!(got, vec![first, second]);
}

#[test]
fn a_reset_cursor_replays_flagged_or_skips_and_is_refused_while_attached() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let seqs = publish_and_release(&d, "reader", 4);
    let back = manage(
        dir.path(),
        &["reset", "reader", "--to", &format!("seq:{}", seqs[1].0)],
    )
    .unwrap();
    assert!(
        back.contains(&format!("from {} to {}", seqs[3].0 + 1, seqs[1].0)),
        "{back}"
    );
    let mut sub = attach(&d, "reader");
    let attached = manage(dir.path(), &["reset", "reader", "--to", "new"]).unwrap_err();
    assert!(attached.contains("consumer attached"), "{attached}");
    assert_eq!(
        take(&mut sub, 3),
        seqs[1..].iter().map(|s| (*s, true)).collect::<Vec<_>>(),
        "delivered again, flagged: they were delivered before"
    );
    sub.goodbye().unwrap();
    // Forward: what waits is skipped. Then a kill: the skip is durable.
    publish_each(&mut producer(&d), "fs.a", Severity::Error, ["skipped"]);
    d.wait_for_status("the reader gone", |s| {
        sub_row(s, "reader")["connected"] == false
    });
    manage(dir.path(), &["reset", "reader", "--to", "new"]).unwrap();
    d.kill();
    let d = Daemon::start(dir.path(), &[]);
    let mut sub = attach(&d, "reader");
    let after = publish_each(&mut producer(&d), "fs.a", Severity::Error, ["after"])[0];
    assert_eq!(take(&mut sub, 1), vec![(after, false)]);
}

#[test]
fn deleting_a_subscription_releases_what_it_held_and_stays_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    manage(dir.path(), &["create", "forgotten", "--filter", "fs.>"]).unwrap();
    let seqs = publish_each(&mut producer(&d), "fs.a", Severity::Error, ["a", "b", "c"]);
    let s = d.status();
    assert_eq!(
        s["ring"]["head"], seqs[0].0,
        "held for the created subscription: {s}"
    );
    assert_eq!(sub_row(&s, "forgotten")["holds_ring"], true, "{s}");
    let mut attached = attach(&d, "attached");
    let refused = manage(dir.path(), &["delete", "attached"]).unwrap_err();
    assert!(refused.contains("consumer attached"), "{refused}");
    let unknown = manage(dir.path(), &["delete", "nobody"]).unwrap_err();
    assert!(
        unknown.contains("no durable subscription named"),
        "{unknown}"
    );
    manage(dir.path(), &["delete", "forgotten"]).unwrap();
    let tail = seqs[2].0 + 1;
    assert_eq!(
        d.status()["ring"]["head"],
        tail,
        "nothing holds the events any more"
    );
    drop(attached);
    d.kill();
    let d = Daemon::start(dir.path(), &[]);
    let s = d.status();
    assert!(
        s["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["name"] != "forgotten"),
        "{s}"
    );
    assert_eq!(s["ring"]["head"], tail, "{s}");
    attached = attach(&d, "attached");
    let marker = publish_each(&mut producer(&d), "fs.a", Severity::Error, ["marker"])[0];
    assert_eq!(take(&mut attached, 1), vec![(marker, false)]);
}

/// `herald dead list --json` rows of subscription `name`, as (seq, subscription).
fn dead_of(dir: &Path, name: &str) -> Vec<(u64, String)> {
    let out = herald(&[
        "dead",
        "list",
        "--json",
        "--subscription",
        name,
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    answer["dead_letters"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|r| {
            (
                r["seq"].as_u64().unwrap(),
                r["subscription"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn changed_filters_apply_from_the_cursor_keep_the_dead_letters_and_survive_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    manage(dir.path(), &["create", "watch", "--filter", "fs.>"]).unwrap();
    let rejected = publish_each(&mut producer(&d), "fs.a", Severity::Error, ["bad"])[0];
    let mut sub = Client::connect(&d.socket(), Role::Subscriber, "watch").unwrap();
    sub.subscribe_with("watch", &["fs.>"], &policy(0, 0))
        .unwrap();
    assert_eq!(next(&mut sub).0, rejected);
    sub.reject(rejected).unwrap();
    sub.flush().unwrap();
    d.wait_for_status("the dead letter made", |s| {
        sub_row(s, "watch")["dead_lettered"] == 1
    });
    let attached = manage(dir.path(), &["set", "watch", "--filter", "net.>"]).unwrap_err();
    assert!(attached.contains("consumer attached"), "{attached}");
    sub.goodbye().unwrap();
    d.wait_for_status("the consumer gone", |s| {
        sub_row(s, "watch")["connected"] == false
    });
    // Stored while it had no consumer: fs.c is held for it under the old filters, and
    // keeps its cursor below net.b, which only the new filters match.
    let held = publish_each(&mut producer(&d), "fs.c", Severity::Error, ["for the old"])[0];
    let later = publish_each(
        &mut producer(&d),
        "net.b",
        Severity::Error,
        ["for the new filters"],
    )[0];
    assert_eq!(sub_row(&d.status(), "watch")["cursor"], held.0);
    let nothing = herald(&[
        "subscriptions",
        "set",
        "watch",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(
        nothing.status.code(),
        Some(2),
        "nothing to change is a usage error: {nothing:?}"
    );
    let out = manage(
        dir.path(),
        &[
            "set",
            "watch",
            "--filter",
            "net.>",
            "--min-severity",
            "warning",
        ],
    )
    .unwrap();
    assert!(out.contains("filters net.>, min severity warning"), "{out}");
    let row = sub_row(&d.status(), "watch");
    assert_eq!(
        (row["filters"].clone(), row["min_severity"].clone()),
        (serde_json::json!(["net.>"]), "warning".into()),
        "{row}"
    );
    assert_eq!(
        dead_of(dir.path(), "watch"),
        vec![(rejected.0, "watch".to_owned())]
    );
    d.kill();

    let d = Daemon::start(dir.path(), &[]);
    let row = sub_row(&d.status(), "watch");
    assert_eq!(
        row["filters"],
        serde_json::json!(["net.>"]),
        "the change is durable: {row}"
    );
    assert_eq!(
        dead_of(dir.path(), "watch"),
        vec![(rejected.0, "watch".to_owned())]
    );
    // Its consumer now attaches with the new filters; the old ones are refused.
    let mut old = Client::connect(&d.socket(), Role::Subscriber, "watch").unwrap();
    assert!(old
        .subscribe_with("watch", &["fs.>"], &policy(0, 0))
        .is_err());
    let mut sub = Client::connect(&d.socket(), Role::Subscriber, "watch").unwrap();
    let options = SubscribeOptions {
        automatic_recovery: true,
        min_severity: Severity::Warning,
        ..policy(0, 0)
    };
    sub.subscribe_with("watch", &["net.>"], &options).unwrap();
    let marker = publish_each(&mut producer(&d), "net.z", Severity::Error, ["marker"])[0];
    let got: Vec<Seq> = take(&mut sub, 2).into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        got,
        vec![later, marker],
        "net.b from the cursor, fs.c released for it"
    );
}
