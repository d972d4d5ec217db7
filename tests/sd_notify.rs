//! `herald serve` under a stand-in for systemd: a datagram socket the test binds, named
//! by `NOTIFY_SOCKET`. The daemon says STATUS while it starts, READY=1 once the socket
//! serves, STATUS as a replay after a crash finishes, STOPPING=1 at SIGTERM, and
//! WATCHDOG=1 every half WATCHDOG_USEC from its loop.

#[path = "support/daemon.rs"]
mod daemon;

use daemon::{publish_each, Daemon};
use herald::client::Client;
use herald::protocol::{Role, Severity};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Option<Duration> = Some(Duration::from_secs(20));

/// systemd's end of the notification socket.
struct Systemd {
    socket: UnixDatagram,
    path: std::path::PathBuf,
}

impl Systemd {
    fn bind(dir: &Path) -> Systemd {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        Systemd { socket, path }
    }

    /// The next notification, waiting at most `timeout`.
    fn next(&self, timeout: Duration) -> Option<String> {
        self.socket.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8(buf[..n].to_vec()).unwrap()),
            Err(_) => None,
        }
    }

    /// Notifications until one satisfies `until` (returned last), at most 20 s.
    fn until(&self, what: &str, until: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Some(n) = self.next(Duration::from_millis(200)) {
                let done = until(&n);
                seen.push(n);
                if done {
                    return seen;
                }
            }
        }
        panic!("no {what} among {seen:?}");
    }

    /// Every notification that arrives within `window`.
    fn during(&self, window: Duration) -> Vec<String> {
        let end = Instant::now() + window;
        let mut seen = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            if left.is_zero() {
                break;
            }
            if let Some(n) = self.next(left) {
                seen.push(n);
            }
        }
        seen
    }
}

fn start(data: &Path, systemd: &Systemd, env: &[(&str, &str)]) -> Daemon {
    let socket = systemd.path.clone();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Daemon::start_with(data, &[], move |c| {
        c.env("NOTIFY_SOCKET", &socket)
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .envs(env);
    })
}

fn watchdogs(notifications: &[String]) -> usize {
    notifications.iter().filter(|n| *n == "WATCHDOG=1").count()
}

#[test]
fn status_then_ready_once_serving_then_watchdog_then_stopping_at_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let systemd = Systemd::bind(dir.path());
    let data = dir.path().join("data");
    // 200 ms: a ping every 100 ms.
    let d = start(&data, &systemd, &[("WATCHDOG_USEC", "200000")]);
    let first = systemd
        .next(Duration::from_secs(5))
        .expect("a status first");
    assert_eq!(
        first,
        format!(
            "STATUS=creating the region {}",
            data.join("region.pmem").display()
        )
    );
    let ready = systemd.next(Duration::from_secs(5)).expect("then ready");
    assert_eq!(
        ready,
        format!(
            "READY=1\nSTATUS=serving on {}",
            data.join("herald.sock").display()
        ),
        "READY once the socket serves (the ready line was already printed)"
    );
    let during = systemd.during(Duration::from_millis(1000));
    assert!(
        watchdogs(&during) >= 4,
        "a watchdog every 100 ms: {during:?}"
    );
    assert!(during.iter().all(|n| n == "WATCHDOG=1"), "{during:?}");
    let pid = d.child.id() as i32;
    // SAFETY: plain kill(2) on our child's pid.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let after = systemd.until("STOPPING=1", |n| n.starts_with("STOPPING=1"));
    assert_eq!(
        after.last().unwrap(),
        "STOPPING=1\nSTATUS=shutting down: finishing in-flight commits"
    );
    assert_eq!(d.stop().code(), Some(0));

    // Started again: the region exists, so the first status says it is scanned.
    let d = start(&data, &systemd, &[]);
    let first = systemd.next(Duration::from_secs(5)).unwrap();
    assert!(first.starts_with("STATUS=scanning the region"), "{first}");
    assert!(systemd
        .next(Duration::from_secs(5))
        .unwrap()
        .starts_with("READY=1\n"));
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn without_watchdog_usec_or_with_it_meant_for_another_process_there_is_no_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    let systemd = Systemd::bind(dir.path());
    for (i, env) in [
        vec![],
        vec![("WATCHDOG_USEC", "200000"), ("WATCHDOG_PID", "1")],
    ]
    .into_iter()
    .enumerate()
    {
        let d = start(&dir.path().join(format!("data{i}")), &systemd, &env);
        let seen = systemd.until("READY=1", |n| n.starts_with("READY=1"));
        let seen: Vec<String> = seen
            .into_iter()
            .chain(systemd.during(Duration::from_millis(500)))
            .collect();
        assert_eq!(watchdogs(&seen), 0, "{env:?}: {seen:?}");
        assert_eq!(d.stop().code(), Some(0));
    }
}

#[test]
fn after_a_crash_ready_names_the_replay_and_a_status_says_when_it_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let systemd = Systemd::bind(dir.path());
    let data = dir.path().join("data");
    let d = Daemon::start(&data, &[]);
    let mut sub = Client::connect(&d.socket(), Role::Subscriber, "ops").unwrap();
    sub.subscribe("ops", &[">"], Severity::Debug, 4, false)
        .unwrap();
    drop(sub);
    let mut p = Client::connect(&d.socket(), Role::Producer, "p").unwrap();
    let seqs = publish_each(&mut p, "fs.disk.error", Severity::Error, ["a", "b", "c"]);
    d.kill();

    let d = start(&data, &systemd, &[]);
    let seen = systemd.until("READY=1", |n| n.starts_with("READY=1"));
    assert!(
        seen[0].starts_with("STATUS=scanning the region"),
        "{seen:?}"
    );
    assert_eq!(
        seen.last().unwrap(),
        &format!(
            "READY=1\nSTATUS=serving on {}; replaying 3 unconfirmed events to 1 subscription",
            d.socket().display()
        )
    );
    let mut sub = Client::connect(&d.socket(), Role::Subscriber, "ops").unwrap();
    sub.subscribe("ops", &[">"], Severity::Debug, 4, false)
        .unwrap();
    for expected in &seqs {
        let seq = sub.next_delivery(WAIT).unwrap().unwrap().seq;
        assert_eq!(seq, *expected);
        sub.confirm(seq, seq).unwrap();
    }
    sub.recovered().unwrap();
    sub.flush().unwrap();
    let done = systemd.until("the end of the replay", |n| n.contains("replay"));
    assert_eq!(
        done.last().unwrap(),
        &format!(
            "STATUS=serving on {}; every replay after the crash is done",
            d.socket().display()
        )
    );
    assert_eq!(d.stop().code(), Some(0));
}
