//! herald where io_uring is refused: the daemon runs under a seccomp filter that
//! answers `io_uring_setup` with EPERM (what Docker's default profile does), installed
//! in the child between fork and exec. `--io auto` falls back to epoll, says why, and
//! a publish → subscribe → kill -9 → restart → redelivery cycle works through it.

#[path = "support/daemon.rs"]
mod daemon;

use daemon::{publish_each, Daemon};
use herald::client::Client;
use herald::protocol::{Role, Severity};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

/// A filter that allows everything but `io_uring_setup`, which fails with EPERM.
fn refuse_io_uring() -> BpfProgram {
    let arch = if cfg!(target_arch = "x86_64") {
        TargetArch::x86_64
    } else {
        TargetArch::aarch64
    };
    let rules = BTreeMap::from([(libc::SYS_io_uring_setup, vec![])]);
    SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .and_then(BpfProgram::try_from)
    .expect("a valid filter")
}

/// Installs `filter` in the child after fork, before exec.
fn under(filter: &BpfProgram) -> impl FnOnce(&mut Command) {
    let filter = filter.clone();
    move |command| {
        // SAFETY: the closure runs in the forked child before exec; it only makes the
        // prctl and seccomp system calls (the program was compiled before the fork,
        // so nothing allocates).
        unsafe {
            command.pre_exec(move || {
                seccompiler::apply_filter(&filter)
                    .map_err(|_| std::io::Error::from_raw_os_error(libc::EPERM))
            });
        }
        // The backend is chosen by the daemon here, not by a test run's HERALD_IO.
        command.env_remove("HERALD_IO");
    }
}

#[test]
fn under_a_filter_refusing_io_uring_herald_serves_with_epoll_and_redelivers_after_kill_9() {
    let filter = refuse_io_uring();
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_with(dir.path(), &[], under(&filter));
    assert!(d.ready_line.contains("io epoll"), "{}", d.ready_line);
    let status = d.status();
    assert_eq!(status["io"]["backend"], "epoll", "{status}");
    let refused = status["io"]["io_uring_refused"]
        .as_str()
        .unwrap_or_default();
    assert!(refused.contains("seccomp"), "the cause is named: {refused}");

    let socket = d.socket();
    let mut sub = Client::connect(&socket, Role::Subscriber, "ops").unwrap();
    sub.subscribe("ops", &[">"], Severity::Debug, 16, false)
        .unwrap();
    let mut p = Client::connect(&socket, Role::Producer, "fsd").unwrap();
    let payloads: Vec<String> = (0..5).map(|i| format!("event {i}")).collect();
    let seqs = publish_each(&mut p, "fs.disk", Severity::Error, &payloads);
    // All five arrive; only the first two are confirmed before the kill.
    for (i, seq) in seqs.iter().enumerate() {
        let dl = sub
            .next_delivery(Some(Duration::from_secs(20)))
            .unwrap()
            .expect("a delivery");
        assert_eq!(dl.seq, *seq);
        let seq = dl.seq;
        if i < 2 {
            sub.confirm(seq, seq).unwrap();
        }
    }
    sub.flush().unwrap();
    d.wait_for_status("two confirmed", |s| {
        daemon::sub_row(s, "ops")["cursor"].as_u64() == Some(seqs[2].0)
    });
    d.kill();

    let d = Daemon::start_with(dir.path(), &[], under(&filter));
    assert!(d.ready_line.contains("io epoll"), "{}", d.ready_line);
    let mut sub = Client::connect(&d.socket(), Role::Subscriber, "ops").unwrap();
    sub.subscribe("ops", &[">"], Severity::Debug, 16, false)
        .unwrap();
    for seq in &seqs[2..] {
        let dl = sub
            .next_delivery(Some(Duration::from_secs(20)))
            .unwrap()
            .expect("a redelivery");
        assert_eq!(dl.seq, *seq, "in order");
        assert!(dl.redelivered, "flagged redelivered");
        let seq = dl.seq;
        sub.confirm(seq, seq).unwrap();
    }
}

#[test]
fn asked_for_io_uring_under_the_filter_herald_refuses_to_start_and_says_why() {
    let filter = refuse_io_uring();
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(daemon::herald_binary());
    command
        .args(["serve", "--io", "io-uring", "--data-dir"])
        .arg(dir.path());
    under(&filter)(&mut command);
    let out = command.output().expect("run herald serve");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("seccomp") && stderr.contains("--io epoll"),
        "{stderr}"
    );
}
