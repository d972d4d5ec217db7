//! `herald serve --sync disk`: every group commit is synced to disk (fdatasync, run
//! asynchronously: io_uring's fsync, or epoll's sync thread) before producers hear
//! `stored`. Through the real daemon, on whichever backend the run uses.

#[path = "support/daemon.rs"]
mod daemon;

use daemon::{event, Daemon};
use herald::client::Client;
use herald::protocol::{Role, Severity};
use std::time::Duration;

#[test]
fn in_disk_mode_pipelined_publishes_are_stored_delivered_and_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &["--sync", "disk"]);
    let status = d.status();
    assert_eq!(status["region"]["durability"], "disk", "{status}");
    assert_eq!(status["commit"]["gate"], "sync", "{status}");

    let mut sub = Client::connect(&d.socket(), Role::Subscriber, "ops").unwrap();
    sub.subscribe("ops", &[">"], Severity::Debug, 256, false)
        .unwrap();
    let mut p = Client::connect(&d.socket(), Role::Producer, "fsd").unwrap();
    // Pipelined: many commits share each sync.
    let payloads: Vec<String> = (0..200).map(|i| format!("event {i}")).collect();
    for payload in &payloads {
        p.send_publish(&event("fs.disk", Severity::Error, payload.as_bytes()))
            .unwrap();
    }
    let mut seqs = Vec::new();
    for _ in &payloads {
        seqs.push(p.recv_stored().unwrap().first_seq);
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    for (i, want) in seqs.iter().enumerate() {
        let dl = sub
            .next_delivery(Some(Duration::from_secs(20)))
            .unwrap()
            .expect("a delivery");
        assert_eq!(dl.seq, *want);
        let seq = dl.seq;
        if i < 100 {
            sub.confirm(seq, seq).unwrap();
        }
    }
    sub.flush().unwrap();
    d.wait_for_status("the first hundred confirmed, durably", |s| {
        daemon::sub_row(s, "ops")["cursor"].as_u64() == Some(seqs[100].0)
    });
    let syncs = d.status()["commit"]["syncs"].as_u64().unwrap();
    assert!((1..200).contains(&syncs), "commits shared syncs: {syncs}");
    d.kill();

    // The old name of the mode still works.
    let d = Daemon::start(dir.path(), &["--sync", "msync"]);
    let mut sub = Client::connect(&d.socket(), Role::Subscriber, "ops").unwrap();
    sub.subscribe("ops", &[">"], Severity::Debug, 256, false)
        .unwrap();
    for want in &seqs[100..] {
        let dl = sub
            .next_delivery(Some(Duration::from_secs(20)))
            .unwrap()
            .expect("a redelivery");
        assert_eq!(dl.seq, *want, "in order, nothing acknowledged lost");
        assert!(dl.redelivered);
        let seq = dl.seq;
        sub.confirm(seq, seq).unwrap();
    }
    sub.flush().unwrap();
    d.wait_for_status("everything released", |s| s["ring"]["used_slots"] == 0);
    assert_eq!(d.stop().code(), Some(0));
}
