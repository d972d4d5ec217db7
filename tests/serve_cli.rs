//! `herald serve` as an operator meets it: what it logs, where it puts its socket, and
//! how it says goodbye to its clients.

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
