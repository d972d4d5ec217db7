//! `herald serve --listen-tls` through the real binary: publish and subscribe over TLS
//! with the client certificate's name as the connection's identity; clients refused
//! for their certificate (none, another CA's, an expired one) with a clear error on
//! their side and a log line on the daemon's; certificate files that stop the start.
//! Certificates are made at run time (rcgen). The backend is whatever HERALD_IO says
//! (tools/test.sh runs this file on io_uring and on epoll).

#[path = "support/certs.rs"]
mod certs;
#[path = "support/daemon.rs"]
mod daemon;

use certs::{ca, issue, Ca};
use daemon::{herald_binary, Daemon};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a poll waits for what it looks for: a failure detector, not a timing
/// claim (each step takes milliseconds here).
const POLL_MAX: Duration = Duration::from_secs(30);
/// Between two looks of a poll.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Every file a test needs: a CA with a server and clients, and a second CA's client.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
    server: (PathBuf, PathBuf),
    producer: (PathBuf, PathBuf),
    subscriber: (PathBuf, PathBuf),
    expired: (PathBuf, PathBuf),
    stranger: (PathBuf, PathBuf),
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca1 = ca(dir.path(), "herald-test-ca");
    let other = ca(dir.path(), "other-ca");
    let server = issue(
        dir.path(),
        &ca1,
        "server",
        &["localhost", "127.0.0.1"],
        true,
        false,
    );
    let producer = issue(
        dir.path(),
        &ca1,
        "producer",
        &["producer.example"],
        false,
        false,
    );
    let subscriber = issue(
        dir.path(),
        &ca1,
        "subscriber",
        &["subscriber.example"],
        false,
        false,
    );
    let expired = issue(
        dir.path(),
        &ca1,
        "expired",
        &["expired.example"],
        false,
        true,
    );
    let stranger = issue(
        dir.path(),
        &other,
        "stranger",
        &["stranger.example"],
        false,
        false,
    );
    Pki {
        dir,
        ca: ca1,
        server,
        producer,
        subscriber,
        expired,
        stranger,
    }
}

/// A daemon serving TLS, with its stderr collected.
struct TlsDaemon {
    daemon: Daemon,
    address: String,
    stderr: Arc<Mutex<String>>,
    _data: tempfile::TempDir,
}

fn tls_flags(pki: &Pki) -> Vec<String> {
    vec![
        "--listen-tls".into(),
        "127.0.0.1:0".into(),
        "--tls-cert".into(),
        pki.server.0.display().to_string(),
        "--tls-key".into(),
        pki.server.1.display().to_string(),
        "--tls-client-ca".into(),
        pki.ca.pem.display().to_string(),
    ]
}

fn start(pki: &Pki, extra: &[&str]) -> TlsDaemon {
    let data = tempfile::tempdir().unwrap();
    let mut args = tls_flags(pki);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut daemon = Daemon::start_with(data.path(), &args, |c| {
        c.stderr(Stdio::piped());
    });
    let pipe = daemon.child.stderr.take().unwrap();
    let collected = stderr.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            eprintln!("daemon: {line}");
            collected.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let address = daemon
        .ready_line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("tls://"))
        .unwrap_or_else(|| panic!("no tls:// address in {:?}", daemon.ready_line))
        .to_owned();
    TlsDaemon {
        daemon,
        address: format!("tls://{address}"),
        stderr,
        _data: data,
    }
}

impl TlsDaemon {
    /// The arguments that connect a client subcommand with `identity` (None: no
    /// client certificate).
    fn connect(&self, pki: &Pki, identity: Option<&(PathBuf, PathBuf)>) -> Vec<String> {
        let mut args = vec![
            "--connect".to_owned(),
            self.address.clone(),
            "--ca".into(),
            pki.ca.pem.display().to_string(),
        ];
        if let Some((cert, key)) = identity {
            args.extend([
                "--cert".into(),
                cert.display().to_string(),
                "--cert-key".into(),
                key.display().to_string(),
            ]);
        }
        args
    }

    /// Polls the daemon's stderr until `count` lines contain `needle`.
    fn wait_for_log(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + POLL_MAX;
        loop {
            let seen = self.stderr.lock().unwrap().matches(needle).count();
            if seen >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{seen} of {count} log lines with {needle:?} within {POLL_MAX:?}:\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

fn herald(args: &[String]) -> Output {
    Command::new(herald_binary())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn status_over_tls(d: &TlsDaemon, pki: &Pki) -> serde_json::Value {
    let mut args = vec!["status".to_owned(), "--json".into()];
    args.extend(d.connect(pki, Some(&pki.producer)));
    let out = herald(&args);
    assert!(
        out.status.success(),
        "status over TLS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn poll_status(
    d: &TlsDaemon,
    pki: &Pki,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + POLL_MAX;
    loop {
        let status = status_over_tls(d, pki);
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not seen within {POLL_MAX:?}: {status}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn subscription<'a>(status: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    status["subscriptions"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
}

#[test]
fn events_go_over_tls_end_to_end_and_status_names_the_certificate() {
    let pki = pki();
    let d = start(&pki, &[]);
    let mut sub_args: Vec<String> = [
        "subscribe",
        "--name",
        "audit",
        "--filter",
        "fs.>",
        "--count",
        "3",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    sub_args.extend(d.connect(&pki, Some(&pki.subscriber)));
    let subscriber = Command::new(herald_binary())
        .args(&sub_args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The subscription exists, and its connection is the subscriber's certificate.
    let status = poll_status(&d, &pki, "the subscriber attached", |s| {
        subscription(s, "audit").is_some_and(|row| row["connected"] == true)
    });
    let peers = status["connections"]["peers"].as_array().unwrap();
    assert!(
        peers.iter().any(|p| p["transport"] == "tls"
            && p["identity"] == "certificate \"subscriber.example\""
            && p["client"] == "herald-subscribe"),
        "the subscriber's certificate name among the peers: {peers:?}"
    );
    assert!(
        peers
            .iter()
            .any(|p| p["identity"] == "certificate \"producer.example\""),
        "status's own connection shows its certificate: {peers:?}"
    );
    assert_eq!(
        status["connections"]["tls"]["listen"],
        d.address.trim_start_matches("tls://")
    );
    for i in 0..3 {
        let mut args: Vec<String> = ["publish", "--topic", "fs.vol1.error"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(d.connect(&pki, Some(&pki.producer)));
        args.push(format!("event {i}"));
        let out = herald(&args);
        assert!(
            out.status.success(),
            "publish over TLS: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = subscriber.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "subscribe over TLS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let payloads: Vec<&str> = events
        .iter()
        .map(|e| e["payload"].as_str().unwrap())
        .collect();
    assert_eq!(payloads, ["event 0", "event 1", "event 2"]);
    // Confirmed: the durable subscription's cursor reaches the tail.
    poll_status(&d, &pki, "the three events confirmed", |s| {
        subscription(s, "audit")
            .is_some_and(|row| row["pending_slots"] == 0 && row["in_flight"] == 0)
    });
    assert!(d.daemon.stop().success());
}

#[test]
fn clients_without_a_good_certificate_are_refused_clearly_and_others_still_served() {
    let pki = pki();
    let d = start(&pki, &[]);
    let cases: [(Option<&(PathBuf, PathBuf)>, &str); 3] = [
        (
            None,
            "no client certificate configured: the server requires one (--cert, --cert-key)",
        ),
        (Some(&pki.stranger), "the server refused our certificate"),
        (
            Some(&pki.expired),
            "the server refused our certificate: our certificate has expired",
        ),
    ];
    for (n, (identity, expected)) in cases.iter().enumerate() {
        let mut args = vec!["status".to_owned()];
        args.extend(d.connect(&pki, *identity));
        let out = herald(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "refused client {n}: {stderr}");
        assert!(
            stderr.contains(expected),
            "client {n}: expected {expected:?} in {stderr:?}"
        );
        d.wait_for_log("TLS handshake refused", n + 1);
    }
    let log = d.stderr.lock().unwrap().clone();
    assert!(log.contains("the client sent no certificate"), "{log}");
    assert!(log.contains("not issued by a trusted CA"), "{log}");
    assert!(log.contains("expired"), "{log}");
    // A client that trusts another CA than the server's is told so too.
    let mut args = vec![
        "status".to_owned(),
        "--connect".into(),
        d.address.clone(),
        "--ca".into(),
    ];
    args.push(pki.dir.path().join("other-ca.pem").display().to_string());
    args.extend([
        "--cert".into(),
        pki.producer.0.display().to_string(),
        "--cert-key".into(),
        pki.producer.1.display().to_string(),
    ]);
    let out = herald(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the server's certificate is not trusted"),
        "{stderr}"
    );
    // The daemon serves a good client afterwards.
    let status = status_over_tls(&d, &pki);
    assert!(
        status["connections"]["tls"]["handshakes_refused"]
            .as_u64()
            .unwrap()
            >= 3,
        "{status}"
    );
    assert!(d.daemon.stop().success());
}

#[test]
fn an_access_rule_names_a_certificate() {
    let pki = pki();
    let config = pki.dir.path().join("herald.toml");
    std::fs::write(
        &config,
        "[[access]]\ncert = \"producer.example\"\npublish = [\"fs.>\"]\nadmin = true\n",
    )
    .unwrap();
    let d = start(&pki, &["--config", config.to_str().unwrap()]);
    let publish = |topic: &str, identity: &(PathBuf, PathBuf)| {
        let mut args: Vec<String> = vec!["publish".into(), "--topic".into(), topic.into()];
        args.extend(d.connect(&pki, Some(identity)));
        args.push("x".into());
        herald(&args)
    };
    let allowed = publish("fs.vol1.error", &pki.producer);
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    let elsewhere = publish("billing.x", &pki.producer);
    let stderr = String::from_utf8_lossy(&elsewhere.stderr);
    assert!(
        !elsewhere.status.success() && stderr.contains("forbidden"),
        "{stderr}"
    );
    let unnamed = publish("fs.vol1.error", &pki.subscriber);
    let stderr = String::from_utf8_lossy(&unnamed.stderr);
    assert!(
        !unnamed.status.success() && stderr.contains("forbidden"),
        "{stderr}"
    );
    assert!(d.daemon.stop().success());
}

/// `herald serve` with `args` must fail at start, saying `expected`.
fn refuses_to_start(args: &[String], expected: &str) {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(herald_binary())
        .arg("serve")
        .arg("--data-dir")
        .arg(data.path())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(
        stderr.contains(expected),
        "{args:?}: expected {expected:?} in {stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ready:"));
}

#[test]
fn certificate_files_that_cannot_be_used_stop_the_start() {
    let pki = pki();
    let with = |flag: &str, value: &Path| {
        let mut args = tls_flags(&pki);
        let at = args.iter().position(|a| a == flag).unwrap();
        args[at + 1] = value.display().to_string();
        args
    };
    let missing = pki.dir.path().join("missing.pem");
    refuses_to_start(&with("--tls-cert", &missing), "cannot read the certificate");
    refuses_to_start(&with("--tls-cert", &missing), "missing.pem (--tls-cert)");
    // Unreadable: a directory where the key should be (the tests run as root, who
    // reads any file whatever its mode).
    refuses_to_start(
        &with("--tls-key", pki.dir.path()),
        "cannot read the private key",
    );
    refuses_to_start(
        &with("--tls-key", &pki.producer.1),
        "does not belong to the certificate",
    );
    let expired_ca = ca(pki.dir.path(), "expired-server-ca");
    let (expired_cert, expired_key) = issue(
        pki.dir.path(),
        &expired_ca,
        "expired-server",
        &["localhost"],
        true,
        true,
    );
    let mut args = with("--tls-cert", &expired_cert);
    let at = args.iter().position(|a| a == "--tls-key").unwrap();
    args[at + 1] = expired_key.display().to_string();
    refuses_to_start(&args, "expired on");
    refuses_to_start(&with("--tls-client-ca", &missing), "(--tls-client-ca)");
    refuses_to_start(
        &["--listen-tls".into(), "127.0.0.1:0".into()],
        "--listen-tls needs --tls-cert, --tls-key, --tls-client-ca",
    );
}
