//! Starts the real `herald serve` binary in a temporary data directory and waits for
//! its `ready` line (no sleeping, no polling of the socket). Waits for a state ask for
//! status, a documented interval apart, until it is shown.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long [`Daemon::start_with`] gives the daemon to say `ready`: a failure detector
/// (a start, a region's recovery included, takes well under a second here).
pub const START_MAX: Duration = Duration::from_secs(60);

/// Between two looks of [`Daemon::stop_within`] at whether the daemon exited: it only
/// decides how late the exit is noticed.
pub const STOP_POLL_INTERVAL: Duration = Duration::from_millis(5);

/// A running daemon; killed (SIGKILL) when dropped unless stopped first.
pub struct Daemon {
    pub child: Child,
    pub data_dir: PathBuf,
    pub ready_line: String,
}

impl Daemon {
    /// Starts `herald serve --data-dir DIR` with extra arguments.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Daemon {
        Daemon::start_with(data_dir, extra, |_| {})
    }

    /// Starts `herald serve --data-dir DIR` with extra arguments, letting `configure`
    /// change the command first (a seccomp filter, the environment).
    pub fn start_with(
        data_dir: &Path,
        extra: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Daemon {
        Daemon::try_start_with(data_dir, extra, configure, START_MAX)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`start_with`](Self::start_with), but Err when the daemon does not say
    /// `ready` within `ready_max` (it is then killed), exits first, or says something
    /// else: for callers that report rather than panic (the soak).
    pub fn try_start_with(
        data_dir: &Path,
        extra: &[&str],
        configure: impl FnOnce(&mut Command),
        ready_max: Duration,
    ) -> Result<Daemon, String> {
        let mut command = Command::new(herald_binary());
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        configure(&mut command);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", herald_binary().display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        // The ready line is read on a thread so that a daemon that never says it
        // cannot hang the caller: past `ready_max` it is killed, which ends the read.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(read.map(|_| line));
        });
        let line = match rx.recv_timeout(ready_max) {
            Ok(Ok(line)) if line.starts_with("ready:") => line,
            answer => {
                let _ = child.kill();
                let status = child.wait();
                return Err(match answer {
                    Err(_) => format!("the daemon did not say ready within {ready_max:?}"),
                    Ok(read) => {
                        format!("the daemon did not start ({status:?}); on stdout: {read:?}")
                    }
                });
            }
        };
        Ok(Daemon {
            child,
            data_dir: data_dir.to_owned(),
            ready_line: line,
        })
    }

    pub fn socket(&self) -> PathBuf {
        self.data_dir.join("herald.sock")
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: plain kill(2) on our child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }

    /// SIGTERM and wait, at most `max`, for the daemon to exit (its status); Err when
    /// it did not, after a SIGKILL. Asks whether it exited `STOP_POLL_INTERVAL` apart.
    pub fn stop_within(mut self, max: Duration) -> Result<std::process::ExitStatus, String> {
        // SAFETY: plain kill(2) on our child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + max;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(STOP_POLL_INTERVAL)
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!("still running {max:?} after SIGTERM: killed"));
                }
                Err(e) => return Err(format!("waiting for the daemon: {e}")),
            }
        }
    }
}

/// The `herald` binary: cargo's path in integration tests; for tools, `HERALD_BIN` or
/// the `herald` beside the tool's own directory (target/<profile>/examples/..).
pub fn herald_binary() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_herald") {
        return PathBuf::from(path);
    }
    if let Ok(path) = std::env::var("HERALD_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/examples")
        .join("herald")
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `herald ARGS` to completion (RUST_LOG=warn), for the commands beside `serve`.
pub fn herald(args: &[&str]) -> std::process::Output {
    Command::new(herald_binary())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run herald")
}

/// An event with an empty source (the daemon puts the client name) and no key.
pub fn event<'a>(
    topic: &'a str,
    severity: herald::protocol::Severity,
    payload: &'a [u8],
) -> herald::protocol::Event<'a> {
    herald::protocol::Event {
        topic: herald::protocol::Topic::new(topic.as_bytes()).expect("test topics are valid"),
        severity,
        source: "",
        flags: 0,
        key: b"",
        payload,
    }
}

/// The daemon's status document, asked for on a control connection to `socket`.
pub fn status_at(socket: &Path) -> serde_json::Value {
    let mut control =
        herald::client::Client::connect(socket, herald::protocol::Role::Control, "test")
            .expect("connect for status");
    serde_json::from_str(&control.status().expect("status")).expect("status is JSON")
}

/// The row of subscription `name` in a status document.
pub fn sub_row(status: &serde_json::Value, name: &str) -> serde_json::Value {
    status["subscriptions"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no subscription {name} in {status}"))
        .clone()
}

/// How long [`Daemon::wait_for_status`] gives the daemon to reach a state: a failure
/// detector only; a wait ends as soon as the state is shown.
pub const STATUS_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(20);

/// Between two asks of [`Daemon::wait_for_status`]. It only spaces the asks, so that
/// the test leaves the daemon's loop (and the machine's cores) to the work it waits
/// for; it decides how late a wait notices, never what it finds.
pub const STATUS_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(2);

impl Daemon {
    /// Its status document.
    pub fn status(&self) -> serde_json::Value {
        status_at(&self.socket())
    }

    /// Asks for status on one control connection until `done` holds, and returns the
    /// document that satisfied it. Each ask is a round trip through the daemon's loop,
    /// so this waits on the daemon's own progress; [`STATUS_POLL_INTERVAL`] apart,
    /// failing after [`STATUS_WAIT_MAX`].
    pub fn wait_for_status(
        &self,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let mut control = herald::client::Client::connect(
            &self.socket(),
            herald::protocol::Role::Control,
            "test",
        )
        .expect("connect for status");
        let deadline = std::time::Instant::now() + STATUS_WAIT_MAX;
        loop {
            let s: serde_json::Value =
                serde_json::from_str(&control.status().expect("status")).expect("status is JSON");
            if done(&s) {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after {STATUS_WAIT_MAX:?} waiting for {what}: {s}"
            );
            std::thread::sleep(STATUS_POLL_INTERVAL);
        }
    }
}

/// Publishes one event per payload, one at a time, and returns their sequence numbers.
pub fn publish_each(
    p: &mut herald::client::Client,
    topic: &str,
    severity: herald::protocol::Severity,
    payloads: impl IntoIterator<Item = impl AsRef<[u8]>>,
) -> Vec<herald::protocol::Seq> {
    payloads
        .into_iter()
        .map(|payload| {
            p.publish(&event(topic, severity, payload.as_ref()))
                .expect("stored")
                .first_seq
        })
        .collect()
}
