//! `herald serve` as an operator meets it: what it logs, where it puts its socket, and
//! how it says goodbye to its clients.

#[path = "support/certs.rs"]
mod certs;
#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/raw.rs"]
mod raw;

use herald::protocol::{ErrorCode, Frame, Role};
use raw::{frame, Raw};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

#[test]
fn log_lines_written_to_a_pipe_are_plain_text_without_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(daemon::herald_binary())
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert!(ready.starts_with("ready:"), "{ready}");
    // SAFETY: plain kill(2) on our child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(log.contains("region created"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a pipe: {log:?}");
}

#[test]
fn with_region_elsewhere_the_data_directory_for_the_socket_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let region = dir.path().join("elsewhere.pmem");
    let data = dir.path().join("new").join("dir");
    let d = daemon::Daemon::start(&data, &["--region", region.to_str().unwrap()]);
    assert!(data.join("herald.sock").exists());
    assert!(region.exists());
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn sigterm_tells_every_client_shutting_down_before_closing() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon::Daemon::start(dir.path(), &[]);
    let mut producer = Raw::connect(&d.socket());
    producer.hello(Role::Producer, "fsd");
    let mut subscriber = Raw::connect(&d.socket());
    subscriber.hello(Role::Subscriber, "ops");
    subscriber.subscribe("ops", &[">"], 8);
    let pid = d.child.id() as i32;
    // SAFETY: plain kill(2) on our child's pid.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    for client in [&mut producer, &mut subscriber] {
        let f = client.recv().expect("an error frame before the close");
        match frame(&f) {
            Frame::Error { code, .. } => assert_eq!(code, ErrorCode::ShuttingDown),
            other => panic!("expected shutting_down, got {other:?}"),
        }
        assert_eq!(client.recv(), None, "then the connection closes");
    }
    assert_eq!(d.stop().code(), Some(0));
}

/// `herald serve --data-dir DIR ARGS...` must refuse to start: its standard error.
fn serve_refused(dir: &std::path::Path, args: &[&str]) -> String {
    let mut all = vec!["serve", "--data-dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = daemon::herald(&all);
    assert!(!out.status.success(), "{args:?} started: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A relay's `--upstream` flags are checked before it starts: TLS files go together,
/// exist, and are in their validity period (the CA's too).
#[test]
fn tls_upstream_flags_are_checked_at_start() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    let ca = certs::ca(dir, "relay-test-ca");
    let old_ca = certs::expired_ca(dir, "old-ca");
    let fresh = certs::issue(dir, &ca, "relay", &["relay.example"], false, false);
    let expired = certs::issue(dir, &ca, "old-relay", &["relay.example"], false, true);
    let data = tempfile::tempdir().unwrap();
    let tls = [
        "--upstream",
        "tls://127.0.0.1:1",
        "--upstream-name",
        "relay",
    ];

    let err = serve_refused(data.path(), &tls);
    assert!(err.contains("--upstream-ca"), "{err}");
    let err = serve_refused(data.path(), &["--upstream", "/x.sock"]);
    assert!(err.contains("--upstream-name"), "{err}");

    // Missing files, and dates (the client certificate's and the CA's alike).
    let (ca_pem, old_ca_pem) = (ca.pem.to_str().unwrap(), old_ca.pem.to_str().unwrap());
    let missing = std::path::PathBuf::from("/nonexistent.pem");
    for (ca, (cert, key), flag, why) in [
        (
            ca_pem,
            (&missing, &fresh.1),
            "--upstream-cert",
            "/nonexistent.pem",
        ),
        (
            ca_pem,
            (&expired.0, &expired.1),
            "--upstream-cert",
            "expired",
        ),
        (old_ca_pem, (&fresh.0, &fresh.1), "--upstream-ca", "expired"),
    ] {
        let mut args = tls.to_vec();
        args.extend([
            "--upstream-ca",
            ca,
            "--upstream-cert",
            cert.to_str().unwrap(),
            "--upstream-key",
            key.to_str().unwrap(),
        ]);
        let err = serve_refused(data.path(), &args);
        assert!(
            err.contains(why) && err.contains(flag),
            "{flag}, {why}: {err}"
        );
    }
}
