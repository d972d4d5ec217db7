//! Routing rules through the real binary (`herald rules ...`): a rule changed at run
//! time routes only the events stored after the change, each delivery names the rule
//! version that routed it, and all of it survives a SIGKILL of the daemon; and
//! `herald rules explain` says exactly who receives each event of a varied table.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/failure.rs"]
mod failure;

use daemon::{herald, Daemon};
use failure::WAIT;
use herald::client::{Client, SubscribeOptions};
use herald::protocol::{DeliverRule, Event, Role, Severity, Topic};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Runs `herald GROUP ARGS --data-dir DIR`; stdout, or a panic with stderr.
fn run(dir: &Path, group: &str, args: &[&str]) -> String {
    let mut all = vec![group];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-dir", dir.to_str().unwrap()]);
    let out = herald(&all);
    assert!(out.status.success(), "herald {all:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn publish(p: &mut Client, topic: &str, severity: Severity, source: &str) -> u64 {
    let e = Event {
        topic: Topic::new(topic.as_bytes()).unwrap(),
        severity,
        source,
        flags: 0,
        key: b"",
        payload: topic.as_bytes(),
    };
    p.publish(&e).expect("stored").first_seq.0
}

/// A durable subscriber with the filters its subscription was created with.
fn attach(d: &Daemon, name: &str, filters: &[&str], min_severity: Severity) -> Client {
    let mut c = Client::connect(&d.socket(), Role::Subscriber, name).unwrap();
    let options = SubscribeOptions {
        min_severity,
        automatic_recovery: true,
        window_events: 64,
        ..SubscribeOptions::default()
    };
    c.subscribe_with(name, filters, &options).unwrap();
    c
}

/// Reads and confirms deliveries up to and including `until`: (seq, topic, rule).
fn take_until(c: &mut Client, until: u64) -> Vec<(u64, String, Option<DeliverRule>)> {
    let mut got = Vec::new();
    loop {
        let d = c
            .next_delivery(WAIT)
            .unwrap()
            .expect("a delivery within the wait");
        let row = (d.seq.0, d.event.topic.as_str().to_owned(), d.rule);
        let seq = d.seq;
        c.confirm(seq, seq).unwrap();
        got.push(row);
        if seq.0 >= until {
            c.flush().unwrap();
            return got;
        }
    }
}

#[test]
fn a_rule_changed_at_run_time_routes_later_events_only_and_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    run(
        dir.path(),
        "subscriptions",
        &["create", "ops", "--filter", "net.>"],
    );
    run(
        dir.path(),
        "subscriptions",
        &["create", "audit", "--filter", "net.>"],
    );
    let added = run(
        dir.path(),
        "rules",
        &["add", "--topic", "fs.>", "--deliver", "ops"],
    );
    assert!(added.starts_with("added rule 1:"), "{added}");
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    let before = publish(&mut p, "fs.vol1.error", Severity::Error, "fsd");
    let changed = run(dir.path(), "rules", &["set", "1", "--deliver", "audit"]);
    assert!(changed.contains("version 2"), "{changed}");
    let after = publish(&mut p, "fs.vol2.error", Severity::Error, "fsd");
    // The change is durable before it was answered: kill the daemon now.
    drop(p);
    d.kill();

    let d = Daemon::start(dir.path(), &[]);
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    // No rule matches a net event: each subscription's filters take it, so it is the
    // next delivery of both, after whatever the rules sent them.
    let marker = publish(&mut p, "net.marker", Severity::Error, "netd");
    let mut ops = attach(&d, "ops", &["net.>"], Severity::Debug);
    let got = take_until(&mut ops, marker);
    let v1 = Some(DeliverRule { id: 1, version: 1 });
    assert_eq!(
        got,
        [
            (before, "fs.vol1.error".into(), v1),
            (marker, "net.marker".into(), None)
        ],
        "ops gets what version 1 routed, never what version 2 did"
    );
    let mut audit = attach(&d, "audit", &["net.>"], Severity::Debug);
    let got = take_until(&mut audit, marker);
    let v2 = Some(DeliverRule { id: 1, version: 2 });
    assert_eq!(
        got,
        [
            (after, "fs.vol2.error".into(), v2),
            (marker, "net.marker".into(), None)
        ]
    );
    let list: Value = serde_json::from_str(&run(
        dir.path(),
        "rules",
        &["list", "--all-versions", "--json"],
    ))
    .unwrap();
    let versions: Vec<(u64, Option<u64>)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["version"].as_u64().unwrap(), r["retired_at"].as_u64()))
        .collect();
    assert_eq!(versions, [(1, Some(after)), (2, None)]);
    // After the restart the event log still names the version that routed each.
    let region = dir.path().join("region.pmem");
    let inspect = herald(&["inspect", region.to_str().unwrap(), "--events", "--json"]);
    assert!(inspect.status.success(), "{inspect:?}");
    let events: Vec<Value> = String::from_utf8_lossy(&inspect.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "event")
        .collect();
    for e in &events {
        let seq = e["seq"].as_u64().unwrap();
        let expected = if seq == before {
            serde_json::json!({ "id": 1, "version": 1 })
        } else if seq == after {
            serde_json::json!({ "id": 1, "version": 2 })
        } else {
            Value::Null
        };
        assert_eq!(e["rule"], expected, "event {e}");
    }
}

/// Subscriptions of the explain test: name, filters, least severe level.
const SUBSCRIPTIONS: [(&str, &[&str], Severity); 4] = [
    ("fsops", &["fs.>"], Severity::Debug),
    ("neterr", &["net.>"], Severity::Warning),
    ("all", &[">"], Severity::Debug),
    ("pager", &["page.>"], Severity::Debug),
];

#[test]
fn explain_names_exactly_the_subscriptions_each_event_reaches() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    for (name, filters, min) in SUBSCRIPTIONS {
        let mut args = vec!["create", name, "--min-severity", min.name()];
        for f in filters {
            args.extend_from_slice(&["--filter", f]);
        }
        run(dir.path(), "subscriptions", &args);
    }
    let rules: [&[&str]; 8] = [
        &[
            "--topic",
            "fs.*.error",
            "--severity",
            "emerg..err",
            // A comma list, as `--deliver pager --deliver fsops` would say.
            "--deliver",
            "pager,fsops",
        ],
        &["--topic", "fs.>", "--severity", "debug", "--drop"],
        &[
            "--topic",
            "fs.vol2.>",
            "--source",
            "backup",
            "--priority",
            "3",
            "--filters",
        ],
        &["--topic", "net.>", "--source", "netd", "--deliver", "all"],
        &["--topic", "net.link", "--priority", "-1", "--drop"],
        &["--topic", ">", "--severity", "emerg", "--deliver", "pager"],
        &[
            "--topic",
            "app.>",
            "--severity",
            "info..debug",
            "--deliver",
            "neterr",
        ],
        // The marker's: every subscription, whatever else matches.
        &[
            "--topic",
            "marker",
            "--priority",
            "100",
            "--deliver",
            "fsops",
            "--deliver",
            "neterr",
            "--deliver",
            "all",
            "--deliver",
            "pager",
        ],
    ];
    for r in rules {
        let mut args = vec!["add"];
        args.extend_from_slice(r);
        run(dir.path(), "rules", &args);
    }
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    // seq -> (the durable recipients explain names, the prevailing rule's id).
    let mut expected: BTreeMap<u64, (BTreeSet<String>, Option<u64>)> = BTreeMap::new();
    for topic in [
        "fs.vol1.error",
        "fs.vol2.error",
        "fs.vol2.info",
        "net.link",
        "net.dns",
        "app.web",
        "misc",
    ] {
        for severity in [
            Severity::Emergency,
            Severity::Error,
            Severity::Warning,
            Severity::Debug,
        ] {
            for source in ["fsd", "netd", "backup"] {
                let why: Value = serde_json::from_str(&run(
                    dir.path(),
                    "rules",
                    &[
                        "explain",
                        "--topic",
                        topic,
                        "--severity",
                        severity.name(),
                        "--source",
                        source,
                        "--json",
                    ],
                ))
                .unwrap();
                let recipients = why["recipients"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap().to_owned())
                    .collect();
                let prevailing = why["matching"][0]["rule"]["id"].as_u64();
                let seq = publish(&mut p, topic, severity, source);
                expected.insert(seq, (recipients, prevailing));
            }
        }
    }
    let marker = publish(&mut p, "marker", Severity::Debug, "t");
    let mut reached: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for (name, filters, min) in SUBSCRIPTIONS {
        let mut c = attach(&d, name, filters, min);
        for (seq, _, rule) in take_until(&mut c, marker) {
            if seq == marker {
                continue;
            }
            let (_, prevailing) = &expected[&seq];
            assert_eq!(
                rule.map(|r| r.id as u64),
                *prevailing,
                "event {seq} to {name}: the delivery names the rule explain said prevails"
            );
            reached.entry(seq).or_default().insert(name.to_owned());
        }
    }
    let mut kinds = BTreeSet::new();
    for (seq, (recipients, prevailing)) in &expected {
        let got = reached.remove(seq).unwrap_or_default();
        assert_eq!(&got, recipients, "event {seq} (rule {prevailing:?})");
        kinds.insert((recipients.is_empty(), prevailing.is_some()));
    }
    // The table exercised dropped events, routed ones and ones no rule matched.
    assert!(
        kinds.contains(&(true, true)),
        "some event dropped by a rule"
    );
    assert!(
        kinds.contains(&(false, true)),
        "some event delivered by a rule"
    );
    assert!(
        kinds.contains(&(false, false)),
        "some event no rule matched"
    );
    eprintln!("{} events checked against explain", expected.len());
}
