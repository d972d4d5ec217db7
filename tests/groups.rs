//! Work-queue groups through the real binary: several connections consume one durable
//! subscription, each event goes to one member, and what a member leaves unconfirmed
//! (it went away, or missed its deadline) goes to another. The group's cursor is the
//! subscription's, so a SIGKILL of the daemon loses nothing either.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/failure.rs"]
mod failure;

use daemon::{herald, publish_each, sub_row, Daemon};
use failure::*;
use herald::client::{Client, SubscribeOptions};
use herald::protocol::{Role, Seq, Severity};
use std::collections::BTreeSet;

/// The daemon's redelivery backoff here: a missed deadline hands events over soon.
const SERVE: &[&str] = &[
    "--redelivery-backoff",
    "20ms",
    "--redelivery-backoff-max",
    "100ms",
];

fn member(d: &Daemon, client: &str, window: u32, ack_deadline_ms: u32) -> Client {
    let mut c = Client::connect(&d.socket(), Role::Subscriber, client).unwrap();
    let options = SubscribeOptions {
        window_events: window,
        ack_deadline_ms,
        automatic_recovery: true,
        group: true,
        ..SubscribeOptions::default()
    };
    c.subscribe_with("work", &[">"], &options).unwrap();
    c
}

fn producer(d: &Daemon) -> Client {
    Client::connect(&d.socket(), Role::Producer, "p").unwrap()
}

/// What one member was given: (seq, redelivered) in order of arrival.
#[derive(Default)]
struct Seen {
    got: Vec<(Seq, bool)>,
    confirmed: BTreeSet<Seq>,
}

impl Seen {
    fn take(&mut self, c: &mut Client, confirm: bool) -> Seq {
        let (seq, redelivered, _, _) = next(c);
        self.got.push((seq, redelivered));
        if confirm {
            c.confirm(seq, seq).unwrap();
            c.flush().unwrap();
            self.confirmed.insert(seq);
        }
        seq
    }

    /// First deliveries reach a member in seq order.
    fn assert_ordered(&self, who: &str) {
        let first: Vec<Seq> = self
            .got
            .iter()
            .filter(|(_, again)| !again)
            .map(|(s, _)| *s)
            .collect();
        assert!(
            first.windows(2).all(|w| w[0] < w[1]),
            "{who} got its first deliveries out of order: {first:?}"
        );
    }
}

#[test]
fn a_group_settles_every_event_once_when_one_member_dies_and_another_misses_deadlines() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), SERVE);
    // The first member sets the group's deadline; each member has its own window.
    let mut a = member(&d, "a", 4, 300);
    let mut b = member(&d, "b", 4, 0);
    let mut c = member(&d, "c", 4, 0);
    let single = Client::connect(&d.socket(), Role::Subscriber, "single").and_then(|mut s| {
        s.subscribe_with("work", &[">"], &SubscribeOptions::default())
            .map(|_| s)
    });
    assert!(single.is_err(), "a consumer outside the group is refused");
    let s = d.status();
    let row = sub_row(&s, "work");
    assert_eq!(row["group"], true, "{row}");
    let clients: BTreeSet<&str> = row["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["client"].as_str())
        .collect();
    assert_eq!(clients, BTreeSet::from(["a", "b", "c"]), "{row}");

    let seqs = publish_each(
        &mut producer(&d),
        "jobs.build",
        Severity::Info,
        (0..40).map(|i| format!("job {i}")),
    );
    let all: BTreeSet<Seq> = seqs.iter().copied().collect();
    let (mut seen_a, mut seen_b, mut seen_c) = (Seen::default(), Seen::default(), Seen::default());
    // Each member is given its window's worth.
    for _ in 0..4 {
        seen_a.take(&mut a, false);
        seen_b.take(&mut b, false);
        seen_c.take(&mut c, true);
    }
    let s = d.status();
    let row = sub_row(&s, "work");
    let held = |client: &str| {
        row["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["client"] == client)
            .map(|m| m["in_flight"].clone())
    };
    assert_eq!(
        (held("a"), held("b")),
        (Some(4.into()), Some(4.into())),
        "a and b hold their windows: {row}"
    );
    let given_a: BTreeSet<Seq> = seen_a.got.iter().map(|(s, _)| *s).collect();
    let given_b: BTreeSet<Seq> = seen_b.got.iter().map(|(s, _)| *s).collect();
    assert!(given_a.is_disjoint(&given_b), "one member per event");
    // A member's confirmation settles only what it holds: b confirming a's events
    // changes nothing (b's window is full, so the pong comes next). Had they been
    // settled, c would never be given the ones a leaves below.
    let oldest_held = given_a.iter().chain(&given_b).min().unwrap().0;
    for &seq in &given_a {
        b.confirm(seq, seq).unwrap();
    }
    b.ping().unwrap();
    assert_eq!(
        sub_row(&d.status(), "work")["cursor"],
        oldest_held,
        "b settled a's events"
    );
    // a confirms two of its four and dies; b confirms nothing from here on.
    for &seq in given_a.iter().take(2) {
        a.confirm(seq, seq).unwrap();
        seen_a.confirmed.insert(seq);
    }
    a.flush().unwrap();
    // Applied once the cursor is the oldest event a and b hold unconfirmed (what c
    // and the refills hold is all later).
    let oldest = given_a
        .iter()
        .chain(&given_b)
        .filter(|s| !seen_a.confirmed.contains(s))
        .min()
        .unwrap()
        .0;
    d.wait_for_status("a's two confirmations applied", |s| {
        sub_row(s, "work")["cursor"] == oldest
    });
    drop(a);
    // c settles everything else: what a left, what b sat on past its deadline, and
    // the rest of the stream.
    while seen_c.confirmed.len() + seen_a.confirmed.len() < all.len() {
        seen_c.take(&mut c, true);
        // b goes on taking events and never confirms them.
        while let Ok(Some(dl)) = b.next_delivery(Some(std::time::Duration::from_millis(1))) {
            seen_b.got.push((dl.seq, dl.redelivered));
        }
    }
    assert!(
        seen_a.confirmed.is_disjoint(&seen_c.confirmed),
        "an event settled twice"
    );
    let settled: BTreeSet<Seq> = seen_a.confirmed.union(&seen_c.confirmed).copied().collect();
    assert_eq!(settled, all, "every event settled by the group");
    assert!(
        given_b.iter().all(|s| seen_c.confirmed.contains(s)),
        "what b missed went to c"
    );
    let tail = seqs.last().unwrap().0 + 1;
    d.wait_for_status("the group's cursor at the tail", |s| {
        let row = sub_row(s, "work");
        row["cursor"] == tail && row["in_flight"] == 0
    });
    let row = sub_row(&d.status(), "work");
    assert_eq!(row["dead_lettered"], 0, "{row}");
    seen_b.assert_ordered("b");
    seen_c.assert_ordered("c");
    // b's late confirmation of something c settled changes nothing.
    let late = *given_b.iter().next().unwrap();
    b.confirm(late, late).unwrap();
    b.flush().unwrap();
    assert_eq!(sub_row(&d.status(), "work")["cursor"], tail);
}

#[test]
fn a_group_loses_nothing_when_the_daemon_is_killed_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), SERVE);
    let mut a = member(&d, "a", 4, 0);
    let mut b = member(&d, "b", 4, 0);
    let seqs = publish_each(
        &mut producer(&d),
        "jobs.build",
        Severity::Info,
        (0..20).map(|i| format!("job {i}")),
    );
    let (mut seen_a, mut seen_b) = (Seen::default(), Seen::default());
    for _ in 0..3 {
        seen_a.take(&mut a, true);
        seen_b.take(&mut b, true);
    }
    // One more each, in flight when the daemon dies.
    seen_a.take(&mut a, false);
    seen_b.take(&mut b, false);
    let confirmed: BTreeSet<Seq> = seen_a.confirmed.union(&seen_b.confirmed).copied().collect();
    let tail = seqs.last().unwrap().0 + 1;
    // Applied once the cursor is the oldest of the two unconfirmed (the rest of
    // the stream handed out since is all later).
    let oldest_unconfirmed = seen_a
        .got
        .iter()
        .chain(&seen_b.got)
        .map(|(s, _)| *s)
        .filter(|s| !confirmed.contains(s))
        .min()
        .unwrap();
    d.wait_for_status("six confirmations applied", |s| {
        sub_row(s, "work")["cursor"] == oldest_unconfirmed.0
    });
    d.kill();
    drop((a, b));

    let d = Daemon::start(dir.path(), SERVE);
    let mut a = member(&d, "a", 4, 0);
    let mut b = member(&d, "b", 4, 0);
    let (mut again_a, mut again_b) = (Seen::default(), Seen::default());
    let owed: BTreeSet<Seq> = seqs
        .iter()
        .copied()
        .filter(|s| !confirmed.contains(s))
        .collect();
    let mut settled = BTreeSet::new();
    // Members read in turns; either may have nothing more for a while.
    while settled.len() < owed.len() {
        for (c, seen) in [(&mut a, &mut again_a), (&mut b, &mut again_b)] {
            let got = c.next_delivery(Some(std::time::Duration::from_millis(50)));
            if let Some((seq, again)) = got.unwrap().map(|dl| (dl.seq, dl.redelivered)) {
                seen.got.push((seq, again));
                c.confirm(seq, seq).unwrap();
                c.flush().unwrap();
                assert!(settled.insert(seq), "seq {seq:?} settled twice");
            }
        }
    }
    assert_eq!(settled, owed, "every unconfirmed event replayed, none lost");
    // The two in flight at the kill come flagged redelivered.
    for (seq, _) in seen_a.got.iter().chain(&seen_b.got) {
        if !confirmed.contains(seq) {
            let again = again_a
                .got
                .iter()
                .chain(&again_b.got)
                .find(|(s, _)| s == seq);
            assert_eq!(again.map(|g| g.1), Some(true), "seq {seq:?}");
        }
    }
    d.wait_for_status("the group's cursor at the tail, out of recovery", |s| {
        let row = sub_row(s, "work");
        row["cursor"] == tail && row["mode"] == "normal"
    });
}

#[test]
fn subscribe_group_needs_a_name() {
    let out = herald(&["subscribe", "--group", "--data-dir", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--name"),
        "{out:?}"
    );
}
