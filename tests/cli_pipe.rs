//! The CLI on a closed pipe (`herald status | head -1`): a command whose standard
//! output's reader has gone stops quietly with exit status 0, while a real failure on
//! the same closed pipe is still reported.
//!
//! The reader is closed before the command starts, so its first write fails with
//! EPIPE: no race with a `head` that may or may not have exited yet.

#[path = "support/daemon.rs"]
mod daemon;

use daemon::{herald_binary, Daemon};
use std::io::Read;
use std::process::{Command, Output, Stdio};

/// Runs `herald ARGS` with standard output a pipe whose reader is already closed.
fn herald_into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Command::new(herald_binary())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run herald")
}

/// Runs `herald ARGS` with standard output a pipe read to its end: what the command
/// prints when someone reads it.
fn herald_into_open_pipe(args: &[&str]) -> (Output, String) {
    let (mut reader, writer) = std::io::pipe().expect("pipe");
    let child = Command::new(herald_binary())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run herald");
    // The command holds the only writer now: the read ends when it exits.
    let mut printed = String::new();
    reader.read_to_string(&mut printed).expect("read stdout");
    (child.wait_with_output().expect("wait"), printed)
}

#[test]
fn status_into_a_closed_pipe_exits_zero_without_a_word() {
    let data = tempfile::tempdir().unwrap();
    let _daemon = Daemon::start(data.path(), &["--region-size", "16M"]);
    let dir = data.path().to_str().unwrap();
    for json in [false, true] {
        let mut args = vec!["status", "--data-dir", dir];
        if json {
            args.push("--json");
        }
        // The same command read to its end prints (lines, or one JSON document): the
        // closed pipe below is what it writes into, not a command that prints nothing.
        let (open, printed) = herald_into_open_pipe(&args);
        assert!(open.status.success(), "{args:?}: {open:?}");
        assert!(!printed.trim().is_empty(), "{args:?} printed nothing");

        let closed = herald_into_closed_pipe(&args);
        assert_eq!(
            String::from_utf8_lossy(&closed.stderr),
            "",
            "{args:?} into a closed pipe"
        );
        assert_eq!(closed.status.code(), Some(0), "{args:?} into a closed pipe");
    }
}

#[test]
fn inspect_into_a_closed_pipe_exits_zero_without_a_word() {
    let data = tempfile::tempdir().unwrap();
    let region = data.path().join("region.pmem");
    let region = region.to_str().unwrap();
    let formatted = daemon::herald(&["format", region, "--size", "16M"]);
    assert!(formatted.status.success(), "{formatted:?}");
    let args = ["inspect", region, "--events"];
    let (open, printed) = herald_into_open_pipe(&args);
    assert!(open.status.success(), "{open:?}");
    assert!(printed.lines().count() > 1, "inspect printed {printed:?}");

    let closed = herald_into_closed_pipe(&args);
    assert_eq!(String::from_utf8_lossy(&closed.stderr), "");
    assert_eq!(closed.status.code(), Some(0));
}

#[test]
fn a_failure_on_a_closed_pipe_is_still_reported() {
    // No daemon here: the command fails before it writes anything, and a closed
    // standard output must not turn that into a quiet success.
    let data = tempfile::tempdir().unwrap();
    let closed = herald_into_closed_pipe(&["status", "--data-dir", data.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&closed.stderr);
    assert_eq!(closed.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect to herald"), "{stderr}");
}
