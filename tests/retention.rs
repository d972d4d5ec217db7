//! Retention after confirm through the real daemon (`herald serve --retain`): released
//! events kept from being overwritten, a subscription created later reaching them, and
//! what a producer gets when keeping them needs the ring's room: `full` with
//! `--retain-policy strict`, otherwise the publish wins and the loss is counted.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/failure.rs"]
mod failure;

use daemon::{event, herald, Daemon};
use failure::*;
use herald::client::{Client, SubscribeOptions};
use herald::protocol::{Role, Seq, Severity};
use std::collections::BTreeMap;
use std::path::Path;

/// Retained: 2048 slots of 128 bytes, more than the 1 MiB region's reserve (1036 slots,
/// which a publish that is not crit never takes, retained or not).
const RETAIN: &str = "256KiB";
const RETAINED_SLOTS: u64 = 2048;

/// Publishes `count` events in batches while no subscription exists (each is released
/// as it is stored); returns their payloads by seq.
fn history(d: &Daemon, count: usize) -> BTreeMap<u64, String> {
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    let mut stored = BTreeMap::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(64) {
        let payloads: Vec<String> = chunk.iter().map(|i| format!("history {i}")).collect();
        let events: Vec<_> = payloads
            .iter()
            .map(|t| event("h.x", Severity::Info, t.as_bytes()))
            .collect();
        let first = p.publish_batch(&events).unwrap().first_seq.0;
        for (k, text) in payloads.into_iter().enumerate() {
            stored.insert(first + k as u64, text);
        }
    }
    stored
}

/// Publishes single events until the daemon answers `full`; returns how many it stored.
fn fill(d: &Daemon) -> u64 {
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    for n in 0.. {
        if let Err(e) = p.publish(&event("h.x", Severity::Info, b"new")) {
            assert!(e.to_string().contains("full"), "{e}");
            return n;
        }
        assert!(n < 1_000_000, "never full");
    }
    unreachable!()
}

fn manage(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["subscriptions"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-dir", dir.to_str().unwrap()]);
    let out = herald(&all);
    assert!(out.status.success(), "herald {all:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts a daemon on a small region with `retain` flags, stores two laps of history,
/// then holds everything new for subscription `stuck` and fills the ring. Returns the
/// daemon, the history, and how many new events fit.
fn run(dir: &Path, retain: &[&str]) -> (Daemon, BTreeMap<u64, String>, u64) {
    let mut args = vec!["--region-size", "1M"];
    args.extend_from_slice(retain);
    let d = Daemon::start(dir, &args);
    let ring_slots = d.status()["ring"]["slot_count"].as_u64().unwrap() as usize;
    let past = history(&d, 2 * ring_slots);
    manage(dir, &["create", "stuck"]);
    let fitted = fill(&d);
    (d, past, fitted)
}

#[test]
fn strict_retention_refuses_publishes_rather_than_overwrite_and_a_late_subscription_gets_the_history(
) {
    let plain_dir = tempfile::tempdir().unwrap();
    let (_plain, _, fits_without) = run(plain_dir.path(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let (d, past, fits) = run(
        dir.path(),
        &["--retain", RETAIN, "--retain-policy", "strict"],
    );
    assert_eq!(
        fits,
        fits_without - RETAINED_SLOTS,
        "the retained slots stay out of reach"
    );
    let s = d.status();
    let r = &s["ring"]["retention"];
    assert_eq!(r["strict"], true, "{s}");
    assert_eq!(r["bytes"], 256 * 1024, "{s}");
    assert_eq!(r["retained_slots"], RETAINED_SLOTS, "{s}");
    assert_eq!(r["overwritten_early_slots"], 0, "{s}");
    // A clean restart keeps them (the torn-group scrub runs only after a crash).
    assert!(d.stop().success());
    let d = Daemon::start(
        dir.path(),
        &[
            "--region-size",
            "1M",
            "--retain",
            RETAIN,
            "--retain-policy",
            "strict",
        ],
    );
    let s = d.status();
    assert_eq!(
        s["ring"]["retention"]["retained_slots"], RETAINED_SLOTS,
        "{s}"
    );
    // A subscription created now starts at the oldest retained event and gets the
    // history as it was stored.
    let created = manage(dir.path(), &["create", "late", "--start", "first"]);
    let head = s["ring"]["head"].as_u64().unwrap();
    let cursor = past
        .keys()
        .copied()
        .find(|seq| created.contains(&format!("starts at seq {seq},")))
        .unwrap_or_else(|| panic!("not at a history event: {created}"));
    assert!(cursor <= head - RETAINED_SLOTS, "{created} (head {head})");
    let options = SubscribeOptions {
        automatic_recovery: true,
        window_events: 64,
        ..SubscribeOptions::default()
    };
    let mut late = subscriber(&d, "late", options);
    for want in (cursor..).take(RETAINED_SLOTS as usize) {
        let (seq, _, _, payload) = next(&mut late);
        assert_eq!(seq, Seq(want));
        assert_eq!(String::from_utf8(payload).unwrap(), past[&want]);
        late.confirm(seq, seq).unwrap();
    }
}

#[test]
fn yielding_retention_lets_publishes_overwrite_and_counts_the_loss() {
    let plain_dir = tempfile::tempdir().unwrap();
    let (_plain, _, fits_without) = run(plain_dir.path(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let (d, _, fits) = run(dir.path(), &["--retain", RETAIN]);
    assert_eq!(fits, fits_without, "nothing refused for retention");
    let s = d.status();
    let r = &s["ring"]["retention"];
    assert_eq!(r["strict"], false, "{s}");
    let lost = r["overwritten_early_slots"].as_u64().unwrap();
    let kept = r["retained_slots"].as_u64().unwrap();
    assert!(lost > 0, "{s}");
    assert_eq!(lost + kept, RETAINED_SLOTS, "{s}");
}

#[test]
fn a_strict_retention_the_ring_cannot_keep_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = herald(&[
        "serve",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--region-size",
        "1M",
        "--retain",
        "1MiB",
        "--retain-policy",
        "strict",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr.contains("more than half of the ring"), "{stderr}");
}
